//! `[feeds.simulated]`: trades from the simulated market, sharing the walks
//! of the `simulated` provider so `latest` agrees with the stream.

use super::{Batches, Feed, FeedRun, FeedsConfig};
use crate::Backends;
use marketd_sources::{SimulatedFeed, SimulatedMarket};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub(super) fn build(
    cfg: &FeedsConfig,
    backends: &Backends,
) -> crate::Result<Option<Box<dyn Feed>>> {
    let cfg = &cfg.simulated;
    if !cfg.enabled || cfg.symbols.is_empty() {
        return Ok(None);
    }
    let market = backends
        .providers
        .simulated_market()
        .unwrap_or_else(|| Arc::new(SimulatedMarket::new(cfg.seed)));
    if let Some(regime) = &cfg.regime {
        let regime = regime
            .resolve(marketd_model::time::now_ns())
            .map_err(marketd_sources::Error::Config)?;
        tracing::info!(
            at = regime.at_ns,
            symbols = regime.symbols.len(),
            "simulated regime change configured"
        );
        market.set_regime(Some(regime));
    }
    tracing::info!(
        symbols = cfg.symbols.len(),
        rate = cfg.ticks_per_second,
        "simulated feed started"
    );
    Ok(Some(Box::new(SimulatedFeed::new(cfg.clone(), market))))
}

impl Feed for SimulatedFeed {
    fn run(self: Box<Self>, tx: Batches, cancel: CancellationToken) -> FeedRun {
        Box::pin(async move {
            SimulatedFeed::run(*self, tx, cancel).await;
            Ok(())
        })
    }
}
