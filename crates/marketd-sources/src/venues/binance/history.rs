//! Binance's REST trade history, for backfilling the trade ids a stream
//! skipped (a disconnect, a dropped frame).
//!
//! | channel | spot (`binance`) | USD-M (`binance_futures`) |
//! |---|---|---|
//! | `agg_trades` | `GET /api/v3/aggTrades?symbol=&fromId=&limit=` | `GET /fapi/v1/aggTrades?…` |
//! | `trades` | `GET /api/v3/historicalTrades?symbol=&fromId=&limit=` | `GET /fapi/v1/historicalTrades?…` |
//!
//! Items are `{"a","p","q","f","l","T","m","M"}` (aggTrades; futures
//! without `M`) and `{"id","price","qty","quoteQty","time","isBuyerMaker",
//! "isBestMatch"}` (historicalTrades). Each becomes the [`Tick`] the
//! stream's decoder makes of the same trade (`source` the venue's name, the
//! canonical symbol, `venue_symbol`, `trade_id`, `ts_event` the trade time
//! in ns, exact decimals), so the identity rules store a trade seen both
//! ways once. The aggressor side (`m`, `isBuyerMaker`) is not kept, as on
//! the stream: `Tick` has no side field.
//!
//! [`HistoryClient::page`] asks from an id on, up to 1000 ids a request
//! (Binance's maximum); [`HistoryClient::fetch_range`] pages until a range
//! is covered. Every request first takes a token of its host's limiter
//! (shared with the REST connectors calling that host), and 429, 418 (an
//! IP ban) and 5xx answers and transport failures are retried after a
//! capped, full-jitter backoff that never comes sooner than `Retry-After`.

use super::super::{Channel, DecodeError, PlanError, Venue};
use super::clamp_ms;
use crate::connectors::{
    FetchError, FetchOutcome, HostLimiters, RequestSpec, RetryPolicy, fetch_once, host_key,
    parse_retry_after,
};
use crate::venues::common::{decimal, id_text, millis_to_nanos};
use marketd_model::time::now_ns;
use marketd_model::{Symbol, Tick, TickKind};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Most ids one request asks for (Binance's maximum `limit`).
pub const MAX_PAGE: u32 = 1000;

/// Why a page of history could not be had.
#[derive(Debug, Error)]
pub enum HistoryError {
    #[error("{venue} has no REST history of {channel} that marketd reads")]
    Unsupported {
        venue: &'static str,
        channel: Channel,
    },
    #[error("REST base {url:?} is not an http or https URL with a host")]
    BadBase { url: String },
    #[error(transparent)]
    Symbol(#[from] PlanError),
    #[error("{path}: {source}")]
    Fetch {
        path: String,
        #[source]
        source: FetchError,
    },
    #[error("{path} answered {status}: {body}")]
    Status {
        path: String,
        status: u16,
        body: String,
    },
    #[error("{path} answered {status} asking to wait {wait:?}, longer than the {max:?} waited for")]
    WaitTooLong {
        path: String,
        status: u16,
        wait: Duration,
        max: Duration,
    },
    #[error("{path}: the answer is not a list of trades: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: DecodeError,
    },
}

/// One answer of [`HistoryClient::page`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The trades of the answer whose ids are in the range asked, ascending.
    pub ticks: Vec<Tick>,
    /// The `fromId` of the next page when the range is not covered yet;
    /// `None` when it is, or when the venue has nothing more.
    pub next: Option<u64>,
}

/// `aggTrades` items.
#[derive(Debug, Deserialize)]
struct AggTrade<'a> {
    a: u64,
    #[serde(borrow)]
    p: Cow<'a, str>,
    #[serde(borrow)]
    q: Cow<'a, str>,
    #[serde(rename = "T")]
    t: u64,
}

/// `historicalTrades` items.
#[derive(Debug, Deserialize)]
struct HistoricalTrade<'a> {
    id: u64,
    #[serde(borrow)]
    price: Cow<'a, str>,
    #[serde(borrow)]
    qty: Cow<'a, str>,
    time: u64,
}

/// A trade of either answer.
struct Item<'a> {
    id: u64,
    price: Cow<'a, str>,
    qty: Cow<'a, str>,
    ms: u64,
}

/// Reads a Binance venue's trade history over REST.
#[derive(Debug, Clone)]
pub struct HistoryClient {
    http: reqwest::Client,
    venue: Venue,
    base: reqwest::Url,
    limiters: HostLimiters,
    policy: RetryPolicy,
    page_limit: u32,
    timeout: Duration,
}

impl HistoryClient {
    /// A client of `venue` (`binance` or `binance_futures`) at `base`
    /// (`https://api.binance.com`; a path is kept as a prefix), with its own
    /// limiters and the default [`RetryPolicy`].
    pub fn new(
        http: reqwest::Client,
        venue: Venue,
        base: reqwest::Url,
    ) -> Result<Self, HistoryError> {
        if !matches!(venue, Venue::Binance | Venue::BinanceFutures) {
            return Err(HistoryError::Unsupported {
                venue: venue.name(),
                channel: Channel::Trades,
            });
        }
        if !matches!(base.scheme(), "http" | "https") || host_key(&base).is_none() {
            return Err(HistoryError::BadBase { url: base.into() });
        }
        Ok(HistoryClient {
            http,
            venue,
            base,
            limiters: HostLimiters::default(),
            policy: RetryPolicy::default(),
            page_limit: MAX_PAGE,
            timeout: Duration::from_secs(10),
        })
    }

    /// Shares `limiters` (the REST connectors' per-host budgets).
    pub fn with_limiters(mut self, limiters: HostLimiters) -> Self {
        self.limiters = limiters;
        self
    }

    /// Retries with `policy`.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Asks for at most `n` ids a request (1 to [`MAX_PAGE`]).
    pub fn with_page_limit(mut self, n: u32) -> Self {
        self.page_limit = n.clamp(1, MAX_PAGE);
        self
    }

    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// The history endpoint of `channel`.
    pub fn endpoint(&self, channel: Channel) -> Result<&'static str, HistoryError> {
        Ok(match (self.venue, channel) {
            (Venue::Binance, Channel::AggTrades) => "/api/v3/aggTrades",
            (Venue::Binance, Channel::Trades) => "/api/v3/historicalTrades",
            (Venue::BinanceFutures, Channel::AggTrades) => "/fapi/v1/aggTrades",
            (Venue::BinanceFutures, Channel::Trades) => "/fapi/v1/historicalTrades",
            _ => {
                return Err(HistoryError::Unsupported {
                    venue: self.venue.name(),
                    channel,
                });
            }
        })
    }

    /// `{base}{endpoint}?symbol=BTCUSDT&fromId=N&limit=L`.
    pub fn page_url(
        &self,
        channel: Channel,
        symbol: &Symbol,
        from_id: u64,
        limit: u32,
    ) -> Result<reqwest::Url, HistoryError> {
        let endpoint = self.endpoint(channel)?;
        let venue_symbol = self.venue.venue_symbol(symbol)?.to_ascii_uppercase();
        let mut url = self.base.clone();
        let path = format!("{}{endpoint}", self.base.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        url.query_pairs_mut()
            .append_pair("symbol", &venue_symbol)
            .append_pair("fromId", &from_id.to_string())
            .append_pair("limit", &limit.to_string());
        Ok(url)
    }

    /// The trades of `symbol` on `channel` from id `from` on, those up to
    /// `to` (inclusive) kept: one request of at most the page limit.
    pub async fn page(
        &self,
        channel: Channel,
        symbol: &Symbol,
        from: u64,
        to: u64,
    ) -> Result<Page, HistoryError> {
        if to < from {
            return Ok(Page {
                ticks: Vec::new(),
                next: None,
            });
        }
        let wanted = (to - from).saturating_add(1);
        let limit = u32::try_from(wanted).map_or(self.page_limit, |w| w.min(self.page_limit));
        let url = self.page_url(channel, symbol, from, limit)?;
        let path = display_path(&url);
        let body = self.get(&url, &path).await?;
        let received = now_ns();
        let mut dec = self.venue.decoder();
        let venue_symbol = self.venue.venue_symbol(symbol)?.to_ascii_uppercase();
        let decode = |e: DecodeError| HistoryError::Decode {
            path: path.clone(),
            source: e,
        };
        let json = |e: serde_json::Error| HistoryError::Json {
            path: path.clone(),
            source: e,
        };
        let (price_field, qty_field, time_field) = match channel {
            Channel::AggTrades => ("p", "q", "T"),
            _ => ("price", "qty", "time"),
        };
        let items: Vec<Item<'_>> = match channel {
            Channel::AggTrades => serde_json::from_slice::<Vec<AggTrade<'_>>>(&body)
                .map_err(json)?
                .into_iter()
                .map(|x| Item {
                    id: x.a,
                    price: x.p,
                    qty: x.q,
                    ms: x.t,
                })
                .collect(),
            _ => serde_json::from_slice::<Vec<HistoricalTrade<'_>>>(&body)
                .map_err(json)?
                .into_iter()
                .map(|x| Item {
                    id: x.id,
                    price: x.price,
                    qty: x.qty,
                    ms: x.time,
                })
                .collect(),
        };
        let venue = self.venue.name();
        let mut ticks = Vec::with_capacity(items.len());
        let mut last = None::<u64>;
        for Item { id, price, qty, ms } in &items {
            let id = *id;
            last = Some(last.map_or(id, |l: u64| l.max(id)));
            if !(from..=to).contains(&id) {
                continue;
            }
            let price = decimal(venue, price_field, price).map_err(decode)?;
            let size = decimal(venue, qty_field, qty).map_err(decode)?;
            let ts_event = millis_to_nanos(venue, time_field, clamp_ms(*ms)).map_err(decode)?;
            let tick = dec
                .tick(
                    &venue_symbol,
                    TickKind::Trade,
                    price,
                    size,
                    ts_event,
                    received,
                )
                .map_err(decode)?;
            ticks.push(Tick {
                trade_id: Some(id_text(id)),
                ..tick
            });
        }
        ticks.sort_by_key(|t| t.trade_id.as_deref().and_then(|s| s.parse::<u64>().ok()));
        ticks.dedup_by(|a, b| a.trade_id == b.trade_id);
        // Goes on while the venue moves forward and the range is not covered.
        let next = match last {
            Some(l) if l >= from && l < to => Some(l + 1),
            _ => None,
        };
        Ok(Page { ticks, next })
    }

    /// Every trade of `symbol` on `channel` with an id in `[from, to]`,
    /// ascending, paging by `fromId` until the range is covered or the
    /// venue has nothing more.
    pub async fn fetch_range(
        &self,
        channel: Channel,
        symbol: &Symbol,
        from: u64,
        to: u64,
    ) -> Result<Vec<Tick>, HistoryError> {
        let mut out = Vec::new();
        let mut at = Some(from);
        while let Some(from) = at {
            let page = self.page(channel, symbol, from, to).await?;
            out.extend(page.ticks);
            at = page.next;
        }
        Ok(out)
    }

    /// The body of a successful `GET url`, retrying as the module says.
    async fn get(&self, url: &reqwest::Url, path: &str) -> Result<bytes::Bytes, HistoryError> {
        let spec = RequestSpec {
            timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            ..RequestSpec::get(url.as_str())
        };
        let limiter = self.limiters.for_url(url);
        let fetch_error = |source: FetchError| HistoryError::Fetch {
            path: path.to_string(),
            source,
        };
        let mut attempt = 0u32;
        loop {
            if let Some(l) = &limiter
                && !l.acquire(self.policy.max_limiter_wait).await
            {
                return Err(fetch_error(FetchError::HostRateLimited {
                    host: host_key(url).unwrap_or_default(),
                }));
            }
            let result = fetch_once(&self.http, &spec, now_ns()).await;
            let (retry_after, last) = match result {
                Ok(o) if o.is_success() => return Ok(o.body),
                Ok(o) if retryable(o.status.as_u16()) => {
                    let wait = retry_after(&o);
                    let status = o.status.as_u16();
                    if let Some(wait) = wait.filter(|w| *w > self.policy.max_retry_after) {
                        return Err(HistoryError::WaitTooLong {
                            path: path.to_string(),
                            status,
                            wait,
                            max: self.policy.max_retry_after,
                        });
                    }
                    (wait, status_error(path, &o))
                }
                Ok(o) => return Err(status_error(path, &o)),
                Err(e) if e.is_retryable() => (None, fetch_error(e)),
                Err(e) => return Err(fetch_error(e)),
            };
            if attempt >= self.policy.backoff.max_retries {
                return Err(last);
            }
            let delay = self
                .policy
                .backoff
                .delay_after(attempt, retry_after, &mut rand::rng());
            tracing::debug!(path, attempt = attempt + 1, ?delay, error = %last, "retrying a history request");
            metrics::counter!("marketd_connector_retries_total").increment(1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// 429 (rate limited), 418 (IP banned for `Retry-After`) and 5xx.
fn retryable(status: u16) -> bool {
    matches!(status, 418 | 429 | 500..=599)
}

fn retry_after(o: &FetchOutcome) -> Option<Duration> {
    o.headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// The answer's status with the start of its body (Binance's
/// `{"code":-1121,"msg":"Invalid symbol."}`).
fn status_error(path: &str, o: &FetchOutcome) -> HistoryError {
    let text = String::from_utf8_lossy(&o.body);
    let body: String = text.chars().take(200).collect();
    HistoryError::Status {
        path: path.to_string(),
        status: o.status.as_u16(),
        body,
    }
}

/// Path and query (no scheme or host) for errors and logs.
fn display_path(url: &reqwest::Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

#[cfg(test)]
mod tests;
