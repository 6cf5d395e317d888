//! Warm start: seeding new series from the store.
//!
//! The stored bars alone are not enough after a crash: open bars are
//! published every `flush_interval_ms`, so the stored open bars lack the
//! ticks stored after their last publication, and with the memory bus (which
//! does not persist) nothing redelivers those ticks. So the recent buckets
//! of every interval are recomputed from what the store holds: the finest
//! interval from the stored ticks since ten seconds before the newest stored
//! tick or the newest stored finest bar, whichever is older (the aggregator
//! may have lagged behind the tick writer), each coarser interval from its
//! previous and current bucket, merged from the next finer interval's
//! stored closed bars (every publication before the newest stored one was
//! stored: one partition, in order) and its recomputed ones. This reads
//! seconds of ticks per series, never a whole day's, and
//! every open bar (and every bar whose stored state is older than the ticks
//! of its bucket) ends equal to a recomputation from the stored ticks. A
//! stored bar in the recomputed range whose bucket holds no stored tick is
//! deleted: the bars writer stored it from ticks the tick writer had not
//! stored yet when the process died, and with the memory bus nobody ever
//! will.
//! The recomputed bars are published, closes of buckets closed meanwhile
//! feed the moving averages, and the identities of the ticks folded in are
//! kept until the first tick the series receives that is not among them,
//! so ticks a persistent bus redelivers after the crash (a prefix of the
//! partition, the same ticks the tick writer stored) are not counted twice.

use super::averages::{MaState, push_close};
use super::{Aggregator, Series, SeriesHistory};
use futures::StreamExt;
use marketd_bus::Delivery;
use marketd_model::rust_decimal_to_f64 as to_f64;
use marketd_model::{Bar, Event, Interval, MaKind, Symbol, Tick};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, BarRange, IndicatorQuery, TickQuery};
use std::collections::HashSet;
use std::sync::Arc;

impl Aggregator {
    /// Seeds `(source, symbol)` from stored history, one entry per configured
    /// interval (in [`Aggregator::intervals`] order): its stored bars before
    /// the recomputed range, ascending by start, the stored EMA per window
    /// ([`Aggregator::ma_windows`] order) at the newest closed one, when
    /// known, and the bars recomputed from stored ticks. Recomputed bars are
    /// appended to `out` (to be published), with the moving averages of
    /// those that closed; the newest bar, open or closed, continues as the
    /// series' last.
    pub fn seed(
        &mut self,
        source: Arc<str>,
        symbol: Symbol,
        history: Vec<SeriesHistory>,
        out: &mut Vec<Event>,
    ) {
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
                let mut ma = cfg.ma_intervals.contains(interval).then(|| {
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
                let mut bars: std::collections::VecDeque<Bar> = h.bars.into();
                for bar in h.rebuilt {
                    if bar.closed
                        && let Some(ma) = ma.as_mut()
                    {
                        push_close(ma, &cfg.ma_windows, max_window, &bar, out);
                    }
                    out.push(Event::Bar(bar.clone()));
                    bars.push_back(bar);
                }
                while bars.len() > cfg.late_buckets + 1 {
                    bars.pop_front();
                }
                Series {
                    bars,
                    dirty: false,
                    ma,
                }
            })
            .collect();
        self.series.insert((source, symbol), series);
    }

    /// Remembers the identities of the stored ticks a seed folded into
    /// `(source, symbol)`'s bars: until the series receives a tick not among
    /// them, such ticks are redeliveries and are skipped.
    pub fn skip_refolded(&mut self, source: Arc<str>, symbol: Symbol, ids: HashSet<String>) {
        if !ids.is_empty() {
            self.refolded.insert((source, symbol), ids);
        }
    }
}

/// Seeds every (source, symbol) of `batch` the aggregator has no state for
/// from the store; recomputed bars and averages are appended to `out`. A
/// store that cannot answer leaves the series empty (logged and counted):
/// derived data never waits for the store.
pub(super) async fn seed_new_series(
    store: &AnyStore,
    agg: &mut Aggregator,
    batch: &[Delivery],
    out: &mut Vec<Event>,
) {
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
            Ok((history, folded)) => {
                let rebuilt: usize = history.iter().map(|h| h.rebuilt.len()).sum();
                if history.iter().any(|h| !h.bars.is_empty()) || rebuilt > 0 {
                    tracing::debug!(%source, %symbol, rebuilt, ticks = folded.len(), "aggregator series seeded from the store");
                }
                metrics::counter!("marketd_aggregator_bars_rebuilt_total")
                    .increment(rebuilt as u64);
                agg.seed(source.clone(), symbol.clone(), history, out);
                agg.skip_refolded(source, symbol, folded);
            }
            Err(e) => {
                metrics::counter!("marketd_aggregator_seed_errors_total").increment(1);
                tracing::warn!(%source, %symbol, error = %e, "could not read bar history; the series starts empty");
                agg.seed(source, symbol, Vec::new(), out);
            }
        }
    }
}

/// Series histories read from the store at once when a batch brings new
/// symbols.
const SEED_CONCURRENCY: usize = 8;

/// How far before the stored bars' progress (the newest stored finest bar,
/// or the newest stored tick when older) the finest bars are refolded from
/// ticks: covers a tick writer or bars writer that lagged that much behind
/// at the crash, while a warm start reads seconds of ticks, not minutes
/// (at 2,100 ticks/s a two-minute window made a debug build's warm start
/// outlast the 10 s drain of a stop soon after).
const REFOLD_MARGIN_NS: i64 = 10_000_000_000;

/// Ticks per page when reading the ticks to recompute from.
const TICK_PAGE: u32 = 10_000;

/// The stored history of one (source, symbol), per configured interval,
/// with the identities of the stored ticks folded into the recomputed bars.
async fn load_history(
    store: &AnyStore,
    agg: &Aggregator,
    source: &Arc<str>,
    symbol: &Symbol,
) -> marketd_store::Result<(Vec<SeriesHistory>, HashSet<String>)> {
    let intervals = agg.intervals();
    let mut out: Vec<SeriesHistory> = vec![SeriesHistory::default(); intervals.len()];
    // Where each interval's recomputed range starts (None: nothing stored).
    let mut rebuild_from: Vec<Option<i64>> = vec![None; intervals.len()];
    let mut folded = HashSet::new();
    // Finest first: each coarser interval merges the next finer one's bars.
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by_key(|&i| intervals[i].nanos());
    if let Some(newest) = store.latest_tick(symbol, Some(source)).await? {
        let finest = intervals[order[0]];
        let coarsest = intervals[*order.last().expect("one interval at least")];
        let previous = |iv: Interval, ts: i64| iv.bucket_start(ts) - iv.nanos();
        // How far the stored bars got: the newest finest bar.
        let stored_upto = store
            .bars(&bar_query(symbol, source, finest, None, None, 1))
            .await?
            .last()
            .map(|b| b.last_ts);
        let ticks_from = match stored_upto {
            Some(upto) => finest.bucket_start(newest.ts_event.min(upto) - REFOLD_MARGIN_NS),
            None => previous(coarsest, newest.ts_event),
        };
        let ticks = ticks_since(store, symbol, source, ticks_from).await?;
        folded = ticks.iter().map(Tick::identity).collect();
        let mut finer: Option<(Interval, i64, Vec<Bar>)> = None;
        let mut prune = Vec::with_capacity(order.len());
        for &i in &order {
            let iv = intervals[i];
            let from = iv.bucket_start(previous(iv, newest.ts_event).min(ticks_from));
            let rebuilt = match finer.take() {
                Some((fiv, ffrom, fbars)) if from < ticks_from => {
                    // Stored closed bars of the finer interval up to its
                    // own recomputed range, then that range.
                    let limit = u32::try_from((ffrom - from) / fiv.nanos() + 1).unwrap_or(u32::MAX);
                    let mut parts = store
                        .bars(&bar_query(
                            symbol,
                            source,
                            fiv,
                            Some(from),
                            Some(ffrom),
                            limit,
                        ))
                        .await?;
                    parts.extend(fbars.iter().cloned());
                    merge_into(iv, &parts)
                }
                _ => fold_ticks(iv, ticks.iter().filter(|t| t.ts_event >= from)),
            };
            prune.push(BarRange {
                interval: iv,
                from,
                keep: rebuilt.iter().map(|b| b.start).collect(),
            });
            rebuild_from[i] = Some(from);
            finer = Some((iv, from, rebuilt.clone()));
            out[i].rebuilt = rebuilt;
        }
        // A stored bar in a recomputed range with no recomputed counterpart
        // holds only ticks the store never took: it goes (every interval
        // in one write).
        let pruned = store.prune_bars(symbol, source, &prune).await?;
        if pruned > 0 {
            metrics::counter!("marketd_aggregator_bars_pruned_total").increment(pruned);
            tracing::info!(%source, %symbol, pruned, "stored bars without a stored tick deleted");
        }
    }
    let depth = u32::try_from(agg.history_depth()).unwrap_or(u32::MAX);
    for (i, &interval) in intervals.iter().enumerate() {
        let bars = store
            .bars(&bar_query(
                symbol,
                source,
                interval,
                None,
                rebuild_from[i],
                depth,
            ))
            .await?;
        let mut emas = Vec::new();
        let last_closed = bars.iter().rev().find(|b| b.closed).map(|b| b.start);
        if let Some(at) = last_closed.filter(|_| agg.is_ma_interval(interval)) {
            // The EMA of each window at that bar: one query, its window changed.
            let mut newest_ema = IndicatorQuery {
                symbol: symbol.clone(),
                source: Some(source.to_string()),
                interval,
                kind: MaKind::Ema,
                window: 0,
                from: None,
                to: Some(at + 1),
                limit: 1,
            };
            for &window in agg.ma_windows() {
                newest_ema.window = window;
                let newest = store.indicators(&newest_ema).await?;
                emas.push(newest.last().filter(|i| i.ts == at).map(|i| i.value));
            }
        }
        out[i].bars = bars;
        out[i].emas = emas;
    }
    Ok((out, folded))
}

fn bar_query(
    symbol: &Symbol,
    source: &str,
    interval: Interval,
    from: Option<i64>,
    to: Option<i64>,
    limit: u32,
) -> BarQuery {
    BarQuery {
        symbol: symbol.clone(),
        source: Some(source.to_string()),
        interval,
        from,
        to,
        limit,
    }
}

/// The stored ticks of (source, symbol) from `from` on, ascending.
async fn ticks_since(
    store: &AnyStore,
    symbol: &Symbol,
    source: &str,
    from: i64,
) -> marketd_store::Result<Vec<Tick>> {
    let mut q = TickQuery {
        symbol: symbol.clone(),
        source: Some(source.to_string()),
        from: Some(from),
        to: None,
        limit: TICK_PAGE,
        cursor: None,
    };
    let mut ticks = Vec::new();
    loop {
        let page = store.tick_history(&q).await?;
        ticks.extend(page.ticks);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return Ok(ticks),
        }
    }
}

/// Bars of `interval` folded from `ticks` (ascending): every bucket but the
/// newest is closed.
pub(super) fn fold_ticks<'a>(
    interval: Interval,
    ticks: impl Iterator<Item = &'a Tick>,
) -> Vec<Bar> {
    let mut bars: Vec<Bar> = Vec::new();
    for t in ticks {
        let start = interval.bucket_start(t.ts_event);
        match bars.iter_mut().rev().find(|b| b.start == start) {
            Some(b) => b.apply(t),
            None => {
                let pos = bars.partition_point(|b| b.start < start);
                bars.insert(pos, Bar::open_with(t, interval));
            }
        }
    }
    close_all_but_newest(&mut bars);
    bars
}

/// Bars of `interval` merged from finer bars (ascending, disjoint buckets
/// each inside one of `interval`'s).
pub(super) fn merge_into(interval: Interval, parts: &[Bar]) -> Vec<Bar> {
    let mut bars: Vec<Bar> = Vec::new();
    for p in parts {
        let start = interval.bucket_start(p.start);
        match bars.last_mut() {
            Some(b) if b.start == start => merge(b, p),
            _ => {
                let mut b = p.clone();
                b.interval = interval;
                b.start = start;
                bars.push(b);
            }
        }
    }
    close_all_but_newest(&mut bars);
    bars
}

/// Folds the later bar `p` into `b` (as [`Bar::apply`] would its ticks).
fn merge(b: &mut Bar, p: &Bar) {
    if p.first_ts < b.first_ts {
        b.first_ts = p.first_ts;
        b.open = p.open;
    }
    if p.last_ts >= b.last_ts {
        b.last_ts = p.last_ts;
        b.close = p.close;
    }
    b.high = b.high.max(p.high);
    b.low = b.low.min(p.low);
    b.volume += p.volume;
    b.trades += p.trades;
    b.notional = match (b.notional, p.notional) {
        (Some(x), Some(y)) => x.checked_add(y),
        _ => None,
    };
    *b = b.clone().with_vwap();
}

fn close_all_but_newest(bars: &mut [Bar]) {
    let n = bars.len();
    for (i, b) in bars.iter_mut().enumerate() {
        b.closed = i + 1 < n;
    }
}
