//! The reduction of all columns of one dimension, serial or in parallel. In parallel, columns
//! are reduced in chunks: in rounds, every column whose current pivot belongs to an already
//! committed column keeps reducing, then columns are committed in order while their pivot is
//! new, so the result equals the serial reduction's.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

use rayon::prelude::*;

use crate::control::{Stage, fraction};
use crate::engine::buffers::Buffers;
use crate::engine::column::{Outcome, REDUCED_BUDGET, VMatrix, Work};
use crate::engine::reducer::{PivotMap, RawBarcode, Reducer};
use crate::heap::QuadHeap as BinaryHeap;
use crate::matrix::Metric;
use crate::simplex::Entry;

/// Entries (16 bytes each) of working coboundaries (over 4n entries) that the columns waiting
/// for commit in the parallel reduction may keep in total: beyond it they are released and rebuilt if needed
/// (rarely: most columns commit with the pivot they parked with), so that the parallel
/// reduction does not hold large columns besides the ones it is working on. On o3_2048 dim 1
/// this takes the peak memory at 2 threads from ~1.1 GB (about Ripser's) to ~1.0 GB at the
/// same speed.
const PARK_BUDGET: usize = 1 << 20;

/// Columns between two looks at the cancel flag (a relaxed load) and two progress updates (a
/// relaxed `fetch_max`) in the sequential reduction: a column costs at least a few hundred
/// nanoseconds, so this is free, and a cancel is seen within microseconds to milliseconds.
const CHECK_EVERY: usize = 64;

impl<'a, M: Metric> Reducer<'a, M> {
    /// Publishes the progress of dimension `dim`: `done` of `total` columns reduced.
    fn report(&self, dim: usize, done: usize, total: usize) {
        let f = done as f64 / total.max(1) as f64;
        self.ctl
            .set(Stage::Dimension(dim), fraction(dim, self.cfg.max_dim, f));
    }

    /// Makes a column waiting for commit (parallel reduction) hold less memory: plain
    /// coboundaries are released (rebuilt if the column has to continue), and so are working
    /// coboundaries that do not fit in what is left of `budget` (the column then restarts from
    /// scratch if it has to continue; its V column is kept for the commit).
    fn park(&self, work: &mut Work, budget: &AtomicUsize) {
        work.release_if_plain();
        let len = work.cob.len();
        // small ones (a few coboundaries' worth) are kept in any case
        if len <= 4 * self.n {
            return;
        }
        let fits = budget
            .fetch_update(AtomicOrdering::Relaxed, AtomicOrdering::Relaxed, |b| {
                b.checked_sub(len)
            })
            .is_ok();
        if fits {
            work.parked = len;
        } else {
            work.cob = BinaryHeap::new();
            work.dropped = true;
        }
    }

    /// Returns the budget a parked column held.
    fn unpark(&self, work: &mut Work, budget: &AtomicUsize) {
        budget.fetch_add(std::mem::take(&mut work.parked), AtomicOrdering::Relaxed);
    }

    /// Reduces the columns `cols` of dimension `dim`; fills `map` (empty on entry) with the
    /// pivots.
    pub(super) fn compute_pairs(
        &self,
        cols: &[Entry],
        dim: usize,
        pool: Option<&rayon::ThreadPool>,
        out: &mut RawBarcode,
        map: &mut PivotMap,
        bufs: &mut Buffers,
    ) {
        match pool {
            None => {
                let mut vmat = bufs.vmat.take().unwrap_or_else(VMatrix::new);
                vmat.clear();
                let mut work = bufs.work.take().unwrap_or_else(Work::new);
                for (ci, &col) in cols.iter().enumerate() {
                    if ci % CHECK_EVERY == 0 {
                        if self.ctl.is_canceled() {
                            break;
                        }
                        self.report(dim, ci, cols.len());
                    }
                    self.init_column(col, dim, map, &mut work, true);
                    let o = self.reduce(col, cols, dim, map, &vmat, &mut work);
                    self.finish(ci, col, o, dim, &mut work, map, &mut vmat, out);
                }
                if bufs.recycle {
                    bufs.vmat = Some(vmat);
                    bufs.work = Some(work);
                }
            }
            Some(pool) => {
                let mut vmat = VMatrix::new();
                // Chunks of columns. Within a chunk, rounds: every column whose current pivot
                // is owned by an already committed column keeps reducing (in parallel); then
                // columns are committed in order while their pivot is new. The first
                // uncommitted column always commits in the next round, so this terminates, and
                // every addition is of a committed (earlier) column: the result equals the
                // sequential reduction.
                let threads = pool.current_num_threads();
                let mut start = 0usize;
                let mut chunk = 64 * threads;
                // columns of a chunk keep their working coboundaries (up to n entries each)
                // until committed: bound that memory (about 16 MB of plain coboundaries)
                let max_chunk =
                    (4096 * threads).min(((1usize << 20) / self.n.max(1)).max(64 * threads));
                let stats = std::env::var_os("MARKETD_TDA_STATS").is_some();
                let park_budget = std::env::var("MARKETD_TDA_PARK_BUDGET")
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(PARK_BUDGET);
                let budget = AtomicUsize::new(park_budget);
                let mut min_budget = park_budget;
                let (mut t_par, mut t_commit, mut rounds) = (0f64, 0f64, 0usize);
                while start < cols.len() {
                    let end = (start + chunk).min(cols.len());
                    let clock = std::time::Instant::now();
                    let mut states: Vec<(Work, Outcome)> = pool.install(|| {
                        cols[start..end]
                            .par_iter()
                            .with_min_len(4)
                            .map(|&col| {
                                let mut w = Work::new();
                                if self.ctl.is_canceled() {
                                    // the chunk's results are dropped below
                                    return (w, Outcome::Essential);
                                }
                                self.init_column(col, dim, map, &mut w, true);
                                let o = self.reduce(col, cols, dim, map, &vmat, &mut w);
                                self.park(&mut w, &budget);
                                (w, o)
                            })
                            .collect()
                    });
                    t_par += clock.elapsed().as_secs_f64();
                    min_budget = min_budget.min(budget.load(AtomicOrdering::Relaxed));
                    if self.ctl.is_canceled() {
                        break;
                    }
                    let mut next = start;
                    loop {
                        let clock = std::time::Instant::now();
                        while next < end {
                            let (w, o) = &mut states[next - start];
                            let ready = match o {
                                Outcome::Essential => true,
                                Outcome::Pivot(pv) => !map.contains_key(&pv.idx()),
                            };
                            if !ready {
                                break;
                            }
                            let col = cols[next];
                            self.finish(next, col, *o, dim, w, map, &mut vmat, out);
                            self.unpark(w, &budget);
                            *w = Work::new();
                            next += 1;
                        }
                        t_commit += clock.elapsed().as_secs_f64();
                        self.report(dim, next, cols.len());
                        if next == end || self.ctl.is_canceled() {
                            break;
                        }
                        rounds += 1;
                        let clock = std::time::Instant::now();
                        let window_end = (next + 1024 * threads).min(end);
                        let (map_r, vmat_r, budget_r) = (&*map, &vmat, &budget);
                        pool.install(|| {
                            states[next - start..window_end - start]
                                .par_iter_mut()
                                .enumerate()
                                .with_min_len(1)
                                .for_each(|(k, (w, o))| {
                                    if let Outcome::Pivot(pv) = o
                                        && map_r.contains_key(&pv.idx())
                                        && !self.ctl.is_canceled()
                                    {
                                        let col = cols[next + k];
                                        self.unpark(w, budget_r);
                                        if w.dropped {
                                            self.init_column(col, dim, map_r, w, false);
                                        }
                                        *o = self.reduce(col, cols, dim, map_r, vmat_r, w);
                                        self.park(w, budget_r);
                                    }
                                });
                        });
                        t_par += clock.elapsed().as_secs_f64();
                        min_budget = min_budget.min(budget.load(AtomicOrdering::Relaxed));
                    }
                    start = end;
                    chunk = (chunk * 2).min(max_chunk);
                }
                if stats {
                    eprintln!(
                        "dim {dim}: {} columns, parallel {t_par:.3}s, commit {t_commit:.3}s, {rounds} rounds, V {} entries (capacity {}), cached reduced columns {} entries, parked coboundaries at most {} entries",
                        cols.len(),
                        vmat.entries.len(),
                        vmat.entries.capacity(),
                        REDUCED_BUDGET - vmat.budget.load(AtomicOrdering::Relaxed),
                        park_budget - min_budget,
                    );
                }
            }
        }
    }
}
