//! The derived-series aggregate (tables `bars` and `indicators`): the
//! [`SeriesStore`] trait and its query types. The reads are written once
//! here for every backend that supplies its dialect's `SELECT`s and batch
//! upserts ([`SeriesSql`]).

use crate::Result;
use crate::backend::{Backend, Dialect, read_all};
use crate::rows::{Cols, Sources, SqlRow};
use crate::sql::{Filter, ascending};
use marketd_model::{Bar, Indicator, Interval, MaKind, Symbol};
use std::future::Future;
use std::str::FromStr;

/// Filters of `GET /bars`: bars of one symbol and interval. Without `from`
/// the newest `limit` bars are returned; the result is ascending by start.
#[derive(Debug, Clone)]
pub struct BarQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    pub interval: Interval,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// Filters of `GET /indicators/moving-average`; same window rules as [`BarQuery`].
#[derive(Debug, Clone)]
pub struct IndicatorQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    pub interval: Interval,
    pub kind: MaKind,
    pub window: u32,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// Bars and indicators derived from ticks. Writes are idempotent on their
/// natural keys.
pub trait SeriesStore: Send + Sync {
    /// Inserts or replaces bars on (source, symbol, interval, start).
    fn upsert_bars(&self, bars: &[Bar]) -> impl Future<Output = Result<()>> + Send;
    fn bars(&self, q: &BarQuery) -> impl Future<Output = Result<Vec<Bar>>> + Send;
    /// Inserts or replaces on (source, symbol, interval, kind, window, ts).
    fn upsert_indicators(&self, xs: &[Indicator]) -> impl Future<Output = Result<()>> + Send;
    fn indicators(&self, q: &IndicatorQuery)
    -> impl Future<Output = Result<Vec<Indicator>>> + Send;
    /// The newest bar of `interval` of every (symbol, source), at most
    /// `limit`, by symbol then source: what the platform has, one row each.
    fn latest_bars(
        &self,
        interval: Interval,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Bar>>> + Send;
    /// Deletes the bars of (`source`, `symbol`) in each range that are not
    /// among its kept starts, and the moving averages at those starts, in
    /// one write turn; the number of bars deleted. A warm start calls it
    /// with the ranges it recomputed from the stored ticks: a bar there
    /// without a recomputed counterpart holds only ticks the store never
    /// took (the bars writer outran the tick writer before a crash).
    fn prune_bars(
        &self,
        symbol: &Symbol,
        source: &str,
        ranges: &[BarRange],
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// Bars of one interval from `from` on, of which those starting at `keep`
/// stay ([`SeriesStore::prune_bars`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BarRange {
    pub interval: Interval,
    pub from: i64,
    pub keep: Vec<i64>,
}

/// What a backend writes by hand for [`SeriesStore`].
pub(crate) trait SeriesSql: Backend {
    /// `SELECT` of the columns [`bar_from_row`] reads, decimals as text,
    /// `FROM bars`.
    const BAR_SELECT: &'static str;
    /// `SELECT` of the columns [`indicator_from_row`] reads `FROM indicators`.
    const INDICATOR_SELECT: &'static str;
    /// The dialect's spelling of the `interval` column.
    const INTERVAL: &'static str;
    /// [`SeriesStore::upsert_bars`] in one transaction.
    fn write_bars(&self, bars: &[Bar]) -> impl Future<Output = Result<()>> + Send;
    /// [`SeriesStore::upsert_indicators`] in one transaction (no NaN values).
    fn write_indicators(&self, xs: &[Indicator]) -> impl Future<Output = Result<()>> + Send;
}

impl<B: SeriesSql> SeriesStore for B {
    async fn upsert_bars(&self, bars: &[Bar]) -> Result<()> {
        self.write_bars(bars).await
    }

    async fn bars(&self, q: &BarQuery) -> Result<Vec<Bar>> {
        let mut qb = B::Db::builder(B::BAR_SELECT);
        let newest = bars_filter(&mut qb, B::INTERVAL, q);
        let bars = read_all(self, &mut qb, "reading bars", bar_from_row).await?;
        Ok(ascending(bars, newest))
    }

    async fn upsert_indicators(&self, xs: &[Indicator]) -> Result<()> {
        self.write_indicators(&storable(xs)).await
    }

    async fn latest_bars(&self, interval: Interval, limit: u32) -> Result<Vec<Bar>> {
        let col = B::INTERVAL;
        let mut qb = B::Db::builder(B::BAR_SELECT);
        // The primary key (source, symbol, interval, start) serves the
        // correlated MAX on both backends.
        qb.sql(&format!(" WHERE {col} = "))
            .text(interval.as_str())
            .sql(&format!(
                " AND start = (SELECT MAX(b2.start) FROM bars b2 WHERE b2.source = bars.source \
             AND b2.symbol = bars.symbol AND b2.{col} = bars.{col}) ORDER BY symbol, source LIMIT "
            ))
            .int(i64::from(limit));
        read_all(self, &mut qb, "reading the latest bars", bar_from_row).await
    }

    async fn prune_bars(&self, symbol: &Symbol, source: &str, ranges: &[BarRange]) -> Result<u64> {
        if ranges.is_empty() {
            return Ok(0);
        }
        let col = B::INTERVAL;
        let _turn = self.write_turn().await;
        // The averages first: a crash between the two statements leaves a
        // bar the next warm start prunes again, never an average without
        // its bar.
        let mut bars_deleted = 0;
        for (table, ts) in [("indicators", "ts"), ("bars", "start")] {
            let mut qb = B::Db::builder(&format!("DELETE FROM {table} WHERE symbol = "));
            qb.text(symbol.as_str()).source(Some(source)).sql(" AND (");
            for (i, r) in ranges.iter().enumerate() {
                qb.sql(if i == 0 { "(" } else { " OR (" });
                qb.sql(&format!("{col} = ")).text(r.interval.as_str());
                qb.sql(&format!(" AND {ts} >= ")).int(r.from);
                if !r.keep.is_empty() {
                    qb.sql(&format!(" AND {ts} NOT IN ("));
                    for (j, &start) in r.keep.iter().enumerate() {
                        if j > 0 {
                            qb.sql(", ");
                        }
                        qb.int(start);
                    }
                    qb.sql(")");
                }
                qb.sql(")");
            }
            qb.sql(")");
            bars_deleted = B::Db::run(self.writer(), &mut qb)
                .await
                .map_err(crate::error::failed("pruning bars"))?;
        }
        Ok(bars_deleted)
    }

    async fn indicators(&self, q: &IndicatorQuery) -> Result<Vec<Indicator>> {
        let mut qb = B::Db::builder(B::INDICATOR_SELECT);
        let newest = indicators_filter(&mut qb, B::INTERVAL, q);
        let xs = read_all(self, &mut qb, "reading indicators", indicator_from_row);
        Ok(ascending(xs.await?, newest))
    }
}

/// Decodes a row of the backend's bar `SELECT` (symbol, source, interval,
/// start, open, high, low, close, volume as decimal text, trades, first_ts,
/// last_ts, closed, notional as decimal text or NULL); the VWAP is derived.
fn bar_from_row<R: SqlRow>(row: &R, sources: &mut Sources) -> Result<Bar> {
    let c = Cols::new(row, "bars");
    let [open, high, low, close, volume] = c.decimals(4)?;
    Ok(Bar {
        symbol: c.symbol(0)?,
        source: c.source(1, sources)?,
        interval: c.parse(2, "interval", Interval::from_str)?,
        start: c.int(3)?,
        open,
        high,
        low,
        close,
        volume,
        trades: c.count(9)?,
        notional: c.opt_decimal(13)?,
        vwap: None,
        first_ts: c.int(10)?,
        last_ts: c.int(11)?,
        closed: c.flag(12)?,
    }
    .with_vwap())
}

/// Decodes a row of `SELECT symbol, source, interval, kind, "window", ts,
/// value FROM indicators`.
fn indicator_from_row<R: SqlRow>(row: &R, sources: &mut Sources) -> Result<Indicator> {
    let c = Cols::new(row, "indicators");
    let window = c.int(4)?;
    Ok(Indicator {
        symbol: c.symbol(0)?,
        source: c.source(1, sources)?,
        interval: c.parse(2, "interval", Interval::from_str)?,
        kind: c.parse(3, "kind", MaKind::from_str)?,
        window: u32::try_from(window).map_err(|_| c.corrupt(format!("bad window {window}")))?,
        ts: c.int(5)?,
        value: c.float(6)?,
    })
}

/// The `WHERE` and `ORDER BY` of [`SeriesStore::bars`] after the backend's
/// bar `SELECT`; `interval` is the dialect's spelling of that column. True
/// when the rows come newest first (see [`Filter::window`]).
fn bars_filter<'q>(qb: &mut impl Filter<'q>, interval: &str, q: &'q BarQuery) -> bool {
    qb.sql(" WHERE symbol = ").text(q.symbol.as_str());
    qb.eq_text(interval, q.interval.as_str());
    qb.source(q.source.as_deref());
    qb.window("start", q.from, q.to, q.limit, "source")
}

/// The `WHERE` and `ORDER BY` of [`SeriesStore::indicators`], as [`bars_filter`].
fn indicators_filter<'q>(qb: &mut impl Filter<'q>, interval: &str, q: &'q IndicatorQuery) -> bool {
    qb.sql(" WHERE symbol = ").text(q.symbol.as_str());
    qb.eq_text(interval, q.interval.as_str());
    qb.eq_text("kind", q.kind.as_str());
    qb.sql(" AND \"window\" = ").int(i64::from(q.window));
    qb.source(q.source.as_deref());
    qb.window("ts", q.from, q.to, q.limit, "source")
}

/// The values of `xs` that can be stored: SQLite cannot store NaN (it
/// becomes NULL, which the NOT NULL column refuses) and PostgreSQL follows
/// the same rule, since an undefined average is better absent than stored.
fn storable(xs: &[Indicator]) -> std::borrow::Cow<'_, [Indicator]> {
    if !xs.iter().any(|x| x.value.is_nan()) {
        return xs.into();
    }
    let kept: Vec<Indicator> = xs.iter().filter(|x| !x.value.is_nan()).cloned().collect();
    tracing::warn!(
        dropped = xs.len() - kept.len(),
        "not storing NaN indicator values"
    );
    kept.into()
}
