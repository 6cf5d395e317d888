//! The HTTP face of marketd: the axum router with the REST API under
//! `/api/v1`, operations routes (`/health/*`, `/metrics`), API documentation
//! (`/openapi.json`, `/docs`, `/redoc`) and the dashboard (`/`). Every error
//! leaves in one shape ([`error::ErrorBody`]) carrying the request id.

pub mod auth;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod ratelimit;
pub mod routes;
pub mod security;
pub mod state;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
pub use ratelimit::RateLimitConfig;
use serde::{Deserialize, Serialize};
pub use state::{ApiConfig, AppState};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// `[http]`: limits of the HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Time limit of one request, in milliseconds (answered 408).
    pub request_timeout_ms: u64,
    /// Largest request body accepted, in bytes (answered 413).
    pub max_body_bytes: usize,
    /// Largest page size of list routes.
    pub max_page: u32,
    /// Origins allowed to call the API from a browser (CORS), e.g.
    /// `https://grafana.example.com`; `*` allows any origin; empty sends no
    /// CORS headers (same-origin only).
    pub cors_allowed_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            request_timeout_ms: 10_000,
            max_body_bytes: 1 << 20,
            max_page: 10_000,
            cors_allowed_origins: Vec::new(),
        }
    }
}

/// Installs the process-wide Prometheus recorder once and returns its handle
/// (tests start several apps in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's view");
            }
            handle
        })
        .clone()
}

#[derive(OpenApi)]
#[openapi(
    info(title = "marketd", description = "Market data platform: prices, bars, moving averages and polling jobs. Every error has the shape of `ErrorBody`.", license(name = "Apache-2.0")),
    paths(
        routes::prices::latest,
        routes::prices::history,
        routes::prices::bars,
        routes::prices::moving_average,
        routes::polling::create,
        routes::polling::list,
        routes::polling::get,
        routes::polling::delete,
        routes::health::live,
        routes::health::ready,
        routes::health::metrics,
        routes::keys::create,
        routes::keys::list,
        routes::keys::revoke,
        routes::credentials::put,
        routes::credentials::list,
        routes::credentials::delete,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "prices", description = "Latest prices, history, bars, indicators"),
        (name = "polling", description = "Scheduled price polling"),
        (name = "operations", description = "Health and metrics"),
        (name = "access", description = "API keys and stored credentials (admin)"),
    )
)]
pub struct ApiDoc;

/// Declares the `X-API-Key` and bearer JWT schemes in the OpenAPI document.
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key from `marketd keys create` or POST /api/v1/api-keys",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The full router with middleware. From the outside in: request context
/// (request id, metrics, logs, error shape), security headers, CORS, timeout,
/// body limit, then [`auth::authenticate`], which puts the caller's
/// [`auth::Principal`] in the request extensions before the handlers run.
pub fn router(state: AppState, http: &HttpConfig, security: &security::SecurityConfig) -> Router {
    use routes::*;
    let auth = state.auth.clone();
    let api = Router::new()
        .route("/prices/latest", get(prices::latest))
        .route("/prices/history", get(prices::history))
        .route("/prices/poll", axum::routing::post(polling::create))
        .route("/bars", get(prices::bars))
        .route("/indicators/moving-average", get(prices::moving_average))
        .route("/polling-jobs", get(polling::list))
        .route(
            "/polling-jobs/{id}",
            get(polling::get).delete(polling::delete),
        )
        .route("/api-keys", get(keys::list).post(keys::create))
        .route("/api-keys/{id}", axum::routing::delete(keys::revoke))
        .route("/credentials", get(credentials::list))
        .route(
            "/credentials/{name}",
            axum::routing::put(credentials::put).delete(credentials::delete),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ratelimit::limit,
        ));
    Router::new()
        .nest("/api/v1", api)
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/", get(dashboard::page))
        .route("/redoc", get(docs::redoc_page))
        .route("/redoc/redoc.standalone.js", get(docs::redoc_js))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .with_state(state)
        // A per-caller rate limiter belongs here: inside `authenticate`, so
        // it sees the `Principal` (absent for anonymous callers).
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(http.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(http.request_timeout_ms),
        ))
        .layer(security::cors_layer(&http.cors_allowed_origins))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security.clone()),
            security::headers,
        ))
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// The operations router of a `marketd worker` (its admin port): health and
/// metrics only.
pub fn admin_router(state: AppState, http: &HttpConfig) -> Router {
    use routes::health;
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(http.request_timeout_ms),
        ))
        .layer(axum::middleware::from_fn(middleware::request_context))
}
