//! Barcodes, representative cocycles and their text (Ripser) and JSON forms.

use serde::{Deserialize, Serialize};

/// A persistence interval `[birth, death)`; `death` is `f64::INFINITY` for essential classes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub birth: f64,
    #[serde(with = "death_serde")]
    pub death: f64,
}

mod death_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(d: &f64, s: S) -> Result<S::Ok, S::Error> {
        if d.is_finite() {
            s.serialize_f64(*d)
        } else {
            s.serialize_none()
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

impl Bar {
    pub fn new(birth: f64, death: f64) -> Self {
        Bar { birth, death }
    }
    /// death - birth (infinite for essential bars).
    pub fn persistence(&self) -> f64 {
        self.death - self.birth
    }
    pub fn is_infinite(&self) -> bool {
        !self.death.is_finite()
    }
}

/// Barcodes per dimension, bars in Ripser's order of discovery.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Barcode {
    pub dims: Vec<Vec<Bar>>,
}

/// A representative cocycle: simplices (vertices in decreasing order) with coefficients in Z/p.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cocycle {
    pub simplices: Vec<(Vec<u32>, u32)>,
}

impl Barcode {
    pub(crate) fn from_raw(bars: &[Vec<(f32, f32)>]) -> Self {
        Barcode {
            dims: bars
                .iter()
                .map(|v| {
                    v.iter()
                        .map(|&(b, d)| Bar::new(b as f64, d as f64))
                        .collect()
                })
                .collect(),
        }
    }

    /// Bars of dimension `k` (empty if not computed).
    pub fn dim(&self, k: usize) -> &[Bar] {
        self.dims.get(k).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// Highest dimension computed + 1.
    pub fn num_dims(&self) -> usize {
        self.dims.len()
    }

    /// Ripser's text form of the intervals ("persistence intervals in dim k:" then " [b,d)").
    pub fn to_ripser_text(&self) -> String {
        let mut s = String::new();
        for (k, bars) in self.dims.iter().enumerate() {
            s.push_str(&format!("persistence intervals in dim {k}:\n"));
            for b in bars {
                if b.death.is_finite() {
                    s.push_str(&format!(" [{},{})\n", format_g(b.birth), format_g(b.death)));
                } else {
                    s.push_str(&format!(" [{}, )\n", format_g(b.birth)));
                }
            }
        }
        s
    }

    /// Parses Ripser's text output (header lines and anything else are ignored).
    pub fn from_ripser_text(text: &str) -> Result<Self, crate::error::Error> {
        let mut dims: Vec<Vec<Bar>> = Vec::new();
        for (k, line) in text.lines().enumerate() {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("persistence intervals in dim ") {
                let d: usize = rest.trim_end_matches(':').trim().parse().map_err(|_| {
                    crate::error::Error::parse(k + 1, 1, format!("bad dimension line {t:?}"))
                })?;
                while dims.len() <= d {
                    dims.push(Vec::new());
                }
                continue;
            }
            if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(')')) {
                let (b, d) = inner.split_once(',').ok_or_else(|| {
                    crate::error::Error::parse(k + 1, 1, format!("bad interval {t:?}"))
                })?;
                let birth: f64 = b.trim().parse().map_err(|_| {
                    crate::error::Error::parse(k + 1, 2, format!("bad birth {b:?}"))
                })?;
                let death: f64 = if d.trim().is_empty() {
                    f64::INFINITY
                } else {
                    d.trim().parse().map_err(|_| {
                        crate::error::Error::parse(k + 1, 2, format!("bad death {d:?}"))
                    })?
                };
                let cur = dims.last_mut().ok_or_else(|| {
                    crate::error::Error::parse(
                        k + 1,
                        1,
                        "interval before any dimension line".into(),
                    )
                })?;
                cur.push(Bar::new(birth, death));
            }
        }
        Ok(Barcode { dims })
    }

    /// JSON form: `{"dims":[[{"birth":..,"death":..|null},..],..]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Formats like C++ `std::cout << x` with the default precision 6 (printf `%g`).
pub fn format_g(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{:.5e}", x);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let m = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, x)).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_like_printf_g() {
        assert_eq!(format_g(0.000877363), "0.000877363");
        assert_eq!(format_g(1.56121), "1.56121");
        assert_eq!(format_g(2.0), "2");
        assert_eq!(format_g(120.0), "120");
        assert_eq!(format_g(1234567.0), "1.23457e+06");
        assert_eq!(format_g(0.00001234), "1.234e-05");
        assert_eq!(format_g(999999.5), "1e+06");
        assert_eq!(format_g(0.1), "0.1");
    }

    #[test]
    fn text_roundtrip() {
        let b = Barcode {
            dims: vec![
                vec![Bar::new(0.0, 1.0), Bar::new(0.0, f64::INFINITY)],
                vec![Bar::new(0.5, 0.75)],
            ],
        };
        let t = b.to_ripser_text();
        assert_eq!(Barcode::from_ripser_text(&t).unwrap(), b);
        let j = b.to_json();
        let back: Barcode = serde_json::from_str(&j).unwrap();
        assert_eq!(back, b);
    }
}
