use crate::{Cache, CacheOptions, CachedPrice, Quota, RateDecision, RateLimit, Result, gcra};
use moka::sync::Cache as Moka;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// In-process cache on moka: entries expire `ttl` after they were written and
/// the least useful are evicted beyond `max_entries`. Its rate limiter holds
/// one GCRA state per key, for this process only ([`Limits`]).
#[derive(Debug, Clone)]
pub struct MemoryCache {
    inner: Moka<String, Arc<CachedPrice>>,
    limits: Arc<Limits>,
}

impl MemoryCache {
    pub fn new(opts: CacheOptions) -> Self {
        MemoryCache {
            inner: Moka::builder()
                .max_capacity(opts.max_entries)
                .time_to_live(opts.ttl)
                .build(),
            limits: Arc::new(Limits::new()),
        }
    }
}

/// Shards of the limiter's map: keys of different clients rarely share one.
const SHARDS: usize = 64;
/// A shard is swept (states already refilled dropped) when it grows past
/// this many keys, then again at twice what the sweep left.
const FIRST_SWEEP: usize = 1_024;

/// The GCRA states of the in-process limiter: per key an atomic TAT (µs) in
/// a sharded map. The common path (a client seen before) takes one shard's
/// read lock to find the key by `&str` (no allocation, and readers do not
/// exclude each other) and decides with a compare-and-swap on the TAT, so
/// concurrent requests of one client are counted exactly once each without
/// a lock held across the decision. A new client takes its shard's write
/// lock once to insert its key.
///
/// A state whose TAT has passed is the same as no state (GCRA starts from
/// `max(TAT, now)`), so sweeping such states changes no decision: the map
/// holds only clients active within their burst window, which bounds its
/// memory without the approximations of an LRU.
#[derive(Debug)]
struct Limits {
    hasher: RandomState,
    shards: Box<[Shard]>,
}

#[derive(Debug, Default)]
struct Shard {
    states: RwLock<HashMap<Box<str>, AtomicI64>>,
    /// Size at which the next insert sweeps.
    sweep_at: AtomicUsize,
}

impl Limits {
    fn new() -> Self {
        Limits {
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    states: RwLock::default(),
                    sweep_at: AtomicUsize::new(FIRST_SWEEP),
                })
                .collect(),
        }
    }

    fn check(&self, key: &str, now: i64, quota: Quota) -> RateDecision {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        {
            let states = shard.states.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tat) = states.get(key) {
                return decide(tat, now, quota);
            }
        }
        let mut states = shard.states.write().unwrap_or_else(|e| e.into_inner());
        if !states.contains_key(key) && states.len() >= shard.sweep_at.load(Ordering::Relaxed) {
            states.retain(|_, tat| tat.load(Ordering::Acquire) > now);
            shard
                .sweep_at
                .store((states.len() * 2).max(FIRST_SWEEP), Ordering::Relaxed);
        }
        let tat = states
            .entry(key.into())
            .or_insert_with(|| AtomicI64::new(0));
        decide(tat, now, quota)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.states.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

/// One GCRA step on an atomic TAT: retried when another request of the same
/// key moved the TAT in between, so each request counts exactly once.
fn decide(tat: &AtomicI64, now: i64, quota: Quota) -> RateDecision {
    let mut current = tat.load(Ordering::Acquire);
    loop {
        let (decision, next) = gcra::step(Some(current), now, quota);
        let Some(next) = next else {
            return decision;
        };
        match tat.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return decision,
            Err(seen) => current = seen,
        }
    }
}

impl RateLimit for MemoryCache {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision> {
        let now = marketd_model::time::now_ns() / 1_000;
        Ok(self.limits.check(key, now, quota))
    }
}
impl Cache for MemoryCache {
    async fn get_latest(&self, key: &str) -> Result<Option<CachedPrice>> {
        Ok(self.inner.get(key).map(|p| (*p).clone()))
    }

    async fn put_latest(&self, key: &str, price: CachedPrice) -> Result<()> {
        let fresh = self
            .inner
            .get(key)
            .is_none_or(|old| old.tick.ts_event <= price.tick.ts_event);
        if fresh {
            self.inner.insert(key.to_string(), Arc::new(price));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latest_key;
    use marketd_model::{Decimal, Symbol, Tick, TickKind};
    use std::time::Duration;

    fn price(ts: i64, p: i64) -> CachedPrice {
        let (aapl, price) = (Symbol::parse("AAPL").unwrap(), Decimal::from(p));
        let tick = Tick::new(aapl, "sim", TickKind::Last, price, Decimal::ONE, ts, ts);
        CachedPrice {
            tick,
            cached_at: ts,
        }
    }

    #[test]
    fn limiter_counts_each_request_once_across_threads() {
        let limits = Arc::new(Limits::new());
        let q = Quota {
            per_second: 1.0,
            burst: 1_000,
        };
        let now = 5_000_000_000;
        let allowed: usize = (0..4)
            .map(|_| {
                let limits = limits.clone();
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|_| limits.check("ip:10.0.0.1", now, q).allowed)
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(
            allowed, 1_000,
            "exactly the burst of 2,000 requests at one instant"
        );
        let refused = limits.check("ip:10.0.0.1", now, q);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(1));
    }

    #[test]
    fn sweeping_drops_only_refilled_states() {
        let limits = Limits::new();
        let q = Quota {
            per_second: 1.0,
            burst: 2,
        };
        // Enough keys that every shard sweeps at least once.
        let keys = SHARDS * FIRST_SWEEP * 2;
        for i in 0..keys {
            assert!(limits.check(&format!("old:{i}"), 0, q).allowed);
        }
        // A client that used its whole burst at t = 100 s, then many new
        // clients an hour later, when the old ones have refilled.
        let later = 3_600_000_000;
        assert!(limits.check("busy", later, q).allowed);
        assert!(limits.check("busy", later, q).allowed);
        for i in 0..2 * keys {
            assert!(limits.check(&format!("new:{i}"), later, q).allowed);
        }
        let left = limits.len();
        assert!(
            left < 2 * keys + keys / 2,
            "refilled states were swept: {left}"
        );
        // The busy client's state survived every sweep: still refused.
        assert!(!limits.check("busy", later, q).allowed);
        // An old client starts again from a full burst.
        assert_eq!(limits.check("old:7", later, q).remaining, 1);
    }

    #[tokio::test]
    async fn keeps_the_newest_and_expires() {
        let c = MemoryCache::new(CacheOptions {
            ttl: Duration::from_millis(200),
            max_entries: 10,
        });
        let k = latest_key("sim", "AAPL");
        assert_eq!(k, "latest:sim:AAPL");
        assert!(c.get_latest(&k).await.unwrap().is_none());
        c.put_latest(&k, price(10, 1)).await.unwrap();
        c.put_latest(&k, price(5, 2)).await.unwrap(); // older: ignored
        assert_eq!(
            c.get_latest(&k).await.unwrap().unwrap().tick.price,
            Decimal::from(1)
        );
        c.put_latest(&k, price(11, 3)).await.unwrap();
        assert_eq!(
            c.get_latest(&k).await.unwrap().unwrap().tick.price,
            Decimal::from(3)
        );
        // moka's clock cannot be paused: wait for the expiry, with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.get_latest(&k).await.unwrap().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "entry must expire after the TTL"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
