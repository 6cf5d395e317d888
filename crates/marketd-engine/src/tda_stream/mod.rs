//! Streaming topological signals (the stream-processing role of the TDA
//! seed): per configured basket, by event time on closed bars, a point
//! cloud per window, its H1 barcode (Vietoris–Rips, `marketd-tda`), the
//! exact L1 and L2 norms of the H1 persistence landscape, the persistence
//! entropy, the 2-Wasserstein distance to the previous window's H1, the
//! realized volatility, a robust z-score of the L1 norm and an alarm with
//! threshold, hysteresis and cool-down; stored in `tda_signals` (upsert on
//! basket and window end) and published on `tda-signals`.
//!
//! - [`config`]: `[tda.stream]` and its checks;
//! - [`window`]: window assembly and alignment (pure);
//! - [`signal`]: the numbers of one window (pure);
//! - [`alarm`]: z-score history and the alarm state machine (pure);
//! - [`BasketState`]: one basket's state between windows, built from the
//!   store on start (pure apart from the clock it is handed);
//! - [`runner`]: each basket as a unit of the [`crate::supervisor`], so one
//!   worker of the group computes it, following `bars` and writing signals.
//!
//! See `docs/tda.md` ("Streaming signals") for definitions and semantics.

pub mod alarm;
pub mod config;
pub mod runner;
pub mod signal;
pub mod window;

#[cfg(test)]
mod tests;

pub use config::{BasketConfig, Embedding, TdaStreamConfig};
pub use runner::TdaBaskets;

use alarm::{Alarm, AlarmParams, History};
use marketd_model::TdaSignal;
use marketd_tda::Computer;
use signal::{Measures, h1_distance, measure};
use window::{Assembler, Window};

/// One basket between windows: the assembler, the z-score history, the
/// alarm, the last window done and its H1 (for the Wasserstein distance).
pub struct BasketState {
    pub cfg: BasketConfig,
    pub assembler: Assembler,
    history: History,
    alarm: Alarm,
    /// The newest window already emitted (stored); windows at or before it
    /// are never emitted again.
    last_end: Option<i64>,
    /// The newest window at or before `last_end` seen while rebuilding,
    /// whose H1 is computed only if a new window needs it.
    replayed: Option<Window>,
    previous_h1: Option<Vec<marketd_tda::Bar>>,
    computer: Computer,
}

impl std::fmt::Debug for BasketState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasketState")
            .field("basket", &self.cfg.name)
            .field("last_end", &self.last_end)
            .field("alarm", &self.alarm)
            .finish_non_exhaustive()
    }
}

/// A computed window: the signal and the measures behind it.
#[derive(Debug, Clone)]
pub struct Computed {
    pub signal: TdaSignal,
    pub measures: Measures,
}

impl BasketState {
    /// A basket's state after the `stored` signals (its newest, oldest
    /// first): windows up to the newest stored one are done, the z-score
    /// history holds their L1 norms, the alarm continues from them.
    pub fn new(cfg: BasketConfig, zscore_history: usize, stored: &[TdaSignal]) -> Self {
        let assembler = Assembler::new(
            cfg.symbols.len(),
            cfg.interval.nanos(),
            cfg.window,
            cfg.step,
        );
        let mut history = History::new(zscore_history, cfg.min_history);
        for s in stored {
            history.push(s.landscape_l1);
        }
        let params = AlarmParams {
            threshold: cfg.threshold,
            hysteresis: cfg.hysteresis,
            cooldown: cfg.cooldown,
        };
        let flags: Vec<(bool, bool)> = stored.iter().map(|s| (s.alarm, s.alarm_raised)).collect();
        BasketState {
            assembler,
            history,
            alarm: Alarm::restore(params, &flags),
            last_end: stored.last().map(|s| s.window_end),
            replayed: None,
            previous_h1: None,
            computer: Computer::new(),
            cfg,
        }
    }

    /// The newest window done.
    pub fn last_end(&self) -> Option<i64> {
        self.last_end
    }

    /// Index of `symbol` in the basket.
    pub fn symbol_index(&self, symbol: &str) -> Option<usize> {
        self.cfg.symbols.iter().position(|s| s.as_str() == symbol)
    }

    fn embedding(&self) -> Option<(usize, usize)> {
        self.cfg.embedding.map(|e| (e.dimension, e.delay))
    }

    /// Adds a closed bar of symbol `i`; computes the windows it completes
    /// that were not done before, stamping them `now`.
    pub fn push(&mut self, i: usize, start: i64, close: f64, now: i64) -> Vec<Computed> {
        let windows = self.assembler.push(i, start, close);
        windows
            .into_iter()
            .filter_map(|w| self.window(w, now))
            .collect()
    }

    fn window(&mut self, w: Window, now: i64) -> Option<Computed> {
        if self.last_end.is_some_and(|end| w.end() <= end) {
            self.replayed = Some(w);
            return None;
        }
        let embedding = self.embedding();
        if self.previous_h1.is_none()
            && let Some(prev) = self.replayed.take()
            && Some(prev.end()) == self.last_end
        {
            self.previous_h1 = measure(&mut self.computer, &prev, embedding)
                .ok()
                .map(|m| m.h1);
        }
        let m = match measure(&mut self.computer, &w, embedding) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(basket = %self.cfg.name, error = %e, "window not computed");
                return None;
            }
        };
        let zscore = self.history.zscore(m.landscape_l1);
        let (alarm, alarm_raised) = self.alarm.step(zscore);
        self.history.push(m.landscape_l1);
        let wasserstein = self
            .previous_h1
            .as_deref()
            .and_then(|p| h1_distance(p, &m.h1));
        self.previous_h1 = Some(m.h1.clone());
        self.last_end = Some(w.end());
        let signal = TdaSignal {
            basket: self.cfg.name.clone(),
            window_start: w.start(),
            window_end: w.end(),
            points: m.points,
            h1_bars: u32::try_from(m.h1.len()).unwrap_or(u32::MAX),
            landscape_l1: m.landscape_l1,
            landscape_l2: m.landscape_l2,
            entropy: m.entropy,
            wasserstein,
            volatility: m.volatility,
            zscore,
            alarm,
            alarm_raised,
            emitted_at: now,
        };
        Some(Computed {
            signal,
            measures: m,
        })
    }
}
