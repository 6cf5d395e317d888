//! The outermost layer of every request: request id (`X-Request-Id` in and
//! out), HTTP metrics by route and status, one log line per request, and the
//! error shape for every 4xx/5xx, including those axum itself produces.

use crate::error::{ApiError, ErrorBody};
use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

pub const REQUEST_ID: &str = "x-request-id";

/// Longest error detail returned (details may quote the caller's input).
const MAX_DETAIL_BYTES: usize = 512;

/// The request id, in request extensions for handlers.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Accepts a caller's id when it is short visible ASCII, else makes a UUIDv7
/// (formatted on the stack: the id costs one allocation, shared by the
/// request extensions and the response header).
fn request_id(req: &Request) -> Arc<str> {
    match req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
    {
        Some(s) => Arc::from(s),
        None => {
            let mut buf = uuid::Uuid::encode_buffer();
            Arc::from(&*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf))
        }
    }
}

/// The `X-Request-Id` response header: the id's own bytes, not a copy.
fn id_header(id: &Arc<str>) -> Option<HeaderValue> {
    struct Owner(Arc<str>);
    impl AsRef<[u8]> for Owner {
        fn as_ref(&self) -> &[u8] {
            self.0.as_bytes()
        }
    }
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(Owner(id.clone()))).ok()
}

pub async fn request_context(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| RouteMetrics::of(p.as_str()));
    let method = req.method().clone();
    let uri = req.uri().clone();
    req.extensions_mut().insert(RequestId(id.clone()));

    let mut res = next.run(req).await;
    let status = res.status();
    if status.is_client_error() || status.is_server_error() {
        res = render_error(res, &id).await;
    }
    if let Some(v) = id_header(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }

    let elapsed = started.elapsed();
    let status = res.status();
    let method_index = method_index(&method);
    match route {
        Some(r) => {
            r.count(method_index, status);
            r.record(method_index, elapsed.as_secs_f64());
        }
        None => {
            let (method, route) = (METHODS[method_index], "unmatched");
            metrics::counter!("marketd_http_requests_total", "method" => method, "route" => route, "status" => static_status(status)).increment(1);
            metrics::histogram!("marketd_http_request_duration_seconds", "method" => method, "route" => route).record(elapsed.as_secs_f64());
        }
    }
    // The caller (an allocation) only for a line that is written.
    let caller = || {
        res.extensions()
            .get::<crate::auth::Principal>()
            .map_or_else(|| "anonymous".to_string(), |p| p.rate_limit_identity())
    };
    let latency_us = elapsed.as_micros() as u64;
    if status.is_server_error() {
        let caller = caller();
        tracing::error!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us, caller, "request failed");
    } else if method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        // Changes are logged at info with the caller: an audit trail.
        if tracing::enabled!(tracing::Level::INFO) {
            let caller = caller();
            tracing::info!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us, caller, "request");
        }
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        let caller = caller();
        tracing::debug!(request_id = %id, %method, path = uri.path(), status = status.as_u16(), latency_us, caller, "request");
    }
    res
}

/// Set by [`crate::metrics_handle`] once the Prometheus recorder is
/// installed: handles resolved before that would stay no-ops, so they are
/// only kept from then on.
pub(crate) static RECORDER_INSTALLED: AtomicBool = AtomicBool::new(false);

/// The metric handles of one route, resolved once (per method, and per
/// status of each method) and kept for the process's life: a request then
/// increments an atomic instead of building and hashing a labelled key.
/// The set is bounded by the router's routes.
struct RouteMetrics {
    route: &'static str,
    duration: [OnceLock<Histogram>; METHODS.len()],
    requests: [[OnceLock<Counter>; STATUSES.len()]; METHODS.len()],
}

impl RouteMetrics {
    /// The route's handles, by its template.
    fn of(route: &str) -> &'static RouteMetrics {
        static ROUTES: OnceLock<RwLock<HashMap<&'static str, &'static RouteMetrics>>> =
            OnceLock::new();
        let routes = ROUTES.get_or_init(Default::default);
        if let Some(r) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route) {
            return r;
        }
        let mut w = routes.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = w.get(route) {
            return r;
        }
        let route: &'static str = Box::leak(route.to_string().into_boxed_str());
        let metrics: &'static RouteMetrics = Box::leak(Box::new(RouteMetrics {
            route,
            duration: Default::default(),
            requests: Default::default(),
        }));
        w.insert(route, metrics);
        metrics
    }

    /// Counts one request in `marketd_http_requests_total`.
    fn count(&self, method: usize, status: axum::http::StatusCode) {
        let label = static_status(status);
        let make = || metrics::counter!("marketd_http_requests_total", "method" => METHODS[method], "route" => self.route, "status" => label);
        match STATUSES.iter().position(|s| *s == label) {
            Some(i) if RECORDER_INSTALLED.load(Ordering::Acquire) => {
                self.requests[method][i].get_or_init(make).increment(1)
            }
            _ => make().increment(1),
        }
    }

    /// Records a latency in `marketd_http_request_duration_seconds`.
    fn record(&self, method: usize, seconds: f64) {
        let make = || metrics::histogram!("marketd_http_request_duration_seconds", "method" => METHODS[method], "route" => self.route);
        if RECORDER_INSTALLED.load(Ordering::Acquire) {
            self.duration[method].get_or_init(make).record(seconds)
        } else {
            make().record(seconds)
        }
    }
}

/// Method labels, by [`method_index`].
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER",
];

fn method_index(m: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::PATCH => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Every label [`static_status`] gives.
const STATUSES: [&str; 26] = [
    "200", "201", "202", "204", "304", "400", "401", "403", "404", "405", "408", "409", "413",
    "415", "422", "429", "500", "502", "503", "504", "1xx", "2xx", "3xx", "4xx", "5xx", "other",
];

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
