//! Durable storage of marketd: the [`Store`] trait every backend implements,
//! the [`AnyStore`] container that picks a backend by URL (`sqlite://path`,
//! `postgres://…`), and the schema migrations of each dialect.
//!
//! Handlers and consumers see only the trait; backend-specific SQL stays in
//! its module.

use marketd_model::{
    ApiKey, Bar, Indicator, Interval, MaKind, PollingJob, PriceRequest, StoredCredential, Symbol,
    Tick,
};
use std::future::Future;
use uuid::Uuid;

pub mod crypto;
mod error;
pub mod postgres;
pub mod sqlite;

pub use error::{Error, Result};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Filters of `GET /prices/history`: ticks of one symbol in `[from, to)` in
/// event-time order (ascending), resuming after `cursor`.
#[derive(Debug, Clone)]
pub struct TickQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    /// Inclusive lower bound on `ts_event` (ns).
    pub from: Option<i64>,
    /// Exclusive upper bound on `ts_event` (ns).
    pub to: Option<i64>,
    pub limit: u32,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// One page of ticks; `next_cursor` is `Some` when more rows follow.
#[derive(Debug, Clone, Default)]
pub struct TickPage {
    pub ticks: Vec<Tick>,
    pub next_cursor: Option<String>,
}

/// Filters of `GET /bars`: bars of one symbol and interval. Without `from`
/// the newest `limit` bars are returned; the result is ascending by start.
#[derive(Debug, Clone)]
pub struct BarQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    pub interval: Interval,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// Filters of `GET /indicators/moving-average`; same window rules as [`BarQuery`].
#[derive(Debug, Clone)]
pub struct IndicatorQuery {
    pub symbol: Symbol,
    pub source: Option<String>,
    pub interval: Interval,
    pub kind: MaKind,
    pub window: u32,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub limit: u32,
}

/// What every storage backend provides. Writes are idempotent: ticks on their
/// identity (`Tick::identity`), bars and indicators on their natural key.
pub trait Store: Send + Sync {
    /// Applies pending migrations (idempotent).
    fn migrate(&self) -> impl Future<Output = Result<()>> + Send;
    /// Cheap round trip for readiness checks.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    /// Inserts a batch in one transaction, ignoring ticks already stored.
    /// Returns how many were new.
    fn insert_ticks(&self, ticks: &[Tick]) -> impl Future<Output = Result<u64>> + Send;
    /// The tick with the greatest `ts_event` for the symbol (optionally of one source).
    fn latest_tick(
        &self,
        symbol: &Symbol,
        source: Option<&str>,
    ) -> impl Future<Output = Result<Option<Tick>>> + Send;
    fn tick_history(&self, q: &TickQuery) -> impl Future<Output = Result<TickPage>> + Send;
    fn count_ticks(&self, symbol: Option<&Symbol>) -> impl Future<Output = Result<u64>> + Send;
    /// Inserts or replaces bars on (source, symbol, interval, start).
    fn upsert_bars(&self, bars: &[Bar]) -> impl Future<Output = Result<()>> + Send;
    fn bars(&self, q: &BarQuery) -> impl Future<Output = Result<Vec<Bar>>> + Send;
    /// Inserts or replaces on (source, symbol, interval, kind, window, ts).
    fn upsert_indicators(&self, xs: &[Indicator]) -> impl Future<Output = Result<()>> + Send;
    fn indicators(&self, q: &IndicatorQuery)
    -> impl Future<Output = Result<Vec<Indicator>>> + Send;
    fn insert_price_requests(&self, xs: &[PriceRequest])
    -> impl Future<Output = Result<()>> + Send;
    /// Newest first.
    fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PriceRequest>>> + Send;
    fn upsert_polling_job(&self, job: &PollingJob) -> impl Future<Output = Result<()>> + Send;
    fn polling_job(&self, id: Uuid) -> impl Future<Output = Result<Option<PollingJob>>> + Send;
    /// Jobs ordered by creation time; deleted ones only when asked.
    fn polling_jobs(
        &self,
        include_deleted: bool,
    ) -> impl Future<Output = Result<Vec<PollingJob>>> + Send;
    /// Records one run: bumps `run_count` (and `error_count` when `error` is
    /// set), sets `last_run_at` and `last_error`.
    fn record_job_run(
        &self,
        id: Uuid,
        at: i64,
        error: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks a job deleted; false when no active job had that id.
    fn delete_polling_job(&self, id: Uuid) -> impl Future<Output = Result<bool>> + Send;

    /// Stores a new API key with the SHA-256 hash (hex) of its text. A
    /// duplicate id or hash is [`Error::Conflict`].
    fn insert_api_key(&self, key: &ApiKey, hash: &str) -> impl Future<Output = Result<()>> + Send;
    /// Stores `key` only when no API key was ever stored (atomically), for the
    /// bootstrap admin key of a first start. True when it was stored.
    fn insert_first_api_key(
        &self,
        key: &ApiKey,
        hash: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The key whose text hashes to `hash`, revoked or not.
    fn api_key_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<ApiKey>>> + Send;
    /// Every key (revoked ones too), oldest first.
    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKey>>> + Send;
    /// Revokes the key at `at` (ns); false when no active key had that id.
    fn revoke_api_key(&self, id: Uuid, at: i64) -> impl Future<Output = Result<bool>> + Send;

    /// Inserts or replaces a sealed credential by name (`created_at` of an
    /// existing one is kept).
    fn put_credential(&self, c: &StoredCredential) -> impl Future<Output = Result<()>> + Send;
    fn credential(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<StoredCredential>>> + Send;
    /// Every credential, by name.
    fn credentials(&self) -> impl Future<Output = Result<Vec<StoredCredential>>> + Send;
    /// False when there was none of that name.
    fn delete_credential(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// Connection settings shared by the backends (`[store]` in the config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreOptions {
    /// Upper bound on pooled connections. SQLite uses this many readers plus
    /// one writer connection.
    pub max_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions { max_connections: 8 }
    }
}

/// The configured storage backend. Its variants are the backends; everything
/// above this crate sees only the [`Store`] trait.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyStore {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl AnyStore {
    /// Opens the backend named by `url`'s scheme:
    /// - `sqlite://PATH` (`sqlite://data/marketd.db` is relative to the
    ///   working directory, `sqlite:///var/lib/marketd.db` absolute; also
    ///   `sqlite:PATH`): a database file, created with its parent
    ///   directories when missing;
    /// - `sqlite::memory:`: a private in-memory database (tests);
    /// - `postgres://…` or `postgresql://…`: a PostgreSQL database (sqlx
    ///   URL syntax), pooled with `opts.max_connections` connections.
    ///
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<AnyStore> {
        let url = url.trim();
        if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            return Ok(AnyStore::Sqlite(sqlite::SqliteStore::memory().await?));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(Error::UnsupportedUrl(url.to_string()));
            }
            return Ok(AnyStore::Sqlite(
                sqlite::SqliteStore::open(std::path::Path::new(path), opts).await?,
            ));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(AnyStore::Postgres(
                postgres::PostgresStore::connect(url, opts).await?,
            ));
        }
        Err(Error::UnsupportedUrl(scheme_of(url)))
    }

    /// Name of the backend in use, for logs and `/health/ready`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }

    /// Closes the backend's connections (call once at shutdown; the store
    /// is unusable afterwards).
    pub async fn close(&self) {
        match self {
            AnyStore::Sqlite(s) => s.close().await,
            AnyStore::Postgres(s) => s.close().await,
        }
    }
}

/// The scheme of `url` (`postgres://…`) for error messages, so credentials
/// in the rest of the URL are never printed.
pub(crate) fn scheme_of(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _)) => format!("{scheme}://…"),
        None => url.chars().take(64).collect(),
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Sqlite($s) => $e,
            AnyStore::Postgres($s) => $e,
        }
    };
}

impl Store for AnyStore {
    async fn migrate(&self) -> Result<()> {
        delegate!(self, s => s.migrate().await)
    }
    async fn ping(&self) -> Result<()> {
        delegate!(self, s => s.ping().await)
    }
    async fn insert_ticks(&self, ticks: &[Tick]) -> Result<u64> {
        delegate!(self, s => s.insert_ticks(ticks).await)
    }
    async fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> Result<Option<Tick>> {
        delegate!(self, s => s.latest_tick(symbol, source).await)
    }
    async fn tick_history(&self, q: &TickQuery) -> Result<TickPage> {
        delegate!(self, s => s.tick_history(q).await)
    }
    async fn count_ticks(&self, symbol: Option<&Symbol>) -> Result<u64> {
        delegate!(self, s => s.count_ticks(symbol).await)
    }
    async fn upsert_bars(&self, bars: &[Bar]) -> Result<()> {
        delegate!(self, s => s.upsert_bars(bars).await)
    }
    async fn bars(&self, q: &BarQuery) -> Result<Vec<Bar>> {
        delegate!(self, s => s.bars(q).await)
    }
    async fn upsert_indicators(&self, xs: &[Indicator]) -> Result<()> {
        delegate!(self, s => s.upsert_indicators(xs).await)
    }
    async fn indicators(&self, q: &IndicatorQuery) -> Result<Vec<Indicator>> {
        delegate!(self, s => s.indicators(q).await)
    }
    async fn insert_price_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        delegate!(self, s => s.insert_price_requests(xs).await)
    }
    async fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> Result<Vec<PriceRequest>> {
        delegate!(self, s => s.price_requests(symbol, limit).await)
    }
    async fn upsert_polling_job(&self, job: &PollingJob) -> Result<()> {
        delegate!(self, s => s.upsert_polling_job(job).await)
    }
    async fn polling_job(&self, id: Uuid) -> Result<Option<PollingJob>> {
        delegate!(self, s => s.polling_job(id).await)
    }
    async fn polling_jobs(&self, include_deleted: bool) -> Result<Vec<PollingJob>> {
        delegate!(self, s => s.polling_jobs(include_deleted).await)
    }
    async fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> Result<()> {
        delegate!(self, s => s.record_job_run(id, at, error).await)
    }
    async fn delete_polling_job(&self, id: Uuid) -> Result<bool> {
        delegate!(self, s => s.delete_polling_job(id).await)
    }
    async fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()> {
        delegate!(self, s => s.insert_api_key(key, hash).await)
    }
    async fn insert_first_api_key(&self, key: &ApiKey, hash: &str) -> Result<bool> {
        delegate!(self, s => s.insert_first_api_key(key, hash).await)
    }
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>> {
        delegate!(self, s => s.api_key_by_hash(hash).await)
    }
    async fn api_keys(&self) -> Result<Vec<ApiKey>> {
        delegate!(self, s => s.api_keys().await)
    }
    async fn revoke_api_key(&self, id: Uuid, at: i64) -> Result<bool> {
        delegate!(self, s => s.revoke_api_key(id, at).await)
    }
    async fn put_credential(&self, c: &StoredCredential) -> Result<()> {
        delegate!(self, s => s.put_credential(c).await)
    }
    async fn credential(&self, name: &str) -> Result<Option<StoredCredential>> {
        delegate!(self, s => s.credential(name).await)
    }
    async fn credentials(&self) -> Result<Vec<StoredCredential>> {
        delegate!(self, s => s.credentials().await)
    }
    async fn delete_credential(&self, name: &str) -> Result<bool> {
        delegate!(self, s => s.delete_credential(name).await)
    }
}
