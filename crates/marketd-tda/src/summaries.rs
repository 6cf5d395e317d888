//! Summaries of persistence diagrams: Betti curves, persistence landscapes and their norms,
//! bottleneck and q-Wasserstein distances (ground metric L-infinity, points may be matched to
//! the diagonal; essential bars are matched among themselves by birth).

use crate::barcode::Bar;

/// Number of bars alive at each grid value `t` (birth <= t < death).
pub fn betti_curve(bars: &[Bar], grid: &[f64]) -> Vec<usize> {
    grid.iter()
        .map(|&t| bars.iter().filter(|b| b.birth <= t && t < b.death).count())
        .collect()
}

/// Persistence landscape: `levels` functions λ_1 >= λ_2 >= ... sampled on `grid`;
/// `out[k][i]` = λ_{k+1}(grid[i]), where λ_k(t) is the k-th largest of max(0, min(t-b, d-t)).
pub fn landscape(bars: &[Bar], levels: usize, grid: &[f64]) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; grid.len()]; levels];
    if levels == 0 {
        return out;
    }
    let mut vals: Vec<f64> = Vec::with_capacity(bars.len());
    for (i, &t) in grid.iter().enumerate() {
        vals.clear();
        vals.extend(
            bars.iter()
                .map(|b| (t - b.birth).min(b.death - t))
                .filter(|&v| v > 0.0),
        );
        vals.sort_unstable_by(|a, b| b.total_cmp(a));
        for (k, &v) in vals.iter().take(levels).enumerate() {
            out[k][i] = v;
        }
    }
    out
}

/// L^p norm (p = 1 or 2, any p >= 1 works) of a sampled landscape by the trapezoidal rule,
/// summing over levels: (Σ_k ∫ |λ_k|^p)^(1/p).
pub fn landscape_norm(landscape: &[Vec<f64>], grid: &[f64], p: f64) -> f64 {
    let mut total = 0.0;
    for level in landscape {
        for i in 1..grid.len().min(level.len()) {
            let h = grid[i] - grid[i - 1];
            total += 0.5 * h * (level[i - 1].abs().powf(p) + level[i].abs().powf(p));
        }
    }
    total.powf(1.0 / p)
}

/// Exact L^p norm of the persistence landscape (all levels) of finite bars, computed on the
/// breakpoints; with `p = 1` this is Σ (d-b)²/4 per bar.
pub fn landscape_norm_exact(bars: &[Bar], p: f64) -> f64 {
    let finite: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect();
    let mut pts: Vec<f64> = Vec::new();
    for b in &finite {
        pts.push(b.birth);
        pts.push(b.death);
        pts.push(0.5 * (b.birth + b.death));
    }
    for (i, a) in finite.iter().enumerate() {
        for b in &finite[i + 1..] {
            // crossings of the tents
            pts.push(0.5 * (a.birth + b.death));
            pts.push(0.5 * (b.birth + a.death));
        }
    }
    pts.sort_unstable_by(f64::total_cmp);
    pts.dedup();
    if pts.len() < 2 {
        return 0.0;
    }
    // between consecutive breakpoints every level is linear: integrate |λ|^p with Simpson's
    // rule on each linear piece (exact for p = 1, 2)
    let mut total = 0.0;
    let lv = finite.len();
    let lam = |t: f64| -> Vec<f64> {
        let mut v: Vec<f64> = finite
            .iter()
            .map(|b| (t - b.birth).min(b.death - t).max(0.0))
            .collect();
        v.sort_unstable_by(|a, b| b.total_cmp(a));
        v
    };
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b <= a {
            continue;
        }
        let (la, lm, lb) = (lam(a), lam(0.5 * (a + b)), lam(b));
        for k in 0..lv {
            total += (b - a) / 6.0 * (la[k].powf(p) + 4.0 * lm[k].powf(p) + lb[k].powf(p));
        }
    }
    total.powf(1.0 / p)
}

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
pub fn bottleneck(a: &[Bar], b: &[Bar]) -> f64 {
    let (fa, ia) = split(a);
    let (fb, ib) = split(b);
    if ia.len() != ib.len() {
        return f64::INFINITY;
    }
    let mut best = ia
        .iter()
        .zip(&ib)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f64, f64::max);
    let (n, m) = (fa.len(), fb.len());
    let mut cands: Vec<f64> = Vec::with_capacity(n * m + n + m + 1);
    cands.push(0.0);
    for &x in &fa {
        cands.push(to_diag(x));
        for &y in &fb {
            cands.push(linf(x, y));
        }
    }
    for &y in &fb {
        cands.push(to_diag(y));
    }
    cands.sort_unstable_by(f64::total_cmp);
    cands.dedup();
    // smallest candidate admitting a perfect matching
    let feasible = |delta: f64| -> bool {
        // left: a_0..a_{n-1}, diag copies of b (n..n+m); right: b_0..b_{m-1}, diag copies of a
        let size = n + m;
        let adj = |l: usize, r: usize| -> bool {
            match (l < n, r < m) {
                (true, true) => linf(fa[l], fb[r]) <= delta,
                (true, false) => r - m == l && to_diag(fa[l]) <= delta,
                (false, true) => l - n == r && to_diag(fb[r]) <= delta,
                (false, false) => true,
            }
        };
        let mut match_r: Vec<usize> = vec![usize::MAX; size];
        fn try_kuhn(
            l: usize,
            size: usize,
            adj: &dyn Fn(usize, usize) -> bool,
            seen: &mut [bool],
            match_r: &mut [usize],
        ) -> bool {
            for r in 0..size {
                if !seen[r] && adj(l, r) {
                    seen[r] = true;
                    if match_r[r] == usize::MAX || try_kuhn(match_r[r], size, adj, seen, match_r) {
                        match_r[r] = l;
                        return true;
                    }
                }
            }
            false
        }
        let mut seen = vec![false; size];
        for l in 0..size {
            seen.iter_mut().for_each(|s| *s = false);
            if !try_kuhn(l, size, &adj, &mut seen, &mut match_r) {
                return false;
            }
        }
        true
    };
    let (mut lo, mut hi) = (0usize, cands.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if feasible(cands[mid]) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    best = best.max(cands[lo]);
    best
}

/// q-Wasserstein distance (q >= 1) between two diagrams, exact via the Hungarian algorithm.
pub fn wasserstein(a: &[Bar], b: &[Bar], q: f64) -> f64 {
    let (fa, ia) = split(a);
    let (fb, ib) = split(b);
    if ia.len() != ib.len() {
        return f64::INFINITY;
    }
    let mut total: f64 = ia.iter().zip(&ib).map(|(x, y)| (x - y).abs().powf(q)).sum();
    let (n, m) = (fa.len(), fb.len());
    let size = n + m;
    if size > 0 {
        const BIG: f64 = 1e300;
        let cost = |i: usize, j: usize| -> f64 {
            match (i < n, j < m) {
                (true, true) => linf(fa[i], fb[j]).powf(q),
                (true, false) => {
                    if j - m == i {
                        to_diag(fa[i]).powf(q)
                    } else {
                        BIG
                    }
                }
                (false, true) => {
                    if i - n == j {
                        to_diag(fb[j]).powf(q)
                    } else {
                        BIG
                    }
                }
                (false, false) => 0.0,
            }
        };
        total += hungarian(size, &cost);
    }
    total.powf(1.0 / q)
}

/// Minimum-cost perfect assignment on an n×n cost matrix (O(n³) potentials method).
fn hungarian(n: usize, cost: &dyn Fn(usize, usize) -> f64) -> f64 {
    let inf = f64::INFINITY;
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0 - 1, j - 1) - u[i0] - v[j];
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
            for j in 0..=n {
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
    (1..=n).map(|j| cost(p[j] - 1, j - 1)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(v: &[(f64, f64)]) -> Vec<Bar> {
        v.iter().map(|&(b, d)| Bar::new(b, d)).collect()
    }

    #[test]
    fn betti_and_landscape() {
        let d = bars(&[(0.0, 2.0), (1.0, 3.0)]);
        let grid: Vec<f64> = (0..=6).map(|i| i as f64 * 0.5).collect();
        assert_eq!(betti_curve(&d, &grid), vec![1, 1, 2, 2, 1, 1, 0]);
        let l = landscape(&d, 2, &grid);
        assert_eq!(l[0], vec![0.0, 0.5, 1.0, 0.5, 1.0, 0.5, 0.0]);
        assert_eq!(l[1], vec![0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]);
        // one tent of half-width 1: L1 = 1
        let one = bars(&[(0.0, 2.0)]);
        let fine: Vec<f64> = (0..=200).map(|i| i as f64 * 0.01).collect();
        let l1 = landscape_norm(&landscape(&one, 1, &fine), &fine, 1.0);
        assert!((l1 - 1.0).abs() < 1e-9);
        assert!((landscape_norm_exact(&one, 1.0) - 1.0).abs() < 1e-12);
        // L2^2 of a tent of half-width 1 = 2/3
        assert!((landscape_norm_exact(&one, 2.0) - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
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
    }
}
