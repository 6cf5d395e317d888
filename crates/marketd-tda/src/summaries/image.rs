//! Persistence images (giotto-tda's binned-and-blurred ones, or persim's pixel-integrated
//! ones) and giotto-tda's heat kernel images, which only feed the `heat` amplitude.
//!
//! The references disagree on what a pixel holds. giotto-tda counts the points per pixel of a
//! grid of sample values, multiplies by the weight at the pixel's persistence, blurs with
//! `scipy.ndimage.gaussian_filter` (truncated at 4σ, zero outside) and divides by the pixel
//! area; persim integrates each point's Gaussian over each pixel (differences of normal CDFs)
//! times the weight at the point; GUDHI evaluates the Gaussians at the pixel centres. marketd
//! computes the first two exactly as their libraries do (tests compare with both), giotto's by
//! default.

use crate::barcode::Bar;

/// Which library's definition of a persistence image to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageConvention {
    /// giotto-tda's `PersistenceImage`: bin, weight, blur, divide by the pixel area; the sample
    /// values run from the smallest to the largest birth (persistence), pixels inclusive.
    #[default]
    Giotto,
    /// persim's `PersistenceImager`: each point's Gaussian integrated over each pixel, times
    /// the weight at the point; pixels evenly split the same ranges.
    Persim,
}

/// Weight of a point (or of a pixel, for giotto) as a function of its persistence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageWeight {
    /// 1 everywhere (giotto-tda's default).
    One,
    /// persistence^n (persim's default is n = 1).
    Persistence(f64),
}

impl ImageWeight {
    #[inline]
    fn at(self, pers: f64) -> f64 {
        match self {
            ImageWeight::One => 1.0,
            ImageWeight::Persistence(n) => pers.powf(n),
        }
    }
}

/// A persistence image: `values[r][c]` is the pixel of persistence index `r` (row 0 = lowest
/// persistence) and birth index `c`; `birth` and `persistence` are the sample values (giotto)
/// or pixel centres (persim) along each axis.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Image {
    pub birth: Vec<f64>,
    pub persistence: Vec<f64>,
    pub values: Vec<Vec<f64>>,
}

/// `n` values from `lo` to `hi` inclusive, as `numpy.linspace` (i * step + lo, the last one
/// exactly `hi`), and the step (0 if n < 2).
pub fn linspace(lo: f64, hi: f64, n: usize) -> (Vec<f64>, f64) {
    if n < 2 {
        return (vec![lo; n], 0.0);
    }
    let step = (hi - lo) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + lo).collect();
    v[n - 1] = hi;
    (v, step)
}

/// scipy's `gaussian_filter1d` kernel: radius int(4σ + 0.5), normalised to sum 1; only the
/// taps within `max_radius` are returned (the image is no wider), the sum is over all.
fn gaussian_kernel(sigma: f64, max_radius: usize) -> Vec<f64> {
    let radius = (4.0 * sigma + 0.5) as usize;
    let s2 = sigma * sigma;
    let phi = |x: f64| (-0.5 / s2 * x * x).exp();
    let total: f64 = if radius <= 1_000_000 {
        (-(radius as i64)..=radius as i64)
            .map(|x| phi(x as f64))
            .sum()
    } else {
        sigma * (2.0 * std::f64::consts::PI).sqrt()
    };
    let r = radius.min(max_radius);
    (-(r as i64)..=r as i64)
        .map(|x| phi(x as f64) / total)
        .collect()
}

/// Blurs `img` (`nx` rows of `ny`) along both axes as `scipy.ndimage.gaussian_filter` with
/// `mode="constant"` (σ `sx` along axis 0, `sy` along axis 1, in pixels). The binned image is
/// sparse: the rows are blurred first, skipping the empty ones, then the columns, as sums of
/// whole rows (vectorizable); the result equals scipy's up to rounding.
fn gaussian_filter(img: &mut [f64], nx: usize, ny: usize, sx: f64, sy: f64) {
    let nonzero: Vec<bool> = img
        .chunks(ny.max(1))
        .map(|r| r.iter().any(|&v| v != 0.0))
        .collect();
    if sy > 1e-15 {
        let k = gaussian_kernel(sy, ny);
        let r = (k.len() / 2) as isize;
        let mut row = vec![0.0; ny];
        for i in (0..nx).filter(|&i| nonzero[i]) {
            row.iter_mut().for_each(|x| *x = 0.0);
            let src = &img[i * ny..(i + 1) * ny];
            for (t, &w) in k.iter().enumerate() {
                // row[j] += w * src[j + off] wherever both are inside
                let off = t as isize - r;
                let j0 = (-off).max(0) as usize;
                let j1 = (ny as isize - off).min(ny as isize).max(0) as usize;
                if j0 >= j1 {
                    continue;
                }
                let s0 = (j0 as isize + off) as usize;
                for (o, &v) in row[j0..j1].iter_mut().zip(&src[s0..s0 + (j1 - j0)]) {
                    *o += w * v;
                }
            }
            img[i * ny..(i + 1) * ny].copy_from_slice(&row);
        }
    }
    if sx > 1e-15 {
        let k = gaussian_kernel(sx, nx);
        let r = (k.len() / 2) as isize;
        let mut out = vec![0.0; img.len()];
        for i in 0..nx {
            let orow = &mut out[i * ny..(i + 1) * ny];
            for (t, &w) in k.iter().enumerate() {
                let s = i as isize + t as isize - r;
                if s < 0 || s >= nx as isize || !nonzero[s as usize] {
                    continue;
                }
                let s = s as usize;
                for (o, &v) in orow.iter_mut().zip(&img[s * ny..(s + 1) * ny]) {
                    *o += w * v;
                }
            }
        }
        img.copy_from_slice(&out);
    }
}

/// giotto-tda's persistence image of the finite bars on the sample values `birth` (from the
/// smallest to the largest birth) × `pers` (smallest to largest persistence), each a
/// [`linspace`]: points are clipped to the ranges, binned (pixel = int((x - first) / step)),
/// multiplied by the weight at the pixel's persistence sample, blurred with σ / step pixels,
/// divided by the pixel area. All zero if either step is 0. Zero-persistence points are skipped.
pub fn persistence_image_giotto(
    bars: &[Bar],
    birth: (f64, f64, usize),
    pers: (f64, f64, usize),
    sigma: f64,
    weight: ImageWeight,
) -> Image {
    let (bs, sb) = linspace(birth.0, birth.1, birth.2);
    let (ps, sp) = linspace(pers.0, pers.1, pers.2);
    let (nx, ny) = (bs.len(), ps.len());
    let mut img = vec![0.0; nx * ny];
    if sb != 0.0 && sp != 0.0 && nx > 0 && ny > 0 {
        for b in bars.iter().filter(|b| b.death.is_finite()) {
            let x = b.birth.clamp(bs[0].min(bs[nx - 1]), bs[0].max(bs[nx - 1]));
            let y = (b.death - b.birth).clamp(ps[0].min(ps[ny - 1]), ps[0].max(ps[ny - 1]));
            if y == 0.0 {
                continue;
            }
            let i = ((x - bs[0]) / sb) as usize;
            let j = ((y - ps[0]) / sp) as usize;
            if i < nx && j < ny {
                img[i * ny + j] += 1.0;
            }
        }
        for i in 0..nx {
            for (j, &p) in ps.iter().enumerate() {
                img[i * ny + j] *= weight.at(p);
            }
        }
        gaussian_filter(&mut img, nx, ny, sigma / sb, sigma / sp);
        let area = sb * sp;
        img.iter_mut().for_each(|v| *v /= area);
    }
    let values = (0..ny)
        .map(|j| (0..nx).map(|i| img[i * ny + j]).collect())
        .collect();
    Image {
        birth: bs,
        persistence: ps,
        values,
    }
}

/// erfc(x) to about 1e-15 relative: a series without cancellation below 3, a continued
/// fraction (Lentz) above.
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 3.0 {
        // erf(x) = 2/√π e^{-x²} Σ 2^n x^{2n+1} / (1·3···(2n+1))
        let mut term = x;
        let mut sum = x;
        let x2 = x * x;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= 2.0 * x2 / (2.0 * n + 1.0);
            sum += term;
            if term <= 1e-17 * sum {
                break;
            }
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x2).exp() * sum
    } else {
        // erfc(x) = e^{-x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
        let tiny = 1e-300;
        let mut f = x;
        let mut c = x;
        let mut d = 0.0;
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = x + a * d;
            d = if d.abs() < tiny { tiny } else { d };
            c = x + a / c;
            c = if c.abs() < tiny { tiny } else { c };
            d = 1.0 / d;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x * x).exp() / std::f64::consts::PI.sqrt() / f
    }
}

/// Standard normal CDF.
#[inline]
pub(crate) fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// persim's persistence image of the finite bars on pixels with edges `birth_edges` ×
/// `pers_edges` (increasing): each point (b, p) adds weight(p) times the mass of an isotropic
/// Gaussian of standard deviation `sigma` centred on it over the pixel.
pub fn persistence_image_persim(
    bars: &[Bar],
    birth_edges: &[f64],
    pers_edges: &[f64],
    sigma: f64,
    weight: ImageWeight,
) -> Image {
    let nx = birth_edges.len().saturating_sub(1);
    let ny = pers_edges.len().saturating_sub(1);
    let mut img = vec![0.0; nx * ny];
    let mut cb = vec![0.0; nx + 1];
    let mut cp = vec![0.0; ny + 1];
    for b in bars.iter().filter(|b| b.death.is_finite()) {
        let p = b.death - b.birth;
        let w = weight.at(p);
        if w == 0.0 {
            continue;
        }
        for (c, &e) in cb.iter_mut().zip(birth_edges) {
            *c = norm_cdf((e - b.birth) / sigma);
        }
        for (c, &e) in cp.iter_mut().zip(pers_edges) {
            *c = norm_cdf((e - p) / sigma);
        }
        for j in 0..ny {
            let fy = w * (cp[j + 1] - cp[j]);
            for i in 0..nx {
                img[j * nx + i] += fy * (cb[i + 1] - cb[i]);
            }
        }
    }
    let centre = |e: &[f64]| -> Vec<f64> { e.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect() };
    Image {
        birth: centre(birth_edges),
        persistence: centre(pers_edges),
        values: img.chunks(nx.max(1)).take(ny).map(|r| r.to_vec()).collect(),
    }
}

/// giotto-tda's heat kernel image (only its norm is used, by the `heat` amplitude): on the
/// `n`-point grid from `lo` to `hi`, points (b, d) clipped and binned in both coordinates,
/// blurred with σ / step pixels (at most 10⁵ n), minus the transpose, divided by step².
/// Returns the image (row-major n × n) and the step.
pub fn heat_image(bars: &[Bar], lo: f64, hi: f64, n: usize, sigma: f64) -> (Vec<f64>, f64) {
    let (s, step) = linspace(lo, hi, n);
    let mut img = vec![0.0; n * n];
    if step == 0.0 || n == 0 {
        return (img, step);
    }
    let (first, last) = (s[0], s[n - 1]);
    for b in bars.iter().filter(|b| b.death.is_finite()) {
        let x = b.birth.max(first).min(last);
        let y = b.death.max(first).min(last);
        if x == y {
            continue;
        }
        let i = ((x - first) / step) as usize;
        let j = ((y - first) / step) as usize;
        if i < n && j < n {
            img[i * n + j] += 1.0;
        }
    }
    let sp = (sigma / step).min(1e5 * n as f64);
    gaussian_filter(&mut img, n, n, sp, sp);
    let t: Vec<f64> = (0..n * n).map(|k| img[(k % n) * n + k / n]).collect();
    let s2 = step * step;
    for (v, tv) in img.iter_mut().zip(&t) {
        *v = (*v - tv) / s2;
    }
    (img, step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf() {
        // values of scipy.special.ndtr
        assert!((norm_cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((norm_cdf(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((norm_cdf(-2.5) - 0.006_209_665_325_776_132).abs() < 1e-15);
        assert!((norm_cdf(-5.0) - 2.866_515_718_791_939e-7).abs() < 1e-20);
        assert!((norm_cdf(3.0) - 0.998_650_101_968_369_9).abs() < 1e-15);
    }

    #[test]
    fn persim_image_sums_to_weighted_mass() {
        // one point far inside a wide range: the image holds (nearly) all its mass
        let bars = [Bar::new(0.0, 2.0)];
        let (e, _) = linspace(-10.0, 10.0, 41);
        let im = persistence_image_persim(&bars, &e, &e, 0.5, ImageWeight::Persistence(1.0));
        let total: f64 = im.values.iter().flatten().sum();
        assert!((total - 2.0).abs() < 1e-9, "{total}");
        assert_eq!(im.values.len(), 40);
        assert_eq!(im.birth[0], -9.75);
    }
}
