//! The hub: one tail of the bus per channel, numbering each message per
//! (channel, key), keeping the history, and handing the message to every
//! client subscribed to its key.
//!
//! Each channel is one lock: its reader is the only writer of sequence
//! numbers and history, and a subscribe (replay plus registration) takes
//! the same lock, so a resuming client gets the replay and then the live
//! stream with no message missing or repeated between them.

use super::channel::{Channel, Update, keyed};
use super::history::{History, Resume};
use super::outbox::{Outbox, Outgoing};
use marketd_bus::{AnyBus, Bus, Tailed};
use marketd_model::time::now_ns;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `[realtime]`: history kept for resuming and the per-client bounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// Messages kept per (channel, key) for resuming.
    pub history_len: usize,
    /// Longest a message is kept for resuming, in seconds.
    pub history_secs: u64,
    /// Ticks a client may have waiting before the overflow becomes a gap.
    pub client_queue: usize,
    /// A client with skipped ticks for this long without catching up is
    /// closed, in seconds.
    pub slow_close_secs: u64,
    /// The server pings every this many seconds.
    pub heartbeat_secs: u64,
    /// A client silent (no frame, no pong) for this long is closed, seconds.
    pub heartbeat_timeout_secs: u64,
    /// Messages a client may send per second (a burst of twice as many);
    /// beyond, each gets an `error` frame `RATE_LIMITED`.
    pub client_messages_per_sec: u32,
    /// Open connections one client (API key, token subject, or address
    /// without credentials) may hold on this instance.
    pub max_connections_per_client: usize,
    /// How long a woken session waits for more before it writes, in ms
    /// (0: write at once): fewer, larger writes under load.
    pub coalesce_ms: u64,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            history_len: 1_024,
            history_secs: 300,
            client_queue: 8_192,
            slow_close_secs: 10,
            heartbeat_secs: 15,
            heartbeat_timeout_secs: 45,
            client_messages_per_sec: 20,
            max_connections_per_client: 1_024,
            coalesce_ms: 2,
        }
    }
}

/// What a subscription asked for, as the hub understood it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub channel: Channel,
    /// `None`: every symbol (`*`).
    pub symbols: Option<Vec<String>>,
    pub interval: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscribeError {
    #[error("symbols must be a non-empty list of symbols, or [\"*\"]")]
    NoSymbols,
    #[error("interval filters only the bars and indicators channels")]
    IntervalNotApplicable,
    #[error("since names {0:?}, which this subscription does not include")]
    SinceOutside(String),
}

/// The realtime hub of one API instance.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: RealtimeConfig,
    /// Open connections per client identity.
    connections: Mutex<HashMap<String, usize>>,
    /// Cancelled when the hub stops: its readers end, sessions close.
    stop: CancellationToken,
    channels: Vec<Mutex<ChannelState>>,
    next_client: AtomicU64,
}

#[derive(Debug, Default)]
struct ChannelState {
    keys: HashMap<Arc<str>, KeyState>,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
struct KeyState {
    /// The map's key, shared with every update of it.
    key: Arc<str>,
    symbol: Arc<str>,
    seq: u64,
    history: History,
}

#[derive(Debug)]
struct Subscriber {
    outbox: Arc<Outbox>,
    /// `None`: every symbol.
    symbols: Option<HashSet<Arc<str>>>,
    interval: Option<String>,
}

impl Subscriber {
    fn wants(&self, symbol: &str, interval: Option<&str>) -> bool {
        self.symbols.as_ref().is_none_or(|s| s.contains(symbol))
            && self
                .interval
                .as_deref()
                .is_none_or(|want| interval == Some(want))
    }
}

impl Hub {
    /// A hub fed by nothing yet; [`Hub::start`] tails the bus into it.
    pub fn new(config: RealtimeConfig) -> Hub {
        Self::with_stop(config, CancellationToken::new())
    }

    fn with_stop(config: RealtimeConfig, stop: CancellationToken) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                config,
                stop,
                connections: Mutex::new(HashMap::new()),
                channels: Channel::ALL
                    .iter()
                    .map(|_| Mutex::new(ChannelState::default()))
                    .collect(),
                next_client: AtomicU64::new(1),
            }),
        }
    }

    /// Tails every channel's topic into a new hub until `cancel`, which
    /// also ends every client session.
    pub async fn start(
        bus: &AnyBus,
        config: RealtimeConfig,
        cancel: CancellationToken,
    ) -> marketd_bus::Result<Hub> {
        let hub = Hub::with_stop(config, cancel.clone());
        for channel in Channel::ALL {
            let mut tail = bus.tail(channel.topic()).await?;
            let hub = hub.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    let next = tokio::select! {
                        _ = cancel.cancelled() => break,
                        n = tail.recv() => n,
                    };
                    match next {
                        Ok(Some(Tailed::Message(d))) => {
                            hub.dispatch(&d.envelope.event, d.envelope.produced_at);
                        }
                        Ok(Some(Tailed::Lagged(n))) => hub.lagged(channel, n),
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(channel = channel.name(), error = %e, "realtime tail failed; the channel stops");
                            break;
                        }
                    }
                }
            });
        }
        Ok(hub)
    }

    fn channel(&self, c: Channel) -> std::sync::MutexGuard<'_, ChannelState> {
        self.inner.channels[c.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// A new client's outbox.
    pub fn outbox(&self) -> Arc<Outbox> {
        let id = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        Arc::new(Outbox::new(
            id,
            self.inner.config.client_queue,
            Duration::from_secs(self.inner.config.slow_close_secs),
        ))
    }

    /// Numbers one bus event, keeps it and hands it to its subscribers.
    /// Events no channel carries are ignored.
    pub fn dispatch(&self, event: &marketd_model::Event, produced_at: i64) {
        let Some(k) = keyed(event) else { return };
        let config = &self.inner.config;
        let max_age =
            i64::try_from(config.history_secs.saturating_mul(1_000_000_000)).unwrap_or(i64::MAX);
        let mut ch = self.channel(k.channel);
        // Looked up by &str: a key seen before costs no allocation.
        if !ch.keys.contains_key(k.key.as_str()) {
            let key: Arc<str> = k.key.as_str().into();
            let state = KeyState {
                key: key.clone(),
                symbol: k.symbol.as_str().into(),
                seq: 0,
                history: History::new(),
            };
            ch.keys.insert(key, state);
        }
        let Some(state) = ch.keys.get_mut(k.key.as_str()) else {
            return;
        };
        let seq = state.seq + 1;
        let frame = match k.frame(seq) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(channel = k.channel.name(), key = %k.key, error = %e, "could not serialize a realtime update");
                return;
            }
        };
        state.seq = seq;
        let update = Arc::new(Update {
            channel: k.channel,
            key: state.key.clone(),
            symbol: state.symbol.clone(),
            interval: k.interval,
            seq,
            produced_at,
            frame: frame.into(),
        });
        state
            .history
            .push(now_ns(), update.clone(), config.history_len, max_age);
        for s in &ch.subscribers {
            if s.wants(&update.symbol, update.interval) {
                s.outbox.push(&update);
            }
        }
    }

    /// The tail of `channel` skipped `n` messages: every subscriber of the
    /// channel is told (which keys is not known).
    fn lagged(&self, channel: Channel, n: u64) {
        tracing::warn!(
            channel = channel.name(),
            skipped = n,
            "the realtime hub fell behind the bus"
        );
        let ch = self.channel(channel);
        for s in &ch.subscribers {
            s.outbox.push_resumed(Outgoing::Gap {
                channel,
                key: "*".into(),
                from: 1,
                to: n,
                reason: "hub_lagged",
            });
        }
    }

    /// Subscribes `outbox` to `symbols` (`["*"]`: all) of `channel`, adding
    /// to what it already has there. `since` (per key) first replays what
    /// the client missed from the history, then the live stream follows.
    pub fn subscribe(
        &self,
        outbox: &Arc<Outbox>,
        channel: Channel,
        symbols: &[String],
        interval: Option<&str>,
        since: &BTreeMap<String, u64>,
    ) -> Result<Subscription, SubscribeError> {
        if symbols.is_empty() || symbols.iter().any(|s| s.is_empty()) {
            return Err(SubscribeError::NoSymbols);
        }
        if interval.is_some() && !matches!(channel, Channel::Bars | Channel::Indicators) {
            return Err(SubscribeError::IntervalNotApplicable);
        }
        let all = symbols.iter().any(|s| s == "*");
        let mut ch = self.channel(channel);
        // Replay first, under the channel's lock: nothing is dispatched in
        // between, so live messages continue exactly after the replay.
        let unseen = History::new();
        for (key, &after) in since {
            // A key this hub has not seen (it started after the client's
            // last message) resumes from nothing: any `since` above 0 is a gap.
            let (history, last) = match ch.keys.get(key.as_str()) {
                Some(state) => {
                    if !all && !symbols.iter().any(|s| **s == *state.symbol) {
                        return Err(SubscribeError::SinceOutside(key.clone()));
                    }
                    (&state.history, state.seq)
                }
                None => (&unseen, 0),
            };
            match history.since(after, last) {
                Resume::Complete(xs) => {
                    for u in xs {
                        outbox.push_resumed(Outgoing::Update(u));
                    }
                }
                Resume::Gap { from, to, held } => {
                    outbox.push_resumed(Outgoing::Gap {
                        channel,
                        key: key.as_str().into(),
                        from,
                        to,
                        reason: "history",
                    });
                    // A state channel's latest value is the state.
                    let held = if channel.conflates() {
                        held.into_iter().last().into_iter().collect()
                    } else {
                        held
                    };
                    for u in held {
                        outbox.push_resumed(Outgoing::Update(u));
                    }
                }
            }
        }
        let id = outbox.id();
        let pos = ch.subscribers.iter().position(|s| s.outbox.id() == id);
        let sub = match pos {
            Some(i) => &mut ch.subscribers[i],
            None => {
                ch.subscribers.push(Subscriber {
                    outbox: outbox.clone(),
                    symbols: Some(HashSet::new()),
                    interval: interval.map(str::to_string),
                });
                ch.subscribers.last_mut().expect("just pushed")
            }
        };
        if all {
            sub.symbols = None;
        } else if let Some(set) = &mut sub.symbols {
            set.extend(symbols.iter().map(|s| Arc::<str>::from(s.as_str())));
        }
        if interval.is_some() {
            sub.interval = interval.map(str::to_string);
        }
        let answer = Subscription {
            channel,
            symbols: sub.symbols.as_ref().map(|s| {
                let mut v: Vec<String> = s.iter().map(|x| x.to_string()).collect();
                v.sort();
                v
            }),
            interval: sub.interval.clone(),
        };
        metrics::gauge!("marketd_realtime_subscriptions", "channel" => channel.name())
            .set(ch.subscribers.len() as f64);
        Ok(answer)
    }

    /// Removes `symbols` (`["*"]`: the whole channel) from the outbox's
    /// subscription to `channel`.
    pub fn unsubscribe(&self, outbox: &Outbox, channel: Channel, symbols: &[String]) {
        let mut ch = self.channel(channel);
        let id = outbox.id();
        if symbols.iter().any(|s| s == "*") {
            ch.subscribers.retain(|s| s.outbox.id() != id);
        } else if let Some(i) = ch.subscribers.iter().position(|s| s.outbox.id() == id)
            && let Some(set) = &mut ch.subscribers[i].symbols
        {
            for s in symbols {
                set.remove(s.as_str());
            }
            if set.is_empty() {
                ch.subscribers.remove(i);
            }
        }
        metrics::gauge!("marketd_realtime_subscriptions", "channel" => channel.name())
            .set(ch.subscribers.len() as f64);
    }

    /// Forgets a client (its connection ended).
    pub fn remove(&self, outbox: &Outbox) {
        for c in Channel::ALL {
            self.unsubscribe(outbox, c, &["*".to_string()]);
        }
    }

    /// Counts a connection of `client` if it has fewer than
    /// `max_connections_per_client` open; the count drops with the
    /// returned [`Admission`]. `None`: over the limit.
    pub fn admit(&self, client: &str) -> Option<Admission> {
        let mut open = self
            .inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client.to_string()).or_insert(0);
        if *n >= self.inner.config.max_connections_per_client {
            return None;
        }
        *n += 1;
        Some(Admission {
            hub: self.clone(),
            client: client.to_string(),
        })
    }

    /// Resolves once the hub stops (the process is shutting down).
    pub async fn stopped(&self) {
        self.inner.stop.cancelled().await;
    }

    pub fn config(&self) -> &RealtimeConfig {
        &self.inner.config
    }
}

/// One counted connection of a client (see [`Hub::admit`]).
#[derive(Debug)]
pub struct Admission {
    hub: Hub,
    client: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut open = self
            .hub
            .inner
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realtime::Outgoing;
    use marketd_model::{Decimal, Event, Symbol, Tick, TickKind};

    fn tick(symbol: &str, n: i64) -> Event {
        Event::Tick(Tick::new(
            Symbol::parse(symbol).unwrap(),
            "test",
            TickKind::Trade,
            Decimal::new(10_000 + n, 2),
            Decimal::ONE,
            n,
            n,
        ))
    }

    fn drain(o: &Outbox) -> Vec<String> {
        let mut out = Vec::new();
        o.take(&mut out, usize::MAX);
        out.iter()
            .map(|x| match x {
                Outgoing::Update(u) => format!("{} {}", u.key, u.seq),
                Outgoing::Gap {
                    key,
                    from,
                    to,
                    reason,
                    ..
                } => {
                    format!("gap {key} {from}-{to} {reason}")
                }
            })
            .collect()
    }

    fn syms(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn clients_get_their_symbols_numbered_per_key_with_the_rest_frames() {
        let hub = Hub::new(RealtimeConfig::default());
        let a = hub.outbox();
        let b = hub.outbox();
        let none = BTreeMap::new();
        hub.subscribe(&a, Channel::Ticks, &syms(&["AAPL"]), None, &none)
            .unwrap();
        hub.subscribe(&b, Channel::Ticks, &syms(&["*"]), None, &none)
            .unwrap();
        for n in 0..3 {
            hub.dispatch(&tick("AAPL", n), 0);
            hub.dispatch(&tick("MSFT", n), 0);
        }
        assert_eq!(drain(&a), ["AAPL 1", "AAPL 2", "AAPL 3"]);
        assert_eq!(
            drain(&b),
            ["AAPL 1", "MSFT 1", "AAPL 2", "MSFT 2", "AAPL 3", "MSFT 3"]
        );
        // The frame is the REST API's tick under data_update.
        hub.dispatch(&tick("AAPL", 7), 0);
        let mut out = Vec::new();
        a.take(&mut out, 1);
        let Outgoing::Update(u) = &out[0] else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(&u.frame).unwrap();
        assert_eq!(v["type"], "data_update");
        assert_eq!(v["channel"], "ticks");
        assert_eq!(v["symbol"], "AAPL");
        assert_eq!(v["seq"], 4);
        assert_eq!(v["data"]["price"], serde_json::json!(100.07));
        assert_eq!(v["data"]["ts_event"], 7);
        // Unsubscribing stops them.
        hub.unsubscribe(&a, Channel::Ticks, &syms(&["AAPL"]));
        hub.dispatch(&tick("AAPL", 8), 0);
        assert!(drain(&a).is_empty());
        assert_eq!(drain(&b), ["AAPL 4", "AAPL 5"]);
        hub.remove(&b);
        hub.dispatch(&tick("AAPL", 9), 0);
        assert!(drain(&b).is_empty());
    }

    #[test]
    fn resuming_replays_exactly_the_missed_then_live() {
        let hub = Hub::new(RealtimeConfig {
            history_len: 5,
            ..RealtimeConfig::default()
        });
        for n in 0..4 {
            hub.dispatch(&tick("AAPL", n), 0);
        }
        let c = hub.outbox();
        let since = BTreeMap::from([("AAPL".to_string(), 2)]);
        hub.subscribe(&c, Channel::Ticks, &syms(&["AAPL"]), None, &since)
            .unwrap();
        hub.dispatch(&tick("AAPL", 4), 0);
        assert_eq!(drain(&c), ["AAPL 3", "AAPL 4", "AAPL 5"]);

        // Past what the history holds (5 of 9): a gap, then what it holds.
        for n in 5..9 {
            hub.dispatch(&tick("AAPL", n), 0);
        }
        let late = hub.outbox();
        let since = BTreeMap::from([("AAPL".to_string(), 1)]);
        hub.subscribe(&late, Channel::Ticks, &syms(&["AAPL"]), None, &since)
            .unwrap();
        assert_eq!(
            drain(&late),
            [
                "gap AAPL 2-4 history",
                "AAPL 5",
                "AAPL 6",
                "AAPL 7",
                "AAPL 8",
                "AAPL 9"
            ]
        );
    }

    #[test]
    fn connections_are_counted_per_client() {
        let hub = Hub::new(RealtimeConfig {
            max_connections_per_client: 2,
            ..RealtimeConfig::default()
        });
        let a = hub.admit("ip:1").unwrap();
        let _b = hub.admit("ip:1").unwrap();
        assert!(hub.admit("ip:1").is_none());
        assert!(
            hub.admit("ip:2").is_some(),
            "another client is not affected"
        );
        drop(a);
        assert!(
            hub.admit("ip:1").is_some(),
            "a closed connection frees its place"
        );
    }

    #[test]
    fn resuming_a_key_this_hub_never_saw_is_a_gap_not_silence() {
        let hub = Hub::new(RealtimeConfig::default());
        let c = hub.outbox();
        let since = BTreeMap::from([("AAPL".to_string(), 7)]);
        hub.subscribe(&c, Channel::Ticks, &syms(&["AAPL"]), None, &since)
            .unwrap();
        hub.dispatch(&tick("AAPL", 0), 0);
        assert_eq!(drain(&c), ["gap AAPL 1-7 history", "AAPL 1"]);
    }

    #[test]
    fn subscriptions_are_checked() {
        let hub = Hub::new(RealtimeConfig::default());
        let c = hub.outbox();
        let none = BTreeMap::new();
        assert_eq!(
            hub.subscribe(&c, Channel::Ticks, &[], None, &none),
            Err(SubscribeError::NoSymbols)
        );
        assert_eq!(
            hub.subscribe(&c, Channel::Ticks, &syms(&["AAPL"]), Some("1m"), &none),
            Err(SubscribeError::IntervalNotApplicable)
        );
        hub.dispatch(&tick("MSFT", 0), 0);
        let since = BTreeMap::from([("MSFT".to_string(), 0)]);
        assert_eq!(
            hub.subscribe(&c, Channel::Ticks, &syms(&["AAPL"]), None, &since),
            Err(SubscribeError::SinceOutside("MSFT".into()))
        );
        let s = hub
            .subscribe(&c, Channel::Ticks, &syms(&["MSFT", "AAPL"]), None, &none)
            .unwrap();
        assert_eq!(s.symbols, Some(syms(&["AAPL", "MSFT"])));
    }

    #[tokio::test]
    async fn the_hub_follows_the_bus() {
        let bus = AnyBus::connect("memory://", marketd_bus::BusOptions::default())
            .await
            .unwrap();
        let cancel = CancellationToken::new();
        let hub = Hub::start(&bus, RealtimeConfig::default(), cancel.clone())
            .await
            .unwrap();
        let c = hub.outbox();
        hub.subscribe(&c, Channel::Ticks, &syms(&["*"]), None, &BTreeMap::new())
            .unwrap();
        bus.publish_batch((0..3).map(|n| tick("AAPL", n)).collect())
            .await
            .unwrap();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 3 {
            tokio::time::timeout_at(deadline, c.ready()).await.unwrap();
            got.extend(drain(&c));
        }
        assert_eq!(got, ["AAPL 1", "AAPL 2", "AAPL 3"]);
        cancel.cancel();
    }
}
