//! The instance's own copy of the latest prices it read from Redis, kept
//! current by Redis itself (server-assisted client-side caching: `CLIENT
//! TRACKING` on the RESP3 connection). Redis remembers which keys this
//! connection read and pushes an invalidation message when any client
//! modifies, expires or evicts one of them; until then the copy is the
//! value Redis holds, and a read is answered here without a round trip.
//!
//! Correctness does not rest on the order in which replies and
//! invalidations reach this code (the connection delivers them on different
//! paths):
//! - every key has a generation, bumped by each invalidation of it; a read
//!   that goes to Redis notes the generation before it is sent and stores
//!   its answer only if no invalidation of that key arrived meanwhile (an
//!   invalidation that overtakes the reply it follows cannot leave the older
//!   value behind);
//! - a lost connection loses Redis's memory of what was read: the whole
//!   copy is dropped (its epoch advances, so reads in flight store nothing)
//!   and the next read re-enables tracking on the new connection;
//! - this instance's own writes drop their key at once when they complete
//!   (their invalidation may arrive later), so a read after a write through
//!   the same instance sees it;
//! - a copy expires with the key's TTL on the server, read in the same
//!   pipeline.
//!
//! What remains is the time an invalidation takes to arrive: a write made
//! through another instance is seen here once its message is in (on
//! loopback, well under a millisecond).

use crate::CachedPrice;
use redis::aio::{AsyncPushSender, SendError};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The copy, shared by every clone of the cache and by the connection's
/// push handler.
#[derive(Debug)]
pub(super) struct NearCache {
    state: Mutex<State>,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Advanced whenever the whole copy is dropped.
    epoch: u64,
    /// By full Redis key (with the `marketd:` prefix).
    entries: HashMap<Box<str>, Entry>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Invalidations of this key seen so far.
    generation: u64,
    /// The value Redis held and until when it may be served.
    value: Option<(CachedPrice, Instant)>,
}

/// Where a read that goes to Redis started: its answer is stored only if
/// this still holds when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    epoch: u64,
    generation: u64,
}

impl NearCache {
    pub(super) fn new(max_entries: usize) -> Arc<NearCache> {
        Arc::new(NearCache {
            state: Mutex::new(State::default()),
            max_entries: max_entries.max(1),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The copy of `key` if it is current; else the ticket of a read from
    /// Redis.
    pub(super) fn get(&self, key: &str) -> Result<CachedPrice, Ticket> {
        let now = Instant::now();
        let mut s = self.state();
        if let Some(e) = s.entries.get(key) {
            if let Some((v, until)) = &e.value
                && *until > now
            {
                return Ok(v.clone());
            }
            return Err(Ticket {
                epoch: s.epoch,
                generation: e.generation,
            });
        }
        if s.entries.len() >= self.max_entries {
            s.drop_all();
        }
        s.entries.insert(key.into(), Entry::default());
        Err(Ticket {
            epoch: s.epoch,
            generation: 0,
        })
    }

    /// Stores what a read started with `ticket` got, for `ttl` (the key's
    /// remaining time on the server), unless `key` was invalidated or the
    /// copy dropped since the ticket was taken.
    pub(super) fn store(&self, key: &str, ticket: Ticket, value: &CachedPrice, ttl: Duration) {
        let mut s = self.state();
        if s.epoch != ticket.epoch {
            return;
        }
        if let Some(e) = s.entries.get_mut(key)
            && e.generation == ticket.generation
        {
            e.value = Some((value.clone(), Instant::now() + ttl));
        }
    }

    /// `key` changed: its copy is gone and reads in flight store nothing.
    pub(super) fn invalidate(&self, key: &str) {
        if let Some(e) = self.state().entries.get_mut(key) {
            e.generation += 1;
            e.value = None;
        }
    }

    /// Drops the whole copy (connection lost, database flushed).
    pub(super) fn invalidate_all(&self) {
        self.state().drop_all();
    }
}

impl State {
    fn drop_all(&mut self) {
        self.epoch += 1;
        self.entries.clear();
    }
}

/// Takes the connection's push messages (invalidations, disconnections)
/// to the copy. Called on the connection's own task, so it never blocks
/// beyond the copy's short lock.
pub(super) struct Pushes(pub(super) Arc<NearCache>);

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        self.0.push(info);
        Ok(())
    }
}

impl NearCache {
    fn push(&self, info: PushInfo) {
        match info.kind {
            PushKind::Invalidate => match info.data.first() {
                Some(Value::Array(keys)) => {
                    for k in keys {
                        match k {
                            // Every key read here is UTF-8; others are not ours.
                            Value::BulkString(b) => {
                                if let Ok(k) = std::str::from_utf8(b) {
                                    self.invalidate(k);
                                }
                            }
                            Value::SimpleString(k) => self.invalidate(k),
                            _ => {}
                        }
                    }
                }
                // FLUSHALL / FLUSHDB: every key at once.
                _ => self.invalidate_all(),
            },
            PushKind::Disconnection => self.invalidate_all(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::{Decimal, Symbol, Tick, TickKind};

    fn price(p: i64) -> CachedPrice {
        CachedPrice {
            tick: Tick::new(
                Symbol::parse("AAPL").unwrap(),
                "sim",
                TickKind::Last,
                Decimal::from(p),
                Decimal::ONE,
                p,
                p,
            ),
            cached_at: p,
        }
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_stored_read_is_served_until_invalidated() {
        let c = NearCache::new(10);
        let t = c.get("k").unwrap_err();
        c.store("k", t, &price(1), MIN);
        assert_eq!(c.get("k"), Ok(price(1)));
        c.invalidate("k");
        let t2 = c.get("k").unwrap_err();
        assert_ne!(t, t2, "the generation moved on");
        c.store("k", t2, &price(2), MIN);
        assert_eq!(c.get("k"), Ok(price(2)));
    }

    /// The invalidation of a write made after the read reached Redis can
    /// arrive before the read's reply: the reply must not be kept.
    #[test]
    fn an_invalidation_that_overtakes_the_reply_wins() {
        let c = NearCache::new(10);
        let t = c.get("k").unwrap_err();
        c.invalidate("k");
        c.store("k", t, &price(1), MIN);
        assert!(c.get("k").is_err(), "the older value was kept");
    }

    #[test]
    fn a_lost_connection_drops_everything_and_reads_in_flight() {
        let c = NearCache::new(10);
        let t = c.get("a").unwrap_err();
        c.store("a", t, &price(1), MIN);
        let in_flight = c.get("b").unwrap_err();
        c.push(PushInfo {
            kind: PushKind::Disconnection,
            data: vec![],
        });
        assert!(c.get("a").is_err());
        c.store("b", in_flight, &price(2), MIN);
        assert!(
            c.get("b").is_err(),
            "a read from the old connection was kept"
        );
    }

    #[test]
    fn pushed_invalidations_name_their_keys_or_flush_all() {
        let c = NearCache::new(10);
        for k in ["a", "b"] {
            let t = c.get(k).unwrap_err();
            c.store(k, t, &price(1), MIN);
        }
        c.push(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![Value::BulkString(b"a".to_vec())])],
        });
        assert!(c.get("a").is_err());
        assert_eq!(c.get("b"), Ok(price(1)));
        c.push(PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Nil],
        });
        assert!(c.get("b").is_err());
    }

    #[test]
    fn copies_expire_and_the_size_is_bounded() {
        let c = NearCache::new(2);
        let t = c.get("a").unwrap_err();
        c.store("a", t, &price(1), Duration::ZERO);
        assert!(c.get("a").is_err(), "expired copy served");
        let _ = c.get("b");
        // A third key starts the copy over rather than growing past 2.
        let t = c.get("c").unwrap_err();
        assert_eq!(c.state().entries.len(), 1);
        c.store("c", t, &price(3), MIN);
        assert_eq!(c.get("c"), Ok(price(3)));
    }
}
