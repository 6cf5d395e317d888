//! One client's queue between the hub and its socket.
//!
//! The hub pushes and never waits; the client's session takes what is
//! waiting and writes it out. A state channel's waiting message is replaced
//! by a newer one of its key (conflation). Ticks queue up to the bound;
//! those that do not fit are counted per key as a skipped `seq` range, and
//! the range goes out as a `gap` before that key's next tick (or once the
//! queue has drained), so the client learns exactly what it missed. A
//! client that stays behind past the configured time is closed.

use super::channel::{Channel, Update};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a client is sent, in order.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Update(Arc<Update>),
    /// Messages `from..=to` of a key are not coming: the client fell behind
    /// (`reason` `slow_consumer`), resumed past what the history holds
    /// (`history`), or the hub itself fell behind the bus (`hub_lagged`,
    /// key `*`, `from`..`to` then counting the skipped messages).
    Gap {
        channel: Channel,
        key: Arc<str>,
        from: u64,
        to: u64,
        reason: &'static str,
    },
}

/// Why an outbox was closed by the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// Behind for longer than allowed.
    SlowConsumer,
}

pub struct Outbox {
    id: u64,
    /// `marketd_realtime_client_queue_depth`, looked up once.
    depth_metric: metrics::Histogram,
    capacity: usize,
    slow_close_after: Duration,
    state: Mutex<State>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Outgoing>,
    /// Conflated: the latest waiting message per (channel, key) and the
    /// order keys became waiting.
    latest: HashMap<(Channel, Arc<str>), Arc<Update>>,
    latest_order: VecDeque<(Channel, Arc<str>)>,
    /// Ticks skipped per key and not yet announced: (from, to).
    skipped: HashMap<Arc<str>, (u64, u64)>,
    /// Since when the client has had ticks skipped without catching up.
    behind_since: Option<Instant>,
    closed: Option<Closed>,
}

impl Outbox {
    pub(crate) fn new(id: u64, capacity: usize, slow_close_after: Duration) -> Self {
        Outbox {
            id,
            depth_metric: metrics::histogram!("marketd_realtime_client_queue_depth"),
            capacity: capacity.max(1),
            slow_close_after,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
        }
    }

    /// The client's id at the hub.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `update` (never waits).
    pub(crate) fn push(&self, update: &Arc<Update>) {
        let mut s = self.state();
        if s.closed.is_some() {
            return;
        }
        if update.channel.conflates() {
            let k = (update.channel, update.key.clone());
            if s.latest.insert(k.clone(), update.clone()).is_some() {
                metrics::counter!("marketd_realtime_conflated_total", "channel" => update.channel.name())
                    .increment(1);
            } else {
                s.latest_order.push_back(k);
            }
        } else if s.queue.len() < self.capacity {
            if let Some((from, to)) = s.skipped.remove(&update.key) {
                s.queue
                    .push_back(gap(update.channel, &update.key, from, to));
            }
            s.queue.push_back(Outgoing::Update(update.clone()));
        } else {
            let now = Instant::now();
            let since = *s.behind_since.get_or_insert(now);
            s.skipped
                .entry(update.key.clone())
                .and_modify(|r| r.1 = update.seq)
                .or_insert((update.seq, update.seq));
            metrics::counter!("marketd_realtime_skipped_total", "channel" => update.channel.name())
                .increment(1);
            if now.duration_since(since) > self.slow_close_after {
                s.closed = Some(Closed::SlowConsumer);
                metrics::counter!("marketd_realtime_slow_closed_total").increment(1);
            }
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Queues a message that is not an update of the live stream (a resume
    /// replay, a gap), ahead of the bound: a resume is sent whole.
    pub(crate) fn push_resumed(&self, item: Outgoing) {
        let mut s = self.state();
        if s.closed.is_none() {
            s.queue.push_back(item);
        }
        drop(s);
        self.ready.notify_one();
    }

    /// Moves up to `max` waiting messages into `out`; the number moved.
    /// Queued messages first, then conflated ones, then gaps still owed.
    pub fn take(&self, out: &mut Vec<Outgoing>, max: usize) -> usize {
        let start = out.len();
        let mut s = self.state();
        while out.len() - start < max {
            if let Some(x) = s.queue.pop_front() {
                out.push(x);
            } else if let Some(k) = s.latest_order.pop_front() {
                if let Some(u) = s.latest.remove(&k) {
                    out.push(Outgoing::Update(u));
                }
            } else if let Some(key) = s.skipped.keys().next().cloned() {
                let (from, to) = s.skipped.remove(&key).unwrap_or_default();
                out.push(gap(Channel::Ticks, &key, from, to));
            } else {
                break;
            }
        }
        if s.queue.is_empty() && s.skipped.is_empty() {
            s.behind_since = None;
        }
        let depth = s.queue.len() + s.latest_order.len();
        drop(s);
        self.depth_metric.record(depth as f64);
        out.len() - start
    }

    /// Waits until something may be waiting (or the outbox was closed).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Whether the hub closed this client, and why.
    pub fn closed(&self) -> Option<Closed> {
        self.state().closed
    }
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("id", &self.id)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

fn gap(channel: Channel, key: &Arc<str>, from: u64, to: u64) -> Outgoing {
    Outgoing::Gap {
        channel,
        key: key.clone(),
        from,
        to,
        reason: "slow_consumer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(channel: Channel, key: &str, seq: u64) -> Arc<Update> {
        Arc::new(Update {
            channel,
            key: key.into(),
            symbol: key.into(),
            interval: None,
            seq,
            produced_at: 0,
            frame: bytes::Bytes::new(),
        })
    }

    fn describe(xs: &[Outgoing]) -> Vec<String> {
        xs.iter()
            .map(|x| match x {
                Outgoing::Update(u) => format!("{} {} {}", u.channel.name(), u.key, u.seq),
                Outgoing::Gap { key, from, to, .. } => format!("gap {key} {from}-{to}"),
            })
            .collect()
    }

    #[test]
    fn state_channels_keep_the_latest_per_key_and_ticks_overflow_into_gaps() {
        let o = Outbox::new(1, 3, Duration::from_secs(3600));
        for seq in 1..=5 {
            o.push(&update(Channel::Bars, "AAPL:1m", seq));
            o.push(&update(Channel::Ticks, "AAPL", seq));
        }
        o.push(&update(Channel::Bars, "MSFT:1m", 1));
        // Three ticks fit; 4 and 5 are skipped; bars keep 5 and MSFT's 1.
        let mut out = Vec::new();
        o.take(&mut out, 100);
        assert_eq!(
            describe(&out),
            [
                "ticks AAPL 1",
                "ticks AAPL 2",
                "ticks AAPL 3",
                "bars AAPL:1m 5",
                "bars MSFT:1m 1",
                "gap AAPL 4-5"
            ]
        );
        // Caught up: the next tick comes with no gap.
        o.push(&update(Channel::Ticks, "AAPL", 6));
        out.clear();
        o.take(&mut out, 100);
        assert_eq!(describe(&out), ["ticks AAPL 6"]);
    }

    #[test]
    fn a_gap_goes_out_before_the_keys_next_tick() {
        let o = Outbox::new(1, 2, Duration::from_secs(3600));
        for seq in 1..=4 {
            o.push(&update(Channel::Ticks, "AAPL", seq));
        }
        let mut out = Vec::new();
        o.take(&mut out, 1);
        o.push(&update(Channel::Ticks, "AAPL", 5));
        o.take(&mut out, 100);
        assert_eq!(
            describe(&out),
            [
                "ticks AAPL 1",
                "ticks AAPL 2",
                "gap AAPL 3-4",
                "ticks AAPL 5"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_behind_for_too_long_is_closed() {
        let o = Outbox::new(1, 1, Duration::from_secs(5));
        o.push(&update(Channel::Ticks, "AAPL", 1));
        o.push(&update(Channel::Ticks, "AAPL", 2));
        assert_eq!(o.closed(), None);
        tokio::time::advance(Duration::from_secs(6)).await;
        o.push(&update(Channel::Ticks, "AAPL", 3));
        assert_eq!(o.closed(), Some(Closed::SlowConsumer));
    }
}
