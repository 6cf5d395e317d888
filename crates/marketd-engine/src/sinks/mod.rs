//! Sinks from the bus into the store: batched, retried until durable, and
//! committed only afterwards (at-least-once; the store's idempotent writes
//! make redelivery harmless).
//!
//! A sink is a [`Sink`] (its topic, its table and how a batch is written),
//! listed once in [`SINKS`]; the batching, retrying and committing loop
//! ([`run`]) is shared by all of them. A table fed by one event variant is a
//! [`Table`]: a store function in `tables.rs` plus one line in [`SINKS`].

mod tables;

use futures::future::BoxFuture;
use marketd_bus::{AnyBus, AnyConsumer, Bus, Consumer, Delivery};
use marketd_model::{Event, Topic};
use marketd_store::AnyStore;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

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

/// One table fed from one topic.
pub trait Sink: Send + Sync {
    /// The topic it consumes.
    fn topic(&self) -> Topic;
    /// The table it writes: the `table` label of the store metrics.
    fn table(&self) -> &'static str;
    /// Writes the events of `batch` it stores. Must be idempotent: a batch
    /// is written again after a failed attempt or a redelivery.
    fn write<'a>(
        &'a self,
        store: &'a AnyStore,
        batch: &'a [Delivery],
    ) -> BoxFuture<'a, marketd_store::Result<()>>;
    /// The consumer group of this sink.
    fn group(&self) -> String {
        format!("store-{}", self.topic())
    }
    /// Batches this sink may have written at once. More than one only where
    /// the order of writes cannot matter (inserts that ignore what is
    /// stored): an upsert written out of order could put an older version
    /// of a row over a newer one.
    fn writes_in_flight(&self) -> usize {
        1
    }
}

/// Every sink the engine runs.
pub const SINKS: &[&dyn Sink] = &[
    &Table::new(Topic::Ticks, "ticks", tables::ticks).order_free(),
    &Table::new(Topic::Bars, "bars", tables::bars),
    &Table::new(Topic::Indicators, "indicators", tables::indicators),
    &Table::new(
        Topic::PriceRequests,
        "price_requests",
        tables::price_requests,
    )
    .order_free(),
];

/// Writes in flight of an order-free sink: a store server (PostgreSQL) then
/// works on one batch while the next is sent on another connection.
const ORDER_FREE_IN_FLIGHT: usize = 2;

/// A row type carried by one [`Event`] variant.
pub trait Carried: Clone + Send + Sync + 'static {
    /// The row `event` carries, if it is of this type.
    fn of(event: &Event) -> Option<&Self>;
}

/// Stores one batch of rows: idempotent, since a batch is written again
/// after a failed attempt or a redelivery.
pub type StoreRows<T> =
    for<'a> fn(&'a AnyStore, Vec<T>) -> BoxFuture<'a, marketd_store::Result<()>>;

/// The common sink: the rows of type `T` the events of `topic` carry, stored
/// by one function.
pub struct Table<T> {
    topic: Topic,
    table: &'static str,
    store: StoreRows<T>,
    in_flight: usize,
}

impl<T> Table<T> {
    pub const fn new(topic: Topic, table: &'static str, store: StoreRows<T>) -> Self {
        Table {
            topic,
            table,
            store,
            in_flight: 1,
        }
    }

    /// The table's writes only insert rows not stored yet, so batches may be
    /// written concurrently in any order.
    pub const fn order_free(mut self) -> Self {
        self.in_flight = ORDER_FREE_IN_FLIGHT;
        self
    }
}

impl<T: Carried> Sink for Table<T> {
    fn topic(&self) -> Topic {
        self.topic
    }

    fn table(&self) -> &'static str {
        self.table
    }

    fn writes_in_flight(&self) -> usize {
        self.in_flight
    }

    fn write<'a>(
        &'a self,
        store: &'a AnyStore,
        batch: &'a [Delivery],
    ) -> BoxFuture<'a, marketd_store::Result<()>> {
        let rows = batch
            .iter()
            .filter_map(|d| T::of(&d.envelope.event))
            .cloned()
            .collect();
        (self.store)(store, rows)
    }
}

/// Subscribes every sink of [`SINKS`] and spawns its [`run`] on `tasks`.
pub(crate) async fn start(
    bus: &AnyBus,
    store: &Arc<AnyStore>,
    cfg: &crate::EngineConfig,
    tasks: &TaskTracker,
) -> marketd_bus::Result<()> {
    for &sink in SINKS {
        let consumer = bus.subscribe(sink.topic(), &sink.group()).await?;
        tasks.spawn(run(sink, consumer, store.clone(), cfg.writer.clone()));
    }
    Ok(())
}

/// What one wait on the consumer ended with.
enum Step {
    /// Deliveries were added to the pending batch.
    Received,
    /// The flush deadline of the pending batch passed first.
    FlushDue,
    /// The topic is closed and drained.
    Drained,
    /// The bus failed; try again shortly.
    Failed(marketd_bus::Error),
}

impl From<marketd_bus::Result<usize>> for Step {
    fn from(r: marketd_bus::Result<usize>) -> Step {
        match r {
            Ok(0) => Step::Drained,
            Ok(_) => Step::Received,
            Err(e) => Step::Failed(e),
        }
    }
}

/// Runs `sink` until its topic is closed and drained; everything received is
/// written before it returns.
///
/// Batches are written while the next ones are received: each write runs
/// as a task of its own, up to [`Sink::writes_in_flight`] at once, and a
/// batch's offsets are committed once it and every batch received before
/// it are written (never before: at-least-once, in the order received).
pub async fn run(
    sink: &'static dyn Sink,
    mut consumer: AnyConsumer,
    store: Arc<AnyStore>,
    cfg: WriterConfig,
) {
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let in_flight = sink.writes_in_flight().max(1);
    let mut pending: Vec<Delivery> = Vec::with_capacity(cfg.batch_size);
    let mut deadline: Option<Instant> = None;
    // Writes in the order their batches were received.
    let mut writing: VecDeque<JoinHandle<Vec<Delivery>>> = VecDeque::with_capacity(in_flight);
    loop {
        let room = cfg.batch_size.saturating_sub(pending.len()).max(1);
        let step = tokio::select! {
            // The oldest write is committed as soon as it completes, even
            // while the topic is quiet. Receiving is cancel-safe: nothing
            // is taken from the consumer by a receive that did not complete.
            written = async { writing.front_mut().expect("guarded").await }, if !writing.is_empty() => {
                writing.pop_front();
                commit(sink, &mut consumer, written).await;
                continue;
            }
            step = receive(&mut consumer, &mut pending, room, deadline) => step,
        };
        let flush_now = match &step {
            Step::Drained | Step::FlushDue => true,
            Step::Received => {
                deadline.get_or_insert_with(|| Instant::now() + flush_every);
                pending.len() >= cfg.batch_size
            }
            Step::Failed(e) => {
                tracing::error!(sink = sink.table(), error = %e, "bus receive failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                false
            }
        };
        if flush_now && !pending.is_empty() {
            while writing.len() >= in_flight {
                let oldest = writing.pop_front().expect("non-empty");
                commit(sink, &mut consumer, oldest.await).await;
            }
            let batch = std::mem::replace(&mut pending, Vec::with_capacity(cfg.batch_size));
            let store = store.clone();
            writing.push_back(tokio::spawn(async move {
                write_until_durable(sink, &store, &batch).await;
                batch
            }));
            deadline = None;
        }
        if let Step::Drained = step {
            while let Some(write) = writing.pop_front() {
                commit(sink, &mut consumer, write.await).await;
            }
            tracing::debug!(sink = sink.table(), "sink drained");
            return;
        }
    }
}

/// Waits for deliveries until `deadline` (when a batch is pending).
async fn receive(
    consumer: &mut AnyConsumer,
    pending: &mut Vec<Delivery>,
    room: usize,
    deadline: Option<Instant>,
) -> Step {
    let receive = consumer.recv_batch(pending, room);
    match deadline {
        Some(at) => tokio::time::timeout_at(at, receive)
            .await
            .map_or(Step::FlushDue, Step::from),
        None => Step::from(receive.await),
    }
}

/// Commits a batch whose write completed. A write task that panicked takes
/// the sink down with it, as a write in the sink's own task did: committing
/// the batches after it would move the group's offsets past a batch that was
/// never stored.
async fn commit(
    sink: &dyn Sink,
    consumer: &mut AnyConsumer,
    written: Result<Vec<Delivery>, tokio::task::JoinError>,
) {
    match written {
        Ok(batch) => {
            if let Err(e) = consumer.commit(&batch).await {
                tracing::warn!(sink = sink.table(), error = %e, "commit failed; batch may be redelivered");
            }
        }
        Err(e) => {
            tracing::error!(sink = sink.table(), error = %e, "store write task failed; batch not committed");
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
            panic!("store write task of {} was cancelled", sink.table());
        }
    }
}

/// Retries a batch with capped backoff until the store takes it: a store
/// outage stalls the sink (and, through the bus, backpressures producers)
/// instead of losing acknowledged data.
async fn write_until_durable(sink: &dyn Sink, store: &AnyStore, batch: &[Delivery]) {
    let table = sink.table();
    let mut delay = Duration::from_millis(50);
    loop {
        let started = std::time::Instant::now();
        match sink.write(store, batch).await {
            Ok(()) => {
                metrics::histogram!("marketd_store_write_seconds", "table" => table)
                    .record(started.elapsed().as_secs_f64());
                return;
            }
            Err(e) => {
                metrics::counter!("marketd_store_write_errors_total", "table" => table)
                    .increment(1);
                tracing::error!(sink = table, rows = batch.len(), error = %e, "store write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
