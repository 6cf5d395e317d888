//! Bars and indicators in SQLite: multi-row upserts of power-of-two chunks
//! (see `InsertSql`), decimals with their `_exact` companions.

use super::{InsertSql, SqliteQuery, SqliteStore, dec_pair};
use crate::Result;
use crate::rows::to_i64;
use crate::series::SeriesSql;
use marketd_model::{Bar, Indicator};
use std::sync::OnceLock;

const BAR_COLS: usize = 20;

const BAR_INSERT: &str = "INSERT INTO bars (source, symbol, interval, start, open, open_exact, high, high_exact, low, low_exact, \
     close, close_exact, volume, volume_exact, trades, first_ts, last_ts, closed, notional, notional_exact)";
const BAR_CONFLICT: &str = "ON CONFLICT (source, symbol, interval, start) DO UPDATE SET \
     open = excluded.open, open_exact = excluded.open_exact, high = excluded.high, high_exact = excluded.high_exact, \
     low = excluded.low, low_exact = excluded.low_exact, close = excluded.close, close_exact = excluded.close_exact, \
     volume = excluded.volume, volume_exact = excluded.volume_exact, trades = excluded.trades, \
     first_ts = excluded.first_ts, last_ts = excluded.last_ts, closed = excluded.closed, \
     notional = excluded.notional, notional_exact = excluded.notional_exact";

fn bar_upsert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| InsertSql::new(BAR_INSERT, BAR_COLS, BAR_CONFLICT, 1024))
}

const INDICATOR_COLS: usize = 7;

const INDICATOR_INSERT: &str =
    "INSERT INTO indicators (source, symbol, interval, kind, \"window\", ts, value)";
const INDICATOR_CONFLICT: &str = "ON CONFLICT (source, symbol, interval, kind, \"window\", ts) DO UPDATE SET value = excluded.value";

fn indicator_upsert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| InsertSql::new(INDICATOR_INSERT, INDICATOR_COLS, INDICATOR_CONFLICT, 2048))
}

/// Upserts `bars` one row at a time with a cached statement, inside the
/// writer's transaction (binding what [`bind_bar`] binds).
fn upsert_bars_on(tx: &rusqlite::Transaction<'_>, bars: &[Bar]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(bar_upsert_sql().sql(1))?;
    for b in bars {
        st.raw_bind_parameter(1, &*b.source)?;
        st.raw_bind_parameter(2, b.symbol.as_str())?;
        st.raw_bind_parameter(3, b.interval.as_str())?;
        st.raw_bind_parameter(4, b.start)?;
        for (i, d) in [&b.open, &b.high, &b.low, &b.close, &b.volume]
            .into_iter()
            .enumerate()
        {
            let (text, exact) = dec_pair(d);
            st.raw_bind_parameter(5 + 2 * i, text)?;
            st.raw_bind_parameter(6 + 2 * i, exact)?;
        }
        let (notional, notional_exact) = match &b.notional {
            Some(d) => {
                let (text, exact) = dec_pair(d);
                (Some(text), exact)
            }
            None => (None, None),
        };
        st.raw_bind_parameter(15, to_i64(b.trades))?;
        st.raw_bind_parameter(16, b.first_ts)?;
        st.raw_bind_parameter(17, b.last_ts)?;
        st.raw_bind_parameter(18, b.closed)?;
        st.raw_bind_parameter(19, notional)?;
        st.raw_bind_parameter(20, notional_exact)?;
        st.raw_execute()?;
    }
    Ok(())
}

/// [`upsert_bars_on`] for indicators (binding what [`bind_indicator`] binds).
fn upsert_indicators_on(tx: &rusqlite::Transaction<'_>, xs: &[Indicator]) -> rusqlite::Result<()> {
    let mut st = tx.prepare_cached(indicator_upsert_sql().sql(1))?;
    for x in xs {
        st.raw_bind_parameter(1, &*x.source)?;
        st.raw_bind_parameter(2, x.symbol.as_str())?;
        st.raw_bind_parameter(3, x.interval.as_str())?;
        st.raw_bind_parameter(4, x.kind.as_str())?;
        st.raw_bind_parameter(5, i64::from(x.window))?;
        st.raw_bind_parameter(6, x.ts)?;
        st.raw_bind_parameter(7, x.value)?;
        st.raw_execute()?;
    }
    Ok(())
}

fn bind_bar<'q>(q: SqliteQuery<'q>, b: &'q Bar) -> SqliteQuery<'q> {
    let mut q = q
        .bind(&*b.source)
        .bind(b.symbol.as_str())
        .bind(b.interval.as_str())
        .bind(b.start);
    for d in [&b.open, &b.high, &b.low, &b.close, &b.volume] {
        let (text, exact) = dec_pair(d);
        q = q.bind(text).bind(exact);
    }
    let (notional, notional_exact) = match &b.notional {
        Some(d) => {
            let (text, exact) = dec_pair(d);
            (Some(text), exact)
        }
        None => (None, None),
    };
    q.bind(to_i64(b.trades))
        .bind(b.first_ts)
        .bind(b.last_ts)
        .bind(b.closed)
        .bind(notional)
        .bind(notional_exact)
}

fn bind_indicator<'q>(q: SqliteQuery<'q>, x: &'q Indicator) -> SqliteQuery<'q> {
    q.bind(&*x.source)
        .bind(x.symbol.as_str())
        .bind(x.interval.as_str())
        .bind(x.kind.as_str())
        .bind(i64::from(x.window))
        .bind(x.ts)
        .bind(x.value)
}

const BAR_SELECT: &str = "SELECT symbol, source, interval, start, \
     COALESCE(open_exact, CAST(open AS TEXT)), COALESCE(high_exact, CAST(high AS TEXT)), \
     COALESCE(low_exact, CAST(low AS TEXT)), COALESCE(close_exact, CAST(close AS TEXT)), \
     COALESCE(volume_exact, CAST(volume AS TEXT)), trades, first_ts, last_ts, closed, \
     COALESCE(notional_exact, CAST(notional AS TEXT)) FROM bars";

const INDICATOR_SELECT: &str =
    "SELECT symbol, source, interval, kind, \"window\", ts, value FROM indicators";

impl SeriesSql for SqliteStore {
    const BAR_SELECT: &'static str = BAR_SELECT;
    const INDICATOR_SELECT: &'static str = INDICATOR_SELECT;
    const INTERVAL: &'static str = "interval";

    // File databases write through the one writer connection that takes
    // the ticks ([`SqliteStore::on_writer`]): a commit by another connection
    // makes SQLite drop that connection's whole page cache, the tick
    // indexes' hot pages with it, and bars and indicators commit every
    // flush interval.
    async fn write_bars(&self, bars: &[Bar]) -> Result<()> {
        const OP: &str = "upserting bars";
        if bars.is_empty() {
            return Ok(());
        }
        if self.has_writer() {
            let bars = bars.to_vec();
            return self
                .on_writer(OP, move |w| {
                    w.transaction(OP, |tx| upsert_bars_on(tx, &bars))
                })
                .await;
        }
        self.write_chunked(OP, bar_upsert_sql(), bars, bind_bar)
            .await
            .map(drop)
    }

    async fn write_indicators(&self, xs: &[Indicator]) -> Result<()> {
        const OP: &str = "upserting indicators";
        if xs.is_empty() {
            return Ok(());
        }
        if self.has_writer() {
            let xs = xs.to_vec();
            return self
                .on_writer(OP, move |w| {
                    w.transaction(OP, |tx| upsert_indicators_on(tx, &xs))
                })
                .await;
        }
        self.write_chunked(OP, indicator_upsert_sql(), xs, bind_indicator)
            .await
            .map(drop)
    }
}
