//! `[auth]` and `[auth.jwt]`: the configuration of authentication, and the
//! error a configuration that cannot work is refused with at start.

use marketd_model::Secret;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[auth]`: who may do what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Reads (`GET` under `/api/v1`) need a key or token with role `read`;
    /// when false they are open to anonymous callers.
    pub require_read_key: bool,
    /// On a start with no API key in the store, create an admin key and print
    /// it once.
    pub bootstrap_admin_key: bool,
    /// How long, in milliseconds, a verified API key is trusted without
    /// reading the store again. The instance that revokes a key forgets it at
    /// once; another instance (or a revocation by the `keys` command) takes
    /// effect within this long. Expiry is checked on every request. 0: read
    /// the store on every request.
    pub key_cache_ms: u64,
    /// `[auth.jwt]`: bearer tokens.
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            require_read_key: false,
            bootstrap_admin_key: true,
            key_cache_ms: 1000,
            jwt: JwtConfig::default(),
        }
    }
}

/// `[auth.jwt]`: optional bearer JWTs (`Authorization: Bearer …`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    pub enabled: bool,
    /// `HS256` (shared `secret`) or `RS256` (`public_key_path`).
    pub algorithm: String,
    /// HS256 shared secret (at least 32 bytes); prefer `MARKETD__AUTH__JWT__SECRET`.
    pub secret: Option<Secret>,
    /// RS256: the issuer's RSA public key, PEM.
    pub public_key_path: Option<PathBuf>,
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// Claim holding the role (`read`, `write`, `admin`; a string or a list,
    /// the highest known one wins).
    pub role_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`, seconds.
    pub leeway_s: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            enabled: false,
            algorithm: "HS256".into(),
            secret: None,
            public_key_path: None,
            issuer: String::new(),
            audience: "marketd".into(),
            role_claim: "role".into(),
            leeway_s: 30,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("auth.jwt: {0}")]
    Jwt(String),
    #[error(
        "auth.key_cache_ms: {0} is over the longest revocation delay allowed ({MAX_KEY_CACHE_MS} ms)"
    )]
    KeyCacheTooLong(u64),
}

/// Longest `auth.key_cache_ms`: a revoked key must stop working within a minute
/// on every instance.
pub const MAX_KEY_CACHE_MS: u64 = 60_000;
