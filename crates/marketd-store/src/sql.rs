//! Statement building shared by both dialects: binding a record's fields in
//! column order ([`Binds`]) and the `WHERE`/`ORDER BY` shapes of the reads
//! ([`Filter`]). sqlx writes each dialect's placeholders (`?` or `$n`), so a
//! shape written here is the same SQL each backend wrote by hand before.

use sqlx::query::Query;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// Positional binds of the value types this crate stores, for a statement
/// of either dialect (one blanket impl; the driver bounds are stated here only).
pub(crate) trait Binds<'q>: Sized {
    fn text(self, v: &'q str) -> Self;
    fn opt_text(self, v: Option<&'q str>) -> Self;
    fn owned(self, v: String) -> Self;
    fn int(self, v: i64) -> Self;
    fn opt_int(self, v: Option<i64>) -> Self;
    fn blob(self, v: &'q [u8]) -> Self;
    fn float(self, v: f64) -> Self;
    fn opt_float(self, v: Option<f64>) -> Self;
    fn flag(self, v: bool) -> Self;
}

impl<'q, DB> Binds<'q> for Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
{
    fn text(self, v: &'q str) -> Self {
        self.bind(v)
    }
    fn opt_text(self, v: Option<&'q str>) -> Self {
        self.bind(v)
    }
    fn owned(self, v: String) -> Self {
        self.bind(v)
    }
    fn int(self, v: i64) -> Self {
        self.bind(v)
    }
    fn opt_int(self, v: Option<i64>) -> Self {
        self.bind(v)
    }
    fn blob(self, v: &'q [u8]) -> Self {
        self.bind(v)
    }
    fn float(self, v: f64) -> Self {
        self.bind(v)
    }
    fn opt_float(self, v: Option<f64>) -> Self {
        self.bind(v)
    }
    fn flag(self, v: bool) -> Self {
        self.bind(v)
    }
}

/// Appending SQL and bound values to a read of either dialect.
pub(crate) trait Filter<'q> {
    fn sql(&mut self, sql: &str) -> &mut Self;
    fn text(&mut self, v: &'q str) -> &mut Self;
    fn owned(&mut self, v: String) -> &mut Self;
    fn int(&mut self, v: i64) -> &mut Self;
    fn opt_text(&mut self, v: Option<&'q str>) -> &mut Self;
    fn opt_int(&mut self, v: Option<i64>) -> &mut Self;
    fn float(&mut self, v: f64) -> &mut Self;
    fn bytes(&mut self, v: &'q [u8]) -> &mut Self;

    /// ` AND {col} = <v>`.
    fn eq_text(&mut self, col: &str, v: &'q str) -> &mut Self {
        self.sql(&format!(" AND {col} = ")).text(v)
    }

    /// ` AND source = <source>` when a source is given.
    fn source(&mut self, source: Option<&'q str>) -> &mut Self {
        if let Some(source) = source {
            self.eq_text("source", source);
        }
        self
    }

    /// Pushes the `[from, to)` bounds of a windowed query on `col`, and
    /// returns the ordering: without `from` the newest `limit` rows (read
    /// descending and reversed by the caller), with `from` ascending from it.
    fn window(
        &mut self,
        col: &str,
        from: Option<i64>,
        to: Option<i64>,
        limit: u32,
        tie: &str,
    ) -> bool {
        if let Some(from) = from {
            self.sql(&format!(" AND {col} >= ")).int(from);
        }
        if let Some(to) = to {
            self.sql(&format!(" AND {col} < ")).int(to);
        }
        let newest = from.is_none();
        let dir = if newest { "DESC" } else { "ASC" };
        self.sql(&format!(" ORDER BY {col} {dir}, {tie} {dir} LIMIT "))
            .int(i64::from(limit));
        newest
    }
}

impl<'q, DB> Filter<'q> for QueryBuilder<'q, DB>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    String: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    f64: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
{
    fn sql(&mut self, sql: &str) -> &mut Self {
        self.push(sql)
    }
    fn text(&mut self, v: &'q str) -> &mut Self {
        self.push_bind(v)
    }
    fn owned(&mut self, v: String) -> &mut Self {
        self.push_bind(v)
    }
    fn int(&mut self, v: i64) -> &mut Self {
        self.push_bind(v)
    }
    fn opt_text(&mut self, v: Option<&'q str>) -> &mut Self {
        self.push_bind(v)
    }
    fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        self.push_bind(v)
    }
    fn float(&mut self, v: f64) -> &mut Self {
        self.push_bind(v)
    }
    fn bytes(&mut self, v: &'q [u8]) -> &mut Self {
        self.push_bind(v)
    }
}

/// Rows read newest first by [`Filter::window`] put back in ascending order.
pub(crate) fn ascending<T>(mut xs: Vec<T>, newest: bool) -> Vec<T> {
    if newest {
        xs.reverse();
    }
    xs
}
