//! One-dimensional summaries sampled on a grid: Betti curves, persistence landscapes (and
//! their exact norms) and power-weighted silhouettes, in giotto-tda's conventions (no √2 on
//! the landscapes, unlike GUDHI). Infinite bars are ignored by all of them (see the module
//! docs of [`crate::summaries`]).

use crate::barcode::Bar;

/// Number of bars alive at each grid value `t` (birth <= t < death), as giotto-tda's
/// `BettiCurve`. Infinite bars count as alive from their birth on.
pub fn betti_curve(bars: &[Bar], grid: &[f64]) -> Vec<usize> {
    let mut births: Vec<f64> = bars.iter().map(|b| b.birth).collect();
    let mut deaths: Vec<f64> = bars.iter().map(|b| b.death).collect();
    births.sort_unstable_by(f64::total_cmp);
    deaths.sort_unstable_by(f64::total_cmp);
    // bars born at or before t minus bars dead at or before t: exact when no bar dies
    // before its birth (Ripser's never do; the slow count handles any others)
    if bars.iter().any(|b| b.death < b.birth) {
        return grid
            .iter()
            .map(|&t| bars.iter().filter(|b| b.birth <= t && t < b.death).count())
            .collect();
    }
    grid.iter()
        .map(|&t| {
            let born = births.partition_point(|&b| b <= t);
            let dead = deaths.partition_point(|&d| d <= t);
            born - dead
        })
        .collect()
}

#[inline]
fn tent(b: &Bar, t: f64) -> f64 {
    // giotto: max(0, (d - b)/2 - |t - (b + d)/2|)
    ((b.death - b.birth) / 2.0 - (t - (b.death + b.birth) / 2.0).abs()).max(0.0)
}

/// Persistence landscape: `levels` functions λ_1 >= λ_2 >= ... sampled on `grid`;
/// `out[k][i]` = λ_{k+1}(grid[i]), where λ_k(t) is the k-th largest of
/// max(0, min(t - b, d - t)) over the finite bars (giotto-tda's `PersistenceLandscape`; GUDHI's
/// `Landscape` is √2 times this). Infinite bars are ignored.
pub fn landscape(bars: &[Bar], levels: usize, grid: &[f64]) -> Vec<Vec<f64>> {
    let mut out = vec![vec![0.0; grid.len()]; levels];
    if levels == 0 {
        return out;
    }
    let fin: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite() && b.death > b.birth)
        .collect();
    if let Some(b0) = common_birth(&fin) {
        // all bars born together (H0): the tent at t grows with the death, so λ_k is the tent
        // of the k-th longest bar: O(n log n + N k)
        let mut deaths: Vec<f64> = fin.iter().map(|b| b.death).collect();
        deaths.sort_unstable_by(|a, b| b.total_cmp(a));
        for (k, &d) in deaths.iter().take(levels).enumerate() {
            let bar = Bar::new(b0, d);
            for (o, &t) in out[k].iter_mut().zip(grid) {
                *o = tent(&bar, t);
            }
        }
        return out;
    }
    // each bar is positive on a run of grid points only: visit those (O(Σ run lengths), not
    // O(n N)), keeping the top `levels` values per grid point sorted in `top`
    let n = grid.len();
    let mut top = vec![0.0f64; n * levels];
    for b in &fin {
        let (i0, i1) = support(grid, b);
        for (i, &t) in grid.iter().enumerate().take(i1).skip(i0) {
            let v = tent(b, t);
            let row = &mut top[i * levels..(i + 1) * levels];
            if v <= row[levels - 1] {
                continue;
            }
            // insert v, dropping the smallest
            let mut k = levels - 1;
            while k > 0 && row[k - 1] < v {
                row[k] = row[k - 1];
                k -= 1;
            }
            row[k] = v;
        }
    }
    for (i, row) in top.chunks_exact(levels).enumerate() {
        for (k, &v) in row.iter().enumerate() {
            out[k][i] = v;
        }
    }
    out
}

/// The birth of all of `bars` if they share one (and there is at least one).
fn common_birth(bars: &[Bar]) -> Option<f64> {
    let b0 = bars.first()?.birth;
    bars.iter().all(|b| b.birth == b0).then_some(b0)
}

/// The grid points `i0..i1` inside the bar (birth < t < death), for a grid in increasing order
/// (any other order: all of it).
#[inline]
fn support(grid: &[f64], b: &Bar) -> (usize, usize) {
    if grid.windows(2).all(|w| w[0] <= w[1]) {
        (
            grid.partition_point(|&t| t <= b.birth),
            grid.partition_point(|&t| t < b.death),
        )
    } else {
        (0, grid.len())
    }
}

/// L^p norm (any p >= 1) of a sampled landscape by the trapezoidal rule, summing over levels:
/// (Σ_k ∫ |λ_k|^p)^(1/p).
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

/// Exact L^p norm (p >= 1, or infinite) of the whole persistence landscape (all levels) of the
/// finite bars. At every t the levels are the tents' values sorted, so Σ_k ∫ λ_k^p = Σ over
/// bars of ∫ tent^p = Σ 2 h^(p+1) / (p+1) with h half the persistence: O(n).
pub fn landscape_norm_exact(bars: &[Bar], p: f64) -> f64 {
    let halves = bars
        .iter()
        .filter(|b| b.death.is_finite() && b.death > b.birth)
        .map(|b| 0.5 * (b.death - b.birth));
    if p.is_infinite() {
        return halves.fold(0.0, f64::max);
    }
    let s: f64 = halves.map(|h| 2.0 * h.powf(p + 1.0) / (p + 1.0)).sum();
    s.powf(1.0 / p)
}

/// Exact L1, L2 and L∞ norms of a landscape.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LandscapeNorms {
    pub l1: f64,
    pub l2: f64,
    pub linf: f64,
}

/// Exact L1, L2, L∞ norms of the landscape of the finite bars: of all its levels (`None`, O(n))
/// or of the first `k` (exact on the breakpoints of the levels: births, deaths, peaks and the
/// crossings of the tents, O(n² (n + log n)), for diagrams of up to a few hundred bars).
pub fn landscape_norms(bars: &[Bar], layers: Option<usize>) -> LandscapeNorms {
    let Some(k) = layers else {
        return LandscapeNorms {
            l1: landscape_norm_exact(bars, 1.0),
            l2: landscape_norm_exact(bars, 2.0),
            linf: landscape_norm_exact(bars, f64::INFINITY),
        };
    };
    let fin: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite() && b.death > b.birth)
        .collect();
    if k >= fin.len() {
        return landscape_norms(&fin, None);
    }
    let mut pts: Vec<f64> = Vec::with_capacity(3 * fin.len());
    for b in &fin {
        pts.extend([b.birth, b.death, 0.5 * (b.birth + b.death)]);
    }
    for (i, a) in fin.iter().enumerate() {
        for b in &fin[i + 1..] {
            // rising edge of one against the falling edge of the other
            for t in [0.5 * (a.birth + b.death), 0.5 * (b.birth + a.death)] {
                if t > a.birth.max(b.birth) && t < a.death.min(b.death) {
                    pts.push(t);
                }
            }
        }
    }
    pts.sort_unstable_by(f64::total_cmp);
    pts.dedup();
    let lam = |t: f64, v: &mut Vec<f64>| {
        v.clear();
        v.extend(fin.iter().map(|b| tent(b, t)));
        v.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        v.truncate(k);
    };
    let (mut prev, mut cur) = (Vec::new(), Vec::new());
    let (mut l1, mut l2sq, mut linf) = (0.0, 0.0, 0.0f64);
    for (i, &t) in pts.iter().enumerate() {
        lam(t, &mut cur);
        // the top k as a set is what matters: sort to pair the levels
        cur.sort_unstable_by(|a, b| b.total_cmp(a));
        linf = linf.max(cur[0]);
        if i > 0 {
            let h = t - pts[i - 1];
            for (a, b) in prev.iter().zip(&cur) {
                // each level is linear between breakpoints
                l1 += 0.5 * h * (a + b);
                l2sq += h * (a * a + a * b + b * b) / 3.0;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    LandscapeNorms {
        l1,
        l2: l2sq.sqrt(),
        linf,
    }
}

/// Power-weighted silhouette sampled on `grid` (giotto-tda's `Silhouette`):
/// Σ w_i tent_i(t) / Σ w_i with w_i = (d_i - b_i)^power over the finite bars; 0 where no bar
/// has positive persistence.
pub fn silhouette(bars: &[Bar], power: f64, grid: &[f64]) -> Vec<f64> {
    let fin: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect();
    let mut w: Vec<f64> = fin.iter().map(|b| b.death - b.birth).collect();
    if power > 8.0 {
        // giotto's guard against overflow: the ratio is the same
        let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        w.iter_mut().for_each(|x| *x /= m);
    }
    w.iter_mut().for_each(|x| *x = x.powf(power));
    let total: f64 = w.iter().sum();
    if total == 0.0 || fin.is_empty() {
        return vec![0.0; grid.len()];
    }
    if let Some(b0) = common_birth(&fin) {
        // all bars born together (H0): at t, bars with d >= 2t - b0 contribute w (t - b0) and
        // those with t < d < 2t - b0 contribute w (d - t): prefix sums over the bars sorted by
        // death make each grid point O(log n)
        let mut bw: Vec<(f64, f64)> = fin.iter().map(|b| b.death).zip(w).collect();
        bw.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        let mut sw = vec![0.0; bw.len() + 1];
        let mut swd = vec![0.0; bw.len() + 1];
        for (k, &(d, wi)) in bw.iter().enumerate() {
            sw[k + 1] = sw[k] + wi;
            swd[k + 1] = swd[k] + wi * d;
        }
        let n = bw.len();
        return grid
            .iter()
            .map(|&t| {
                if t <= b0 {
                    return 0.0;
                }
                let alive = bw.partition_point(|&(d, _)| d <= t);
                let top = bw.partition_point(|&(d, _)| d < 2.0 * t - b0).max(alive);
                let v = (sw[n] - sw[top]) * (t - b0) + (swd[top] - swd[alive])
                    - t * (sw[top] - sw[alive]);
                v.max(0.0) / total
            })
            .collect();
    }
    let mut out = vec![0.0; grid.len()];
    for (b, &wi) in fin.iter().zip(&w) {
        let (i0, i1) = support(grid, b);
        for (o, &t) in out[i0..i1.max(i0)].iter_mut().zip(&grid[i0..i1.max(i0)]) {
            *o += wi * tent(b, t);
        }
    }
    out.iter_mut().for_each(|o| *o /= total);
    out
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
    fn exact_norms_of_the_first_levels() {
        // two overlapping tents: λ1 is the upper envelope, λ2 the small diamond under the
        // crossing at t = 1.5 (height 0.5): L1(λ2) = 0.25, L1(λ1) = 1 + 1 - 0.25
        let d = bars(&[(0.0, 2.0), (1.0, 3.0)]);
        let n1 = landscape_norms(&d, Some(1));
        assert!((n1.l1 - 1.75).abs() < 1e-12, "{n1:?}");
        assert_eq!(n1.linf, 1.0);
        let all = landscape_norms(&d, None);
        assert!((all.l1 - 2.0).abs() < 1e-12);
        // L2²(all) = 2 * 2/3; L2²(λ2) = 2 * ∫_0^0.5 x² dx = 1/12
        assert!((all.l2 * all.l2 - 4.0 / 3.0).abs() < 1e-12);
        assert!((n1.l2 * n1.l2 - (4.0 / 3.0 - 1.0 / 12.0)).abs() < 1e-12);
        // against a fine trapezoid on random bars
        let mut s = 7u64;
        let mut r = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let d: Vec<Bar> = (0..30)
            .map(|_| {
                let b = r();
                Bar::new(b, b + r())
            })
            .collect();
        let grid: Vec<f64> = (0..=40000).map(|i| i as f64 * 2.0 / 40000.0).collect();
        for k in [1, 3, 10] {
            let ex = landscape_norms(&d, Some(k));
            let l = landscape(&d, k, &grid);
            assert!((landscape_norm(&l, &grid, 1.0) - ex.l1).abs() < 1e-6 * ex.l1);
            assert!((landscape_norm(&l, &grid, 2.0) - ex.l2).abs() < 1e-6 * ex.l2);
        }
    }

    #[test]
    fn common_birth_fast_paths_equal_the_definitions() {
        let mut s = 3u64;
        let mut r = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        let d: Vec<Bar> = (0..200).map(|_| Bar::new(0.5, 0.5 + r())).collect();
        let grid: Vec<f64> = (0..=300).map(|i| i as f64 / 200.0).collect();
        let l = landscape(&d, 4, &grid);
        for (i, &t) in grid.iter().enumerate() {
            let mut v: Vec<f64> = d.iter().map(|b| tent(b, t)).collect();
            v.sort_by(|a, b| b.total_cmp(a));
            for k in 0..4 {
                // equal up to the rounding of the tents (1e-16)
                assert!((l[k][i] - v[k]).abs() < 1e-12, "λ{k}({t})");
            }
        }
        for power in [1.0, 2.5] {
            let sil = silhouette(&d, power, &grid);
            let w: Vec<f64> = d.iter().map(|b| (b.death - b.birth).powf(power)).collect();
            let total: f64 = w.iter().sum();
            for (i, &t) in grid.iter().enumerate() {
                let want: f64 =
                    d.iter().zip(&w).map(|(b, wi)| wi * tent(b, t)).sum::<f64>() / total;
                assert!((sil[i] - want).abs() < 1e-12, "{t}: {} vs {want}", sil[i]);
            }
        }
    }

    #[test]
    fn silhouette_weights() {
        let d = bars(&[(0.0, 2.0), (1.0, 2.0), (0.0, f64::INFINITY)]);
        // weights 2 and 1 (power 1): at t = 1 tents are 1 and 0
        let s = silhouette(&d, 1.0, &[1.0, 1.5]);
        assert!((s[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((s[1] - (2.0 * 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert_eq!(silhouette(&[], 1.0, &[0.0]), vec![0.0]);
    }
}
