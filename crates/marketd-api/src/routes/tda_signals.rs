//! Streaming TDA signal routes: one basket's windows, and the configured
//! baskets with their newest window; adapters over the `tda_signals` service.

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::ApiQuery;
use axum::Json;
use axum::extract::State;
use marketd_engine::services::tda_signals::SignalsRequest;
use marketd_engine::tda_stream::BasketConfig;
use marketd_model::{Interval, Symbol, TdaSignal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignalsParams {
    /// A configured basket (`[[tda.stream.baskets]]`).
    pub basket: Option<String>,
    /// Windows ending at or after this time (RFC 3339 or epoch number).
    pub from: Option<String>,
    /// Windows ending before this time.
    pub to: Option<String>,
    /// Most windows returned (default 500); without `from`, the newest.
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignalsResponse {
    pub basket: String,
    pub interval: Interval,
    pub count: usize,
    /// Ascending by `window_end`.
    pub signals: Vec<TdaSignal>,
}

/// One basket's topological signal, one entry per window (docs/tda.md).
#[utoipa::path(get, path = "/api/v1/tda/signals", tag = "tda", params(SignalsParams),
    responses(
        (status = 200, body = SignalsResponse),
        (status = 404, description = "The basket is not configured", body = ErrorBody),
        (status = 422, description = "Missing basket, bad time or limit", body = ErrorBody),
    ))]
pub async fn signals(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<SignalsParams>,
) -> ApiResult<Json<SignalsResponse>> {
    let (basket, signals) = state
        .services
        .tda_signals
        .signals(SignalsRequest {
            basket: p.basket,
            from: p.from,
            to: p.to,
            limit: p.limit,
        })
        .await?;
    Ok(Json(SignalsResponse {
        basket: basket.name,
        interval: basket.interval,
        count: signals.len(),
        signals,
    }))
}

/// A configured basket as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BasketView {
    pub name: String,
    pub symbols: Vec<Symbol>,
    pub interval: Interval,
    /// Bars per window and between windows.
    pub window: usize,
    pub step: usize,
    /// Points per window's cloud and their dimension.
    pub points: usize,
    pub dimension: usize,
    /// `(dimension, delay)` of a delay embedding, when the basket uses one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<[usize; 2]>,
    pub threshold: f64,
    pub hysteresis: f64,
    pub cooldown: u32,
    pub min_history: usize,
    /// The newest stored window, if any.
    pub last_signal: Option<TdaSignal>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BasketsResponse {
    pub baskets: Vec<BasketView>,
}

fn view(b: BasketConfig, last_signal: Option<TdaSignal>) -> BasketView {
    BasketView {
        points: b.points(),
        dimension: b.dimension(),
        embedding: b.embedding.map(|e| [e.dimension, e.delay]),
        name: b.name,
        symbols: b.symbols,
        interval: b.interval,
        window: b.window,
        step: b.step,
        threshold: b.threshold,
        hysteresis: b.hysteresis,
        cooldown: b.cooldown,
        min_history: b.min_history,
        last_signal,
    }
}

/// The configured streaming baskets with their newest signal.
#[utoipa::path(get, path = "/api/v1/tda/baskets", tag = "tda",
    responses((status = 200, body = BasketsResponse)))]
pub async fn baskets(State(state): State<AppState>) -> ApiResult<Json<BasketsResponse>> {
    let baskets = state.services.tda_signals.baskets_with_last().await?;
    Ok(Json(BasketsResponse {
        baskets: baskets.into_iter().map(|(b, s)| view(b, s)).collect(),
    }))
}
