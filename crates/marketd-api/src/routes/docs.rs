//! API documentation served from the binary: OpenAPI 3.1 at `/openapi.json`,
//! Swagger UI at `/docs` (vendored by utoipa-swagger-ui) and ReDoc at
//! `/redoc` (its standalone bundle embedded), so nothing loads from a CDN.

use axum::http::header;
use axum::response::{Html, IntoResponse};

const REDOC_JS: &[u8] = include_bytes!("../../assets/redoc.standalone.js");

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
