//! The store's error type. It names what failed (the operation, the table,
//! the URL without its password) and carries the driver's message as an
//! opaque source, so no `sqlx` or `rusqlite` type is part of this crate's
//! public interface: callers match on the variants, never on driver errors.

use thiserror::Error;

/// A driver's error, kept for its message and `source()` chain.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "unsupported storage URL {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://…"
    )]
    UnsupportedUrl(String),
    /// Opening the database at `url` (password redacted) failed.
    #[error("cannot open storage at {url}: {source}")]
    Connect { url: String, source: BoxError },
    /// Applying the schema migrations of `dialect` failed.
    #[error("migrating the {dialect} schema failed: {source}")]
    Migrate {
        dialect: &'static str,
        source: BoxError,
    },
    /// A statement failed; `op` says what the store was doing
    /// (e.g. "inserting ticks").
    #[error("database error while {op}: {source}")]
    Database { op: &'static str, source: BoxError },
    /// A unique key (the named thing) already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("invalid cursor")]
    InvalidCursor,
    /// A stored row could not be decoded.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the operation to a driver error: `query.await.during("reading bars")?`.
pub(crate) trait During<T> {
    fn during(self, op: &'static str) -> Result<T>;
}

impl<T, E: Into<BoxError>> During<T> for std::result::Result<T, E> {
    fn during(self, op: &'static str) -> Result<T> {
        self.map_err(|e| Error::Database {
            op,
            source: e.into(),
        })
    }
}

/// Maps a driver error to a database error of `op`.
pub(crate) fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::Database {
        op,
        source: e.into(),
    }
}

/// A unique-key violation as [`Error::Conflict`] on `what`, anything else as
/// a database error of `op`. Both dialects report violations the same way.
pub(crate) fn conflict(e: sqlx::Error, op: &'static str, what: &str) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(what.to_string()),
        _ => Error::Database {
            op,
            source: e.into(),
        },
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
