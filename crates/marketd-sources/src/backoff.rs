//! Bounded exponential backoff with full jitter
//! (`delay = random(0, min(max, base * 2^attempt))`), which spreads the
//! retries of many clients instead of synchronizing them. An upstream's
//! `Retry-After` is honoured when it is longer ([`Backoff::delay_after`]).

use rand::Rng;
use std::time::Duration;

/// Retry policy: `max_retries` retries after the first attempt, waiting
/// [`Backoff::delay`] before each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Ceiling of the first retry's delay.
    pub base: Duration,
    /// Cap of every delay (also caps an upstream's `Retry-After`).
    pub max: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(5),
            max_retries: 3,
        }
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration, max_retries: u32) -> Self {
        Backoff {
            base,
            max,
            max_retries,
        }
    }

    /// The upper bound of the delay before retry `attempt` (0 = first retry):
    /// `min(max, base * 2^attempt)`, without overflow.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry `attempt` (0 = first retry): uniform in
    /// `[0, ceiling(attempt)]` (full jitter).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::rng())
    }

    /// [`Backoff::delay`] with a caller-supplied random source.
    pub fn delay_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(attempt);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The delay before retry `attempt` when the upstream asked to wait
    /// `retry_after`: the jittered [`Backoff::delay_with`], or the upstream's
    /// wait when that is longer (never sooner than the server said). Not
    /// capped by `max`: a caller that will not wait that long gives up instead.
    pub fn delay_after<R: Rng + ?Sized>(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        let jittered = self.delay_with(attempt, rng);
        retry_after.map_or(jittered, |wait| jittered.max(wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn ceilings_grow_exponentially_and_cap() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2), 5);
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(5), Duration::from_secs(2));
        assert_eq!(
            b.ceiling(200),
            Duration::from_secs(2),
            "no overflow on huge attempts"
        );
    }

    #[test]
    fn full_jitter_stays_in_bounds_and_spreads() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for attempt in 0..8 {
            let ceiling = b.ceiling(attempt);
            let samples: Vec<Duration> =
                (0..2000).map(|_| b.delay_with(attempt, &mut rng)).collect();
            assert!(
                samples.iter().all(|d| *d <= ceiling),
                "attempt {attempt} exceeded {ceiling:?}"
            );
            let lo = samples.iter().filter(|d| **d < ceiling / 4).count();
            let hi = samples.iter().filter(|d| **d > ceiling * 3 / 4).count();
            // Uniform: about a quarter each side; not clustered at the ceiling.
            assert!(
                (350..650).contains(&lo),
                "attempt {attempt}: {lo} below a quarter"
            );
            assert!(
                (350..650).contains(&hi),
                "attempt {attempt}: {hi} above three quarters"
            );
        }
        assert!(b.delay(10) <= Duration::from_secs(1));
        assert_eq!(
            Backoff::new(Duration::ZERO, Duration::ZERO, 1).delay(0),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for attempt in 0..6 {
            let long = Duration::from_secs(30);
            assert_eq!(
                b.delay_after(attempt, Some(long), &mut rng),
                long,
                "not capped by max"
            );
            let d = b.delay_after(attempt, Some(Duration::ZERO), &mut rng);
            assert!(d <= b.ceiling(attempt));
            let d = b.delay_after(attempt, Some(Duration::from_millis(50)), &mut rng);
            assert!(
                d >= Duration::from_millis(50)
                    && d <= b.ceiling(attempt).max(Duration::from_millis(50))
            );
            assert!(b.delay_after(attempt, None, &mut rng) <= b.ceiling(attempt));
        }
    }
}
