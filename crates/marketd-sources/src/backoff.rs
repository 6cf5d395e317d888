//! Bounded exponential backoff with full jitter
//! (`delay = random(0, min(max, base * 2^attempt))`), which spreads the
//! retries of many clients instead of synchronizing them.

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
}
