//! The API-key lifecycle: making, hashing, naming and storing keys.
//!
//! Only a key's SHA-256 is stored; the text is shown once to whoever created it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marketd_model::time::now_ns;
use marketd_model::{ApiKey, Role, Secret};
use marketd_store::{AnyStore};
use marketd_store::prelude::*;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Every key starts with this, so leaked keys are easy to find by scanners.
pub const KEY_PREFIX: &str = "mkd_";
/// Random bytes in a key (256 bits).
const KEY_RANDOM_BYTES: usize = 32;
/// Characters of a key kept (in clear) to recognise it in a list.
const SHOWN_PREFIX_CHARS: usize = 12;

/// The SHA-256 of a key's text, 64 lowercase hex digits (what the store keeps).
pub fn hash_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A new random key (`mkd_` + 256 random bits, base64url) and its record.
pub fn new_api_key(name: &str, role: Role) -> (ApiKey, Secret) {
    use rand::RngCore as _;
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    // ThreadRng: a CSPRNG seeded and periodically reseeded from the OS.
    rand::rng().fill_bytes(&mut bytes);
    let text = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let record = ApiKey {
        id: Uuid::now_v7(),
        name: name.to_string(),
        role,
        prefix: text.chars().take(SHOWN_PREFIX_CHARS).collect(),
        created_at: now_ns(),
        revoked_at: None,
        expires_at: None,
    };
    (record, Secret::new(text))
}

/// Checks a key's holder name: 1-64 printable characters.
pub fn validate_key_name(name: &str) -> Result<(), String> {
    let name_ok = !name.trim().is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(char::is_control);
    if name_ok {
        Ok(())
    } else {
        Err("name must be 1 to 64 printable characters".into())
    }
}

/// Creates and stores a key; the returned secret is its only copy.
pub async fn create_api_key(
    store: &AnyStore,
    name: &str,
    role: Role,
) -> Result<(ApiKey, Secret), marketd_store::Error> {
    create_expiring_api_key(store, name, role, None).await
}

/// Longest key lifetime accepted, days.
pub const MAX_KEY_DAYS: u32 = 3650;

/// As [`create_api_key`], the key expiring after `days` (1 to
/// [`MAX_KEY_DAYS`]) when given.
pub async fn create_expiring_api_key(
    store: &AnyStore,
    name: &str,
    role: Role,
    days: Option<u32>,
) -> Result<(ApiKey, Secret), marketd_store::Error> {
    let (mut record, key) = new_api_key(name, role);
    record.expires_at = days.map(|d| {
        record
            .created_at
            .saturating_add(i64::from(d.clamp(1, MAX_KEY_DAYS)) * 86_400 * 1_000_000_000)
    });
    store
        .insert_api_key(&record, &hash_key(key.expose()))
        .await?;
    Ok((record, key))
}

/// On a first start (no key ever stored), creates an admin key named
/// `bootstrap` and returns it; `None` on every later start.
pub async fn bootstrap_admin_key(
    store: &AnyStore,
) -> Result<Option<(ApiKey, Secret)>, marketd_store::Error> {
    let (record, key) = new_api_key("bootstrap", Role::Admin);
    let stored = store
        .insert_first_api_key(&record, &hash_key(key.expose()))
        .await?;
    Ok(stored.then_some((record, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hashed() {
        let (a, ka) = new_api_key("a", Role::Read);
        let (_, kb) = new_api_key("b", Role::Read);
        assert_ne!(ka, kb);
        assert!(ka.expose().starts_with("mkd_") && ka.expose().len() == 4 + 43);
        assert!(ka.expose().starts_with(&a.prefix) && a.prefix.len() == 12);
        let h = hash_key(ka.expose());
        assert_eq!(h.len(), 64);
        assert_ne!(h, hash_key(kb.expose()));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
