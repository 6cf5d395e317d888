//! Per-provider health (shown by `/health/ready`), the provider metrics and
//! the circuit breaker.
//!
//! Circuit breaker: after `failure_threshold` consecutive failures the
//! circuit opens and calls fail at once with [`Error::CircuitOpen`] (the
//! upstream is not called; the price service serves the stored price). After
//! `cooldown_ms` one probe call is let through (half-open): success closes
//! the circuit, failure opens it for another cool-down. State is exported as
//! `marketd_provider_circuit_state{provider}` (0 closed, 1 open, 2 half-open)
//! and `marketd_provider_circuit_opened_total{provider}`.

use crate::{Error, Result};
use marketd_model::time::now_ns;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};
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
    /// Circuit breaker: `closed` (calls go through), `open` (calls fail at
    /// once until the cool-down ends) or `half_open` (one probe in flight).
    #[serde(default = "closed")]
    pub circuit: String,
}

fn closed() -> String {
    "closed".into()
}

/// `[providers.circuit_breaker]`: when to stop calling a failing upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open the circuit (0 disables the breaker).
    pub failure_threshold: u32,
    /// How long an open circuit refuses calls before one probe, milliseconds.
    pub cooldown_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_threshold: 5,
            cooldown_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

impl Circuit {
    fn label(self) -> &'static str {
        match self {
            Circuit::Closed => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen => "half_open",
        }
    }
    fn gauge(self) -> f64 {
        match self {
            Circuit::Closed => 0.0,
            Circuit::Open { .. } => 1.0,
            Circuit::HalfOpen => 2.0,
        }
    }
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
            circuit: closed(),
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
    state: Mutex<State>,
    breaker: CircuitBreakerConfig,
}

#[derive(Debug)]
struct State {
    health: ProviderHealth,
    circuit: Circuit,
}

impl Tracker {
    /// A tracker without a circuit breaker (providers that cannot fail upstream).
    pub(crate) fn new(name: &'static str) -> Self {
        Self::with_breaker(
            name,
            CircuitBreakerConfig {
                failure_threshold: 0,
                ..Default::default()
            },
        )
    }

    pub(crate) fn with_breaker(name: &'static str, breaker: CircuitBreakerConfig) -> Self {
        Tracker {
            name,
            state: Mutex::new(State {
                health: ProviderHealth::new(name),
                circuit: Circuit::Closed,
            }),
            breaker,
        }
    }

    pub(crate) fn snapshot(&self) -> ProviderHealth {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut h = s.health.clone();
        // An open circuit whose cool-down has passed admits the next call.
        h.circuit = match s.circuit {
            Circuit::Open { until } if Instant::now() >= until => "half_open".into(),
            c => c.label().into(),
        };
        h
    }

    /// Whether a call may go upstream now; moves an open circuit whose
    /// cool-down is over to half-open (this call is the probe).
    fn admit(&self) -> Result<()> {
        if self.breaker.failure_threshold == 0 {
            return Ok(());
        }
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.circuit {
            Circuit::Closed => Ok(()),
            Circuit::Open { until } if Instant::now() >= until => {
                s.circuit = Circuit::HalfOpen;
                self.export(Circuit::HalfOpen);
                Ok(())
            }
            Circuit::Open { until } => Err(Error::CircuitOpen {
                retry_in: until.saturating_duration_since(Instant::now()),
            }),
            // One probe at a time.
            Circuit::HalfOpen => Err(Error::CircuitOpen {
                retry_in: Duration::ZERO,
            }),
        }
    }

    fn export(&self, c: Circuit) {
        metrics::gauge!("marketd_provider_circuit_state", "provider" => self.name).set(c.gauge());
    }

    /// Runs one provider call, recording its outcome and latency; refused at
    /// once while the circuit is open.
    pub(crate) async fn observe<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        if let Err(e) = self.admit() {
            metrics::counter!("marketd_provider_requests_total", "provider" => self.name, "outcome" => "circuit_open").increment(1);
            return Err(e);
        }
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
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let failed = match result {
            Ok(_) | Err(Error::SymbolNotFound(_)) => {
                st.health.last_success_ns = Some(now);
                st.health.consecutive_failures = 0;
                Some(false)
            }
            Err(Error::Unsupported(_)) => None,
            Err(e) => {
                st.health.last_error = Some(e.to_string());
                st.health.last_error_ns = Some(now);
                st.health.consecutive_failures = st.health.consecutive_failures.saturating_add(1);
                Some(true)
            }
        };
        st.health.healthy = st.health.consecutive_failures < UNHEALTHY_AFTER_FAILURES;
        if self.breaker.failure_threshold == 0 {
            return;
        }
        let before = st.circuit;
        st.circuit = match (before, failed) {
            (Circuit::HalfOpen, Some(true)) => self.open(),
            (_, Some(true)) if st.health.consecutive_failures >= self.breaker.failure_threshold => {
                match before {
                    Circuit::Open { .. } => before,
                    _ => self.open(),
                }
            }
            (Circuit::HalfOpen, Some(false)) => Circuit::Closed,
            (Circuit::HalfOpen, None) => Circuit::Closed,
            (c, _) => c,
        };
        if st.circuit != before {
            if st.circuit == Circuit::Closed {
                tracing::info!(
                    provider = provider,
                    "circuit closed: the provider answers again"
                );
            }
            self.export(st.circuit);
        }
    }

    fn open(&self) -> Circuit {
        let cooldown = Duration::from_millis(self.breaker.cooldown_ms);
        tracing::warn!(
            provider = self.name,
            ?cooldown,
            "circuit open: provider calls suspended"
        );
        metrics::counter!("marketd_provider_circuit_opened_total", "provider" => self.name)
            .increment(1);
        Circuit::Open {
            until: Instant::now() + cooldown,
        }
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
        assert_eq!(h.circuit, "closed", "no breaker on a plain tracker");
    }

    async fn fail(t: &Tracker, calls: &std::sync::atomic::AtomicU32) -> Result<()> {
        t.observe(async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Err::<(), _>(Error::Upstream { status: 503 })
        })
        .await
    }

    async fn succeed(t: &Tracker, calls: &std::sync::atomic::AtomicU32) -> Result<()> {
        t.observe(async {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await
    }

    #[tokio::test]
    async fn circuit_opens_after_threshold_and_probes_after_cooldown() {
        use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
        let t = Tracker::with_breaker(
            "cb",
            CircuitBreakerConfig {
                failure_threshold: 3,
                cooldown_ms: 80,
            },
        );
        let calls = AtomicU32::new(0);
        for _ in 0..3 {
            assert!(matches!(
                fail(&t, &calls).await,
                Err(Error::Upstream { .. })
            ));
        }
        assert_eq!(t.snapshot().circuit, "open");
        // Open: refused without calling upstream.
        let err = succeed(&t, &calls).await.unwrap_err();
        assert!(matches!(err, Error::CircuitOpen { .. }), "{err}");
        assert!(!err.is_transient(), "never retried");
        assert_eq!(calls.load(SeqCst), 3);

        // After the cool-down one probe goes through; it fails: open again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(t.snapshot().circuit, "half_open");
        assert!(matches!(
            fail(&t, &calls).await,
            Err(Error::Upstream { .. })
        ));
        assert_eq!(calls.load(SeqCst), 4);
        assert_eq!(t.snapshot().circuit, "open");
        assert!(matches!(
            succeed(&t, &calls).await,
            Err(Error::CircuitOpen { .. })
        ));

        // Next probe succeeds: closed, calls flow again.
        tokio::time::sleep(Duration::from_millis(100)).await;
        succeed(&t, &calls).await.unwrap();
        assert_eq!(t.snapshot().circuit, "closed");
        succeed(&t, &calls).await.unwrap();
        assert_eq!(calls.load(SeqCst), 6);
        assert!(t.snapshot().healthy);
    }

    #[tokio::test]
    async fn half_open_admits_one_probe_at_a_time() {
        let t = Tracker::with_breaker(
            "cb2",
            CircuitBreakerConfig {
                failure_threshold: 1,
                cooldown_ms: 0,
            },
        );
        let calls = std::sync::atomic::AtomicU32::new(0);
        let _ = fail(&t, &calls).await;
        let (gate_tx, gate_rx) = tokio::sync::oneshot::channel::<()>();
        let probe = t.observe(async {
            let _ = gate_rx.await;
            Ok::<_, Error>(())
        });
        let second = async {
            tokio::task::yield_now().await;
            let r = t.observe(async { Ok::<_, Error>(()) }).await;
            let _ = gate_tx.send(());
            r
        };
        let (p, s) = tokio::join!(probe, second);
        assert!(p.is_ok());
        assert!(matches!(s, Err(Error::CircuitOpen { .. })), "{s:?}");
        assert_eq!(t.snapshot().circuit, "closed");
    }
}
