//! The domain operations of marketd, callable alike from the HTTP handlers,
//! the CLI and (later) the realtime API: each front end extracts its input,
//! calls a service and renders the result, so a rule is written once.
//!
//! - [`prices`]: latest prices (cache, provider, store), the
//!   [`PriceService`](prices::PriceService) the polling jobs fetch through;
//! - [`series`]: checked reads of stored ticks, bars and moving averages;
//! - [`polling`]: polling jobs (check, store, announce on the bus);
//! - [`access`]: API keys and encrypted upstream credentials;
//! - [`connectors`]: user-configured sources (check, seal secrets, store,
//!   announce on the `connectors` topic), and their one-shot preview;
//! - [`tda`]: persistent homology: synchronous computations, jobs, uploads;
//! - [`tda_signals`]: the configured streaming TDA baskets and their
//!   stored signals;
//! - [`replay`]: recorded venue sessions played through the venue decoders
//!   onto `ticks` (`marketd replay`).
//!
//! Each service has its own `thiserror` error naming what went wrong; the
//! HTTP API maps them to statuses and error codes in one place
//! (`marketd_api::error`). A new domain (connectors, TDA jobs) adds a file
//! here and a field to [`Services`].

pub mod access;
pub mod connectors;
pub mod polling;
pub mod prices;
pub mod replay;
pub mod series;
pub mod tda;
pub mod tda_signals;

use crate::{AggregatorConfig, Backends, PollingConfig, TdaStreamConfig};
use access::AccessService;
use connectors::ConnectorService;
use marketd_store::crypto::Keyring;
use polling::PollingService;
use prices::{PriceService, PricesConfig};
use series::SeriesService;
use std::sync::Arc;
use tda::TdaService;
use tda_signals::TdaSignalService;

/// What the services need from the configuration.
#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub prices: PricesConfig,
    /// Limits of polling-job requests.
    pub polling: PollingConfig,
    /// Which bar intervals and moving-average windows exist to be read.
    pub aggregator: AggregatorConfig,
    /// Largest page size of list reads.
    pub max_page: u32,
    /// Limits of the persistent-homology service.
    pub tda: crate::tda::TdaConfig,
    /// The streaming TDA baskets whose signals can be read.
    pub tda_stream: TdaStreamConfig,
}

/// Every service, built once per process over its backends (cheap to clone;
/// share it behind an `Arc`).
#[derive(Debug, Clone)]
pub struct Services {
    pub prices: Arc<PriceService>,
    pub series: SeriesService,
    pub polling: PollingService,
    pub access: AccessService,
    pub connectors: ConnectorService,
    pub tda: TdaService,
    pub tda_signals: TdaSignalService,
}

impl Services {
    pub fn new(backends: &Backends, cfg: &ServicesConfig, keyring: Keyring) -> Self {
        let b = backends;
        let access = AccessService::new(b.store.clone(), Arc::new(keyring));
        Services {
            prices: Arc::new(PriceService::new(
                b.providers.clone(),
                b.cache.clone(),
                b.store.clone(),
                b.bus.clone(),
                &cfg.prices,
            )),
            series: SeriesService::new(b.store.clone(), cfg.aggregator.clone(), cfg.max_page),
            polling: PollingService::new(
                b.store.clone(),
                b.bus.clone(),
                b.providers.clone(),
                cfg.prices.default_provider.clone(),
                cfg.polling.clone(),
            ),
            access: access.clone(),
            connectors: ConnectorService::new(b.store.clone(), b.bus.clone(), access, cfg.max_page),
            tda: TdaService::new(b.store.clone(), b.bus.clone(), cfg.tda.clone()),
            tda_signals: TdaSignalService::new(
                b.store.clone(),
                cfg.tda_stream.clone(),
                cfg.max_page,
            ),
        }
    }
}
