//! `marketd replay CAPTURE` (or `--connector ID|NAME`): a recorded venue
//! session, from a capture file or from a connector's raw frame archive
//! (`raw_messages`), played into the configured pipeline. The frame-to-tick work is the engine's
//! ([`marketd_engine::services::replay`], the venue decoders of live
//! connectors); this module wires it to the backends of the configuration.
//!
//! With the in-process bus (`memory://`, the default) nothing else would
//! read what is published, so the replay starts the engine's consumers
//! (store sinks, aggregator, latest cache) itself, drains them at the end
//! and counts the new rows of the store. With Kafka the running workers
//! store the ticks; the replay only publishes, and `stored` is `None`.

use crate::config::Config;
use anyhow::Context;
use marketd_engine::services::replay::{
    ReplayProgress, ReplaySpeed, ReplayStats, replay_archive, replay_capture,
};
use marketd_engine::{Engine, Roles, Services};
use marketd_sources::venues::Venue;
use marketd_store::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Where the recorded frames are.
#[derive(Debug, Clone)]
pub enum ReplaySource {
    /// A capture file (`shared/fixtures/captures` format).
    Capture(PathBuf),
    /// The raw frames archived by a WebSocket connector (its id or name).
    Archive(String),
}

impl std::fmt::Display for ReplaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplaySource::Capture(p) => write!(f, "{}", p.display()),
            ReplaySource::Archive(c) => write!(f, "the archive of connector {c}"),
        }
    }
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub source: ReplaySource,
    /// The venue whose decoder reads a capture's frames; default: from each
    /// connection's URL (an archive's is its connector's venue).
    pub venue: Option<Venue>,
    pub speed: ReplaySpeed,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub stats: ReplayStats,
    /// New tick rows in the store; `None` when the pipeline is another
    /// process's (an external bus).
    pub stored: Option<u64>,
    pub elapsed: Duration,
}

/// Replays `opts.source` into the pipeline of `cfg`; `progress` is called
/// as frames go out. Stops early (keeping what was sent) when `cancel` fires.
pub async fn replay(
    cfg: &Config,
    opts: &ReplayOptions,
    cancel: CancellationToken,
    progress: impl FnMut(ReplayProgress),
) -> anyhow::Result<ReplaySummary> {
    let text = match &opts.source {
        ReplaySource::Capture(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        ),
        ReplaySource::Archive(_) => None,
    };
    let backends = crate::connect_backends(cfg).await?;
    let connector = match &opts.source {
        ReplaySource::Archive(which) => Some(find_connector(&backends.store, which).await?),
        ReplaySource::Capture(_) => None,
    };
    let in_process = cfg.bus.url.starts_with("memory:");
    let engine = if in_process {
        let services = Services::new(&backends, &cfg.services(), crate::keyring(cfg)?);
        let roles = Roles {
            consumers: true,
            producers: false,
        };
        Some(Arc::new(
            Engine::start(
                backends.clone(),
                &cfg.engine(),
                &cfg.feeds,
                &services,
                roles,
            )
            .await
            .context("starting the pipeline")?,
        ))
    } else {
        None
    };
    let before = backends.store.count_ticks(None).await?;
    let started = Instant::now();
    let bus = backends.bus.clone();
    let result = match (&text, &connector) {
        (Some(text), _) => {
            replay_capture(text, opts.venue, opts.speed, bus, cancel, progress).await
        }
        (None, Some(c)) => {
            replay_archive(&backends.store, c, 0, opts.speed, bus, cancel, progress).await
        }
        (None, None) => unreachable!("a capture or a connector was read above"),
    };
    // Drain even after a failure: what was published is stored.
    if let Some(engine) = &engine {
        engine.shutdown().await;
    }
    let stats = result.with_context(|| format!("replaying {}", opts.source))?;
    let elapsed = started.elapsed();
    let stored = match engine {
        Some(_) => Some(backends.store.count_ticks(None).await? - before),
        None => None,
    };
    backends.store.close().await;
    Ok(ReplaySummary {
        stats,
        stored,
        elapsed,
    })
}

impl ReplaySummary {
    /// The lines printed at the end of `marketd replay`.
    pub fn lines(&self) -> Vec<String> {
        let s = &self.stats;
        vec![
            format!(
                "frames:        {} received on {} connection(s) in {:.2} s",
                s.frames,
                s.connections,
                self.elapsed.as_secs_f64()
            ),
            format!("data frames:   {}", s.data_frames),
            format!(
                "not data:      {} (acks, pongs, notices, depth, klines, books)",
                s.other_frames
            ),
            format!("decode errors: {}", s.decode_errors),
            format!("ticks:         {} published", s.ticks),
            match self.stored {
                Some(n) => {
                    format!("ticks stored:  {n} (new rows; repeats of stored ticks are not)")
                }
                None => "ticks stored:  by the workers of the external bus (not counted here)"
                    .to_string(),
            },
        ]
    }
}

/// The connector with id or name `which`.
async fn find_connector(
    store: &marketd_store::AnyStore,
    which: &str,
) -> anyhow::Result<marketd_model::Connector> {
    let found = match which.parse::<uuid::Uuid>() {
        Ok(id) => store.connector(id).await?,
        Err(_) => store
            .connectors()
            .await?
            .into_iter()
            .find(|c| c.name == which),
    };
    found.ok_or_else(|| anyhow::anyhow!("no connector has the id or name {which:?}"))
}
