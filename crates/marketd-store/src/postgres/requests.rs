//! The request log in PostgreSQL: `UNNEST` inserts in chunks.

use super::{PgQuery, PostgresStore};
use crate::Result;
use crate::requests::RequestSql;
use crate::rows::to_i64;
use marketd_model::PriceRequest;

const PRICE_REQUEST_INSERT: &str = "INSERT INTO price_requests (id, symbol, provider, requested_at, outcome, \
     latency_us, error, request_id) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::int8[], $7::text[], $8::text[]) \
     ON CONFLICT (id) DO NOTHING";

/// One `UNNEST` array: `f` of every row of `chunk`.
fn column<U>(chunk: &[PriceRequest], f: impl Fn(&PriceRequest) -> U) -> Vec<U> {
    chunk.iter().map(f).collect()
}

fn price_request_query(chunk: &[PriceRequest]) -> PgQuery<'static> {
    sqlx::query(PRICE_REQUEST_INSERT)
        .bind(column(chunk, |x| x.id.to_string()))
        .bind(column(chunk, |x| x.symbol.as_str().to_string()))
        .bind(column(chunk, |x| x.provider.to_string()))
        .bind(column(chunk, |x| x.requested_at))
        .bind(column(chunk, |x| x.outcome.as_str().to_string()))
        .bind(column(chunk, |x| to_i64(x.latency_us)))
        .bind(column(chunk, |x| x.error.clone()))
        .bind(column(chunk, |x| x.request_id.clone()))
}

impl RequestSql for PostgresStore {
    async fn write_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        self.write_chunked(xs, "inserting price requests", price_request_query)
            .await
            .map(drop)
    }
}
