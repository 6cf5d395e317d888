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

fn tick_query(chunk: &[Tick]) -> PgQuery<'static> {
    let n = chunk.len();
    let mut symbol = Vec::with_capacity(n);
    let mut source = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut price = Vec::with_capacity(n);
    let mut size = Vec::with_capacity(n);
    let mut bid = Vec::with_capacity(n);
    let mut ask = Vec::with_capacity(n);
    let mut trade_id = Vec::with_capacity(n);
    let mut sequence = Vec::with_capacity(n);
    let mut venue_symbol = Vec::with_capacity(n);
    let mut ts_event = Vec::with_capacity(n);
    let mut ts_received = Vec::with_capacity(n);
    let mut tick_key: Vec<Option<Vec<u8>>> = Vec::with_capacity(n);
    for t in chunk {
        symbol.push(t.symbol.as_str().to_string());
        source.push(t.source.to_string());
        kind.push(t.kind.as_str().to_string());
        price.push(t.price.to_string());
        size.push(t.size.to_string());
        bid.push(t.bid.map(|d| d.to_string()));
        ask.push(t.ask.map(|d| d.to_string()));
        trade_id.push(t.trade_id.clone());
        // Bit-preserving: sequences above i64::MAX come back unchanged.
        sequence.push(t.sequence.map(|s| s as i64));
        venue_symbol.push(t.venue_symbol.clone());
        ts_event.push(t.ts_event);
        ts_received.push(t.ts_received);
        tick_key.push(t.trade_id.is_none().then(|| t.content_hash().to_vec()));
    }
    sqlx::query(TICK_INSERT)
        .bind(symbol)
        .bind(source)
        .bind(kind)
        .bind(price)
        .bind(size)
        .bind(bid)
        .bind(ask)
        .bind(trade_id)
        .bind(sequence)
        .bind(venue_symbol)
        .bind(ts_event)
        .bind(ts_received)
        .bind(tick_key)
}

impl TickSql for PostgresStore {
    const TICK_SELECT: &'static str = SELECT;
    const BY_SOURCE: &'static str = "";

    async fn write_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        self.write_chunked(ticks, "inserting ticks", tick_query)
            .await
    }
}
