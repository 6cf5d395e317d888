//! H0 and the columns of dimension 1: the minimum spanning forest of the edges in filtration
//! order (union-find on sorted edge keys, Prim's algorithm for small dense problems), whose
//! tree edges are the H0 deaths and whose other edges, apparent pairs removed, are the columns
//! of dimension 1.

use rayon::prelude::*;

use crate::engine::buffers::Buffers;
use crate::engine::reducer::{RawBarcode, Reducer};
use crate::matrix::Metric;
use crate::simplex::{EDGE_KEY_MAX_N, Entry, edge_index, edge_key, edge_of_key, edge_vertices};

/// Sequential problems of at most this many points get H0 by Prim's algorithm.
const SMALL_DIM0: usize = 256;

/// The root of `x`'s tree, halving the path on the way.
fn uf_find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let g = parent[parent[x as usize] as usize];
        parent[x as usize] = g;
        x = g;
    }
    x
}

/// Joins the trees of the roots `a` and `b` (union by rank).
#[inline]
fn uf_link(parent: &mut [u32], rank: &mut [u8], a: u32, b: u32) {
    if rank[a as usize] < rank[b as usize] {
        parent[a as usize] = b;
    } else {
        parent[b as usize] = a;
        if rank[a as usize] == rank[b as usize] {
            rank[a as usize] += 1;
        }
    }
}

impl<'a, M: Metric> Reducer<'a, M> {
    /// H0 by union-find; returns the edges (all, when `max_dim >= 2`) and the dimension-1
    /// columns to reduce.
    pub(super) fn dim0(
        &self,
        parallel: bool,
        out: &mut RawBarcode,
        bufs: &mut Buffers,
    ) -> (Vec<Entry>, Vec<Entry>) {
        let n = self.n;
        if n > EDGE_KEY_MAX_N {
            return self.dim0_entries(parallel, out);
        }
        if !parallel && n <= SMALL_DIM0 && self.m.is_dense() {
            return self.dim0_small(out, bufs);
        }
        // edges as u64 keys (diameter, then vertices): sorting them is cheaper than sorting
        // entries, and the union-find needs no index-to-vertex conversion
        let mut keys = std::mem::take(&mut bufs.keys);
        keys.clear();
        self.m.edge_keys(self.cfg.threshold, parallel, &mut keys);
        if parallel {
            keys.par_sort_unstable();
        } else {
            keys.sort_unstable();
        }
        let mut parent = std::mem::take(&mut bufs.parent);
        parent.clear();
        parent.extend(0..n as u32);
        let mut rank = std::mem::take(&mut bufs.rank);
        rank.clear();
        rank.resize(n, 0);
        let mut cols = std::mem::take(&mut bufs.cols);
        cols.clear();
        // sequentially, non-tree edges are filtered right away; in parallel, afterwards
        let filter_now = !parallel;
        for (t, &key) in keys.iter().enumerate() {
            // the apparent-pair test makes this loop long on large sparse inputs
            if t % 4096 == 0 && self.ctl.is_canceled() {
                break;
            }
            let (d, i, j) = edge_of_key(key);
            let (a, b) = (uf_find(&mut parent, i), uf_find(&mut parent, j));
            if a != b {
                if d != 0.0 {
                    out.bars[0].push((0.0, d));
                }
                uf_link(&mut parent, &mut rank, a, b);
            } else if self.cfg.max_dim >= 1
                && !(filter_now && self.edge_has_apparent_cofacet(i, j, d))
            {
                cols.push(Entry::new(d, edge_index(i, j), 1));
            }
        }
        for i in 0..n as u32 {
            if uf_find(&mut parent, i) == i {
                out.bars[0].push((0.0, f32::INFINITY));
            }
        }
        if !filter_now {
            // (a canceled computation drops the rest)
            let keep = |e: &Entry| {
                let [i, j] = edge_vertices(e.idx());
                !self.ctl.is_canceled() && !self.edge_has_apparent_cofacet(i, j, e.diam())
            };
            let flags: Vec<bool> = cols.par_iter().map(keep).collect();
            let mut it = flags.into_iter();
            cols.retain(|_| it.next().unwrap_or(false));
        }
        // the edges are only needed to assemble the columns of dimension 2
        let edges = if self.cfg.max_dim >= 2 {
            keys.iter()
                .map(|&k| {
                    let (d, i, j) = edge_of_key(k);
                    Entry::new(d, edge_index(i, j), 1)
                })
                .collect()
        } else {
            Vec::new()
        };
        if bufs.recycle {
            bufs.keys = keys;
            bufs.parent = parent;
            bufs.rank = rank;
        } else {
            cols.shrink_to_fit();
        }
        cols.reverse();
        (edges, cols)
    }

    /// [`Self::dim0`] for small dense problems: the minimum spanning forest by Prim's algorithm on
    /// the complete graph (O(n^2), no sorting of all edges). Edge weights are edge keys, a
    /// strict total order (the filtration order), so the forest is unique and equals the one
    /// Kruskal's algorithm finds in filtration order: the H0 bars, and the non-tree edges that
    /// become the dimension-1 columns, are those of the union-find path.
    fn dim0_small(&self, out: &mut RawBarcode, bufs: &mut Buffers) -> (Vec<Entry>, Vec<Entry>) {
        let n = self.n;
        let t = self.cfg.threshold;
        // best[v]: smallest key of an edge from the tree to v (u64::MAX: none); from[v]: its
        // tree end (u32::MAX for roots and vertices not reached)
        let mut best = std::mem::take(&mut bufs.keys);
        best.clear();
        best.resize(n, u64::MAX);
        let mut from = std::mem::take(&mut bufs.parent);
        from.clear();
        from.resize(n, u32::MAX);
        // vertices not in the forest yet (the minimum is unique whatever their order)
        let mut rest = std::mem::take(&mut bufs.rest);
        rest.clear();
        rest.extend(0..n as u32);
        let mut tree = std::mem::take(&mut bufs.tree);
        tree.clear();
        let mut components = 0usize;
        while !rest.is_empty() {
            components += 1;
            let mut u = rest.swap_remove(0);
            loop {
                let row = self.m.row(u);
                let mut next = usize::MAX;
                let mut next_key = u64::MAX;
                for (pos, &w) in rest.iter().enumerate() {
                    let d = match row {
                        Some(r) => r[w as usize],
                        None => self.m.dist(u, w),
                    };
                    let b = &mut best[w as usize];
                    // compare the diameters first, the whole keys on ties only
                    if d <= t && d.to_bits() <= (*b >> 32) as u32 {
                        let k = edge_key(d, u.max(w), u.min(w));
                        if k < *b {
                            *b = k;
                            from[w as usize] = u;
                        }
                    }
                    if *b < next_key {
                        next_key = *b;
                        next = pos;
                    }
                }
                if next == usize::MAX {
                    break;
                }
                tree.push(next_key);
                u = rest.swap_remove(next);
            }
        }
        tree.sort_unstable();
        for &k in &tree {
            let d = edge_of_key(k).0;
            if d != 0.0 {
                out.bars[0].push((0.0, d));
            }
        }
        out.bars[0].extend(std::iter::repeat_n((0.0, f32::INFINITY), components));
        let mut cols = std::mem::take(&mut bufs.cols);
        cols.clear();
        let mut edges = Vec::new();
        let keep_edges = self.cfg.max_dim >= 2;
        if self.cfg.max_dim >= 1 {
            for i in 1..n as u32 {
                let row = self.m.row(i);
                for j in 0..i {
                    let d = match row {
                        Some(r) => r[j as usize],
                        None => self.m.dist(i, j),
                    };
                    if d > t {
                        continue;
                    }
                    if keep_edges {
                        edges.push(Entry::new(d, edge_index(i, j), 1));
                    }
                    if from[i as usize] != j
                        && from[j as usize] != i
                        && !self.edge_has_apparent_cofacet(i, j, d)
                    {
                        cols.push(Entry::new(d, edge_index(i, j), 1));
                    }
                }
            }
        }
        // columns in order: diameter descending, index ascending
        cols.sort_unstable();
        bufs.keys = best;
        bufs.parent = from;
        bufs.rest = rest;
        bufs.tree = tree;
        (edges, cols)
    }

    /// [`Self::dim0`] for more than [`EDGE_KEY_MAX_N`] points: edges as entries.
    fn dim0_entries(&self, parallel: bool, out: &mut RawBarcode) -> (Vec<Entry>, Vec<Entry>) {
        let mut edges: Vec<Entry> = self.m.edges(self.cfg.threshold, parallel);
        // filtration order: diameter ascending, index descending == Entry descending
        if parallel {
            edges.par_sort_unstable_by(|a, b| b.cmp(a));
        } else {
            edges.sort_unstable_by(|a, b| b.cmp(a));
        }
        let n = self.n;
        let mut parent: Vec<u32> = (0..n as u32).collect();
        let mut rank = vec![0u8; n];
        let mut candidates = Vec::new();
        for e in &edges {
            let vs = edge_vertices(e.idx());
            let (a, b) = (uf_find(&mut parent, vs[0]), uf_find(&mut parent, vs[1]));
            if a != b {
                if e.diam() != 0.0 {
                    out.bars[0].push((0.0, e.diam()));
                }
                uf_link(&mut parent, &mut rank, a, b);
            } else if self.cfg.max_dim >= 1 {
                candidates.push(*e);
            }
        }
        for i in 0..n as u32 {
            if uf_find(&mut parent, i) == i {
                out.bars[0].push((0.0, f32::INFINITY));
            }
        }
        let keep = |e: &Entry| {
            let [i, j] = edge_vertices(e.idx());
            !self.ctl.is_canceled() && !self.edge_has_apparent_cofacet(i, j, e.diam())
        };
        // the edges are only needed to assemble the columns of dimension 2
        if self.cfg.max_dim < 2 {
            edges = Vec::new();
        }
        let mut cols = candidates;
        if parallel {
            let flags: Vec<bool> = cols.par_iter().map(keep).collect();
            let mut it = flags.into_iter();
            cols.retain(|_| it.next().unwrap_or(false));
        } else {
            cols.retain(keep);
        }
        cols.shrink_to_fit();
        cols.reverse();
        (edges, cols)
    }
}
