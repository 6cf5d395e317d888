//! Persistence entropy: the Shannon entropy of the lifetimes as a distribution.

use crate::barcode::Bar;

/// Base of the logarithm of [`entropy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum EntropyBase {
    /// log2, giotto-tda's `PersistenceEntropy` (the default).
    #[default]
    #[serde(rename = "2")]
    Two,
    /// Natural logarithm, GUDHI's `Entropy` and persim's `persistent_entropy`.
    #[serde(rename = "e")]
    E,
}

/// Persistence entropy of the finite bars: -Σ p_i log(p_i) with p_i = l_i / Σ l (l = death -
/// birth), in `base`. With `normalize`, divided by log(Σ l) in the same base (giotto-tda's
/// `normalize=True`, whose result does not depend on the base). `None` when undefined: no bar of
/// positive length (giotto-tda fills -1 there, GUDHI gives NaN), or Σ l = 1 when normalizing.
pub fn entropy(bars: &[Bar], base: EntropyBase, normalize: bool) -> Option<f64> {
    let lens: Vec<f64> = bars
        .iter()
        .filter(|b| b.death.is_finite())
        .map(|b| b.death - b.birth)
        .collect();
    let total: f64 = lens.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    // 0 - Σ rather than -Σ: a single bar gives 0, not -0
    let h: f64 = 0.0
        - lens
            .iter()
            .filter(|&&l| l > 0.0)
            .map(|&l| {
                let p = l / total;
                p * p.ln()
            })
            .sum::<f64>();
    // h is in nats: change the base by dividing by ln(base)
    let ln_base = match base {
        EntropyBase::Two => std::f64::consts::LN_2,
        EntropyBase::E => 1.0,
    };
    let h = h / ln_base;
    let h = if normalize {
        h / (total.ln() / ln_base)
    } else {
        h
    };
    h.is_finite().then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_equal_bars_carry_one_bit() {
        let b = [
            Bar::new(0.0, 1.0),
            Bar::new(2.0, 3.0),
            Bar::new(0.0, f64::INFINITY),
        ];
        assert!((entropy(&b, EntropyBase::Two, false).unwrap() - 1.0).abs() < 1e-15);
        assert!((entropy(&b, EntropyBase::E, false).unwrap() - 2f64.ln()).abs() < 1e-15);
        // Σ l = 2: normalized = 1 / log2(2)
        assert!((entropy(&b, EntropyBase::Two, true).unwrap() - 1.0).abs() < 1e-15);
        assert_eq!(entropy(&[], EntropyBase::Two, false), None);
    }
}
