//! Authentication and authorization.
//!
//! - [`config`]: `[auth]` and `[auth.jwt]`.
//! - Credentials: an API key in `X-API-Key` (only its SHA-256 is stored; it
//!   is looked up in the store on every request, so a revocation holds at once
//!   on every instance) or, when `[auth.jwt]` is enabled, a bearer JWT
//!   ([`jwt`]: HS256 or RS256; signature, issuer, audience and expiry checked;
//!   the role read from a configurable claim).
//! - [`policy`]: what a request needs ([`Access`]), declared per route and
//!   method in the route table beside the handler; anything undeclared fails
//!   closed (unsafe methods need `write`).
//! - [`authenticate`] (a middleware, in [`middleware`]) turns valid
//!   credentials into a [`Principal`] in the request extensions, answers 401
//!   for credentials that do not verify, and 401/403 when the route needs a
//!   role the caller lacks.
//! - No credentials: no `Principal` (an anonymous caller).
//! - Keys themselves (making, hashing, storing) belong to the access service
//!   (`marketd_engine::services::access`).

pub mod config;
mod jwt;
pub mod middleware;
pub mod policy;

pub use config::{AuthConfig, AuthConfigError, JwtConfig};
/// The key lifecycle lives in the access service; these are its names the
/// authenticator uses.
pub use marketd_engine::services::access::{KEY_PREFIX, hash_key};
pub use middleware::{Authenticator, authenticate};
pub use policy::{Access, Declared};

use marketd_model::Role;
use serde::Serialize;
use std::sync::Arc;

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    ApiKey,
    Jwt,
}

/// An authenticated caller, in the request extensions of every request that
/// carried valid credentials (absent for anonymous callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The API key's id, or the token's `sub` (shared: a principal is cloned
    /// into the request and the response of every authenticated request).
    pub id: Arc<str>,
    /// The token's `iss` (empty for API keys).
    pub issuer: Arc<str>,
    pub role: Role,
    /// When the credential stops being valid (ns since the epoch): the
    /// token's `exp` plus the configured leeway, the key's expiry. Realtime
    /// connections made with it close then.
    pub expires_at: Option<i64>,
}

impl Principal {
    /// A stable identity for per-caller limits and audit logs: `key:<uuid>`
    /// for API keys, `jwt:<iss>:<sub>` for tokens. Never contains the secret.
    pub fn rate_limit_identity(&self) -> String {
        let mut s = String::new();
        let _ = self.write_identity(&mut s);
        s
    }

    /// [`Self::rate_limit_identity`] written into `w`, for the rate limiter
    /// (which builds its key on the stack, without allocating).
    pub fn write_identity(&self, w: &mut impl std::fmt::Write) -> std::fmt::Result {
        match self.kind {
            PrincipalKind::ApiKey => write!(w, "key:{}", self.id),
            PrincipalKind::Jwt => write!(w, "jwt:{}:{}", self.issuer, self.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_the_caller_not_the_secret() {
        let p = Principal {
            kind: PrincipalKind::Jwt,
            id: "alice".into(),
            issuer: "idp".into(),
            role: Role::Read,
            expires_at: None,
        };
        assert_eq!(p.rate_limit_identity(), "jwt:idp:alice");
    }
}
