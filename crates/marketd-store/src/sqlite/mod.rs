//! The SQLite backend: one file (or `sqlite::memory:` for tests), WAL
//! journal, one writer connection and a small pool of readers (sqlx), plus a
//! dedicated rusqlite connection that inserts ticks (the ingest hot path, see
//! `tick_writer`) on a thread of its own (`writer_thread`); the writers take
//! turns through one gate.
//!
//! This module connects and migrates; each aggregate's SQL of this dialect
//! lives in its own file beside it (`ticks.rs`, `series.rs`, `requests.rs`,
//! `jobs.rs`, `access.rs`), the schema in `migrations/sqlite/`.
//!
//! Exact decimals: SQLite turns a decimal written as text into a NUMERIC
//! column into INTEGER or REAL, and REAL keeps only about 15 significant
//! digits (`123456789.123456789` would come back as `123456789.123457`).
//! So each decimal column `x` has a companion `x_exact TEXT` that holds the
//! exact text whenever the value has more than 15 significant digits, and
//! reads use `COALESCE(x_exact, CAST(x AS TEXT))`. Plain SQL on `x` still sees
//! a number.

use crate::backend::Backend;
use crate::error::During;
use crate::{BoxError, Error, Result, Store, StoreOptions};
use marketd_model::Decimal;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod access;
mod jobs;
mod requests;
mod series;
mod signals;
mod tick_writer;
mod ticks;
mod writer_thread;

use tick_writer::TickWriter;
use writer_thread::WriterThread;

/// Embedded migrations of the SQLite dialect.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for a lock held by another connection or
/// process before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of the writer connection (negative: KiB), so index pages
/// touched by consecutive batches stay in memory.
const WRITER_CACHE_KIB: &str = "-32768";

/// SQLite's default limit on bound parameters per statement (3.32+).
const MAX_PARAMS: usize = 32_766;

/// Values with more significant digits than this may not survive SQLite's
/// REAL conversion, so their exact text is kept in the `_exact` column.
const REAL_SAFE_DIGITS: u32 = 15;

/// The SQLite storage backend. Cheap to clone (shared pools).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: SQLite has a single writer per database, so writes
    /// queue here instead of spinning on `SQLITE_BUSY`.
    write: SqlitePool,
    /// Readers (WAL lets them run beside the writer). The same pool as
    /// `write` for in-memory databases, which exist per connection.
    read: SqlitePool,
    /// File databases: a second writer connection (rusqlite, on a thread of
    /// its own, see `writer_thread`) for `insert_ticks`, the hot path, and
    /// for the bars and indicators the sinks write beside it (one connection
    /// keeps its page cache: another connection's commit would empty it).
    /// `None` for in-memory databases, whose ticks go through `write`.
    ticks: Option<Arc<WriterThread>>,
    /// Held for every write transaction (on `write` or `ticks`), so the two
    /// writer connections take turns instead of sleeping in SQLite's busy
    /// handler.
    gate: Arc<tokio::sync::Mutex<()>>,
    /// Whether the last tick insert found the disk full (readiness).
    health: Arc<crate::error::WriteHealth>,
    location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Location {
    Memory,
    File(PathBuf),
}

impl SqliteStore {
    /// Opens (creating it and its parent directories when missing) the
    /// database file at `path`.
    pub async fn open(path: &Path, opts: &StoreOptions) -> Result<Self> {
        let url = format!("sqlite://{}", path.display());
        let connect_err = |source: BoxError| Error::Connect {
            url: url.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| connect_err(e.into()))?;
        }
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            // Checkpoint every ~16 MiB of WAL rather than 4 MiB: hot index
            // pages rewritten by consecutive batches are copied back less often.
            .pragma("wal_autocheckpoint", "4000")
            .disable_statement_logging();
        // The writer is opened first so it creates the file and switches it
        // to WAL before any reader connects.
        let write = single_connection()
            .connect_with(base.clone().pragma("cache_size", WRITER_CACHE_KIB))
            .await
            .map_err(|e| connect_err(e.into()))?;
        let gate = Arc::default();
        let ticks = {
            let path = path.to_path_buf();
            let writer = tokio::task::spawn_blocking(move || TickWriter::open(&path))
                .await
                .map_err(|e| connect_err(e.into()))?
                .map_err(|e| connect_err(e.into()))?;
            WriterThread::start(writer, Arc::clone(&gate)).map_err(|e| connect_err(e.into()))?
        };
        let read = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base)
            .await
            .map_err(|e| connect_err(e.into()))?;
        Ok(SqliteStore {
            write,
            read,
            ticks: Some(Arc::new(ticks)),
            gate,
            health: Arc::default(),
            location: Location::File(path.to_path_buf()),
        })
    }

    /// A private in-memory database (for tests): one connection that lives
    /// as long as the store, since an in-memory database dies with its
    /// connection.
    pub async fn memory() -> Result<Self> {
        let opts = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true)
            .disable_statement_logging();
        let pool = single_connection()
            .connect_with(opts)
            .await
            .map_err(|e| Error::Connect {
                url: "sqlite::memory:".into(),
                source: e.into(),
            })?;
        Ok(SqliteStore {
            write: pool.clone(),
            read: pool,
            ticks: None,
            gate: Arc::default(),
            health: Arc::default(),
            location: Location::Memory,
        })
    }

    /// The database file, `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::Memory => None,
            Location::File(p) => Some(p),
        }
    }
}

/// A pool of one connection kept open for the store's lifetime: the
/// writer (SQLite has one per database), or an in-memory database (which
/// dies with its connection).
fn single_connection() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .idle_timeout(None)
        .max_lifetime(None)
}

// ---------------------------------------------------------------------------
// Decimals

/// The text to write into a NUMERIC column, and the exact text to keep beside
/// it when SQLite's REAL could not hold the value.
fn dec_pair(d: &Decimal) -> (String, Option<String>) {
    let text = d.to_string();
    let n = d.normalize();
    let digits = n
        .mantissa()
        .unsigned_abs()
        .checked_ilog10()
        .map_or(1, |l| l + 1);
    if digits > REAL_SAFE_DIGITS {
        (text.clone(), Some(text))
    } else {
        (text, None)
    }
}

// ---------------------------------------------------------------------------
// Multi-row inserts

/// Cached `INSERT ... VALUES (...), (...) ... <suffix>` texts for one table,
/// one per power-of-two row count up to the largest that stays under
/// [`MAX_PARAMS`]. Batches are cut into power-of-two chunks, so only a dozen
/// distinct statements exist per table and each stays prepared in the
/// connection's statement cache.
struct InsertSql {
    /// `by_log2[k]` inserts `2^k` rows.
    by_log2: Vec<String>,
}

impl InsertSql {
    fn new(head: &str, cols: usize, tail: &str, max_rows: usize) -> Self {
        assert!(cols * max_rows <= MAX_PARAMS);
        let mut by_log2 = Vec::new();
        let mut rows = 1;
        while rows <= max_rows {
            let mut sql = String::with_capacity(head.len() + tail.len() + rows * (cols * 2 + 3));
            sql.push_str(head);
            sql.push_str(" VALUES ");
            for r in 0..rows {
                if r > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for c in 0..cols {
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push('?');
                }
                sql.push(')');
            }
            sql.push(' ');
            sql.push_str(tail);
            by_log2.push(sql);
            rows *= 2;
        }
        InsertSql { by_log2 }
    }

    fn max_rows(&self) -> usize {
        1 << (self.by_log2.len() - 1)
    }

    /// Chunk sizes covering `n` rows: full chunks of the largest size, then
    /// the binary digits of the remainder, largest first.
    fn chunks(&self, n: usize) -> Vec<usize> {
        let max = self.max_rows();
        let mut out = vec![max; n / max];
        let rest = n % max;
        let mut bit = max;
        while bit > 0 {
            if rest & bit != 0 {
                out.push(bit);
            }
            bit >>= 1;
        }
        out
    }

    /// The statement for `rows` rows (a power of two; 1 for the writer
    /// connection's single-row statements).
    fn sql(&self, rows: usize) -> &str {
        debug_assert!(rows.is_power_of_two());
        &self.by_log2[rows.trailing_zeros() as usize]
    }
}

/// A statement of this dialect with its binds.
type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

impl SqliteStore {
    /// Whether this store has the rusqlite writer connection (file
    /// databases).
    fn has_writer(&self) -> bool {
        self.ticks.is_some()
    }

    /// Runs `f` on the rusqlite writer connection, on its thread and after
    /// the writes queued before it, holding the write gate. File databases
    /// only ([`Self::has_writer`]).
    async fn on_writer<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&TickWriter) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let Some(writer) = &self.ticks else {
            return Err(Error::Database {
                op,
                source: "no writer connection (in-memory database)".into(),
            });
        };
        writer.run(op, f).await
    }

    /// Runs `items` through the chunked statements of `sql` in one write
    /// transaction; returns the total of `rows_affected`.
    ///
    /// Pipelined: while SQLite (on sqlx's worker thread) executes one chunk,
    /// this task encodes the arguments of the next.
    async fn write_chunked<'a, T: Sync>(
        &self,
        op: &'static str,
        sql: &'static InsertSql,
        items: &'a [T],
        bind: for<'q> fn(SqliteQuery<'q>, &'q T) -> SqliteQuery<'q>,
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let build = |chunk: &'a [T]| {
            let mut q = sqlx::query(sql.sql(chunk.len()));
            for item in chunk {
                q = bind(q, item);
            }
            q
        };
        let mut chunks = Vec::new();
        let mut rest = items;
        for n in sql.chunks(items.len()) {
            let (chunk, tail) = rest.split_at(n);
            chunks.push(chunk);
            rest = tail;
        }
        let mut chunks = chunks.into_iter();
        let _gate = self.gate.lock().await;
        // The transaction is managed by hand, not by `sqlx::Transaction`:
        // when SQLite rolls a transaction back by itself (SQLITE_FULL does),
        // sqlx's rollback on drop fails and leaves its transaction depth
        // at one, and every later write on the connection fails with
        // "begin_with at non-zero transaction depth", long after space has
        // returned. A ROLLBACK that finds no transaction is harmless.
        let mut conn = self.write.acquire().await.during(op)?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .during(op)?;
        let res: Result<u64> = async {
            let mut affected = 0;
            let mut next = chunks.next().map(build);
            while let Some(q) = next.take() {
                let (done, built) =
                    tokio::join!(q.execute(&mut *conn), async { chunks.next().map(build) });
                affected += done.during(op)?.rows_affected();
                next = built;
            }
            sqlx::query("COMMIT").execute(&mut *conn).await.during(op)?;
            Ok(affected)
        }
        .await;
        if res.is_err() {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
        }
        res
    }
}

impl Backend for SqliteStore {
    type Db = Sqlite;

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        Some(self.gate.lock().await)
    }
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        let _gate = self.gate.lock().await;
        MIGRATOR.run(&self.write).await.map_err(|e| Error::Migrate {
            dialect: "sqlite",
            source: e.into(),
        })
    }

    /// The database answers, and the last tick insert did not find the
    /// disk full (reads work on a full disk, ingest does not).
    async fn ping(&self) -> Result<()> {
        self.health.check()?;
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .during("pinging the database")?;
        Ok(())
    }

    /// Closes every connection (checkpointing the WAL); later calls fail.
    async fn close(&self) {
        if let Some(w) = &self.ticks {
            let w = w.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || w.close()).await {
                tracing::warn!(error = %e, "closing the tick writer failed");
            }
        }
        self.read.close().await;
        self.write.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that finds the disk full (here: the writing connection's
    /// `max_page_count`) fails as [`Error::Full`], and once space returns
    /// the same connection writes again: before the fix, sqlx's transaction
    /// depth stayed at one after SQLite's own rollback and every later
    /// bars/indicators write failed for good. Both writers: sqlx's (an
    /// in-memory database) and the rusqlite writer of file databases.
    #[tokio::test]
    async fn the_writer_recovers_after_the_disk_was_full() {
        let dir = tempfile::tempdir().unwrap();
        let file = SqliteStore::open(&dir.path().join("t.db"), &StoreOptions::default())
            .await
            .unwrap();
        for store in [SqliteStore::memory().await.unwrap(), file] {
            recovers_after_full(store).await;
        }
    }

    /// Sets `max_page_count` on the connection that writes bars.
    async fn limit_pages(store: &SqliteStore, extra: Option<i64>) {
        if store.has_writer() {
            store
                .on_writer("limiting pages", move |w| {
                    w.transaction("limiting pages", |tx| {
                        let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                        let max = extra.map_or(1_000_000, |e| pages + e);
                        tx.query_row(&format!("PRAGMA max_page_count = {max}"), [], |_| Ok(()))
                    })
                })
                .await
                .unwrap();
            return;
        }
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.write)
            .await
            .unwrap();
        let max = extra.map_or(1_000_000, |e| pages + e);
        sqlx::query(&format!("PRAGMA max_page_count = {max}"))
            .execute(&store.write)
            .await
            .unwrap();
    }

    async fn recovers_after_full(store: SqliteStore) {
        use crate::{BarQuery, SeriesStore, Store};
        use marketd_model::{Bar, Interval, Symbol, Tick, TickKind};
        store.migrate().await.unwrap();
        let bars = |from: i64, n: i64| -> Vec<Bar> {
            (from..from + n)
                .map(|i| {
                    let t = Tick::new(
                        Symbol::parse("AAPL").unwrap(),
                        "sim",
                        TickKind::Trade,
                        Decimal::new(100 + i, 0),
                        Decimal::ONE,
                        i * 1_000_000_000,
                        i * 1_000_000_000,
                    );
                    Bar::open_with(&t, Interval::S1)
                })
                .collect()
        };
        limit_pages(&store, Some(2)).await;
        let mut full = None;
        for k in 0..50 {
            if let Err(e) = store.upsert_bars(&bars(k * 1000, 1000)).await {
                full = Some(e);
                break;
            }
        }
        let full = full.expect("the page limit was reached");
        assert!(full.is_full(), "{full:?}");
        // Space returns: the next write on the same connection succeeds.
        limit_pages(&store, None).await;
        store.upsert_bars(&bars(900_000, 10)).await.unwrap();
        let q = BarQuery {
            symbol: Symbol::parse("AAPL").unwrap(),
            source: Some("sim".into()),
            interval: Interval::S1,
            from: Some(900_000 * 1_000_000_000),
            to: None,
            limit: 100,
        };
        assert_eq!(store.bars(&q).await.unwrap().len(), 10);
    }

    #[test]
    fn keeps_exact_text_only_when_real_would_round() {
        let d = |s: &str| -> Decimal { s.parse().unwrap() };
        assert_eq!(dec_pair(&d("65432.10")), ("65432.10".into(), None));
        assert_eq!(
            dec_pair(&d("123456789012345")),
            ("123456789012345".into(), None)
        );
        assert_eq!(dec_pair(&d("0")), ("0".into(), None));
        let long = "123456789.123456789";
        assert_eq!(dec_pair(&d(long)), (long.into(), Some(long.into())));
        assert!(dec_pair(&d("1234567890123456")).1.is_some());
        assert!(dec_pair(&d("100000000000000000000")).1.is_some());
    }

    #[test]
    fn chunks_are_powers_of_two_covering_the_batch() {
        let sql = InsertSql::new("INSERT INTO t (a, b)", 2, "", 1024);
        assert_eq!(sql.max_rows(), 1024);
        for n in [0, 1, 2, 3, 1023, 1024, 1025, 5000, 12_345] {
            let chunks = sql.chunks(n);
            assert_eq!(chunks.iter().sum::<usize>(), n);
            assert!(chunks.iter().all(|c| c.is_power_of_two() && *c <= 1024));
        }
        assert_eq!(sql.sql(4).matches('?').count(), 4 * 2);
    }
}
