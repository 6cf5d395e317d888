//! [`AnyStore`]: the configured backend behind every store trait.

use crate::connectors::{NewConnectorRecord, RawMessage};
use crate::error::scheme_of;
use crate::tda::{KeyedTdaJob, NewTdaJob, TdaResult, TdaStore};
use crate::{
    AccessStore, BarQuery, BarRange, ConnectorStore, Error, IndicatorQuery, JobStore, RequestStore,
    Result, SeriesStore, SignalQuery, SignalStore, Store, StoreOptions, TickPage, TickQuery,
    TickStore, postgres, sqlite,
};
use marketd_model::{
    ApiKey, Bar, Connector, ConnectorRecord, ConnectorStatus, Indicator, Interval, PollingJob,
    PriceRequest, StoredCredential, Symbol, TdaJob, TdaJobStatus, TdaSignal, Tick, Upload,
};
use uuid::Uuid;

/// The configured storage backend. Its variants are the backends; everything
/// above this crate sees only the traits.
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

    /// How many batches of an insert-only table a writer may hand over at
    /// once (each waits for the one before to be durable before its offsets
    /// are committed). SQLite takes writes one at a time on its writer
    /// connection, so a second batch only gets encoded while the first is
    /// written: the writer never waits for the next batch's encoding
    /// (about 9% of its time with one). PostgreSQL would run two `COPY`s at
    /// once, which on the 2-core bench machine took the aggregator's CPU
    /// and was no faster (docs/benchmarks.md).
    pub fn insert_batches_in_flight(&self) -> usize {
        match self {
            AnyStore::Sqlite(_) => 2,
            AnyStore::Postgres(_) => 1,
        }
    }

    /// Name of the backend in use, for logs and `/health/ready`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            AnyStore::Sqlite(_) => "sqlite",
            AnyStore::Postgres(_) => "postgres",
        }
    }
}

/// Implements a store trait for [`AnyStore`] by calling the same method on
/// the backend in use; one invocation per trait lists its methods.
macro_rules! delegate {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        impl $trait for AnyStore {
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    AnyStore::Sqlite(s) => s.$name($($arg),*).await,
                    AnyStore::Postgres(s) => s.$name($($arg),*).await,
                }
            })*
        }
    };
}

delegate!(Store {
    fn migrate(&self) -> Result<()>;
    fn ping(&self) -> Result<()>;
    fn close(&self) -> ();
});

delegate!(TickStore {
    fn insert_ticks(&self, ticks: &[Tick]) -> Result<u64>;
    fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> Result<Option<Tick>>;
    fn tick_history(&self, q: &TickQuery) -> Result<TickPage>;
    fn count_ticks(&self, symbol: Option<&Symbol>) -> Result<u64>;
});

delegate!(SeriesStore {
    fn upsert_bars(&self, bars: &[Bar]) -> Result<()>;
    fn bars(&self, q: &BarQuery) -> Result<Vec<Bar>>;
    fn upsert_indicators(&self, xs: &[Indicator]) -> Result<()>;
    fn indicators(&self, q: &IndicatorQuery) -> Result<Vec<Indicator>>;
    fn latest_bars(&self, interval: Interval, limit: u32) -> Result<Vec<Bar>>;
    fn prune_bars(&self, symbol: &Symbol, source: &str, ranges: &[BarRange]) -> Result<u64>;
});

delegate!(RequestStore {
    fn insert_price_requests(&self, xs: &[PriceRequest]) -> Result<()>;
    fn price_requests(&self, symbol: Option<&Symbol>, limit: u32) -> Result<Vec<PriceRequest>>;
});

delegate!(JobStore {
    fn upsert_polling_job(&self, job: &PollingJob) -> Result<()>;
    fn polling_job(&self, id: Uuid) -> Result<Option<PollingJob>>;
    fn polling_jobs(&self, include_deleted: bool) -> Result<Vec<PollingJob>>;
    fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> Result<()>;
    fn delete_polling_job(&self, id: Uuid) -> Result<bool>;
});

delegate!(AccessStore {
    fn insert_api_key(&self, key: &ApiKey, hash: &str) -> Result<()>;
    fn insert_first_api_key(&self, key: &ApiKey, hash: &str) -> Result<bool>;
    fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>>;
    fn api_keys(&self) -> Result<Vec<ApiKey>>;
    fn revoke_api_key(&self, id: Uuid, at: i64) -> Result<bool>;
    fn put_credential(&self, c: &StoredCredential) -> Result<()>;
    fn credential(&self, name: &str) -> Result<Option<StoredCredential>>;
    fn credentials(&self) -> Result<Vec<StoredCredential>>;
    fn delete_credential(&self, name: &str) -> Result<bool>;
});

delegate!(ConnectorStore {
    fn insert_connector(&self, c: &Connector) -> Result<()>;
    fn update_connector(&self, c: &Connector) -> Result<bool>;
    fn connector(&self, id: Uuid) -> Result<Option<Connector>>;
    fn connectors(&self) -> Result<Vec<Connector>>;
    fn delete_connector(&self, id: Uuid) -> Result<bool>;
    fn put_connector_status(&self, s: &ConnectorStatus) -> Result<()>;
    fn connector_status(&self, id: Uuid) -> Result<Option<ConnectorStatus>>;
    fn insert_connector_records(&self, xs: &[NewConnectorRecord]) -> Result<u64>;
    fn connector_records(&self, id: Uuid, after: Option<i64>, limit: u32) -> Result<Vec<ConnectorRecord>>;
    fn insert_raw_messages(&self, xs: &[RawMessage]) -> Result<u64>;
    fn raw_messages(&self, id: Uuid, from: i64, limit: u32) -> Result<Vec<RawMessage>>;
    fn prune_raw_messages(&self, id: Uuid, before: i64) -> Result<u64>;
});

delegate!(TdaStore {
    fn insert_upload(&self, u: &Upload, body: &[u8]) -> Result<()>;
    fn upload(&self, id: Uuid) -> Result<Option<Upload>>;
    fn upload_body(&self, id: Uuid) -> Result<Option<Vec<u8>>>;
    fn uploads(&self, limit: u32) -> Result<Vec<Upload>>;
    fn delete_upload(&self, id: Uuid) -> Result<bool>;
    fn insert_tda_job(&self, j: &NewTdaJob<'_>) -> Result<()>;
    fn tda_job(&self, id: Uuid) -> Result<Option<TdaJob>>;
    fn tda_job_by_key(&self, key: &str) -> Result<Option<KeyedTdaJob>>;
    fn tda_job_request(&self, id: Uuid) -> Result<Option<String>>;
    fn tda_jobs(&self, status: Option<TdaJobStatus>, limit: u32) -> Result<Vec<TdaJob>>;
    fn unfinished_tda_jobs(&self) -> Result<Vec<TdaJob>>;
    fn update_tda_job(&self, j: &TdaJob) -> Result<bool>;
    fn finish_tda_job(&self, j: &TdaJob, result: &str) -> Result<bool>;
    fn cancel_tda_job(&self, id: Uuid, at: i64) -> Result<Option<TdaJob>>;
    fn tda_job_result(&self, id: Uuid, now: i64) -> Result<Option<TdaResult>>;
    fn prune_tda_results(&self, now: i64) -> Result<u64>;
});

delegate!(SignalStore {
    fn upsert_tda_signal(&self, s: &TdaSignal) -> Result<()>;
    fn tda_signals(&self, q: &SignalQuery) -> Result<Vec<TdaSignal>>;
});
