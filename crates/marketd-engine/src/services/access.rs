//! Access to marketd and to its upstreams: API keys (created with a random
//! secret of which only the SHA-256 is stored, listed, revoked, bootstrapped
//! on a first start) and upstream credentials stored encrypted (sealed with
//! the current key of the [`Keyring`], listed without values, deleted,
//! re-sealed on key rotation, and read back into the providers'
//! configuration at start-up). The HTTP routes and the `keys` and
//! `credentials` commands are both thin adapters over [`AccessService`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marketd_model::time::now_ns;
use marketd_model::{ApiKey, Role, Secret, StoredCredential};
use marketd_sources::ProvidersConfig;
use marketd_store::AnyStore;
use marketd_store::crypto::{CryptoError, Keyring};
use marketd_store::prelude::*;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Every key starts with this, so leaked keys are easy to find by scanners.
pub const KEY_PREFIX: &str = "mkd_";
/// Random bytes in a key (256 bits).
const KEY_RANDOM_BYTES: usize = 32;
/// Characters of a key kept (in clear) to recognise it in a list.
const SHOWN_PREFIX_CHARS: usize = 12;
/// Longest key lifetime accepted, days.
pub const MAX_KEY_DAYS: u32 = 3650;
/// Longest credential value a caller may store, in characters (the
/// OpenAPI document's `maxLength`, which counts characters too).
pub const MAX_CREDENTIAL_CHARS: usize = 8192;
/// Longest key holder or connector name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// The class of the characters a name may not hold (Unicode `Cc`, what
/// [`char::is_control`] is true of), as the body of a regular-expression
/// class.
macro_rules! control_class {
    () => {
        r"\u0000-\u001F\u007F-\u009F"
    };
}

/// What [`validate_key_name`] accepts (with [`MAX_NAME_CHARS`] as the
/// schema's `maxLength`), as a regular expression ECMA-262 (JSON Schema)
/// and the `regex` crate read alike: no control character, and one
/// character at least that is neither a control nor whitespace (what
/// [`str::trim`] removes).
pub const NAME_PATTERN: &str = concat!(
    "^[^",
    control_class!(),
    "]*[^",
    control_class!(),
    r"\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000",
    "][^",
    control_class!(),
    "]*$"
);

/// Whether `name` is where a connector's secrets are sealed
/// (`connectors.<id>.secrets`, [`marketd_model::Connector::credential_name`]).
pub fn is_connector_secrets(name: &str) -> bool {
    name.strip_prefix("connectors.")
        .and_then(|rest| rest.strip_suffix(".secrets"))
        .is_some_and(|id| id.parse::<Uuid>().is_ok())
}

/// What [`validate_credential_name`] accepts.
pub const CREDENTIAL_NAME_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,127}$";

/// Why an access operation was refused or failed. No variant carries a key,
/// a hash or a credential value.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The request is malformed; the message is safe to show to the caller.
    #[error("{0}")]
    Validation(String),
    #[error("no active API key {0}")]
    KeyNotFound(Uuid),
    /// Refused so that the operators cannot lock themselves out.
    #[error("this is the last active admin key: create another admin key first")]
    LastAdminKey,
    #[error("no credential named {0}")]
    CredentialNotFound(String),
    /// The name is a connector's sealed secrets, which only the connector
    /// service writes (a value put there by hand broke the connector).
    #[error("credential {0} holds a connector's secrets: change them through the connector")]
    Reserved(String),
    #[error("no encryption key is configured (encryption.key)")]
    EncryptionNotConfigured,
    /// A value could not be sealed or opened (e.g. its key is missing from
    /// `encryption.previous_keys`).
    // The cause is part of the message (not a `source`) so one line, as
    // logged or printed, says what to fix.
    #[error("credential {name}: {cause}")]
    Crypto { name: String, cause: CryptoError },
    #[error(transparent)]
    Store(#[from] marketd_store::Error),
}

/// Whether [`AccessService::revoke_key`] may revoke the last active admin key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastAdmin {
    /// Refuse ([`AccessError::LastAdminKey`]): the HTTP API, whose callers
    /// would lose the only way back in.
    Keep,
    /// Allow: the `keys` command, which works on the store directly and can
    /// always create another key.
    Allow,
}

/// The SHA-256 of a key's text, 64 lowercase hex digits (what the store keeps).
pub fn hash_key(key: &str) -> String {
    // By table, not `write!`: every request with a key hashes it.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
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

/// Checks a key's holder (or a connector's) name: 1-64 printable
/// characters, not all whitespace ([`NAME_PATTERN`]).
pub fn validate_key_name(name: &str) -> Result<(), AccessError> {
    let name_ok = !name.trim().is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(char::is_control);
    if name_ok {
        Ok(())
    } else {
        Err(AccessError::Validation(
            "name must be 1 to 64 printable characters".into(),
        ))
    }
}

/// Checks a credential name: 1-128 of `a-z 0-9 . _ -`, starting with a
/// letter or digit (`providers.finnhub.api_key`, `connectors.<id>.token`).
pub fn validate_credential_name(name: &str) -> Result<(), AccessError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(AccessError::Validation(
            "credential names are 1-128 characters of a-z, 0-9, '.', '_', '-'".into(),
        ))
    }
}

/// API keys and stored credentials over one store and keyring.
#[derive(Debug, Clone)]
pub struct AccessService {
    store: Arc<AnyStore>,
    keyring: Arc<Keyring>,
}

impl AccessService {
    pub fn new(store: Arc<AnyStore>, keyring: Arc<Keyring>) -> Self {
        AccessService { store, keyring }
    }

    /// Whether credentials can be stored (an encryption key is configured).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    // --- API keys -------------------------------------------------------

    /// Creates and stores a key for `name` (trimmed), expiring after `days`
    /// (1 to [`MAX_KEY_DAYS`]) when given; the returned secret is its only
    /// copy.
    pub async fn create_key(
        &self,
        name: &str,
        role: Role,
        days: Option<u32>,
    ) -> Result<(ApiKey, Secret), AccessError> {
        validate_key_name(name)?;
        if days.is_some_and(|d| d == 0 || d > MAX_KEY_DAYS) {
            return Err(AccessError::Validation(format!(
                "expires_in_days must be between 1 and {MAX_KEY_DAYS}"
            )));
        }
        let (mut record, key) = new_api_key(name.trim(), role);
        record.expires_at = days.map(|d| {
            record
                .created_at
                .saturating_add(i64::from(d) * 86_400 * 1_000_000_000)
        });
        self.store
            .insert_api_key(&record, &hash_key(key.expose()))
            .await?;
        tracing::info!(key_id = %record.id, role = %record.role, "API key created");
        Ok((record, key))
    }

    /// Every key, revoked and expired ones included (never a key or hash).
    pub async fn list_keys(&self) -> Result<Vec<ApiKey>, AccessError> {
        Ok(self.store.api_keys().await?)
    }

    /// Revokes an active key at once (keys are looked up on every request,
    /// so every instance refuses it from now on).
    pub async fn revoke_key(&self, id: Uuid, last_admin: LastAdmin) -> Result<(), AccessError> {
        if last_admin == LastAdmin::Keep {
            let keys = self.store.api_keys().await?;
            let Some(target) = keys.iter().find(|k| k.id == id && k.revoked_at.is_none()) else {
                return Err(AccessError::KeyNotFound(id));
            };
            let admins = keys
                .iter()
                .filter(|k| k.is_active() && k.role == Role::Admin)
                .count();
            if target.role == Role::Admin && admins <= 1 {
                return Err(AccessError::LastAdminKey);
            }
        }
        if !self.store.revoke_api_key(id, now_ns()).await? {
            return Err(AccessError::KeyNotFound(id));
        }
        tracing::info!(key_id = %id, "API key revoked");
        Ok(())
    }

    /// On a first start (no key ever stored), creates an admin key named
    /// `bootstrap` and returns it; `None` on every later start.
    pub async fn bootstrap_admin_key(&self) -> Result<Option<(ApiKey, Secret)>, AccessError> {
        let (record, key) = new_api_key("bootstrap", Role::Admin);
        let stored = self
            .store
            .insert_first_api_key(&record, &hash_key(key.expose()))
            .await?;
        Ok(stored.then_some((record, key)))
    }

    // --- stored credentials --------------------------------------------

    /// Seals `value` (1 to [`MAX_CREDENTIAL_CHARS`] characters) with the
    /// current key and stores (or replaces) it under `name`, keeping the
    /// first creation time.
    pub async fn put_credential(
        &self,
        name: &str,
        value: &Secret,
    ) -> Result<StoredCredential, AccessError> {
        validate_credential_name(name)?;
        if is_connector_secrets(name) {
            return Err(AccessError::Reserved(name.to_string()));
        }
        if value.is_empty() || value.expose().chars().count() > MAX_CREDENTIAL_CHARS {
            return Err(AccessError::Validation(format!(
                "value must be 1 to {MAX_CREDENTIAL_CHARS} characters"
            )));
        }
        self.seal_credential(name, value).await
    }

    /// [`AccessService::put_credential`] without the limit on the value's
    /// length, for what the services seal themselves (a connector's
    /// secrets, bounded by the request body's limit).
    pub(crate) async fn seal_credential(
        &self,
        name: &str,
        value: &Secret,
    ) -> Result<StoredCredential, AccessError> {
        validate_credential_name(name)?;
        if !self.keyring.is_configured() {
            return Err(AccessError::EncryptionNotConfigured);
        }
        let sealed = self
            .keyring
            .seal(name, value)
            .map_err(|cause| AccessError::Crypto {
                name: name.to_string(),
                cause,
            })?;
        let now = now_ns();
        let created_at = self
            .store
            .credential(name)
            .await?
            .map_or(now, |c| c.created_at);
        let c = StoredCredential {
            name: name.to_string(),
            sealed,
            created_at,
            updated_at: now,
        };
        self.store.put_credential(&c).await?;
        tracing::info!(credential = %c.name, key_id = %c.sealed.key_id, "credential stored");
        Ok(c)
    }

    /// Opens the credential stored under `name`, for the code that sends it
    /// upstream; `None` when there is none.
    pub async fn open_credential(&self, name: &str) -> Result<Option<Secret>, AccessError> {
        let Some(c) = self.store.credential(name).await? else {
            return Ok(None);
        };
        let value = self
            .keyring
            .open(name, &c.sealed)
            .map_err(|cause| AccessError::Crypto {
                name: name.to_string(),
                cause,
            })?;
        Ok(Some(value))
    }

    /// Stored credentials, sealed (their values are never returned).
    pub async fn list_credentials(&self) -> Result<Vec<StoredCredential>, AccessError> {
        Ok(self.store.credentials().await?)
    }

    /// Deletes a stored credential; a connector's secrets go with the
    /// connector ([`AccessError::Reserved`]).
    pub async fn delete_credential(&self, name: &str) -> Result<(), AccessError> {
        validate_credential_name(name)?;
        if is_connector_secrets(name) {
            return Err(AccessError::Reserved(name.to_string()));
        }
        self.remove_credential(name).await
    }

    /// [`AccessService::delete_credential`] of any name, for the services
    /// that own a credential (a connector's secrets).
    pub(crate) async fn remove_credential(&self, name: &str) -> Result<(), AccessError> {
        validate_credential_name(name)?;
        if !self.store.delete_credential(name).await? {
            return Err(AccessError::CredentialNotFound(name.to_string()));
        }
        tracing::info!(credential = %name, "credential deleted");
        Ok(())
    }

    /// Re-seals every stored credential not sealed with the current key.
    /// Returns (re-sealed, total). Fails before writing anything when a value
    /// cannot be opened (its key is missing from `encryption.previous_keys`).
    pub async fn rotate_encryption(&self) -> Result<(usize, usize), AccessError> {
        if !self.keyring.is_configured() {
            return Err(AccessError::EncryptionNotConfigured);
        }
        let all = self.store.credentials().await?;
        let mut resealed = Vec::new();
        for c in all.iter().filter(|c| self.keyring.needs_reseal(&c.sealed)) {
            let crypto = |cause| AccessError::Crypto {
                name: c.name.clone(),
                cause,
            };
            let plain = self.keyring.open(&c.name, &c.sealed).map_err(crypto)?;
            let sealed = self.keyring.seal(&c.name, &plain).map_err(crypto)?;
            resealed.push(StoredCredential {
                sealed,
                updated_at: now_ns(),
                ..c.clone()
            });
        }
        for c in &resealed {
            self.store.put_credential(c).await?;
        }
        Ok((resealed.len(), all.len()))
    }

    /// Fills each enabled provider's missing secret from the credential
    /// store; a value in the configuration wins over a stored one.
    pub async fn fill_provider_credentials(
        &self,
        providers: &mut ProvidersConfig,
    ) -> Result<(), AccessError> {
        for (name, slot) in providers.credential_slots() {
            if slot.is_some() {
                continue;
            }
            let Some(c) = self.store.credential(name).await? else {
                continue;
            };
            let value =
                self.keyring
                    .open(name, &c.sealed)
                    .map_err(|cause| AccessError::Crypto {
                        name: name.to_string(),
                        cause,
                    })?;
            tracing::info!(
                credential = name,
                key_id = %c.sealed.key_id,
                "using the stored (encrypted) credential"
            );
            *slot = Some(value);
        }
        Ok(())
    }
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

    #[test]
    fn names_are_checked() {
        assert!(validate_key_name("ci bot").is_ok());
        assert!(validate_key_name("  ").is_err());
        assert!(validate_key_name(&"x".repeat(65)).is_err());
        assert!(validate_credential_name("providers.finnhub.api_key").is_ok());
        assert!(validate_credential_name(".hidden").is_err());
        assert!(validate_credential_name("Upper").is_err());
        let id = Uuid::now_v7();
        assert!(is_connector_secrets(
            &marketd_model::Connector::credential_name(id)
        ));
        assert!(!is_connector_secrets(&format!("connectors.{id}.token")));
        assert!(!is_connector_secrets("connectors.x.secrets"));
    }

    /// The patterns the OpenAPI document gives for names agree with the
    /// checks.
    #[test]
    fn name_patterns_agree_with_the_checks() {
        let key_name = regex::Regex::new(NAME_PATTERN).unwrap();
        let key_schema = |s: &str| key_name.is_match(s) && s.chars().count() <= MAX_NAME_CHARS;
        for s in [
            "ci bot",
            " x ",
            "é",
            "\u{feff}",
            "a\u{2003}b",
            "日本",
            &"x".repeat(64),
            "",
            " ",
            "\u{3000}\u{a0}",
            "a\tb",
            "a\u{85}",
            "a\u{7f}",
            "\u{9f}",
            &"x".repeat(65),
            &format!(" {}", "x".repeat(64)),
        ] {
            assert_eq!(validate_key_name(s).is_ok(), key_schema(s), "{s:?}");
        }
        let cred = regex::Regex::new(CREDENTIAL_NAME_PATTERN).unwrap();
        for s in [
            "providers.finnhub.api_key",
            "0",
            "a-b_c.d",
            &"a".repeat(128),
            &"a".repeat(129),
            "",
            ".a",
            "-a",
            "_a",
            "Upper",
            "uPPer",
            "a b",
            "é",
        ] {
            assert_eq!(
                validate_credential_name(s).is_ok(),
                cred.is_match(s),
                "{s:?}"
            );
        }
    }
}
