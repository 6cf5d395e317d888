//! Row decoding shared by both dialects. Each aggregate module decodes its
//! rows once, through [`Cols`], from any sqlx row whose driver reads text,
//! integers, floats, booleans and bytes the same way (SQLite and PostgreSQL
//! both do). What differs between the dialects is only the `SELECT` text,
//! which each backend writes so that decimals arrive as text (see
//! [`parse_decimal`]).

use crate::{Error, Result};
use marketd_model::{Decimal, Symbol};
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::Arc;

/// The column reads the decoders need, for any sqlx row type that supports
/// them (one blanket impl; the driver bounds are stated here only).
pub(crate) trait SqlRow {
    fn text(&self, idx: usize) -> sqlx::Result<&str>;
    fn opt_text(&self, idx: usize) -> sqlx::Result<Option<&str>>;
    fn int(&self, idx: usize) -> sqlx::Result<i64>;
    fn opt_int(&self, idx: usize) -> sqlx::Result<Option<i64>>;
    fn float(&self, idx: usize) -> sqlx::Result<f64>;
    fn opt_float(&self, idx: usize) -> sqlx::Result<Option<f64>>;
    fn flag(&self, idx: usize) -> sqlx::Result<bool>;
    fn bytes(&self, idx: usize) -> sqlx::Result<Vec<u8>>;
}

impl<R> SqlRow for R
where
    R: Row,
    usize: ColumnIndex<R>,
    for<'r> &'r str: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, idx: usize) -> sqlx::Result<&str> {
        self.try_get(idx)
    }
    fn opt_text(&self, idx: usize) -> sqlx::Result<Option<&str>> {
        self.try_get(idx)
    }
    fn int(&self, idx: usize) -> sqlx::Result<i64> {
        self.try_get(idx)
    }
    fn opt_int(&self, idx: usize) -> sqlx::Result<Option<i64>> {
        self.try_get(idx)
    }
    fn float(&self, idx: usize) -> sqlx::Result<f64> {
        self.try_get(idx)
    }
    fn opt_float(&self, idx: usize) -> sqlx::Result<Option<f64>> {
        self.try_get(idx)
    }
    fn flag(&self, idx: usize) -> sqlx::Result<bool> {
        self.try_get(idx)
    }
    fn bytes(&self, idx: usize) -> sqlx::Result<Vec<u8>> {
        self.try_get(idx)
    }
}

/// The columns of one row of `table`, read by position; every failure is
/// [`Error::Corrupt`] naming the table and the column.
pub(crate) struct Cols<'r, R> {
    row: &'r R,
    table: &'static str,
}

impl<'r, R: SqlRow> Cols<'r, R> {
    pub(crate) fn new(row: &'r R, table: &'static str) -> Self {
        Cols { row, table }
    }

    pub(crate) fn corrupt(&self, detail: impl Into<String>) -> Error {
        Error::Corrupt {
            table: self.table,
            detail: detail.into(),
        }
    }

    fn read<T>(&self, idx: usize, res: sqlx::Result<T>) -> Result<T> {
        res.map_err(|e| self.corrupt(format!("column {idx}: {e}")))
    }

    pub(crate) fn text(&self, idx: usize) -> Result<&'r str> {
        self.read(idx, self.row.text(idx))
    }
    pub(crate) fn string(&self, idx: usize) -> Result<String> {
        self.text(idx).map(str::to_string)
    }
    pub(crate) fn opt_string(&self, idx: usize) -> Result<Option<String>> {
        let s = self.read(idx, self.row.opt_text(idx))?;
        Ok(s.map(str::to_string))
    }
    pub(crate) fn int(&self, idx: usize) -> Result<i64> {
        self.read(idx, self.row.int(idx))
    }
    pub(crate) fn opt_int(&self, idx: usize) -> Result<Option<i64>> {
        self.read(idx, self.row.opt_int(idx))
    }
    /// A count stored as a signed integer (negative reads as 0).
    pub(crate) fn count(&self, idx: usize) -> Result<u64> {
        self.int(idx).map(to_u64)
    }
    pub(crate) fn float(&self, idx: usize) -> Result<f64> {
        self.read(idx, self.row.float(idx))
    }
    pub(crate) fn opt_float(&self, idx: usize) -> Result<Option<f64>> {
        self.read(idx, self.row.opt_float(idx))
    }
    pub(crate) fn flag(&self, idx: usize) -> Result<bool> {
        self.read(idx, self.row.flag(idx))
    }
    pub(crate) fn bytes(&self, idx: usize) -> Result<Vec<u8>> {
        self.read(idx, self.row.bytes(idx))
    }

    /// A text column parsed by `parse`; `what` names it in the error.
    pub(crate) fn parse<T, E: Display>(
        &self,
        idx: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T> {
        let s = self.text(idx)?;
        parse(s).map_err(|e| self.corrupt(format!("bad {what} {s:?}: {e}")))
    }

    /// A text column naming an enum case (`None` from `parse` is corrupt).
    pub(crate) fn case<T>(
        &self,
        idx: usize,
        what: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T> {
        let s = self.text(idx)?;
        parse(s).ok_or_else(|| self.corrupt(format!("bad {what} {s:?}")))
    }

    pub(crate) fn symbol(&self, idx: usize) -> Result<Symbol> {
        let s = self.text(idx)?;
        Symbol::parse(s).map_err(|e| self.corrupt(e.to_string()))
    }
    pub(crate) fn uuid(&self, idx: usize) -> Result<uuid::Uuid> {
        self.parse(idx, "id", uuid::Uuid::parse_str)
    }

    pub(crate) fn decimal(&self, idx: usize) -> Result<Decimal> {
        let s = self.text(idx)?;
        parse_decimal(s).ok_or_else(|| self.corrupt(format!("bad decimal {s:?}")))
    }
    /// `N` decimals from column `first` on.
    pub(crate) fn decimals<const N: usize>(&self, first: usize) -> Result<[Decimal; N]> {
        let mut out = [Decimal::ZERO; N];
        for (i, d) in out.iter_mut().enumerate() {
            *d = self.decimal(first + i)?;
        }
        Ok(out)
    }
    pub(crate) fn opt_decimal(&self, idx: usize) -> Result<Option<Decimal>> {
        let s = self.read(idx, self.row.opt_text(idx))?;
        s.map(|s| parse_decimal(s).ok_or_else(|| self.corrupt(format!("bad decimal {s:?}"))))
            .transpose()
    }

    /// A source or provider name, shared with the other rows of the page.
    pub(crate) fn source(&self, idx: usize, sources: &mut Sources) -> Result<Arc<str>> {
        Ok(sources.intern(self.text(idx)?))
    }
}

/// Decodes every row with `f`, sharing one [`Sources`] across the page.
pub(crate) fn decode_all<R, T>(
    rows: &[R],
    f: impl Fn(&R, &mut Sources) -> Result<T>,
) -> Result<Vec<T>> {
    let mut sources = Sources::default();
    rows.iter().map(|r| f(r, &mut sources)).collect()
}

/// Interns source names while decoding a page, so rows share one `Arc<str>`.
#[derive(Default)]
pub(crate) struct Sources(HashMap<String, Arc<str>>);

impl Sources {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.0.insert(s.to_string(), a.clone());
        a
    }
}

pub(crate) fn to_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(x: i64) -> u64 {
    u64::try_from(x).unwrap_or(0)
}

/// Parses a decimal read as text: plain decimal text (PostgreSQL's
/// `NUMERIC::text`, SQLite's `_exact` columns), or SQLite's rendering of a
/// REAL such as `1.0e+20` or `1.0e-07`.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    if let Ok(d) = Decimal::from_str(s) {
        return Some(d);
    }
    if let Ok(d) = Decimal::from_scientific(s) {
        return Some(d);
    }
    // `from_scientific` refuses e.g. `1.0e-28` (the base's scale plus the
    // exponent exceeds 28): drop the base's trailing zeros and retry.
    let (base, exp) = s.split_once(['e', 'E'])?;
    let base = Decimal::from_str(base).ok()?.normalize();
    let exp: i64 = exp.parse().ok()?;
    let scale = i64::from(base.scale()) - exp;
    if scale >= 0 {
        Decimal::try_from_i128_with_scale(base.mantissa(), u32::try_from(scale).ok()?).ok()
    } else {
        let factor = 10i128.checked_pow(u32::try_from(-scale).ok()?)?;
        Decimal::try_from_i128_with_scale(base.mantissa().checked_mul(factor)?, 0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn parses_sqlite_real_renderings() {
        assert_eq!(parse_decimal("65432.1"), Some(d("65432.10")));
        assert_eq!(parse_decimal("1.0e+20"), Some(d("100000000000000000000")));
        assert_eq!(parse_decimal("1.5e+20"), Some(d("150000000000000000000")));
        assert_eq!(parse_decimal("1.0e-07"), Some(d("0.0000001")));
        assert_eq!(
            parse_decimal("1.0e-28"),
            Some(d("0.0000000000000000000000000001"))
        );
        assert_eq!(parse_decimal("2.5E-3"), Some(d("0.0025")));
        assert_eq!(parse_decimal("abc"), None);
        assert_eq!(parse_decimal("1.0e+40"), None);
    }
}
