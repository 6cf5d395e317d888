use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "unsupported storage URL {0:?}: expected sqlite://PATH, sqlite::memory: or postgres://…"
    )]
    UnsupportedUrl(String),
    #[error("cannot open storage at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite backend's dedicated tick writer (rusqlite).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
