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

use marketd_model::rust_decimal_to_f64 as to_f64;
use marketd_model::{Bar, Event, Indicator, Interval, MaKind, Symbol, Tick};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
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

/// Moving averages of one series' closes.
#[derive(Debug, Default)]
struct MaState {
    closes: VecDeque<f64>,
    /// EMA per window, once seeded (after `window` closes, with their SMA).
    ema: Vec<Option<f64>>,
    count: u64,
}

#[derive(Debug)]
struct Series {
    bars: VecDeque<Bar>,
    /// The newest bar changed since the last flush.
    dirty: bool,
    ma: Option<MaState>,
}

/// The pure aggregation state machine: ticks in, bar and indicator events out.
#[derive(Debug)]
pub struct Aggregator {
    cfg: AggregatorConfig,
    max_window: usize,
    /// Per (source, symbol): one series per configured interval, in config
    /// order (one map lookup per tick, not one per interval).
    series: HashMap<(Arc<str>, Symbol), Vec<Series>>,
    late_dropped: u64,
}

impl Aggregator {
    pub fn new(cfg: AggregatorConfig) -> Self {
        let max_window = cfg.ma_windows.iter().copied().max().unwrap_or(0) as usize;
        Aggregator {
            cfg,
            max_window,
            series: HashMap::new(),
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

    /// Publishes the open bars that changed since the last flush.
    pub fn flush_open(&mut self, out: &mut Vec<Event>) {
        for series in self.series.values_mut().flatten() {
            if series.dirty {
                series.dirty = false;
                if let Some(b) = series.bars.back() {
                    out.push(Event::Bar(b.clone()));
                }
            }
        }
    }
}

/// Folds a tick into one interval's series; false when it was too late.
fn apply_interval(
    series: &mut Series,
    cfg: &AggregatorConfig,
    max_window: usize,
    tick: &Tick,
    interval: Interval,
    out: &mut Vec<Event>,
) -> bool {
    let start = interval.bucket_start(tick.ts_event);
    let Some(newest) = series.bars.back().map(|b| b.start) else {
        series.bars.push_back(Bar::open_with(tick, interval));
        series.dirty = true;
        return true;
    };
    if start > newest {
        let mut closed = series.bars.pop_back().expect("newest exists");
        closed.closed = true;
        if let Some(ma) = series.ma.as_mut() {
            push_close(ma, &cfg.ma_windows, max_window, &closed, out);
        }
        out.push(Event::Bar(closed.clone()));
        series.bars.push_back(closed);
        series.bars.push_back(Bar::open_with(tick, interval));
        series.dirty = true;
        while series.bars.len() > cfg.late_buckets + 1 {
            series.bars.pop_front();
        }
    } else if start == newest {
        if let Some(b) = series.bars.back_mut() {
            b.apply(tick);
        }
        series.dirty = true;
    } else {
        // Late: the bucket is before the open one.
        let oldest = series.bars.front().map(|b| b.start).unwrap_or(start);
        if start < oldest {
            return false;
        }
        let pos = series
            .bars
            .iter()
            .position(|b| b.start >= start)
            .unwrap_or(series.bars.len());
        let bar = if series.bars.get(pos).is_some_and(|b| b.start == start) {
            let b = &mut series.bars[pos];
            b.apply(tick);
            b
        } else {
            let mut b = Bar::open_with(tick, interval);
            b.closed = true;
            series.bars.insert(pos, b);
            &series.bars[pos]
        };
        out.push(Event::Bar(bar.clone()));
    }
    true
}

fn push_close(
    ma: &mut MaState,
    windows: &[u32],
    max_window: usize,
    bar: &Bar,
    out: &mut Vec<Event>,
) {
    let close = to_f64(bar.close);
    ma.closes.push_back(close);
    if ma.closes.len() > max_window.max(1) {
        ma.closes.pop_front();
    }
    ma.count += 1;
    if ma.ema.len() != windows.len() {
        ma.ema = vec![None; windows.len()];
    }
    for (i, &w) in windows.iter().enumerate() {
        let w_us = w as usize;
        if w == 0 || (ma.count as usize) < w_us {
            continue;
        }
        let sma = sma_of(ma.closes.iter().rev().take(w_us).copied(), w_us);
        let ema = match ma.ema[i] {
            None => sma,
            Some(prev) => {
                let alpha = 2.0 / (f64::from(w) + 1.0);
                alpha * close + (1.0 - alpha) * prev
            }
        };
        ma.ema[i] = Some(ema);
        for (kind, value) in [(MaKind::Sma, sma), (MaKind::Ema, ema)] {
            out.push(Event::Indicator(Indicator {
                symbol: bar.symbol.clone(),
                source: bar.source.clone(),
                interval: bar.interval,
                kind,
                window: w,
                ts: bar.start,
                value,
            }));
        }
    }
}

/// Mean of the last `n` closes (given newest first), summed oldest first so
/// an independent recomputation in the same order gives the same bits.
fn sma_of(newest_first: impl Iterator<Item = f64>, n: usize) -> f64 {
    let mut v: Vec<f64> = newest_first.collect();
    v.reverse();
    v.iter().sum::<f64>() / n as f64
}

/// The aggregator consumer: ticks in, bars and indicators out on the bus.
/// Open bars are published every `flush_interval_ms`; on shutdown the last
/// open bars are published before it returns.
pub async fn run(
    mut consumer: marketd_bus::AnyConsumer,
    bus: marketd_bus::AnyBus,
    cfg: AggregatorConfig,
) {
    use marketd_bus::{Bus, Consumer};
    let mut agg = Aggregator::new(cfg.clone());
    let mut flush = tokio::time::interval(std::time::Duration::from_millis(
        cfg.flush_interval_ms.max(10),
    ));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(4096);
    let mut out = Vec::new();
    loop {
        batch.clear();
        let ended = tokio::select! {
            r = consumer.recv_batch(&mut batch, 4096) => match r {
                Ok(0) => true,
                Ok(_) => {
                    for d in &batch {
                        if let Event::Tick(t) = &d.envelope.event {
                            agg.apply(t, &mut out);
                        }
                    }
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "aggregator receive failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    false
                }
            },
            _ = flush.tick() => {
                agg.flush_open(&mut out);
                false
            }
        };
        if ended {
            agg.flush_open(&mut out);
        }
        if !out.is_empty()
            && let Err(e) = bus.publish_batch(std::mem::take(&mut out)).await
        {
            tracing::error!(error = %e, "could not publish bars/indicators");
        }
        if !batch.is_empty() {
            let _ = consumer.commit(&batch).await;
        }
        if ended {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::{Decimal, TickKind};

    const S: i64 = 1_000_000_000;

    fn tick(ts: i64, price: i64) -> Tick {
        Tick::new(
            Symbol::parse("AAPL").unwrap(),
            "sim",
            TickKind::Trade,
            Decimal::from(price),
            Decimal::ONE,
            ts,
            ts,
        )
    }

    fn agg(windows: Vec<u32>) -> Aggregator {
        Aggregator::new(AggregatorConfig {
            intervals: vec![Interval::S1],
            ma_windows: windows,
            ma_intervals: vec![Interval::S1],
            late_buckets: 2,
            flush_interval_ms: 1000,
        })
    }

    fn bars(out: &[Event]) -> Vec<&Bar> {
        out.iter()
            .filter_map(|e| if let Event::Bar(b) = e { Some(b) } else { None })
            .collect()
    }

    fn inds(out: &[Event], kind: MaKind) -> Vec<f64> {
        out.iter()
            .filter_map(|e| {
                if let Event::Indicator(i) = e {
                    (i.kind == kind).then_some(i.value)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn closes_buckets_on_the_series_watermark() {
        let mut a = agg(vec![]);
        let mut out = Vec::new();
        for (ts, p) in [
            (100 * S, 10),
            (100 * S + 5, 12),
            (100 * S + 9, 11),
            (101 * S + 1, 13),
        ] {
            a.apply(&tick(ts, p), &mut out);
        }
        let b = bars(&out);
        assert_eq!(b.len(), 1);
        assert_eq!((b[0].start, b[0].closed, b[0].trades), (100 * S, true, 3));
        assert_eq!(
            (b[0].open, b[0].high, b[0].low, b[0].close),
            (10.into(), 12.into(), 10.into(), 11.into())
        );
        out.clear();
        a.flush_open(&mut out);
        let open = bars(&out);
        assert_eq!(
            (open[0].start, open[0].closed, open[0].close),
            (101 * S, false, 13.into())
        );
        out.clear();
        a.flush_open(&mut out);
        assert!(out.is_empty(), "unchanged open bars are not republished");
    }

    #[test]
    fn sma_and_ema_over_closed_bars() {
        let mut a = agg(vec![3]);
        let mut out = Vec::new();
        for (i, p) in [10, 11, 12, 13, 14, 15].iter().enumerate() {
            a.apply(&tick((i as i64 + 1) * S, *p), &mut out);
        }
        // Closed bars: 10..14 (the 15 bar is still open).
        assert_eq!(inds(&out, MaKind::Sma), vec![11.0, 12.0, 13.0]);
        let alpha = 0.5;
        let e1 = 11.0;
        let e2 = alpha * 13.0 + (1.0 - alpha) * e1;
        let e3 = alpha * 14.0 + (1.0 - alpha) * e2;
        assert_eq!(inds(&out, MaKind::Ema), vec![e1, e2, e3]);
    }

    #[test]
    fn late_ticks_within_grace_update_bars_and_older_are_dropped() {
        let mut a = agg(vec![]);
        let mut out = Vec::new();
        for s in [10, 11, 12, 13] {
            a.apply(&tick(s * S, 100), &mut out);
        }
        out.clear();
        a.apply(&tick(12 * S + 1, 150), &mut out); // bucket 12 is closed but retained
        let b = bars(&out);
        assert_eq!(
            (b[0].start, b[0].high, b[0].trades, b[0].closed),
            (12 * S, 150.into(), 2, true)
        );
        out.clear();
        a.apply(&tick(9 * S, 1), &mut out); // older than every retained bucket
        assert!(out.is_empty());
        assert_eq!(a.late_dropped(), 1);
    }

    #[test]
    fn series_are_separate_per_source_and_symbol() {
        let mut a = agg(vec![]);
        let mut out = Vec::new();
        let mut other = tick(S, 5);
        other.source = "finnhub".into();
        a.apply(&tick(S, 1), &mut out);
        a.apply(&other, &mut out);
        a.apply(&tick(2 * S, 2), &mut out);
        let b = bars(&out);
        assert_eq!(b.len(), 1);
        assert_eq!((&*b[0].source, b[0].close), ("sim", 1.into()));
    }
}
