//! Filling a WebSocket connector's trade-id gaps from the venue's REST
//! history (Binance `aggTrades?fromId=` / `historicalTrades?fromId=`).
//!
//! The runner's [`TradeIds`](super::websocket) check finds a skipped range
//! and [`Backfill::submit`]s it; a worker task of the connector fetches the
//! missing ids (paging by `fromId`, sharing the REST connectors' per-host
//! limiter, retrying 429/418/5xx after `Retry-After`) and publishes them on
//! `ticks` through its own [`TickPublisher`], so the live stream never waits
//! on the venue's REST API: gaps wait in a bounded queue, and a gap that
//! finds the queue full is counted as a backfill error and left unfilled.
//!
//! The recovered ticks are the ones the stream would have given (same
//! source, symbol, trade id), so the stores' identity rules keep each trade
//! once; the runner's id check has already moved past the range, so a live
//! repeat of a recovered id is dropped before the bus.

use super::Shared;
use super::status::StatusReporter;
use crate::feeds::TickPublisher;
use crate::services::connectors::WsDefinition;
use marketd_bus::AnyBus;
use marketd_model::{ConnectorStatus, Symbol};
use marketd_sources::venues::Channel;
use marketd_sources::venues::binance::HistoryClient;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Gaps waiting for the worker; more are counted and left unfilled.
const QUEUED_GAPS: usize = 256;

/// Most ids fetched for one gap (100 requests of 1000): a longer outage is
/// filled from its start, the rest logged as lost.
const MAX_IDS_PER_GAP: u64 = 100_000;

/// A skipped range of trade ids, both ends included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gap {
    pub symbol: Symbol,
    pub from: u64,
    pub to: u64,
}

/// What the worker did, read by the runner for the status.
#[derive(Debug, Default)]
struct Stats {
    recovered: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Stats {
    fn failed(&self, connector: Uuid, message: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("marketd_connector_backfill_errors_total").increment(1);
        tracing::warn!(%connector, error = %message, "trade backfill failed");
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }
}

/// A connector's backfill worker.
pub(super) struct Backfill {
    connector: Uuid,
    tx: mpsc::Sender<Gap>,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
    cancel: CancellationToken,
}

impl Backfill {
    /// Starts the worker of a connector whose ids are checked and whose
    /// venue has a REST history at a known base; `None` otherwise (gaps
    /// are then only counted and logged).
    pub(super) fn start(
        shared: &Shared,
        connector: Uuid,
        def: &WsDefinition,
        cancel: CancellationToken,
    ) -> Option<Backfill> {
        let channel = def.id_channel?;
        let Some(base) = def.rest_url.clone() else {
            tracing::info!(%connector, "no rest_url for this stream: trade-id gaps are counted, not backfilled");
            return None;
        };
        let client = match HistoryClient::new(shared.http.clone(), def.venue, base) {
            Ok(c) => c
                .with_limiters(shared.limiters.clone())
                .with_policy(shared.retry),
            Err(e) => {
                tracing::info!(%connector, reason = %e, "trade-id gaps are counted, not backfilled");
                return None;
            }
        };
        let (tx, rx) = mpsc::channel(QUEUED_GAPS);
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(work(
            connector,
            client,
            channel,
            rx,
            shared.bus.clone(),
            stats.clone(),
            cancel.clone(),
        ));
        Some(Backfill {
            connector,
            tx,
            stats,
            task,
            cancel,
        })
    }

    /// Queues `gap` without waiting: a full queue costs the gap, not the
    /// live stream.
    pub(super) fn submit(&self, gap: Gap) {
        if let Err(e) = self.tx.try_send(gap) {
            let gap = match e {
                mpsc::error::TrySendError::Full(g) | mpsc::error::TrySendError::Closed(g) => g,
            };
            self.stats.failed(
                self.connector,
                format!(
                    "backfill of {} ids {}..={} dropped: {QUEUED_GAPS} gaps already wait",
                    gap.symbol, gap.from, gap.to
                ),
            );
        }
    }

    /// Copies the worker's counts into the status: `backfilled` is the
    /// stored count (`base`, earlier runs) plus this run's; a failure since
    /// the last copy becomes `last_error`.
    pub(super) async fn report(&self, base: &ConnectorStatus, status: &mut StatusReporter) {
        let backfilled = base.backfilled + self.stats.recovered.load(Ordering::Relaxed);
        let error = self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if status.status().backfilled != backfilled || error.is_some() {
            status
                .update(|c| {
                    c.backfilled = backfilled;
                    if error.is_some() {
                        c.last_error = error;
                    }
                })
                .await;
        }
    }

    /// Stops the worker (a gap being fetched is abandoned) and waits for it.
    pub(super) async fn stop(&mut self) {
        self.cancel.cancel();
        if let Err(e) = (&mut self.task).await {
            tracing::warn!(connector = %self.connector, error = %e, "backfill worker ended abnormally");
        }
    }
}

/// Records the gaps the id check found: counted (`gaps` is the run's total
/// with the stored count), published at once as a connector-status event,
/// and handed to the worker when there is one.
pub(super) async fn found(
    gaps: impl Iterator<Item = Gap>,
    total: u64,
    backfill: Option<&Backfill>,
    status: &mut StatusReporter,
) {
    for gap in gaps {
        match backfill {
            Some(b) => b.submit(gap),
            None => {
                tracing::info!(symbol = %gap.symbol, from = gap.from, to = gap.to, "trade-id gap not backfilled (no rest_url)")
            }
        }
    }
    status.update(|c| c.gaps = total).await;
    status.report().await;
}

async fn work(
    connector: Uuid,
    client: HistoryClient,
    channel: Channel,
    mut rx: mpsc::Receiver<Gap>,
    bus: AnyBus,
    stats: Arc<Stats>,
    cancel: CancellationToken,
) {
    let mut publisher = TickPublisher::new(bus);
    loop {
        let gap = tokio::select! {
            _ = cancel.cancelled() => break,
            gap = rx.recv() => match gap {
                Some(gap) => gap,
                None => break,
            },
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            () = fill(connector, &client, channel, &gap, &mut publisher, &stats) => {}
        }
    }
    publisher.flush().await;
}

/// Fetches `gap` page by page, publishing each page as it comes.
async fn fill(
    connector: Uuid,
    client: &HistoryClient,
    channel: Channel,
    gap: &Gap,
    publisher: &mut TickPublisher,
    stats: &Stats,
) {
    let to = gap.to.min(gap.from.saturating_add(MAX_IDS_PER_GAP - 1));
    if to < gap.to {
        tracing::warn!(%connector, symbol = %gap.symbol, from = to + 1, to = gap.to,
            "trade-id gap longer than {MAX_IDS_PER_GAP} ids: its end is not backfilled");
    }
    let mut recovered = 0u64;
    let mut at = Some(gap.from);
    while let Some(from) = at {
        match client.page(channel, &gap.symbol, from, to).await {
            Ok(page) => {
                let n = page.ticks.len() as u64;
                publisher.publish(page.ticks).await;
                publisher.flush().await;
                recovered += n;
                stats.recovered.fetch_add(n, Ordering::Relaxed);
                metrics::counter!("marketd_connector_backfilled_trades_total").increment(n);
                at = page.next;
            }
            Err(e) => {
                stats.failed(
                    connector,
                    format!("backfill of {} ids {from}..={to}: {e}", gap.symbol),
                );
                return;
            }
        }
    }
    let missing = (to - gap.from + 1).saturating_sub(recovered);
    tracing::info!(%connector, symbol = %gap.symbol, from = gap.from, to, recovered, missing, "trade-id gap backfilled");
}
