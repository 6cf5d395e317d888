//! Warm start: seeding new series from the bars and EMAs in the store.

use super::averages::MaState;
use super::{Aggregator, Series, SeriesHistory};
use futures::StreamExt;
use marketd_bus::Delivery;
use marketd_model::rust_decimal_to_f64 as to_f64;
use marketd_model::{Event, MaKind, Symbol};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, IndicatorQuery};
use std::sync::Arc;

impl Aggregator {
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
}

/// Seeds every (source, symbol) of `batch` the aggregator has no state for
/// from the store. A store that cannot answer leaves the series empty
/// (logged and counted): derived data never waits for the store.
pub(super) async fn seed_new_series(store: &AnyStore, agg: &mut Aggregator, batch: &[Delivery]) {
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
        let query = BarQuery {
            symbol: symbol.clone(),
            source: Some(source.to_string()),
            interval,
            from: None,
            to: None,
            limit: depth,
        };
        let bars = store.bars(&query).await?;
        let mut emas = Vec::new();
        let last_closed = bars.iter().rev().find(|b| b.closed).map(|b| b.start);
        if let Some(at) = last_closed.filter(|_| agg.is_ma_interval(interval)) {
            // The newest EMA of each window: one query, its window changed.
            let mut newest_ema = IndicatorQuery {
                symbol: query.symbol,
                source: query.source,
                interval,
                kind: MaKind::Ema,
                window: 0,
                from: None,
                to: None,
                limit: 1,
            };
            for &window in agg.ma_windows() {
                newest_ema.window = window;
                let newest = store.indicators(&newest_ema).await?;
                emas.push(newest.last().filter(|i| i.ts == at).map(|i| i.value));
            }
        }
        out.push(SeriesHistory { bars, emas });
    }
    Ok(out)
}
