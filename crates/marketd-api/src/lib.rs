//! The HTTP face of marketd: the axum router with the REST API under
//! `/api/v1`, operations routes (`/health/*`, `/metrics`), API documentation
//! (`/openapi.json`, `/docs`, `/redoc`) and the dashboard (`/`). Every error
//! leaves in one shape ([`error::ErrorBody`]) carrying the request id.

pub mod auth;
pub mod error;
pub mod extract;
pub mod middleware;
mod openapi_responses;
pub mod openapi_rules;
pub mod ratelimit;
pub mod realtime;
pub mod route_table;
pub mod routes;
pub mod security;
pub mod state;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use openapi_responses::{CommonResponses, ResourceLinks};
pub use ratelimit::RateLimitConfig;
use route_table::Routes;
use serde::{Deserialize, Serialize};
pub use state::{ApiConfig, AppState, Shared};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;

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
            } else {
                middleware::RECORDER_INSTALLED.store(true, std::sync::atomic::Ordering::Release);
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
        routes::prices::symbols,
        routes::session::session,
        routes::polling::create,
        routes::polling::list,
        routes::polling::get,
        routes::polling::delete,
        routes::connectors::create,
        routes::connectors::list,
        routes::connectors::get,
        routes::connectors::update,
        routes::connectors::delete,
        routes::connectors::start,
        routes::connectors::stop,
        routes::connectors::status,
        routes::connectors::data,
        routes::connectors::test,
        routes::health::live,
        routes::health::ready,
        routes::health::metrics,
        routes::keys::create,
        routes::keys::list,
        routes::keys::revoke,
        routes::credentials::put,
        routes::credentials::list,
        routes::credentials::delete,
        routes::tda_signals::signals,
        routes::tda_signals::baskets,
        realtime::connect,
        routes::tda::vietoris_rips,
        routes::tda::summaries,
        routes::tda::distance,
        routes::tda::submit,
        routes::tda::list_jobs,
        routes::tda::get_job,
        routes::tda::job_result,
        routes::tda::cancel_job,
        routes::tda::upload,
        routes::tda::list_uploads,
        routes::tda::get_upload,
        routes::tda::delete_upload,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&SecuritySchemes, &CommonResponses, &ResourceLinks),
    tags(
        (name = "prices", description = "Latest prices, history, bars, indicators"),
        (name = "polling", description = "Scheduled price polling"),
        (name = "connectors", description = "User-configured REST and WebSocket sources"),
        (name = "operations", description = "Health and metrics"),
        (name = "access", description = "API keys and stored credentials (admin)"),
        (name = "tda", description = "Topological data analysis: streaming signals (docs/tda.md)"),
        (name = "realtime", description = "Live data over WebSocket (docs/realtime.md)"),
        (name = "tda", description = "Persistent homology: computations, jobs, uploads (docs/tda.md)"),
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

/// The route table: every route with what each method needs from the caller
/// ([`auth::Access`]) and, for pages, the kind of page it serves (its CSP).
/// A new route is one line here (and its `paths(...)` entry in [`ApiDoc`]).
fn routes(openapi: axum::body::Bytes) -> Routes<AppState> {
    use auth::Access::{Admin, Open, Read, Write};
    use routes::*;
    use security::PageKind::{Dashboard, Docs};
    // The dashboard's page paths all answer its index.html.
    let app_pages = dashboard::PAGES.iter().fold(Routes::new(), |r, path| {
        r.page(path, Dashboard, dashboard::page)
    });
    app_pages
        .get("/api/v1/prices/latest", Read, prices::latest)
        .get("/api/v1/prices/history", Read, prices::history)
        .post("/api/v1/prices/poll", Write, polling::create)
        .get("/api/v1/symbols", Read, prices::symbols)
        .get("/api/v1/session", Open, session::session)
        .get("/api/v1/bars", Read, prices::bars)
        .get(
            "/api/v1/indicators/moving-average",
            Read,
            prices::moving_average,
        )
        .get("/api/v1/polling-jobs", Read, polling::list)
        .get("/api/v1/polling-jobs/{id}", Read, polling::get)
        .delete("/api/v1/polling-jobs/{id}", Write, polling::delete)
        .get("/api/v1/connectors", Read, connectors::list)
        .post("/api/v1/connectors", Write, connectors::create)
        .post("/api/v1/connectors/test", Write, connectors::test)
        .get("/api/v1/connectors/{id}", Read, connectors::get)
        .put("/api/v1/connectors/{id}", Write, connectors::update)
        .delete("/api/v1/connectors/{id}", Write, connectors::delete)
        .post("/api/v1/connectors/{id}/start", Write, connectors::start)
        .post("/api/v1/connectors/{id}/stop", Write, connectors::stop)
        .get("/api/v1/connectors/{id}/status", Read, connectors::status)
        .get("/api/v1/connectors/{id}/data", Read, connectors::data)
        .get("/api/v1/api-keys", Admin, keys::list)
        .post("/api/v1/api-keys", Admin, keys::create)
        .delete("/api/v1/api-keys/{id}", Admin, keys::revoke)
        .get("/api/v1/tda/signals", Read, tda_signals::signals)
        .get("/api/v1/tda/baskets", Read, tda_signals::baskets)
        .get("/api/v1/realtime", Read, crate::realtime::connect)
        .post("/api/v1/tda/vietoris-rips", Read, tda::vietoris_rips)
        .post("/api/v1/tda/summaries", Read, tda::summaries)
        .post("/api/v1/tda/distance", Read, tda::distance)
        .get("/api/v1/jobs", Read, tda::list_jobs)
        .post("/api/v1/jobs", Write, tda::submit)
        .get("/api/v1/jobs/{id}", Read, tda::get_job)
        .delete("/api/v1/jobs/{id}", Write, tda::cancel_job)
        .get("/api/v1/jobs/{id}/result", Read, tda::job_result)
        .get("/api/v1/uploads", Read, tda::list_uploads)
        .post("/api/v1/uploads", Write, tda::upload)
        .get("/api/v1/uploads/{id}", Read, tda::get_upload)
        .delete("/api/v1/uploads/{id}", Write, tda::delete_upload)
        .get("/api/v1/credentials", Admin, credentials::list)
        .put("/api/v1/credentials/{name}", Admin, credentials::put)
        .delete("/api/v1/credentials/{name}", Admin, credentials::delete)
        .get("/health/live", Open, health::live)
        .get("/health/ready", Open, health::ready)
        .get("/metrics", Open, health::metrics)
        .get(docs::OPENAPI_PATH, Open, docs::openapi(openapi))
        .page("/", Dashboard, dashboard::page)
        .page("/assets/{*file}", Dashboard, dashboard::asset)
        .page("/docs", Docs, docs::swagger_redirect)
        .page("/docs/", Docs, docs::swagger)
        .page("/docs/{*file}", Docs, docs::swagger)
        .page("/redoc", Docs, docs::redoc_page)
        .page("/redoc/redoc.standalone.js", Docs, docs::redoc_js)
}

/// The full router with middleware. From the outside in: request context
/// (request id, metrics, logs, error shape), the route table's declarations
/// ([`route_table::declare`]), security headers, CORS, timeout, body limit,
/// [`auth::authenticate`] (which puts the caller's [`auth::Principal`] in the
/// request extensions), then the rate limiter, which needs both.
pub fn router(state: AppState, http: &HttpConfig, security: &security::SecurityConfig) -> Router {
    let auth = state.auth.clone();
    let (routes, table) = routes(served_openapi(&state)).into_parts();
    routes
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            ratelimit::Limiter::new(&state),
            ratelimit::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            auth::authenticate,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(http.max_body_bytes))
        .layer(timeout(http))
        .layer(security::cors_layer(&http.cors_allowed_origins))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(security.clone()),
            security::headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            table,
            route_table::declare,
        ))
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// The OpenAPI document this server serves: [`ApiDoc`] with what this
/// server's configuration validates ([`openapi_rules::ServedRules`]).
pub fn served_openapi(state: &AppState) -> axum::body::Bytes {
    let mut doc = openapi_responses::to_value(&ApiDoc::openapi());
    openapi_rules::ServedRules::of(&state.services).apply(&mut doc);
    serde_json::to_vec(&doc).expect("JSON serializes").into()
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
        .layer(timeout(http))
        .layer(axum::middleware::from_fn(middleware::request_context))
}

/// A request's time limit (`http.request_timeout_ms`, answered 408).
fn timeout(http: &HttpConfig) -> TimeoutLayer {
    TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_millis(http.request_timeout_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use auth::{Access, Declared};
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::Method;
    use axum::middleware::Next;
    use axum::response::Response;
    use marketd_model::Role;
    use security::PageKind;
    use tower::ServiceExt;

    /// What the real route table declares for `method path`, found as the
    /// real router finds it: axum routes the request over the table's
    /// templates and a probe reports the extensions `declare` left.
    async fn declared(method: Method, path: &str) -> (Access, Option<Declared>, Option<PageKind>) {
        let (_, table) = routes(axum::body::Bytes::new()).into_parts();
        let mut probe = Router::new();
        for template in table.templates() {
            probe = probe.route(template, axum::routing::any(|| async {}));
        }
        let probe = probe
            .layer(axum::middleware::from_fn(
                |req: Request, _: Next| async move {
                    let mut res = Response::new(Body::empty());
                    let found = (
                        auth::policy::request_access(&req),
                        req.extensions().get::<Declared>().copied(),
                        req.extensions().get::<PageKind>().copied(),
                    );
                    res.extensions_mut().insert(found);
                    res
                },
            ))
            .layer(axum::middleware::from_fn_with_state(
                table,
                route_table::declare,
            ));
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty());
        let res = probe.oneshot(req.unwrap()).await.unwrap();
        *res.extensions().get().unwrap()
    }

    async fn required_role(method: Method, path: &str, require_read_key: bool) -> Option<Role> {
        let (access, _, _) = declared(method, path).await;
        access.required_role(require_read_key)
    }

    #[tokio::test]
    async fn policy() {
        let g = || Method::GET;
        let p = || Method::POST;
        let d = || Method::DELETE;
        let cases = [
            (g(), "/health/ready", true, None),
            (g(), "/", true, None),
            (p(), "/health/live", false, Some(Role::Write)),
            (p(), "//api/v1/prices/poll", false, Some(Role::Write)),
            (g(), "/api/v1/prices/latest", false, None),
            (g(), "/api/v1/prices/latest", true, Some(Role::Read)),
            (p(), "/api/v1/prices/poll", false, Some(Role::Write)),
            (g(), "/api/v1/prices/poll", false, None),
            (d(), "/api/v1/polling-jobs/x", false, Some(Role::Write)),
            (g(), "/api/v1/api-keys", false, Some(Role::Admin)),
            (Method::PATCH, "/api/v1/api-keys", false, Some(Role::Admin)),
            (d(), "/api/v1/api-keys/x", false, Some(Role::Admin)),
            (g(), "/api/v1/credentials", false, Some(Role::Admin)),
            (Method::PUT, "/nowhere", false, Some(Role::Write)),
            // A prefix match is not enough.
            (g(), "/api/v1/api-keysx", false, None),
        ];
        for (method, path, require_read_key, role) in cases {
            let what = format!("{method} {path} (require_read_key {require_read_key})");
            assert_eq!(
                required_role(method, path, require_read_key).await,
                role,
                "{what}"
            );
        }
    }

    #[tokio::test]
    async fn pages_and_rate_groups_come_from_the_declarations() {
        for (path, page) in [
            ("/", Some(PageKind::Dashboard)),
            ("/symbols/AAPL", Some(PageKind::Dashboard)),
            ("/connectors/new", Some(PageKind::Dashboard)),
            ("/assets/index-abc.js", Some(PageKind::Dashboard)),
            ("/docs", Some(PageKind::Docs)),
            ("/docs/", Some(PageKind::Docs)),
            ("/docs/swagger-ui.css", Some(PageKind::Docs)),
            ("/redoc", Some(PageKind::Docs)),
            ("/redoc/redoc.standalone.js", Some(PageKind::Docs)),
            ("/openapi.json", Some(PageKind::Api)),
            ("/api/v1/bars", Some(PageKind::Api)),
            ("/redocx", None),
        ] {
            assert_eq!(declared(Method::GET, path).await.2, page, "{path}");
        }
        let open = |d: Option<Declared>| d.map(|d| d.open_route);
        assert_eq!(open(declared(Method::GET, "/metrics").await.1), Some(true));
        assert_eq!(
            open(declared(Method::GET, "/api/v1/bars").await.1),
            Some(false)
        );
        assert_eq!(declared(Method::GET, "/api/v1/nope").await.1, None);
    }
}
