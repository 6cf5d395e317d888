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
    let route: Arc<str> = req.extensions().get::<MatchedPath>().map(|p| Arc::from(p.as_str())).unwrap_or_else(|| Arc::from("unmatched"));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
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
    let labels = [("method", method.as_str().to_string()), ("route", route.to_string()), ("status", status.as_u16().to_string())];
    metrics::counter!("marketd_http_requests_total", &labels).increment(1);
    metrics::histogram!("marketd_http_request_duration_seconds", "method" => method.as_str().to_string(), "route" => route.to_string()).record(elapsed.as_secs_f64());
    if status.is_server_error() {
        tracing::error!(request_id = %id, %method, path, status = status.as_u16(), latency_us = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(request_id = %id, %method, path, status = status.as_u16(), latency_us = elapsed.as_micros() as u64, "request");
    }
    res
}

/// Renders the error shape. Our handlers leave an [`ApiError`] in the
/// response extensions; anything else (axum's own 404/405/413, timeouts) is
/// wrapped from its status and plain-text message.
async fn render_error(res: Response, id: &str) -> Response {
    let (mut parts, body) = res.into_parts();
    let err = match parts.extensions.remove::<ApiError>() {
        Some(e) => e,
        None => {
            let is_json = parts.headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                // Already a JSON error body (e.g. from a nested service): keep it.
                return Response::from_parts(parts, body);
            }
            let text = axum::body::to_bytes(body, 16 * 1024).await.ok().and_then(|b| String::from_utf8(b.to_vec()).ok());
            ApiError::from_status(parts.status, text)
        }
    };
    if let Some(internal) = &err.internal {
        tracing::error!(request_id = %id, error_code = err.code, cause = %internal, "internal error");
    }
    let body = ErrorBody {
        detail: err.detail,
        error_code: err.code.to_string(),
        timestamp: marketd_model::time::to_rfc3339(marketd_model::time::now_ns()),
        request_id: id.to_string(),
    };
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut out = Response::from_parts(parts, Body::from(bytes));
    *out.status_mut() = err.status;
    out.into_response()
}
