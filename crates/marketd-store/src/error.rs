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
    /// The database's disk (or its configured page limit) is full: nothing
    /// was written. Transient: the same write succeeds once space returns
    /// (SQLite `SQLITE_FULL`, PostgreSQL `53100 disk_full`).
    #[error("storage is full while {op}: {source}")]
    Full { op: &'static str, source: BoxError },
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
        self.map_err(|e| database(op, e.into()))
    }
}

/// Maps a driver error to a database error of `op`.
pub(crate) fn failed(op: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| database(op, e.into())
}

/// A driver error of `op`: [`Error::Full`] when the disk is full, else
/// [`Error::Database`].
pub(crate) fn database(op: &'static str, source: BoxError) -> Error {
    if is_full(source.as_ref()) {
        Error::Full { op, source }
    } else {
        Error::Database { op, source }
    }
}

/// Whether a driver error (or one of its causes) says the disk is full:
/// SQLite's `SQLITE_FULL` (13; through sqlx or rusqlite, whose unix VFS
/// also reports `ENOSPC` so) or PostgreSQL's `53100`.
pub fn is_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(sqlx::Error::Database(d)) = e.downcast_ref::<sqlx::Error>() {
            let code = d.code();
            let code = code.as_deref().unwrap_or("");
            // SQLite extended codes keep the primary code in the low byte.
            let sqlite_full = code.parse::<i32>().is_ok_and(|c| c & 0xff == 13);
            if sqlite_full || code == "53100" {
                return true;
            }
        }
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>()
            && f.code == rusqlite::ErrorCode::DiskFull
        {
            return true;
        }
        cur = e.source();
    }
    false
}

impl Error {
    /// Whether the disk was full (a transient condition: retry later).
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Full { .. })
    }
}

/// Whether the last write of the ingest path found the disk full, for
/// readiness: set by a failed tick insert, cleared by the next one that
/// succeeds (the tick sink retries until one does).
#[derive(Debug, Default)]
pub(crate) struct WriteHealth {
    full: std::sync::atomic::AtomicBool,
}

impl WriteHealth {
    pub(crate) fn observe<T>(&self, r: &Result<T>) {
        use std::sync::atomic::Ordering::Relaxed;
        match r {
            Ok(_) => {
                if self.full.load(Relaxed) {
                    self.full.store(false, Relaxed);
                    tracing::info!("storage writes succeed again");
                }
            }
            Err(Error::Full { .. }) => self.full.store(true, Relaxed),
            Err(_) => {}
        }
    }

    /// An error while the last write found the disk full.
    pub(crate) fn check(&self) -> Result<()> {
        if self.full.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Full {
                op: "writing ticks",
                source: "the last write found the disk full".into(),
            });
        }
        Ok(())
    }
}

/// A unique-key violation as [`Error::Conflict`] on `what`, anything else as
/// a database error of `op`. Both dialects report violations the same way.
pub(crate) fn conflict(e: sqlx::Error, op: &'static str, what: &str) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(what.to_string()),
        _ => database(op, e.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database whose file may not grow past a few pages, as a full disk
    /// (`max_page_count`), through rusqlite (the tick writer's driver).
    fn tiny_rusqlite() -> (tempfile::TempDir, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (x BLOB); PRAGMA max_page_count = 3;")
            .unwrap();
        (dir, conn)
    }

    #[test]
    fn a_full_database_is_a_full_error_through_rusqlite_and_sets_readiness() {
        let (_dir, conn) = tiny_rusqlite();
        let res: Result<usize> = conn
            .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .during("inserting ticks");
        let err = res.as_ref().unwrap_err();
        assert!(err.is_full(), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("storage is full while inserting ticks")
        );

        // Readiness follows the ingest path: red after the failure, green
        // again after the next write that succeeds.
        let health = WriteHealth::default();
        health.observe(&Ok::<(), Error>(()));
        assert!(health.check().is_ok());
        health.observe(&res);
        assert!(health.check().unwrap_err().is_full());
        // Other failures leave it as it is.
        health.observe(&Err::<(), _>(Error::InvalidCursor));
        assert!(health.check().is_err());
        let ok: Result<usize> = conn
            .execute("INSERT INTO t VALUES (1)", [])
            .during("inserting ticks");
        health.observe(&ok);
        assert!(health.check().is_ok());
    }

    #[tokio::test]
    async fn a_full_database_is_a_full_error_through_sqlx() {
        use sqlx::ConnectOptions;
        let dir = tempfile::tempdir().unwrap();
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("t.db"))
            .create_if_missing(true)
            .pragma("max_page_count", "3")
            .connect()
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&mut conn)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&mut conn)
            .await
            .map_err(failed("storing a polling job"))
            .unwrap_err();
        assert!(err.is_full(), "{err:?}");
        // Anything else stays a database error.
        let err = sqlx::query("INSERT INTO missing VALUES (1)")
            .execute(&mut conn)
            .await
            .map_err(failed("storing a polling job"))
            .unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
    }
}
