//! When to reconnect. The first retry after a failure is immediate (most
//! drops are one-offs); after that, full jitter: retry `k` waits a random
//! delay in `[0, min(cap, base · 2^(k-1))]`, so many sessions that dropped
//! together do not come back together. The count of failures is forgotten
//! only once a connection has stayed up for `healthy_after` — a connection
//! that opens and dies at once must not reset the backoff, or a flapping
//! server gets hammered at full speed.

use crate::backoff::Backoff;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;
use tokio::time::Instant;

/// Reconnect schedule parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Ceiling of the second retry's delay (the first is immediate).
    pub base: Duration,
    /// Cap of every delay.
    pub cap: Duration,
    /// A connection that lasted this long resets the schedule.
    pub healthy_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// The reconnect state of one session.
#[derive(Debug)]
pub struct ReconnectBackoff {
    policy: ReconnectPolicy,
    jitter: Backoff,
    /// Consecutive failures since the last healthy connection.
    failures: u32,
    connected_at: Option<Instant>,
    rng: StdRng,
}

impl ReconnectBackoff {
    pub fn new(policy: ReconnectPolicy) -> Self {
        Self::with_rng(policy, StdRng::from_os_rng())
    }

    /// With a seeded random source (tests, reproducible schedules).
    pub fn seeded(policy: ReconnectPolicy, seed: u64) -> Self {
        Self::with_rng(policy, StdRng::seed_from_u64(seed))
    }

    fn with_rng(policy: ReconnectPolicy, rng: StdRng) -> Self {
        ReconnectBackoff {
            jitter: Backoff::new(policy.base, policy.cap, u32::MAX),
            policy,
            failures: 0,
            connected_at: None,
            rng,
        }
    }

    /// Consecutive failures since the last healthy connection.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection was established at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection (if any) ended at `now`: forgets the failures if it
    /// had been healthy long enough.
    fn ended(&mut self, now: Instant) {
        if let Some(at) = self.connected_at.take()
            && now.saturating_duration_since(at) >= self.policy.healthy_after
        {
            self.failures = 0;
        }
    }

    /// The connection or attempt failed at `now`: the delay before the next
    /// attempt.
    pub fn failed(&mut self, now: Instant) -> Duration {
        self.ended(now);
        let retry = self.failures;
        self.failures = self.failures.saturating_add(1);
        if retry == 0 {
            Duration::ZERO
        } else {
            self.jitter.delay_with(retry - 1, &mut self.rng)
        }
    }

    /// The server closed politely (or announced a shutdown) at `now`:
    /// reconnect at once, without counting a failure.
    pub fn polite_close(&mut self, now: Instant) -> Duration {
        self.ended(now);
        Duration::ZERO
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
            healthy_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn first_retry_is_immediate_then_jittered_and_capped() {
        for seed in 0..50 {
            let mut b = ReconnectBackoff::seeded(policy(), seed);
            let t = Instant::now();
            assert_eq!(b.failed(t), Duration::ZERO, "first retry at once");
            for k in 1..40u32 {
                let d = b.failed(t);
                let ceiling =
                    Duration::from_secs(1u64 << (k - 1).min(20)).min(Duration::from_secs(30));
                assert!(d <= ceiling, "seed {seed} retry {k}: {d:?} > {ceiling:?}");
            }
            assert_eq!(b.failures(), 40);
        }
        // Jitter: the delays of retry 5 (ceiling 16 s) spread over the range.
        let mut spread = Vec::new();
        for seed in 0..200 {
            let mut b = ReconnectBackoff::seeded(policy(), seed);
            let t = Instant::now();
            for _ in 0..5 {
                b.failed(t);
            }
            spread.push(b.failed(t));
        }
        assert!(spread.iter().any(|d| *d < Duration::from_secs(4)));
        assert!(spread.iter().any(|d| *d > Duration::from_secs(12)));
    }

    #[test]
    fn same_seed_same_schedule() {
        let t = Instant::now();
        let run = |seed| {
            let mut b = ReconnectBackoff::seeded(policy(), seed);
            (0..10).map(|_| b.failed(t)).collect::<Vec<_>>()
        };
        assert_eq!(run(9), run(9));
    }

    #[test]
    fn reset_only_after_the_healthy_period() {
        let mut b = ReconnectBackoff::seeded(policy(), 1);
        let t0 = Instant::now();
        for _ in 0..5 {
            b.failed(t0);
        }
        // Connected, dropped after 59 s: not healthy, the count goes on.
        b.connected(t0);
        b.failed(t0 + Duration::from_secs(59));
        assert_eq!(b.failures(), 6);
        // A polite close does not count, nor reset an unhealthy connection.
        b.connected(t0);
        assert_eq!(b.polite_close(t0 + Duration::from_secs(1)), Duration::ZERO);
        assert_eq!(b.failures(), 6);
        // Up for 60 s: the next failure is a first retry again.
        let t1 = t0 + Duration::from_secs(100);
        b.connected(t1);
        assert_eq!(b.failed(t1 + Duration::from_secs(60)), Duration::ZERO);
        assert_eq!(b.failures(), 1);
        // A failed attempt without a connection never resets.
        b.failed(t1 + Duration::from_secs(1000));
        assert_eq!(b.failures(), 2);
        // A healthy connection closed politely also resets.
        b.connected(t1);
        b.polite_close(t1 + Duration::from_secs(61));
        assert_eq!(b.failures(), 0);
    }
}
