//! Distance representations used by the engine: a dense full matrix (row-major, so that the
//! distances from one vertex to all others are contiguous) and a sparse neighbour graph under a
//! threshold (CSR layout, neighbours sorted by index).

use rayon::prelude::*;

use crate::simplex::{Entry, MAX_VERTICES, edge_key, edge_vertices};

/// The larger of two distances. Distances are never NaN (the parsers reject NaN and Euclidean
/// distances of finite points are not NaN), so this is `f32::max` without its NaN handling,
/// which costs several instructions per call in the cofacet loops.
#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Access to pairwise distances and cofacet candidates.
pub(crate) trait Metric: Sync {
    fn n(&self) -> usize;
    /// Distance between two vertices (`0` on the diagonal, `+inf` for absent sparse entries).
    fn dist(&self, i: u32, j: u32) -> f32;
    /// Visits the vertices `v` not in the simplex `vs` (vertices in decreasing order) that form a
    /// cofacet of diameter `<= threshold`, in decreasing order of `v`, with the cofacet diameter.
    /// With `only_above`, only `v > vs[0]`. Stops when `f` returns `false`.
    fn for_each_cofacet<F: FnMut(u32, f32) -> bool>(
        &self,
        vs: &[u32],
        diam: f32,
        threshold: f32,
        only_above: bool,
        f: F,
    );
    /// All edges `(diameter, index)` with diameter `<= threshold`; index = C(i,2)+j for i>j.
    fn edges(&self, threshold: f32, parallel: bool) -> Vec<Entry>;

    /// Whether every pair of vertices is an edge (of its distance, possibly infinite).
    fn is_dense(&self) -> bool {
        false
    }

    /// The distances from vertex `i` to all vertices, if stored as a row.
    #[inline]
    fn row(&self, _i: u32) -> Option<&[f32]> {
        None
    }

    /// Appends the keys ([`crate::simplex::edge_key`]) of all edges with diameter `<= threshold`
    /// to `out` (at most 2^16 vertices).
    fn edge_keys(&self, threshold: f32, parallel: bool, out: &mut Vec<u64>) {
        out.extend(self.edges(threshold, parallel).into_iter().map(|e| {
            let [i, j] = edge_vertices(e.idx());
            edge_key(e.diam(), i, j)
        }));
    }

    /// The largest vertex `v` not in `vs` whose distances to all of `vs` are `<= diam`.
    #[inline]
    fn first_cofacet_within(&self, vs: &[u32], diam: f32) -> Option<u32> {
        let mut res = None;
        self.for_each_cofacet(vs, diam, diam, false, |v, _| {
            res = Some(v);
            false
        });
        res
    }
}

/// Dense symmetric matrix stored in full (n*n floats).
#[derive(Debug, Clone)]
pub(crate) struct DenseMatrix {
    n: usize,
    data: Vec<f32>,
}

impl DenseMatrix {
    /// From a compressed lower triangle (row i holds d(i,0..i)), in the allocation of `data`.
    pub(crate) fn from_lower_in(n: usize, lower: &[f32], mut data: Vec<f32>) -> Self {
        data.clear();
        data.resize(n * n, 0.0);
        for i in 1..n {
            let base = i * (i - 1) / 2;
            for j in 0..i {
                let d = lower[base + j];
                data[i * n + j] = d;
                data[j * n + i] = d;
            }
        }
        DenseMatrix { n, data }
    }

    pub(crate) fn from_full(n: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), n * n);
        DenseMatrix { n, data }
    }

    /// The storage, for reuse.
    pub(crate) fn into_data(self) -> Vec<f32> {
        self.data
    }

    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    /// Radius of the smallest ball centred at a vertex containing all others.
    pub(crate) fn enclosing_radius(&self) -> f32 {
        let mut r = f32::INFINITY;
        for i in 0..self.n {
            let m = self
                .row(i)
                .iter()
                .fold(f32::NEG_INFINITY, |a, &b| fmax(a, b));
            r = r.min(m);
        }
        r
    }

    /// (min, max finite) over off-diagonal entries.
    pub(crate) fn value_range(&self) -> (f32, f32) {
        let (mut lo, mut hf) = (f32::INFINITY, f32::NEG_INFINITY);
        for i in 1..self.n {
            for &d in &self.row(i)[..i] {
                if d < lo {
                    lo = d;
                }
                if d > hf && d != f32::INFINITY {
                    hf = d;
                }
            }
        }
        (lo, hf)
    }

    pub(crate) fn to_sparse(&self, threshold: f32) -> SparseMatrix {
        let n = self.n;
        let lists: Vec<Vec<(u32, f32)>> = (0..n)
            .into_par_iter()
            .map(|i| {
                self.row(i)
                    .iter()
                    .enumerate()
                    .filter(|&(j, &d)| j != i && d <= threshold)
                    .map(|(j, &d)| (j as u32, d))
                    .collect()
            })
            .collect();
        SparseMatrix::from_lists(lists)
    }
}

impl Metric for DenseMatrix {
    #[inline]
    fn n(&self) -> usize {
        self.n
    }

    fn is_dense(&self) -> bool {
        true
    }

    #[inline]
    fn row(&self, i: u32) -> Option<&[f32]> {
        Some(DenseMatrix::row(self, i as usize))
    }

    #[inline]
    fn dist(&self, i: u32, j: u32) -> f32 {
        self.data[i as usize * self.n + j as usize]
    }

    #[inline]
    fn for_each_cofacet<F: FnMut(u32, f32) -> bool>(
        &self,
        vs: &[u32],
        diam: f32,
        threshold: f32,
        only_above: bool,
        mut f: F,
    ) {
        let n = self.n;
        let bottom = if only_above { vs[0] as usize + 1 } else { 0 };
        match vs.len() {
            1 => {
                let r0 = self.row(vs[0] as usize);
                let s0 = vs[0] as usize;
                for v in (bottom..n).rev() {
                    if v == s0 {
                        continue;
                    }
                    let d = fmax(diam, r0[v]);
                    if d <= threshold && !f(v as u32, d) {
                        return;
                    }
                }
            }
            2 => {
                let r0 = self.row(vs[0] as usize);
                let r1 = self.row(vs[1] as usize);
                let mut j = 0usize;
                for v in (bottom..n).rev() {
                    if j < 2 && v == vs[j] as usize {
                        j += 1;
                        continue;
                    }
                    let d = fmax(fmax(diam, r0[v]), r1[v]);
                    if d <= threshold && !f(v as u32, d) {
                        return;
                    }
                }
            }
            3 => {
                let r0 = self.row(vs[0] as usize);
                let r1 = self.row(vs[1] as usize);
                let r2 = self.row(vs[2] as usize);
                let mut j = 0usize;
                for v in (bottom..n).rev() {
                    if j < 3 && v == vs[j] as usize {
                        j += 1;
                        continue;
                    }
                    let d = fmax(fmax(fmax(diam, r0[v]), r1[v]), r2[v]);
                    if d <= threshold && !f(v as u32, d) {
                        return;
                    }
                }
            }
            k => {
                let mut j = 0usize;
                for v in (bottom..n).rev() {
                    if j < k && v == vs[j] as usize {
                        j += 1;
                        continue;
                    }
                    let mut d = diam;
                    for &w in vs {
                        d = fmax(d, self.data[w as usize * n + v]);
                    }
                    if d <= threshold && !f(v as u32, d) {
                        return;
                    }
                }
            }
        }
    }

    #[inline]
    fn first_cofacet_within(&self, vs: &[u32], diam: f32) -> Option<u32> {
        let n = self.n;
        match vs.len() {
            2 => {
                let (a, b) = (vs[0] as usize, vs[1] as usize);
                let (r0, r1) = (self.row(a), self.row(b));
                // blocks of 32 vertices from the top, each tested without branches into a bit
                // mask (vectorised); the vertices of the simplex (distance 0 to themselves) are
                // masked out
                let mut end = n;
                while end > 0 {
                    let start = end.saturating_sub(32);
                    let mut mask = 0u32;
                    for (t, (&x, &y)) in r0[start..end].iter().zip(&r1[start..end]).enumerate() {
                        mask |= (((x <= diam) & (y <= diam)) as u32) << t;
                    }
                    if (start..end).contains(&a) {
                        mask &= !(1u32 << (a - start));
                    }
                    if (start..end).contains(&b) {
                        mask &= !(1u32 << (b - start));
                    }
                    if mask != 0 {
                        return Some((start + 31 - mask.leading_zeros() as usize) as u32);
                    }
                    end = start;
                }
                None
            }
            3 => {
                let (r0, r1, r2) = (
                    self.row(vs[0] as usize),
                    self.row(vs[1] as usize),
                    self.row(vs[2] as usize),
                );
                (0..n)
                    .rev()
                    .find(|&v| {
                        r0[v] <= diam
                            && r1[v] <= diam
                            && r2[v] <= diam
                            && v != vs[0] as usize
                            && v != vs[1] as usize
                            && v != vs[2] as usize
                    })
                    .map(|v| v as u32)
            }
            _ => {
                let mut res = None;
                self.for_each_cofacet(vs, diam, diam, false, |v, _| {
                    res = Some(v);
                    false
                });
                res
            }
        }
    }

    fn edges(&self, threshold: f32, parallel: bool) -> Vec<Entry> {
        let row_edges = |i: usize| -> Vec<Entry> {
            let base = (i as u64) * (i as u64).saturating_sub(1) / 2;
            self.row(i)[..i]
                .iter()
                .enumerate()
                .filter(|&(_, &d)| d <= threshold)
                .map(|(j, &d)| Entry::new(d, base + j as u64, 1))
                .collect()
        };
        if parallel {
            (1..self.n)
                .into_par_iter()
                .flat_map_iter(row_edges)
                .collect()
        } else {
            (1..self.n).flat_map(row_edges).collect()
        }
    }

    fn edge_keys(&self, threshold: f32, parallel: bool, out: &mut Vec<u64>) {
        let row_keys = |i: usize| {
            self.row(i)[..i]
                .iter()
                .enumerate()
                .filter(move |&(_, &d)| d <= threshold)
                .map(move |(j, &d)| edge_key(d, i as u32, j as u32))
        };
        if parallel {
            out.par_extend((1..self.n).into_par_iter().flat_map_iter(row_keys));
        } else {
            for i in 1..self.n {
                out.extend(row_keys(i));
            }
        }
    }
}

/// Sparse neighbour graph: for each vertex the neighbours within the threshold, sorted by index.
#[derive(Debug, Clone)]
pub(crate) struct SparseMatrix {
    offsets: Vec<usize>,
    idx: Vec<u32>,
    d: Vec<f32>,
}

impl SparseMatrix {
    pub(crate) fn from_lists(mut lists: Vec<Vec<(u32, f32)>>) -> Self {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        offsets.push(0);
        let total: usize = lists.iter().map(|l| l.len()).sum();
        let mut idx = Vec::with_capacity(total);
        let mut d = Vec::with_capacity(total);
        for l in &mut lists {
            l.sort_unstable_by_key(|e| e.0);
            for &(j, x) in l.iter() {
                idx.push(j);
                d.push(x);
            }
            offsets.push(idx.len());
            *l = Vec::new();
        }
        SparseMatrix { offsets, idx, d }
    }

    /// From undirected edges (i, j, d); duplicates keep the smallest distance, loops are ignored.
    pub(crate) fn from_edges(n: usize, edges: &[(u32, u32, f32)], threshold: f32) -> Self {
        let mut lists: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for &(i, j, d) in edges {
            if i == j || d > threshold {
                continue;
            }
            lists[i as usize].push((j, d));
            lists[j as usize].push((i, d));
        }
        for l in &mut lists {
            l.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            l.dedup_by_key(|e| e.0);
        }
        Self::from_lists(lists)
    }

    #[inline]
    fn list(&self, i: u32) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[i as usize], self.offsets[i as usize + 1]);
        (&self.idx[a..b], &self.d[a..b])
    }

    pub(crate) fn num_entries(&self) -> usize {
        self.idx.len() / 2
    }
}

impl Metric for SparseMatrix {
    #[inline]
    fn n(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    fn dist(&self, i: u32, j: u32) -> f32 {
        if i == j {
            return 0.0;
        }
        let (ix, dx) = self.list(i);
        match ix.binary_search(&j) {
            Ok(p) => dx[p],
            Err(_) => f32::INFINITY,
        }
    }

    #[inline]
    fn for_each_cofacet<F: FnMut(u32, f32) -> bool>(
        &self,
        vs: &[u32],
        diam: f32,
        threshold: f32,
        only_above: bool,
        mut f: F,
    ) {
        let k = vs.len();
        // iterate over the shortest list, intersect with the others
        let mut best = 0;
        let mut best_len = usize::MAX;
        for (t, &w) in vs.iter().enumerate() {
            let l = self.offsets[w as usize + 1] - self.offsets[w as usize];
            if l < best_len {
                best_len = l;
                best = t;
            }
        }
        let mut ptr = [0usize; MAX_VERTICES];
        for t in 0..k {
            ptr[t] = self.offsets[vs[t] as usize + 1];
        }
        let (i0, d0) = self.list(vs[best]);
        let floor = vs[0];
        'outer: for p in (0..i0.len()).rev() {
            let v = i0[p];
            if only_above && v < floor {
                break;
            }
            let mut d = fmax(diam, d0[p]);
            if d > threshold {
                continue;
            }
            for t in 0..k {
                if t == best {
                    continue;
                }
                let lo = self.offsets[vs[t] as usize];
                let mut q = ptr[t];
                while q > lo && self.idx[q - 1] > v {
                    q -= 1;
                }
                ptr[t] = q;
                if q == lo || self.idx[q - 1] != v {
                    continue 'outer;
                }
                d = fmax(d, self.d[q - 1]);
            }
            if d <= threshold && !f(v, d) {
                return;
            }
        }
    }

    fn edges(&self, threshold: f32, _parallel: bool) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.num_entries());
        for i in 0..self.n() as u32 {
            let (ix, dx) = self.list(i);
            let base = (i as u64) * (i as u64).saturating_sub(1) / 2;
            for (&j, &d) in ix.iter().zip(dx) {
                if j >= i {
                    break;
                }
                if d <= threshold {
                    out.push(Entry::new(d, base + j as u64, 1));
                }
            }
        }
        out
    }
}
