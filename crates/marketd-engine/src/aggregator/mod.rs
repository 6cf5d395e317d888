//! OHLCV bars and moving averages, derived from the `ticks` topic.
//!
//! Bars are kept per (source, symbol, interval) on UTC bucket boundaries. A
//! bucket closes when a tick of the same series arrives in a later bucket (the
//! series' own event time is the watermark, so replayed or delayed feeds give
//! the same bars as live ones). Its close is then final for the moving
//! averages: SMA and EMA of the closes of closed bars, per configured window.
//!
//! Late ticks: the last `late_buckets` closed bars of each series stay in
//! memory; a tick that falls into one of them (or into an empty bucket
//! between them) updates or creates that bar and the corrected bar is
//! published again (stores upsert it), but moving averages already published
//! are not recomputed. A tick older than that is counted in
//! `marketd_late_ticks_dropped_total` and left out of bars; it is still stored
//! as a tick.
//!
//! Warm start: the first time a (source, symbol) is seen after a start or a
//! rebalance, its series are seeded from the store (the newest bars of each
//! interval, the closes of the last closed bars and the newest EMA values),
//! so a restart or a failover continues the open bars and the moving
//! averages instead of restarting them from the ticks after the committed
//! offset. Series whose `ticks` partition leaves this member are dropped (the
//! new owner seeds them).

mod averages;
mod bars;
mod consumer;
mod seed;

pub(crate) use consumer::run;

use averages::MaState;
use bars::apply_interval;
use marketd_model::{Bar, Event, Interval, Symbol, Tick};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Aggregator settings (`[aggregator]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregatorConfig {
    /// Bar intervals to build.
    pub intervals: Vec<Interval>,
    /// Moving-average windows, in bars.
    pub ma_windows: Vec<u32>,
    /// Bar intervals whose closes feed the moving averages.
    pub ma_intervals: Vec<Interval>,
    /// Closed bars per series kept open to late ticks.
    pub late_buckets: usize,
    /// How often open (still changing) bars are published, in milliseconds.
    pub flush_interval_ms: u64,
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        AggregatorConfig {
            intervals: Interval::ALL.to_vec(),
            ma_windows: vec![5, 20, 50],
            ma_intervals: vec![Interval::S1, Interval::M1],
            late_buckets: 2,
            flush_interval_ms: 1000,
        }
    }
}

#[derive(Debug)]
struct Series {
    bars: VecDeque<Bar>,
    /// The newest bar changed since the last flush.
    dirty: bool,
    ma: Option<MaState>,
}

/// Stored history of one series, for [`Aggregator::seed`].
#[derive(Debug, Default, Clone)]
pub struct SeriesHistory {
    /// The newest stored bars before [`SeriesHistory::rebuilt`], ascending
    /// by start.
    pub bars: Vec<Bar>,
    /// EMA per configured window at the newest closed bar of `bars` (None:
    /// unknown).
    pub emas: Vec<Option<f64>>,
    /// The newest bars, recomputed from the stored ticks (see `seed.rs`),
    /// ascending by start; all closed but the newest.
    pub rebuilt: Vec<Bar>,
}

/// The pure aggregation state machine: ticks in, bar and indicator events out.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    max_window: usize,
    /// Per (source, symbol): one series per configured interval, in config
    /// order (one map lookup per tick, not one per interval).
    series: HashMap<(Arc<str>, Symbol), Vec<Series>>,
    /// Identities of the stored ticks a warm start folded into a series'
    /// bars, kept until the series receives a tick not among them (see
    /// `seed.rs`): the ticks a persistent bus redelivers are skipped.
    refolded: HashMap<(Arc<str>, Symbol), HashSet<String>>,
    late_dropped: u64,
}

impl Aggregator {
    pub fn new(cfg: AggregatorConfig) -> Self {
        let max_window = cfg.ma_windows.iter().copied().max().unwrap_or(0) as usize;
        Aggregator {
            cfg,
            max_window,
            series: HashMap::new(),
            refolded: HashMap::new(),
            late_dropped: 0,
        }
    }

    /// Ticks that were too late for any retained bucket, since start.
    pub fn late_dropped(&self) -> u64 {
        self.late_dropped
    }

    /// Folds one tick in; closed or corrected bars and new indicator values
    /// are appended to `out`.
    pub fn apply(&mut self, tick: &Tick, out: &mut Vec<Event>) {
        if !self.refolded.is_empty() && self.is_refolded(tick) {
            metrics::counter!("marketd_aggregator_refolded_ticks_skipped_total").increment(1);
            return;
        }
        let cfg = &self.cfg;
        let all = self
            .series
            .entry((tick.source.clone(), tick.symbol.clone()))
            .or_insert_with(|| {
                cfg.intervals
                    .iter()
                    .map(|i| Series {
                        bars: VecDeque::new(),
                        dirty: false,
                        ma: cfg.ma_intervals.contains(i).then(MaState::default),
                    })
                    .collect()
            });
        for (series, &interval) in all.iter_mut().zip(&cfg.intervals) {
            if !apply_interval(series, cfg, self.max_window, tick, interval, out) {
                self.late_dropped += 1;
                metrics::counter!("marketd_late_ticks_dropped_total").increment(1);
            }
        }
    }

    /// Whether a warm start already folded `tick` in from the store; the
    /// first tick of the series that it did not ends the check.
    fn is_refolded(&mut self, tick: &Tick) -> bool {
        let key = (tick.source.clone(), tick.symbol.clone());
        let Some(ids) = self.refolded.get(&key) else {
            return false;
        };
        if ids.contains(&tick.identity()) {
            return true;
        }
        self.refolded.remove(&key);
        false
    }

    /// Whether `(source, symbol)` has state here (else it would start empty:
    /// seed it first).
    pub fn knows(&self, source: &Arc<str>, symbol: &Symbol) -> bool {
        self.series.contains_key(&(source.clone(), symbol.clone()))
    }

    /// How many of the newest bars per interval a warm start needs: the
    /// retained buckets plus enough closes for the longest window.
    pub fn history_depth(&self) -> usize {
        (self.cfg.late_buckets + 1).max(self.max_window + 1)
    }

    /// The configured intervals, in the order [`Aggregator::seed`] takes them.
    pub fn intervals(&self) -> &[Interval] {
        &self.cfg.intervals
    }

    /// Whether `interval`'s closes feed moving averages.
    pub fn is_ma_interval(&self, interval: Interval) -> bool {
        self.cfg.ma_intervals.contains(&interval)
    }

    /// The configured moving-average windows, in the order of the EMA values
    /// [`Aggregator::seed`] takes.
    pub fn ma_windows(&self) -> &[u32] {
        &self.cfg.ma_windows
    }

    /// Drops the series `keep` rejects (their symbols moved to another
    /// member); publish open bars first.
    pub fn retain(&mut self, mut keep: impl FnMut(&Symbol) -> bool) {
        self.series.retain(|(_, symbol), _| keep(symbol));
        self.refolded.retain(|key, _| self.series.contains_key(key));
    }

    /// Folds a batch of ticks in. When that produced events (a bar closed,
    /// a late tick corrected one), the changed open bars are added too, so
    /// that everything published reflects exactly the ticks applied so far:
    /// the caller publishes `out` and then commits every tick applied, and a
    /// restart seeded from the store resumes exactly after them.
    pub fn apply_batch<'a>(
        &mut self,
        ticks: impl IntoIterator<Item = &'a Tick>,
        out: &mut Vec<Event>,
    ) {
        let before = out.len();
        for t in ticks {
            self.apply(t, out);
        }
        if out.len() > before {
            self.flush_open(out);
        }
    }

    /// Publishes the open bars that changed since the last flush.
    pub fn flush_open(&mut self, out: &mut Vec<Event>) {
        for series in self.series.values_mut().flatten() {
            if series.dirty {
                series.dirty = false;
                if let Some(b) = series.bars.back_mut() {
                    b.refresh_vwap();
                    out.push(Event::Bar(b.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
