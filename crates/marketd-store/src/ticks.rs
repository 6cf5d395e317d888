//! The tick aggregate (table `ticks`): the [`TickStore`] trait and its
//! query types. The reads are written once here (row decoder, history
//! cursor, query shapes) for every backend that supplies its dialect's
//! `SELECT` and batch insert ([`TickSql`]).

use crate::backend::{Backend, Dialect};
use crate::error::During;
use crate::rows::{Cols, Sources, SqlRow, to_u64};
use crate::sql::Filter;
use crate::{Error, Result};
use marketd_model::{Symbol, Tick, TickKind};
use std::future::Future;
use std::str::FromStr;

/// Filters of `GET /prices/history`: ticks of one symbol in `[from, to)` in
/// event-time order (ascending), resuming after `cursor`.
#[derive(Debug, Clone)]
pub struct TickQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    /// Inclusive lower bound on `ts_event` (ns).
    pub from: Option<i64>,
    /// Exclusive upper bound on `ts_event` (ns).
    pub to: Option<i64>,
    pub limit: u32,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of ticks; `next_cursor` is `Some` when more rows follow.
#[derive(Debug, Clone, Default)]
pub struct TickPage {
    pub ticks: Vec<Tick>,
    pub next_cursor: Option<String>,
}

/// Ticks. Writes are idempotent on each tick's identity (`Tick::identity`).
pub trait TickStore: Send + Sync {
    /// Inserts a batch in one transaction, ignoring ticks already stored.
    /// Returns how many were new.
    fn insert_ticks(&self, ticks: &[Tick]) -> impl Future<Output = Result<u64>> + Send;
    /// The tick with the greatest `ts_event` for the symbol (optionally of one source).
    fn latest_tick(
        &self,
        symbol: &Symbol,
        source: Option<&str>,
    ) -> impl Future<Output = Result<Option<Tick>>> + Send;
    fn tick_history(&self, q: &TickQuery) -> impl Future<Output = Result<TickPage>> + Send;
    fn count_ticks(&self, symbol: Option<&Symbol>) -> impl Future<Output = Result<u64>> + Send;
}

/// What a backend writes by hand for [`TickStore`].
pub(crate) trait TickSql: Backend {
    /// `SELECT` of the columns [`tick_from_row`] reads, decimals as text,
    /// `FROM ticks`.
    const TICK_SELECT: &'static str;
    /// Pushed after [`Self::TICK_SELECT`] when a source is given (an index
    /// hint), or nothing.
    const BY_SOURCE: &'static str;
    /// [`TickStore::insert_ticks`]: the ingest hot path, each dialect's
    /// fastest batch insert.
    fn write_ticks(&self, ticks: &[Tick]) -> impl Future<Output = Result<u64>> + Send;
}

impl<B: TickSql> TickStore for B {
    async fn insert_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        self.write_ticks(ticks).await
    }

    async fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> Result<Option<Tick>> {
        let mut qb = B::Db::builder(B::TICK_SELECT);
        latest_filter(&mut qb, B::BY_SOURCE, symbol, source);
        let row = B::Db::one(self.reader(), &mut qb)
            .await
            .during("reading the latest tick")?;
        row.map(|r| tick_from_row(&r, &mut Sources::default()).map(|(_, t)| t))
            .transpose()
    }

    async fn tick_history(&self, q: &TickQuery) -> Result<TickPage> {
        let mut qb = B::Db::builder(B::TICK_SELECT);
        if !history_filter(&mut qb, B::BY_SOURCE, q)? {
            return Ok(TickPage::default());
        }
        let rows = B::Db::all(self.reader(), &mut qb)
            .await
            .during("reading tick history")?;
        page_from_rows(&rows, q.limit)
    }

    async fn count_ticks(&self, symbol: Option<&Symbol>) -> Result<u64> {
        let mut qb = B::Db::builder("SELECT COUNT(*) FROM ticks");
        if let Some(s) = symbol {
            qb.sql(" WHERE symbol = ").text(s.as_str());
        }
        let row = B::Db::one(self.reader(), &mut qb)
            .await
            .during("counting ticks")?;
        match row {
            Some(row) => Cols::new(&row, "ticks").int(0).map(to_u64),
            None => Ok(0),
        }
    }
}

/// Decodes a row of the backend's tick `SELECT` (columns: id, symbol,
/// source, kind, price, size, bid, ask as decimal text, trade_id, sequence,
/// venue_symbol, ts_event, ts_received) into its id and tick.
fn tick_from_row<R: SqlRow>(row: &R, sources: &mut Sources) -> Result<(i64, Tick)> {
    let c = Cols::new(row, "ticks");
    let [price, size] = c.decimals(4)?;
    let tick = Tick {
        symbol: c.symbol(1)?,
        source: c.source(2, sources)?,
        kind: c.parse(3, "kind", TickKind::from_str)?,
        price,
        size,
        bid: c.opt_decimal(6)?,
        ask: c.opt_decimal(7)?,
        trade_id: c.opt_string(8)?,
        // Stored bit-preserving (see the inserts).
        sequence: c.opt_int(9)?.map(|s| s as u64),
        venue_symbol: c.opt_string(10)?,
        ts_event: c.int(11)?,
        ts_received: c.int(12)?,
    };
    Ok((c.int(0)?, tick))
}

/// The `WHERE` and `ORDER BY` of `latest_tick`, after the backend's tick
/// `SELECT`; `by_source` (an index hint, or nothing) is pushed first when a
/// source is given.
fn latest_filter<'q>(
    qb: &mut impl Filter<'q>,
    by_source: &str,
    symbol: &'q Symbol,
    source: Option<&'q str>,
) {
    if source.is_some() {
        qb.sql(by_source);
    }
    qb.sql(" WHERE symbol = ").text(symbol.as_str());
    qb.source(source)
        .sql(" ORDER BY ts_event DESC, id DESC LIMIT 1");
}

/// The `WHERE` and `ORDER BY` of a history page, after the backend's tick
/// `SELECT` (`by_source` as in [`latest_filter`]): one row more than the
/// limit, to know whether another page follows. False when the page is
/// empty by definition (limit 0) and nothing needs reading; a bad cursor is
/// [`Error::InvalidCursor`] either way.
fn history_filter<'q>(qb: &mut impl Filter<'q>, by_source: &str, q: &'q TickQuery) -> Result<bool> {
    let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
    if q.limit == 0 {
        return Ok(false);
    }
    if q.source.is_some() {
        qb.sql(by_source);
    }
    qb.sql(" WHERE symbol = ").text(q.symbol.as_str());
    qb.source(q.source.as_deref());
    if let Some(from) = q.from {
        qb.sql(" AND ts_event >= ").int(from);
    }
    if let Some(to) = q.to {
        qb.sql(" AND ts_event < ").int(to);
    }
    if let Some((ts, id)) = after {
        qb.sql(" AND (ts_event, id) > (")
            .int(ts)
            .sql(", ")
            .int(id)
            .sql(")");
    }
    qb.sql(" ORDER BY ts_event ASC, id ASC LIMIT ")
        .int(i64::from(q.limit) + 1);
    Ok(true)
}

/// The page of the rows a [`history_filter`] read returned.
fn page_from_rows<R: SqlRow>(rows: &[R], limit: u32) -> Result<TickPage> {
    let mut sources = Sources::default();
    let limit = limit as usize;
    let more = rows.len() > limit;
    let mut ticks = Vec::with_capacity(rows.len().min(limit));
    let mut last = None;
    for row in rows.iter().take(limit) {
        let (id, tick) = tick_from_row(row, &mut sources)?;
        last = Some((tick.ts_event, id));
        ticks.push(tick);
    }
    let next_cursor = if more {
        last.map(|(ts, id)| encode_cursor(ts, id))
    } else {
        None
    };
    Ok(TickPage { ticks, next_cursor })
}

/// Encodes the position after the last row of a page: `(ts_event, id)` as
/// 32 lowercase hex digits (URL-safe, opaque to clients).
fn encode_cursor(ts_event: i64, id: i64) -> String {
    format!("{:016x}{:016x}", ts_event as u64, id as u64)
}

/// What a tick-history cursor looks like ([`decode_cursor`] takes every
/// string of this shape).
pub const TICK_CURSOR_PATTERN: &str = "^[0-9A-Fa-f]{32}$";

fn decode_cursor(s: &str) -> Result<(i64, i64)> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidCursor);
    }
    let ts = u64::from_str_radix(&s[..16], 16).map_err(|_| Error::InvalidCursor)?;
    let id = u64::from_str_radix(&s[16..], 16).map_err(|_| Error::InvalidCursor)?;
    Ok((ts as i64, id as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let pattern = regex::Regex::new(TICK_CURSOR_PATTERN).unwrap();
        for (ts, id) in [(0, 1), (1_700_000_000_123_456_789, 42), (-5, i64::MAX)] {
            let c = encode_cursor(ts, id);
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(decode_cursor(&c).unwrap(), (ts, id));
            assert!(pattern.is_match(&c));
        }
        for bad in [
            "",
            "xyz",
            "00000000000000000000000000000000z",
            "0000000000000000000000000000000g",
        ] {
            assert!(
                matches!(decode_cursor(bad), Err(Error::InvalidCursor)),
                "{bad}"
            );
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }
}
