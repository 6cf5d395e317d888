//! Durable storage of marketd: the [`Store`] trait every backend implements,
//! the [`AnyStore`] container that picks a backend by URL (`sqlite://path`,
//! later `postgres://…`), and the schema migrations of each dialect.
//!
//! Handlers and consumers see only the trait; backend-specific SQL stays in
//! its module.

use marketd_model::{Bar, Indicator, Interval, MaKind, PollingJob, PriceRequest, Symbol, Tick};
use std::future::Future;
use uuid::Uuid;

mod error;
pub mod sqlite;

pub use error::{Error, Result};

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
    fn latest_tick(&self, symbol: &Symbol, source: Option<&str>) -> impl Future<Output = Result<Option<Tick>>> + Send;
    fn tick_history(&self, q: &TickQuery) -> impl Future<Output = Result<TickPage>> + Send;
    fn count_ticks(&self, symbol: Option<&Symbol>) -> impl Future<Output = Result<u64>> + Send;
    /// Inserts or replaces bars on (source, symbol, interval, start).
    fn upsert_bars(&self, bars: &[Bar]) -> impl Future<Output = Result<()>> + Send;
    fn bars(&self, q: &BarQuery) -> impl Future<Output = Result<Vec<Bar>>> + Send;
    /// Inserts or replaces on (source, symbol, interval, kind, window, ts).
    fn upsert_indicators(&self, xs: &[Indicator]) -> impl Future<Output = Result<()>> + Send;
    fn indicators(&self, q: &IndicatorQuery) -> impl Future<Output = Result<Vec<Indicator>>> + Send;
    fn insert_price_requests(&self, xs: &[PriceRequest]) -> impl Future<Output = Result<()>> + Send;
    /// Newest first.
    fn price_requests(&self, symbol: Option<&Symbol>, limit: u32) -> impl Future<Output = Result<Vec<PriceRequest>>> + Send;
    fn upsert_polling_job(&self, job: &PollingJob) -> impl Future<Output = Result<()>> + Send;
    fn polling_job(&self, id: Uuid) -> impl Future<Output = Result<Option<PollingJob>>> + Send;
    /// Jobs ordered by creation time; deleted ones only when asked.
    fn polling_jobs(&self, include_deleted: bool) -> impl Future<Output = Result<Vec<PollingJob>>> + Send;
    /// Records one run: bumps `run_count` (and `error_count` when `error` is
    /// set), sets `last_run_at` and `last_error`.
    fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> impl Future<Output = Result<()>> + Send;
    /// Marks a job deleted; false when no active job had that id.
    fn delete_polling_job(&self, id: Uuid) -> impl Future<Output = Result<bool>> + Send;
}
