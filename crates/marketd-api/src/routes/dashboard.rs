//! The dashboard page at `/`: latest prices of the streamed symbols with
//! their 1-second bars, refreshed from the REST API.

use axum::response::Html;

pub(crate) const PAGE: &str = include_str!("../../assets/dashboard.html");

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}
