//! The event log of marketd. Producers publish [`Event`]s wrapped in
//! [`Envelope`]s onto [`Topic`]s; consumers read them in consumer groups and
//! commit what they have made durable. The [`Bus`] trait is what the engine
//! sees; [`AnyBus`] holds the backend chosen by URL (`memory://` in-process,
//! `kafka://host:port,...` when scaled out), so the engine's code is the same
//! on both.
//!
//! Both backends partition by key with the same function as Kafka's Java
//! client ([`partition_of`], murmur2), so a job id or symbol lands on the same
//! partition whoever produced it, and a consumer's [`Assignment`] says which
//! keys it owns.

use marketd_model::{Codec, Envelope, Event, Topic};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod error;
pub mod kafka;
pub mod memory;
mod partition;
mod tail;

pub use error::{Error, Result};
pub use kafka::{KafkaBus, KafkaConsumer};
pub use memory::{MemoryBus, MemoryConsumer};
pub use partition::{murmur2, partition_of};
pub use tail::{AnyTail, Tailed};
use tokio::sync::watch;

/// The partitions of one topic currently assigned to a consumer group member.
/// Changes on every rebalance (empty while a rebalance is in progress).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub partitions: Vec<u32>,
}

impl Assignment {
    pub fn contains(&self, partition: u32) -> bool {
        self.partitions.contains(&partition)
    }
}

/// Position of a topic in [`Topic::ALL`] (per-topic state lives in arrays).
pub(crate) fn topic_index(topic: Topic) -> usize {
    Topic::ALL.iter().position(|t| *t == topic).unwrap_or(0)
}

/// One message as a consumer sees it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub envelope: Arc<Envelope>,
    pub topic: Topic,
    pub partition: u32,
    pub offset: u64,
}

/// Bus settings shared by the backends.
#[derive(Debug, Clone)]
pub struct BusOptions {
    /// Messages a consumer group may have waiting per topic before producers
    /// wait (backpressure).
    pub buffer: usize,
    /// Partitions per topic (Kafka creates topics with this many).
    pub partitions: u32,
    /// Prefix of topic names on the wire (`marketd.` → `marketd.ticks`).
    pub topic_prefix: String,
    /// Replication factor of topics Kafka creates.
    pub replication_factor: i32,
    /// Kafka consumer session timeout: how long a silent group member keeps
    /// its partitions before the group rebalances.
    pub session_timeout_ms: u64,
    /// How Kafka producers write envelopes ([`Codec`]); consumers read
    /// both. The memory bus hands envelopes over without encoding them.
    pub codec: Codec,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            buffer: 65_536,
            partitions: 6,
            topic_prefix: "marketd.".into(),
            replication_factor: 1,
            session_timeout_ms: 10_000,
            codec: Codec::Json,
        }
    }
}

/// Publishing side of the event log.
pub trait Bus: Send + Sync {
    /// Publishes one event on its topic, keyed by [`Event::key`]. Waits while
    /// a consumer group's buffer is full.
    fn publish(&self, event: Event) -> impl Future<Output = Result<()>> + Send;
    /// Publishes many events; order is kept per key. Returns once every
    /// event is durable (acknowledged by the broker / handed to consumers).
    fn publish_batch(&self, events: Vec<Event>) -> impl Future<Output = Result<()>> + Send;
    /// Hands `events` to the bus in order and returns as soon as they are
    /// queued, with a [`Receipt`] that resolves once they are durable. Events
    /// of a later `send_batch` on the same bus are ordered after these, so a
    /// producer may keep several batches in flight (pipelining) without
    /// reordering a key. `publish_batch` is `send_batch` + [`Receipt::wait`].
    fn send_batch(&self, events: Vec<Event>) -> impl Future<Output = Result<Receipt>> + Send;
    /// Joins consumer group `group` on `topic`. Every group receives every
    /// message published after it first joined.
    fn subscribe(
        &self,
        topic: Topic,
        group: &str,
    ) -> impl Future<Output = Result<AnyConsumer>> + Send;
    /// Follows `topic` from now on outside any consumer group, without
    /// committing and without holding producers back (see [`AnyTail`]).
    fn tail(&self, topic: Topic) -> impl Future<Output = Result<AnyTail>> + Send;
    /// Stops accepting messages on `topic`; consumers drain what is buffered
    /// and then see the end of the stream. Used for ordered shutdown.
    fn close_topic(&self, topic: Topic);
    /// Readiness probe.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    /// Messages waiting in consumer buffers, per topic (for `/metrics`).
    fn depth(&self) -> Vec<(Topic, usize)>;
    /// The partition `key` is published to on `topic`.
    fn partition_for(&self, topic: Topic, key: &str) -> u32;
    fn backend_name(&self) -> &'static str;
}

/// Consuming side: one member of a consumer group.
pub trait Consumer: Send {
    /// The next message, or `None` once the topic is closed and drained.
    fn recv(&mut self) -> impl Future<Output = Result<Option<Delivery>>> + Send;
    /// Waits for at least one message, then takes up to `max` that are
    /// already available. Returns 0 at the end of the stream.
    fn recv_batch(
        &mut self,
        out: &mut Vec<Delivery>,
        max: usize,
    ) -> impl Future<Output = Result<usize>> + Send;
    /// Marks every message of `batch` (and all before it in each partition)
    /// as processed. Call it only after the work is durable (at-least-once).
    fn commit(&mut self, batch: &[Delivery]) -> impl Future<Output = Result<()>> + Send;
    /// This member's partitions of the topic, updated on every rebalance.
    fn assignment(&self) -> watch::Receiver<Assignment>;
    /// Waits until `group`, another consumer group of this topic, has
    /// committed each of this member's partitions at least as far as this
    /// member's group has: whatever this group already processed, the other
    /// has made durable too. `false` when `within` passed first;
    /// [`Error::Closed`] when the topic closed first (a shutdown: the other
    /// group stops too, so waiting on would only delay it). The memory bus
    /// answers `true` at once: its groups live and die with the process, and
    /// none keeps a commit across a restart.
    fn caught_up(
        &mut self,
        group: &str,
        within: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;
}

/// Durability of one [`Bus::send_batch`]: wait for it to know that every
/// event of the batch is in the log.
#[must_use = "a receipt says whether the batch was delivered"]
#[derive(Debug)]
pub struct Receipt(ReceiptInner);

#[derive(Debug)]
enum ReceiptInner {
    /// Already durable (the memory bus delivers while sending).
    Done,
    Kafka(kafka::PendingAcks),
}

impl Receipt {
    pub(crate) fn done() -> Receipt {
        Receipt(ReceiptInner::Done)
    }

    pub(crate) fn kafka(pending: kafka::PendingAcks) -> Receipt {
        Receipt(ReceiptInner::Kafka(pending))
    }

    /// Waits until every event of the batch is durable; the first delivery
    /// failure is the error.
    pub async fn wait(self) -> Result<()> {
        match self.0 {
            ReceiptInner::Done => Ok(()),
            ReceiptInner::Kafka(p) => p.wait().await,
        }
    }
}

/// The configured bus backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyBus {
    Memory(MemoryBus),
    Kafka(KafkaBus),
}

impl AnyBus {
    /// Picks the backend by URL: `memory://` (in-process) or
    /// `kafka://host:port[,host:port...]` (creates the topics when absent).
    pub async fn connect(url: &str, opts: BusOptions) -> Result<AnyBus> {
        let scheme = url.split("://").next().unwrap_or_default();
        match scheme {
            "memory" => Ok(AnyBus::Memory(MemoryBus::new(opts))),
            "kafka" => Ok(AnyBus::Kafka(KafkaBus::connect(url, opts).await?)),
            _ => Err(Error::UnsupportedUrl(url.to_string())),
        }
    }

    /// Waits until everything published has been acknowledged (Kafka) or
    /// handed to the consumers (memory).
    pub async fn flush(&self) -> Result<()> {
        match self {
            AnyBus::Memory(_) => Ok(()),
            AnyBus::Kafka(b) => b.flush().await,
        }
    }
}

impl Bus for AnyBus {
    async fn publish(&self, event: Event) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.publish(event).await,
            AnyBus::Kafka(b) => b.publish(event).await,
        }
    }
    async fn publish_batch(&self, events: Vec<Event>) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.publish_batch(events).await,
            AnyBus::Kafka(b) => b.publish_batch(events).await,
        }
    }
    async fn send_batch(&self, events: Vec<Event>) -> Result<Receipt> {
        match self {
            AnyBus::Memory(b) => b.send_batch(events).await,
            AnyBus::Kafka(b) => b.send_batch(events).await,
        }
    }
    async fn subscribe(&self, topic: Topic, group: &str) -> Result<AnyConsumer> {
        match self {
            AnyBus::Memory(b) => b.subscribe(topic, group).await,
            AnyBus::Kafka(b) => b.subscribe(topic, group).await,
        }
    }
    async fn tail(&self, topic: Topic) -> Result<AnyTail> {
        match self {
            AnyBus::Memory(b) => b.tail(topic).await,
            AnyBus::Kafka(b) => b.tail(topic).await,
        }
    }
    fn close_topic(&self, topic: Topic) {
        match self {
            AnyBus::Memory(b) => b.close_topic(topic),
            AnyBus::Kafka(b) => b.close_topic(topic),
        }
    }
    async fn ping(&self) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.ping().await,
            AnyBus::Kafka(b) => b.ping().await,
        }
    }
    fn depth(&self) -> Vec<(Topic, usize)> {
        match self {
            AnyBus::Memory(b) => b.depth(),
            AnyBus::Kafka(b) => b.depth(),
        }
    }
    fn partition_for(&self, topic: Topic, key: &str) -> u32 {
        match self {
            AnyBus::Memory(b) => b.partition_for(topic, key),
            AnyBus::Kafka(b) => b.partition_for(topic, key),
        }
    }
    fn backend_name(&self) -> &'static str {
        match self {
            AnyBus::Memory(b) => b.backend_name(),
            AnyBus::Kafka(b) => b.backend_name(),
        }
    }
}

/// A consumer of the configured backend.
#[derive(Debug)]
pub enum AnyConsumer {
    Memory(MemoryConsumer),
    Kafka(KafkaConsumer),
}

impl Consumer for AnyConsumer {
    async fn recv(&mut self) -> Result<Option<Delivery>> {
        match self {
            AnyConsumer::Memory(c) => c.recv().await,
            AnyConsumer::Kafka(c) => c.recv().await,
        }
    }
    async fn recv_batch(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<usize> {
        match self {
            AnyConsumer::Memory(c) => c.recv_batch(out, max).await,
            AnyConsumer::Kafka(c) => c.recv_batch(out, max).await,
        }
    }
    async fn commit(&mut self, batch: &[Delivery]) -> Result<()> {
        match self {
            AnyConsumer::Memory(c) => c.commit(batch).await,
            AnyConsumer::Kafka(c) => c.commit(batch).await,
        }
    }
    fn assignment(&self) -> watch::Receiver<Assignment> {
        match self {
            AnyConsumer::Memory(c) => c.assignment(),
            AnyConsumer::Kafka(c) => c.assignment(),
        }
    }
    async fn caught_up(&mut self, group: &str, within: Duration) -> Result<bool> {
        match self {
            AnyConsumer::Memory(c) => c.caught_up(group, within).await,
            AnyConsumer::Kafka(c) => c.caught_up(group, within).await,
        }
    }
}
