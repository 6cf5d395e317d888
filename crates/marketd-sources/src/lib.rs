//! Where marketd's prices come from. Every provider implements [`Provider`]
//! (latest quote; history where the upstream has it) and is held in the
//! [`AnyProvider`] container, so the engine and API never match on a
//! concrete provider. Normalizers turn each upstream's wire format into
//! [`marketd_model::Tick`]s; retries use bounded exponential backoff with jitter.

use marketd_model::{Bar, Interval, Symbol, Tick};
use std::future::Future;

mod error;

pub use error::{Error, Result};

/// A provider's answer to a history request: bars of `interval` in `[from, to)`.
#[derive(Debug, Clone)]
pub struct HistoryRequest {
    pub symbol: Symbol,
    pub interval: Interval,
    /// Nanoseconds since the epoch.
    pub from: i64,
    pub to: i64,
}

/// A source of prices that can be asked on demand.
pub trait Provider: Send + Sync {
    /// The provider's name as used in config, API (`provider=`) and `Tick::source`.
    fn name(&self) -> &str;
    /// The latest price of `symbol` as a normalized tick.
    fn latest(&self, symbol: &Symbol) -> impl Future<Output = Result<Tick>> + Send;
    /// Historical bars; `Error::Unsupported` where the upstream has none.
    fn history(&self, req: &HistoryRequest) -> impl Future<Output = Result<Vec<Bar>>> + Send;
}
