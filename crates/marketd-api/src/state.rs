//! What every handler shares: the services (the only way a handler reaches
//! the domain), the backends the readiness and metrics routes probe, and the
//! HTTP-side settings. No `Engine` here: an `api` instance runs none.

use crate::auth::Authenticator;
use crate::ratelimit::RateLimitConfig;
use marketd_engine::{Backends, Services};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Instant;

/// What the HTTP layer needs besides the services.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub rate_limit: RateLimitConfig,
}

/// Shared state of the handlers: one reference count per clone (axum clones
/// it for every request), the fields through [`Deref`](std::ops::Deref).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The domain operations the handlers adapt.
    pub services: Arc<Services>,
    /// For `/health/ready` (probes), `/metrics` (bus depth) and the rate
    /// limiter (cache); handlers go through [`Shared::services`].
    pub backends: Backends,
    pub cfg: Arc<ApiConfig>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
    /// Verifies API keys and tokens (see [`crate::auth`]).
    pub auth: Arc<Authenticator>,
    /// The realtime fan-out behind `/api/v1/realtime`.
    pub realtime: marketd_engine::realtime::Hub,
    /// API keys no longer active (realtime connections holding one close).
    pub revoked: crate::realtime::revocations::Revoked,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}
