//! The numbers of one window: H1 of the Vietoris–Rips filtration of its
//! point cloud and what is read off it, and the realized volatility beside.

use super::window::{Window, log_returns, point_cloud};
use marketd_tda::summaries::wasserstein;
use marketd_tda::{Bar, Computer, Data, Options};

/// What one window computes to (the signal's fields before z-score and alarm).
#[derive(Debug, Clone, PartialEq)]
pub struct Measures {
    pub points: u32,
    /// The finite H1 bars (Vietoris–Rips of a point cloud has no infinite
    /// H1 bar below the enclosing radius).
    pub h1: Vec<Bar>,
    pub landscape_l1: f64,
    pub landscape_l2: f64,
    pub entropy: f64,
    pub volatility: f64,
    /// Seconds the persistent homology took.
    pub seconds: f64,
}

/// Exact L1 and L2 norms of the persistence landscape (all layers) of the
/// finite bars, giotto-tda's convention (a bar of length `l` is a tent of
/// height `l/2`). At every `t` the layers `λ_1(t) ≥ λ_2(t) ≥ …` are the
/// tents' values sorted, so any sum over layers of `λ_k(t)^p` is the same
/// sum over tents: `‖λ‖_p^p = Σ_i ∫ tent_i^p = Σ_i 2 (l_i/2)^{p+1} / (p+1)`,
/// i.e. `L1 = Σ l²/4` and `L2 = (Σ l³/12)^{1/2}`: O(bars), and equal to
/// `marketd_tda::summaries::landscape_norm_exact` (tested).
pub fn landscape_norms(bars: &[Bar]) -> (f64, f64) {
    let (mut l1, mut l2sq) = (0.0, 0.0);
    for b in bars {
        let l = b.death - b.birth;
        if l.is_finite() && l > 0.0 {
            l1 += l * l / 4.0;
            l2sq += l * l * l / 12.0;
        }
    }
    (l1, l2sq.sqrt())
}

/// Persistence entropy, natural log: `-Σ p_i ln p_i` with `p_i = l_i / Σ l`
/// over the finite bars of positive length; 0 for an empty diagram.
pub fn persistence_entropy(bars: &[Bar]) -> f64 {
    let lengths: Vec<f64> = bars
        .iter()
        .map(|b| b.death - b.birth)
        .filter(|l| l.is_finite() && *l > 0.0)
        .collect();
    let total: f64 = lengths.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    -lengths
        .iter()
        .map(|l| {
            let p = l / total;
            p * p.ln()
        })
        .sum::<f64>()
}

/// Realized volatility: the mean over symbols of the sample standard
/// deviation of their log returns in the window.
pub fn realized_volatility(returns: &[Vec<f64>]) -> f64 {
    let m = returns.len();
    let n = returns.first().map_or(0, Vec::len);
    if m < 2 || n == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for i in 0..n {
        let mean = returns.iter().map(|r| r[i]).sum::<f64>() / m as f64;
        let var = returns.iter().map(|r| (r[i] - mean).powi(2)).sum::<f64>() / (m - 1) as f64;
        total += var.sqrt();
    }
    total / n as f64
}

/// 2-Wasserstein distance between two H1 diagrams.
pub fn h1_distance(previous: &[Bar], current: &[Bar]) -> Option<f64> {
    let d = wasserstein(previous, current, 2.0);
    d.is_finite().then_some(d)
}

/// Computes one window's measures; `embedding` is `(dimension, delay)`.
pub fn measure(
    computer: &mut Computer,
    w: &Window,
    embedding: Option<(usize, usize)>,
) -> Result<Measures, marketd_tda::Error> {
    let returns = log_returns(w);
    let (n, dim, coords) = point_cloud(&returns, embedding);
    let data = Data::PointCloud { n, dim, coords };
    let opts = Options {
        max_dim: 1,
        threads: 1,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    let out = computer.compute(&data, &opts)?;
    let seconds = started.elapsed().as_secs_f64();
    let h1: Vec<Bar> = out
        .barcode
        .dim(1)
        .iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect();
    let single: Vec<Vec<f64>>;
    let vol_returns = if embedding.is_some() {
        single = returns.iter().map(|r| vec![r[0]]).collect();
        &single
    } else {
        &returns
    };
    let (landscape_l1, landscape_l2) = landscape_norms(&h1);
    Ok(Measures {
        points: u32::try_from(n).unwrap_or(u32::MAX),
        landscape_l1,
        landscape_l2,
        entropy: persistence_entropy(&h1),
        volatility: realized_volatility(vol_returns),
        h1,
        seconds,
    })
}
