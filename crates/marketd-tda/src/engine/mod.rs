//! Persistent cohomology of Vietoris–Rips filtrations in the manner of Ripser: implicit
//! coboundaries from simplex indices in the combinatorial number system, clearing, apparent and
//! emergent pairs, H0 by union-find, plus a chunked parallel reduction.
//!
//! Filtration order: diameter ascending, ties broken by simplex index descending. Columns are
//! reduced in the reverse order (cohomology), and the pivot of a coboundary column is its entry
//! of smallest diameter, ties by largest index.
//!
//! The [`Reducer`] is one type whose methods are spread over the modules by stage, each module
//! building only on those before it: `reducer` (configuration, tables, simplex decoding),
//! `cofacets` (coboundary enumeration, apparent pairs), `dim0` (H0 and the dimension-1
//! columns), `column` (reducing one column), `pairs` (all columns of a dimension, serial or
//! parallel); this module assembles the columns of the next dimension and runs the stages.

mod buffers;
mod cofacets;
mod column;
mod dim0;
mod pairs;
mod reducer;

pub(crate) use buffers::Buffers;
pub(crate) use reducer::{RawBarcode, Reducer, RipsConfig, Tables};

use rayon::prelude::*;

use crate::control::{Stage, fraction};
use crate::matrix::Metric;
use crate::simplex::{Entry, MAX_VERTICES};
use reducer::PivotMap;

impl<'a, M: Metric> Reducer<'a, M> {
    /// Columns of dimension `dim + 1` to reduce, from the simplices of dimension `dim`; also
    /// returns the simplices of dimension `dim + 1` when `keep_next`.
    fn assemble(
        &self,
        simplices: &[Entry],
        dim: usize,
        map: &PivotMap,
        keep_next: bool,
        parallel: bool,
    ) -> (Vec<Entry>, Vec<Entry>) {
        let work = |chunk: &[Entry]| -> (Vec<Entry>, Vec<Entry>) {
            let mut next = Vec::new();
            let mut cols = Vec::new();
            let mut vs = [0u32; MAX_VERTICES];
            let mut cv = [0u32; MAX_VERTICES];
            let k = dim + 1;
            for (i, s) in chunk.iter().enumerate() {
                if i % 1024 == 0 && self.ctl.is_canceled() {
                    break;
                }
                self.vertices(s.idx(), dim, &mut vs);
                let base = s.idx();
                let vsl = &vs[..k];
                self.m
                    .for_each_cofacet(vsl, s.diam(), self.cfg.threshold, true, |v, d| {
                        // v is above all vertices: the cofacet index is C(v, k+1) + idx
                        let cidx = self.binom.get(v, k + 1) + base;
                        let c = Entry::new(d, cidx, 1);
                        if keep_next {
                            next.push(c);
                        }
                        if !map.contains_key(&cidx) {
                            cv[0] = v;
                            cv[1..k + 1].copy_from_slice(vsl);
                            let cvs = &cv[..k + 1];
                            if self.apparent_facet(cvs, d).is_none()
                                && !self.has_apparent_cofacet(cvs, d)
                            {
                                cols.push(c);
                            }
                        }
                        true
                    });
            }
            (next, cols)
        };
        let (mut next, mut cols);
        if parallel {
            let parts: Vec<(Vec<Entry>, Vec<Entry>)> =
                simplices.par_chunks(2048).map(work).collect();
            next = Vec::with_capacity(parts.iter().map(|p| p.0.len()).sum());
            cols = Vec::with_capacity(parts.iter().map(|p| p.1.len()).sum());
            for (a, b) in parts {
                next.extend_from_slice(&a);
                cols.extend_from_slice(&b);
            }
            cols.par_sort_unstable_by(|a, b| b.cmp(a));
        } else {
            (next, cols) = work(simplices);
            cols.sort_unstable_by(|a, b| b.cmp(a));
        }
        // columns in order: diameter descending, index ascending
        cols.reverse();
        (next, cols)
    }

    pub(crate) fn run(&self, bufs: &mut Buffers) -> RawBarcode {
        let mut out = RawBarcode {
            bars: vec![Vec::new(); self.cfg.max_dim + 1],
            cocycles: Vec::new(),
        };
        if self.n == 0 {
            return out;
        }
        let pool = if self.cfg.threads > 1 {
            crate::pool::pool(self.cfg.threads)
        } else {
            None
        };
        let parallel = pool.is_some();
        let max_dim = self.cfg.max_dim;
        let run = |out: &mut RawBarcode, bufs: &mut Buffers| {
            self.ctl.set(Stage::Dimension(0), fraction(0, max_dim, 0.0));
            let (mut simplices, mut cols) = self.dim0(parallel, out, bufs);
            let mut map = std::mem::take(&mut bufs.map);
            for dim in 1..=max_dim {
                // the reduction checks the flag too, every few dozen columns
                if self.ctl.is_canceled() {
                    break;
                }
                self.ctl
                    .set(Stage::Dimension(dim), fraction(dim, max_dim, 0.0));
                map.clear();
                map.reserve(cols.len());
                self.compute_pairs(&cols, dim, pool.as_deref(), out, &mut map, bufs);
                if dim < max_dim && !self.ctl.is_canceled() {
                    let keep_next = dim + 1 < self.cfg.max_dim;
                    let (next, c) = self.assemble(&simplices, dim, &map, keep_next, parallel);
                    if !bufs.recycle {
                        map = PivotMap::default();
                    }
                    cols = c;
                    simplices = next;
                }
            }
            if bufs.recycle {
                map.clear();
                bufs.map = map;
                cols.clear();
                bufs.cols = cols;
            }
        };
        match &pool {
            Some(p) => p.install(|| run(&mut out, bufs)),
            None => run(&mut out, bufs),
        }
        out
    }
}
