//! Per-provider health (shown by `/health/ready`) and the provider metrics.

use crate::{Error, Result};
use marketd_model::time::now_ns;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Instant;
use utoipa::ToSchema;

/// Consecutive failures from which a provider reports itself unhealthy.
pub const UNHEALTHY_AFTER_FAILURES: u32 = 3;

/// A provider's recent record: when it last answered, its last error and how
/// many calls in a row have failed. "Answered" includes "no such symbol":
/// only failures to get an answer (transport, timeouts, 5xx, rate limits,
/// malformed bodies) count as failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProviderHealth {
    /// Provider name (`simulated`, `finnhub`, `yahoo`, `replay`).
    pub provider: String,
    /// False after [`UNHEALTHY_AFTER_FAILURES`] consecutive failures.
    pub healthy: bool,
    /// Time of the last successful call, nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_ns: Option<i64>,
    /// Text of the last error (never contains credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Time of the last error, nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_ns: Option<i64>,
    /// Failed calls since the last success.
    pub consecutive_failures: u32,
}

impl ProviderHealth {
    /// The health of a provider that has not been called yet.
    pub fn new(provider: impl Into<String>) -> Self {
        ProviderHealth {
            provider: provider.into(),
            healthy: true,
            last_success_ns: None,
            last_error: None,
            last_error_ns: None,
            consecutive_failures: 0,
        }
    }
}

/// Records calls of one provider: health state plus the metrics
/// `marketd_provider_requests_total{provider,outcome}`,
/// `marketd_provider_errors_total{provider,kind}` and
/// `marketd_provider_latency_seconds{provider}`.
#[derive(Debug)]
pub(crate) struct Tracker {
    name: &'static str,
    state: Mutex<ProviderHealth>,
}

impl Tracker {
    pub(crate) fn new(name: &'static str) -> Self {
        Tracker {
            name,
            state: Mutex::new(ProviderHealth::new(name)),
        }
    }

    pub(crate) fn snapshot(&self) -> ProviderHealth {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs one provider call, recording its outcome and latency.
    pub(crate) async fn observe<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        self.record(started, &result);
        result
    }

    fn record<T>(&self, started: Instant, result: &Result<T>) {
        let provider = self.name;
        metrics::histogram!("marketd_provider_latency_seconds", "provider" => provider)
            .record(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(_) => "ok",
            Err(Error::SymbolNotFound(_)) => "not_found",
            Err(Error::Unsupported(_)) => "unsupported",
            Err(_) => "error",
        };
        metrics::counter!("marketd_provider_requests_total", "provider" => provider, "outcome" => outcome).increment(1);
        if let Err(e) = result {
            metrics::counter!("marketd_provider_errors_total", "provider" => provider, "kind" => e.kind()).increment(1);
        }
        let now = now_ns();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(_) | Err(Error::SymbolNotFound(_)) => {
                s.last_success_ns = Some(now);
                s.consecutive_failures = 0;
            }
            Err(Error::Unsupported(_)) => {}
            Err(e) => {
                s.last_error = Some(e.to_string());
                s.last_error_ns = Some(now);
                s.consecutive_failures = s.consecutive_failures.saturating_add(1);
            }
        }
        s.healthy = s.consecutive_failures < UNHEALTHY_AFTER_FAILURES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failures_accumulate_and_success_resets() {
        let t = Tracker::new("test");
        assert!(t.snapshot().healthy);
        for _ in 0..3 {
            let _ = t
                .observe(async { Err::<(), _>(Error::Upstream { status: 503 }) })
                .await;
        }
        let h = t.snapshot();
        assert_eq!(h.consecutive_failures, 3);
        assert!(!h.healthy);
        assert_eq!(h.last_error.as_deref(), Some("provider answered HTTP 503"));
        assert!(h.last_success_ns.is_none());
        let _ = t
            .observe(async { Err::<(), _>(Error::SymbolNotFound("X".into())) })
            .await;
        let h = t.snapshot();
        assert_eq!(h.consecutive_failures, 0);
        assert!(h.healthy && h.last_success_ns.is_some());
        assert!(h.last_error.is_some(), "the last error stays visible");
    }
}
