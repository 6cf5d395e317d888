//! Market data routes: latest price, tick history, bars, moving averages;
//! adapters over the `prices` and `series` services.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use crate::middleware::RequestId;
use axum::Json;
use axum::extract::{Extension, State};
use marketd_engine::services::series::{MaRequest, SeriesFilter};
use marketd_model::time::to_rfc3339;
use marketd_model::{
    Bar, Decimal, Interval, MaKind, Symbol, Tick, decimal_number, option_decimal_number,
};
use serde::{Deserialize, Serialize};
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
) -> ApiResult<Json<LatestPriceResponse>> {
    let symbol = Symbol::parse(&p.symbol)?;
    let got = state
        .services
        .prices
        .latest(&symbol, p.provider.as_deref(), Some(&rid.0))
        .await?;
    let t = got.tick;
    Ok(Json(LatestPriceResponse {
        symbol: t.symbol,
        provider: got.provider,
        price: t.price,
        size: t.size,
        bid: t.bid,
        ask: t.ask,
        ts_event: t.ts_event,
        timestamp: to_rfc3339(t.ts_event),
        source: got.source.as_str().to_string(),
        age_ms: got.age_ms,
        stale: got.stale,
    }))
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
