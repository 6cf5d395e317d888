//! Keeps the latest-price cache warm from the ticks the aggregator receives,
//! so `GET /prices/latest` for a streamed symbol is a cache hit.
//!
//! The aggregator already reads every tick of its partitions, so it hands
//! each batch to a [`LatestFeed`] instead of a consumer group of its own
//! reading (and decoding) the `ticks` topic again: with Kafka that was a
//! third fetch and a third decode of every tick. The feed keeps only the
//! newest tick per (source, symbol) until its writer task has stored it, so
//! a slow or unreachable cache costs memory bounded by the number of
//! series, and never holds up the aggregator. The cache is best effort, as
//! it was with a group of its own (which committed whether or not the write
//! succeeded): a failed write is logged and counted, and the next tick of
//! the series writes it again.

use marketd_cache::{AnyCache, Cache, CachedPrice, latest_key};
use marketd_model::time::now_ns;
use marketd_model::{Symbol, Tick};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::task::TaskTracker;

/// The newest tick per series not yet written.
type Pending = HashMap<(Arc<str>, Symbol), Tick>;

/// Hands ticks to the cache writer. Dropping it lets the writer store what
/// is pending and end.
#[derive(Debug)]
pub(crate) struct LatestFeed {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    closed: AtomicBool,
}

impl LatestFeed {
    /// Starts the writer on `tasks` (which a shutdown waits for).
    pub(crate) fn start(cache: AnyCache, tasks: &TaskTracker) -> LatestFeed {
        let shared = Arc::new(Shared::default());
        tasks.spawn(write(cache, shared.clone()));
        LatestFeed { shared }
    }

    /// Offers received ticks; only the newest per series (by event time)
    /// is kept for the writer.
    pub(crate) fn offer<'a>(&self, ticks: impl IntoIterator<Item = &'a Tick>) {
        // Coalesced by reference first: one clone per series, one lock.
        let mut newest: HashMap<(&str, &str), &Tick> = HashMap::new();
        for t in ticks {
            let e = newest.entry((&t.source, t.symbol.as_str())).or_insert(t);
            if t.ts_event >= e.ts_event {
                *e = t;
            }
        }
        if newest.is_empty() {
            return;
        }
        {
            let mut pending = self.shared.pending.lock().expect("latest feed lock");
            for t in newest.into_values() {
                let key = (t.source.clone(), t.symbol.clone());
                if pending.get(&key).is_none_or(|p| t.ts_event >= p.ts_event) {
                    pending.insert(key, t.clone());
                }
            }
        }
        self.shared.wake.notify_one();
    }
}

impl Drop for LatestFeed {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// Writes what is pending whenever woken; ends once the feed is dropped
/// and nothing is pending.
async fn write(cache: AnyCache, shared: Arc<Shared>) {
    // Event time of the tick last written per series: a late tick taken
    // after a newer one was written does not replace it.
    let mut written: HashMap<(Arc<str>, Symbol), i64> = HashMap::new();
    loop {
        let taken = std::mem::take(&mut *shared.pending.lock().expect("latest feed lock"));
        if taken.is_empty() {
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            // A wake-up sent since the take is kept as a permit.
            shared.wake.notified().await;
            continue;
        }
        let now = now_ns();
        for ((source, symbol), tick) in taken {
            let key = latest_key(&source, symbol.as_str());
            let last = written.entry((source, symbol)).or_insert(i64::MIN);
            if *last > tick.ts_event {
                continue;
            }
            *last = tick.ts_event;
            let price = CachedPrice {
                tick,
                cached_at: now,
            };
            if let Err(e) = cache.put_latest(&key, price).await {
                metrics::counter!("marketd_cache_write_errors_total").increment(1);
                tracing::warn!(error = %e, %key, "cache write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_cache::CacheOptions;
    use marketd_model::{Decimal, TickKind};

    fn tick(source: &str, symbol: &str, ts: i64, price: i64) -> Tick {
        Tick::new(
            Symbol::parse(symbol).unwrap(),
            source,
            TickKind::Trade,
            Decimal::from(price),
            Decimal::ONE,
            ts,
            ts,
        )
    }

    async fn latest(cache: &AnyCache, source: &str, symbol: &str) -> Option<Decimal> {
        let got = cache.get_latest(&latest_key(source, symbol)).await.unwrap();
        got.map(|p| p.tick.price)
    }

    /// The newest tick by event time wins per series, within a batch and
    /// across batches (a late tick offered after a newer one is not
    /// written over it), and dropping the feed writes what is pending.
    #[tokio::test]
    async fn the_newest_tick_per_series_reaches_the_cache() {
        let cache = AnyCache::connect("memory://", CacheOptions::default())
            .await
            .unwrap();
        let tasks = TaskTracker::new();
        let feed = LatestFeed::start(cache.clone(), &tasks);
        let first = [
            tick("sim", "AAPL", 30, 103),
            tick("sim", "AAPL", 10, 101),
            tick("sim", "MSFT", 5, 400),
            tick("other", "AAPL", 7, 99),
        ];
        feed.offer(&first);
        // Late for AAPL on sim (older than 30), new for MSFT.
        let second = [tick("sim", "AAPL", 20, 102), tick("sim", "MSFT", 6, 401)];
        feed.offer(&second);
        // Once the first batch is written, a late tick offered alone.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while latest(&cache, "sim", "MSFT").await != Some(Decimal::from(401)) {
            assert!(tokio::time::Instant::now() < deadline, "nothing written");
            tokio::task::yield_now().await;
        }
        feed.offer(&[tick("sim", "AAPL", 25, 104)]);
        drop(feed);
        tasks.close();
        tokio::time::timeout(std::time::Duration::from_secs(10), tasks.wait())
            .await
            .expect("the writer ends once the feed is dropped");
        assert_eq!(
            latest(&cache, "sim", "AAPL").await,
            Some(Decimal::from(103))
        );
        assert_eq!(
            latest(&cache, "sim", "MSFT").await,
            Some(Decimal::from(401))
        );
        assert_eq!(
            latest(&cache, "other", "AAPL").await,
            Some(Decimal::from(99))
        );
        assert_eq!(latest(&cache, "other", "MSFT").await, None);
    }
}
