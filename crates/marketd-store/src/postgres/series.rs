//! Bars and indicators in PostgreSQL: `UNNEST` upserts in chunks, the last
//! copy of a key in a batch winning (as in SQLite).

use super::{PgQuery, PostgresStore, last_per_key};
use crate::Result;
use crate::rows::to_i64;
use crate::series::SeriesSql;
use marketd_model::{Bar, Indicator};

const BAR_SELECT: &str = "SELECT symbol, source, \"interval\", start, open::text, high::text, low::text, \
     close::text, volume::text, trades, first_ts, last_ts, closed, notional::text FROM bars";

const INDICATOR_SELECT: &str =
    "SELECT symbol, source, \"interval\", kind, \"window\", ts, value FROM indicators";

const BAR_UPSERT: &str = "INSERT INTO bars (source, symbol, \"interval\", start, open, high, low, close, volume, \
     trades, first_ts, last_ts, closed, notional) \
     SELECT source, symbol, iv, start, open::numeric, high::numeric, low::numeric, close::numeric, volume::numeric, \
     trades, first_ts, last_ts, closed, notional::numeric \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::int8[], $11::int8[], $12::int8[], $13::bool[], $14::text[]) \
     AS t(source, symbol, iv, start, open, high, low, close, volume, trades, first_ts, last_ts, closed, notional) \
     ON CONFLICT (source, symbol, \"interval\", start) DO UPDATE SET \
     open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, \
     volume = excluded.volume, trades = excluded.trades, first_ts = excluded.first_ts, \
     last_ts = excluded.last_ts, closed = excluded.closed, notional = excluded.notional";

const INDICATOR_UPSERT: &str = "INSERT INTO indicators (source, symbol, \"interval\", kind, \"window\", ts, value) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::float8[]) \
     ON CONFLICT (source, symbol, \"interval\", kind, \"window\", ts) DO UPDATE SET value = excluded.value";

fn bar_query(chunk: &[&Bar]) -> PgQuery<'static> {
    let mut cols: [Vec<String>; 8] = Default::default();
    let mut ints: [Vec<i64>; 4] = Default::default();
    let mut closed = Vec::with_capacity(chunk.len());
    let mut notional = Vec::with_capacity(chunk.len());
    for b in chunk {
        cols[0].push(b.source.to_string());
        cols[1].push(b.symbol.as_str().to_string());
        cols[2].push(b.interval.as_str().to_string());
        for (i, d) in [&b.open, &b.high, &b.low, &b.close, &b.volume]
            .into_iter()
            .enumerate()
        {
            cols[3 + i].push(d.to_string());
        }
        ints[0].push(b.start);
        ints[1].push(to_i64(b.trades));
        ints[2].push(b.first_ts);
        ints[3].push(b.last_ts);
        closed.push(b.closed);
        notional.push(b.notional.map(|d| d.to_string()));
    }
    let [source, symbol, interval, open, high, low, close, volume] = cols;
    let [start, trades, first_ts, last_ts] = ints;
    sqlx::query(BAR_UPSERT)
        .bind(source)
        .bind(symbol)
        .bind(interval)
        .bind(start)
        .bind(open)
        .bind(high)
        .bind(low)
        .bind(close)
        .bind(volume)
        .bind(trades)
        .bind(first_ts)
        .bind(last_ts)
        .bind(closed)
        .bind(notional)
}

fn indicator_query(chunk: &[&Indicator]) -> PgQuery<'static> {
    let mut cols: [Vec<String>; 4] = Default::default();
    let mut window = Vec::with_capacity(chunk.len());
    let mut ts = Vec::with_capacity(chunk.len());
    let mut value = Vec::with_capacity(chunk.len());
    for x in chunk {
        cols[0].push(x.source.to_string());
        cols[1].push(x.symbol.as_str().to_string());
        cols[2].push(x.interval.as_str().to_string());
        cols[3].push(x.kind.as_str().to_string());
        window.push(i64::from(x.window));
        ts.push(x.ts);
        value.push(x.value);
    }
    let [source, symbol, interval, kind] = cols;
    sqlx::query(INDICATOR_UPSERT)
        .bind(source)
        .bind(symbol)
        .bind(interval)
        .bind(kind)
        .bind(window)
        .bind(ts)
        .bind(value)
}

impl SeriesSql for PostgresStore {
    const BAR_SELECT: &'static str = BAR_SELECT;
    const INDICATOR_SELECT: &'static str = INDICATOR_SELECT;
    const INTERVAL: &'static str = "\"interval\"";

    async fn write_bars(&self, bars: &[Bar]) -> Result<()> {
        let bars = last_per_key(bars, |b| {
            (
                b.source.clone(),
                b.symbol.as_str().to_string(),
                b.interval.as_str(),
                b.start,
            )
        });
        self.write_chunked(&bars, "upserting bars", bar_query)
            .await
            .map(drop)
    }

    async fn write_indicators(&self, xs: &[Indicator]) -> Result<()> {
        let xs = last_per_key(xs, |x| {
            (
                x.source.clone(),
                x.symbol.as_str().to_string(),
                x.interval.as_str(),
                x.kind.as_str(),
                x.window,
                x.ts,
            )
        });
        self.write_chunked(&xs, "upserting indicators", indicator_query)
            .await
            .map(drop)
    }
}
