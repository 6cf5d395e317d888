//! The PostgreSQL backend: one sqlx pool (`StoreOptions::max_connections`),
//! the same tables and semantics as the SQLite backend in PostgreSQL's
//! dialect (`migrations/postgres/`).
//!
//! Decimals are NUMERIC (exact), bound as text and read back as text, so
//! no precision is lost either way. Batches are written with one
//! `INSERT ... SELECT FROM UNNEST(arrays)` statement per chunk, all chunks of
//! a batch in one transaction.
//!
//! Every SQL statement of this dialect lives in this module and in
//! `migrations/postgres/`.

use crate::sqlite::{decode_cursor, encode_cursor, parse_decimal};
use crate::{BarQuery, Error, IndicatorQuery, Result, Store, StoreOptions, TickPage, TickQuery};
use marketd_model::{
    ApiKey, Bar, Decimal, Indicator, Interval, JobStatus, MaKind, PollingJob, PriceRequest,
    RequestOutcome, Role, SealedSecret, StoredCredential, Symbol, Tick, TickKind,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Postgres, QueryBuilder, Row};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Embedded migrations of the PostgreSQL dialect.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per `INSERT ... UNNEST` statement; a batch is cut into chunks of
/// this size inside one transaction.
const CHUNK: usize = 10_000;

/// The PostgreSQL storage backend. Cheap to clone (shared pool).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// `url` with the password (if any) replaced by `***`, for error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return crate::scheme_of(url);
    };
    // The userinfo ends at the last '@' before the query: passwords may hold
    // '/', '@' or ':' when percent-encoding was forgotten.
    let head = rest.split_once('?').map_or(rest, |(h, _)| h);
    match head.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let shown = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => userinfo.to_string(),
            };
            format!("{scheme}://{shown}{}", &rest[at..])
        }
        None => url.to_string(),
    }
}

impl PostgresStore {
    /// Connects to the database named by `url` (`postgres://…` or
    /// `postgresql://…`). Does not migrate.
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        let shown = redact_url(url);
        let connect_err = |source| Error::Connect {
            url: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| match e {
                // Parse errors could quote the URL: keep only their kind.
                sqlx::Error::Configuration(_) => Error::UnsupportedUrl(shown.clone()),
                other => connect_err(other),
            })?
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(connect_err)?;
        Ok(PostgresStore { pool })
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

// ---------------------------------------------------------------------------
// Row decoding

fn corrupt(table: &'static str, detail: impl Into<String>) -> Error {
    Error::Corrupt {
        table,
        detail: detail.into(),
    }
}

fn get_decimal(row: &PgRow, idx: usize, table: &'static str) -> Result<Decimal> {
    let s: &str = row.try_get(idx)?;
    parse_decimal(s).ok_or_else(|| corrupt(table, format!("bad decimal {s:?}")))
}

fn get_opt_decimal(row: &PgRow, idx: usize, table: &'static str) -> Result<Option<Decimal>> {
    let s: Option<&str> = row.try_get(idx)?;
    s.map(|s| parse_decimal(s).ok_or_else(|| corrupt(table, format!("bad decimal {s:?}"))))
        .transpose()
}

fn get_symbol(row: &PgRow, idx: usize, table: &'static str) -> Result<Symbol> {
    let s: &str = row.try_get(idx)?;
    Symbol::parse(s).map_err(|e| corrupt(table, e.to_string()))
}

fn get_uuid(row: &PgRow, idx: usize, table: &'static str) -> Result<Uuid> {
    let s: &str = row.try_get(idx)?;
    Uuid::parse_str(s).map_err(|e| corrupt(table, format!("bad id {s:?}: {e}")))
}

fn get_interval(row: &PgRow, idx: usize, table: &'static str) -> Result<Interval> {
    let s: &str = row.try_get(idx)?;
    s.parse()
        .map_err(|e: marketd_model::Error| corrupt(table, e.to_string()))
}

/// Interns source names while decoding a page, so rows share one `Arc<str>`.
#[derive(Default)]
struct Sources(HashMap<String, Arc<str>>);

impl Sources {
    fn get(&mut self, row: &PgRow, idx: usize) -> Result<Arc<str>> {
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

const TICK_SELECT: &str = "SELECT id, symbol, source, kind, price::text, size::text, bid::text, ask::text, \
     trade_id, sequence, venue_symbol, ts_event, ts_received FROM ticks";

fn tick_from_row(row: &PgRow, sources: &mut Sources) -> Result<(i64, Tick)> {
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
        // Stored bit-preserving (see the insert).
        sequence: sequence.map(|s| s as u64),
        venue_symbol: row.try_get(10)?,
        ts_event: row.try_get(11)?,
        ts_received: row.try_get(12)?,
    };
    Ok((id, tick))
}

const BAR_SELECT: &str = "SELECT symbol, source, \"interval\", start, open::text, high::text, low::text, \
     close::text, volume::text, trades, first_ts, last_ts, closed FROM bars";

fn bar_from_row(row: &PgRow, sources: &mut Sources) -> Result<Bar> {
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
    "SELECT symbol, source, \"interval\", kind, \"window\", ts, value FROM indicators";

fn indicator_from_row(row: &PgRow, sources: &mut Sources) -> Result<Indicator> {
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

fn price_request_from_row(row: &PgRow, sources: &mut Sources) -> Result<PriceRequest> {
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

fn job_from_row(row: &PgRow) -> Result<PollingJob> {
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

/// Pushes the `[from, to)` bounds of a windowed query on `col`, and returns
/// the ordering: without `from` the newest `limit` rows (read descending and
/// reversed by the caller), with `from` ascending from it.
fn push_window(
    qb: &mut QueryBuilder<'_, Postgres>,
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

/// The last occurrence of each key in `xs`, in order of first appearance:
/// one `INSERT ... ON CONFLICT DO UPDATE` may not touch a row twice, and a
/// later copy in a batch replaces an earlier one (as in SQLite).
fn last_per_key<'a, T, K: std::hash::Hash + Eq>(
    xs: &'a [T],
    key: impl Fn(&'a T) -> K,
) -> Vec<&'a T> {
    let mut index: HashMap<K, usize> = HashMap::with_capacity(xs.len());
    let mut out: Vec<&T> = Vec::with_capacity(xs.len());
    for x in xs {
        match index.entry(key(x)) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()] = x,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push(x);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Batch writes

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

const BAR_UPSERT: &str = "INSERT INTO bars (source, symbol, \"interval\", start, open, high, low, close, volume, \
     trades, first_ts, last_ts, closed) \
     SELECT source, symbol, iv, start, open::numeric, high::numeric, low::numeric, close::numeric, volume::numeric, \
     trades, first_ts, last_ts, closed \
     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::int8[], $11::int8[], $12::int8[], $13::bool[]) \
     AS t(source, symbol, iv, start, open, high, low, close, volume, trades, first_ts, last_ts, closed) \
     ON CONFLICT (source, symbol, \"interval\", start) DO UPDATE SET \
     open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, \
     volume = excluded.volume, trades = excluded.trades, first_ts = excluded.first_ts, \
     last_ts = excluded.last_ts, closed = excluded.closed";

const INDICATOR_UPSERT: &str = "INSERT INTO indicators (source, symbol, \"interval\", kind, \"window\", ts, value) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::float8[]) \
     ON CONFLICT (source, symbol, \"interval\", kind, \"window\", ts) DO UPDATE SET value = excluded.value";

const PRICE_REQUEST_INSERT: &str = "INSERT INTO price_requests (id, symbol, provider, requested_at, outcome, \
     latency_us, error, request_id) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::text[], $8::text[]) \
     ON CONFLICT (id) DO NOTHING";

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

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

fn bar_query(chunk: &[&Bar]) -> PgQuery<'static> {
    let mut cols: [Vec<String>; 8] = Default::default();
    let mut ints: [Vec<i64>; 4] = Default::default();
    let mut closed = Vec::with_capacity(chunk.len());
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

fn price_request_query(chunk: &[PriceRequest]) -> PgQuery<'static> {
    let n = chunk.len();
    let mut id = Vec::with_capacity(n);
    let mut symbol = Vec::with_capacity(n);
    let mut provider = Vec::with_capacity(n);
    let mut requested_at = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut latency_us = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut request_id = Vec::with_capacity(n);
    for x in chunk {
        id.push(x.id.to_string());
        symbol.push(x.symbol.as_str().to_string());
        provider.push(x.provider.to_string());
        requested_at.push(x.requested_at);
        outcome.push(x.outcome.as_str().to_string());
        latency_us.push(to_i64(x.latency_us));
        error.push(x.error.clone());
        request_id.push(x.request_id.clone());
    }
    sqlx::query(PRICE_REQUEST_INSERT)
        .bind(id)
        .bind(symbol)
        .bind(provider)
        .bind(requested_at)
        .bind(outcome)
        .bind(latency_us)
        .bind(error)
        .bind(request_id)
}

impl PostgresStore {
    /// Runs `items` in chunks of [`CHUNK`] through the statements `build`
    /// makes, in one transaction; returns the total of `rows_affected`.
    async fn write_chunked<T>(
        &self,
        items: &[T],
        build: impl Fn(&[T]) -> PgQuery<'static>,
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        let mut affected = 0;
        for chunk in items.chunks(CHUNK) {
            affected += build(chunk).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(affected)
    }
}

const API_KEY_SELECT: &str =
    "SELECT id, name, role, prefix, created_at, revoked_at, expires_at FROM api_keys";

fn api_key_from_row(row: &PgRow) -> Result<ApiKey> {
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

fn credential_from_row(row: &PgRow) -> Result<StoredCredential> {
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

impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn insert_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        self.write_chunked(ticks, tick_query).await
    }

    async fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> Result<Option<Tick>> {
        let mut qb = QueryBuilder::<Postgres>::new(TICK_SELECT);
        qb.push(" WHERE symbol = ").push_bind(symbol.as_str());
        if let Some(source) = source {
            qb.push(" AND source = ").push_bind(source);
        }
        qb.push(" ORDER BY ts_event DESC, id DESC LIMIT 1");
        let row = qb.build().fetch_optional(&self.pool).await?;
        row.map(|r| tick_from_row(&r, &mut Sources::default()).map(|(_, t)| t))
            .transpose()
    }

    async fn tick_history(&self, q: &TickQuery) -> Result<TickPage> {
        let after = q.cursor.as_deref().map(decode_cursor).transpose()?;
        if q.limit == 0 {
            return Ok(TickPage::default());
        }
        let mut qb = QueryBuilder::<Postgres>::new(TICK_SELECT);
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
        let rows = qb.build().fetch_all(&self.pool).await?;
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
                sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE symbol = $1")
                    .bind(s.as_str())
                    .fetch_one(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM ticks")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(to_u64(n))
    }

    async fn upsert_bars(&self, bars: &[Bar]) -> Result<()> {
        let bars = last_per_key(bars, |b| {
            (
                b.source.clone(),
                b.symbol.as_str().to_string(),
                b.interval.as_str(),
                b.start,
            )
        });
        self.write_chunked(&bars, bar_query).await.map(drop)
    }

    async fn bars(&self, q: &BarQuery) -> Result<Vec<Bar>> {
        let mut qb = QueryBuilder::<Postgres>::new(BAR_SELECT);
        qb.push(" WHERE symbol = ").push_bind(q.symbol.as_str());
        qb.push(" AND \"interval\" = ")
            .push_bind(q.interval.as_str());
        if let Some(source) = &q.source {
            qb.push(" AND source = ").push_bind(source.as_str());
        }
        let newest = push_window(&mut qb, "start", q.from, q.to, q.limit, "source");
        let rows = qb.build().fetch_all(&self.pool).await?;
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
        // Same rule as SQLite (which cannot store NaN): an undefined average
        // is better absent than stored.
        let nan = xs.iter().filter(|x| x.value.is_nan()).count();
        if nan > 0 {
            tracing::warn!(dropped = nan, "not storing NaN indicator values");
        }
        let kept: Vec<&Indicator> = xs.iter().filter(|x| !x.value.is_nan()).collect();
        let kept: Vec<&Indicator> = last_per_key(&kept, |x| {
            (
                x.source.clone(),
                x.symbol.as_str().to_string(),
                x.interval.as_str(),
                x.kind.as_str(),
                x.window,
                x.ts,
            )
        })
        .into_iter()
        .copied()
        .collect();
        self.write_chunked(&kept, indicator_query).await.map(drop)
    }

    async fn indicators(&self, q: &IndicatorQuery) -> Result<Vec<Indicator>> {
        let mut qb = QueryBuilder::<Postgres>::new(INDICATOR_SELECT);
        qb.push(" WHERE symbol = ").push_bind(q.symbol.as_str());
        qb.push(" AND \"interval\" = ")
            .push_bind(q.interval.as_str());
        qb.push(" AND kind = ").push_bind(q.kind.as_str());
        qb.push(" AND \"window\" = ").push_bind(i64::from(q.window));
        if let Some(source) = &q.source {
            qb.push(" AND source = ").push_bind(source.as_str());
        }
        let newest = push_window(&mut qb, "ts", q.from, q.to, q.limit, "source");
        let rows = qb.build().fetch_all(&self.pool).await?;
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
        self.write_chunked(xs, price_request_query).await.map(drop)
    }

    async fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> Result<Vec<PriceRequest>> {
        let mut qb = QueryBuilder::<Postgres>::new(PRICE_REQUEST_SELECT);
        if let Some(s) = symbol {
            qb.push(" WHERE symbol = ").push_bind(s.as_str());
        }
        qb.push(" ORDER BY requested_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(limit));
        let rows = qb.build().fetch_all(&self.pool).await?;
        let mut sources = Sources::default();
        rows.iter()
            .map(|r| price_request_from_row(r, &mut sources))
            .collect()
    }

    /// Same rules as SQLite: the definition is replaced, run statistics
    /// never go backwards.
    async fn upsert_polling_job(&self, job: &PollingJob) -> Result<()> {
        sqlx::query(
            "INSERT INTO polling_jobs AS j (id, symbol, provider, interval_ms, status, created_at, run_count, \
             error_count, last_run_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET symbol = excluded.symbol, provider = excluded.provider, \
             interval_ms = excluded.interval_ms, status = excluded.status, \
             run_count = GREATEST(j.run_count, excluded.run_count), \
             error_count = GREATEST(j.error_count, excluded.error_count), \
             last_error = CASE WHEN excluded.last_run_at >= COALESCE(j.last_run_at, excluded.last_run_at) \
                 THEN excluded.last_error ELSE j.last_error END, \
             last_run_at = CASE WHEN excluded.last_run_at >= COALESCE(j.last_run_at, excluded.last_run_at) \
                 THEN excluded.last_run_at ELSE j.last_run_at END",
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn polling_job(&self, id: Uuid) -> Result<Option<PollingJob>> {
        let row = sqlx::query(&format!("{JOB_SELECT} WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn polling_jobs(&self, include_deleted: bool) -> Result<Vec<PollingJob>> {
        let sql = if include_deleted {
            format!("{JOB_SELECT} ORDER BY created_at, id")
        } else {
            format!("{JOB_SELECT} WHERE status = 'active' ORDER BY created_at, id")
        };
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> Result<()> {
        sqlx::query(
            "UPDATE polling_jobs SET run_count = run_count + 1, \
             error_count = error_count + (CASE WHEN $1::text IS NULL THEN 0 ELSE 1 END), \
             last_run_at = $2, last_error = $1::text WHERE id = $3",
        )
        .bind(error)
        .bind(at)
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_polling_job(&self, id: Uuid) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE polling_jobs SET status = 'deleted' WHERE id = $1 AND status = 'active'",
        )
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.expires_at)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, "api key"))?;
        Ok(())
    }

    async fn insert_first_api_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        // Instances starting together: the table lock makes the emptiness
        // check and the insert one step, so only one of them adds a key.
        let mut tx = self.pool.begin().await?;
        sqlx::query("LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, prefix, created_at, revoked_at, expires_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE NOT EXISTS (SELECT 1 FROM api_keys)",
        )
        .bind(key.id.to_string())
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(hash)
        .bind(&key.prefix)
        .bind(key.created_at)
        .bind(key.revoked_at)
        .bind(key.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, "api key"))?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{API_KEY_SELECT} WHERE key_hash = $1"))
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(&format!("{API_KEY_SELECT} ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: Uuid, at: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_credential(&self, c: &StoredCredential) -> Result<()> {
        sqlx::query(
            "INSERT INTO credentials (name, key_id, nonce, ciphertext, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, \
             nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
        )
        .bind(&c.name)
        .bind(&c.sealed.key_id)
        .bind(&c.sealed.nonce)
        .bind(&c.sealed.ciphertext)
        .bind(c.created_at)
        .bind(c.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn credential(&self, name: &str) -> Result<Option<StoredCredential>> {
        let row = sqlx::query(&format!("{CREDENTIAL_SELECT} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(credential_from_row).transpose()
    }

    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        let rows = sqlx::query(&format!("{CREDENTIAL_SELECT} ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(credential_from_row).collect()
    }

    async fn delete_credential(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM credentials WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://user:hunter2@db:5432/x?sslmode=disable"),
            "postgres://user:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(
            redact_url("postgresql://user@db/x"),
            "postgresql://user@db/x"
        );
        assert_eq!(
            redact_url("postgres://127.0.0.1:5432/postgres"),
            "postgres://127.0.0.1:5432/postgres"
        );
        assert!(!redact_url("postgres://u:p@ss:w@rd@h/x").contains("rd"));
        assert!(!redact_url("postgres://u:pa/ss@h/x").contains("pa/ss"));
    }

    #[test]
    fn last_copy_of_a_key_wins_in_first_position() {
        let xs = [(1, 'a'), (2, 'b'), (1, 'c')];
        let got: Vec<_> = last_per_key(&xs, |x| x.0).into_iter().copied().collect();
        assert_eq!(got, vec![(1, 'c'), (2, 'b')]);
    }
}
