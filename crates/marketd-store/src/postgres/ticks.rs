//! Ticks in PostgreSQL. Reads on the pool; writes, the ingest hot path, in
//! one transaction per batch by the fastest way that keeps them idempotent:
//!
//! - `COPY ticks FROM STDIN` (text format) first: a redelivered batch is
//!   rare, and `COPY` is PostgreSQL's cheapest way in (no per-row executor,
//!   no arrays to unpack, no conflict arbiter);
//! - if any row of the batch is already stored (or the batch holds a tick
//!   twice), the identity indexes refuse it with a unique violation, the
//!   `COPY` rolls back whole and the batch is written again by the
//!   idempotent path: `INSERT ... SELECT FROM UNNEST(arrays) ON CONFLICT DO
//!   NOTHING`, which stores only the ticks not stored yet.
//!
//! Either way a batch is all or nothing, and nothing is stored twice.

use super::{PgQuery, PostgresStore};
use crate::Result;
use crate::error::During;
use crate::ticks::TickSql;
use marketd_model::Tick;
use std::io::Write as _;

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

/// The columns of [`copy_rows`], in its order; rows keep the batch order, so
/// ids increase with insertion as on the idempotent path.
const TICK_COPY: &str = "COPY ticks (symbol, source, kind, price, size, bid, ask, trade_id, sequence, \
     venue_symbol, ts_event, ts_received, tick_key) FROM STDIN";

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

/// A text value of `COPY ... FROM STDIN` (text format): backslash, tab,
/// newline and carriage return escaped, everything else as is.
fn copy_text(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

/// An optional value: `\N` is NULL.
fn copy_opt<T>(out: &mut Vec<u8>, v: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// The rows of `ticks` as `COPY` text data, the columns of [`TICK_COPY`].
/// Decimals are written exactly as their `Display` (what the idempotent
/// path binds as text too); the content hash as bytea hex (`\\x…`, its
/// backslash escaped for the text format).
fn copy_rows(ticks: &[Tick]) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(ticks.len() * 160);
    for t in ticks {
        copy_text(&mut out, t.symbol.as_str());
        out.push(b'\t');
        copy_text(&mut out, &t.source);
        out.push(b'\t');
        out.extend_from_slice(t.kind.as_str().as_bytes());
        // Writing into a Vec cannot fail.
        let _ = write!(out, "\t{}\t{}\t", t.price, t.size);
        copy_opt(&mut out, t.bid, |o, d| {
            let _ = write!(o, "{d}");
        });
        out.push(b'\t');
        copy_opt(&mut out, t.ask, |o, d| {
            let _ = write!(o, "{d}");
        });
        out.push(b'\t');
        copy_opt(&mut out, t.trade_id.as_deref(), copy_text);
        out.push(b'\t');
        // Bit-preserving, as on the idempotent path.
        copy_opt(&mut out, t.sequence, |o, s| {
            let _ = write!(o, "{}", s as i64);
        });
        out.push(b'\t');
        copy_opt(&mut out, t.venue_symbol.as_deref(), copy_text);
        let _ = write!(out, "\t{}\t{}\t", t.ts_event, t.ts_received);
        if t.trade_id.is_none() {
            out.extend_from_slice(b"\\\\x");
            for b in t.content_hash() {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
        } else {
            out.extend_from_slice(b"\\N");
        }
        out.push(b'\n');
    }
    out
}

/// What a `COPY` attempt ended with.
enum Copied {
    /// Every row stored, committed.
    All(u64),
    /// A row of the batch is already stored, or the batch holds a tick
    /// twice: nothing stored, the batch needs the idempotent path.
    Overlap,
}

impl PostgresStore {
    /// The whole batch by `COPY` in one transaction, or nothing if any row
    /// violates an identity index.
    async fn copy_ticks(&self, ticks: &[Tick]) -> Result<Copied> {
        const OP: &str = "copying ticks";
        let data = copy_rows(ticks);
        let mut tx = self.pool.begin().await.during(OP)?;
        let mut copy = tx.copy_in_raw(TICK_COPY).await.during(OP)?;
        copy.send(data).await.during(OP)?;
        match copy.finish().await {
            Ok(rows) => {
                tx.commit().await.during(OP)?;
                Ok(Copied::All(rows))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tx.rollback().await.during(OP)?;
                Ok(Copied::Overlap)
            }
            Err(e) => Err(e).during(OP),
        }
    }
}

impl TickSql for PostgresStore {
    const TICK_SELECT: &'static str = SELECT;
    const BY_SOURCE: &'static str = "";

    async fn write_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        if ticks.is_empty() {
            return Ok(0);
        }
        match self.copy_ticks(ticks).await? {
            Copied::All(rows) => Ok(rows),
            Copied::Overlap => {
                tracing::debug!(
                    ticks = ticks.len(),
                    "tick batch overlaps stored ticks; writing it idempotently"
                );
                self.write_chunked(ticks, "inserting ticks", tick_query)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::{Decimal, Symbol, TickKind};

    #[test]
    fn copy_rows_escape_text_and_mark_nulls() {
        let mut with_id = Tick::new(
            Symbol::parse("AAPL").unwrap(),
            "a\\b\tc",
            TickKind::Trade,
            Decimal::new(12345, 2),
            Decimal::new(-5, 3),
            1,
            2,
        );
        with_id.trade_id = Some("x\ny\r".into());
        with_id.sequence = Some(u64::MAX);
        with_id.bid = Some(Decimal::new(1, 0));
        let hashed = Tick::new(
            Symbol::parse("MSFT").unwrap(),
            "sim",
            TickKind::Quote,
            Decimal::new(1, 1),
            Decimal::new(2, 0),
            3,
            4,
        );
        let data = String::from_utf8(copy_rows(&[with_id, hashed.clone()])).unwrap();
        let lines: Vec<&str> = data.lines().collect();
        assert_eq!(
            lines[0],
            "AAPL\ta\\\\b\\tc\ttrade\t123.45\t-0.005\t1\t\\N\tx\\ny\\r\t-1\t\\N\t1\t2\t\\N"
        );
        let hex: String = hashed
            .content_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            lines[1],
            format!("MSFT\tsim\tquote\t0.1\t2\t\\N\t\\N\t\\N\t\\N\t\\N\t3\t4\t\\\\x{hex}")
        );
    }
}
