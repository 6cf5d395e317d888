//! One suite of cache and rate-limiter behaviour, run against every backend:
//! `memory://` always, Redis when `MARKETD_TEST_REDIS_URL` names a server
//! (scripts/test starts a private one). Without it the Redis runs are skipped,
//! unless `MARKETD_REQUIRE_SERVICES=1`, where they fail.

use marketd_cache::{AnyCache, Cache, CacheOptions, CachedPrice, Quota, RateLimit, latest_key};
use marketd_model::{Decimal, Symbol, Tick, TickKind};
use std::str::FromStr;
use std::time::Duration;

fn price(symbol: &str, ts: i64, p: &str) -> CachedPrice {
    CachedPrice {
        tick: Tick::new(
            Symbol::parse(symbol).unwrap(),
            "sim",
            TickKind::Last,
            Decimal::from_str(p).unwrap(),
            Decimal::ONE,
            ts,
            ts,
        ),
        cached_at: ts + 1,
    }
}

/// A key no other run of the suite uses (Redis is shared by the test run).
fn unique(name: &str) -> String {
    format!("{name}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        marketd_model::time::now_ns(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn round_trip_is_exact(c: &AnyCache) {
    let k = latest_key("sim", &unique("EXACT"));
    assert!(c.get_latest(&k).await.unwrap().is_none());
    // 1_700_000_000_123_456_789 ns: beyond f64's exact integers.
    let p = price("AAPL", 1_700_000_000_123_456_789, "187.123456789012345678");
    c.put_latest(&k, p.clone()).await.unwrap();
    assert_eq!(c.get_latest(&k).await.unwrap(), Some(p));
}

/// Many reads at once, of a few keys and of a missing one (the Redis
/// backend batches them, one read per distinct key): each gets its own key's
/// value; a write completed before a read is seen by it.
async fn concurrent_reads_get_their_own_keys(c: &AnyCache) {
    let keys: Vec<String> = (0..3)
        .map(|i| latest_key("sim", &unique(&format!("READ{i}"))))
        .collect();
    let base = 1_700_000_000_000_000_000;
    for (i, k) in keys.iter().enumerate() {
        c.put_latest(k, price("AAPL", base + i as i64, &format!("{}.5", i + 1)))
            .await
            .unwrap();
    }
    let missing = latest_key("sim", &unique("MISSING"));
    let reads = (0..60).map(|n| {
        let c = c.clone();
        let k = if n % 4 == 3 {
            missing.clone()
        } else {
            keys[n % 4].clone()
        };
        tokio::spawn(async move { (n % 4, c.get_latest(&k).await.unwrap()) })
    });
    for r in reads {
        let (i, got) = r.await.unwrap();
        if i == 3 {
            assert_eq!(got, None);
        } else {
            let want = price("AAPL", base + i as i64, &format!("{}.5", i + 1));
            assert_eq!(got, Some(want));
        }
    }
    // Read after a write: the new value, never the one before.
    c.put_latest(&keys[0], price("AAPL", base + 100, "9.25"))
        .await
        .unwrap();
    assert_eq!(
        c.get_latest(&keys[0]).await.unwrap(),
        Some(price("AAPL", base + 100, "9.25"))
    );
}

async fn newest_event_time_wins(c: &AnyCache) {
    let k = latest_key("sim", &unique("NEWEST"));
    let base = 1_700_000_000_000_000_000;
    c.put_latest(&k, price("AAPL", base + 10, "1"))
        .await
        .unwrap();
    c.put_latest(&k, price("AAPL", base + 9, "2"))
        .await
        .unwrap();
    assert_eq!(
        c.get_latest(&k).await.unwrap().unwrap().tick.price,
        Decimal::from(1),
        "an older tick must not replace a newer one"
    );
    // Same length, lexicographically later: newer.
    c.put_latest(&k, price("AAPL", base + 11, "3"))
        .await
        .unwrap();
    assert_eq!(
        c.get_latest(&k).await.unwrap().unwrap().tick.price,
        Decimal::from(3)
    );
    // Shorter timestamp (earlier epoch): older.
    c.put_latest(&k, price("AAPL", 999, "4")).await.unwrap();
    assert_eq!(
        c.get_latest(&k).await.unwrap().unwrap().tick.price,
        Decimal::from(3)
    );
}

/// Polls `holds` every 20 ms until it is true; fails naming `what` after
/// 10 s. The backends' clocks (moka's, Redis's) cannot be paused from here,
/// so what they promise is waited for with a generous deadline instead of a
/// sleep that guesses how long it takes.
async fn wait_for<F, Fut>(what: &str, mut holds: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !holds().await {
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn entries_expire(c: &AnyCache) {
    let k = latest_key("sim", &unique("TTL"));
    c.put_latest(&k, price("AAPL", 5, "1")).await.unwrap();
    assert!(c.get_latest(&k).await.unwrap().is_some());
    wait_for("entry must expire after the TTL (300 ms)", || async {
        c.get_latest(&k).await.unwrap().is_none()
    })
    .await;
}

async fn limiter_allows_the_burst_then_refuses(c: &AnyCache) {
    let key = unique("client");
    let q = Quota {
        per_second: 2.0,
        burst: 3,
    };
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = c.check(&key, q).await.unwrap();
        assert!(d.allowed);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, vec![2, 1, 0]);
    let refused = c.check(&key, q).await.unwrap();
    assert!(!refused.allowed);
    assert!(
        refused.retry_after > Duration::from_millis(300)
            && refused.retry_after <= Duration::from_millis(500),
        "retry after one interval (500 ms), got {:?}",
        refused.retry_after
    );
    // Another key has its own budget.
    assert!(c.check(&unique("other"), q).await.unwrap().allowed);
    // A refused check takes nothing, so polling does not spend the refill;
    // that it comes exactly at retry_after is `gcra`'s unit tests' matter.
    wait_for("refilled after retry_after", || async {
        c.check(&key, q).await.unwrap().allowed
    })
    .await;
    assert!(!c.check(&key, q).await.unwrap().allowed);
}

async fn limiter_counts_concurrent_requests_once_each(c: &AnyCache) {
    // Two clients at once, interleaved (the Redis backend decides them in
    // shared batches, reading and writing each key once per batch).
    let keys = [unique("concurrent-a"), unique("concurrent-b")];
    let bursts = [10u32, 4];
    let checks = (0..80).map(|i| {
        let c = c.clone();
        let (key, burst) = (keys[i % 2].clone(), bursts[i % 2]);
        let q = Quota {
            per_second: 0.1,
            burst,
        };
        tokio::spawn(async move { (i % 2, c.check(&key, q).await.unwrap()) })
    });
    let mut remaining = [Vec::new(), Vec::new()];
    for h in checks {
        let (k, d) = h.await.unwrap();
        if d.allowed {
            remaining[k].push(d.remaining);
        } else {
            assert!(d.retry_after > Duration::from_secs(1), "{d:?}");
        }
    }
    for (k, burst) in bursts.iter().enumerate() {
        remaining[k].sort_unstable();
        assert_eq!(
            remaining[k],
            (0..*burst).collect::<Vec<_>>(),
            "exactly the burst passes, each with its own remaining count, whatever the interleaving"
        );
    }
}

macro_rules! for_each_suite_test {
    ($runner:ident) => {
        $runner!(
            round_trip_is_exact,
            concurrent_reads_get_their_own_keys,
            newest_event_time_wins,
            entries_expire,
            limiter_allows_the_burst_then_refuses,
            limiter_counts_concurrent_requests_once_each,
        );
    };
}

fn options() -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_millis(300),
        max_entries: 1_000,
    }
}

mod memory {
    use super::*;

    macro_rules! memory_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let c = AnyCache::connect("memory://", options()).await.unwrap();
                super::$name(&c).await;
            }
        )*};
    }
    for_each_suite_test!(memory_tests);
}

mod redis_runner {
    use super::*;

    const URL_VAR: &str = "MARKETD_TEST_REDIS_URL";

    async fn connect(test: &str) -> Option<AnyCache> {
        let url = marketd_testkit::service(URL_VAR, &format!("redis test {test}"))?;
        Some(
            AnyCache::connect(&url, options())
                .await
                .unwrap_or_else(|e| panic!("{URL_VAR} is set but Redis fails: {e}")),
        )
    }

    macro_rules! redis_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let Some(c) = connect(stringify!($name)).await else { return };
                assert_eq!(c.backend_name(), "redis");
                super::$name(&c).await;
            }
        )*};
    }
    for_each_suite_test!(redis_tests);

    /// Each instance keeps a copy of the prices it read, kept current by
    /// Redis's invalidation messages: a write through another instance, or
    /// by any other client, reaches it long before the TTL (60 s here, so a
    /// copy that was not invalidated would fail this).
    #[tokio::test]
    async fn writes_elsewhere_reach_an_instances_copy() {
        let Some(url) = marketd_testkit::service(URL_VAR, "redis test writes_elsewhere") else {
            return;
        };
        let opts = CacheOptions {
            ttl: Duration::from_secs(60),
            max_entries: 1_000,
        };
        let a = AnyCache::connect(&url, opts.clone()).await.unwrap();
        let b = AnyCache::connect(&url, opts).await.unwrap();
        let k = latest_key("sim", &unique("COPY"));
        let base = 1_700_000_000_000_000_000;
        b.put_latest(&k, price("AAPL", base, "1")).await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                a.get_latest(&k).await.unwrap(),
                Some(price("AAPL", base, "1"))
            );
        }
        b.put_latest(&k, price("AAPL", base + 1, "2"))
            .await
            .unwrap();
        wait_for(
            "a write through another instance reaches the copy",
            || async { a.get_latest(&k).await.unwrap() == Some(price("AAPL", base + 1, "2")) },
        )
        .await;
        // Any client: the key deleted behind marketd's back.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut raw = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("marketd:{k}"))
            .query_async(&mut raw)
            .await
            .unwrap();
        wait_for("a deletion by another client reaches the copy", || async {
            a.get_latest(&k).await.unwrap().is_none()
        })
        .await;
        // The instance's own write is seen at once by its next read.
        a.put_latest(&k, price("AAPL", base + 2, "3"))
            .await
            .unwrap();
        assert_eq!(
            a.get_latest(&k).await.unwrap(),
            Some(price("AAPL", base + 2, "3"))
        );
        b.put_latest(&k, price("AAPL", base + 3, "4"))
            .await
            .unwrap();
        wait_for("and the next write elsewhere too", || async {
            a.get_latest(&k).await.unwrap() == Some(price("AAPL", base + 3, "4"))
        })
        .await;
    }

    #[tokio::test]
    async fn unreachable_redis_fails_naming_the_url_without_password() {
        let err = AnyCache::connect("redis://:hunter2@127.0.0.1:1/0", options())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("redis://:***@127.0.0.1:1/0"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
