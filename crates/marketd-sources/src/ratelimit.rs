//! An async token bucket: callers reserve a token and wait for it, up to a bound.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Allows `rate` requests per `period` on average with bursts of up to
/// `capacity`. Reservations are first come, first served: a caller that
/// cannot get a token within its bound gets `false` and takes nothing.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// May go negative: tokens already promised to waiting callers.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` tokens per `period`, bursts up to `capacity` (at least 1).
    pub fn new(rate: u32, period: Duration, capacity: u32) -> Self {
        let capacity = f64::from(capacity.max(1));
        let per_sec = f64::from(rate.max(1)) / period.as_secs_f64().max(1e-9);
        TokenBucket {
            capacity,
            per_sec,
            state: Mutex::new(State {
                tokens: capacity,
                last: Instant::now(),
            }),
        }
    }

    /// A bucket for `n` requests per minute. The burst is a tenth of a
    /// minute's allowance (at least 1, at most 30, Finnhub's per-second cap),
    /// so a cold start cannot spend the whole minute at once.
    pub fn per_minute(n: u32) -> Self {
        TokenBucket::new(n, Duration::from_secs(60), (n / 10).clamp(1, 30))
    }

    /// Takes a token, waiting for it if need be. Returns `false` at once,
    /// without taking one, when the token would not be ready within `max_wait`.
    pub async fn acquire(&self, max_wait: Duration) -> bool {
        let wait = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.last).as_secs_f64();
            s.tokens = (s.tokens + elapsed * self.per_sec).min(self.capacity);
            s.last = now;
            let after = s.tokens - 1.0;
            let wait = if after >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-after / self.per_sec)
            };
            if wait > max_wait {
                return false;
            }
            s.tokens = after;
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bursts_then_paces_then_refuses() {
        let bucket = TokenBucket::new(60, Duration::from_secs(60), 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(
                bucket.acquire(Duration::ZERO).await,
                "burst tokens are immediate"
            );
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        // The 4th must wait one second (1 token/s); a bound below that refuses.
        assert!(!bucket.acquire(Duration::from_millis(500)).await);
        assert!(bucket.acquire(Duration::from_secs(2)).await);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1001),
            "{waited:?}"
        );
        // Ten more take ten more seconds: the average rate holds.
        for _ in 0..10 {
            assert!(bucket.acquire(Duration::from_secs(5)).await);
        }
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(10_990) && waited <= Duration::from_millis(11_010),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_queue_fairly() {
        let bucket = std::sync::Arc::new(TokenBucket::new(10, Duration::from_secs(1), 1));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..5 {
            let b = bucket.clone();
            handles.push(tokio::spawn(async move {
                b.acquire(Duration::from_secs(1)).await
            }));
        }
        let mut granted = 0;
        for h in handles {
            granted += usize::from(h.await.unwrap());
        }
        assert_eq!(granted, 5);
        // 1 immediate + 4 at 100 ms intervals.
        assert!(
            start.elapsed() >= Duration::from_millis(399)
                && start.elapsed() <= Duration::from_millis(401)
        );
    }
}
