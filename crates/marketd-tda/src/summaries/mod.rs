//! Summaries of persistence diagrams and distances between them, for the API, the CLI and the
//! streaming signals: Betti curves, persistence landscapes and their exact norms, silhouettes,
//! persistence images, persistence entropy, amplitudes, bottleneck and p-Wasserstein distances.
//!
//! Users compare these numbers with giotto-tda, GUDHI and persim, which disagree in places, so
//! every convention is giotto-tda's unless the caller picks another (and `docs/tda.md` says
//! how the others differ): landscapes without GUDHI's √2; the grid of a dimension runs from
//! the smallest birth to the largest finite death of that dimension's bars, `samples` points
//! inclusive (from the smallest birth to the largest birth/persistence per axis for images);
//! where that range is empty (one value) the grid ends at the largest such value over the
//! dimensions summarized, as giotto-tda's `_bin`. Infinite bars are dropped by every summary
//! and amplitude (giotto-tda never sees them: its reduced H0 drops the infinite bar, and its
//! other infinite deaths are clipped by the user beforehand); the distances match them among
//! themselves. `tests/summaries.rs` compares everything with fixtures written by
//! `scripts/reference/tda_summaries.py` from giotto-tda, persim and GUDHI.

mod amplitude;
mod curves;
mod distance;
mod entropy;
mod image;

pub use amplitude::{AmplitudeMetric, AmplitudeOptions, amplitude};
pub use curves::{
    LandscapeNorms, betti_curve, landscape, landscape_norm, landscape_norm_exact, landscape_norms,
    silhouette,
};
pub use distance::{bottleneck, wasserstein};
pub use entropy::{EntropyBase, entropy};
pub use image::{
    Image, ImageConvention, ImageWeight, heat_image, linspace, persistence_image_giotto,
    persistence_image_persim,
};

use serde_json::{Map, Value, json};

use crate::barcode::{Bar, Barcode};
use crate::error::Error;

/// Highest homology dimension a summary request may name (as diagrams may).
pub const MAX_DIMENSION: usize = 64;
/// Most grid points of a one-dimensional summary.
pub const MAX_SAMPLES: usize = 10_000;
/// Most landscape levels.
pub const MAX_LAYERS: usize = 100;
/// Most pixels along each axis of a persistence image.
pub const MAX_PIXELS: usize = 512;

/// The grid range of one dimension's bars: smallest birth and largest death of the finite bars
/// (`(0, 0)` if there are none).
pub fn sample_range(bars: &[Bar]) -> (f64, f64) {
    let mut it = bars.iter().filter(|b| b.death.is_finite()).peekable();
    if it.peek().is_none() {
        return (0.0, 0.0);
    }
    it.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), b| {
        (lo.min(b.birth).min(b.death), hi.max(b.death).max(b.birth))
    })
}

/// The (birth, persistence) ranges of one dimension's finite bars for persistence images.
fn image_range(bars: &[Bar]) -> ((f64, f64), (f64, f64)) {
    let mut r = (
        (f64::INFINITY, f64::NEG_INFINITY),
        (f64::INFINITY, f64::NEG_INFINITY),
    );
    let mut any = false;
    for b in bars.iter().filter(|b| b.death.is_finite()) {
        any = true;
        let p = b.death - b.birth;
        r = (
            (r.0.0.min(b.birth), r.0.1.max(b.birth)),
            (r.1.0.min(p), r.1.1.max(p)),
        );
    }
    if any { r } else { ((0.0, 0.0), (0.0, 0.0)) }
}

/// Grid ranges of `dims` as giotto-tda's `_bin`: [`sample_range`] per dimension, and where
/// that is a single value, up to the largest end over all of `dims` instead.
pub fn sample_ranges(barcode: &Barcode, dims: &[usize]) -> Vec<(f64, f64)> {
    let r: Vec<(f64, f64)> = dims.iter().map(|&d| sample_range(barcode.dim(d))).collect();
    let top = r.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
    r.into_iter()
        .map(|(lo, hi)| if lo == hi { (lo, top) } else { (lo, hi) })
        .collect()
}

/// (birth, persistence) ranges of `dims` for persistence images, as giotto-tda's `_bin`
/// (per axis, a single value is widened to the largest end over all of `dims`).
pub fn image_ranges(barcode: &Barcode, dims: &[usize]) -> Vec<((f64, f64), (f64, f64))> {
    let r: Vec<_> = dims.iter().map(|&d| image_range(barcode.dim(d))).collect();
    let top_b = r.iter().map(|x| x.0.1).fold(f64::NEG_INFINITY, f64::max);
    let top_p = r.iter().map(|x| x.1.1).fold(f64::NEG_INFINITY, f64::max);
    let fix = |(lo, hi): (f64, f64), top: f64| if lo == hi { (lo, top) } else { (lo, hi) };
    r.into_iter()
        .map(|(b, p)| (fix(b, top_b), fix(p, top_p)))
        .collect()
}

/// `{"layers": K (default 5), "samples": N (default 100)}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandscapeParams {
    pub layers: Option<usize>,
    pub samples: Option<usize>,
}

/// `{"power": p (default 1.0), "samples": N (default 100)}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilhouetteParams {
    pub power: Option<f64>,
    pub samples: Option<usize>,
}

/// `{"samples": N (default 100)}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplesParams {
    pub samples: Option<usize>,
}

/// Weight of a persistence image in a [`SummarySpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightKind {
    /// 1 (giotto-tda's default).
    One,
    /// persistence^`weight_power` (persim's default, power 1).
    Persistence,
}

/// `{"sigma": σ (0.1), "pixels": [w, h] ([100, 100]), "weight": "one"|"persistence" (giotto:
/// "one", persim: "persistence"), "weight_power": n (1), "convention": "giotto"|"persim"
/// ("giotto")}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageParams {
    pub sigma: Option<f64>,
    pub pixels: Option<[usize; 2]>,
    pub weight: Option<WeightKind>,
    pub weight_power: Option<f64>,
    pub convention: Option<ImageConvention>,
}

/// `{"base": "2"|"e" ("2", giotto-tda), "normalize": bool (false)}`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyParams {
    pub base: Option<EntropyBase>,
    pub normalize: Option<bool>,
}

/// `{"metric": "bottleneck"|"wasserstein"|"landscape"|"betti"|"silhouette"|"heat"|
/// "persistence_image" (default "landscape"), "p": 2.0, "samples": 100, "layers": 1,
/// "sigma": 0.1, "power": 1.0}` (giotto-tda's `Amplitude` and its defaults).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmplitudeParams {
    pub metric: Option<AmplitudeMetric>,
    pub p: Option<f64>,
    pub samples: Option<usize>,
    pub layers: Option<usize>,
    pub sigma: Option<f64>,
    pub power: Option<f64>,
}

/// Which summaries to compute, and their parameters (the API's `summaries` request).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummarySpec {
    /// Any of "landscape", "silhouette", "betti-curve", "persistence-image", "entropy",
    /// "amplitude".
    #[serde(default)]
    pub summaries: Vec<String>,
    pub landscape: Option<LandscapeParams>,
    pub silhouette: Option<SilhouetteParams>,
    pub betti_curve: Option<SamplesParams>,
    pub persistence_image: Option<ImageParams>,
    pub entropy: Option<EntropyParams>,
    pub amplitude: Option<AmplitudeParams>,
    /// Homology dimensions to summarize (default: all in the barcode).
    pub dims: Option<Vec<usize>>,
}

impl SummarySpec {
    /// Checks every name and every parameter given, whether or not its
    /// summary is asked for, without computing anything: what
    /// [`summarize`] would refuse, it refuses first, so a request is
    /// refused when it is made, never when it runs. The error names the
    /// field.
    pub fn validate(&self) -> Result<(), Error> {
        for (i, name) in self.summaries.iter().enumerate() {
            if !SUMMARIES.contains(&name.as_str()) {
                return Err(Error::spec(
                    format!("summaries[{i}]"),
                    format!(
                        "unknown summary {name:?} (expected one of {})",
                        SUMMARIES.join(", ")
                    ),
                ));
            }
        }
        if let Some(dims) = &self.dims {
            if dims.len() > 64 {
                return Err(Error::spec("dims", "at most 64 dimensions"));
            }
            if let Some(d) = dims.iter().find(|&&d| d > MAX_DIMENSION) {
                return Err(Error::spec(
                    "dims",
                    format!("dimension {d}: at most {MAX_DIMENSION}"),
                ));
            }
        }
        let given = |n: Option<usize>, field: &str| n.map(|n| samples(Some(n), field)).transpose();
        let layers = |k: Option<usize>, field: &str| match k {
            Some(k) if k == 0 || k > MAX_LAYERS => Err(Error::spec(
                field,
                format!("{k} layers: must be between 1 and {MAX_LAYERS}"),
            )),
            _ => Ok(()),
        };
        let positive_given =
            |x: Option<f64>, field: &str| x.map(|x| positive(Some(x), x, field)).transpose();
        if let Some(p) = &self.landscape {
            given(p.samples, "landscape.samples")?;
            layers(p.layers, "landscape.layers")?;
        }
        if let Some(p) = &self.silhouette {
            given(p.samples, "silhouette.samples")?;
            positive_given(p.power, "silhouette.power")?;
        }
        if let Some(p) = &self.betti_curve {
            given(p.samples, "betti_curve.samples")?;
        }
        if let Some(p) = &self.persistence_image {
            positive_given(p.sigma, "persistence_image.sigma")?;
            positive_given(p.weight_power, "persistence_image.weight_power")?;
            if let Some([w, h]) = p.pixels
                && (w == 0 || h == 0 || w > MAX_PIXELS || h > MAX_PIXELS)
            {
                return Err(Error::spec(
                    "persistence_image.pixels",
                    format!("{w}x{h} pixels: each side must be between 1 and {MAX_PIXELS}"),
                ));
            }
        }
        if let Some(p) = &self.amplitude {
            if let Some(x) = p.p {
                order(Some(x), "amplitude.p")?;
            }
            given(p.samples, "amplitude.samples")?;
            layers(p.layers, "amplitude.layers")?;
            positive_given(p.sigma, "amplitude.sigma")?;
            positive_given(p.power, "amplitude.power")?;
            if matches!(
                p.metric,
                Some(AmplitudeMetric::Heat | AmplitudeMetric::PersistenceImage)
            ) && let Some(n) = p.samples
                && n > MAX_PIXELS
            {
                return Err(Error::spec(
                    "amplitude.samples",
                    format!("{n} samples: images take at most {MAX_PIXELS} per side"),
                ));
            }
        }
        Ok(())
    }
}

/// The summary names of [`SummarySpec::summaries`].
pub const SUMMARIES: [&str; 6] = [
    "landscape",
    "silhouette",
    "betti-curve",
    "persistence-image",
    "entropy",
    "amplitude",
];

fn samples(v: Option<usize>, field: &str) -> Result<usize, Error> {
    let n = v.unwrap_or(100);
    if n == 0 || n > MAX_SAMPLES {
        return Err(Error::spec(
            field,
            format!("{n} samples: must be between 1 and {MAX_SAMPLES}"),
        ));
    }
    Ok(n)
}

fn positive(v: Option<f64>, default: f64, field: &str) -> Result<f64, Error> {
    let x = v.unwrap_or(default);
    if !(x.is_finite() && x > 0.0) {
        return Err(Error::spec(
            field,
            format!("{x} must be positive and finite"),
        ));
    }
    Ok(x)
}

fn order(v: Option<f64>, field: &str) -> Result<f64, Error> {
    let p = v.unwrap_or(2.0);
    if p.is_nan() || p < 1.0 {
        return Err(Error::spec(field, format!("order {p} must be at least 1")));
    }
    Ok(p)
}

/// A number for JSON (non-finite values become null).
fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn nums(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|&x| num(x)).collect())
}

/// Computes the summaries `spec` asks for on `barcode`: a map from the summary name ('-'
/// replaced by '_') to a map from the dimension (as a string) to its value, e.g.
/// `{"landscape": {"1": {"grid": [..N], "values": [[..N] x K], "norms": {"l1", "l2",
/// "linf"}}}, "entropy": {"0": x}, "betti_curve": {"1": {"grid", "values"}},
/// "silhouette": {"1": {"grid", "values"}}, "persistence_image": {"1": {"birth",
/// "persistence", "values": [[..w] x h], "convention"}}, "amplitude": {"1": x}}`. The landscape
/// norms are the exact norms of the whole landscape (all levels). Entropy is null where
/// undefined (no bar of positive length). Unknown names or bad parameters give
/// [`Error::Spec`] naming the field.
pub fn summarize(barcode: &Barcode, spec: &SummarySpec) -> Result<Map<String, Value>, Error> {
    spec.validate()?;
    let dims: Vec<usize> = match &spec.dims {
        Some(d) => {
            if d.len() > 64 {
                return Err(Error::spec("dims", "at most 64 dimensions"));
            }
            let mut d = d.clone();
            d.sort_unstable();
            d.dedup();
            d
        }
        None => (0..barcode.num_dims()).collect(),
    };
    let mut out = Map::new();
    for (i, name) in spec.summaries.iter().enumerate() {
        let field = format!("summaries[{i}]");
        let key = name.replace('-', "_");
        let per_dim: Map<String, Value> = match name.as_str() {
            "landscape" => {
                let p = spec.landscape.clone().unwrap_or_default();
                let n = samples(p.samples, "landscape.samples")?;
                let k = p.layers.unwrap_or(5);
                if k == 0 || k > MAX_LAYERS {
                    return Err(Error::spec(
                        "landscape.layers",
                        format!("{k} layers: must be between 1 and {MAX_LAYERS}"),
                    ));
                }
                let ranges = sample_ranges(barcode, &dims);
                dims.iter()
                    .zip(ranges)
                    .map(|(&d, (lo, hi))| {
                        let (g, _) = linspace(lo, hi, n);
                        let bars = barcode.dim(d);
                        let l = landscape(bars, k, &g);
                        let norms = landscape_norms(bars, None);
                        let v = json!({
                            "grid": nums(&g),
                            "values": Value::Array(l.iter().map(|r| nums(r)).collect()),
                            "norms": {"l1": num(norms.l1), "l2": num(norms.l2),
                                      "linf": num(norms.linf)},
                        });
                        (d.to_string(), v)
                    })
                    .collect()
            }
            "silhouette" => {
                let p = spec.silhouette.clone().unwrap_or_default();
                let n = samples(p.samples, "silhouette.samples")?;
                let power = positive(p.power, 1.0, "silhouette.power")?;
                let ranges = sample_ranges(barcode, &dims);
                dims.iter()
                    .zip(ranges)
                    .map(|(&d, (lo, hi))| {
                        let (g, _) = linspace(lo, hi, n);
                        let s = silhouette(barcode.dim(d), power, &g);
                        (d.to_string(), json!({"grid": nums(&g), "values": nums(&s)}))
                    })
                    .collect()
            }
            "betti-curve" => {
                let p = spec.betti_curve.clone().unwrap_or_default();
                let n = samples(p.samples, "betti_curve.samples")?;
                let ranges = sample_ranges(barcode, &dims);
                dims.iter()
                    .zip(ranges)
                    .map(|(&d, (lo, hi))| {
                        let (g, _) = linspace(lo, hi, n);
                        let fin: Vec<Bar> = finite(barcode.dim(d));
                        let b = betti_curve(&fin, &g);
                        (d.to_string(), json!({"grid": nums(&g), "values": b}))
                    })
                    .collect()
            }
            "persistence-image" => {
                let p = spec.persistence_image.clone().unwrap_or_default();
                let sigma = positive(p.sigma, 0.1, "persistence_image.sigma")?;
                let [w, h] = p.pixels.unwrap_or([100, 100]);
                if w == 0 || h == 0 || w > MAX_PIXELS || h > MAX_PIXELS {
                    return Err(Error::spec(
                        "persistence_image.pixels",
                        format!("{w}x{h} pixels: each side must be between 1 and {MAX_PIXELS}"),
                    ));
                }
                let conv = p.convention.unwrap_or_default();
                let power = positive(p.weight_power, 1.0, "persistence_image.weight_power")?;
                let kind = p.weight.unwrap_or(match conv {
                    ImageConvention::Giotto => WeightKind::One,
                    ImageConvention::Persim => WeightKind::Persistence,
                });
                let weight = match kind {
                    WeightKind::One => ImageWeight::One,
                    WeightKind::Persistence => ImageWeight::Persistence(power),
                };
                let ranges = image_ranges(barcode, &dims);
                dims.iter()
                    .zip(ranges)
                    .map(|(&d, (rb, rp))| {
                        let bars = barcode.dim(d);
                        let im = match conv {
                            ImageConvention::Giotto => persistence_image_giotto(
                                bars,
                                (rb.0, rb.1, w),
                                (rp.0, rp.1, h),
                                sigma,
                                weight,
                            ),
                            ImageConvention::Persim => {
                                let (eb, _) = linspace(rb.0, rb.1, w + 1);
                                let (ep, _) = linspace(rp.0, rp.1, h + 1);
                                persistence_image_persim(bars, &eb, &ep, sigma, weight)
                            }
                        };
                        let v = json!({
                            "birth": nums(&im.birth),
                            "persistence": nums(&im.persistence),
                            "values": Value::Array(im.values.iter().map(|r| nums(r)).collect()),
                            "convention": conv,
                        });
                        (d.to_string(), v)
                    })
                    .collect()
            }
            "entropy" => {
                let p = spec.entropy.clone().unwrap_or_default();
                let base = p.base.unwrap_or_default();
                let normalize = p.normalize.unwrap_or(false);
                dims.iter()
                    .map(|&d| {
                        let e = entropy(barcode.dim(d), base, normalize);
                        (d.to_string(), e.map_or(Value::Null, num))
                    })
                    .collect()
            }
            "amplitude" => {
                let p = spec.amplitude.clone().unwrap_or_default();
                let metric = p.metric.unwrap_or(AmplitudeMetric::Landscape);
                let d0 = AmplitudeOptions::default();
                let opts = AmplitudeOptions {
                    p: order(p.p, "amplitude.p")?,
                    samples: samples(p.samples, "amplitude.samples")?,
                    layers: p.layers.unwrap_or(d0.layers),
                    sigma: positive(p.sigma, d0.sigma, "amplitude.sigma")?,
                    power: positive(p.power, d0.power, "amplitude.power")?,
                };
                if opts.layers == 0 || opts.layers > MAX_LAYERS {
                    return Err(Error::spec(
                        "amplitude.layers",
                        format!("{} layers: must be between 1 and {MAX_LAYERS}", opts.layers),
                    ));
                }
                if matches!(
                    metric,
                    AmplitudeMetric::Heat | AmplitudeMetric::PersistenceImage
                ) && opts.samples > MAX_PIXELS
                {
                    return Err(Error::spec(
                        "amplitude.samples",
                        format!(
                            "{} samples: images take at most {MAX_PIXELS} per side",
                            opts.samples
                        ),
                    ));
                }
                let lines = sample_ranges(barcode, &dims);
                let images = image_ranges(barcode, &dims);
                dims.iter()
                    .zip(lines.into_iter().zip(images))
                    .map(|(&d, (line, image))| {
                        let a = amplitude(barcode.dim(d), metric, &opts, line, image);
                        (d.to_string(), num(a))
                    })
                    .collect()
            }
            other => {
                return Err(Error::spec(
                    field,
                    format!(
                        "unknown summary {other:?} (expected one of {})",
                        SUMMARIES.join(", ")
                    ),
                ));
            }
        };
        out.insert(key, Value::Object(per_dim));
    }
    Ok(out)
}

fn finite(bars: &[Bar]) -> Vec<Bar> {
    bars.iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect()
}

/// A distance between diagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistanceKind {
    Bottleneck,
    Wasserstein,
}

/// Distance between the diagrams `a` and `b` (ground metric L∞, essential bars matched among
/// themselves: infinite if their numbers differ): bottleneck (`p` ignored) or p-Wasserstein
/// (p >= 1, finite).
pub fn distance(a: &[Bar], b: &[Bar], kind: DistanceKind, p: f64) -> Result<f64, Error> {
    if a.iter()
        .chain(b)
        .any(|x| x.birth.is_nan() || x.death.is_nan())
    {
        return Err(Error::spec("diagrams", "NaN in a diagram"));
    }
    match kind {
        DistanceKind::Bottleneck => Ok(bottleneck(a, b)),
        DistanceKind::Wasserstein => {
            if !(p.is_finite() && p >= 1.0) {
                return Err(Error::spec(
                    "p",
                    format!("order {p} must be finite and at least 1"),
                ));
            }
            Ok(wasserstein(a, b, p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn barcode() -> Barcode {
        Barcode {
            dims: vec![
                vec![
                    Bar::new(0.0, 1.0),
                    Bar::new(0.0, 2.0),
                    Bar::new(0.0, f64::INFINITY),
                ],
                vec![Bar::new(1.0, 3.0)],
            ],
        }
    }

    #[test]
    fn spec_from_json_and_output_shape() {
        let spec: SummarySpec = serde_json::from_value(json!({
            "summaries": ["landscape", "entropy", "betti-curve"],
            "landscape": {"layers": 2, "samples": 5},
            "betti_curve": {"samples": 3},
            "entropy": {"base": "e"},
        }))
        .unwrap();
        let out = summarize(&barcode(), &spec).unwrap();
        let l1 = &out["landscape"]["1"];
        assert_eq!(l1["grid"], json!([1.0, 1.5, 2.0, 2.5, 3.0]));
        assert_eq!(
            l1["values"],
            json!([[0.0, 0.5, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
        );
        assert_eq!(l1["norms"]["l1"], json!(1.0));
        // H0 grid from 0 to the largest finite death, the infinite bar dropped
        assert_eq!(out["betti_curve"]["0"]["grid"], json!([0.0, 1.0, 2.0]));
        assert_eq!(out["betti_curve"]["0"]["values"], json!([2, 1, 0]));
        let e0 = out["entropy"]["0"].as_f64().unwrap();
        let (p, q) = (1.0f64 / 3.0, 2.0f64 / 3.0);
        assert!((e0 - -(p * p.ln() + q * q.ln())).abs() < 1e-15);
        assert_eq!(out["entropy"]["1"], json!(0.0));
    }

    #[test]
    fn errors_name_the_field() {
        let bad = |v: Value| {
            let spec: SummarySpec = serde_json::from_value(v).unwrap();
            summarize(&barcode(), &spec).unwrap_err().to_string()
        };
        assert_eq!(
            bad(json!({"summaries": ["landscape", "nope"]})),
            "summaries[1]: unknown summary \"nope\" (expected one of landscape, silhouette, \
             betti-curve, persistence-image, entropy, amplitude)"
        );
        assert!(
            bad(json!({"summaries": ["landscape"], "landscape": {"samples": 10001}}))
                .starts_with("landscape.samples: 10001 samples")
        );
        assert!(
            bad(json!({"summaries": ["landscape"], "landscape": {"layers": 101}}))
                .starts_with("landscape.layers")
        );
        assert!(
            bad(json!({"summaries": ["persistence-image"],
                       "persistence_image": {"pixels": [513, 2]}}))
            .starts_with("persistence_image.pixels")
        );
        assert!(
            bad(json!({"summaries": ["amplitude"], "amplitude": {"p": 0.5}}))
                .starts_with("amplitude.p")
        );
        assert!(
            serde_json::from_value::<SummarySpec>(json!({"landscape": {"levels": 3}})).is_err()
        );
        assert!(
            serde_json::from_value::<SummarySpec>(json!({"amplitude": {"metric": "nope"}}))
                .is_err()
        );
        assert!(distance(&[], &[], DistanceKind::Wasserstein, 0.5).is_err());
        assert_eq!(
            distance(&[], &[Bar::new(0.0, 2.0)], DistanceKind::Wasserstein, 2.0).unwrap(),
            1.0
        );
    }
}
