//! Authentication and authorization.
//!
//! - Credentials: an API key in `X-API-Key` (only its SHA-256 is stored; it
//!   is looked up in the store on every request, so a revocation holds at once
//!   on every instance) or, when `[auth.jwt]` is enabled, a bearer JWT
//!   (HS256 or RS256; signature, issuer, audience and expiry checked; the role
//!   read from a configurable claim).
//! - [`authenticate`] (a middleware) turns valid credentials into a
//!   [`Principal`] in the request extensions, answers 401 for credentials that
//!   do not verify, and 401/403 when the route needs a role the caller lacks
//!   ([`required_role`]: operations routes open; `GET`/`HEAD` under `/api/v1`
//!   need `read` when `auth.require_read_key`; every other method needs
//!   `write`; key and credential management needs `admin`).
//! - No credentials: no `Principal` (an anonymous caller).

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use marketd_model::time::now_ns;
use marketd_model::{ApiKey, Role, Secret};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use uuid::Uuid;

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Every key starts with this, so leaked keys are easy to find by scanners.
pub const KEY_PREFIX: &str = "mkd_";
/// Random bytes in a key (256 bits).
const KEY_RANDOM_BYTES: usize = 32;
/// Characters of a key kept (in clear) to recognise it in a list.
const SHOWN_PREFIX_CHARS: usize = 12;

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
    /// `[auth.jwt]`: bearer tokens.
    pub jwt: JwtConfig,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            require_read_key: false,
            bootstrap_admin_key: true,
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
}

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
    /// The API key's id, or the token's `sub`.
    pub id: String,
    /// The token's `iss` (empty for API keys).
    pub issuer: String,
    pub role: Role,
}

impl Principal {
    /// A stable identity for per-caller limits and audit logs: `key:<uuid>`
    /// for API keys, `jwt:<iss>:<sub>` for tokens. Never contains the secret.
    pub fn rate_limit_identity(&self) -> String {
        match self.kind {
            PrincipalKind::ApiKey => format!("key:{}", self.id),
            PrincipalKind::Jwt => format!("jwt:{}:{}", self.issuer, self.id),
        }
    }
}

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

struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    role_claim: String,
}

/// Verifies credentials; shared by every request.
pub struct Authenticator {
    store: Arc<AnyStore>,
    require_read_key: bool,
    jwt: Option<JwtVerifier>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("require_read_key", &self.require_read_key)
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig, store: Arc<AnyStore>) -> Result<Self, AuthConfigError> {
        let jwt = if cfg.jwt.enabled {
            Some(Self::jwt_verifier(&cfg.jwt)?)
        } else {
            None
        };
        Ok(Authenticator {
            store,
            require_read_key: cfg.require_read_key,
            jwt,
        })
    }

    fn jwt_verifier(cfg: &JwtConfig) -> Result<JwtVerifier, AuthConfigError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let err = |m: String| AuthConfigError::Jwt(m);
        if cfg.issuer.trim().is_empty() || cfg.audience.trim().is_empty() {
            return Err(err("issuer and audience must be set when enabled".into()));
        }
        if cfg.role_claim.trim().is_empty() {
            return Err(err("role_claim must not be empty".into()));
        }
        let (algorithm, key) = match cfg.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => {
                let secret = cfg
                    .secret
                    .as_ref()
                    .filter(|s| s.expose().len() >= 32)
                    .ok_or_else(|| {
                        err("secret of at least 32 bytes is required for HS256".into())
                    })?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.expose().as_bytes()),
                )
            }
            "RS256" => {
                let path = cfg
                    .public_key_path
                    .as_ref()
                    .ok_or_else(|| err("public_key_path is required for RS256".into()))?;
                let pem = std::fs::read(path)
                    .map_err(|e| err(format!("public_key_path {}: {e}", path.display())))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    err(format!(
                        "public_key_path {}: not an RSA public key in PEM: {e}",
                        path.display()
                    ))
                })?;
                (Algorithm::RS256, key)
            }
            other => {
                return Err(err(format!(
                    "algorithm {other:?} is not supported (HS256 or RS256)"
                )));
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[cfg.issuer.trim()]);
        validation.set_audience(&[cfg.audience.trim()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = cfg.leeway_s;
        validation.validate_nbf = true;
        Ok(JwtVerifier {
            key,
            validation,
            role_claim: cfg.role_claim.trim().to_string(),
        })
    }

    /// The caller behind `req`'s credentials: `Ok(None)` without
    /// credentials, 401 when they do not verify.
    pub async fn principal(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<Principal>, ApiError> {
        if let Some(v) = headers.get(API_KEY_HEADER) {
            let key = v.to_str().map_err(|_| invalid_key())?.trim();
            return self.key_principal(key).await.map(Some);
        }
        if let Some(v) = headers.get(header::AUTHORIZATION) {
            let text = v
                .to_str()
                .map_err(|_| unauthorized("malformed Authorization header"))?;
            let Some(token) = text
                .strip_prefix("Bearer ")
                .or_else(|| text.strip_prefix("bearer "))
            else {
                return Err(unauthorized(
                    "unsupported Authorization scheme: use Bearer or X-API-Key",
                ));
            };
            return self.jwt_principal(token.trim()).map(Some);
        }
        Ok(None)
    }

    async fn key_principal(&self, key: &str) -> Result<Principal, ApiError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Err(invalid_key());
        }
        let found = self
            .store
            .api_key_by_hash(&hash_key(key))
            .await
            .map_err(ApiError::internal)?;
        match found {
            Some(k) if k.is_active() => Ok(Principal {
                kind: PrincipalKind::ApiKey,
                id: k.id.to_string(),
                issuer: String::new(),
                role: k.role,
            }),
            _ => Err(invalid_key()),
        }
    }

    fn jwt_principal(&self, token: &str) -> Result<Principal, ApiError> {
        let Some(v) = &self.jwt else {
            return Err(unauthorized("bearer tokens are not enabled (auth.jwt)"));
        };
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &v.key,
            &v.validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not valid yet",
                ErrorKind::InvalidIssuer => "token issuer not accepted",
                ErrorKind::InvalidAudience => "token audience not accepted",
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    "token signature invalid"
                }
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token invalid",
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", why)
        })?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", "token lacks sub")
            })?;
        let iss = claims.get("iss").and_then(|s| s.as_str()).unwrap_or("");
        let role = match claims.get(&v.role_claim) {
            Some(serde_json::Value::String(s)) => Role::parse(s),
            Some(serde_json::Value::Array(xs)) => xs
                .iter()
                .filter_map(|x| x.as_str().and_then(Role::parse))
                .max(),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("token has no known role in claim {:?}", v.role_claim),
            )
        })?;
        Ok(Principal {
            kind: PrincipalKind::Jwt,
            id: sub.chars().take(256).collect(),
            issuer: iss.chars().take(256).collect(),
            role,
        })
    }

    /// The role `method path` needs, `None` when the route is open.
    pub fn required_role(&self, method: &Method, path: &str) -> Option<Role> {
        required_role(method, path, self.require_read_key)
    }
}

/// The access policy: reads of operations routes, the dashboard and docs are
/// open; under `/api/v1`, `GET`/`HEAD` are reads (open unless
/// `require_read_key`), key and credential management needs `admin`, and
/// every other method is a write, as is any unsafe method elsewhere (fail
/// closed: a new write route is protected without being listed).
pub fn required_role(method: &Method, path: &str, require_read_key: bool) -> Option<Role> {
    let safe = *method == Method::GET || *method == Method::HEAD || *method == Method::OPTIONS;
    let Some(rest) = path.strip_prefix("/api/v1") else {
        // Outside the API only reads exist; anything else fails closed.
        return (!safe).then_some(Role::Write);
    };
    let admin = ["/api-keys", "/credentials"]
        .iter()
        .any(|p| rest == *p || rest.starts_with(&format!("{p}/")));
    if admin {
        return Some(Role::Admin);
    }
    if *method == Method::OPTIONS {
        return None;
    }
    if *method == Method::GET || *method == Method::HEAD {
        return require_read_key.then_some(Role::Read);
    }
    Some(Role::Write)
}

fn unauthorized(detail: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", detail)
}

fn invalid_key() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "INVALID_API_KEY",
        "API key invalid or revoked",
    )
}

/// The middleware: authenticates, stores the [`Principal`] in the request
/// extensions, and enforces [`required_role`].
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    use axum::response::IntoResponse;
    let principal = match auth.principal(req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!("marketd_auth_failures_total", "reason" => e.code).increment(1);
            return e.into_response();
        }
    };
    if let Some(needed) = auth.required_role(req.method(), req.uri().path()) {
        match &principal {
            None => {
                metrics::counter!("marketd_auth_failures_total", "reason" => "MISSING_CREDENTIALS")
                    .increment(1);
                let mut res = unauthorized(format!(
                    "this route needs role {needed}: send an API key in X-API-Key or a bearer token"
                ))
                .into_response();
                res.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer, ApiKey"),
                );
                return res;
            }
            Some(p) if !p.role.grants(needed) => {
                metrics::counter!("marketd_auth_failures_total", "reason" => "FORBIDDEN")
                    .increment(1);
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                    format!("role {} may not do this: it needs {needed}", p.role),
                )
                .into_response();
            }
            Some(_) => {}
        }
    }
    let Some(p) = principal else {
        return next.run(req).await;
    };
    req.extensions_mut().insert(p.clone());
    let mut res = next.run(req).await;
    // For the request log line (who did it), written by request_context.
    res.extensions_mut().insert(p);
    res
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
    fn policy() {
        let g = Method::GET;
        let p = Method::POST;
        let d = Method::DELETE;
        assert_eq!(required_role(&g, "/health/ready", true), None);
        assert_eq!(required_role(&g, "/", true), None);
        assert_eq!(required_role(&p, "/health/live", false), Some(Role::Write));
        assert_eq!(
            required_role(&p, "//api/v1/prices/poll", false),
            Some(Role::Write)
        );
        assert_eq!(required_role(&g, "/api/v1/prices/latest", false), None);
        assert_eq!(
            required_role(&g, "/api/v1/prices/latest", true),
            Some(Role::Read)
        );
        assert_eq!(
            required_role(&p, "/api/v1/prices/poll", false),
            Some(Role::Write)
        );
        assert_eq!(
            required_role(&d, "/api/v1/polling-jobs/x", false),
            Some(Role::Write)
        );
        assert_eq!(
            required_role(&g, "/api/v1/api-keys", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&d, "/api/v1/api-keys/x", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&g, "/api/v1/credentials", false),
            Some(Role::Admin)
        );
        assert_eq!(
            required_role(&g, "/api/v1/api-keysx", false),
            None,
            "a prefix match is not enough"
        );
        let p = Principal {
            kind: PrincipalKind::Jwt,
            id: "alice".into(),
            issuer: "idp".into(),
            role: Role::Read,
        };
        assert_eq!(p.rate_limit_identity(), "jwt:idp:alice");
    }
}
