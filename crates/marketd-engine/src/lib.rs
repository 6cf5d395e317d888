//! The consumers and schedulers of marketd. Each reads from the bus, never
//! from another component's internals, so any of them can move into a
//! `marketd worker` process unchanged:
//!
//! - [`sinks`]: store sinks (`ticks`, `bars`, `indicators`, `price-requests` → store), batched and idempotent;
//! - [`aggregator`]: `ticks` → OHLCV bars and SMA/EMA on `bars`/`indicators`;
//! - the latest-price cache updater (`ticks` → cache);
//! - [`supervisor`]: long-running units owned by one worker each, restarted
//!   when they fail; polling jobs (`polling-jobs` → provider fetches → `ticks`)
//!   are its first kind;
//! - [`tda_stream`]: streaming topological signals per configured basket
//!   (`bars` → `tda_signals`, `tda-signals`), each basket a supervised unit;
//! - [`feeds`]: the [`feeds::Feed`]s (simulated, replay) publishing on `ticks`;
//! - the [`PriceService`] behind `GET /prices/latest`.
//!
//! [`Engine::shutdown`] stops producers first, then drains each stage in
//! order, so every acknowledged tick is written before the process exits.

pub mod aggregator;
mod cache_updater;
pub mod feeds;
pub mod realtime;
pub mod services;
pub mod sinks;
pub mod supervisor;
pub mod tda;
pub mod tda_stream;
#[cfg(test)]
mod test_support;

pub use aggregator::{Aggregator, AggregatorConfig};
pub use feeds::FeedsConfig;
pub use services::prices::{LatestPrice, PriceError, PriceService, PriceSource, PricesConfig};
pub use services::{Services, ServicesConfig};
pub use sinks::WriterConfig;
pub use supervisor::connectors::{ConnectorSupervisor, Connectors};
/// The polling jobs' unit kind, at its former path.
pub use supervisor::polling;
pub use supervisor::polling::{PollingConfig, PollingJobs, PollingScheduler};
pub use supervisor::tda_jobs::{TdaJobRunner, TdaJobs};
pub use supervisor::{Supervisor, UnitKind, UnitState};
pub use tda::TdaConfig;
pub use tda_stream::{TdaBaskets, TdaStreamConfig};

use marketd_bus::{AnyBus, Bus};
use marketd_cache::AnyCache;
use marketd_model::Topic;
use marketd_sources::ProviderRegistry;
use marketd_store::AnyStore;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bus: {0}")]
    Bus(#[from] marketd_bus::Error),
    #[error("feed: {0}")]
    Feed(#[from] marketd_sources::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Engine settings (the `[writer]`, `[aggregator]`, `[polling]` and
/// `[tda.stream]` sections).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub writer: WriterConfig,
    pub aggregator: AggregatorConfig,
    pub polling: PollingConfig,
    pub tda_stream: TdaStreamConfig,
}

/// Which parts run in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Store sinks, aggregator, cache updater.
    pub consumers: bool,
    /// Feeds and polling jobs.
    pub producers: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        consumers: true,
        producers: true,
    };
}

/// The backends the engine works on.
#[derive(Debug, Clone)]
pub struct Backends {
    pub store: Arc<AnyStore>,
    pub bus: AnyBus,
    pub cache: AnyCache,
    pub providers: Arc<ProviderRegistry>,
}

/// The running engine.
#[derive(Debug)]
pub struct Engine {
    pub backends: Backends,
    pub prices: Arc<PriceService>,
    pub polling: Option<Arc<PollingScheduler>>,
    pub connectors: Option<Arc<ConnectorSupervisor>>,
    pub tda_jobs: Option<Arc<TdaJobRunner>>,
    /// The streaming TDA baskets this process owns (none configured: `None`).
    pub tda_stream: Option<Arc<Supervisor<TdaBaskets>>>,
    producers_cancel: CancellationToken,
    producers: TaskTracker,
    derivers: TaskTracker,
    sinks: TaskTracker,
}

impl Engine {
    /// Subscribes every consumer first (so nothing published is missed), then
    /// starts the feeds and the supervisors. `services` are the caller's, on
    /// the same backends (polling jobs fetch through its price service,
    /// connectors open their secrets through its connector service).
    pub async fn start(
        backends: Backends,
        cfg: &EngineConfig,
        feeds: &FeedsConfig,
        services: &Services,
        roles: Roles,
    ) -> Result<Engine> {
        let prices = services.prices.clone();
        let producers_cancel = CancellationToken::new();
        let (producers, derivers, sinks) =
            (TaskTracker::new(), TaskTracker::new(), TaskTracker::new());
        let bus = &backends.bus;
        if roles.consumers {
            sinks::start(bus, &backends.store, cfg, &sinks).await?;
            let consumer = bus.subscribe(Topic::Ticks, "aggregator").await?;
            // The aggregator feeds the latest-price cache from the ticks it
            // reads (no group of its own decoding every tick again).
            let latest = cache_updater::LatestFeed::start(backends.cache.clone(), &derivers);
            derivers.spawn(aggregator::run(
                consumer,
                bus.clone(),
                backends.store.clone(),
                latest,
                cfg.aggregator.clone(),
            ));
        }
        let mut tda_stream = None;
        if roles.consumers && !cfg.tda_stream.baskets.is_empty() {
            let kind = TdaBaskets::new(cfg.tda_stream.clone(), backends.store.clone(), bus.clone());
            let cancel = producers_cancel.child_token();
            tda_stream = Some(Supervisor::start(kind, bus, cancel, &producers).await?);
        }
        let (mut polling, mut connectors, mut tda_jobs) = (None, None, None);
        if roles.producers {
            let kind = PollingJobs::new(backends.store.clone(), prices.clone());
            let cancel = producers_cancel.child_token();
            polling = Some(Supervisor::start(kind, bus, cancel, &producers).await?);
            let kind = Connectors::new(
                backends.store.clone(),
                bus.clone(),
                services.connectors.clone(),
            );
            let cancel = producers_cancel.child_token();
            connectors = Some(Supervisor::start(kind, bus, cancel, &producers).await?);
            let kind = TdaJobs::new(backends.store.clone(), services.tda.clone());
            let cancel = producers_cancel.child_token();
            tda_jobs = Some(Supervisor::start(kind, bus, cancel, &producers).await?);
            producers.spawn(prune_tda_results(
                backends.store.clone(),
                producers_cancel.child_token(),
            ));
            feeds::start(feeds, &backends, &producers, &producers_cancel)?;
        }
        Ok(Engine {
            backends,
            prices,
            polling,
            connectors,
            tda_jobs,
            tda_stream,
            producers_cancel,
            producers,
            derivers,
            sinks,
        })
    }

    /// Ordered shutdown: producers stop; `ticks`, `price-requests` and
    /// `polling-jobs` close and the aggregator drains them (publishing its
    /// last bars); then `bars` and `indicators` close and the sinks drain.
    /// Returns once everything received has been written.
    pub async fn shutdown(&self) {
        let bus = &self.backends.bus;
        self.producers_cancel.cancel();
        self.producers.close();
        self.producers.wait().await;
        for t in [
            Topic::Ticks,
            Topic::PriceRequests,
            Topic::PollingJobs,
            Topic::Connectors,
        ] {
            bus.close_topic(t);
        }
        self.derivers.close();
        self.derivers.wait().await;
        for t in [Topic::Bars, Topic::Indicators] {
            bus.close_topic(t);
        }
        self.sinks.close();
        self.sinks.wait().await;
        tracing::info!("engine stopped; all received events written");
    }
}

/// Drops the job results that expired, once a minute.
async fn prune_tda_results(store: Arc<AnyStore>, cancel: CancellationToken) {
    use marketd_store::prelude::*;
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = every.tick() => {}
        }
        match store.prune_tda_results(marketd_model::time::now_ns()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(results = n, "expired job results dropped"),
            Err(e) => tracing::warn!(error = %e, "could not drop expired job results"),
        }
    }
}
