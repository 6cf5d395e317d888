//! The event log of marketd. Producers publish [`Event`]s wrapped in
//! [`Envelope`]s onto [`Topic`]s; consumers read them in consumer groups and
//! commit what they have made durable. The [`Bus`] trait is what the engine
//! sees; [`AnyBus`] holds the backend chosen by URL (`memory://` now, `kafka://`
//! when scaled out), so the engine's code is the same on both.

use marketd_model::{Envelope, Event, Topic};
use std::future::Future;
use std::sync::Arc;

mod error;
pub mod memory;

pub use error::{Error, Result};
pub use memory::{MemoryBus, MemoryConsumer};

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
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            buffer: 65_536,
            partitions: 6,
            topic_prefix: "marketd.".into(),
        }
    }
}

/// Publishing side of the event log.
pub trait Bus: Send + Sync {
    /// Publishes one event on its topic, keyed by [`Event::key`]. Waits while
    /// a consumer group's buffer is full.
    fn publish(&self, event: Event) -> impl Future<Output = Result<()>> + Send;
    /// Publishes many events; order is kept per key.
    fn publish_batch(&self, events: Vec<Event>) -> impl Future<Output = Result<()>> + Send;
    /// Joins consumer group `group` on `topic`. Every group receives every
    /// message published after it first joined.
    fn subscribe(
        &self,
        topic: Topic,
        group: &str,
    ) -> impl Future<Output = Result<AnyConsumer>> + Send;
    /// Stops accepting messages on `topic`; consumers drain what is buffered
    /// and then see the end of the stream. Used for ordered shutdown.
    fn close_topic(&self, topic: Topic);
    /// Readiness probe.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    /// Messages waiting in consumer buffers, per topic (for `/metrics`).
    fn depth(&self) -> Vec<(Topic, usize)>;
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
    /// Marks everything up to and including `delivery` as processed. Call it
    /// only after the work is durable (at-least-once).
    fn commit(&mut self, delivery: &Delivery) -> impl Future<Output = Result<()>> + Send;
}

/// The configured bus backend.
#[derive(Debug, Clone)]
pub enum AnyBus {
    Memory(MemoryBus),
}

impl AnyBus {
    /// Picks the backend by URL: `memory://` (in-process).
    pub async fn connect(url: &str, opts: BusOptions) -> Result<AnyBus> {
        let scheme = url.split("://").next().unwrap_or_default();
        match scheme {
            "memory" => Ok(AnyBus::Memory(MemoryBus::new(opts))),
            _ => Err(Error::UnsupportedUrl(url.to_string())),
        }
    }
}

impl Bus for AnyBus {
    async fn publish(&self, event: Event) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.publish(event).await,
        }
    }
    async fn publish_batch(&self, events: Vec<Event>) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.publish_batch(events).await,
        }
    }
    async fn subscribe(&self, topic: Topic, group: &str) -> Result<AnyConsumer> {
        match self {
            AnyBus::Memory(b) => b.subscribe(topic, group).await,
        }
    }
    fn close_topic(&self, topic: Topic) {
        match self {
            AnyBus::Memory(b) => b.close_topic(topic),
        }
    }
    async fn ping(&self) -> Result<()> {
        match self {
            AnyBus::Memory(b) => b.ping().await,
        }
    }
    fn depth(&self) -> Vec<(Topic, usize)> {
        match self {
            AnyBus::Memory(b) => b.depth(),
        }
    }
    fn backend_name(&self) -> &'static str {
        match self {
            AnyBus::Memory(b) => b.backend_name(),
        }
    }
}

/// A consumer of the configured backend.
#[derive(Debug)]
pub enum AnyConsumer {
    Memory(MemoryConsumer),
}

impl Consumer for AnyConsumer {
    async fn recv(&mut self) -> Result<Option<Delivery>> {
        match self {
            AnyConsumer::Memory(c) => c.recv().await,
        }
    }
    async fn recv_batch(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<usize> {
        match self {
            AnyConsumer::Memory(c) => c.recv_batch(out, max).await,
        }
    }
    async fn commit(&mut self, delivery: &Delivery) -> Result<()> {
        match self {
            AnyConsumer::Memory(c) => c.commit(delivery).await,
        }
    }
}
