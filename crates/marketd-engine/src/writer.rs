//! Sinks from the bus into the store: batched, retried until durable, and
//! committed only afterwards (at-least-once; the store's idempotent writes
//! make redelivery harmless).

use marketd_bus::{AnyConsumer, Consumer, Delivery};
use marketd_model::{Event, Tick};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Writer settings (`[writer]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriterConfig {
    /// Flush when this many rows are buffered.
    pub batch_size: usize,
    /// Flush at least this often (milliseconds) while rows are buffered.
    pub flush_interval_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_size: 5_000,
            flush_interval_ms: 100,
        }
    }
}

/// What a sink stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Ticks,
    Bars,
    Indicators,
    PriceRequests,
}

impl SinkKind {
    fn name(self) -> &'static str {
        match self {
            SinkKind::Ticks => "ticks",
            SinkKind::Bars => "bars",
            SinkKind::Indicators => "indicators",
            SinkKind::PriceRequests => "price_requests",
        }
    }
}

/// Runs a sink until its topic is closed and drained; everything received is
/// written before it returns.
pub async fn run_sink(
    kind: SinkKind,
    mut consumer: AnyConsumer,
    store: Arc<AnyStore>,
    cfg: WriterConfig,
) {
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let mut pending: Vec<Delivery> = Vec::with_capacity(cfg.batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let room = cfg.batch_size.saturating_sub(pending.len()).max(1);
        let received = match deadline {
            Some(d) => {
                match tokio::time::timeout_at(d, consumer.recv_batch(&mut pending, room)).await {
                    Ok(r) => r,
                    Err(_) => Ok(usize::MAX), // flush deadline
                }
            }
            None => consumer.recv_batch(&mut pending, room).await,
        };
        let (ended, flush_now) = match received {
            Ok(0) => (true, true),
            Ok(usize::MAX) => (false, true),
            Ok(_) => {
                if deadline.is_none() {
                    deadline = Some(Instant::now() + flush_every);
                }
                (false, pending.len() >= cfg.batch_size)
            }
            Err(e) => {
                tracing::error!(sink = kind.name(), error = %e, "bus receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                (false, false)
            }
        };
        if flush_now && !pending.is_empty() {
            write_until_durable(kind, &store, &pending).await;
            if let Err(e) = consumer.commit(&pending).await {
                tracing::warn!(sink = kind.name(), error = %e, "commit failed; batch may be redelivered");
            }
            pending.clear();
            deadline = None;
        }
        if ended {
            tracing::debug!(sink = kind.name(), "sink drained");
            return;
        }
    }
}

/// Retries a batch with capped backoff until the store takes it: a store
/// outage stalls the sink (and, through the bus, backpressures producers)
/// instead of losing acknowledged data.
async fn write_until_durable(kind: SinkKind, store: &AnyStore, batch: &[Delivery]) {
    let mut delay = Duration::from_millis(50);
    loop {
        let started = std::time::Instant::now();
        match write_batch(kind, store, batch).await {
            Ok(()) => {
                metrics::histogram!("marketd_store_write_seconds", "table" => kind.name())
                    .record(started.elapsed().as_secs_f64());
                return;
            }
            Err(e) => {
                metrics::counter!("marketd_store_write_errors_total", "table" => kind.name())
                    .increment(1);
                tracing::error!(sink = kind.name(), rows = batch.len(), error = %e, "store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn write_batch(
    kind: SinkKind,
    store: &AnyStore,
    batch: &[Delivery],
) -> marketd_store::Result<()> {
    match kind {
        SinkKind::Ticks => {
            let ticks: Vec<Tick> = batch
                .iter()
                .filter_map(|d| {
                    if let Event::Tick(t) = &d.envelope.event {
                        Some(t.clone())
                    } else {
                        None
                    }
                })
                .collect();
            let inserted = store.insert_ticks(&ticks).await?;
            metrics::counter!("marketd_ticks_stored_total").increment(inserted);
            let dup = ticks.len() as u64 - inserted.min(ticks.len() as u64);
            if dup > 0 {
                metrics::counter!("marketd_ticks_duplicate_total").increment(dup);
            }
        }
        SinkKind::Bars => {
            // Later versions of a bar supersede earlier ones in the same batch.
            // (Some dialects refuse to upsert one key twice in a statement.)
            let mut seen = std::collections::HashSet::new();
            let mut bars = Vec::with_capacity(batch.len());
            for d in batch.iter().rev() {
                if let Event::Bar(b) = &d.envelope.event
                    && seen.insert((b.source.clone(), b.symbol.clone(), b.interval, b.start))
                {
                    bars.push(b.clone());
                }
            }
            bars.reverse();
            store.upsert_bars(&bars).await?;
        }
        SinkKind::Indicators => {
            let xs: Vec<_> = batch
                .iter()
                .filter_map(|d| {
                    if let Event::Indicator(i) = &d.envelope.event {
                        Some(i.clone())
                    } else {
                        None
                    }
                })
                .collect();
            store.upsert_indicators(&xs).await?;
        }
        SinkKind::PriceRequests => {
            let xs: Vec<_> = batch
                .iter()
                .filter_map(|d| {
                    if let Event::PriceRequest(r) = &d.envelope.event {
                        Some(r.clone())
                    } else {
                        None
                    }
                })
                .collect();
            store.insert_price_requests(&xs).await?;
        }
    }
    Ok(())
}
