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
pub async fn run(
    sink: &'static dyn Sink,
    mut consumer: AnyConsumer,
    store: Arc<AnyStore>,
    cfg: WriterConfig,
) {
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let mut pending: Vec<Delivery> = Vec::with_capacity(cfg.batch_size);
    let mut deadline: Option<Instant> = None;
    loop {
        let room = cfg.batch_size.saturating_sub(pending.len()).max(1);
        let receive = consumer.recv_batch(&mut pending, room);
        let step = match deadline {
            Some(at) => tokio::time::timeout_at(at, receive)
                .await
                .map_or(Step::FlushDue, Step::from),
            None => Step::from(receive.await),
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
            write_until_durable(sink, &store, &pending).await;
            if let Err(e) = consumer.commit(&pending).await {
                tracing::warn!(sink = sink.table(), error = %e, "commit failed; batch may be redelivered");
            }
            pending.clear();
            deadline = None;
        }
        if let Step::Drained = step {
            tracing::debug!(sink = sink.table(), "sink drained");
            return;
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
