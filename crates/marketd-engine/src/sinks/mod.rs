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
}

/// Every sink the engine runs.
pub const SINKS: &[&dyn Sink] = &[
    &Table::new(Topic::Ticks, "ticks", tables::ticks),
    &Table::new(Topic::Bars, "bars", tables::bars),
    &Table::new(Topic::Indicators, "indicators", tables::indicators),
    &Table::new(
        Topic::PriceRequests,
        "price_requests",
        tables::price_requests,
    ),
];

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
}

impl<T> Table<T> {
    pub const fn new(topic: Topic, table: &'static str, store: StoreRows<T>) -> Self {
        Table {
            topic,
            table,
            store,
        }
    }
}

impl<T: Carried> Sink for Table<T> {
    fn topic(&self) -> Topic {
        self.topic
    }

    fn table(&self) -> &'static str {
        self.table
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
/// A batch is written while the next one is received: the write runs as a
/// task of its own, one at a time (writes in order, so an upsert never puts
/// an older row over a newer one), and a batch's offsets are committed once
/// it is durable, never before (at-least-once, in the order received).
///
/// Two writes at once were measured for the insert-only tables: on the
/// 2-core bench machine the Kafka -> PostgreSQL ingest was no faster
/// (61-78k against 73-92k ticks/s with one, alternated runs), the second
/// COPY's CPU taken from the aggregator (docs/benchmarks.md).
pub async fn run(
    sink: &'static dyn Sink,
    mut consumer: AnyConsumer,
    store: Arc<AnyStore>,
    cfg: WriterConfig,
) {
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let mut pending: Vec<Delivery> = Vec::with_capacity(cfg.batch_size);
    let mut deadline: Option<Instant> = None;
    // The batch being written, if any.
    let mut writing: Option<JoinHandle<Vec<Delivery>>> = None;
    loop {
        let room = cfg.batch_size.saturating_sub(pending.len()).max(1);
        let step = tokio::select! {
            // The write is committed as soon as it completes, even
            // while the topic is quiet. Receiving is cancel-safe: nothing
            // is taken from the consumer by a receive that did not complete.
            written = async { writing.as_mut().expect("guarded").await }, if writing.is_some() => {
                writing = None;
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
            if let Some(previous) = writing.take() {
                commit(sink, &mut consumer, previous.await).await;
            }
            let batch = std::mem::replace(&mut pending, Vec::with_capacity(cfg.batch_size));
            let store = store.clone();
            writing = Some(tokio::spawn(async move {
                write_until_durable(sink, &store, &batch).await;
                batch
            }));
            deadline = None;
        }
        if let Step::Drained = step {
            if let Some(last) = writing.take() {
                commit(sink, &mut consumer, last.await).await;
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
