//! The robust z-score of a window's landscape L1 norm against the windows
//! before it, and the alarm with threshold, hysteresis and cool-down.

use std::collections::VecDeque;

/// Scale of the MAD that estimates a normal standard deviation.
pub const MAD_SCALE: f64 = 1.4826;

/// The last `capacity` values of the norm and the z-score of a new one.
#[derive(Debug, Clone)]
pub struct History {
    values: VecDeque<f64>,
    capacity: usize,
    min_history: usize,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

impl History {
    pub fn new(capacity: usize, min_history: usize) -> Self {
        History {
            values: VecDeque::with_capacity(capacity + 1),
            capacity: capacity.max(1),
            min_history,
        }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(x - median) / (1.4826 · MAD)` over the stored values; `None` with
    /// fewer than `min_history` values or no spread (MAD 0).
    pub fn zscore(&self, x: f64) -> Option<f64> {
        if self.values.len() < self.min_history || !x.is_finite() {
            return None;
        }
        let mut v: Vec<f64> = self.values.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let med = median(&v);
        let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let scale = MAD_SCALE * median(&dev);
        (scale > 0.0).then(|| (x - med) / scale)
    }

    /// Remembers `x` (the oldest value goes once `capacity` are held).
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.values.len() == self.capacity {
            self.values.pop_front();
        }
        self.values.push_back(x);
    }
}

/// Alarm parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmParams {
    /// Raise at z ≥ threshold.
    pub threshold: f64,
    /// A raised alarm clears at z < hysteresis.
    pub hysteresis: f64,
    /// Windows after a raise in which no new raise happens.
    pub cooldown: u32,
}

/// The alarm's state between windows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alarm {
    pub params: AlarmParams,
    /// Raised now.
    pub on: bool,
    /// Windows since the last raise (`None`: none remembered).
    pub since_raise: Option<u32>,
}

impl Alarm {
    pub fn new(params: AlarmParams) -> Self {
        Alarm {
            params,
            on: false,
            since_raise: None,
        }
    }

    /// Advances by one window with z-score `z`; returns (alarm on after
    /// it, raised by it). Off → on at `z ≥ threshold` unless a raise
    /// happened within the last `cooldown` windows; on → off at
    /// `z < hysteresis`. A window without a z-score changes nothing.
    pub fn step(&mut self, z: Option<f64>) -> (bool, bool) {
        self.since_raise = self.since_raise.map(|n| n.saturating_add(1));
        let mut raised = false;
        if let Some(z) = z {
            if self.on {
                if z < self.params.hysteresis {
                    self.on = false;
                }
            } else if z >= self.params.threshold
                && self.since_raise.is_none_or(|n| n > self.params.cooldown)
            {
                self.on = true;
                raised = true;
                self.since_raise = Some(0);
            }
        }
        (self.on, raised)
    }

    /// The state after the stored windows `(alarm, alarm_raised)`, oldest first.
    pub fn restore(params: AlarmParams, windows: &[(bool, bool)]) -> Self {
        let on = windows.last().is_some_and(|w| w.0);
        let since_raise = windows
            .iter()
            .rev()
            .position(|w| w.1)
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX));
        Alarm {
            params,
            on,
            since_raise,
        }
    }
}
