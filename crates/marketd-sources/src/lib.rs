//! Where marketd's prices come from. Every provider implements [`Provider`]
//! (latest quote; history where the upstream has it) and is held in the
//! [`AnyProvider`] container, so the engine and API never match on a
//! concrete provider. Normalizers turn each upstream's wire format into
//! [`marketd_model::Tick`]s; retries use bounded exponential backoff with jitter.
//!
//! - [`ProviderRegistry::from_config`] builds the enabled providers from
//!   [`ProvidersConfig`]; the API and the pollers look them up by name.
//! - [`simulated::SimulatedFeed`] and [`replay::ReplayFeed`] stream ticks into
//!   an `mpsc::Sender<Vec<Tick>>` until cancelled.
//! - Metrics (via the `metrics` facade): `marketd_provider_requests_total{provider,outcome}`,
//!   `marketd_provider_errors_total{provider,kind}`, `marketd_provider_latency_seconds{provider}`,
//!   `marketd_provider_retries_total{provider}`, `marketd_feed_rejected_total{source}`,
//!   `marketd_provider_circuit_state{provider}`, `marketd_provider_circuit_opened_total{provider}`.
//! - [`venues`] holds the exchange WebSocket feeds (Binance, OKX, Finnhub)
//!   as pure code: connection plans, keepalive rules and typed decoders
//!   from wire frames to ticks; [`venues::capture`] reads recorded feeds.
//! - Upstream calls are HTTP `GET`s (idempotent), the only calls retried;
//!   each provider of the registry has a circuit breaker ([`CircuitBreakerConfig`]).

use marketd_model::{Bar, Interval, Symbol, Tick};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

pub mod backoff;
pub mod config;
pub mod connectors;
mod error;
pub mod finnhub;
mod health;
mod http;
pub mod ratelimit;
pub mod replay;
mod rest;
pub mod simulated;
pub mod venues;
pub mod ws;
pub mod yahoo;

pub use backoff::Backoff;
pub use config::{
    FinnhubConfig, ProvidersConfig, RegimeAt, RegimeConfig, ReplayFeedConfig, SimulatedFeedConfig,
    SimulatedProviderConfig, YahooConfig,
};
pub use error::{Error, Result};
pub use finnhub::{FinnhubApi, FinnhubProvider};
pub use health::{CircuitBreakerConfig, ProviderHealth, UNHEALTHY_AFTER_FAILURES};
pub use replay::{ReplayFeed, ReplayProvider, ReplayStats};
pub use rest::RestProvider;
pub use simulated::{Regime, SimulatedFeed, SimulatedMarket, SimulatedProvider};
pub use yahoo::{YahooApi, YahooProvider};

/// A provider's answer to a history request: bars of `interval` in `[from, to)`.
#[derive(Debug, Clone)]
pub struct HistoryRequest {
    pub symbol: Symbol,
    pub interval: Interval,
    /// Nanoseconds since the epoch.
    pub from: i64,
    pub to: i64,
}

/// A source of prices that can be asked on demand.
pub trait Provider: Send + Sync {
    /// The provider's name as used in config, API (`provider=`) and `Tick::source`.
    fn name(&self) -> &str;
    /// The latest price of `symbol` as a normalized tick.
    fn latest(&self, symbol: &Symbol) -> impl Future<Output = Result<Tick>> + Send;
    /// Historical bars; `Error::Unsupported` where the upstream has none.
    fn history(&self, req: &HistoryRequest) -> impl Future<Output = Result<Vec<Bar>>> + Send;
    /// Last success, last error and consecutive failures (for `/health/ready`).
    /// The default is the health of a provider that keeps no record.
    fn health(&self) -> ProviderHealth {
        ProviderHealth::new(self.name())
    }
}

/// Every provider marketd has; the engine and the API hold this (usually as
/// `Arc<AnyProvider>` from the [`ProviderRegistry`]) and see only [`Provider`].
#[derive(Debug)]
pub enum AnyProvider {
    Simulated(SimulatedProvider),
    Finnhub(FinnhubProvider),
    Yahoo(YahooProvider),
    Replay(ReplayProvider),
}

impl Provider for AnyProvider {
    fn name(&self) -> &str {
        match self {
            AnyProvider::Simulated(p) => p.name(),
            AnyProvider::Finnhub(p) => p.name(),
            AnyProvider::Yahoo(p) => p.name(),
            AnyProvider::Replay(p) => p.name(),
        }
    }

    async fn latest(&self, symbol: &Symbol) -> Result<Tick> {
        match self {
            AnyProvider::Simulated(p) => p.latest(symbol).await,
            AnyProvider::Finnhub(p) => p.latest(symbol).await,
            AnyProvider::Yahoo(p) => p.latest(symbol).await,
            AnyProvider::Replay(p) => p.latest(symbol).await,
        }
    }

    async fn history(&self, req: &HistoryRequest) -> Result<Vec<Bar>> {
        match self {
            AnyProvider::Simulated(p) => p.history(req).await,
            AnyProvider::Finnhub(p) => p.history(req).await,
            AnyProvider::Yahoo(p) => p.history(req).await,
            AnyProvider::Replay(p) => p.history(req).await,
        }
    }

    fn health(&self) -> ProviderHealth {
        match self {
            AnyProvider::Simulated(p) => p.health(),
            AnyProvider::Finnhub(p) => p.health(),
            AnyProvider::Yahoo(p) => p.health(),
            AnyProvider::Replay(p) => p.health(),
        }
    }
}

/// The providers in use, by name. Disabled providers are absent; the
/// simulated provider is always there.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<AnyProvider>>,
    market: Option<Arc<SimulatedMarket>>,
}

impl ProviderRegistry {
    /// Builds the providers of `cfg` with a simulated market of
    /// `cfg.simulated.seed`. Errors are `Error::Config` naming the key
    /// (`providers.finnhub.api_key` when Finnhub is enabled without a key).
    pub fn from_config(cfg: &ProvidersConfig) -> Result<Self> {
        Self::from_config_with_market(cfg, Arc::new(SimulatedMarket::new(cfg.simulated.seed)))
    }

    /// As [`ProviderRegistry::from_config`], with the simulated provider
    /// reading `market` (share it with the [`SimulatedFeed`] so `latest`
    /// agrees with the stream).
    pub fn from_config_with_market(
        cfg: &ProvidersConfig,
        market: Arc<SimulatedMarket>,
    ) -> Result<Self> {
        let mut reg = ProviderRegistry {
            providers: BTreeMap::new(),
            market: Some(market.clone()),
        };
        reg.insert(AnyProvider::Simulated(SimulatedProvider::new(market)));
        if cfg.finnhub.enabled {
            reg.insert(AnyProvider::Finnhub(
                FinnhubProvider::new(&cfg.finnhub)?.with_circuit_breaker(cfg.circuit_breaker),
            ));
        }
        if cfg.yahoo.enabled {
            reg.insert(AnyProvider::Yahoo(
                YahooProvider::new(&cfg.yahoo)?.with_circuit_breaker(cfg.circuit_breaker),
            ));
        }
        Ok(reg)
    }

    /// Adds (or replaces) a provider under its name, e.g. a replay feed's
    /// [`ReplayFeed::provider`]. Returns the shared handle.
    pub fn insert(&mut self, provider: AnyProvider) -> Arc<AnyProvider> {
        let p = Arc::new(provider);
        self.providers.insert(p.name().to_string(), p.clone());
        p
    }

    pub fn get(&self, name: &str) -> Option<Arc<AnyProvider>> {
        self.providers.get(name).cloned()
    }

    /// Provider names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<AnyProvider>> {
        self.providers.values()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The health of every provider, sorted by name.
    pub fn health(&self) -> Vec<ProviderHealth> {
        self.iter().map(|p| p.health()).collect()
    }

    /// The simulated market the `simulated` provider reads, to drive a
    /// [`SimulatedFeed`] from the same walks.
    pub fn simulated_market(&self) -> Option<Arc<SimulatedMarket>> {
        self.market.clone()
    }
}

impl<'a> IntoIterator for &'a ProviderRegistry {
    type Item = &'a Arc<AnyProvider>;
    type IntoIter = std::collections::btree_map::Values<'a, String, Arc<AnyProvider>>;
    fn into_iter(self) -> Self::IntoIter {
        self.providers.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::Secret;

    #[test]
    fn registry_holds_enabled_providers_only() {
        let reg = ProviderRegistry::from_config(&ProvidersConfig::default()).unwrap();
        assert_eq!(reg.names(), vec!["simulated"]);
        assert!(reg.get("finnhub").is_none() && reg.get("yahoo").is_none());

        let mut cfg = ProvidersConfig::default();
        cfg.finnhub.enabled = true;
        let err = ProviderRegistry::from_config(&cfg).unwrap_err();
        assert!(
            matches!(&err, Error::Config(m) if m.contains("providers.finnhub.api_key")),
            "{err}"
        );

        cfg.finnhub.api_key = Some(Secret::new("k"));
        cfg.yahoo.enabled = true;
        let mut reg = ProviderRegistry::from_config(&cfg).unwrap();
        assert_eq!(reg.names(), vec!["finnhub", "simulated", "yahoo"]);
        assert_eq!(reg.get("yahoo").unwrap().name(), "yahoo");
        let feed = ReplayFeed::new(&ReplayFeedConfig {
            path: Some("t.csv".into()),
            ..Default::default()
        })
        .unwrap();
        reg.insert(AnyProvider::Replay(feed.provider()));
        assert_eq!(reg.len(), 4);
        let health = reg.health();
        assert_eq!(
            health
                .iter()
                .map(|h| h.provider.as_str())
                .collect::<Vec<_>>(),
            reg.names()
        );
        assert!(
            health
                .iter()
                .all(|h| h.healthy && h.consecutive_failures == 0)
        );
        assert_eq!((&reg).into_iter().count(), 4);
    }

    #[tokio::test]
    async fn any_provider_delegates() {
        let market = Arc::new(SimulatedMarket::new(3));
        let reg =
            ProviderRegistry::from_config_with_market(&ProvidersConfig::default(), market.clone())
                .unwrap();
        assert!(Arc::ptr_eq(&reg.simulated_market().unwrap(), &market));
        let sim = reg.get("simulated").unwrap();
        let symbol = Symbol::parse("AAPL").unwrap();
        let first = sim.latest(&symbol).await.unwrap();
        assert_eq!(first.kind, marketd_model::TickKind::Last);
        assert_eq!(first.price, SimulatedMarket::start_price(&symbol));
        // The shared market moved on: the next trade continues the same walk.
        assert_eq!(market.next_tick(&symbol, first.ts_event).sequence, Some(2));
        assert!(sim.health().last_success_ns.is_some());
    }
}
