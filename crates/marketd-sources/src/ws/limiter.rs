//! One connect gate per host, shared by every session to that host: a token
//! bucket spaces connection attempts (fifty subscriptions that drop together
//! come back one after another, not as a storm the venue answers with bans),
//! and a cool-down set by any session that was told "429"/"418" holds all of
//! them back until the venue's `Retry-After` has passed.

use crate::ratelimit::TokenBucket;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Connects per second and burst of a host's gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectRate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for ConnectRate {
    /// 3 per second, burst 3: under OKX's 3 connects/s per IP and far under
    /// Binance's 300 connections per 5 minutes.
    fn default() -> Self {
        ConnectRate {
            per_second: 3,
            burst: 3,
        }
    }
}

/// The gate of one host.
#[derive(Debug)]
pub struct HostGate {
    bucket: TokenBucket,
    cooldown_until: Mutex<Option<Instant>>,
}

impl HostGate {
    fn new(rate: ConnectRate) -> Self {
        HostGate {
            bucket: TokenBucket::new(rate.per_second, Duration::from_secs(1), rate.burst),
            cooldown_until: Mutex::new(None),
        }
    }

    /// The end of the host's cool-down, if it is still ahead.
    pub fn cooldown_until(&self) -> Option<Instant> {
        let until = *self
            .cooldown_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        until.filter(|u| *u > Instant::now())
    }

    /// Holds every session to this host back until `until` (a later
    /// cool-down wins over an earlier one).
    pub fn cool_down(&self, until: Instant) {
        let mut c = self
            .cooldown_until
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if c.is_none_or(|cur| cur < until) {
            *c = Some(until);
        }
    }

    /// Waits for a connect token (never gives up; cancel by dropping).
    pub async fn acquire(&self) {
        // `acquire` refuses waits beyond its bound; a day is "forever" here.
        while !self.bucket.acquire(Duration::from_secs(86_400)).await {}
    }
}

/// The registry of host gates. Sessions share [`ConnectLimiters::global`]
/// unless given their own (tests, or a process that wants other rates).
#[derive(Debug)]
pub struct ConnectLimiters {
    default_rate: ConnectRate,
    overrides: HashMap<String, ConnectRate>,
    gates: Mutex<HashMap<String, Arc<HostGate>>>,
}

static GLOBAL: LazyLock<Arc<ConnectLimiters>> =
    LazyLock::new(|| Arc::new(ConnectLimiters::new(ConnectRate::default())));

impl ConnectLimiters {
    pub fn new(default_rate: ConnectRate) -> Self {
        ConnectLimiters {
            default_rate,
            overrides: HashMap::new(),
            gates: Mutex::new(HashMap::new()),
        }
    }

    /// A different rate for `host` (before any session uses it).
    pub fn with_host_rate(mut self, host: &str, rate: ConnectRate) -> Self {
        self.overrides.insert(host.to_ascii_lowercase(), rate);
        self
    }

    /// The process-wide registry.
    pub fn global() -> Arc<ConnectLimiters> {
        GLOBAL.clone()
    }

    /// The gate of `host` (case-insensitive), created on first use.
    pub fn gate(&self, host: &str) -> Arc<HostGate> {
        let host = host.to_ascii_lowercase();
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = gates.get(&host) {
            return g.clone();
        }
        let rate = self
            .overrides
            .get(&host)
            .copied()
            .unwrap_or(self.default_rate);
        let g = Arc::new(HostGate::new(rate));
        gates.insert(host, g.clone());
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fifty_sessions_to_one_host_are_spread_out() {
        let limiters = Arc::new(ConnectLimiters::new(ConnectRate {
            per_second: 5,
            burst: 5,
        }));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..50 {
            let l = limiters.clone();
            handles.push(tokio::spawn(async move {
                l.gate("Stream.Example").acquire().await;
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for h in handles {
            times.push(h.await.unwrap() - start);
        }
        times.sort();
        // 5 at once, then 5 per second: the last one 9 s after the first.
        assert!(times[4] < Duration::from_millis(1));
        assert!(times[49] >= Duration::from_millis(8_999), "{:?}", times[49]);
        // After the burst, one every 200 ms: never two at once.
        for w in times[4..].windows(2) {
            assert!(w[1] - w[0] >= Duration::from_millis(199), "{w:?}");
        }
        // Another host has its own budget.
        let t = Instant::now();
        limiters.gate("other.example").acquire().await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_is_shared_and_the_latest_wins() {
        let limiters = ConnectLimiters::new(ConnectRate::default()).with_host_rate(
            "slow.example",
            ConnectRate {
                per_second: 1,
                burst: 1,
            },
        );
        let a = limiters.gate("x.example");
        let b = limiters.gate("X.EXAMPLE");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.cooldown_until(), None);
        let now = Instant::now();
        a.cool_down(now + Duration::from_secs(10));
        a.cool_down(now + Duration::from_secs(5));
        assert_eq!(b.cooldown_until(), Some(now + Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(b.cooldown_until(), None, "a past cool-down is over");
        let slow = limiters.gate("slow.example");
        slow.acquire().await;
        let t = Instant::now();
        slow.acquire().await;
        assert_eq!(t.elapsed(), Duration::from_secs(1));
    }
}
