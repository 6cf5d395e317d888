//! The SQLite backend: one file (or `sqlite::memory:` for tests), WAL
//! journal, one writer connection and a small pool of readers (sqlx), plus a
//! dedicated rusqlite connection that inserts ticks (the ingest hot path, see
//! `TickWriter`); the writers take turns through one async gate.
//!
//! Every SQL statement of this dialect lives in this module and in
//! `migrations/sqlite/`.
//!
//! Exact decimals: SQLite turns a decimal written as text into a NUMERIC
//! column into INTEGER or REAL, and REAL keeps only about 15 significant
//! digits (`123456789.123456789` would come back as `123456789.123457`).
//! So each decimal column `x` has a companion `x_exact TEXT` that holds the
//! exact text whenever the value has more than 15 significant digits, and
//! reads use `COALESCE(x_exact, CAST(x AS TEXT))`. Plain SQL on `x` still sees
//! a number.

use crate::{BarQuery, Error, IndicatorQuery, Result, Store, StoreOptions, TickPage, TickQuery};
use marketd_model::{
    ApiKey, Bar, Decimal, Indicator, Interval, JobStatus, MaKind, PollingJob, PriceRequest,
    RequestOutcome, Role, SealedSecret, StoredCredential, Symbol, Tick, TickKind,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, QueryBuilder, Row, Sqlite};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use uuid::Uuid;

/// Embedded migrations of the SQLite dialect.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a connection waits for a lock held by another connection or
/// process before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Page cache of the writer connection (negative: KiB), so index pages
/// touched by consecutive batches stay in memory.
const WRITER_CACHE_KIB: &str = "-32768";

/// Page cache of the tick writer (negative: KiB): the tick indexes are the
/// largest structures written.
const TICK_WRITER_CACHE_KIB: i64 = -65_536;

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
    /// File databases: a second writer connection (rusqlite, on a blocking
    /// thread) for `insert_ticks`, the hot path. `None` for in-memory
    /// databases, whose ticks go through `write`.
    ticks: Option<Arc<TickWriter>>,
    /// Held for every write transaction (on `write` or `ticks`), so the two
    /// writer connections take turns instead of sleeping in SQLite's busy
    /// handler.
    gate: Arc<tokio::sync::Mutex<()>>,
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
        let connect_err = |source| Error::Connect {
            url: url.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| connect_err(sqlx::Error::Io(e)))?;
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
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(base.clone().pragma("cache_size", WRITER_CACHE_KIB))
            .await
            .map_err(connect_err)?;
        let ticks = {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || TickWriter::open(&path))
                .await
                .map_err(|e| connect_err(sqlx::Error::Io(std::io::Error::other(e))))?
                .map_err(|e| connect_err(sqlx::Error::Io(std::io::Error::other(e))))?
        };
        let read = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base)
            .await
            .map_err(connect_err)?;
        Ok(SqliteStore {
            write,
            read,
            ticks: Some(Arc::new(ticks)),
            gate: Arc::default(),
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
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await
            .map_err(|source| Error::Connect {
                url: "sqlite::memory:".into(),
                source,
            })?;
        Ok(SqliteStore {
            write: pool.clone(),
            read: pool,
            ticks: None,
            gate: Arc::default(),
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

    /// Closes every connection (checkpointing the WAL); later calls fail.
    pub async fn close(&self) {
        if let Some(w) = &self.ticks {
            let _gate = self.gate.lock().await;
            let w = w.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || w.close()).await {
                tracing::warn!(error = %e, "closing the tick writer failed");
            }
        }
        self.read.close().await;
        self.write.close().await;
    }
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

/// Parses what `COALESCE(x_exact, CAST(x AS TEXT))` returns: plain decimal
/// text, or SQLite's rendering of a REAL such as `1.0e+20` or `1.0e-07`.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if let Ok(d) = Decimal::from_str(s) {
        return Some(d);
    }
    if let Ok(d) = Decimal::from_scientific(s) {
        return Some(d);
    }
    // `from_scientific` refuses e.g. `1.0e-28` (the base's scale plus the
    // exponent exceeds 28): drop the base's trailing zeros and retry.
    let (base, exp) = s.split_once(['e', 'E'])?;
    let base = Decimal::from_str(base).ok()?.normalize();
    let exp: i64 = exp.parse().ok()?;
    let scale = i64::from(base.scale()) - exp;
    if scale >= 0 {
        Decimal::try_from_i128_with_scale(base.mantissa(), u32::try_from(scale).ok()?).ok()
    } else {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        Decimal::try_from_i128_with_scale(base.mantissa().checked_mul(factor)?, 0).ok()
    }
}

fn corrupt(table: &'static str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        table,
        detail: detail.into(),
    }
}

fn get_decimal(row: &SqliteRow, idx: usize, table: &'static str) -> Result<Decimal> {
    let s: String = row.try_get(idx)?;
    parse_decimal(&s).ok_or_else(|| corrupt(table, format!("bad decimal {s:?}")))
}

fn get_opt_decimal(row: &SqliteRow, idx: usize, table: &'static str) -> Result<Option<Decimal>> {
    let s: Option<String> = row.try_get(idx)?;
    s.map(|s| parse_decimal(&s).ok_or_else(|| corrupt(table, format!("bad decimal {s:?}"))))
        .transpose()
}

fn get_symbol(row: &SqliteRow, idx: usize, table: &'static str) -> Result<Symbol> {
    let s: &str = row.try_get(idx)?;
    Symbol::parse(s).map_err(|e| corrupt(table, e.to_string()))
}

fn get_uuid(row: &SqliteRow, idx: usize, table: &'static str) -> Result<Uuid> {
    let s: &str = row.try_get(idx)?;
    Uuid::parse_str(s).map_err(|e| corrupt(table, format!("bad id {s:?}: {e}")))
}

fn get_interval(row: &SqliteRow, idx: usize, table: &'static str) -> Result<Interval> {
    let s: &str = row.try_get(idx)?;
    s.parse()
        .map_err(|e: marketd_model::Error| corrupt(table, e.to_string()))
}

/// Interns source names while decoding a page, so rows share one `Arc<str>`.
#[derive(Default)]
struct Sources(HashMap<String, Arc<str>>);

impl Sources {
    fn get(&mut self, row: &SqliteRow, idx: usize) -> Result<Arc<str>> {
        let s: &str = row.try_get(idx)?;
        if let Some(a) = self.0.get(s) {
            return Ok(a.clone());
        }
        let a: Arc<str> = s.into();
        self.0.insert(s.to_string(), a.clone());
        Ok(a)
    }
}

fn to_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

fn to_u64(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
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

    fn sql(&self, rows: usize) -> &str {
        debug_assert!(rows.is_power_of_two());
        &self.by_log2[rows.trailing_zeros() as usize]
    }
}

const BAR_COLS: usize = 18;

fn bar_upsert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| {
        InsertSql::new(
            "INSERT INTO bars (source, symbol, interval, start, open, open_exact, high, high_exact, low, low_exact, \
             close, close_exact, volume, volume_exact, trades, first_ts, last_ts, closed)",
            BAR_COLS,
            "ON CONFLICT (source, symbol, interval, start) DO UPDATE SET \
             open = excluded.open, open_exact = excluded.open_exact, high = excluded.high, high_exact = excluded.high_exact, \
             low = excluded.low, low_exact = excluded.low_exact, close = excluded.close, close_exact = excluded.close_exact, \
             volume = excluded.volume, volume_exact = excluded.volume_exact, trades = excluded.trades, \
             first_ts = excluded.first_ts, last_ts = excluded.last_ts, closed = excluded.closed",
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

const PRICE_REQUEST_COLS: usize = 8;

fn price_request_insert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| {
        InsertSql::new(
            "INSERT INTO price_requests (id, symbol, provider, requested_at, outcome, latency_us, error, request_id)",
            PRICE_REQUEST_COLS,
            "ON CONFLICT (id) DO NOTHING",
            2048,
        )
    })
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

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
    q.bind(to_i64(b.trades))
        .bind(b.first_ts)
        .bind(b.last_ts)
        .bind(b.closed)
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

fn bind_price_request<'q>(q: SqliteQuery<'q>, x: &'q PriceRequest) -> SqliteQuery<'q> {
    q.bind(x.id.to_string())
        .bind(x.symbol.as_str())
        .bind(&*x.provider)
        .bind(x.requested_at)
        .bind(x.outcome.as_str())
        .bind(to_i64(x.latency_us))
        .bind(x.error.as_deref())
        .bind(x.request_id.as_deref())
}

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
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let first: i64 = sqlx::query_scalar(TICK_IDS_NEXT)
            .fetch_one(&mut *tx)
            .await?;
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
            inserted += q.execute(&mut *tx).await?.rows_affected();
        }
        sqlx::query(TICK_IDS_ADVANCE)
            .bind(rows.rows.len() as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// Runs `items` through the chunked statements of `sql` in one write
    /// transaction; returns the total of `rows_affected`.
    ///
    /// Pipelined: while SQLite (on sqlx's worker thread) executes one chunk,
    /// this task encodes the arguments of the next.
    async fn write_chunked<'a, T: Sync>(
        &self,
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
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let mut affected = 0;
        let mut next = chunks.next().map(build);
        while let Some(q) = next.take() {
            let (done, built) =
                tokio::join!(q.execute(&mut *tx), async { chunks.next().map(build) });
            affected += done?.rows_affected();
            next = built;
        }
        tx.commit().await?;
        Ok(affected)
    }
}

// ---------------------------------------------------------------------------
// The tick writer (file databases)
//
// `insert_ticks` is the ingest hot path. Through sqlx every bound value is an
// owned, boxed argument and every statement a round trip to sqlx's worker
// thread; here one rusqlite connection (the same bundled SQLite: sqlx-sqlite
// and rusqlite share libsqlite3-sys) runs a cached single-row statement per
// tick inside one transaction per batch, on a blocking thread. Rows are first
// encoded into one owned buffer, decimals as the INTEGER or REAL SQLite would
// have made of their text anyway (see `encode_decimal`).

/// One row of `ticks`. No conflict target: either identity index may fire
/// (see the migration).
const TICK_INSERT_ONE: &str = "INSERT INTO ticks (symbol, source, kind, price, price_exact, size, size_exact, \
     bid, bid_exact, ask, ask_exact, trade_id, sequence, venue_symbol, ts_event, ts_received, tick_key, id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
     ON CONFLICT DO NOTHING";

/// The first id of a batch; the batch then takes `next .. next + len`.
const TICK_IDS_NEXT: &str = "SELECT next FROM tick_ids";
const TICK_IDS_ADVANCE: &str = "UPDATE tick_ids SET next = next + ?";

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
struct Span(u32, u32);

/// A decimal as bound into a NUMERIC column.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Null,
    Int(i64),
    Real(f64),
    Text(Span),
}

#[derive(Debug)]
struct TickRow {
    symbol: Span,
    source: Span,
    kind: &'static str,
    price: Num,
    price_exact: Option<Span>,
    size: Num,
    size_exact: Option<Span>,
    bid: Num,
    bid_exact: Option<Span>,
    ask: Num,
    ask_exact: Option<Span>,
    trade_id: Option<Span>,
    sequence: Option<i64>,
    venue_symbol: Option<Span>,
    ts_event: i64,
    ts_received: i64,
    tick_key: Option<i64>,
}

/// A batch of ticks encoded for the tick writer: every text in one buffer.
#[derive(Debug, Default)]
struct EncodedTicks {
    text: String,
    rows: Vec<TickRow>,
}

/// `10^k` for `k <= 22`: exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

impl EncodedTicks {
    fn new(ticks: &[Tick]) -> Self {
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
    fn decimal(&mut self, d: &Decimal) -> (Num, Option<Span>) {
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

    fn str(&self, s: Span) -> &str {
        &self.text[s.0 as usize..s.1 as usize]
    }

    fn num(&self, n: Num) -> rusqlite::types::ToSqlOutput<'_> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        ToSqlOutput::Borrowed(match n {
            Num::Null => ValueRef::Null,
            Num::Int(i) => ValueRef::Integer(i),
            Num::Real(r) => ValueRef::Real(r),
            Num::Text(s) => ValueRef::Text(self.str(s).as_bytes()),
        })
    }

    fn opt(&self, s: Option<Span>) -> Option<&str> {
        s.map(|s| self.str(s))
    }
}

/// The dedicated rusqlite connection that inserts ticks into a file
/// database; `None` once closed.
struct TickWriter {
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
    fn open(path: &Path) -> rusqlite::Result<TickWriter> {
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

    fn close(&self) {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Err((_, e))) = conn.map(rusqlite::Connection::close) {
            tracing::warn!(error = %e, "closing the tick writer failed");
        }
    }

    /// Inserts `rows` in one transaction; returns how many were new.
    fn insert(&self, rows: &EncodedTicks) -> Result<u64> {
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = guard
            .as_mut()
            .ok_or(Error::Database(sqlx::Error::PoolClosed))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let first: i64 = tx
            .prepare_cached(TICK_IDS_NEXT)?
            .query_row([], |r| r.get(0))?;
        let mut inserted = 0u64;
        {
            let mut stmt = tx.prepare_cached(TICK_INSERT_ONE)?;
            for (id, r) in (first..).zip(&rows.rows) {
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
                inserted += stmt.raw_execute()? as u64;
            }
        }
        tx.prepare_cached(TICK_IDS_ADVANCE)?
            .execute([rows.rows.len() as i64])?;
        tx.commit()?;
        Ok(inserted)
    }
}

// ---------------------------------------------------------------------------
// Reads

const TICK_SELECT: &str = "SELECT id, symbol, source, kind, \
     COALESCE(price_exact, CAST(price AS TEXT)), COALESCE(size_exact, CAST(size AS TEXT)), \
     COALESCE(bid_exact, CAST(bid AS TEXT)), COALESCE(ask_exact, CAST(ask AS TEXT)), \
     trade_id, sequence, venue_symbol, ts_event, ts_received FROM ticks";

/// Appended to [`TICK_SELECT`] when a source is given: without statistics
/// the planner would rather walk the symbol's rows of every source in the
/// primary key (already in (ts_event, id) order) than seek the source's rows
/// and sort ties of one ts_event.
const BY_SOURCE: &str = " INDEXED BY ticks_source_symbol_ts";

fn tick_from_row(row: &SqliteRow, sources: &mut Sources) -> Result<(i64, Tick)> {
    const T: &str = "ticks";
    let id: i64 = row.try_get(0)?;
    let kind: &str = row.try_get(3)?;
    let kind = TickKind::from_str(kind).map_err(|e| corrupt(T, e.to_string()))?;
    let sequence: Option<i64> = row.try_get(9)?;
    let tick = Tick {
        symbol: get_symbol(row, 1, T)?,
        source: sources.get(row, 2)?,
        kind,
        price: get_decimal(row, 4, T)?,
        size: get_decimal(row, 5, T)?,
        bid: get_opt_decimal(row, 6, T)?,
        ask: get_opt_decimal(row, 7, T)?,
        trade_id: row.try_get(8)?,
        sequence: sequence.map(|s| s as u64),
        venue_symbol: row.try_get(10)?,
        ts_event: row.try_get(11)?,
        ts_received: row.try_get(12)?,
    };
    Ok((id, tick))
}

const BAR_SELECT: &str = "SELECT symbol, source, interval, start, \
     COALESCE(open_exact, CAST(open AS TEXT)), COALESCE(high_exact, CAST(high AS TEXT)), \
     COALESCE(low_exact, CAST(low AS TEXT)), COALESCE(close_exact, CAST(close AS TEXT)), \
     COALESCE(volume_exact, CAST(volume AS TEXT)), trades, first_ts, last_ts, closed FROM bars";

fn bar_from_row(row: &SqliteRow, sources: &mut Sources) -> Result<Bar> {
    const T: &str = "bars";
    Ok(Bar {
        symbol: get_symbol(row, 0, T)?,
        source: sources.get(row, 1)?,
        interval: get_interval(row, 2, T)?,
        start: row.try_get(3)?,
        open: get_decimal(row, 4, T)?,
        high: get_decimal(row, 5, T)?,
        low: get_decimal(row, 6, T)?,
        close: get_decimal(row, 7, T)?,
        volume: get_decimal(row, 8, T)?,
        trades: to_u64(row.try_get(9)?),
        first_ts: row.try_get(10)?,
        last_ts: row.try_get(11)?,
        closed: row.try_get(12)?,
    })
}

const INDICATOR_SELECT: &str =
    "SELECT symbol, source, interval, kind, \"window\", ts, value FROM indicators";

fn indicator_from_row(row: &SqliteRow, sources: &mut Sources) -> Result<Indicator> {
    const T: &str = "indicators";
    let kind: &str = row.try_get(3)?;
    let window: i64 = row.try_get(4)?;
    Ok(Indicator {
        symbol: get_symbol(row, 0, T)?,
        source: sources.get(row, 1)?,
        interval: get_interval(row, 2, T)?,
        kind: MaKind::from_str(kind).map_err(|e| corrupt(T, e.to_string()))?,
        window: u32::try_from(window).map_err(|_| corrupt(T, format!("bad window {window}")))?,
        ts: row.try_get(5)?,
        value: row.try_get(6)?,
    })
}

const PRICE_REQUEST_SELECT: &str = "SELECT id, symbol, provider, requested_at, outcome, latency_us, error, request_id FROM price_requests";

fn price_request_from_row(row: &SqliteRow, sources: &mut Sources) -> Result<PriceRequest> {
    const T: &str = "price_requests";
    let outcome = match row.try_get::<&str, _>(4)? {
        "provider" => RequestOutcome::Provider,
        "store" => RequestOutcome::Store,
        "error" => RequestOutcome::Error,
        other => return Err(corrupt(T, format!("bad outcome {other:?}"))),
    };
    Ok(PriceRequest {
        id: get_uuid(row, 0, T)?,
        symbol: get_symbol(row, 1, T)?,
        provider: sources.get(row, 2)?,
        requested_at: row.try_get(3)?,
        outcome,
        latency_us: to_u64(row.try_get(5)?),
        error: row.try_get(6)?,
        request_id: row.try_get(7)?,
    })
}

const JOB_SELECT: &str = "SELECT id, symbol, provider, interval_ms, status, created_at, run_count, error_count, \
     last_run_at, last_error FROM polling_jobs";

fn job_from_row(row: &SqliteRow) -> Result<PollingJob> {
    const T: &str = "polling_jobs";
    let status: &str = row.try_get(4)?;
    Ok(PollingJob {
        id: get_uuid(row, 0, T)?,
        symbol: get_symbol(row, 1, T)?,
        provider: row.try_get(2)?,
        interval_ms: to_u64(row.try_get(3)?),
        status: JobStatus::parse(status)
            .ok_or_else(|| corrupt(T, format!("bad status {status:?}")))?,
        created_at: row.try_get(5)?,
        run_count: to_u64(row.try_get(6)?),
        error_count: to_u64(row.try_get(7)?),
        last_run_at: row.try_get(8)?,
        last_error: row.try_get(9)?,
    })
}

/// Encodes the position after the last row of a page: `(ts_event, id)` as
/// 32 lowercase hex digits (URL-safe, opaque to clients).
pub(crate) fn encode_cursor(ts_event: i64, id: i64) -> String {
    format!("{:016x}{:016x}", ts_event as u64, id as u64)
}

pub(crate) fn decode_cursor(s: &str) -> Result<(i64, i64)> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidCursor);
    }
    let ts = u64::from_str_radix(&s[..16], 16).map_err(|_| Error::InvalidCursor)?;
    let id = u64::from_str_radix(&s[16..], 16).map_err(|_| Error::InvalidCursor)?;
    Ok((ts as i64, id as i64))
}

/// Pushes the `[from, to)` bounds of a windowed query on `col`, and returns
/// the ordering: without `from` the newest `limit` rows (read descending and
/// reversed by the caller), with `from` ascending from it.
fn push_window(
    qb: &mut QueryBuilder<'_, Sqlite>,
    col: &str,
    from: Option<i64>,
    to: Option<i64>,
    limit: u32,
    tie: &str,
) -> bool {
    if let Some(from) = from {
        qb.push(format!(" AND {col} >= ")).push_bind(from);
    }
    if let Some(to) = to {
        qb.push(format!(" AND {col} < ")).push_bind(to);
    }
    let newest = from.is_none();
    let dir = if newest { "DESC" } else { "ASC" };
    qb.push(format!(" ORDER BY {col} {dir}, {tie} {dir} LIMIT "))
        .push_bind(i64::from(limit));
    newest
}

const API_KEY_SELECT: &str =
    "SELECT id, name, role, prefix, created_at, revoked_at, expires_at FROM api_keys";

fn api_key_from_row(row: &SqliteRow) -> Result<ApiKey> {
    const T: &str = "api_keys";
    let role: &str = row.try_get(2)?;
    Ok(ApiKey {
        id: get_uuid(row, 0, T)?,
        name: row.try_get(1)?,
        role: Role::parse(role).ok_or_else(|| corrupt(T, format!("bad role {role:?}")))?,
        prefix: row.try_get(3)?,
        created_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
    })
}

const CREDENTIAL_SELECT: &str =
    "SELECT name, key_id, nonce, ciphertext, created_at, updated_at FROM credentials";

fn credential_from_row(row: &SqliteRow) -> Result<StoredCredential> {
    Ok(StoredCredential {
        name: row.try_get(0)?,
        sealed: SealedSecret {
            key_id: row.try_get(1)?,
            nonce: row.try_get(2)?,
            ciphertext: row.try_get(3)?,
        },
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

/// A unique-key violation as [`Error::Conflict`], anything else as is.
fn conflict(e: sqlx::Error, what: &str) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(what.to_string()),
        _ => Error::Database(e),
    }
}

impl Store for SqliteStore {
    async fn migrate(&self) -> Result<()> {
        let _gate = self.gate.lock().await;
        MIGRATOR.run(&self.write).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn insert_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        if ticks.is_empty() {
            return Ok(0);
        }
        // Encoded here (owned, so it can move to the blocking thread) before
        // waiting for the gate, then inserted on a blocking thread.
        let rows = EncodedTicks::new(ticks);
        let Some(writer) = &self.ticks else {
            return self.insert_ticks_sqlx(&rows).await;
        };
        let writer = writer.clone();
        let gate = self.gate.clone().lock_owned().await;
        let res = tokio::task::spawn_blocking(move || {
            let res = writer.insert(&rows);
            drop(gate);
            res
        })
        .await;
        match res {
            Ok(res) => res,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(Error::Database(sqlx::Error::PoolClosed)),
        }
    }

    async fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> Result<Option<Tick>> {
        let mut qb = QueryBuilder::<Sqlite>::new(TICK_SELECT);
        if source.is_some() {
            qb.push(BY_SOURCE);
        }
        qb.push(" WHERE symbol = ").push_bind(symbol.as_str());
        if let Some(source) = source {
            qb.push(" AND source = ").push_bind(source);
        }
        qb.push(" ORDER BY ts_event DESC, id DESC LIMIT 1");
        let row = qb.build().fetch_optional(&self.read).await?;
        row.map(|r| tick_from_row(&r, &mut Sources::default()).map(|(_, t)| t))
            .transpose()
    }

    async fn tick_history(&self, q: &TickQuery) -> Result<TickPage> {
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        if q.limit == 0 {
            return Ok(TickPage::default());
        }
        let mut qb = QueryBuilder::<Sqlite>::new(TICK_SELECT);
        if q.source.is_some() {
            qb.push(BY_SOURCE);
        }
        qb.push(" WHERE symbol = ").push_bind(q.symbol.as_str());
        if let Some(source) = &q.source {
            qb.push(" AND source = ").push_bind(source.as_str());
        }
        if let Some(from) = q.from {
            qb.push(" AND ts_event >= ").push_bind(from);
        }
        if let Some(to) = q.to {
            qb.push(" AND ts_event < ").push_bind(to);
        }
        if let Some((ts, id)) = after {
            qb.push(" AND (ts_event, id) > (")
                .push_bind(ts)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        qb.push(" ORDER BY ts_event ASC, id ASC LIMIT ")
            .push_bind(i64::from(q.limit) + 1);
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut sources = Sources::default();
        let limit = q.limit as usize;
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

    async fn count_ticks(&self, symbol: Option<&Symbol>) -> Result<u64> {
        let n: i64 = match symbol {
            Some(s) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE symbol = ?")
                    .bind(s.as_str())
                    .fetch_one(&self.read)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM ticks")
                    .fetch_one(&self.read)
                    .await?
            }
        };
        Ok(to_u64(n))
    }

    async fn upsert_bars(&self, bars: &[Bar]) -> Result<()> {
        self.write_chunked(bar_upsert_sql(), bars, bind_bar)
            .await
            .map(drop)
    }

    async fn bars(&self, q: &BarQuery) -> Result<Vec<Bar>> {
        let mut qb = QueryBuilder::<Sqlite>::new(BAR_SELECT);
        qb.push(" WHERE symbol = ").push_bind(q.symbol.as_str());
        qb.push(" AND interval = ").push_bind(q.interval.as_str());
        if let Some(source) = &q.source {
            qb.push(" AND source = ").push_bind(source.as_str());
        }
        let newest = push_window(&mut qb, "start", q.from, q.to, q.limit, "source");
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut sources = Sources::default();
        let mut out = rows
            .iter()
            .map(|r| bar_from_row(r, &mut sources))
            .collect::<Result<Vec<_>>>()?;
        if newest {
            out.reverse();
        }
        Ok(out)
    }

    async fn upsert_indicators(&self, xs: &[Indicator]) -> Result<()> {
        // SQLite stores NaN as NULL, which the NOT NULL column refuses; an
        // undefined average is better absent than failing the whole batch.
        if xs.iter().any(|x| x.value.is_nan()) {
            let kept: Vec<Indicator> = xs.iter().filter(|x| !x.value.is_nan()).cloned().collect();
            tracing::warn!(
                dropped = xs.len() - kept.len(),
                "not storing NaN indicator values"
            );
            return self
                .write_chunked(indicator_upsert_sql(), &kept, bind_indicator)
                .await
                .map(drop);
        }
        self.write_chunked(indicator_upsert_sql(), xs, bind_indicator)
            .await
            .map(drop)
    }

    async fn indicators(&self, q: &IndicatorQuery) -> Result<Vec<Indicator>> {
        let mut qb = QueryBuilder::<Sqlite>::new(INDICATOR_SELECT);
        qb.push(" WHERE symbol = ").push_bind(q.symbol.as_str());
        qb.push(" AND interval = ").push_bind(q.interval.as_str());
        qb.push(" AND kind = ").push_bind(q.kind.as_str());
        qb.push(" AND \"window\" = ").push_bind(i64::from(q.window));
        if let Some(source) = &q.source {
            qb.push(" AND source = ").push_bind(source.as_str());
        }
        let newest = push_window(&mut qb, "ts", q.from, q.to, q.limit, "source");
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut sources = Sources::default();
        let mut out = rows
            .iter()
            .map(|r| indicator_from_row(r, &mut sources))
            .collect::<Result<Vec<_>>>()?;
        if newest {
            out.reverse();
        }
        Ok(out)
    }

    async fn insert_price_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        self.write_chunked(price_request_insert_sql(), xs, bind_price_request)
            .await
            .map(drop)
    }

    async fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> Result<Vec<PriceRequest>> {
        let mut qb = QueryBuilder::<Sqlite>::new(PRICE_REQUEST_SELECT);
        if let Some(s) = symbol {
            qb.push(" WHERE symbol = ").push_bind(s.as_str());
        }
        qb.push(" ORDER BY requested_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.read).await?;
        let mut sources = Sources::default();
        rows.iter()
            .map(|r| price_request_from_row(r, &mut sources))
            .collect()
    }

    /// Inserts the job, or updates its definition (symbol, provider,
    /// interval, status) when it exists. Run statistics never go backwards:
    /// counts keep the larger value and the last run the later one, so a
    /// replayed (older) copy of the job cannot erase runs already recorded.
    async fn upsert_polling_job(&self, job: &PollingJob) -> Result<()> {
        let _gate = self.gate.lock().await;
        sqlx::query(
            "INSERT INTO polling_jobs (id, symbol, provider, interval_ms, status, created_at, run_count, error_count, \
             last_run_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET symbol = excluded.symbol, provider = excluded.provider, \
             interval_ms = excluded.interval_ms, status = excluded.status, \
             run_count = MAX(run_count, excluded.run_count), error_count = MAX(error_count, excluded.error_count), \
             last_error = CASE WHEN excluded.last_run_at >= COALESCE(last_run_at, excluded.last_run_at) \
                 THEN excluded.last_error ELSE last_error END, \
             last_run_at = CASE WHEN excluded.last_run_at >= COALESCE(last_run_at, excluded.last_run_at) \
                 THEN excluded.last_run_at ELSE last_run_at END",
        )
        .bind(job.id.to_string())
        .bind(job.symbol.as_str())
        .bind(&job.provider)
        .bind(to_i64(job.interval_ms))
        .bind(job.status.as_str())
        .bind(job.created_at)
        .bind(to_i64(job.run_count))
        .bind(to_i64(job.error_count))
        .bind(job.last_run_at)
        .bind(job.last_error.as_deref())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn polling_job(&self, id: Uuid) -> Result<Option<PollingJob>> {
        let row = sqlx::query(&format!("{JOB_SELECT} WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn polling_jobs(&self, include_deleted: bool) -> Result<Vec<PollingJob>> {
        let sql = if include_deleted {
            format!("{JOB_SELECT} ORDER BY created_at, id")
        } else {
            format!("{JOB_SELECT} WHERE status = 'active' ORDER BY created_at, id")
        };
        let rows = sqlx::query(&sql).fetch_all(&self.read).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> Result<()> {
        let _gate = self.gate.lock().await;
        sqlx::query(
            "UPDATE polling_jobs SET run_count = run_count + 1, error_count = error_count + (?1 IS NOT NULL), \
             last_run_at = ?2, last_error = ?1 WHERE id = ?3",
        )
        .bind(error)
        .bind(at)
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn delete_polling_job(&self, id: Uuid) -> Result<bool> {
        let _gate = self.gate.lock().await;
        let done = sqlx::query(
            "UPDATE polling_jobs SET status = 'deleted' WHERE id = ? AND status = 'active'",
        )
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        let _gate = self.gate.lock().await;
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.expires_at)
        .execute(&self.write)
        .await
        .map_err(|e| conflict(e, "api key"))?;
        Ok(())
    }

    async fn insert_first_api_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        // One writer connection behind the gate: the check and the insert
        // are one statement, so no second first key can slip in.
        let _gate = self.gate.lock().await;
        let done = sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
             SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM api_keys)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.expires_at)
        .execute(&self.write)
        .await
        .map_err(|e| conflict(e, "api key"))?;
        Ok(done.rows_affected() > 0)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{API_KEY_SELECT} WHERE key_hash = ?"))
            .bind(hash)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!("{API_KEY_SELECT} ORDER BY created_at, id"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: Uuid, at: i64) -> Result<bool> {
        let _gate = self.gate.lock().await;
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(id.to_string())
                .execute(&self.write)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<()> {
        let _gate = self.gate.lock().await;
        sqlx::query(
            "INSERT INTO credentials (name, key_id, nonce, ciphertext, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(&c.name)
        .bind(&c.sealed.key_id)
        .bind(&c.sealed.nonce)
        .bind(&c.sealed.ciphertext)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn credential(&self, name: &str) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(&format!("{CREDENTIAL_SELECT} WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        let rows = sqlx::query(&format!("{CREDENTIAL_SELECT} ORDER BY name"))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let _gate = self.gate.lock().await;
        let done = sqlx::query("DELETE FROM credentials WHERE name = ?")
            .bind(name)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn parses_sqlite_real_renderings() {
        assert_eq!(parse_decimal("65432.1"), Some(d("65432.10")));
        assert_eq!(parse_decimal("1.0e+20"), Some(d("100000000000000000000")));
        assert_eq!(parse_decimal("1.5e+20"), Some(d("150000000000000000000")));
        assert_eq!(parse_decimal("1.0e-07"), Some(d("0.0000001")));
        assert_eq!(
            parse_decimal("1.0e-28"),
            Some(d("0.0000000000000000000000000001"))
        );
        assert_eq!(parse_decimal("2.5E-3"), Some(d("0.0025")));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("1.0e+40"), None);
    }

    #[test]
    fn keeps_exact_text_only_when_real_would_round() {
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
            let (text, exact) = dec_pair(d);
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

    /// Every tick read of the Store trait seeks an index (the clustered
    /// primary key or ticks_source_symbol_ts), never scans the table.
    #[test]
    fn tick_reads_are_indexed() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
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
                format!("{TICK_SELECT}{BY_SOURCE}")
            } else {
                TICK_SELECT.to_string()
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

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        for (ts, id) in [(0, 1), (1_700_000_000_123_456_789, 42), (-5, i64::MAX)] {
            let c = encode_cursor(ts, id);
            assert!(c.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(decode_cursor(&c).unwrap(), (ts, id));
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
        }
    }

    #[test]
    fn chunks_are_powers_of_two_covering_the_batch() {
        let sql = bar_upsert_sql();
        assert_eq!(sql.max_rows(), 1024);
        assert!(sql.max_rows() * BAR_COLS <= MAX_PARAMS);
        for n in [0, 1, 2, 3, 1023, 1024, 1025, 5000, 12_345] {
            let chunks = sql.chunks(n);
            assert_eq!(chunks.iter().sum::<usize>(), n);
            assert!(chunks.iter().all(|c| c.is_power_of_two() && *c <= 1024));
        }
        assert_eq!(sql.sql(4).matches('?').count(), 4 * BAR_COLS);
    }
}
