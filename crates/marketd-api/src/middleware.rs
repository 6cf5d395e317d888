//! The outermost layer of every request: request id (`X-Request-Id` in and
//! out), HTTP metrics by route and status, one log line per request, and the
//! error shape for every 4xx/5xx, including those axum itself produces.

use crate::error::{ApiError, ErrorBody};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// Longest error detail returned (details may quote the caller's input).
const MAX_DETAIL_BYTES: usize = 512;

/// The request id, in request extensions for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Accepts a caller's id when it is short visible ASCII, else makes a UUIDv7.
fn request_id(req: &Request) -> Arc<str> {
    req.headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::now_v7().to_string()))
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| intern(p.as_str()))
        .unwrap_or("unmatched");
    let method = req.method().clone();
    let uri = req.uri().clone();
    req.extensions_mut().insert(RequestId(id.clone()));

    let mut res = next.run(req).await;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        res = render_error(res, &id).await;
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }

    let elapsed = started.elapsed();
    let status = res.status();
    let caller = res
        .extensions()
        .get::<crate::auth::Principal>()
        .map(|p| p.rate_limit_identity());
    let caller = caller.as_deref().unwrap_or("anonymous");
    let method_label = static_method(&method);
    metrics::counter!("marketd_http_requests_total", "method" => method_label, "route" => route, "status" => static_status(status)).increment(1);
    metrics::histogram!("marketd_http_request_duration_seconds", "method" => method_label, "route" => route).record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::error!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us = elapsed.as_micros() as u64, caller, "request failed");
    } else if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        // Changes are logged at info with the caller: an audit trail.
        tracing::info!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us = elapsed.as_micros() as u64, caller, "request");
    } else {
        tracing::debug!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us = elapsed.as_micros() as u64, caller, "request");
    }
    res
}

/// Route templates as `&'static str`, so metric labels cost no allocation
/// on the hot path. The set is bounded by the router's routes.
fn intern(route: &str) -> &'static str {
    static ROUTES: std::sync::OnceLock<std::sync::RwLock<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(r) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
        return r;
    }
    let mut w = routes.write().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = w.get(route) {
        return r;
    }
    let leaked: &'static str = Box::leak(route.to_string().into_boxed_str());
    w.insert(leaked);
    leaked
}

fn static_method(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn static_status(s: axum::http::StatusCode) -> &'static str {
    const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];
    match s.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        415 => "415",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        n => CODES[usize::from((n / 100).clamp(1, 6)) - 1],
    }
}

/// Renders the error shape. Our handlers leave an [`ApiError`] in the
/// response extensions; anything else (axum's own 404/405/413, timeouts) is
/// wrapped from its status and plain-text message.
async fn render_error(res: Response, id: &str) -> Response {
    let (mut parts, body) = res.into_parts();
    let err = match parts.extensions.remove::<ApiError>() {
        Some(e) => e,
        None => {
            let is_json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                // Already a JSON error body (e.g. from a nested service): keep it.
                return Response::from_parts(parts, body);
            }
            let text = axum::body::to_bytes(body, 16 * 1024)
                .await
                .ok()
                .and_then(|b| String::from_utf8(b.to_vec()).ok());
            ApiError::from_status(parts.status, text)
        }
    };
    if let Some(internal) = &err.internal {
        tracing::error!(request_id = %id, error_code = err.code, cause = %internal, "internal error");
    }
    // Details may quote the caller's input: bound them.
    let mut detail = err.detail;
    if detail.len() > MAX_DETAIL_BYTES {
        let mut cut = MAX_DETAIL_BYTES;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
        detail.push('…');
    }
    let body = ErrorBody {
        detail,
        error_code: err.code.to_string(),
        timestamp: marketd_model::time::to_rfc3339(marketd_model::time::now_ns()),
        request_id: id.to_string(),
    };
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut out = Response::from_parts(parts, Body::from(bytes));
    *out.status_mut() = err.status;
    out.into_response()
}
