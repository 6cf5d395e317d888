//! Liveness, readiness and Prometheus metrics.

use crate::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use marketd_bus::Bus;
use marketd_cache::Cache;
use marketd_store::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    pub status: String,
    pub uptime_s: u64,
    pub version: String,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, body = Live)))]
pub async fn live(State(state): State<AppState>) -> Json<Live> {
    Json(Live {
        status: "ok".into(),
        uptime_s: state.started.elapsed().as_secs(),
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `ok` or `error`.
    pub status: String,
    /// Backend name (`sqlite`, `memory`, ...) or provider state.
    pub backend: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready` when store, bus and cache answer; providers are reported but
    /// do not make the instance unready (a failing upstream is served stale).
    pub status: String,
    pub checks: BTreeMap<String, Check>,
    pub providers: BTreeMap<String, marketd_sources::ProviderHealth>,
}

async fn probe<F, E>(backend: &str, f: F) -> Check
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let started = std::time::Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(2), f).await;
    let latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
    match res {
        Ok(Ok(())) => Check {
            status: "ok".into(),
            backend: backend.into(),
            error: None,
            latency_ms,
        },
        Ok(Err(e)) => Check {
            status: "error".into(),
            backend: backend.into(),
            error: Some(e.to_string()),
            latency_ms,
        },
        Err(_) => Check {
            status: "error".into(),
            backend: backend.into(),
            error: Some("timed out after 2s".into()),
            latency_ms,
        },
    }
}

/// Store, bus and cache answer; each provider's state.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = Ready), (status = 503, description = "A backend is down", body = Ready)))]
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let b = &state.backends;
    let mut checks = BTreeMap::new();
    checks.insert(
        "store".to_string(),
        probe(b.store.backend_name(), b.store.ping()).await,
    );
    checks.insert(
        "bus".to_string(),
        probe(b.bus.backend_name(), b.bus.ping()).await,
    );
    checks.insert(
        "cache".to_string(),
        probe(b.cache.backend_name(), b.cache.ping()).await,
    );
    let providers = b
        .providers
        .health()
        .into_iter()
        .map(|h| (h.provider.clone(), h))
        .collect();
    let ok = checks.values().all(|c| c.status == "ok");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Ready {
            status: if ok { "ready" } else { "unavailable" }.into(),
            checks,
            providers,
        }),
    )
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    for (topic, depth) in state.backends.bus.depth() {
        metrics::gauge!("marketd_bus_buffer_depth", "topic" => topic.name()).set(depth as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
