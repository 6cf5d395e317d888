//! The seam between the aggregates and the backends. Each aggregate module
//! implements its store trait once, for every [`Backend`] that supplies the
//! aggregate's dialect-specific SQL (a small `…Sql` trait beside the store
//! trait); a backend supplies its connections here, and its sqlx driver
//! through [`Dialect`].
//!
//! [`Dialect`] is implemented for `sqlx::Sqlite` and `sqlx::Postgres` by one
//! macro: statements are built and run the same way on both, through boxed
//! futures so that the generic aggregate code needs no driver bounds.

use crate::error::During;
use crate::rows::{Sources, SqlRow, decode_all};
use crate::sql::{Binds, Filter};
use crate::{Error, Result};
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

/// The built statement of a backend's dialect.
pub(crate) type BuilderOf<'q, B> = <<B as Backend>::Db as Dialect>::Builder<'q>;

/// A row of a backend's dialect.
pub(crate) type RowOf<B> = <<B as Backend>::Db as Dialect>::Row;

/// The first row of `qb` on the reader, decoded; `op` names the read in errors.
pub(crate) async fn read_one<B: Backend, T>(
    b: &B,
    qb: &mut BuilderOf<'_, B>,
    op: &'static str,
    decode: fn(&RowOf<B>) -> Result<T>,
) -> Result<Option<T>> {
    let row = B::Db::one(b.reader(), qb).await.during(op)?;
    row.as_ref().map(decode).transpose()
}

/// Every row of `qb` on the reader, decoded with one [`Sources`] for the page.
pub(crate) async fn read_all<B: Backend, T>(
    b: &B,
    qb: &mut BuilderOf<'_, B>,
    op: &'static str,
    decode: impl Fn(&RowOf<B>, &mut Sources) -> Result<T>,
) -> Result<Vec<T>> {
    let rows = B::Db::all(b.reader(), qb).await.during(op)?;
    decode_all(&rows, decode)
}

/// Runs the built write in the backend's write turn; true when it changed
/// a row.
pub(crate) async fn write_built<B: Backend>(
    b: &B,
    qb: &mut BuilderOf<'_, B>,
    op: &'static str,
) -> Result<bool> {
    let _turn = b.write_turn().await;
    Ok(B::Db::run(b.writer(), qb).await.during(op)? > 0)
}

/// Runs a hand-written statement in the backend's write turn; the number of
/// rows it changed. `fail` maps the driver's error (to a conflict, say).
pub(crate) async fn write_stmt<'q, B: Backend>(
    b: &B,
    stmt: <B::Db as Dialect>::Stmt<'q>,
    fail: impl FnOnce(sqlx::Error) -> Error,
) -> Result<u64> {
    let _turn = b.write_turn().await;
    B::Db::execute(b.writer(), stmt).await.map_err(fail)
}
