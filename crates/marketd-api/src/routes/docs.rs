//! API documentation served from the binary: OpenAPI 3.1 at `/openapi.json`,
//! Swagger UI at `/docs` (vendored by utoipa-swagger-ui) and ReDoc at
//! `/redoc` (its standalone bundle embedded), so nothing loads from a CDN.
//!
//! Swagger UI's files are served by these handlers rather than by merging
//! utoipa-swagger-ui's router, so that each of its routes is declared in the
//! route table (access and CSP) like every other.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use std::sync::{Arc, OnceLock};
use utoipa_swagger_ui::Config;

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

/// Where the OpenAPI document is served (and Swagger UI reads it).
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `/openapi.json`: the document, serialized once.
pub fn openapi(
    body: Bytes,
) -> impl Fn() -> std::future::Ready<Response> + Clone + Send + Sync + 'static {
    move || {
        std::future::ready(
            ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response(),
        )
    }
}

/// `/docs`: Swagger UI lives at `/docs/` (its files are relative to it).
pub async fn swagger_redirect() -> Redirect {
    Redirect::to("/docs/")
}

/// `/docs/` and `/docs/{*file}`: Swagger UI's page and files.
pub async fn swagger(file: Option<Path<String>>) -> Response {
    static CONFIG: OnceLock<Arc<Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| Arc::new(Config::new([OPENAPI_PATH])));
    let file = file.as_ref().map_or("", |f| f.as_str());
    match utoipa_swagger_ui::serve(file, config.clone()) {
        Ok(Some(file)) => ([(header::CONTENT_TYPE, file.content_type)], file.bytes).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub async fn redoc_page() -> Html<&'static str> {
    Html(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>marketd API — ReDoc</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script></body></html>"#,
    )
}

pub async fn redoc_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/javascript"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        REDOC_JS,
    )
}
