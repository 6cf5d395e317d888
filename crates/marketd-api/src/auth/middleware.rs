//! Authentication of every request: the [`Authenticator`] turns credentials
//! into a [`Principal`], and the [`authenticate`] middleware puts it in the
//! request extensions and enforces what the request's route needs
//! ([`request_access`]).

use super::config::{AuthConfig, AuthConfigError, MAX_KEY_CACHE_MS};
use super::jwt::JwtVerifier;
use super::policy::{Access, request_access};
use super::{API_KEY_HEADER, Principal, PrincipalKind};
use super::{KEY_PREFIX, hash_key};
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marketd_model::Role;
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;

/// Most keys the cache holds (only keys that verified enter it).
const KEY_CACHE_CAPACITY: u64 = 10_000;

/// Verifies credentials; shared by every request.
pub struct Authenticator {
    store: Arc<AnyStore>,
    require_read_key: bool,
    jwt: Option<JwtVerifier>,
    /// Keys that verified, by the SHA-256 of their text, for
    /// `auth.key_cache_ms` (`None` when 0): without it every request with a
    /// key is a store query. Only active keys enter it; a key's expiry is
    /// checked on every use, and a revocation through this instance empties
    /// it ([`Authenticator::forget_keys`]).
    verified: Option<moka::sync::Cache<String, Principal>>,
}

impl std::fmt::Debug for Authenticator {
    // By hand: the store and the JWT key are not for logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (read_key, jwt) = (self.require_read_key, self.jwt.is_some());
        write!(
            f,
            "Authenticator {{ require_read_key: {read_key}, jwt: {jwt} }}"
        )
    }
}

impl Authenticator {
    pub fn new(cfg: &AuthConfig, store: Arc<AnyStore>) -> Result<Self, AuthConfigError> {
        let jwt = if cfg.jwt.enabled {
            Some(JwtVerifier::new(&cfg.jwt)?)
        } else {
            None
        };
        if cfg.key_cache_ms > MAX_KEY_CACHE_MS {
            return Err(AuthConfigError::KeyCacheTooLong(cfg.key_cache_ms));
        }
        let verified = (cfg.key_cache_ms > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .time_to_live(Duration::from_millis(cfg.key_cache_ms))
                .build()
        });
        Ok(Authenticator {
            store,
            require_read_key: cfg.require_read_key,
            jwt,
            verified,
        })
    }

    /// Forgets every verified key, so that the next request with any key
    /// reads the store: called when a key is revoked through this instance.
    pub fn forget_keys(&self) {
        if let Some(cache) = &self.verified {
            cache.invalidate_all();
        }
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
            let Some(jwt) = &self.jwt else {
                return Err(unauthorized("bearer tokens are not enabled (auth.jwt)"));
            };
            return jwt.principal(token.trim()).map(Some);
        }
        Ok(None)
    }

    pub(crate) async fn key_principal(&self, key: &str) -> Result<Principal, ApiError> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Err(invalid_key());
        }
        let hash = hash_key(key);
        let now = marketd_model::time::now_ns();
        if let Some(p) = self.verified.as_ref().and_then(|c| c.get(&hash))
            && p.expires_at.is_none_or(|e| e > now)
        {
            return Ok(p);
        }
        let found = self
            .store
            .api_key_by_hash(&hash)
            .await
            .map_err(ApiError::internal)?;
        match found {
            Some(k) if k.is_active_at(now) => {
                let p = Principal {
                    kind: PrincipalKind::ApiKey,
                    id: k.id.to_string().into(),
                    issuer: "".into(),
                    role: k.role,
                    expires_at: k.expires_at,
                };
                if let Some(cache) = &self.verified {
                    cache.insert(hash, p.clone());
                }
                Ok(p)
            }
            _ => {
                // Expired or revoked since it was cached.
                if let Some(cache) = &self.verified {
                    cache.invalidate(&hash);
                }
                Err(invalid_key())
            }
        }
    }

    /// Whether reads need credentials (`auth.require_read_key`).
    pub fn reads_need_key(&self) -> bool {
        self.require_read_key
    }

    /// The role a request needing `access` needs, `None` when it is open
    /// (reads are open unless `auth.require_read_key`).
    pub fn required_role(&self, access: Access) -> Option<Role> {
        access.required_role(self.require_read_key)
    }
}

fn is_websocket_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// An offered `Sec-WebSocket-Protocol` entry that is an API key.
fn protocol_key(req: &Request) -> Option<String> {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find(|p| p.starts_with(KEY_PREFIX))
        .map(str::to_string)
}

/// The `api_key` query parameter, decoded.
fn query_key(req: &Request) -> Option<String> {
    let query = req.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned())
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

/// The middleware: authenticates (401 for credentials that do not verify,
/// on any route), stores the [`Principal`] in the request extensions, and
/// enforces the role the request's route declares (fail closed where the
/// route table declares nothing).
pub async fn authenticate(
    State(auth): State<Arc<Authenticator>>,
    mut req: Request,
    next: Next,
) -> Response {
    let principal = match auth.principal(req.headers()).await {
        // A browser cannot set headers on a WebSocket upgrade: there, and
        // only there, the key may come as the `api_key` query parameter
        // (request logs carry the path only, never the query) or as one of
        // the offered subprotocols (the server answers with `marketd.v1`,
        // never the key).
        Ok(None) if is_websocket_upgrade(&req) => {
            match query_key(&req).or_else(|| protocol_key(&req)) {
                Some(key) => auth.key_principal(&key).await.map(Some),
                None => Ok(None),
            }
        }
        other => other,
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!("marketd_auth_failures_total", "reason" => e.code).increment(1);
            return e.into_response();
        }
    };
    if let Some(needed) = auth.required_role(request_access(&req)) {
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
                    HeaderValue::from_static("Bearer, ApiKey"),
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
