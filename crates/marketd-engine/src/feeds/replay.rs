//! `[feeds.replay]`: a CSV file of ticks played into the pipeline.

use super::{Batches, Feed, FeedRun, FeedsConfig};
use crate::Backends;
use marketd_sources::ReplayFeed;
use tokio_util::sync::CancellationToken;

pub(super) fn build(cfg: &FeedsConfig, _: &Backends) -> crate::Result<Option<Box<dyn Feed>>> {
    let cfg = &cfg.replay;
    if !cfg.enabled {
        return Ok(None);
    }
    let feed = ReplayFeed::new(cfg)?;
    tracing::info!(path = ?cfg.path, speed = cfg.speed, "replay feed started");
    Ok(Some(Box::new(feed)))
}

impl Feed for ReplayFeed {
    fn run(self: Box<Self>, tx: Batches, cancel: CancellationToken) -> FeedRun {
        Box::pin(async move {
            let stats = ReplayFeed::run(*self, tx, cancel).await?;
            tracing::info!(?stats, "replay feed finished");
            Ok(())
        })
    }
}
