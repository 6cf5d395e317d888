//! `[tda.stream]`: the baskets whose topological signal is computed, and
//! their alarm parameters. Checked once at load ([`TdaStreamConfig::validate`]).

use marketd_model::{Interval, Symbol};
use serde::{Deserialize, Serialize};

/// `[tda.stream]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdaStreamConfig {
    /// `[[tda.stream.baskets]]`; none by default (nothing runs).
    pub baskets: Vec<BasketConfig>,
    /// Time a basket waits after it starts following `bars` before it reads
    /// the stored bars, so that bars published just before are written by
    /// the bar sink first (at least twice `writer.flush_interval_ms`).
    pub settle_ms: u64,
    /// Preceding windows the robust z-score is computed against.
    pub zscore_history: usize,
}

impl Default for TdaStreamConfig {
    fn default() -> Self {
        TdaStreamConfig {
            baskets: Vec::new(),
            settle_ms: 500,
            zscore_history: 100,
        }
    }
}

/// Delay embedding of one symbol's log returns: point `j` is
/// `(r_j, r_{j+delay}, …, r_{j+(dimension-1)·delay})`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embedding {
    pub dimension: usize,
    pub delay: usize,
}

/// One `[[tda.stream.baskets]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasketConfig {
    /// Name of the basket: the key of its signals (1-64 of `A-Z a-z 0-9 . _ -`).
    pub name: String,
    /// Symbols whose closed bars make the basket's points (one point in
    /// R^n per time step for n symbols), or one symbol with `embedding`.
    pub symbols: Vec<Symbol>,
    /// Interval of the bars used (one the aggregator computes).
    #[serde(default = "default_interval")]
    pub interval: Interval,
    /// Only bars of this source (`simulated`, `binance`, ...); unset: bars of
    /// any source (set it when a symbol arrives from several).
    #[serde(default)]
    pub source: Option<String>,
    /// Bars per window (a window of `window` bars has `window - 1` returns).
    pub window: usize,
    /// Bars between two windows: a window ends on every bar whose start is
    /// a multiple of `step × interval` since the epoch.
    #[serde(default = "default_step")]
    pub step: usize,
    /// Delay embedding of the one symbol's returns instead of R^n points.
    #[serde(default)]
    pub embedding: Option<Embedding>,
    /// Robust z-score at or above which the alarm is raised.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Robust z-score below which a raised alarm clears.
    #[serde(default = "default_hysteresis")]
    pub hysteresis: f64,
    /// Windows after a raise during which no new raise happens.
    #[serde(default = "default_cooldown")]
    pub cooldown: u32,
    /// Preceding windows needed before a z-score exists.
    #[serde(default = "default_min_history")]
    pub min_history: usize,
}

fn default_interval() -> Interval {
    Interval::M1
}
fn default_step() -> usize {
    1
}
fn default_threshold() -> f64 {
    3.0
}
fn default_hysteresis() -> f64 {
    1.5
}
fn default_cooldown() -> u32 {
    10
}
fn default_min_history() -> usize {
    20
}

/// Fewest points a window's cloud may have.
pub const MIN_POINTS: usize = 3;
/// Most points a window's cloud may have (one computation per window).
pub const MAX_POINTS: usize = 1_000;

impl BasketConfig {
    /// A basket with the defaults for everything but its name, symbols and window.
    pub fn new(name: &str, symbols: Vec<Symbol>, interval: Interval, window: usize) -> Self {
        BasketConfig {
            name: name.into(),
            symbols,
            interval,
            source: None,
            window,
            step: default_step(),
            embedding: None,
            threshold: default_threshold(),
            hysteresis: default_hysteresis(),
            cooldown: default_cooldown(),
            min_history: default_min_history(),
        }
    }

    /// Points in each window's cloud.
    pub fn points(&self) -> usize {
        let returns = self.window.saturating_sub(1);
        match self.embedding {
            Some(e) => returns.saturating_sub(e.dimension.saturating_sub(1) * e.delay),
            None => returns,
        }
    }

    /// Coordinates of each point.
    pub fn dimension(&self) -> usize {
        self.embedding.map_or(self.symbols.len(), |e| e.dimension)
    }

    fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let at = format!("tda.stream.baskets[{name}]");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "tda.stream.baskets: name {name:?} must be 1 to 64 of A-Z a-z 0-9 . _ -"
            ));
        }
        if self.symbols.is_empty() {
            return Err(format!("{at}.symbols must name at least one symbol"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.symbols.iter().find(|s| !seen.insert(s.as_str())) {
            return Err(format!("{at}.symbols lists {dup} twice"));
        }
        if self.window < 3 {
            return Err(format!("{at}.window must be at least 3 bars"));
        }
        if self.step == 0 {
            return Err(format!("{at}.step must be at least 1 bar"));
        }
        match self.embedding {
            Some(e) => {
                if self.symbols.len() != 1 {
                    return Err(format!("{at}: an embedding takes exactly one symbol"));
                }
                if e.dimension < 2 || e.delay == 0 {
                    return Err(format!(
                        "{at}.embedding needs dimension at least 2 and delay at least 1"
                    ));
                }
            }
            None if self.symbols.len() < 2 => {
                return Err(format!(
                    "{at}: one symbol needs an embedding (dimension, delay); a point cloud needs at least two symbols"
                ));
            }
            None => {}
        }
        let points = self.points();
        if !(MIN_POINTS..=MAX_POINTS).contains(&points) {
            return Err(format!(
                "{at}: windows would have {points} points; {MIN_POINTS} to {MAX_POINTS} are allowed (window - 1 returns, less (dimension-1)·delay when embedded)"
            ));
        }
        if !self.threshold.is_finite() || self.threshold <= 0.0 {
            return Err(format!("{at}.threshold must be a positive number"));
        }
        if !self.hysteresis.is_finite() || self.hysteresis >= self.threshold {
            return Err(format!(
                "{at}.hysteresis must be a number below threshold ({})",
                self.threshold
            ));
        }
        if self.min_history < 3 {
            return Err(format!("{at}.min_history must be at least 3 windows"));
        }
        if let Some(source) = &self.source
            && (source.is_empty()
                || source.len() > 64
                || !source.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(format!(
                "{at}.source must be 1 to 64 visible ASCII characters"
            ));
        }
        Ok(())
    }
}

impl TdaStreamConfig {
    /// Checks every basket, and that names are unique, `min_history` fits
    /// in the z-score history and each interval is one of `intervals` (the
    /// aggregator's).
    pub fn validate(&self, intervals: &[Interval]) -> Result<(), String> {
        if self.zscore_history < 3 {
            return Err("tda.stream.zscore_history must be at least 3 windows".into());
        }
        let mut names = std::collections::HashSet::new();
        for b in &self.baskets {
            b.validate()?;
            if !names.insert(b.name.as_str()) {
                return Err(format!(
                    "tda.stream.baskets: the name {} is used twice",
                    b.name
                ));
            }
            if b.min_history > self.zscore_history {
                return Err(format!(
                    "tda.stream.baskets[{}].min_history must be at most tda.stream.zscore_history ({})",
                    b.name, self.zscore_history
                ));
            }
            if !intervals.contains(&b.interval) {
                return Err(format!(
                    "tda.stream.baskets[{}].interval {} is not computed by the aggregator (aggregator.intervals)",
                    b.name,
                    b.interval.as_str()
                ));
            }
        }
        Ok(())
    }

    pub fn basket(&self, name: &str) -> Option<&BasketConfig> {
        self.baskets.iter().find(|b| b.name == name)
    }
}
