//! Window assembly by event time: closed bars of the basket's symbols,
//! aligned by bar start, into windows of `window` complete time steps.
//!
//! - A *time step* is a bar start. It is *sealed* once every symbol has a
//!   closed bar starting at or after it (bars of a symbol arrive in order,
//!   so nothing for a sealed step can still come). A sealed step is
//!   *complete* when every symbol has its bar there; an incomplete one
//!   (some symbol had no trade in that bucket) is skipped: the next return
//!   of each symbol then spans the gap (close to close of the complete
//!   steps on either side).
//! - A window is the last `window` complete steps; it ends on a complete
//!   step whose start is a multiple of `step × interval` since the epoch,
//!   so the windows are the same whatever happened before (a restart, a
//!   redelivery) and a window whose end step is incomplete does not exist.
//! - Steps at or before the last sealed one are final: a redelivered or
//!   late bar for them changes nothing.

use std::collections::{BTreeMap, VecDeque};

/// The closes of one window: `closes[k][i]` is symbol `i`'s close at the
/// window's `k`-th step (`starts[k]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub starts: Vec<i64>,
    pub closes: Vec<Vec<f64>>,
}

impl Window {
    pub fn start(&self) -> i64 {
        self.starts[0]
    }
    pub fn end(&self) -> i64 {
        self.starts[self.starts.len() - 1]
    }
}

/// Turns the closed bars of `n` symbols into windows.
#[derive(Debug, Clone)]
pub struct Assembler {
    n: usize,
    interval_ns: i64,
    window: usize,
    step: usize,
    /// Unsealed steps: bar start → close per symbol.
    pending: BTreeMap<i64, Vec<Option<f64>>>,
    /// Newest bar start seen per symbol.
    frontier: Vec<Option<i64>>,
    /// The newest complete steps (at most `window`).
    complete: VecDeque<(i64, Vec<f64>)>,
    /// Steps at or before this are sealed.
    sealed: Option<i64>,
    /// Skipped (incomplete) steps, for the logs and metrics.
    pub skipped: u64,
}

impl Assembler {
    pub fn new(n: usize, interval_ns: i64, window: usize, step: usize) -> Self {
        Assembler {
            n,
            interval_ns,
            window,
            step,
            pending: BTreeMap::new(),
            frontier: vec![None; n],
            complete: VecDeque::with_capacity(window + 1),
            sealed: None,
            skipped: 0,
        }
    }

    /// Whether a window ends on the step starting at `start`.
    pub fn ends_window(&self, start: i64) -> bool {
        let k = start.div_euclid(self.interval_ns);
        k.rem_euclid(self.step as i64) == 0
    }

    /// Adds symbol `i`'s closed bar starting at `start`; returns the windows
    /// it completes, oldest first. A bar of a sealed step, or with a close
    /// that is not a positive number, is ignored.
    pub fn push(&mut self, i: usize, start: i64, close: f64) -> Vec<Window> {
        if i >= self.n
            || self.sealed.is_some_and(|s| start <= s)
            || !close.is_finite()
            || close <= 0.0
        {
            return Vec::new();
        }
        self.pending
            .entry(start)
            .or_insert_with(|| vec![None; self.n])[i] = Some(close);
        let f = &mut self.frontier[i];
        *f = Some(f.map_or(start, |x| x.max(start)));
        self.seal()
    }

    /// Seals every step at or before the oldest frontier.
    fn seal(&mut self) -> Vec<Window> {
        let Some(upto) = self.frontier.iter().copied().collect::<Option<Vec<i64>>>() else {
            return Vec::new();
        };
        let Some(upto) = upto.into_iter().min() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > upto {
                break;
            }
            let (start, row) = entry.remove_entry();
            self.sealed = Some(start);
            let Some(row) = row.into_iter().collect::<Option<Vec<f64>>>() else {
                self.skipped += 1;
                continue;
            };
            if self.complete.len() == self.window {
                self.complete.pop_front();
            }
            self.complete.push_back((start, row));
            if self.complete.len() == self.window && self.ends_window(start) {
                out.push(Window {
                    starts: self.complete.iter().map(|(s, _)| *s).collect(),
                    closes: self.complete.iter().map(|(_, c)| c.clone()).collect(),
                });
            }
        }
        out
    }
}

/// Log returns between consecutive steps: `window - 1` rows of `n`.
pub fn log_returns(w: &Window) -> Vec<Vec<f64>> {
    w.closes
        .windows(2)
        .map(|p| p[0].iter().zip(&p[1]).map(|(a, b)| (b / a).ln()).collect())
        .collect()
}

/// The point cloud of a window, row-major: the returns themselves (one
/// point in R^n per step), or the delay embedding of the first symbol's
/// returns. Returns (points, dimension, coordinates).
pub fn point_cloud(
    returns: &[Vec<f64>],
    embedding: Option<(usize, usize)>,
) -> (usize, usize, Vec<f32>) {
    match embedding {
        None => {
            let dim = returns.first().map_or(0, Vec::len);
            let coords = returns.iter().flatten().map(|&x| x as f32).collect();
            (returns.len(), dim, coords)
        }
        Some((dim, delay)) => {
            let r: Vec<f64> = returns.iter().map(|row| row[0]).collect();
            let span = (dim - 1) * delay;
            let n = r.len().saturating_sub(span);
            let mut coords = Vec::with_capacity(n * dim);
            for j in 0..n {
                for k in 0..dim {
                    coords.push(r[j + k * delay] as f32);
                }
            }
            (n, dim, coords)
        }
    }
}
