//! Market data routes: latest price, tick history, bars, moving averages;
//! adapters over the `prices` and `series` services.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::middleware::RequestId;
use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use marketd_engine::services::prices::{LatestPrice, PriceSource};
use marketd_engine::services::series::{MaRequest, SeriesFilter};
use marketd_model::time::to_rfc3339;
use marketd_model::{
    Bar, Decimal, Interval, MaKind, Symbol, Tick, decimal_number, option_decimal_number,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use utoipa::{IntoParams, ToSchema};

/// The filters the series routes share, taken from any of their query
/// structs (each keeps its own fields so the OpenAPI document lists them).
macro_rules! series_filter {
    ($p:ident) => {
        SeriesFilter {
            symbol: $p.symbol,
            source: $p.source,
            from: $p.from,
            to: $p.to,
            limit: $p.limit,
        }
    };
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatestParams {
    /// Canonical symbol, e.g. `AAPL` or `BTC-USDT`.
    pub symbol: String,
    /// Provider to ask on a cache miss (default: the configured default provider).
    pub provider: Option<String>,
}

/// The latest price and where it came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestPriceResponse {
    pub symbol: Symbol,
    pub provider: String,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub price: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub size: Decimal,
    #[serde(
        with = "option_decimal_number",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>)]
    pub bid: Option<Decimal>,
    #[serde(
        with = "option_decimal_number",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>)]
    pub ask: Option<Decimal>,
    /// Event time of the price, nanoseconds since the epoch.
    pub ts_event: i64,
    /// Event time, RFC 3339.
    pub timestamp: String,
    /// `cache`, `provider` or `store`.
    pub source: String,
    /// Age of the price (now minus event time), milliseconds.
    pub age_ms: i64,
    /// True when the provider failed and the last stored tick is served.
    pub stale: bool,
}

/// Latest price: cache, then provider, then the last stored tick.
#[utoipa::path(get, path = "/api/v1/prices/latest", tag = "prices", params(LatestParams),
    responses(
        (status = 200, description = "Latest price", body = LatestPriceResponse),
        (status = 404, description = "Unknown symbol at the provider", body = ErrorBody),
        (status = 422, description = "Invalid symbol or unknown provider", body = ErrorBody),
        (status = 502, description = "Provider failed and no stored price exists", body = ErrorBody),
    ))]
pub async fn latest(
    State(state): State<AppState>,
    Extension(rid): Extension<RequestId>,
    ApiQuery(p): ApiQuery<LatestParams>,
) -> ApiResult<Response> {
    let symbol = Symbol::parse(&p.symbol)?;
    let got = state
        .services
        .prices
        .latest(&symbol, p.provider.as_deref(), Some(&rid.0))
        .await?;
    let rendered = Rendered::of(&got);
    Ok(rendered.response(got.age_ms))
}

/// The body of a latest price but its `age_ms`, which depends on now:
/// rendered once per tick (and provider, source, staleness) and reused
/// while the cached value is unchanged, with `age_ms` written in per
/// request. The body is the one `Json<LatestPriceResponse>` gives.
#[derive(Debug)]
struct Rendered {
    tick: Tick,
    provider: String,
    source: PriceSource,
    stale: bool,
    /// Up to and including `"age_ms":`.
    head: Bytes,
    /// From the `,` after `age_ms` to the end.
    tail: Bytes,
}

/// Rendered bodies by provider and symbol; a few thousand symbols at most
/// are served in practice, and past [`MAX_RENDERED`] the map starts over.
type RenderedMap = HashMap<Box<str>, HashMap<Box<str>, Arc<Rendered>>>;
const MAX_RENDERED: usize = 10_000;

impl Rendered {
    /// The rendered body of `got`, from the map when it holds this very
    /// value, else rendered now and kept.
    fn of(got: &LatestPrice) -> Arc<Rendered> {
        static MAP: OnceLock<RwLock<(RenderedMap, usize)>> = OnceLock::new();
        let map = MAP.get_or_init(Default::default);
        let found = map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .get(got.provider.as_str())
            .and_then(|m| m.get(got.tick.symbol.as_str()))
            .filter(|r| r.shows(got))
            .cloned();
        if let Some(r) = found {
            return r;
        }
        let r = Arc::new(Rendered::render(got));
        let mut w = map.write().unwrap_or_else(|e| e.into_inner());
        if w.1 >= MAX_RENDERED {
            *w = Default::default();
        }
        let (by_provider, len) = &mut *w;
        let by_symbol = by_provider.entry(got.provider.as_str().into()).or_default();
        if by_symbol
            .insert(got.tick.symbol.as_str().into(), r.clone())
            .is_none()
        {
            *len += 1;
        }
        r
    }

    /// Whether this body is the one of `got` (all but its age).
    fn shows(&self, got: &LatestPrice) -> bool {
        self.tick == got.tick
            && self.provider == got.provider
            && self.source == got.source
            && self.stale == got.stale
    }

    fn render(got: &LatestPrice) -> Rendered {
        let t = &got.tick;
        let body = LatestPriceResponse {
            symbol: t.symbol.clone(),
            provider: got.provider.clone(),
            price: t.price,
            size: t.size,
            bid: t.bid,
            ask: t.ask,
            ts_event: t.ts_event,
            timestamp: to_rfc3339(t.ts_event),
            source: got.source.as_str().to_string(),
            age_ms: 0,
            stale: got.stale,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        // Quotes inside JSON strings are escaped, so this sequence is the
        // `age_ms` member and nothing else; `stale` follows it (field order).
        const AGE: &[u8] = b",\"age_ms\":0,";
        let at = json
            .windows(AGE.len())
            .rposition(|w| w == AGE)
            .unwrap_or(json.len());
        let split = (at + AGE.len() - 2).min(json.len());
        let json = Bytes::from(json);
        Rendered {
            tick: got.tick.clone(),
            provider: got.provider.clone(),
            source: got.source,
            stale: got.stale,
            head: json.slice(..split),
            tail: json.slice((split + 1).min(json.len())..),
        }
    }

    /// The response for a price `age_ms` old.
    fn response(&self, age_ms: i64) -> Response {
        use std::io::Write;
        let mut body = Vec::with_capacity(self.head.len() + 20 + self.tail.len());
        body.extend_from_slice(&self.head);
        let _ = write!(body, "{age_ms}");
        body.extend_from_slice(&self.tail);
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    pub symbol: String,
    /// Only ticks of this source (provider or venue).
    pub source: Option<String>,
    /// Inclusive start: RFC 3339 or epoch seconds/ms/ns.
    pub from: Option<String>,
    /// Exclusive end: RFC 3339 or epoch seconds/ms/ns.
    pub to: Option<String>,
    /// Page size (default 1000, at most 10000).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryResponse {
    pub symbol: Symbol,
    pub count: usize,
    /// Ticks in event-time order.
    pub ticks: Vec<Tick>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Stored ticks of a symbol in event-time order, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/prices/history", tag = "prices", params(HistoryParams),
    responses((status = 200, body = HistoryResponse), (status = 422, body = ErrorBody)))]
pub async fn history(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<HistoryParams>,
) -> ApiResult<Json<HistoryResponse>> {
    let filter = series_filter!(p);
    let (symbol, page) = state.services.series.history(filter, p.cursor).await?;
    Ok(Json(HistoryResponse {
        symbol,
        count: page.ticks.len(),
        ticks: page.ticks,
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BarsParams {
    pub symbol: String,
    /// `1s`, `1m`, `5m`, `1h` or `1d` (default `1m`).
    pub interval: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Most bars returned (default 500, at most 10000); without `from`, the newest.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BarsResponse {
    pub symbol: Symbol,
    pub interval: Interval,
    pub count: usize,
    pub bars: Vec<Bar>,
}

/// OHLCV bars on UTC bucket boundaries.
#[utoipa::path(get, path = "/api/v1/bars", tag = "prices", params(BarsParams),
    responses((status = 200, body = BarsResponse), (status = 422, body = ErrorBody)))]
pub async fn bars(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<BarsParams>,
) -> ApiResult<Json<BarsResponse>> {
    let filter = series_filter!(p);
    let (symbol, interval, bars) = state
        .services
        .series
        .bars(filter, p.interval.as_deref())
        .await?;
    Ok(Json(BarsResponse {
        symbol,
        interval,
        count: bars.len(),
        bars,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MaParams {
    pub symbol: String,
    /// Window in bars (one of the configured windows; default 20).
    pub window: Option<u32>,
    /// `sma` or `ema` (default `sma`).
    pub kind: Option<String>,
    /// Interval of the bars averaged (default `1s`).
    pub interval: Option<String>,
    pub source: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaPoint {
    /// Start of the bar whose close completed the window (ns).
    pub ts: i64,
    pub timestamp: String,
    pub value: f64,
    pub source: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MaResponse {
    pub symbol: Symbol,
    pub kind: MaKind,
    pub window: u32,
    pub interval: Interval,
    pub count: usize,
    pub values: Vec<MaPoint>,
}

/// Simple or exponential moving average of bar closes.
#[utoipa::path(get, path = "/api/v1/indicators/moving-average", tag = "prices", params(MaParams),
    responses((status = 200, body = MaResponse), (status = 422, body = ErrorBody)))]
pub async fn moving_average(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<MaParams>,
) -> ApiResult<Json<MaResponse>> {
    let ma = state
        .services
        .series
        .moving_average(MaRequest {
            filter: series_filter!(p),
            window: p.window,
            kind: p.kind,
            interval: p.interval,
        })
        .await?;
    let values: Vec<MaPoint> = ma
        .values
        .into_iter()
        .map(|i| MaPoint {
            ts: i.ts,
            timestamp: to_rfc3339(i.ts),
            value: i.value,
            source: i.source.to_string(),
        })
        .collect();
    Ok(Json(MaResponse {
        symbol: ma.symbol,
        kind: ma.kind,
        window: ma.window,
        interval: ma.interval,
        count: values.len(),
        values,
    }))
}

/// One symbol the platform has, with its current session: the newest bar of
/// the longest interval built (`interval`, a day by default).
#[derive(Debug, Serialize, ToSchema)]
pub struct SymbolSummary {
    pub symbol: Symbol,
    /// The source that updated it last.
    pub source: String,
    /// The last price (the session bar's close).
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub price: Decimal,
    /// The session's open, high, low and volume.
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub open: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub high: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub low: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub volume: Decimal,
    /// `price - open`, exact.
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub change: Decimal,
    /// `change / open` in percent; `null` when the open is zero.
    pub change_pct: Option<f64>,
    /// Trades in the session.
    pub trades: u64,
    /// Start of the session bar (ns).
    pub session_start: i64,
    /// Event time of the last price (ns), RFC 3339, and its age in ms.
    pub ts_event: i64,
    pub timestamp: String,
    pub age_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SymbolsResponse {
    /// The interval of the session bars.
    pub interval: Interval,
    pub count: usize,
    pub symbols: Vec<SymbolSummary>,
}

/// Every symbol the platform has stored prices for, with its last price and
/// its change over the current session (the newest bar of the longest
/// configured interval), sorted by symbol.
#[utoipa::path(get, path = "/api/v1/symbols", tag = "prices",
    responses((status = 200, body = SymbolsResponse)))]
pub async fn symbols(State(state): State<AppState>) -> ApiResult<Json<SymbolsResponse>> {
    let (interval, bars) = state.services.series.symbols().await?;
    let now = marketd_model::time::now_ns();
    let symbols: Vec<SymbolSummary> = bars
        .into_iter()
        .map(|b| {
            let change = b.close - b.open;
            let change_pct = (!b.open.is_zero())
                .then(|| (change / b.open * Decimal::ONE_HUNDRED).try_into().ok())
                .flatten();
            SymbolSummary {
                source: b.source.to_string(),
                price: b.close,
                open: b.open,
                high: b.high,
                low: b.low,
                volume: b.volume,
                change,
                change_pct,
                trades: b.trades,
                session_start: b.start,
                ts_event: b.last_ts,
                timestamp: to_rfc3339(b.last_ts),
                age_ms: (now - b.last_ts).max(0) / 1_000_000,
                symbol: b.symbol,
            }
        })
        .collect();
    Ok(Json(SymbolsResponse {
        interval,
        count: symbols.len(),
        symbols,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::TickKind;

    fn latest(stale: bool, bid: Option<Decimal>) -> LatestPrice {
        let symbol = Symbol::parse("AAPL").unwrap();
        let mut tick = Tick::new(
            symbol,
            "sim",
            TickKind::Last,
            "190.25".parse().unwrap(),
            Decimal::from(41),
            1_796_203_586_179_801_215,
            1_796_203_586_179_801_215,
        );
        tick.bid = bid;
        LatestPrice {
            tick,
            source: PriceSource::Cache,
            age_ms: 0,
            stale,
            provider: "simulated".into(),
        }
    }

    async fn body(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The reused body is the one `Json<LatestPriceResponse>` renders, with
    /// each request's age.
    #[tokio::test]
    async fn rendered_once_answers_with_each_age() {
        for (stale, bid) in [(false, None), (true, Some("190.2".parse().unwrap()))] {
            let mut got = latest(stale, bid);
            let rendered = Rendered::of(&got);
            for age_ms in [0, 7, 123_456_789, -3] {
                got.age_ms = age_ms;
                let t = got.tick.clone();
                let want = serde_json::to_value(LatestPriceResponse {
                    symbol: t.symbol,
                    provider: got.provider.clone(),
                    price: t.price,
                    size: t.size,
                    bid: t.bid,
                    ask: t.ask,
                    ts_event: t.ts_event,
                    timestamp: to_rfc3339(t.ts_event),
                    source: "cache".into(),
                    age_ms,
                    stale,
                })
                .unwrap();
                let res = rendered.response(age_ms);
                assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
                assert_eq!(body(res).await, want);
            }
            assert!(Arc::ptr_eq(&rendered, &Rendered::of(&got)), "reused");
        }
    }

    /// A new tick (or another source) is rendered again, never served from
    /// the previous body.
    #[tokio::test]
    async fn a_changed_value_is_rendered_again() {
        let mut got = latest(false, None);
        got.provider = "other-provider".into();
        let first = Rendered::of(&got);
        got.tick.price = "191".parse().unwrap();
        let second = Rendered::of(&got);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(
            body(second.response(1)).await["price"],
            serde_json::json!(191)
        );
        got.source = PriceSource::Provider;
        assert_eq!(
            body(Rendered::of(&got).response(1)).await["source"],
            "provider"
        );
    }
}
