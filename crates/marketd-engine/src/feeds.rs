//! Feeds (simulated market, CSV replay) → validated ticks → the `ticks` topic.

use crate::Backends;
use marketd_bus::Bus;
use marketd_model::time::now_ns;
use marketd_model::{Event, Tick};
use marketd_sources::{ReplayFeed, ReplayFeedConfig, SimulatedFeed, SimulatedFeedConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `[feeds]`: streams that run by themselves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedsConfig {
    /// `[feeds.simulated]`: the built-in simulated market stream.
    pub simulated: SimulatedFeedConfig,
    /// `[feeds.replay]`: a CSV of ticks played into the pipeline.
    pub replay: ReplayFeedConfig,
}

/// Spawns the enabled feeds and their forwarders on `tasks`.
pub(crate) fn start(
    cfg: &FeedsConfig,
    backends: &Backends,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> crate::Result<()> {
    if cfg.simulated.enabled && !cfg.simulated.symbols.is_empty() {
        let (tx, rx) = mpsc::channel(64);
        let market = backends.providers.simulated_market().unwrap_or_else(|| {
            std::sync::Arc::new(marketd_sources::SimulatedMarket::new(cfg.simulated.seed))
        });
        let feed = SimulatedFeed::new(cfg.simulated.clone(), market);
        tasks.spawn(feed.run(tx, cancel.child_token()));
        tasks.spawn(forward(rx, backends.bus.clone()));
        tracing::info!(
            symbols = cfg.simulated.symbols.len(),
            rate = cfg.simulated.ticks_per_second,
            "simulated feed started"
        );
    }
    if cfg.replay.enabled {
        let (tx, rx) = mpsc::channel(64);
        let feed = ReplayFeed::new(&cfg.replay)?;
        let cancel = cancel.child_token();
        tasks.spawn(async move {
            match feed.run(tx, cancel).await {
                Ok(stats) => tracing::info!(?stats, "replay feed finished"),
                Err(e) => tracing::error!(error = %e, "replay feed failed"),
            }
        });
        tasks.spawn(forward(rx, backends.bus.clone()));
        tracing::info!(path = ?cfg.replay.path, speed = cfg.replay.speed, "replay feed started");
    }
    Ok(())
}

/// Publishes feed batches; invalid ticks are logged, counted and dropped.
/// Ends when the feed ends (its sender is dropped).
async fn forward(mut rx: mpsc::Receiver<Vec<Tick>>, bus: marketd_bus::AnyBus) {
    while let Some(batch) = rx.recv().await {
        publish_ticks(&bus, batch).await;
    }
}

/// Validates and publishes ticks on the bus, counting them per source
/// (once per batch and source, not per tick: this is the ingest hot path).
pub async fn publish_ticks(bus: &marketd_bus::AnyBus, batch: Vec<Tick>) {
    let now = now_ns();
    let mut events = Vec::with_capacity(batch.len());
    let mut counts: Vec<(std::sync::Arc<str>, u64)> = Vec::new();
    for t in batch {
        match t.validate(now) {
            Ok(()) => {
                match counts.iter_mut().find(|(s, _)| *s == t.source) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((t.source.clone(), 1)),
                }
                events.push(Event::Tick(t));
            }
            Err(e) => {
                metrics::counter!("marketd_feed_rejected_total", "source" => t.source.to_string())
                    .increment(1);
                tracing::warn!(source = %t.source, symbol = %t.symbol, error = %e, "tick rejected");
            }
        }
    }
    for (source, n) in counts {
        metrics::counter!("marketd_ticks_ingested_total", "source" => source.to_string())
            .increment(n);
    }
    if let Err(e) = bus.publish_batch(events).await {
        tracing::warn!(error = %e, "could not publish feed ticks");
    }
}
