//! The provider shape every REST upstream shares: an upstream API (how a
//! request is made and an answer read) behind the shared HTTP plumbing
//! (retries, rate limit, timeouts), health record and circuit breaker. A new
//! REST venue is one [`RestApi`] impl and a constructor.

use crate::backoff::Backoff;
use crate::health::{CircuitBreakerConfig, ProviderHealth, Tracker};
use crate::http::HttpCaller;
use crate::{HistoryRequest, Provider, Result};
use marketd_model::{Bar, Decimal, Symbol, Tick, TickKind};
use std::future::Future;

/// What one REST upstream adds to the shared plumbing.
pub(crate) trait RestApi: Send + Sync {
    /// The provider's name (config, API `provider=`, `Tick::source`).
    const NAME: &'static str;

    fn latest(
        &self,
        http: &HttpCaller,
        symbol: &Symbol,
    ) -> impl Future<Output = Result<Tick>> + Send;

    /// Historical bars; `Error::Unsupported` where the upstream has none.
    fn history(
        &self,
        http: &HttpCaller,
        req: &HistoryRequest,
    ) -> impl Future<Output = Result<Vec<Bar>>> + Send;
}

/// A provider over the REST upstream `A` (e.g. [`crate::FinnhubProvider`]).
#[derive(Debug)]
pub struct RestProvider<A> {
    api: A,
    http: HttpCaller,
    tracker: Tracker,
}

impl<A> RestProvider<A> {
    pub(crate) fn from_parts(api: A, http: HttpCaller) -> Self {
        RestProvider {
            api,
            tracker: Tracker::new(http.provider),
            http,
        }
    }

    /// The upstream API (its endpoints), for tests.
    #[cfg(test)]
    pub(crate) fn api(&self) -> &A {
        &self.api
    }

    /// Suspends calls after repeated failures (see [`CircuitBreakerConfig`]).
    pub fn with_circuit_breaker(mut self, breaker: CircuitBreakerConfig) -> Self {
        self.tracker = Tracker::with_breaker(self.http.provider, breaker);
        self
    }

    /// Replaces the retry policy (tests use millisecond delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.http.backoff = backoff;
        self
    }
}

impl<A: RestApi> Provider for RestProvider<A> {
    fn name(&self) -> &str {
        A::NAME
    }

    async fn latest(&self, symbol: &Symbol) -> Result<Tick> {
        self.tracker
            .observe(self.api.latest(&self.http, symbol))
            .await
    }

    async fn history(&self, req: &HistoryRequest) -> Result<Vec<Bar>> {
        self.tracker
            .observe(self.api.history(&self.http, req))
            .await
    }

    fn health(&self) -> ProviderHealth {
        self.tracker.snapshot()
    }
}

/// A quote as a tick: the upstream's last price (kind `Last`, no size) from
/// provider `source`, at the upstream's time `ts_event`.
pub(crate) fn last_price(
    symbol: &Symbol,
    source: &'static str,
    price: Decimal,
    ts_event: i64,
    received_ns: i64,
) -> Tick {
    let size = Decimal::ZERO;
    Tick::new(
        symbol.clone(),
        source,
        TickKind::Last,
        price,
        size,
        ts_event,
        received_ns,
    )
}
