//! Reads of the streaming TDA signals (`GET /tda/signals`, `GET
//! /tda/baskets`): the configured baskets and their stored windows.

use crate::tda_stream::{BasketConfig, TdaStreamConfig};
use marketd_model::TdaSignal;
use marketd_model::time::parse_bound;
use marketd_store::prelude::*;
use marketd_store::{AnyStore, SignalQuery};
use std::sync::Arc;

/// Default page of `GET /tda/signals`.
pub const DEFAULT_LIMIT: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum TdaSignalError {
    /// The request is malformed; the message is safe to show.
    #[error("{0}")]
    Validation(String),
    #[error("basket {0} is not configured")]
    UnknownBasket(String),
    #[error(transparent)]
    Store(#[from] marketd_store::Error),
}

/// The configured baskets and their stored signals.
#[derive(Debug, Clone)]
pub struct TdaSignalService {
    store: Arc<AnyStore>,
    cfg: Arc<TdaStreamConfig>,
    max_page: u32,
}

/// A query of one basket's signals, as the API receives it.
#[derive(Debug, Clone, Default)]
pub struct SignalsRequest {
    pub basket: Option<String>,
    /// RFC 3339 or an epoch number; bounds on `window_end`, `[from, to)`.
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u32>,
}

impl TdaSignalService {
    pub fn new(store: Arc<AnyStore>, cfg: TdaStreamConfig, max_page: u32) -> Self {
        TdaSignalService {
            store,
            cfg: Arc::new(cfg),
            max_page,
        }
    }

    /// The configured baskets.
    pub fn baskets(&self) -> &[BasketConfig] {
        &self.cfg.baskets
    }

    /// One basket's signals by window end, ascending; without `from` the
    /// newest `limit`.
    pub async fn signals(
        &self,
        r: SignalsRequest,
    ) -> Result<(BasketConfig, Vec<TdaSignal>), TdaSignalError> {
        let name = r
            .basket
            .filter(|b| !b.is_empty())
            .ok_or_else(|| TdaSignalError::Validation("basket is required".into()))?;
        let basket = self
            .cfg
            .basket(&name)
            .cloned()
            .ok_or(TdaSignalError::UnknownBasket(name))?;
        let time = |key: &str, v: Option<String>| -> Result<Option<i64>, TdaSignalError> {
            v.map(|s| {
                parse_bound(&s).ok_or_else(|| {
                    TdaSignalError::Validation(format!(
                        "{key}: expected RFC 3339 or an epoch number, got {s:?}"
                    ))
                })
            })
            .transpose()
        };
        let (from, to) = (time("from", r.from)?, time("to", r.to)?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(TdaSignalError::Validation("from must be before to".into()));
        }
        let limit = match r.limit {
            None => DEFAULT_LIMIT.min(self.max_page),
            Some(0) => {
                return Err(TdaSignalError::Validation(
                    "limit must be at least 1".into(),
                ));
            }
            Some(n) if n > self.max_page => {
                return Err(TdaSignalError::Validation(format!(
                    "limit must be at most {}",
                    self.max_page
                )));
            }
            Some(n) => n,
        };
        let q = SignalQuery {
            basket: basket.name.clone(),
            from,
            to,
            limit,
        };
        let signals = self.store.tda_signals(&q).await?;
        Ok((basket, signals))
    }

    /// Every configured basket with its newest stored signal.
    pub async fn baskets_with_last(
        &self,
    ) -> Result<Vec<(BasketConfig, Option<TdaSignal>)>, TdaSignalError> {
        let mut out = Vec::with_capacity(self.cfg.baskets.len());
        for b in &self.cfg.baskets {
            let q = SignalQuery {
                basket: b.name.clone(),
                from: None,
                to: None,
                limit: 1,
            };
            let last = self.store.tda_signals(&q).await?.pop();
            out.push((b.clone(), last));
        }
        Ok(out)
    }
}
