//! The request-log aggregate (table `price_requests`, the cache misses of
//! `GET /prices/latest`): the [`RequestStore`] trait, its read written once
//! here for every backend that supplies its batch insert ([`RequestSql`]).

use crate::Result;
use crate::backend::{Backend, Dialect, read_all};
use crate::rows::{Cols, Sources, SqlRow};
use crate::sql::Filter;
use marketd_model::{PriceRequest, RequestOutcome, Symbol};
use std::future::Future;

/// The request log. Inserts are idempotent on the request's id.
pub trait RequestStore: Send + Sync {
    fn insert_price_requests(&self, xs: &[PriceRequest])
    -> impl Future<Output = Result<()>> + Send;
    /// Newest first.
    fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<PriceRequest>>> + Send;
}

/// What a backend writes by hand for [`RequestStore`].
pub(crate) trait RequestSql: Backend {
    /// [`RequestStore::insert_price_requests`] in one transaction.
    fn write_requests(&self, xs: &[PriceRequest]) -> impl Future<Output = Result<()>> + Send;
}

impl<B: RequestSql> RequestStore for B {
    async fn insert_price_requests(&self, xs: &[PriceRequest]) -> Result<()> {
        self.write_requests(xs).await
    }

    async fn price_requests(
        &self,
        symbol: Option<&Symbol>,
        limit: u32,
    ) -> Result<Vec<PriceRequest>> {
        let mut qb = B::Db::builder(PRICE_REQUEST_SELECT);
        if let Some(s) = symbol {
            qb.sql(" WHERE symbol = ").text(s.as_str());
        }
        qb.sql(" ORDER BY requested_at DESC, id DESC LIMIT ")
            .int(i64::from(limit));
        read_all(
            self,
            &mut qb,
            "reading price requests",
            price_request_from_row,
        )
        .await
    }
}

/// The columns every backend reads, in [`price_request_from_row`]'s order.
const PRICE_REQUEST_SELECT: &str = "SELECT id, symbol, provider, requested_at, outcome, latency_us, error, request_id FROM price_requests";

fn price_request_from_row<R: SqlRow>(row: &R, sources: &mut Sources) -> Result<PriceRequest> {
    let c = Cols::new(row, "price_requests");
    Ok(PriceRequest {
        id: c.uuid(0)?,
        symbol: c.symbol(1)?,
        provider: c.source(2, sources)?,
        requested_at: c.int(3)?,
        outcome: c.case(4, "outcome", outcome)?,
        latency_us: c.count(5)?,
        error: c.opt_string(6)?,
        request_id: c.opt_string(7)?,
    })
}

fn outcome(s: &str) -> Option<RequestOutcome> {
    match s {
        "provider" => Some(RequestOutcome::Provider),
        "store" => Some(RequestOutcome::Store),
        "error" => Some(RequestOutcome::Error),
        _ => None,
    }
}
