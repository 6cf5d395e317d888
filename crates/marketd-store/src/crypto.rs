//! Encryption of credentials at rest: AES-256-GCM with a random 96-bit nonce
//! per value, the credential's name bound as associated data (a value copied
//! under another name does not decrypt), and the id of the sealing key stored
//! with each value so keys can rotate: a [`Keyring`] holds the current key
//! (which seals) and older keys (which only open), and
//! [`Keyring::needs_reseal`] tells which values to re-encrypt.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use marketd_model::{SealedSecret, Secret};
use std::collections::BTreeMap;

/// Bytes of an AES-256 key.
pub const KEY_BYTES: usize = 32;
/// Bytes of an AES-GCM nonce.
pub const NONCE_BYTES: usize = 12;

/// Why a key could not be loaded or a value could not be opened. No variant
/// carries key material or plaintext.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("{what}: expected 32 bytes in base64 (e.g. from `marketd keys new-encryption-key`)")]
    BadKey { what: String },
    #[error("invalid encryption key id {0:?}: expected 1-32 characters of a-z, A-Z, 0-9, '_', '-'")]
    BadKeyId(String),
    #[error("encryption key id {0:?} is configured twice")]
    DuplicateKeyId(String),
    #[error("no encryption key is configured (set encryption.key, e.g. MARKETD__ENCRYPTION__KEY)")]
    NoKey,
    #[error(
        "value sealed with encryption key {0:?}, which is not configured (add it to encryption.previous_keys)"
    )]
    UnknownKeyId(String),
    #[error("a stored value does not decrypt (wrong key or tampered data)")]
    Corrupt,
}

/// A generated key, base64 (for `encryption.key`).
pub fn generate_key() -> Secret {
    Secret::new(STANDARD.encode(Aes256Gcm::generate_key(OsRng)))
}

fn parse_key(text: &Secret, what: &str) -> Result<Aes256Gcm, CryptoError> {
    let bad = || CryptoError::BadKey {
        what: what.to_string(),
    };
    let bytes = STANDARD.decode(text.expose().trim()).map_err(|_| bad())?;
    if bytes.len() != KEY_BYTES {
        return Err(bad());
    }
    Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad())
}

fn check_id(id: &str) -> Result<(), CryptoError> {
    let ok = !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CryptoError::BadKeyId(id.to_string()))
    }
}

/// The encryption keys in use. Cheap to share behind an `Arc`.
#[derive(Clone, Default)]
pub struct Keyring {
    current: Option<String>,
    keys: BTreeMap<String, Aes256Gcm>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A keyring without keys: sealing and opening fail with [`CryptoError::NoKey`].
    pub fn empty() -> Self {
        Keyring::default()
    }

    /// The current key `key` (base64 of 32 bytes) named `key_id`, plus older
    /// keys given as `ID:BASE64` that can still open values.
    pub fn new(key_id: &str, key: &Secret, previous: &[Secret]) -> Result<Self, CryptoError> {
        check_id(key_id)?;
        let mut keys = BTreeMap::new();
        keys.insert(key_id.to_string(), parse_key(key, "encryption.key")?);
        for entry in previous {
            let (id, text) = entry
                .expose()
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKey {
                    what: "encryption.previous_keys entry (expected ID:BASE64)".into(),
                })?;
            check_id(id)?;
            let cipher = parse_key(
                &Secret::new(text),
                &format!("encryption.previous_keys entry {id:?}"),
            )?;
            if keys.insert(id.to_string(), cipher).is_some() {
                return Err(CryptoError::DuplicateKeyId(id.to_string()));
            }
        }
        Ok(Keyring {
            current: Some(key_id.to_string()),
            keys,
        })
    }

    /// Whether a current key is configured.
    pub fn is_configured(&self) -> bool {
        self.current.is_some()
    }

    /// The id of the key that seals new values.
    pub fn current_key_id(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Encrypts `plaintext` for storage under `name`, with the current key and
    /// a fresh random nonce.
    pub fn seal(&self, name: &str, plaintext: &Secret) -> Result<SealedSecret, CryptoError> {
        let id = self.current.as_ref().ok_or(CryptoError::NoKey)?;
        let cipher = &self.keys[id];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.expose().as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        Ok(SealedSecret {
            key_id: id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Decrypts a value stored under `name`.
    pub fn open(&self, name: &str, sealed: &SealedSecret) -> Result<Secret, CryptoError> {
        if self.current.is_none() {
            return Err(CryptoError::NoKey);
        }
        let cipher = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKeyId(sealed.key_id.clone()))?;
        if sealed.nonce.len() != NONCE_BYTES {
            return Err(CryptoError::Corrupt);
        }
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Corrupt)
    }

    /// Whether `sealed` was sealed with a key other than the current one.
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        self.current.as_deref() != Some(sealed.key_id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_random_nonces_and_binds_the_name() {
        let ring = Keyring::new("k1", &generate_key(), &[]).unwrap();
        let plain = Secret::new("finnhub-token-123");
        let a = ring.seal("providers.finnhub.api_key", &plain).unwrap();
        let b = ring.seal("providers.finnhub.api_key", &plain).unwrap();
        assert_ne!(a.nonce, b.nonce, "a fresh nonce per value");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert_eq!(a.key_id, "k1");
        assert!(
            !a.ciphertext
                .windows(plain.expose().len())
                .any(|w| w == plain.expose().as_bytes())
        );
        assert_eq!(ring.open("providers.finnhub.api_key", &a).unwrap(), plain);
        assert_eq!(ring.open("other.name", &a), Err(CryptoError::Corrupt));
        let mut tampered = a.clone();
        tampered.ciphertext[0] ^= 1;
        assert_eq!(
            ring.open("providers.finnhub.api_key", &tampered),
            Err(CryptoError::Corrupt)
        );
        assert!(!format!("{a:?} {ring:?}").contains("finnhub-token"));
    }

    #[test]
    fn rotation_opens_old_values_and_reseals_with_the_new_key() {
        let old_key = generate_key();
        let old = Keyring::new("k1", &old_key, &[]).unwrap();
        let sealed = old.seal("n", &Secret::new("v")).unwrap();
        let new = Keyring::new(
            "k2",
            &generate_key(),
            &[Secret::new(format!("k1:{}", old_key.expose()))],
        )
        .unwrap();
        assert!(new.needs_reseal(&sealed));
        assert_eq!(new.open("n", &sealed).unwrap().expose(), "v");
        let resealed = new.seal("n", &new.open("n", &sealed).unwrap()).unwrap();
        assert_eq!(resealed.key_id, "k2");
        assert!(!new.needs_reseal(&resealed));
        let only_new = Keyring::new("k2", &generate_key(), &[]).unwrap();
        assert_eq!(
            only_new.open("n", &sealed),
            Err(CryptoError::UnknownKeyId("k1".into()))
        );
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let err = Keyring::new("k1", &Secret::new("c2hvcnQ="), &[]).unwrap_err();
        assert!(matches!(err, CryptoError::BadKey { .. }));
        assert!(!err.to_string().contains("c2hvcnQ"));
        assert!(matches!(
            Keyring::new("bad id", &generate_key(), &[]),
            Err(CryptoError::BadKeyId(_))
        ));
        let k = generate_key();
        assert!(matches!(
            Keyring::new("k1", &k, &[Secret::new(format!("k1:{}", k.expose()))]),
            Err(CryptoError::DuplicateKeyId(_))
        ));
        assert_eq!(
            Keyring::empty().seal("n", &Secret::new("v")),
            Err(CryptoError::NoKey)
        );
    }
}
