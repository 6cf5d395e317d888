//! Cancellation and progress of one computation, shared with other threads.
//!
//! The job service runs a computation on a worker thread while the API answers status requests
//! and `DELETE` (cancel) on others, so both directions go through atomics: the engine reads the
//! cancel flag with a relaxed load every few dozen columns (a load of a cache line that is
//! almost never written is about free next to a column reduction), and publishes its progress
//! as one packed 64-bit word, so a reader never sees the stage of one moment with the fraction
//! of another. The word only grows (`fetch_max`): stage and fraction are both monotonic.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Stage of a computation, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not started yet.
    Queued,
    /// Computing the distance matrix (point clouds) or preparing the given one.
    Distances,
    /// Barcode of dimension `k` (H0 by union-find, then the reduction of the columns of each
    /// dimension, including the assembly of the columns of the next one).
    Dimension(usize),
    /// Gathering the representative cocycles (they are collected during the H1 reduction, so
    /// this stage is short).
    Cocycles,
    /// Finished (successfully or not).
    Done,
}

const QUEUED: u64 = 0;
const DISTANCES: u64 = 1;
const DIM_BASE: u64 = 2;
const COCYCLES: u64 = 0xFFFF_FFFE;
const DONE: u64 = 0xFFFF_FFFF;
/// Fixed-point scale of the fraction in the low 32 bits.
const SCALE: f64 = u32::MAX as f64;

impl Stage {
    /// Name used by the API: "queued", "distances", "h0", "h1", ..., "cocycles", "done".
    /// (Dimensions are at most 14, the engine's limit; larger ones read "h14+".)
    pub fn as_str(&self) -> &'static str {
        const DIMS: [&str; 15] = [
            "h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11", "h12", "h13",
            "h14",
        ];
        match self {
            Stage::Queued => "queued",
            Stage::Distances => "distances",
            Stage::Dimension(k) => DIMS.get(*k).copied().unwrap_or("h14+"),
            Stage::Cocycles => "cocycles",
            Stage::Done => "done",
        }
    }

    fn code(self) -> u64 {
        match self {
            Stage::Queued => QUEUED,
            Stage::Distances => DISTANCES,
            Stage::Dimension(k) => DIM_BASE + (k as u64).min(COCYCLES - DIM_BASE - 1),
            Stage::Cocycles => COCYCLES,
            Stage::Done => DONE,
        }
    }

    fn from_code(c: u64) -> Self {
        match c {
            QUEUED => Stage::Queued,
            DISTANCES => Stage::Distances,
            COCYCLES => Stage::Cocycles,
            DONE => Stage::Done,
            k => Stage::Dimension((k - DIM_BASE) as usize),
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Cancel flag and progress of one computation (see [`crate::compute_controlled`]); share it
/// by reference (e.g. in an `Arc`) with the threads that watch or cancel.
#[derive(Debug, Default)]
pub struct Control {
    canceled: AtomicBool,
    /// Stage code in the high 32 bits, fraction of the whole computation (fixed point, 1 =
    /// `u32::MAX`) in the low 32 bits.
    progress: AtomicU64,
}

impl Control {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the computation to stop: it returns [`crate::Error::Canceled`] soon after (within
    /// a few dozen columns of the reduction).
    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::Relaxed);
    }

    /// Whether [`Control::cancel`] was called.
    #[inline]
    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Relaxed)
    }

    /// Current stage and fraction (0..=1) of the whole computation; both only grow.
    pub fn progress(&self) -> (Stage, f64) {
        let w = self.progress.load(Ordering::Relaxed);
        (Stage::from_code(w >> 32), (w & 0xFFFF_FFFF) as f64 / SCALE)
    }

    /// Publishes `stage` and `fraction` (clamped to 0..=1); ignored if behind what was
    /// published before.
    pub(crate) fn set(&self, stage: Stage, fraction: f64) {
        let f = (fraction.clamp(0.0, 1.0) * SCALE) as u64;
        let w = (stage.code() << 32) | f;
        self.progress.fetch_max(w, Ordering::Relaxed);
    }

    /// Publishes the end of the computation (fraction 1).
    pub(crate) fn finish(&self) {
        self.set(Stage::Done, 1.0);
    }
}

/// How the fraction of the whole computation is split: the distances take the first
/// [`DISTANCES_SHARE`], each dimension an equal part of the rest, within a dimension the
/// fraction of its columns reduced.
pub(crate) const DISTANCES_SHARE: f64 = 0.05;

/// Fraction of the whole computation once `done` of dimension `dim` (of `0..=max_dim`) is done.
#[inline]
pub(crate) fn fraction(dim: usize, max_dim: usize, done: f64) -> f64 {
    DISTANCES_SHARE + (1.0 - DISTANCES_SHARE) * (dim as f64 + done) / (max_dim as f64 + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_progress_is_monotonic() {
        let c = Control::new();
        assert_eq!(c.progress(), (Stage::Queued, 0.0));
        c.set(Stage::Distances, 0.0);
        c.set(Stage::Dimension(1), 0.5);
        // a late writer of an earlier stage does not move it back
        c.set(Stage::Dimension(0), 0.9);
        let (s, f) = c.progress();
        assert_eq!(s, Stage::Dimension(1));
        assert!((f - 0.5).abs() < 1e-9);
        assert_eq!(s.as_str(), "h1");
        assert_eq!(Stage::Dimension(12).as_str(), "h12");
        c.finish();
        assert_eq!(c.progress(), (Stage::Done, 1.0));
        assert!(!c.is_canceled());
        c.cancel();
        assert!(c.is_canceled());
    }
}
