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

fn price_request_query(chunk: &[PriceRequest]) -> PgQuery<'static> {
    let n = chunk.len();
    let mut id = Vec::with_capacity(n);
    let mut symbol = Vec::with_capacity(n);
    let mut provider = Vec::with_capacity(n);
    let mut requested_at = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut latency_us = Vec::with_capacity(n);
    let mut error = Vec::with_capacity(n);
    let mut request_id = Vec::with_capacity(n);
    for x in chunk {
        id.push(x.id.to_string());
        symbol.push(x.symbol.as_str().to_string());
        provider.push(x.provider.to_string());
        requested_at.push(x.requested_at);
        outcome.push(x.outcome.as_str().to_string());
        latency_us.push(to_i64(x.latency_us));
        error.push(x.error.clone());
        request_id.push(x.request_id.clone());
    }
    sqlx::query(PRICE_REQUEST_INSERT)
        .bind(id)
        .bind(symbol)
        .bind(provider)
        .bind(requested_at)
        .bind(outcome)
        .bind(latency_us)
        .bind(error)
        .bind(request_id)
}

impl RequestSql for PostgresStore {
    async fn write_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        self.write_chunked(xs, "inserting price requests", price_request_query)
            .await
            .map(drop)
    }
}
