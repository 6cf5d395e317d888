//! Ticks in PostgreSQL: `UNNEST` inserts in chunks, one transaction per
//! batch; reads on the pool.

use super::{PgQuery, PostgresStore};
use crate::Result;
use crate::ticks::TickSql;
use marketd_model::Tick;

const SELECT: &str = "SELECT id, symbol, source, kind, price::text, size::text, bid::text, ask::text, \
     trade_id, sequence, venue_symbol, ts_event, ts_received FROM ticks";

/// Ticks: no conflict target, so both identity indexes (hash and trade id)
/// apply; rows are numbered in batch order (ORDER BY ord), which keeps ids
/// increasing with insertion.
const TICK_INSERT: &str = "INSERT INTO ticks (symbol, source, kind, price, size, bid, ask, trade_id, sequence, \
     venue_symbol, ts_event, ts_received, tick_key) \
     SELECT symbol, source, kind, price::numeric, size::numeric, bid::numeric, ask::numeric, trade_id, sequence, \
     venue_symbol, ts_event, ts_received, tick_key \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::int8[], $10::text[], $11::int8[], $12::int8[], $13::bytea[]) WITH ORDINALITY \
     AS t(symbol, source, kind, price, size, bid, ask, trade_id, sequence, venue_symbol, ts_event, ts_received, tick_key, ord) \
     ORDER BY ord \
     ON CONFLICT DO NOTHING";

/// One `UNNEST` array: `f` applied to every tick of the chunk.
fn column<T>(chunk: &[Tick], f: impl FnMut(&Tick) -> T) -> Vec<T> {
    chunk.iter().map(f).collect()
}

fn tick_query(chunk: &[Tick]) -> PgQuery<'static> {
    sqlx::query(TICK_INSERT)
        .bind(column(chunk, |t| t.symbol.as_str().to_string()))
        .bind(column(chunk, |t| t.source.to_string()))
        .bind(column(chunk, |t| t.kind.as_str().to_string()))
        .bind(column(chunk, |t| t.price.to_string()))
        .bind(column(chunk, |t| t.size.to_string()))
        .bind(column(chunk, |t| t.bid.map(|d| d.to_string())))
        .bind(column(chunk, |t| t.ask.map(|d| d.to_string())))
        .bind(column(chunk, |t| t.trade_id.clone()))
        // Bit-preserving: sequences above i64::MAX come back unchanged.
        .bind(column(chunk, |t| t.sequence.map(|s| s as i64)))
        .bind(column(chunk, |t| t.venue_symbol.clone()))
        .bind(column(chunk, |t| t.ts_event))
        .bind(column(chunk, |t| t.ts_received))
        // Ticks without a trade id are told apart by their content hash.
        .bind(column(chunk, |t| {
            t.trade_id.is_none().then(|| t.content_hash().to_vec())
        }))
}

impl TickSql for PostgresStore {
    const TICK_SELECT: &'static str = SELECT;
    const BY_SOURCE: &'static str = "";

    async fn write_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        self.write_chunked(ticks, "inserting ticks", tick_query)
            .await
    }
}
