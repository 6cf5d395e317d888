//! Rate limits of the REST API (`[rate_limit]`): per client, on the shared
//! limiter of the cache backend, so with `cache.url = "redis://…"` a client
//! is limited as one across every API instance.
//!
//! A client is its API key or token subject when the request carries valid
//! credentials (the auth layer, which runs first, puts the
//! [`Principal`](crate::auth::Principal) in the request's extensions),
//! otherwise its address: the peer address, or the last hop of `X-Forwarded-For` when
//! `trust_forwarded_for` is set (behind a load balancer that appends it).
//! Routes fall in groups (`read`, `write`, `admin`) by the access their
//! declaration in the route table gives them; a group with its own
//! limits in `[rate_limit.groups.<group>]` has its own budget, the others
//! share the default one. Health, metrics, docs and the dashboard are not
//! limited (probes and scrapes must never be refused).
//!
//! Refusals are 429 in the error shape with `Retry-After` (seconds, rounded
//! up), counted in `marketd_rate_limited_total`. When the limiter's backend
//! fails the request is let through and the failure logged and counted
//! (`marketd_rate_limiter_errors_total`): a Redis outage must not take the
//! API down with it.

use crate::AppState;
use crate::auth::{Access, Declared};
use crate::error::ApiError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use marketd_cache::{Quota, RateLimit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// `[rate_limit]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Whether `/api/v1` requests are limited at all.
    pub enabled: bool,
    /// Sustained requests per second of a client without an API key (per address).
    pub anonymous_per_second: f64,
    /// Requests a client without a key may make at once.
    pub anonymous_burst: u32,
    /// Sustained requests per second of one API key.
    pub key_per_second: f64,
    /// Requests one API key may make at once.
    pub key_burst: u32,
    /// Take the client address from the last `X-Forwarded-For` hop (only
    /// behind a proxy that sets it; otherwise clients could pick their own).
    pub trust_forwarded_for: bool,
    /// Limits of a route group (`read`, `write`, `admin`) with its own budget.
    pub groups: BTreeMap<String, GroupLimits>,
}

/// Limits of one route group (`[rate_limit.groups.write]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupLimits {
    pub anonymous_per_second: f64,
    pub anonymous_burst: u32,
    pub key_per_second: f64,
    pub key_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            anonymous_per_second: 100.0,
            anonymous_burst: 200,
            key_per_second: 1_000.0,
            key_burst: 2_000,
            trust_forwarded_for: false,
            groups: BTreeMap::new(),
        }
    }
}

/// Route groups a limit can be set for.
pub const GROUPS: [&str; 3] = ["read", "write", "admin"];

impl RateLimitConfig {
    /// Checks values a limiter cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        let check = |name: &str, per_second: f64, burst: u32| {
            if !per_second.is_finite() || per_second <= 0.0 || per_second > 1_000_000.0 {
                return Err(format!("{name}_per_second must be in (0, 1000000]"));
            }
            if burst == 0 {
                return Err(format!("{name}_burst must be at least 1"));
            }
            Ok(())
        };
        check(
            "rate_limit.anonymous",
            self.anonymous_per_second,
            self.anonymous_burst,
        )?;
        check("rate_limit.key", self.key_per_second, self.key_burst)?;
        for (group, g) in &self.groups {
            if !GROUPS.contains(&group.as_str()) {
                return Err(format!(
                    "rate_limit.groups.{group}: unknown route group (expected one of {})",
                    GROUPS.join(", ")
                ));
            }
            check(
                &format!("rate_limit.groups.{group}.anonymous"),
                g.anonymous_per_second,
                g.anonymous_burst,
            )?;
            check(
                &format!("rate_limit.groups.{group}.key"),
                g.key_per_second,
                g.key_burst,
            )?;
        }
        Ok(())
    }

    fn quota(&self, group: &str, keyed: bool) -> (Quota, bool) {
        let (per_second, burst, own) = match self.groups.get(group) {
            Some(g) if keyed => (g.key_per_second, g.key_burst, true),
            Some(g) => (g.anonymous_per_second, g.anonymous_burst, true),
            None if keyed => (self.key_per_second, self.key_burst, false),
            None => (self.anonymous_per_second, self.anonymous_burst, false),
        };
        (Quota { per_second, burst }, own)
    }
}

/// The route group of a request, from what its route declares (`None`: not
/// limited). Open routes (health, metrics, docs, dashboard) and requests the
/// route table does not know (answered 404) are not limited.
fn group_of(declared: Option<&Declared>) -> Option<&'static str> {
    let d = declared.filter(|d| !d.open_route)?;
    Some(match d.access {
        Access::Open | Access::Read => "read",
        Access::Write => "write",
        Access::Admin => "admin",
    })
}

/// The client address of a request.
#[cfg(test)]
fn client_addr(req: &Request, trust_forwarded_for: bool) -> String {
    client_addr_of(
        req.headers(),
        req.extensions().get::<ConnectInfo<SocketAddr>>(),
        trust_forwarded_for,
    )
}

/// The client's address: the last `X-Forwarded-For` entry when the proxy
/// is trusted, else the peer's.
pub(crate) fn client_addr_of(
    headers: &axum::http::HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded_for: bool,
) -> String {
    match client_ip(headers, peer, trust_forwarded_for) {
        Some(ip) => ip.to_string(),
        None => "unknown".into(),
    }
}

/// [`client_addr_of`] before it is written out (`None`: "unknown").
fn client_ip(
    headers: &axum::http::HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded_for: bool,
) -> Option<std::net::IpAddr> {
    if trust_forwarded_for
        && let Some(last) = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|s| !s.is_empty())
        && let Ok(ip) = last.parse::<std::net::IpAddr>()
    {
        return Some(ip);
    }
    peer.map(|c| c.0.ip())
}

/// A limiter key written on the stack: every request builds one, and an
/// address or key id fits, so the common path allocates nothing (a longer
/// key, e.g. a token's issuer and subject, spills to the heap).
struct Bucket {
    buf: [u8; 112],
    len: usize,
    spill: Option<String>,
}

impl Bucket {
    fn new() -> Self {
        Bucket {
            buf: [0; 112],
            len: 0,
            spill: None,
        }
    }

    fn as_str(&self) -> &str {
        match &self.spill {
            Some(s) => s,
            // Only whole `&str`s are copied in, so the bytes are UTF-8.
            None => std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default(),
        }
    }
}

impl std::fmt::Write for Bucket {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if let Some(spill) = &mut self.spill {
            spill.push_str(s);
        } else if self.len + s.len() <= self.buf.len() {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut spill = String::with_capacity(self.len + s.len() + 32);
            spill.push_str(self.as_str());
            spill.push_str(s);
            self.spill = Some(spill);
        }
        Ok(())
    }
}

/// The limiter key of a request: `[group:]key:<id>`, `[group:]jwt:<iss>:<sub>`
/// or `[group:]ip:<address>` (the group only when it has its own budget).
fn bucket_of(req: &Request, group: &str, cfg: &RateLimitConfig) -> (Bucket, Quota) {
    use std::fmt::Write;
    let principal = req.extensions().get::<crate::auth::Principal>();
    let (quota, own_budget) = cfg.quota(group, principal.is_some());
    let mut bucket = Bucket::new();
    if own_budget {
        let _ = write!(bucket, "{group}:");
    }
    match principal {
        Some(p) => {
            let _ = p.write_identity(&mut bucket);
        }
        None => {
            let ip = client_ip(
                req.headers(),
                req.extensions().get::<ConnectInfo<SocketAddr>>(),
                cfg.trust_forwarded_for,
            );
            let _ = match ip {
                Some(ip) => write!(bucket, "ip:{ip}"),
                None => write!(bucket, "ip:unknown"),
            };
        }
    }
    (bucket, quota)
}

/// What the limiter needs, shared behind one `Arc` (the middleware's state
/// is cloned for every request).
#[derive(Debug)]
pub struct Limiter {
    cfg: RateLimitConfig,
    cache: marketd_cache::AnyCache,
}

impl Limiter {
    pub fn new(state: &AppState) -> std::sync::Arc<Limiter> {
        std::sync::Arc::new(Limiter {
            cfg: state.cfg.rate_limit.clone(),
            cache: state.backends.cache.clone(),
        })
    }
}

/// Middleware inside `authenticate` (it reads the caller's `Principal`) and
/// inside the route table's `declare` (it reads the route's [`Declared`]).
pub async fn limit(
    State(limiter): State<std::sync::Arc<Limiter>>,
    req: Request,
    next: Next,
) -> Response {
    let cfg = &limiter.cfg;
    // A WebSocket upgrade opens a long connection, not a request per read:
    // the realtime API limits connections per client and messages per
    // connection itself (`[realtime]`).
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let group = group_of(req.extensions().get::<Declared>()).filter(|_| !upgrade);
    let Some(group) = group.filter(|_| cfg.enabled) else {
        return next.run(req).await;
    };
    let (bucket, quota) = bucket_of(&req, group, cfg);
    match limiter.cache.check(bucket.as_str(), quota).await {
        Ok(d) if d.allowed => {
            let mut res = next.run(req).await;
            res.headers_mut()
                .insert("ratelimit-limit", HeaderValue::from(quota.burst));
            res.headers_mut()
                .insert("ratelimit-remaining", HeaderValue::from(d.remaining));
            res
        }
        Ok(d) => {
            metrics::counter!("marketd_rate_limited_total", "group" => group).increment(1);
            let secs = d.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut err = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "rate limit of {} requests/s (burst {}) exceeded; retry after {secs} s",
                    quota.per_second, quota.burst
                ),
            );
            err.retry_after = Some(secs);
            let mut res = err.into_response();
            res.headers_mut()
                .insert("ratelimit-limit", HeaderValue::from(quota.burst));
            res.headers_mut()
                .insert("ratelimit-remaining", HeaderValue::from(0u32));
            res
        }
        Err(e) => {
            metrics::counter!("marketd_rate_limiter_errors_total").increment(1);
            tracing::warn!(error = %e, "rate limiter unavailable; request let through");
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_declared_access() {
        let group = |access, open_route| group_of(Some(&Declared { access, open_route }));
        assert_eq!(group(Access::Read, false), Some("read"));
        assert_eq!(
            group(Access::Open, false),
            Some("read"),
            "OPTIONS on an API route"
        );
        assert_eq!(group(Access::Write, false), Some("write"));
        assert_eq!(group(Access::Admin, false), Some("admin"));
        assert_eq!(group(Access::Write, true), None, "POST to an open route");
        assert_eq!(group_of(None), None, "not a route");
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = RateLimitConfig::default();
        assert!(c.validate().is_ok());
        c.anonymous_burst = 0;
        assert!(
            c.validate()
                .unwrap_err()
                .contains("rate_limit.anonymous_burst")
        );
        let mut c = RateLimitConfig::default();
        c.groups.insert(
            "bulk".into(),
            GroupLimits {
                anonymous_per_second: 1.0,
                anonymous_burst: 1,
                key_per_second: 1.0,
                key_burst: 1,
            },
        );
        assert!(c.validate().unwrap_err().contains("rate_limit.groups.bulk"));
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut req = Request::new(axum::body::Body::empty());
        req.headers_mut()
            .append("x-forwarded-for", "1.2.3.4, 10.0.0.7".parse().unwrap());
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert_eq!(client_addr(&req, true), "10.0.0.7");
        assert_eq!(client_addr(&req, false), "127.0.0.1");
    }

    #[test]
    fn buckets_name_the_group_and_the_client() {
        let mut cfg = RateLimitConfig::default();
        cfg.groups.insert(
            "write".into(),
            GroupLimits {
                anonymous_per_second: 5.0,
                anonymous_burst: 10,
                key_per_second: 50.0,
                key_burst: 100,
            },
        );
        let mut req = Request::new(axum::body::Body::empty());
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([10, 1, 2, 3], 9))));
        let (b, q) = bucket_of(&req, "read", &cfg);
        assert_eq!((b.as_str(), q.burst), ("ip:10.1.2.3", 200));
        let (b, q) = bucket_of(&req, "write", &cfg);
        assert_eq!((b.as_str(), q.burst), ("write:ip:10.1.2.3", 10));
        let long = "s".repeat(300);
        req.extensions_mut().insert(crate::auth::Principal {
            kind: crate::auth::PrincipalKind::Jwt,
            id: long.clone().into(),
            issuer: "idp".into(),
            role: marketd_model::Role::Read,
            expires_at: None,
        });
        let (b, q) = bucket_of(&req, "write", &cfg);
        assert_eq!(
            b.as_str(),
            format!("write:jwt:idp:{long}"),
            "spills to the heap"
        );
        assert_eq!(q.burst, 100);
        let mut unknown = Request::new(axum::body::Body::empty());
        unknown.extensions_mut().insert(());
        assert_eq!(bucket_of(&unknown, "read", &cfg).0.as_str(), "ip:unknown");
    }
}
