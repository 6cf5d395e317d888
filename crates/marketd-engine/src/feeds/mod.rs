//! Feeds: streams that run by themselves (the simulated market, a CSV
//! replay) → validated ticks → the `ticks` topic.
//!
//! A feed is a [`Feed`], built from its section of [`FeedsConfig`] by a
//! [`FeedBuilder`] listed in [`FEEDS`]. A new venue is one file here (its
//! builder and its `Feed` impl), its config section in [`FeedsConfig`] and
//! one line in [`FEEDS`]; publishing is shared ([`TickPublisher`]).

mod publish;
mod replay;
mod simulated;

pub use publish::{PUBLISH_WINDOW, TickPublisher};

use crate::Backends;
use futures::future::BoxFuture;
use marketd_model::Tick;
use marketd_sources::{ReplayFeedConfig, SimulatedFeedConfig};
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

/// Where a feed sends its batches of ticks.
pub type Batches = mpsc::Sender<Vec<Tick>>;

/// A feed's run: ends when its stream ends; an error is logged.
pub type FeedRun = BoxFuture<'static, crate::Result<()>>;

/// A stream of ticks.
pub trait Feed: Send {
    /// Sends batches of ticks to `tx` until the stream ends, `cancel` fires
    /// or the receiver is dropped.
    fn run(self: Box<Self>, tx: Batches, cancel: CancellationToken) -> FeedRun;
}

/// Builds a feed from the configuration; `None` when it is not enabled.
/// An error (a bad setting) stops the start of the engine.
pub type FeedBuilder = fn(&FeedsConfig, &Backends) -> crate::Result<Option<Box<dyn Feed>>>;

/// Every feed marketd has by name (for logs), in start order.
pub const FEEDS: &[(&str, FeedBuilder)] =
    &[("simulated", simulated::build), ("replay", replay::build)];

/// Spawns the enabled feeds and their publishers on `tasks`.
pub(crate) fn start(
    cfg: &FeedsConfig,
    backends: &Backends,
    tasks: &TaskTracker,
    cancel: &CancellationToken,
) -> crate::Result<()> {
    for &(name, build) in FEEDS {
        let Some(feed) = build(cfg, backends)? else {
            continue;
        };
        let (tx, rx) = mpsc::channel(64);
        let run = feed.run(tx, cancel.child_token());
        tasks.spawn(async move {
            if let Err(e) = run.await {
                tracing::error!(feed = name, error = %e, "feed failed");
            }
        });
        tasks.spawn(publish::forward(rx, backends.bus.clone()));
    }
    Ok(())
}
