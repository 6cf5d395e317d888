//! Coboundary enumeration and apparent pairs: the cofacets of a simplex with their indices and
//! signs (a fast path for the edges of a dense matrix), and the zero-persistence (apparent)
//! pairs that let the engine skip columns without reducing them.

use crate::engine::reducer::Reducer;
use crate::matrix::Metric;
use crate::simplex::{Entry, MAX_VERTICES};

/// The larger of two distances (never NaN, see `matrix::fmax`).
#[inline(always)]
fn dmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

impl<'a, M: Metric> Reducer<'a, M> {
    /// First facet (in increasing index order) of the simplex with the same diameter:
    /// returns the position of the removed vertex.
    #[inline]
    fn zero_pivot_facet(&self, vs: &[u32], diam: f32) -> Option<usize> {
        let k = vs.len();
        // edges of maximal length
        let mut maxe = [(0u8, 0u8); MAX_VERTICES * 2];
        let mut cnt = 0usize;
        for a in 0..k {
            for b in a + 1..k {
                if self.m.dist(vs[a], vs[b]) == diam {
                    if cnt < maxe.len() {
                        maxe[cnt] = (a as u8, b as u8);
                    }
                    cnt += 1;
                }
            }
        }
        if cnt > maxe.len() {
            // many maximal edges: any vertex removal leaves one
            return Some(0);
        }
        (0..k).find(|&r| {
            maxe[..cnt]
                .iter()
                .any(|&(a, b)| a as usize != r && b as usize != r)
        })
    }

    /// First cofacet (in decreasing index order) with the same diameter: returns the added vertex.
    #[inline]
    fn zero_pivot_cofacet(&self, vs: &[u32], diam: f32) -> Option<u32> {
        self.m.first_cofacet_within(vs, diam)
    }

    /// Whether the simplex `vs` is the lower element of an apparent pair.
    #[inline]
    pub(super) fn has_apparent_cofacet(&self, vs: &[u32], diam: f32) -> bool {
        let Some(v) = self.zero_pivot_cofacet(vs, diam) else {
            return false;
        };
        let mut cv = [0u32; MAX_VERTICES];
        let j = vs.iter().take_while(|&&w| w > v).count();
        cv[..j].copy_from_slice(&vs[..j]);
        cv[j] = v;
        cv[j + 1..vs.len() + 1].copy_from_slice(&vs[j..]);
        self.zero_pivot_facet(&cv[..vs.len() + 1], diam) == Some(j)
    }

    /// [`Self::has_apparent_cofacet`] of the edge {i, j} (i > j) of diameter `d`.
    #[inline]
    pub(super) fn edge_has_apparent_cofacet(&self, i: u32, j: u32, d: f32) -> bool {
        let Some(v) = self.m.first_cofacet_within(&[i, j], d) else {
            return false;
        };
        // the zero-pivot facet of the cofacet (the first facet, removing its vertices from the
        // largest, keeping an edge of length d) must be {i, j}, i.e. removing v
        if v > i {
            true
        } else if v > j {
            self.m.dist(v, j) != d
        } else {
            self.m.dist(j, v) != d && self.m.dist(i, v) != d
        }
    }

    /// If the simplex `vs` is the upper element of an apparent pair, the position of the vertex
    /// whose removal gives its partner facet.
    #[inline]
    pub(super) fn apparent_facet(&self, vs: &[u32], diam: f32) -> Option<usize> {
        let r = self.zero_pivot_facet(vs, diam)?;
        let k = vs.len();
        let mut fv = [0u32; MAX_VERTICES];
        fv[..r].copy_from_slice(&vs[..r]);
        fv[r..k - 1].copy_from_slice(&vs[r + 1..]);
        (self.zero_pivot_cofacet(&fv[..k - 1], diam) == Some(vs[r])).then_some(r)
    }

    /// Calls `f(entry)` for each cofacet of the simplex (vertices `vs`, diameter `diam`,
    /// coefficient `coef`) within the threshold, in decreasing index order.
    #[inline]
    pub(super) fn cofacets<F: FnMut(Entry) -> bool>(
        &self,
        vs: &[u32],
        idx: u64,
        diam: f32,
        coef: u32,
        mut f: F,
    ) {
        let k = vs.len();
        let p = self.p();
        let neg = (p - coef) % p;
        if k == 2
            && let (Some(ra), Some(rb)) = (self.m.row(vs[0]), self.m.row(vs[1]))
        {
            // an edge {a, b} (a > b) of a dense matrix: the cofacets {v, a, b} in three runs of
            // v (above a, between, below b), each with a fixed part of the index and sign
            let (a, b) = (vs[0] as usize, vs[1] as usize);
            let t = self.cfg.threshold;
            let runs = [
                (a + 1..self.n, idx, coef, 3),
                (b + 1..a, self.binom.get(vs[0], 3) + b as u64, neg, 2),
                (
                    0..b,
                    self.binom.get(vs[0], 3) + self.binom.get(vs[1], 2),
                    coef,
                    1,
                ),
            ];
            for (range, base, c, kk) in runs {
                let table = &self.binom.table[kk * self.binom.stride..][..self.n];
                for v in range.rev() {
                    let d = dmax(dmax(diam, ra[v]), rb[v]);
                    if d <= t && !f(Entry::new(d, base + table[v], c)) {
                        return;
                    }
                }
            }
            return;
        }
        let mut j = 0usize;
        let mut above = 0u64;
        let mut below = idx;
        self.m
            .for_each_cofacet(vs, diam, self.cfg.threshold, false, |v, d| {
                while j < k && vs[j] > v {
                    above += self.binom.get(vs[j], k + 1 - j);
                    below -= self.binom.get(vs[j], k - j);
                    j += 1;
                }
                let cidx = above + self.binom.get(v, k + 1 - j) + below;
                f(Entry::new(d, cidx, if j & 1 == 1 { neg } else { coef }))
            });
    }
}
