//! The PostgreSQL backend: one sqlx pool (`StoreOptions::max_connections`),
//! the same tables and semantics as the SQLite backend in PostgreSQL's
//! dialect (`migrations/postgres/`).
//!
//! Decimals are NUMERIC (exact), bound as text and read back as text, so
//! no precision is lost either way. Tick batches are copied (`COPY FROM
//! STDIN`, with the idempotent insert as the fallback when a tick is already
//! stored: `ticks.rs`); other batches are written with one
//! `INSERT ... SELECT FROM UNNEST(arrays)` statement per chunk, all chunks of
//! a batch in one transaction.
//!
//! This module connects and migrates; each aggregate's SQL of this dialect
//! lives in its own file beside it (`ticks.rs`, `series.rs`, `requests.rs`,
//! `jobs.rs`, `access.rs`).

use crate::backend::Backend;
use crate::error::During;
use crate::{BoxError, Error, Result, Store, StoreOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres};
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

mod access;
mod jobs;
mod requests;
mod series;
mod signals;
mod ticks;

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
        return crate::error::scheme_of(url);
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
        let connect_err = |source: BoxError| Error::Connect {
            url: shown.clone(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| match e {
                // Parse errors could quote the URL: keep only their kind.
                sqlx::Error::Configuration(_) => Error::UnsupportedUrl(shown.clone()),
                other => connect_err(other.into()),
            })?
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| connect_err(e.into()))?;
        Ok(PostgresStore { pool })
    }
}

/// A statement of this dialect with its binds.
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

impl PostgresStore {
    /// Runs `items` in chunks of [`CHUNK`] through the statements `build`
    /// makes, in one transaction; returns the total of `rows_affected`.
    async fn write_chunked<T>(
        &self,
        items: &[T],
        op: &'static str,
        build: impl Fn(&[T]) -> PgQuery<'static>,
    ) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.during(op)?;
        let mut affected = 0;
        for chunk in items.chunks(CHUNK) {
            affected += build(chunk)
                .execute(&mut *tx)
                .await
                .during(op)?
                .rows_affected();
        }
        tx.commit().await.during(op)?;
        Ok(affected)
    }
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

impl Backend for PostgresStore {
    type Db = Postgres;

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// PostgreSQL serialises concurrent writers itself.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        None
    }
}

impl Store for PostgresStore {
    async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await.map_err(|e| Error::Migrate {
            dialect: "postgres",
            source: e.into(),
        })
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .during("pinging the database")?;
        Ok(())
    }

    /// Closes every connection; later calls fail.
    async fn close(&self) {
        self.pool.close().await;
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
