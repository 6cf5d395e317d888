//! The in-process bus: one bounded stream per (topic, consumer group).
//!
//! Semantics follow the Kafka backend where they matter to the engine:
//! every group sees every message published after it joined, in publish
//! order (one partition per topic, so per-key order holds); members of one
//! group share the group's stream; a full group buffer makes producers wait
//! (backpressure, never an unbounded queue). It keeps no history: a message
//! published before any group joined is not delivered to it, and committed
//! offsets are only tracked, since nothing survives the process.
//!
//! A published batch travels as one channel item per group, so a batch of a
//! thousand ticks costs one wake-up of each consumer, not a thousand. The
//! bound is in messages: producers take one permit per message from the
//! group's semaphore, and consumers give them back as they take messages.
//!
//! Tails ([`Bus::tail`]) read a broadcast ring per topic, outside the
//! groups: a publish never waits on them, and a tail that falls more than
//! the buffer behind skips the oldest messages and is told how many.

use crate::{
    AnyConsumer, AnyTail, Assignment, Bus, BusOptions, Consumer, Delivery, Error, Receipt, Result,
    Tailed, topic_index,
};
use marketd_model::{Envelope, Event, Topic};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Mutex, Semaphore, broadcast, mpsc, watch};

#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: BusOptions,
    topics: Vec<TopicState>,
}

#[derive(Debug)]
struct TopicState {
    closed: AtomicBool,
    next_offset: AtomicU64,
    groups: RwLock<Vec<Group>>,
    /// The tails' ring; `None` once the topic is closed (tails then end).
    tail: RwLock<Option<broadcast::Sender<Delivery>>>,
}

impl TopicState {
    fn new(buffer: usize) -> Self {
        TopicState {
            closed: AtomicBool::new(false),
            next_offset: AtomicU64::new(0),
            groups: RwLock::new(Vec::new()),
            tail: RwLock::new(Some(broadcast::channel(buffer.max(1)).0)),
        }
    }
}

/// The producer side of one group's stream.
#[derive(Debug, Clone)]
struct GroupTx {
    tx: mpsc::UnboundedSender<Vec<Delivery>>,
    permits: Arc<Semaphore>,
}

#[derive(Debug)]
struct Group {
    name: String,
    tx: Option<GroupTx>,
    permits: Arc<Semaphore>,
    shared: Arc<Mutex<GroupRx>>,
    committed: Arc<AtomicU64>,
}

/// The consumer side, shared by the group's members.
#[derive(Debug)]
struct GroupRx {
    rx: mpsc::UnboundedReceiver<Vec<Delivery>>,
    pending: VecDeque<Delivery>,
    permits: Arc<Semaphore>,
}

impl GroupRx {
    /// Moves up to `max` messages into `out`, waiting for the first.
    async fn take(&mut self, out: &mut Vec<Delivery>, max: usize) -> usize {
        if self.pending.is_empty() {
            match self.rx.recv().await {
                Some(batch) => self.pending.extend(batch),
                None => return 0,
            }
        }
        // Take what else is already queued, without waiting.
        while self.pending.len() < max {
            match self.rx.try_recv() {
                Ok(batch) => self.pending.extend(batch),
                Err(_) => break,
            }
        }
        let n = self.pending.len().min(max);
        out.extend(self.pending.drain(..n));
        self.permits.add_permits(n);
        n
    }
}

impl MemoryBus {
    pub fn new(opts: BusOptions) -> Self {
        let topics = Topic::ALL
            .iter()
            .map(|_| TopicState::new(opts.buffer))
            .collect();
        MemoryBus {
            inner: Arc::new(Inner { opts, topics }),
        }
    }

    fn state(&self, topic: Topic) -> &TopicState {
        &self.inner.topics[topic_index(topic)]
    }

    fn senders(&self, topic: Topic) -> Result<Vec<GroupTx>> {
        let state = self.state(topic);
        if state.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(topic));
        }
        let groups = state.groups.read().unwrap_or_else(|e| e.into_inner());
        Ok(groups.iter().filter_map(|g| g.tx.clone()).collect())
    }

    /// Delivers envelopes of one topic to every group, in order, waiting
    /// for buffer room (in chunks no larger than the buffer).
    async fn deliver(&self, topic: Topic, envelopes: Vec<Arc<Envelope>>) -> Result<()> {
        let senders = self.senders(topic)?;
        let state = self.state(topic);
        let first = state
            .next_offset
            .fetch_add(envelopes.len() as u64, Ordering::Relaxed);
        let deliveries: Vec<Delivery> = envelopes
            .into_iter()
            .enumerate()
            .map(|(i, envelope)| Delivery {
                envelope,
                topic,
                partition: 0,
                offset: first + i as u64,
            })
            .collect();
        // Tails first: they never wait, and should see a message no later
        // than the groups do.
        if let Some(tail) = state
            .tail
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|t| t.receiver_count() > 0)
        {
            for d in &deliveries {
                // No receiver left is not an error: the ring is just unread.
                let _ = tail.send(d.clone());
            }
        }
        let chunk = self.inner.opts.buffer.max(1);
        for part in deliveries.chunks(chunk) {
            for g in &senders {
                let permits = g
                    .permits
                    .acquire_many(part.len() as u32)
                    .await
                    .map_err(|_| Error::Closed(topic))?;
                permits.forget();
                if g.tx.send(part.to_vec()).is_err() {
                    return Err(Error::Closed(topic));
                }
            }
        }
        Ok(())
    }
}

impl Bus for MemoryBus {
    async fn publish(&self, event: Event) -> Result<()> {
        let topic = event.topic();
        self.deliver(topic, vec![Arc::new(Envelope::new(event))])
            .await
    }

    async fn publish_batch(&self, events: Vec<Event>) -> Result<()> {
        // Consecutive events of one topic travel together; order is kept.
        let mut run: Vec<Arc<Envelope>> = Vec::new();
        let mut run_topic: Option<Topic> = None;
        for event in events {
            let topic = event.topic();
            if run_topic.is_some_and(|t| t != topic) {
                let t = run_topic.take().expect("checked");
                self.deliver(t, std::mem::take(&mut run)).await?;
            }
            run_topic = Some(topic);
            run.push(Arc::new(Envelope::new(event)));
        }
        if let Some(t) = run_topic {
            self.deliver(t, run).await?;
        }
        Ok(())
    }

    /// The memory bus hands events to every group's buffer while sending, so
    /// the receipt is already complete.
    async fn send_batch(&self, events: Vec<Event>) -> Result<Receipt> {
        self.publish_batch(events).await?;
        Ok(Receipt::done())
    }

    async fn subscribe(&self, topic: Topic, group: &str) -> Result<AnyConsumer> {
        let state = self.state(topic);
        if state.closed.load(Ordering::Acquire) {
            return Err(Error::Closed(topic));
        }
        let mut groups = state.groups.write().unwrap_or_else(|e| e.into_inner());
        let g = match groups.iter().position(|g| g.name == group) {
            Some(i) => &groups[i],
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let permits = Arc::new(Semaphore::new(self.inner.opts.buffer.max(1)));
                groups.push(Group {
                    name: group.to_string(),
                    tx: Some(GroupTx {
                        tx,
                        permits: permits.clone(),
                    }),
                    permits: permits.clone(),
                    shared: Arc::new(Mutex::new(GroupRx {
                        rx,
                        pending: VecDeque::new(),
                        permits,
                    })),
                    committed: Arc::new(AtomicU64::new(0)),
                });
                groups.last().expect("just pushed")
            }
        };
        Ok(AnyConsumer::Memory(MemoryConsumer {
            shared: g.shared.clone(),
            committed: g.committed.clone(),
            // One partition per topic, always this member's.
            assignment: watch::channel(Assignment {
                partitions: vec![0],
            })
            .0,
        }))
    }

    async fn tail(&self, topic: Topic) -> Result<AnyTail> {
        let state = self.state(topic);
        let tail = state.tail.read().unwrap_or_else(|e| e.into_inner());
        match tail.as_ref() {
            Some(t) if !state.closed.load(Ordering::Acquire) => {
                Ok(AnyTail::Memory(MemoryTail { rx: t.subscribe() }))
            }
            _ => Err(Error::Closed(topic)),
        }
    }

    fn close_topic(&self, topic: Topic) {
        let state = self.state(topic);
        state.closed.store(true, Ordering::Release);
        *state.tail.write().unwrap_or_else(|e| e.into_inner()) = None;
        let mut groups = state.groups.write().unwrap_or_else(|e| e.into_inner());
        for g in groups.iter_mut() {
            g.tx = None;
        }
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn depth(&self) -> Vec<(Topic, usize)> {
        let buffer = self.inner.opts.buffer.max(1);
        Topic::ALL
            .iter()
            .map(|&t| {
                let groups = self
                    .state(t)
                    .groups
                    .read()
                    .unwrap_or_else(|e| e.into_inner());
                let depth = groups
                    .iter()
                    .map(|g| buffer.saturating_sub(g.permits.available_permits()))
                    .sum();
                (t, depth)
            })
            .collect()
    }

    fn partition_for(&self, _topic: Topic, _key: &str) -> u32 {
        0
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }
}

/// A tail of one topic on the memory bus.
#[derive(Debug)]
pub struct MemoryTail {
    rx: broadcast::Receiver<Delivery>,
}

impl MemoryTail {
    /// The next message, the count skipped after falling behind, or `None`
    /// once the topic is closed.
    pub async fn recv(&mut self) -> Option<Tailed> {
        match self.rx.recv().await {
            Ok(d) => Some(Tailed::Message(d)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("marketd_bus_tail_skipped_total").increment(n);
                Some(Tailed::Lagged(n))
            }
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// A member of a consumer group on the memory bus.
#[derive(Debug)]
pub struct MemoryConsumer {
    shared: Arc<Mutex<GroupRx>>,
    committed: Arc<AtomicU64>,
    assignment: watch::Sender<Assignment>,
}

impl Consumer for MemoryConsumer {
    async fn recv(&mut self) -> Result<Option<Delivery>> {
        let mut one = Vec::with_capacity(1);
        let n = self.shared.lock().await.take(&mut one, 1).await;
        Ok((n > 0).then(|| one.pop()).flatten())
    }

    async fn recv_batch(&mut self, out: &mut Vec<Delivery>, max: usize) -> Result<usize> {
        Ok(self.shared.lock().await.take(out, max.max(1)).await)
    }

    async fn commit(&mut self, batch: &[Delivery]) -> Result<()> {
        if let Some(last) = batch.iter().map(|d| d.offset).max() {
            self.committed.fetch_max(last + 1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn assignment(&self) -> watch::Receiver<Assignment> {
        self.assignment.subscribe()
    }

    async fn caught_up(&mut self, _group: &str, _within: std::time::Duration) -> Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::{Decimal, Symbol, Tick, TickKind};
    use std::time::Duration;

    fn tick(sym: &str, n: i64) -> Event {
        let (symbol, price) = (Symbol::parse(sym).unwrap(), Decimal::from(100 + n));
        let tick = Tick::new(symbol, "test", TickKind::Trade, price, Decimal::ONE, n, n);
        Event::Tick(tick)
    }

    fn bus(buffer: usize) -> MemoryBus {
        MemoryBus::new(BusOptions {
            buffer,
            ..Default::default()
        })
    }

    fn ts(d: &Delivery) -> i64 {
        match &d.envelope.event {
            Event::Tick(t) => t.ts_event,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_tail_that_falls_behind_skips_and_says_how_many_never_holding_producers() {
        let bus = bus(4);
        let AnyTail::Memory(mut tail) = bus.tail(Topic::Ticks).await.unwrap() else {
            unreachable!("the memory bus tails in memory")
        };
        // Ten messages into a ring of four, nobody reading: the publish
        // returns (no group waits), and the tail skips the six oldest.
        bus.publish_batch((0..10).map(|i| tick("AAPL", i)).collect())
            .await
            .unwrap();
        assert!(matches!(tail.recv().await, Some(Tailed::Lagged(6))));
        for want in 6..10 {
            match tail.recv().await {
                Some(Tailed::Message(d)) => assert_eq!(ts(&d), want),
                other => panic!("{other:?}"),
            }
        }
        bus.close_topic(Topic::Ticks);
        assert!(tail.recv().await.is_none(), "a closed topic ends its tails");
        assert!(matches!(
            bus.tail(Topic::Ticks).await,
            Err(Error::Closed(_))
        ));
    }

    #[tokio::test]
    async fn every_group_gets_every_message_in_order() {
        let bus = bus(16);
        let mut a = bus.subscribe(Topic::Ticks, "a").await.unwrap();
        let mut b = bus.subscribe(Topic::Ticks, "b").await.unwrap();
        bus.publish_batch((0..10).map(|i| tick("AAPL", i)).collect())
            .await
            .unwrap();
        for c in [&mut a, &mut b] {
            let mut got = Vec::new();
            while got.len() < 10 {
                c.recv_batch(&mut got, 100).await.unwrap();
            }
            assert_eq!(
                got.iter().map(ts).collect::<Vec<_>>(),
                (0..10).collect::<Vec<_>>()
            );
            assert_eq!(got[3].envelope.key, "AAPL");
            assert!(got.windows(2).all(|w| w[0].offset < w[1].offset));
        }
    }

    #[tokio::test]
    async fn topics_are_separate() {
        let bus = bus(16);
        let mut bars = bus.subscribe(Topic::Bars, "g").await.unwrap();
        bus.publish(tick("AAPL", 1)).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), bars.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn full_buffer_applies_backpressure() {
        let bus = bus(4);
        let mut c = bus.subscribe(Topic::Ticks, "slow").await.unwrap();
        for i in 0..4 {
            bus.publish(tick("AAPL", i)).await.unwrap();
        }
        assert_eq!(bus.depth()[0], (Topic::Ticks, 4));
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), bus.publish(tick("AAPL", 4))).await;
        assert!(blocked.is_err(), "publish must wait on a full buffer");
        assert_eq!(ts(&c.recv().await.unwrap().unwrap()), 0);
        tokio::time::timeout(Duration::from_secs(1), bus.publish(tick("AAPL", 5)))
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let bus = bus(16);
        let mut c = bus.subscribe(Topic::Ticks, "g").await.unwrap();
        bus.publish(tick("AAPL", 1)).await.unwrap();
        bus.close_topic(Topic::Ticks);
        assert!(matches!(
            bus.publish(tick("AAPL", 2)).await,
            Err(Error::Closed(Topic::Ticks))
        ));
        let d = c.recv().await.unwrap().unwrap();
        c.commit(std::slice::from_ref(&d)).await.unwrap();
        assert!(c.recv().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn members_of_one_group_share_the_stream() {
        let bus = bus(16);
        let mut a = bus.subscribe(Topic::Ticks, "g").await.unwrap();
        let mut b = bus.subscribe(Topic::Ticks, "g").await.unwrap();
        bus.publish(tick("AAPL", 1)).await.unwrap();
        bus.publish(tick("AAPL", 2)).await.unwrap();
        bus.close_topic(Topic::Ticks);
        let mut n = 0;
        while a.recv().await.unwrap().is_some() {
            n += 1;
        }
        while b.recv().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 2, "each message goes to one member of the group");
    }
}
