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
        writer_group(self.topic())
    }
    /// Whether its rows are only inserted (idempotently), never updated:
    /// then batches may be written out of order, and the store decides how
    /// many are handed over at once
    /// ([`AnyStore::insert_batches_in_flight`]). Upserted tables are written
    /// one batch at a time, so an older row never lands over a newer one.
    fn insert_only(&self) -> bool {
        false
    }
}

/// The consumer group of the sink that stores `topic`.
pub(crate) fn writer_group(topic: Topic) -> String {
    format!("store-{topic}")
}

/// Every sink the engine runs.
pub const SINKS: &[&dyn Sink] = &[
    &Table::new(Topic::Ticks, "ticks", tables::ticks).insert_only(),
    &Table::new(Topic::Bars, "bars", tables::bars),
    &Table::new(Topic::Indicators, "indicators", tables::indicators),
    &Table::new(
        Topic::PriceRequests,
        "price_requests",
        tables::price_requests,
    )
    .insert_only(),
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
    insert_only: bool,
}

impl<T> Table<T> {
    pub const fn new(topic: Topic, table: &'static str, store: StoreRows<T>) -> Self {
        Table {
            topic,
            table,
            store,
            insert_only: false,
        }
    }

    /// Marks the table insert-only (see [`Sink::insert_only`]).
    pub const fn insert_only(mut self) -> Self {
        self.insert_only = true;
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

    fn insert_only(&self) -> bool {
        self.insert_only
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
/// task of its own, and a batch's offsets are committed once it is durable,
/// never before, in the order the batches were received (at-least-once).
/// Upserted tables are written one batch at a time (in order, so an upsert
/// never puts an older row over a newer one); insert-only tables hand the
/// store as many batches at once as it takes
/// ([`AnyStore::insert_batches_in_flight`]: two on SQLite, where the second
/// is encoded while the first is written, one on PostgreSQL, where two
/// `COPY`s at once were measured no faster, docs/benchmarks.md).
pub async fn run(
    sink: &'static dyn Sink,
    mut consumer: AnyConsumer,
    store: Arc<AnyStore>,
    cfg: WriterConfig,
) {
    let flush_every = Duration::from_millis(cfg.flush_interval_ms.max(1));
    let mut pending: Vec<Delivery> = Vec::with_capacity(cfg.batch_size);
    let mut deadline: Option<Instant> = None;
    let in_flight = if sink.insert_only() {
        store.insert_batches_in_flight().max(1)
    } else {
        1
    };
    // The batches being written, oldest first; committed in that order.
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
                let oldest = writing.pop_front().expect("a write in flight");
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
            while let Some(last) = writing.pop_front() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_bus::BusOptions;
    use marketd_model::{Decimal, Symbol, Tick, TickKind};
    use marketd_store::prelude::*;

    /// The tick sink on SQLite hands two batches at once to the store:
    /// everything received is stored once by the time the topic is drained,
    /// the last partial batch included.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ticks_written_two_batches_at_once_are_all_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_support::sqlite_store(&dir).await;
        assert_eq!(store.insert_batches_in_flight(), 2);
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let sink = SINKS[0];
        assert!(sink.insert_only() && sink.table() == "ticks");
        let consumer = bus.subscribe(Topic::Ticks, &sink.group()).await.unwrap();
        let cfg = WriterConfig {
            batch_size: 100,
            flush_interval_ms: 20,
        };
        let task = tokio::spawn(run(sink, consumer, store.clone(), cfg));
        let symbol = Symbol::parse("AAPL").unwrap();
        let ticks: Vec<Event> = (0..1_050i64)
            .map(|i| {
                let ts = 1_796_294_640_000_000_000 + i * 1_000_000;
                let price = Decimal::from(100 + i % 7);
                let t = Tick::new(
                    symbol.clone(),
                    "sim",
                    TickKind::Trade,
                    price,
                    Decimal::ONE,
                    ts,
                    ts,
                );
                Event::Tick(t)
            })
            .collect();
        for chunk in ticks.chunks(64) {
            bus.publish_batch(chunk.to_vec()).await.unwrap();
        }
        // A redelivered tick is not stored twice.
        bus.publish_batch(ticks[..10].to_vec()).await.unwrap();
        bus.close_topic(Topic::Ticks);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the sink drains once its topic is closed")
            .unwrap();
        assert_eq!(store.count_ticks(Some(&symbol)).await.unwrap(), 1_050);
    }
}
