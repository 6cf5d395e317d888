//! The seam between the aggregates and the backends. Each aggregate module
//! implements its store trait once, for every [`Backend`] that supplies the
//! aggregate's dialect-specific SQL (a small `…Sql` trait beside the store
//! trait); a backend supplies its connections here, and its sqlx driver
//! through [`Dialect`].
//!
//! [`Dialect`] is implemented for `sqlx::Sqlite` and `sqlx::Postgres` by one
//! macro: statements are built and run the same way on both, through boxed
//! futures so that the generic aggregate code needs no driver bounds.

use crate::rows::SqlRow;
use crate::sql::{Binds, Filter};
use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future borrowing for `'a`.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A sqlx driver as the aggregate code uses it: a pool, positional
/// statements ([`Binds`]) for the SQL a backend writes by hand, query
/// builders ([`Filter`]) for the shapes the dialects share.
pub(crate) trait Dialect: 'static {
    type Pool: Send + Sync;
    type Row: SqlRow + Send;
    type Stmt<'q>: Binds<'q> + Send;
    type Builder<'q>: Filter<'q> + Send;

    /// A statement of hand-written SQL, to bind in order.
    fn stmt(sql: &str) -> Self::Stmt<'_>;
    /// A statement built from `head` on.
    fn builder<'q>(head: &str) -> Self::Builder<'q>;
    /// Runs `s`; the number of rows it changed.
    fn execute<'e, 'q: 'e>(
        pool: &'e Self::Pool,
        s: Self::Stmt<'q>,
    ) -> BoxFuture<'e, sqlx::Result<u64>>;
    /// Runs the built statement; the number of rows it changed.
    fn run<'e, 'q: 'e>(
        pool: &'e Self::Pool,
        b: &'e mut Self::Builder<'q>,
    ) -> BoxFuture<'e, sqlx::Result<u64>>;
    /// The first row of the built query, if any.
    fn one<'e, 'q: 'e>(
        pool: &'e Self::Pool,
        b: &'e mut Self::Builder<'q>,
    ) -> BoxFuture<'e, sqlx::Result<Option<Self::Row>>>;
    /// Every row of the built query.
    fn all<'e, 'q: 'e>(
        pool: &'e Self::Pool,
        b: &'e mut Self::Builder<'q>,
    ) -> BoxFuture<'e, sqlx::Result<Vec<Self::Row>>>;
}

macro_rules! dialect {
    ($db:ty) => {
        impl Dialect for $db {
            type Pool = sqlx::Pool<$db>;
            type Row = <$db as sqlx::Database>::Row;
            type Stmt<'q> = sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>>;
            type Builder<'q> = sqlx::QueryBuilder<'q, $db>;

            fn stmt(sql: &str) -> Self::Stmt<'_> {
                sqlx::query(sql)
            }
            fn builder<'q>(head: &str) -> Self::Builder<'q> {
                sqlx::QueryBuilder::new(head)
            }
            fn execute<'e, 'q: 'e>(
                pool: &'e Self::Pool,
                s: Self::Stmt<'q>,
            ) -> BoxFuture<'e, sqlx::Result<u64>> {
                Box::pin(async move { Ok(s.execute(pool).await?.rows_affected()) })
            }
            fn run<'e, 'q: 'e>(
                pool: &'e Self::Pool,
                b: &'e mut Self::Builder<'q>,
            ) -> BoxFuture<'e, sqlx::Result<u64>> {
                Box::pin(async move { Ok(b.build().execute(pool).await?.rows_affected()) })
            }
            fn one<'e, 'q: 'e>(
                pool: &'e Self::Pool,
                b: &'e mut Self::Builder<'q>,
            ) -> BoxFuture<'e, sqlx::Result<Option<Self::Row>>> {
                Box::pin(b.build().fetch_optional(pool))
            }
            fn all<'e, 'q: 'e>(
                pool: &'e Self::Pool,
                b: &'e mut Self::Builder<'q>,
            ) -> BoxFuture<'e, sqlx::Result<Vec<Self::Row>>> {
                Box::pin(b.build().fetch_all(pool))
            }
        }
    };
}

dialect!(sqlx::Sqlite);
dialect!(sqlx::Postgres);

/// A backend's connections, as the aggregate implementations use them.
pub(crate) trait Backend: Send + Sync {
    type Db: Dialect;
    /// Where reads go.
    fn reader(&self) -> &<Self::Db as Dialect>::Pool;
    /// Where writes go.
    fn writer(&self) -> &<Self::Db as Dialect>::Pool;
    /// Held across a write so that the backend's writers take turns
    /// (SQLite's single-writer gate); `None` when they need not.
    fn write_turn(&self) -> impl Future<Output = Option<tokio::sync::MutexGuard<'_, ()>>> + Send;
}
