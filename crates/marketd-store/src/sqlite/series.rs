//! Bars and indicators in SQLite: multi-row upserts of power-of-two chunks
//! (see `InsertSql`), decimals with their `_exact` companions.

use super::{InsertSql, SqliteQuery, SqliteStore, dec_pair};
use crate::Result;
use crate::rows::to_i64;
use crate::series::SeriesSql;
use marketd_model::{Bar, Indicator};
use std::sync::OnceLock;

const BAR_COLS: usize = 20;

fn bar_upsert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| {
        InsertSql::new(
            "INSERT INTO bars (source, symbol, interval, start, open, open_exact, high, high_exact, low, low_exact, \
             close, close_exact, volume, volume_exact, trades, first_ts, last_ts, closed, notional, notional_exact)",
            BAR_COLS,
            "ON CONFLICT (source, symbol, interval, start) DO UPDATE SET \
             open = excluded.open, open_exact = excluded.open_exact, high = excluded.high, high_exact = excluded.high_exact, \
             low = excluded.low, low_exact = excluded.low_exact, close = excluded.close, close_exact = excluded.close_exact, \
             volume = excluded.volume, volume_exact = excluded.volume_exact, trades = excluded.trades, \
             first_ts = excluded.first_ts, last_ts = excluded.last_ts, closed = excluded.closed, \
             notional = excluded.notional, notional_exact = excluded.notional_exact",
            1024,
        )
    })
}

const INDICATOR_COLS: usize = 7;

fn indicator_upsert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| {
        InsertSql::new(
            "INSERT INTO indicators (source, symbol, interval, kind, \"window\", ts, value)",
            INDICATOR_COLS,
            "ON CONFLICT (source, symbol, interval, kind, \"window\", ts) DO UPDATE SET value = excluded.value",
            2048,
        )
    })
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

    async fn write_bars(&self, bars: &[Bar]) -> Result<()> {
        self.write_chunked("upserting bars", bar_upsert_sql(), bars, bind_bar)
            .await
            .map(drop)
    }

    async fn write_indicators(&self, xs: &[Indicator]) -> Result<()> {
        self.write_chunked(
            "upserting indicators",
            indicator_upsert_sql(),
            xs,
            bind_indicator,
        )
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::MAX_PARAMS;

    #[test]
    fn chunks_fit_the_parameter_limit() {
        assert_eq!(bar_upsert_sql().max_rows(), 1024);
        assert!(bar_upsert_sql().max_rows() * BAR_COLS <= MAX_PARAMS);
        assert_eq!(bar_upsert_sql().sql(4).matches('?').count(), 4 * BAR_COLS);
    }
}
