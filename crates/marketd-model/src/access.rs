//! Access control vocabulary: roles, API key records and stored encrypted
//! credentials. The key material itself never appears here: a stored key is
//! known only by the SHA-256 hash of its text, and a credential only by its
//! ciphertext.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What a caller may do. Ordered: `Admin` > `Write` > `Read`, and a role
/// grants everything the lower ones do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read prices, bars, indicators and jobs.
    Read,
    /// Also create and delete polling jobs and other writes.
    Write,
    /// Also manage API keys and stored credentials.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Parses `read`, `write` or `admin` (case-insensitive).
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether this role may act where `needed` is required.
    pub fn grants(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| format!("unknown role {s:?}: expected read, write or admin"))
    }
}

/// An API key as stored and listed: everything but the key (whose SHA-256
/// hash the store keeps beside it, never returned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    /// Free text naming the holder (`ci`, `grafana`, ...).
    pub name: String,
    pub role: Role,
    /// The first characters of the key (`mkd_AbCd`), to recognize it in a list.
    pub prefix: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    /// Set once the key is revoked; a revoked key is refused at once by the
    /// instance that revoked it, by every other within `auth.key_cache_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    /// When the key stops working (ns since the epoch); `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl ApiKey {
    /// Neither revoked nor expired at `now` (ns).
    pub fn is_active_at(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Neither revoked nor expired now.
    pub fn is_active(&self) -> bool {
        self.is_active_at(crate::time::now_ns())
    }
}

/// A credential encrypted at rest (AEAD): the id of the key that sealed it,
/// the random nonce and the ciphertext (with its tag). Its name is bound to
/// the ciphertext as associated data, so a value moved to another name does
/// not decrypt.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// A stored credential: its name (`providers.finnhub.api_key`), sealed value
/// and times (ns since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub name: String,
    pub sealed: SealedSecret,
    pub created_at: i64,
    pub updated_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Admin.grants(Role::Write) && Role::Admin.grants(Role::Read));
        assert!(Role::Write.grants(Role::Read) && !Role::Write.grants(Role::Admin));
        assert!(!Role::Read.grants(Role::Write));
        assert_eq!(Role::parse(" WRITE "), Some(Role::Write));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }

    #[test]
    fn keys_are_active_until_revoked_or_expired() {
        let k = ApiKey {
            id: Uuid::nil(),
            name: "n".into(),
            role: Role::Read,
            prefix: "mkd_x".into(),
            created_at: 0,
            revoked_at: None,
            expires_at: Some(100),
        };
        assert!(k.is_active_at(99) && !k.is_active_at(100));
        let forever = ApiKey {
            expires_at: None,
            ..k.clone()
        };
        assert!(forever.is_active_at(i64::MAX));
        let revoked = ApiKey {
            revoked_at: Some(5),
            ..forever
        };
        assert!(!revoked.is_active_at(0));
    }
}
