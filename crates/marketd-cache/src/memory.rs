use crate::{Cache, CacheOptions, CachedPrice, Quota, RateDecision, RateLimit, Result, gcra};
use moka::ops::compute::Op;
use moka::sync::Cache as Moka;
use std::sync::Arc;
use std::time::Duration;

/// In-process cache on moka: entries expire `ttl` after they were written and
/// the least useful are evicted beyond `max_entries`. Its rate limiter holds
/// one GCRA state per key, for this process only.
#[derive(Debug, Clone)]
pub struct MemoryCache {
    inner: Moka<String, Arc<CachedPrice>>,
    limits: Moka<String, i64>,
}

impl MemoryCache {
    pub fn new(opts: CacheOptions) -> Self {
        MemoryCache {
            inner: Moka::builder()
                .max_capacity(opts.max_entries)
                .time_to_live(opts.ttl)
                .build(),
            // A key idle for an hour has refilled any sane burst.
            limits: Moka::builder()
                .max_capacity(1_000_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
        }
    }
}

impl RateLimit for MemoryCache {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision> {
        let now = marketd_model::time::now_ns() / 1_000;
        let mut decision = None;
        self.limits.entry_by_ref(key).and_compute_with(|entry| {
            let (d, tat) = gcra::step(entry.map(|e| e.into_value()), now, quota);
            decision = Some(d);
            match tat {
                Some(t) => Op::Put(t),
                None => Op::Nop,
            }
        });
        Ok(decision.expect("the compute closure always runs"))
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
