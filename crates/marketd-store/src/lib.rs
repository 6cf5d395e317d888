//! Durable storage of marketd: one trait per aggregate, the backends that
//! implement them, the [`AnyStore`] container that picks a backend by URL
//! (`sqlite://path`, `postgres://…`), and the schema migrations of each
//! dialect.
//!
//! Layout, so that a new table is one trait module plus one file per
//! backend:
//! - `ticks`, `series` (bars and indicators), `requests` (price requests),
//!   `jobs` (polling jobs), `access` (API keys and credentials), `connectors`
//!   (connectors, their status, data and raw frames), `tda` (uploads and
//!   persistent-homology jobs), `signals` (streaming TDA signals,
//!   [`SignalStore`]): each holds its
//!   aggregate's trait ([`TickStore`], [`SeriesStore`], [`RequestStore`],
//!   [`JobStore`], [`AccessStore`], [`ConnectorStore`]), its query types, and what both dialects
//!   share: the row decoder, the binding of a record, the shape of the reads;
//! - `sqlite/` and `postgres/`: a backend each, `mod.rs` for connecting and
//!   migrating ([`Store`]) and one file per aggregate holding that dialect's
//!   SQL;
//! - `rows` (column reads) and `sql` (binds, filters): the dialect-neutral
//!   plumbing the aggregates use;
//! - `any`: [`AnyStore`], which delegates every trait to the backend in use.
//!
//! Handlers and consumers see only the traits (`use marketd_store::prelude::*`).

use std::future::Future;

pub mod access;
mod any;
mod backend;
pub mod connectors;
pub mod crypto;
mod error;
pub mod jobs;
pub mod postgres;
pub mod requests;
mod rows;
pub mod series;
pub mod signals;
mod sql;
pub mod sqlite;
pub mod tda;
pub mod ticks;

pub use access::AccessStore;
pub use any::AnyStore;
pub use connectors::{ConnectorStore, NewConnectorRecord, RawMessage};
pub use error::{BoxError, Error, Result};
pub use jobs::JobStore;
pub use postgres::PostgresStore;
pub use requests::RequestStore;
pub use series::{BarQuery, BarRange, IndicatorQuery, SeriesStore};
pub use signals::{SignalQuery, SignalStore};
pub use sqlite::SqliteStore;
pub use tda::{KeyedTdaJob, NewTdaJob, TdaResult, TdaStore};
pub use ticks::{TickPage, TickQuery, TickStore};

/// Every store trait, for `use marketd_store::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AccessStore, ConnectorStore, JobStore, RequestStore, SeriesStore, SignalStore, Store,
        TdaStore, TickStore,
    };
}

/// The life cycle of a backend, beside its aggregate traits.
pub trait Store: Send + Sync {
    /// Applies pending migrations (idempotent).
    fn migrate(&self) -> impl Future<Output = Result<()>> + Send;
    /// Cheap round trip for readiness checks.
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    /// Closes the backend's connections (call once at shutdown; the store
    /// is unusable afterwards).
    fn close(&self) -> impl Future<Output = ()> + Send;
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
