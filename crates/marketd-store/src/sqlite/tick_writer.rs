//! The SQLite tick writer (file databases): `insert_ticks` is the ingest
//! hot path. Through sqlx every bound value is an owned, boxed argument and
//! every statement a round trip to sqlx's worker thread; here one rusqlite
//! connection (the same bundled SQLite: sqlx-sqlite and rusqlite share
//! libsqlite3-sys) runs a cached single-row statement per tick inside one
//! transaction per batch, on a blocking thread. Rows are first encoded into
//! one owned buffer ([`EncodedTicks`]), decimals as the INTEGER or REAL SQLite
//! would have made of their text anyway (see [`EncodedTicks::decimal`]).

use super::{BUSY_TIMEOUT, REAL_SAFE_DIGITS};
use crate::error::During;
use crate::{Error, Result};
use marketd_model::{Decimal, Tick};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// What this writer's failures say they were doing.
pub(super) const OP: &str = "inserting ticks";

/// Page cache of the tick writer (negative: KiB): the tick indexes are the
/// largest structures written.
const TICK_WRITER_CACHE_KIB: i64 = -65_536;

/// One row of `ticks`. No conflict target: either identity index may fire
/// (see the migration).
pub(super) const TICK_INSERT_ONE: &str = "INSERT INTO ticks (symbol, source, kind, price, price_exact, size, size_exact, \
     bid, bid_exact, ask, ask_exact, trade_id, sequence, venue_symbol, ts_event, ts_received, tick_key, id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
     ON CONFLICT DO NOTHING";

/// The first id of a batch; the batch then takes `next .. next + len`.
pub(super) const TICK_IDS_NEXT: &str = "SELECT next FROM tick_ids";
pub(super) const TICK_IDS_ADVANCE: &str = "UPDATE tick_ids SET next = next + ?";

/// The `tick_key` of `t`: `None` with a trade id (`ticks_trade_identity`
/// dedupes those on `trade_id`), else the first 64 bits of its content hash
/// (the hash of its `h:<hex>` identity).
fn tick_key(t: &Tick) -> Option<i64> {
    if t.trade_id.is_some() {
        return None;
    }
    let h = t.content_hash();
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[..8]);
    Some(u64::from_be_bytes(first) as i64)
}

/// A byte range of [`EncodedTicks::text`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Span(u32, u32);

/// A decimal as bound into a NUMERIC column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    Null,
    Int(i64),
    Real(f64),
    Text(Span),
}

#[derive(Debug)]
pub(super) struct TickRow {
    pub(super) symbol: Span,
    pub(super) source: Span,
    pub(super) kind: &'static str,
    pub(super) price: Num,
    pub(super) price_exact: Option<Span>,
    pub(super) size: Num,
    pub(super) size_exact: Option<Span>,
    pub(super) bid: Num,
    pub(super) bid_exact: Option<Span>,
    pub(super) ask: Num,
    pub(super) ask_exact: Option<Span>,
    pub(super) trade_id: Option<Span>,
    pub(super) sequence: Option<i64>,
    pub(super) venue_symbol: Option<Span>,
    pub(super) ts_event: i64,
    pub(super) ts_received: i64,
    pub(super) tick_key: Option<i64>,
}

/// A batch of ticks encoded for the tick writer: every text in one buffer.
#[derive(Debug, Default)]
pub(super) struct EncodedTicks {
    text: String,
    pub(super) rows: Vec<TickRow>,
}

/// `10^k` for `k <= 22`: exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl EncodedTicks {
    pub(super) fn new(ticks: &[Tick]) -> Self {
        let mut e = EncodedTicks {
            text: String::with_capacity(ticks.len() * 64),
            rows: Vec::with_capacity(ticks.len()),
        };
        for t in ticks {
            let (price, price_exact) = e.decimal(&t.price);
            let (size, size_exact) = e.decimal(&t.size);
            let (bid, bid_exact) = t.bid.as_ref().map_or((Num::Null, None), |d| e.decimal(d));
            let (ask, ask_exact) = t.ask.as_ref().map_or((Num::Null, None), |d| e.decimal(d));
            let row = TickRow {
                symbol: e.push(t.symbol.as_str()),
                source: e.push(&t.source),
                kind: t.kind.as_str(),
                price,
                price_exact,
                size,
                size_exact,
                bid,
                bid_exact,
                ask,
                ask_exact,
                trade_id: t.trade_id.as_deref().map(|s| e.push(s)),
                // Bit-preserving: sequences above i64::MAX come back unchanged.
                sequence: t.sequence.map(|s| s as i64),
                venue_symbol: t.venue_symbol.as_deref().map(|s| e.push(s)),
                ts_event: t.ts_event,
                ts_received: t.ts_received,
                tick_key: tick_key(t),
            };
            e.rows.push(row);
        }
        e
    }

    fn span_from(&self, start: usize) -> Span {
        Span(start as u32, self.text.len() as u32)
    }

    fn push(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(s);
        self.span_from(start)
    }

    /// What to bind for `d` in its NUMERIC column, and the exact text for
    /// its `_exact` companion (see [`dec_pair`], whose rows this stores the
    /// same): values SQLite's REAL holds (at most 15 significant digits) are
    /// bound as the INTEGER or REAL that NUMERIC affinity would have made of
    /// their text, which saves formatting and SQLite's parsing; the rest as
    /// text, kept exactly beside.
    pub(super) fn decimal(&mut self, d: &Decimal) -> (Num, Option<Span>) {
        let n = d.normalize();
        let mantissa = n.mantissa();
        let digits = mantissa
            .unsigned_abs()
            .checked_ilog10()
            .map_or(1, |l| l + 1);
        if digits <= REAL_SAFE_DIGITS {
            // |mantissa| < 10^15 < 2^53: exact as i64 and f64.
            let scale = n.scale() as usize;
            if scale == 0 {
                return (Num::Int(mantissa as i64), None);
            }
            if let Some(p) = POW10.get(scale) {
                // One correctly rounded division of exact operands: the
                // nearest double, as SQLite's text conversion yields.
                return (Num::Real(mantissa as f64 / p), None);
            }
        }
        let start = self.text.len();
        let _ = write!(self.text, "{d}");
        let span = self.span_from(start);
        let exact = (digits > REAL_SAFE_DIGITS).then_some(span);
        (Num::Text(span), exact)
    }

    pub(super) fn str(&self, s: Span) -> &str {
        &self.text[s.0 as usize..s.1 as usize]
    }

    pub(super) fn num(&self, n: Num) -> rusqlite::types::ToSqlOutput<'_> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        ToSqlOutput::Borrowed(match n {
            Num::Null => ValueRef::Null,
            Num::Int(i) => ValueRef::Integer(i),
            Num::Real(r) => ValueRef::Real(r),
            Num::Text(s) => ValueRef::Text(self.str(s).as_bytes()),
        })
    }

    pub(super) fn opt(&self, s: Option<Span>) -> Option<&str> {
        s.map(|s| self.str(s))
    }
}

/// The dedicated rusqlite connection that inserts ticks into a file
/// database; `None` once closed.
pub(super) struct TickWriter {
    conn: Mutex<Option<rusqlite::Connection>>,
}

impl std::fmt::Debug for TickWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TickWriter").finish_non_exhaustive()
    }
}

impl TickWriter {
    /// Opens the (existing, WAL) database file with the same settings as
    /// the sqlx connections, and a bigger page cache.
    pub(super) fn open(path: &Path) -> rusqlite::Result<TickWriter> {
        use rusqlite::OpenFlags;
        let conn = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        debug_assert_eq!(mode, "wal");
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "cache_size", TICK_WRITER_CACHE_KIB)?;
        conn.query_row("PRAGMA wal_autocheckpoint = 4000", [], |_| Ok(()))?;
        Ok(TickWriter {
            conn: Mutex::new(Some(conn)),
        })
    }

    pub(super) fn close(&self) {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Err((_, e))) = conn.map(rusqlite::Connection::close) {
            tracing::warn!(error = %e, "closing the tick writer failed");
        }
    }

    /// Runs `f` in one `IMMEDIATE` transaction on this connection and
    /// commits; `op` names what failed.
    pub(super) fn transaction<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = guard.as_mut().ok_or_else(|| Error::Database {
            op,
            source: "the writer connection is closed".into(),
        })?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .during(op)?;
        let out = f(&tx).during(op)?;
        tx.commit().during(op)?;
        Ok(out)
    }

    /// Inserts `rows` in one transaction; returns how many were new.
    pub(super) fn insert(&self, rows: &EncodedTicks) -> Result<u64> {
        self.transaction(OP, |tx| {
            let first: i64 = tx
                .prepare_cached(TICK_IDS_NEXT)
                .and_then(|mut s| s.query_row([], |r| r.get(0)))?;
            let mut inserted = 0u64;
            {
                let mut stmt = tx.prepare_cached(TICK_INSERT_ONE)?;
                for (id, r) in (first..).zip(&rows.rows) {
                    inserted += insert_row(&mut stmt, rows, r, id)? as u64;
                }
            }
            tx.prepare_cached(TICK_IDS_ADVANCE)
                .and_then(|mut s| s.execute([rows.rows.len() as i64]))?;
            Ok(inserted)
        })
    }
}

/// Binds and runs the insert of one row (`id` is its tick id).
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &EncodedTicks,
    r: &TickRow,
    id: i64,
) -> rusqlite::Result<usize> {
    stmt.raw_bind_parameter(1, rows.str(r.symbol))?;
    stmt.raw_bind_parameter(2, rows.str(r.source))?;
    stmt.raw_bind_parameter(3, r.kind)?;
    stmt.raw_bind_parameter(4, rows.num(r.price))?;
    stmt.raw_bind_parameter(5, rows.opt(r.price_exact))?;
    stmt.raw_bind_parameter(6, rows.num(r.size))?;
    stmt.raw_bind_parameter(7, rows.opt(r.size_exact))?;
    stmt.raw_bind_parameter(8, rows.num(r.bid))?;
    stmt.raw_bind_parameter(9, rows.opt(r.bid_exact))?;
    stmt.raw_bind_parameter(10, rows.num(r.ask))?;
    stmt.raw_bind_parameter(11, rows.opt(r.ask_exact))?;
    stmt.raw_bind_parameter(12, rows.opt(r.trade_id))?;
    stmt.raw_bind_parameter(13, r.sequence)?;
    stmt.raw_bind_parameter(14, rows.opt(r.venue_symbol))?;
    stmt.raw_bind_parameter(15, r.ts_event)?;
    stmt.raw_bind_parameter(16, r.ts_received)?;
    stmt.raw_bind_parameter(17, r.tick_key)?;
    stmt.raw_bind_parameter(18, id)?;
    stmt.raw_execute()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The tick writer binds decimals as numbers where the old path bound
    /// text: SQLite must store exactly the same values either way.
    #[test]
    fn bound_decimals_store_like_their_text() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a NUMERIC, a_exact TEXT, b NUMERIC, b_exact TEXT)")
            .unwrap();
        let mut values: Vec<Decimal> = [
            "0",
            "-0",
            "0.00",
            "7",
            "-7",
            "65432.10",
            "0.1",
            "0.0000001",
            "1e-22",
            "99999.99999999999",
            "123456789012345.6",
            "123456789012345",
            "-123456789012345",
            "999999999999999",
            "0.000000000000000000000001",
            "1.5e-20",
            "3000.50",
            "100.00",
            "-0.5",
        ]
        .iter()
        .map(|s| {
            Decimal::from_str(s)
                .or_else(|_| Decimal::from_scientific(s))
                .unwrap()
        })
        .collect();
        // Pseudo-random mantissas of every length at every scale.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for scale in 0..=28u32 {
            for digits in 1..=18u32 {
                for _ in 0..6 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let m = (x % 10u64.pow(digits)) as i64;
                    let m = if x & 1 == 0 { m } else { -m };
                    values.push(Decimal::new(m, scale));
                }
            }
        }
        let mut enc = EncodedTicks::default();
        for d in &values {
            let (text, exact) = super::super::dec_pair(d);
            let (num, num_exact) = enc.decimal(d);
            conn.execute(
                "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![text, exact, enc.num(num), enc.opt(num_exact)],
            )
            .unwrap();
        }
        let mut stmt = conn
            .prepare("SELECT quote(a), quote(a_exact), quote(b), quote(b_exact), typeof(a), typeof(b) FROM t")
            .unwrap();
        let rows: Vec<[String; 6]> = stmt
            .query_map([], |r| Ok(std::array::from_fn(|i| r.get(i).unwrap())))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), values.len());
        for (row, d) in rows.iter().zip(&values) {
            assert_eq!(
                (&row[0], &row[1], &row[4]),
                (&row[2], &row[3], &row[5]),
                "{d}"
            );
        }
    }
}
