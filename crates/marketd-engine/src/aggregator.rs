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

use futures::StreamExt;
use marketd_model::rust_decimal_to_f64 as to_f64;
use marketd_model::{Bar, Event, Indicator, Interval, MaKind, Symbol, Tick, Topic};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, IndicatorQuery};
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

/// Stored history of one series, for [`Aggregator::seed`].
#[derive(Debug, Default, Clone)]
pub struct SeriesHistory {
    /// The newest bars, ascending by start.
    pub bars: Vec<Bar>,
    /// EMA per configured window at the newest closed bar (None: unknown).
    pub emas: Vec<Option<f64>>,
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

    /// Seeds `(source, symbol)` from stored history, one entry per configured
    /// interval (in [`Aggregator::intervals`] order): its newest bars,
    /// ascending by start, and the stored EMA per window
    /// ([`Aggregator::ma_windows`] order) at the newest closed bar, when
    /// known. The newest bar, open or closed, continues as the series' last.
    pub fn seed(&mut self, source: Arc<str>, symbol: Symbol, history: Vec<SeriesHistory>) {
        let cfg = &self.cfg;
        let max_window = self.max_window;
        let series = cfg
            .intervals
            .iter()
            .zip(
                history
                    .into_iter()
                    .chain(std::iter::repeat_with(SeriesHistory::default)),
            )
            .map(|(interval, h)| {
                let ma = cfg.ma_intervals.contains(interval).then(|| {
                    let closes: Vec<f64> = h
                        .bars
                        .iter()
                        .filter(|b| b.closed)
                        .map(|b| to_f64(b.close))
                        .collect();
                    let keep = closes.len().min(max_window.max(1));
                    let mut ema = h.emas;
                    ema.resize(cfg.ma_windows.len(), None);
                    MaState {
                        count: closes.len() as u64,
                        closes: closes[closes.len() - keep..].iter().copied().collect(),
                        ema,
                    }
                });
                let skip = h.bars.len().saturating_sub(cfg.late_buckets + 1);
                Series {
                    bars: h.bars.into_iter().skip(skip).collect(),
                    dirty: false,
                    ma,
                }
            })
            .collect();
        self.series.insert((source, symbol), series);
    }

    /// Drops the series `keep` rejects (their symbols moved to another
    /// member); publish open bars first.
    pub fn retain(&mut self, mut keep: impl FnMut(&Symbol) -> bool) {
        self.series.retain(|(_, symbol), _| keep(symbol));
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
        // A seeded newest bar may be closed already: its close is in the
        // moving averages.
        let was_closed = std::mem::replace(&mut closed.closed, true);
        if let Some(ma) = series.ma.as_mut()
            && !was_closed
        {
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
/// Open bars are published every `flush_interval_ms` and whenever a batch
/// closes or corrects a bar; on shutdown the last open bars are published
/// before it returns. Ticks are committed right after a publication that
/// includes them, so after a crash the redelivered ticks are exactly those
/// no published bar holds. Series are seeded from `store` when first seen
/// (see the module docs).
pub async fn run(
    mut consumer: marketd_bus::AnyConsumer,
    bus: marketd_bus::AnyBus,
    store: Arc<AnyStore>,
    cfg: AggregatorConfig,
) {
    use marketd_bus::{Bus, Consumer};
    let mut agg = Aggregator::new(cfg.clone());
    let mut flush = tokio::time::interval(std::time::Duration::from_millis(
        cfg.flush_interval_ms.max(10),
    ));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut assignment = consumer.assignment();
    let mut batch = Vec::with_capacity(4096);
    let mut out = Vec::new();
    // Ticks applied but not yet committed: the newest delivery per partition.
    // They are committed only right after a publication that reflects them.
    let mut applied: Vec<marketd_bus::Delivery> = Vec::new();
    loop {
        batch.clear();
        let ended = tokio::select! {
            r = consumer.recv_batch(&mut batch, 4096) => match r {
                Ok(0) => true,
                Ok(_) => {
                    seed_new_series(&store, &mut agg, &batch).await;
                    agg.apply_batch(
                        batch.iter().filter_map(|d| match &d.envelope.event {
                            Event::Tick(t) => Some(t),
                            _ => None,
                        }),
                        &mut out,
                    );
                    for d in &batch {
                        match applied.iter_mut().find(|a| a.partition == d.partition) {
                            Some(a) => *a = d.clone(),
                            None => applied.push(d.clone()),
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
            Ok(()) = assignment.changed() => {
                // A rebalance: keep the series of the partitions still ours
                // (an empty assignment is the revocation before the next
                // one), publish open bars, so the new owners seed from them.
                let now = assignment.borrow_and_update().clone();
                agg.flush_open(&mut out);
                if !now.partitions.is_empty() {
                    agg.retain(|symbol| now.contains(bus.partition_for(Topic::Ticks, symbol.as_str())));
                }
                false
            }
        };
        if ended {
            agg.flush_open(&mut out);
        }
        if !out.is_empty() {
            publish_until_done(&bus, std::mem::take(&mut out)).await;
            // Every open bar changed by the applied ticks was just published:
            // commit them.
            if !applied.is_empty() {
                let _ = consumer.commit(&applied).await;
                applied.clear();
            }
        }
        if ended {
            return;
        }
    }
}

/// Seeds every (source, symbol) of `batch` the aggregator has no state for
/// from the store. A store that cannot answer leaves the series empty
/// (logged and counted): derived data never waits for the store.
async fn seed_new_series(store: &AnyStore, agg: &mut Aggregator, batch: &[marketd_bus::Delivery]) {
    let mut new: Vec<(Arc<str>, Symbol)> = Vec::new();
    for d in batch {
        if let Event::Tick(t) = &d.envelope.event
            && !agg.knows(&t.source, &t.symbol)
            && !new.iter().any(|(s, y)| *s == t.source && *y == t.symbol)
        {
            new.push((t.source.clone(), t.symbol.clone()));
        }
    }
    // Loaded a few at a time (a start sees every symbol at once), then seeded.
    let loads = futures::stream::iter(new)
        .map(|(source, symbol)| {
            let agg = &*agg;
            async move {
                let history = load_history(store, agg, &source, &symbol).await;
                (source, symbol, history)
            }
        })
        .buffered(SEED_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (source, symbol, history) in loads {
        match history {
            Ok(history) => {
                if history.iter().any(|h| !h.bars.is_empty()) {
                    tracing::debug!(%source, %symbol, "aggregator series seeded from the store");
                }
                agg.seed(source, symbol, history);
            }
            Err(e) => {
                metrics::counter!("marketd_aggregator_seed_errors_total").increment(1);
                tracing::warn!(%source, %symbol, error = %e, "could not read bar history; the series starts empty");
                agg.seed(source, symbol, Vec::new());
            }
        }
    }
}

/// Series histories read from the store at once when a batch brings new
/// symbols.
const SEED_CONCURRENCY: usize = 8;

/// The stored history of one (source, symbol), per configured interval.
async fn load_history(
    store: &AnyStore,
    agg: &Aggregator,
    source: &Arc<str>,
    symbol: &Symbol,
) -> marketd_store::Result<Vec<SeriesHistory>> {
    let depth = u32::try_from(agg.history_depth()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(agg.intervals().len());
    for &interval in agg.intervals() {
        let bars = store
            .bars(&BarQuery {
                symbol: symbol.clone(),
                source: Some(source.to_string()),
                interval,
                from: None,
                to: None,
                limit: depth,
            })
            .await?;
        let mut emas = Vec::new();
        let last_closed = bars.iter().rev().find(|b| b.closed).map(|b| b.start);
        if let Some(at) = last_closed.filter(|_| agg.is_ma_interval(interval)) {
            for &window in agg.ma_windows() {
                let newest = store
                    .indicators(&IndicatorQuery {
                        symbol: symbol.clone(),
                        source: Some(source.to_string()),
                        interval,
                        kind: MaKind::Ema,
                        window,
                        from: None,
                        to: None,
                        limit: 1,
                    })
                    .await?;
                emas.push(newest.last().filter(|i| i.ts == at).map(|i| i.value));
            }
        }
        out.push(SeriesHistory { bars, emas });
    }
    Ok(out)
}

/// Publishes derived events, retrying with capped backoff while the bus is
/// unavailable: the ticks they come from are committed only afterwards, so a
/// bus outage stalls the aggregator instead of losing bars. Gives up only
/// when the topic is closed (shutdown).
async fn publish_until_done(bus: &marketd_bus::AnyBus, events: Vec<Event>) {
    use marketd_bus::Bus;
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match bus.publish_batch(events.clone()).await {
            Ok(()) => return,
            Err(marketd_bus::Error::Closed(topic)) => {
                tracing::warn!(%topic, events = events.len(), "bus closed; bars/indicators not published");
                return;
            }
            Err(e) => {
                metrics::counter!("marketd_aggregator_publish_errors_total").increment(1);
                tracing::error!(error = %e, events = events.len(), "could not publish bars/indicators; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
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

    /// What a store holds after upserting `events` on top of `into`: the
    /// last version of each bar and indicator.
    #[derive(Default, Debug, PartialEq)]
    struct Stored {
        bars: std::collections::BTreeMap<(Interval, i64), Bar>,
        inds: std::collections::BTreeMap<(Interval, &'static str, u32, i64), u64>,
    }

    impl Stored {
        fn upsert(&mut self, events: &[Event]) {
            for e in events {
                match e {
                    Event::Bar(b) => {
                        self.bars.insert((b.interval, b.start), b.clone());
                    }
                    Event::Indicator(i) => {
                        let kind = match i.kind {
                            MaKind::Sma => "sma",
                            MaKind::Ema => "ema",
                        };
                        self.inds
                            .insert((i.interval, kind, i.window, i.ts), i.value.to_bits());
                    }
                    _ => {}
                }
            }
        }

        /// The history a warm start reads, as `load_history` reads it.
        fn history(&self, agg: &Aggregator) -> Vec<SeriesHistory> {
            agg.intervals()
                .iter()
                .map(|&iv| {
                    let all: Vec<Bar> = self
                        .bars
                        .values()
                        .filter(|b| b.interval == iv)
                        .cloned()
                        .collect();
                    let bars = all[all.len().saturating_sub(agg.history_depth())..].to_vec();
                    let last_closed = bars.iter().rev().find(|b| b.closed).map(|b| b.start);
                    let emas = match last_closed.filter(|_| agg.is_ma_interval(iv)) {
                        Some(at) => agg
                            .ma_windows()
                            .iter()
                            .map(|&w| {
                                self.inds
                                    .get(&(iv, "ema", w, at))
                                    .map(|bits| f64::from_bits(*bits))
                            })
                            .collect(),
                        None => Vec::new(),
                    };
                    SeriesHistory { bars, emas }
                })
                .collect()
        }
    }

    /// A restart in the middle of a bucket, after a graceful stop or a crash,
    /// seeded from what the store holds and resumed from the committed
    /// position, ends with the same stored bars and moving averages (to the
    /// bit) as a run that never stopped: open bars continue, closes and EMAs
    /// carry on, and no redelivered tick counts twice.
    #[test]
    fn a_seeded_restart_continues_bars_and_averages_exactly() {
        let cfg = AggregatorConfig {
            intervals: vec![Interval::S1, Interval::M1],
            ma_windows: vec![3, 5],
            ma_intervals: vec![Interval::S1],
            late_buckets: 2,
            flush_interval_ms: 1000,
        };
        // 60 ms apart over 18 s: several batches per 1s bar.
        let ticks: Vec<Tick> = (0..300)
            .map(|i| tick(i * 60_000_000, 100 + (i * 7) % 13))
            .collect();
        // As `run` does: batches of 3 ticks, open bars flushed every 4th
        // batch (the timer); after every publication the applied ticks are
        // committed. Returns the committed position.
        let run = |agg: &mut Aggregator, ticks: &[Tick], store: &mut Stored, stop: bool| {
            let mut committed = 0;
            for (i, chunk) in ticks.chunks(3).enumerate() {
                let mut out = Vec::new();
                agg.apply_batch(chunk, &mut out);
                if i % 4 == 3 {
                    agg.flush_open(&mut out);
                }
                if !out.is_empty() {
                    store.upsert(&out);
                    committed = (i + 1) * 3;
                }
            }
            if stop {
                // A graceful stop publishes the open bars (and commits).
                let mut out = Vec::new();
                agg.flush_open(&mut out);
                store.upsert(&out);
                committed = ticks.len();
            }
            committed.min(ticks.len())
        };
        let mut reference = Stored::default();
        run(
            &mut Aggregator::new(cfg.clone()),
            &ticks,
            &mut reference,
            true,
        );

        let mut redelivered = 0;
        for split in [101, 150, 233] {
            for graceful in [true, false] {
                let mut store = Stored::default();
                let resume = run(
                    &mut Aggregator::new(cfg.clone()),
                    &ticks[..split],
                    &mut store,
                    graceful,
                );
                // A crash redelivers everything after the last commit.
                redelivered += split - resume;
                let mut second = Aggregator::new(cfg.clone());
                let history = store.history(&second);
                second.seed("sim".into(), Symbol::parse("AAPL").unwrap(), history);
                run(&mut second, &ticks[resume..], &mut store, true);
                let how = if graceful { "stop" } else { "crash" };
                assert_eq!(
                    store.bars, reference.bars,
                    "bars after a {how} at tick {split}"
                );
                assert_eq!(
                    store.inds, reference.inds,
                    "averages after a {how} at tick {split}"
                );
            }
        }

        assert!(redelivered > 0, "no crash left ticks to redeliver");

        // Without the seed, the open bars restart from the ticks after the
        // restart: the test above would fail.
        let mut store = Stored::default();
        run(
            &mut Aggregator::new(cfg.clone()),
            &ticks[..101],
            &mut store,
            true,
        );
        run(
            &mut Aggregator::new(cfg.clone()),
            &ticks[101..],
            &mut store,
            true,
        );
        assert_ne!(store.bars, reference.bars);
    }
}
