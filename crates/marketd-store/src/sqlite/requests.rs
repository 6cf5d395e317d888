//! The request log in SQLite: multi-row inserts of power-of-two chunks.

use super::{InsertSql, SqliteQuery, SqliteStore};
use crate::Result;
use crate::requests::RequestSql;
use crate::rows::to_i64;
use marketd_model::PriceRequest;
use std::sync::OnceLock;

const PRICE_REQUEST_COLS: usize = 8;

fn price_request_insert_sql() -> &'static InsertSql {
    static SQL: OnceLock<InsertSql> = OnceLock::new();
    SQL.get_or_init(|| {
        InsertSql::new(
            "INSERT INTO price_requests (id, symbol, provider, requested_at, outcome, latency_us, error, request_id)",
            PRICE_REQUEST_COLS,
            "ON CONFLICT (id) DO NOTHING",
            2048,
        )
    })
}

fn bind_price_request<'q>(q: SqliteQuery<'q>, x: &'q PriceRequest) -> SqliteQuery<'q> {
    q.bind(x.id.to_string())
        .bind(x.symbol.as_str())
        .bind(&*x.provider)
        .bind(x.requested_at)
        .bind(x.outcome.as_str())
        .bind(to_i64(x.latency_us))
        .bind(x.error.as_deref())
        .bind(x.request_id.as_deref())
}

impl RequestSql for SqliteStore {
    async fn write_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        self.write_chunked(
            "inserting price requests",
            price_request_insert_sql(),
            xs,
            bind_price_request,
        )
        .await
        .map(drop)
    }
}
