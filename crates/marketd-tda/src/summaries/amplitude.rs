//! Amplitudes: one number per diagram, giotto-tda's `Amplitude` (the distance to the empty
//! diagram in the matching metric, or the L^p norm of a vectorization times the grid step).

use super::curves::{betti_curve, landscape, silhouette};
use super::image::{ImageWeight, heat_image, linspace, persistence_image_giotto};
use crate::barcode::Bar;

/// The metrics of giotto-tda's `Amplitude`, with its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmplitudeMetric {
    /// Largest half-lifetime (the bottleneck distance to the empty diagram).
    Bottleneck,
    /// (Σ (l/2)^p)^(1/p) over half-lifetimes (the p-Wasserstein distance to the empty diagram).
    Wasserstein,
    /// L^p norm of the Betti curve.
    Betti,
    /// L^p norm of the first `layers` landscape levels.
    Landscape,
    /// L^p norm of the power-weighted silhouette.
    Silhouette,
    /// L^p norm of giotto-tda's heat kernel image.
    Heat,
    /// L^p norm of giotto-tda's persistence image (weight 1).
    #[serde(alias = "persistence-image")]
    PersistenceImage,
}

impl AmplitudeMetric {
    pub fn as_str(&self) -> &'static str {
        match self {
            AmplitudeMetric::Bottleneck => "bottleneck",
            AmplitudeMetric::Wasserstein => "wasserstein",
            AmplitudeMetric::Betti => "betti",
            AmplitudeMetric::Landscape => "landscape",
            AmplitudeMetric::Silhouette => "silhouette",
            AmplitudeMetric::Heat => "heat",
            AmplitudeMetric::PersistenceImage => "persistence_image",
        }
    }
}

/// Parameters of an amplitude, giotto-tda's `metric_params` with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AmplitudeOptions {
    /// Order of the norm (>= 1, may be infinite); giotto's default 2.
    pub p: f64,
    /// Grid points (`n_bins`, per axis for the images); 100.
    pub samples: usize,
    /// Landscape levels (`n_layers`); 1.
    pub layers: usize,
    /// Standard deviation of the heat and image kernels; 0.1.
    pub sigma: f64,
    /// Silhouette power; 1.
    pub power: f64,
}

impl Default for AmplitudeOptions {
    fn default() -> Self {
        AmplitudeOptions {
            p: 2.0,
            samples: 100,
            layers: 1,
            sigma: 0.1,
            power: 1.0,
        }
    }
}

fn norm(v: impl Iterator<Item = f64>, p: f64) -> f64 {
    if p.is_infinite() {
        v.fold(0.0, |m, x| m.max(x.abs()))
    } else {
        v.map(|x| x.abs().powf(p)).sum::<f64>().powf(1.0 / p)
    }
}

/// Amplitude of the finite bars in `metric`. `line` is the grid range (lo, hi) of the
/// one-dimensional summaries and of the heat image, `image` the (birth, persistence) ranges of
/// the persistence image, both as [`super::sample_range`] and [`super::image_ranges`] give
/// them.
pub fn amplitude(
    bars: &[Bar],
    metric: AmplitudeMetric,
    opts: &AmplitudeOptions,
    line: (f64, f64),
    image: ((f64, f64), (f64, f64)),
) -> f64 {
    let fin: Vec<Bar> = bars
        .iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect();
    let p = opts.p;
    let factor = |step: f64, k: f64| {
        if p.is_infinite() {
            1.0
        } else {
            step.powf(k / p)
        }
    };
    let halves = || fin.iter().map(|b| 0.5 * (b.death - b.birth));
    match metric {
        AmplitudeMetric::Bottleneck => halves().fold(0.0, f64::max),
        AmplitudeMetric::Wasserstein => norm(halves(), p),
        AmplitudeMetric::Betti => {
            let (g, step) = linspace(line.0, line.1, opts.samples);
            let b = betti_curve(&fin, &g);
            norm(b.iter().map(|&x| x as f64), p) * factor(step, 1.0)
        }
        AmplitudeMetric::Landscape => {
            let (g, step) = linspace(line.0, line.1, opts.samples);
            let l = landscape(&fin, opts.layers, &g);
            norm(l.iter().flatten().copied(), p) * factor(step, 1.0)
        }
        AmplitudeMetric::Silhouette => {
            let (g, step) = linspace(line.0, line.1, opts.samples);
            let s = silhouette(&fin, opts.power, &g);
            norm(s.into_iter(), p) * factor(step, 1.0)
        }
        AmplitudeMetric::Heat => {
            let (h, step) = heat_image(&fin, line.0, line.1, opts.samples, opts.sigma);
            norm(h.into_iter(), p) * factor(step, 2.0)
        }
        AmplitudeMetric::PersistenceImage => {
            let n = opts.samples;
            let im = persistence_image_giotto(
                &fin,
                (image.0.0, image.0.1, n),
                (image.1.0, image.1.1, n),
                opts.sigma,
                ImageWeight::One,
            );
            let (_, sb) = linspace(image.0.0, image.0.1, n);
            let (_, sp) = linspace(image.1.0, image.1.1, n);
            norm(im.values.iter().flatten().copied(), p) * factor(sb * sp, 1.0)
        }
    }
}
