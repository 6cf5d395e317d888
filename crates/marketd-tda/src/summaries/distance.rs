//! Bottleneck and q-Wasserstein distances between persistence diagrams, exact.
//!
//! Ground metric L∞ between points, a point may be matched to the diagonal at cost half its
//! persistence (its L∞ distance to the diagonal), and the essential (infinite) bars are matched
//! among themselves by birth, sorted: the distance is infinite if the diagrams have different
//! numbers of them (GUDHI's and hera's convention). Zero-length bars are ignored. GUDHI's
//! `bottleneck_distance` (3.14+) and hera's Wasserstein distance are the references in
//! `tests/summaries.rs`; a brute force over all matchings is the oracle.

use crate::barcode::Bar;

fn split(bars: &[Bar]) -> (Vec<(f64, f64)>, Vec<f64>) {
    let mut fin = Vec::new();
    let mut inf = Vec::new();
    for b in bars {
        if b.death.is_finite() {
            if b.death > b.birth {
                fin.push((b.birth, b.death));
            }
        } else {
            inf.push(b.birth);
        }
    }
    inf.sort_unstable_by(f64::total_cmp);
    (fin, inf)
}

#[inline]
fn linf(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).abs().max((a.1 - b.1).abs())
}

#[inline]
fn to_diag(a: (f64, f64)) -> f64 {
    0.5 * (a.1 - a.0)
}

/// Bottleneck distance between two diagrams (exact).
///
/// The optimal value is one of the pairwise L∞ distances or half-persistences; a binary search
/// over them tests feasibility: a matching of cost at most δ exists iff the points of `a` and
/// of `b` farther than δ from the diagonal can all be matched to points of the other diagram
/// within δ in one matching (the others go to the diagonal, and the diagonal copies left over
/// pair up among themselves). By the Mendelsohn–Dulmage theorem that holds iff the far points
/// of `a` can be matched into `b` and the far points of `b` into `a`, two Hopcroft–Karp runs.
pub fn bottleneck(a: &[Bar], b: &[Bar]) -> f64 {
    let (fa, ia) = split(a);
    let (fb, ib) = split(b);
    if ia.len() != ib.len() {
        return f64::INFINITY;
    }
    let essential = ia
        .iter()
        .zip(&ib)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f64, f64::max);
    let mut cands: Vec<f64> = Vec::with_capacity(fa.len() * fb.len() + fa.len() + fb.len() + 1);
    cands.push(0.0);
    cands.extend(fa.iter().map(|&x| to_diag(x)));
    cands.extend(fb.iter().map(|&y| to_diag(y)));
    // a lower bound: every point must go somewhere, to the diagonal or to a point of the
    // other diagram; candidates below it need no test
    let nearest = |x: (f64, f64), other: &[(f64, f64)]| {
        other.iter().map(|&y| linf(x, y)).fold(to_diag(x), f64::min)
    };
    let floor = fa
        .iter()
        .map(|&x| nearest(x, &fb))
        .chain(fb.iter().map(|&y| nearest(y, &fa)))
        .fold(0.0f64, f64::max);
    // and an upper bound: everything to the diagonal
    let ceil = fa
        .iter()
        .chain(&fb)
        .map(|&x| to_diag(x))
        .fold(0.0f64, f64::max);
    for &x in &fa {
        for &y in &fb {
            let d = linf(x, y);
            if d >= floor && d <= ceil {
                cands.push(d);
            }
        }
    }
    cands.push(floor);
    cands.retain(|&c| c >= floor);
    cands.sort_unstable_by(f64::total_cmp);
    cands.dedup();
    let mut hk = HopcroftKarp::default();
    let feasible = |delta: f64, hk: &mut HopcroftKarp| -> bool {
        covers(&fa, &fb, delta, hk) && covers(&fb, &fa, delta, hk)
    };
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if feasible(cands[mid], &mut hk) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    essential.max(cands[lo])
}

/// Whether the points of `left` farther than `delta` from the diagonal can all be matched to
/// distinct points of `right` within `delta`.
fn covers(left: &[(f64, f64)], right: &[(f64, f64)], delta: f64, hk: &mut HopcroftKarp) -> bool {
    hk.start.clear();
    hk.adj.clear();
    for &x in left {
        if to_diag(x) <= delta {
            continue;
        }
        hk.start.push(hk.adj.len());
        let before = hk.adj.len();
        hk.adj.extend(
            right
                .iter()
                .enumerate()
                .filter(|&(_, &y)| linf(x, y) <= delta)
                .map(|(j, _)| j as u32),
        );
        if hk.adj.len() == before {
            return false;
        }
    }
    hk.start.push(hk.adj.len());
    let n = hk.start.len() - 1;
    n <= right.len() && hk.max_matching(right.len()) == n
}

/// Hopcroft–Karp maximum bipartite matching on a graph in compressed rows (left vertex `i` has
/// the right neighbours `adj[start[i]..start[i + 1]]`), buffers kept between calls.
#[derive(Default)]
struct HopcroftKarp {
    start: Vec<usize>,
    adj: Vec<u32>,
    match_l: Vec<u32>,
    match_r: Vec<u32>,
    dist: Vec<u32>,
    queue: Vec<u32>,
    /// Explicit DFS stack: (left vertex, next edge position).
    stack: Vec<(u32, usize)>,
}

const FREE: u32 = u32::MAX;

impl HopcroftKarp {
    fn max_matching(&mut self, nr: usize) -> usize {
        let nl = self.start.len() - 1;
        self.match_l.clear();
        self.match_l.resize(nl, FREE);
        self.match_r.clear();
        self.match_r.resize(nr, FREE);
        self.dist.resize(nl, 0);
        let mut size = 0;
        while self.bfs() {
            for u in 0..nl {
                if self.match_l[u] == FREE && self.dfs(u as u32) {
                    size += 1;
                }
            }
        }
        size
    }

    /// Layers from the free left vertices; true if a free right vertex is reachable.
    fn bfs(&mut self) -> bool {
        let nl = self.match_l.len();
        self.queue.clear();
        for u in 0..nl {
            if self.match_l[u] == FREE {
                self.dist[u] = 0;
                self.queue.push(u as u32);
            } else {
                self.dist[u] = FREE;
            }
        }
        let mut found = false;
        let mut head = 0;
        while head < self.queue.len() {
            let u = self.queue[head] as usize;
            head += 1;
            for &v in &self.adj[self.start[u]..self.start[u + 1]] {
                let w = self.match_r[v as usize];
                if w == FREE {
                    found = true;
                } else if self.dist[w as usize] == FREE {
                    self.dist[w as usize] = self.dist[u] + 1;
                    self.queue.push(w);
                }
            }
        }
        found
    }

    /// Augmenting path from the free left vertex `root` along the layers (iterative DFS).
    fn dfs(&mut self, root: u32) -> bool {
        self.stack.clear();
        self.stack.push((root, self.start[root as usize]));
        while let Some(&mut (u, ref mut pos)) = self.stack.last_mut() {
            let end = self.start[u as usize + 1];
            if *pos == end {
                // dead end: remove u from the layers
                self.dist[u as usize] = FREE;
                self.stack.pop();
                continue;
            }
            let v = self.adj[*pos];
            *pos += 1;
            let w = self.match_r[v as usize];
            if w == FREE {
                // augment along the stack: each left vertex takes the edge it last followed
                for &(x, p) in self.stack.iter().rev() {
                    let y = self.adj[p - 1];
                    self.match_r[y as usize] = x;
                    self.match_l[x as usize] = y;
                }
                return true;
            }
            if self.dist[w as usize] == self.dist[u as usize].wrapping_add(1) {
                let s = self.start[w as usize];
                self.stack.push((w, s));
            }
        }
        false
    }
}

/// q-Wasserstein distance (q >= 1) between two diagrams, exact via the Hungarian algorithm.
///
/// With d(x) the cost of sending x to the diagonal, the cost of a partial matching M of the
/// finite points is Σ d(a) + Σ d(b) + Σ_{(a,b) in M} (c(a, b) - d(a) - d(b)), so it is an
/// assignment of the smaller side's n points to the other side's m points or to one of n
/// "unmatched" columns of cost 0: an n × (m + n) rectangular problem, O(n² (n + m)) instead of
/// the (n + m)³ of the square formulation with diagonal copies; points with no partner cheaper
/// than the diagonal are left out of it.
pub fn wasserstein(a: &[Bar], b: &[Bar], q: f64) -> f64 {
    let (fa, ia) = split(a);
    let (fb, ib) = split(b);
    if ia.len() != ib.len() {
        return f64::INFINITY;
    }
    let essential: f64 = ia.iter().zip(&ib).map(|(x, y)| (x - y).abs().powf(q)).sum();
    let da: Vec<f64> = fa.iter().map(|&x| to_diag(x).powf(q)).collect();
    let db: Vec<f64> = fb.iter().map(|&y| to_diag(y).powf(q)).collect();
    let c = |i: usize, j: usize| linf(fa[i], fb[j]).powf(q);
    // only pairs cheaper than sending both points to the diagonal can be in an optimal
    // matching; a point in no such pair goes to the diagonal (unmatching it costs nothing and
    // frees its partner), so only the others enter the assignment
    let (mut ka, mut kb) = (vec![false; fa.len()], vec![false; fb.len()]);
    for i in 0..fa.len() {
        for j in 0..fb.len() {
            if c(i, j) < da[i] + db[j] {
                ka[i] = true;
                kb[j] = true;
            }
        }
    }
    let ra: Vec<usize> = (0..fa.len()).filter(|&i| ka[i]).collect();
    let rb: Vec<usize> = (0..fb.len()).filter(|&j| kb[j]).collect();
    // rows: the smaller side
    let swap = ra.len() > rb.len();
    let (rows, cols) = if swap { (&rb, &ra) } else { (&ra, &rb) };
    let pair = |r: usize, col: usize| if swap { (col, r) } else { (r, col) };
    let (mut ma, mut mb) = (vec![false; fa.len()], vec![false; fb.len()]);
    let mut total = essential;
    let (n, m) = (rows.len(), cols.len());
    if n > 0 {
        let width = m + n;
        let mut cost = vec![0.0; n * width];
        for (ri, &r) in rows.iter().enumerate() {
            let row = &mut cost[ri * width..ri * width + m];
            for (o, &col) in row.iter_mut().zip(cols.iter()) {
                // matching the two instead of sending both to the diagonal
                let (i, j) = pair(r, col);
                *o = c(i, j) - da[i] - db[j];
            }
        }
        // the cost of the optimal matching is summed from its pairs (not from the reduced
        // costs, whose differences would round)
        for (ri, &cj) in hungarian(n, width, &cost).iter().enumerate() {
            if cj < m {
                let (i, j) = pair(rows[ri], cols[cj]);
                ma[i] = true;
                mb[j] = true;
                total += c(i, j);
            }
        }
    }
    total += da
        .iter()
        .zip(&ma)
        .filter(|(_, m)| !**m)
        .map(|(d, _)| d)
        .sum::<f64>();
    total += db
        .iter()
        .zip(&mb)
        .filter(|(_, m)| !**m)
        .map(|(d, _)| d)
        .sum::<f64>();
    total.powf(1.0 / q)
}

/// Minimum-cost assignment of the `n` rows of an n × `m` row-major cost matrix (n <= m) to
/// distinct columns (O(n² m) potentials method); returns the column of each row.
fn hungarian(n: usize, m: usize, cost: &[f64]) -> Vec<usize> {
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![inf; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = inf);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let row = &cost[(i0 - 1) * m..i0 * m];
            let ui0 = u[i0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = row[j - 1] - ui0 - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![usize::MAX; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(v: &[(f64, f64)]) -> Vec<Bar> {
        v.iter().map(|&(b, d)| Bar::new(b, d)).collect()
    }

    #[test]
    fn distances() {
        let a = bars(&[(0.0, 4.0), (1.0, 2.0), (0.0, f64::INFINITY)]);
        let b = bars(&[(0.0, 3.0), (0.5, f64::INFINITY)]);
        // (0,4)-(0,3): 1; (1,2) to diagonal: 0.5; essential: 0.5
        assert!((bottleneck(&a, &b) - 1.0).abs() < 1e-12);
        assert!((wasserstein(&a, &b, 1.0) - 2.0).abs() < 1e-12);
        assert!((wasserstein(&a, &b, 2.0) - (1.0f64 + 0.25 + 0.25).sqrt()).abs() < 1e-12);
        assert_eq!(bottleneck(&a, &a), 0.0);
        assert_eq!(wasserstein(&a, &a, 2.0), 0.0);
        let c = bars(&[(0.0, 1.0)]);
        assert_eq!(bottleneck(&a, &c), f64::INFINITY);
        // empty against one bar: half its persistence
        assert_eq!(bottleneck(&[], &bars(&[(1.0, 3.0)])), 1.0);
        assert_eq!(bottleneck(&[], &[]), 0.0);
    }
}
