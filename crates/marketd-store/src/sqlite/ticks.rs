//! Ticks in SQLite: reads through the sqlx readers; inserts through the
//! tick writer (file databases) or, for in-memory databases, the same
//! statements on the sqlx writer.

use super::tick_writer::{EncodedTicks, Num, OP, TICK_IDS_ADVANCE, TICK_IDS_NEXT, TICK_INSERT_ONE};
use super::{SqliteQuery, SqliteStore};
use crate::Result;
use crate::error::During;
use crate::ticks::TickSql;
use marketd_model::Tick;

const SELECT: &str = "SELECT id, symbol, source, kind, \
     COALESCE(price_exact, CAST(price AS TEXT)), COALESCE(size_exact, CAST(size AS TEXT)), \
     COALESCE(bid_exact, CAST(bid AS TEXT)), COALESCE(ask_exact, CAST(ask AS TEXT)), \
     trade_id, sequence, venue_symbol, ts_event, ts_received FROM ticks";

/// Appended to [`SELECT`] when a source is given: without statistics
/// the planner would rather walk the symbol's rows of every source in the
/// primary key (already in (ts_event, id) order) than seek the source's rows
/// and sort ties of one ts_event.
const INDEX_HINT: &str = " INDEXED BY ticks_source_symbol_ts";

impl SqliteStore {
    /// `insert_ticks` of in-memory databases (tests), which live in the one
    /// sqlx connection: the tick writer's statements, row by row.
    async fn insert_ticks_sqlx(&self, rows: &EncodedTicks) -> Result<u64> {
        fn num<'q>(q: SqliteQuery<'q>, rows: &'q EncodedTicks, n: Num) -> SqliteQuery<'q> {
            match n {
                Num::Null => q.bind(None::<i64>),
                Num::Int(i) => q.bind(i),
                Num::Real(r) => q.bind(r),
                Num::Text(s) => q.bind(rows.str(s)),
            }
        }
        let _gate = self.gate.lock().await;
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await.during(OP)?;
        let first: i64 = sqlx::query_scalar(TICK_IDS_NEXT)
            .fetch_one(&mut *tx)
            .await
            .during(OP)?;
        let mut inserted = 0;
        for (id, r) in (first..).zip(&rows.rows) {
            let q = sqlx::query(TICK_INSERT_ONE)
                .bind(rows.str(r.symbol))
                .bind(rows.str(r.source))
                .bind(r.kind);
            let q = num(q, rows, r.price).bind(rows.opt(r.price_exact));
            let q = num(q, rows, r.size).bind(rows.opt(r.size_exact));
            let q = num(q, rows, r.bid).bind(rows.opt(r.bid_exact));
            let q = num(q, rows, r.ask).bind(rows.opt(r.ask_exact));
            let q = q
                .bind(rows.opt(r.trade_id))
                .bind(r.sequence)
                .bind(rows.opt(r.venue_symbol))
                .bind(r.ts_event)
                .bind(r.ts_received)
                .bind(r.tick_key)
                .bind(id);
            inserted += q.execute(&mut *tx).await.during(OP)?.rows_affected();
        }
        sqlx::query(TICK_IDS_ADVANCE)
            .bind(rows.rows.len() as i64)
            .execute(&mut *tx)
            .await
            .during(OP)?;
        tx.commit().await.during(OP)?;
        Ok(inserted)
    }
}

impl TickSql for SqliteStore {
    const TICK_SELECT: &'static str = SELECT;
    const BY_SOURCE: &'static str = INDEX_HINT;

    async fn write_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        if ticks.is_empty() {
            return Ok(0);
        }
        // Encoded here (owned, so it can move to the blocking thread) before
        // waiting for the gate, then inserted on a blocking thread.
        let rows = EncodedTicks::new(ticks);
        if !self.has_writer() {
            let res = self.insert_ticks_sqlx(&rows).await;
            self.health.observe(&res);
            return res;
        }
        let res = self.on_writer(OP, move |w| w.insert(&rows)).await;
        self.health.observe(&res);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tick read of the TickStore trait seeks an index (the clustered
    /// primary key or ticks_source_symbol_ts), never scans the table.
    #[test]
    fn tick_reads_are_indexed() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../../migrations/sqlite/0001_init.sql"))
            .unwrap();
        let cursor = " AND (ts_event, id) > (?, ?)";
        for (by_source, rest) in [
            (
                false,
                " AND ts_event >= ? ORDER BY ts_event DESC, id DESC LIMIT 1",
            ),
            (
                true,
                " AND source = ? ORDER BY ts_event DESC, id DESC LIMIT 1",
            ),
            (
                false,
                " AND ts_event >= ? AND ts_event < ? {c} ORDER BY ts_event ASC, id ASC LIMIT ?",
            ),
            (
                true,
                " AND source = ? AND ts_event >= ? {c} ORDER BY ts_event ASC, id ASC LIMIT ?",
            ),
            (
                true,
                " AND source = ? {c} ORDER BY ts_event ASC, id ASC LIMIT ?",
            ),
        ] {
            let from = if by_source {
                format!("{SELECT}{INDEX_HINT}")
            } else {
                SELECT.to_string()
            };
            let sql = format!(
                "EXPLAIN QUERY PLAN {from} WHERE symbol = ?{}",
                rest.replace("{c}", cursor)
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params_from_iter(std::iter::repeat_n(1, stmt.parameter_count())),
                    |r| r.get(3),
                )
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let want = if by_source {
                "SEARCH ticks USING INDEX ticks_source_symbol_ts (source=? AND symbol=?"
            } else {
                "SEARCH ticks USING PRIMARY KEY (symbol=?"
            };
            assert!(plan[0].starts_with(want), "{sql}: {plan:?}");
        }
    }
}
