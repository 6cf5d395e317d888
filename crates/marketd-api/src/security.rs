//! Browser-facing hardening: security headers on every response (a strict
//! Content-Security-Policy per [`PageKind`], declared per route in the route
//! table; no sniffing, no framing, no referrer, HSTS when TLS is served
//! directly) and CORS by configuration.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// What the header middleware needs to know about the deployment.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// TLS is served by marketd itself: send `Strict-Transport-Security`.
    pub hsts: bool,
}

/// JSON and other API responses: nothing may load, nothing may frame.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Swagger UI and ReDoc (served from the binary): own scripts only; ReDoc
/// starts a worker from a blob and both set inline styles.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard (the app built from `web/`, served from the binary): its
/// own scripts and styles only, no inline script or style, no `eval`;
/// `connect-src 'self'` covers the REST API and the realtime WebSocket of
/// the same host.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; worker-src 'none'; \
object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The kind of page a route serves, declared beside it in the route table
/// (`crate::route_table`) and put in the request extensions there: it picks
/// the response's Content-Security-Policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageKind {
    /// JSON and other API responses (and anything undeclared): the strictest.
    #[default]
    Api,
    /// Swagger UI and ReDoc with their assets.
    Docs,
    /// The dashboard page.
    Dashboard,
}

impl PageKind {
    /// The Content-Security-Policy of this kind of page.
    pub fn csp(self) -> &'static str {
        match self {
            PageKind::Api => API_CSP,
            PageKind::Docs => DOCS_CSP,
            PageKind::Dashboard => DASHBOARD_CSP,
        }
    }
}

/// Adds the security headers to every response (errors included).
pub async fn headers(State(cfg): State<Arc<SecurityConfig>>, req: Request, next: Next) -> Response {
    let csp = req
        .extensions()
        .get::<PageKind>()
        .copied()
        .unwrap_or_default()
        .csp();
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, v: &'static str| {
        h.insert(name, HeaderValue::from_static(v));
    };
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    if cfg.hsts {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    res
}

/// CORS for `http.cors_allowed_origins`: none configured, no CORS headers
/// (browsers keep other origins out); `*`, any origin (never with
/// credentials); otherwise exactly the listed origins.
pub fn cors_layer(origins: &[String]) -> CorsLayer {
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            HeaderName::from_static(crate::auth::API_KEY_HEADER),
            HeaderName::from_static(crate::middleware::REQUEST_ID),
        ])
        .expose_headers([
            HeaderName::from_static(crate::middleware::REQUEST_ID),
            header::RETRY_AFTER,
        ])
        .max_age(Duration::from_secs(600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_csp_allows_its_own_scripts_only() {
        let csp = PageKind::Dashboard.csp();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(PageKind::default().csp(), API_CSP);
        assert_eq!(PageKind::Docs.csp(), DOCS_CSP);
    }
}
