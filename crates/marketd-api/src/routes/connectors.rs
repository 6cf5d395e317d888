//! Connectors over HTTP: `/api/v1/connectors` and its sub-resources,
//! adapters over the connector service (which checks a definition, seals
//! its secrets, stores it and announces changes to the worker that runs it).
//! Secrets never come back: they read as `***`.

use super::views::counted;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_engine::services::connectors::Preview;
use marketd_model::time::to_rfc3339;
use marketd_model::{Connector, ConnectorRecord, ConnectorStatus, Desired};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A connector as the API shows it: its definition (secrets as `***`)
/// with its id, desired state and times beside it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    pub id: Uuid,
    /// `running` after start, `stopped` after create or stop.
    pub desired: Desired,
    pub created_at: String,
    pub updated_at: String,
    /// The definition: `name`, `kind` and the kind's fields, as given.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

impl From<Connector> for ConnectorView {
    fn from(c: Connector) -> Self {
        ConnectorView {
            id: c.id,
            desired: c.desired,
            created_at: to_rfc3339(c.created_at),
            updated_at: to_rfc3339(c.updated_at),
            definition: c.spec,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    pub count: usize,
    pub connectors: Vec<ConnectorView>,
}

/// A connector definition. `kind` `websocket`: `venue` (`binance`,
/// `binance_futures`, `okx`, `finnhub`), optional `url` and `rest_url`
/// (replacing the venue's), `symbols`, `channels` (`trades`, `agg_trades`,
/// `quotes`), `idle_timeout_ms`, `archive` (`{"retention_hours": N}`: keep
/// the raw frames). `kind` `rest`: `url`, `method`, `headers`, `query`, `body`,
/// `polling_interval_ms` (100 to 60000), `auth`, `mapping`. See
/// docs/connectors.md.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"name": "binance-btc", "kind": "websocket", "venue": "binance",
    "url": "wss://stream.binance.com:9443", "symbols": ["BTC-USDT"], "channels": ["trades"]}))]
pub struct ConnectorDefinition(pub serde_json::Value);

/// A `rest` connector definition, the only kind a preview takes (see
/// [`ConnectorDefinition`]).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"name": "prices", "kind": "rest", "url": "https://api.example.com/v1/trades",
    "polling_interval_ms": 1000, "mapping": {"records": "$.data[*]", "symbol": "$.s", "price": "$.p"}}))]
pub struct RestConnectorDefinition(pub serde_json::Value);

/// Creates a connector (stopped; start it with `POST /connectors/{id}/start`).
#[utoipa::path(post, path = "/api/v1/connectors", tag = "connectors", request_body = ConnectorDefinition,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = ConnectorView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Invalid definition (the detail names the field)", body = ErrorBody),
        (status = 503, description = "Secrets cannot be stored: no encryption key", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(def): ApiJson<serde_json::Value>,
) -> ApiResult<(StatusCode, Json<ConnectorView>)> {
    let c = state.services.connectors.create(def).await?;
    Ok((StatusCode::CREATED, Json(c.into())))
}

/// Every connector, oldest first.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", responses((status = 200, body = ConnectorList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ConnectorList>> {
    let (count, connectors) = counted(state.services.connectors.list().await?);
    Ok(Json(ConnectorList { count, connectors }))
}

/// One connector.
#[utoipa::path(get, path = "/api/v1/connectors/{id}", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    responses((status = 200, body = ConnectorView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ConnectorView>> {
    Ok(Json(state.services.connectors.get(id).await?.into()))
}

/// Replaces a connector's definition (`***` keeps a stored secret); a
/// running connector restarts with it.
#[utoipa::path(put, path = "/api/v1/connectors/{id}", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    request_body = ConnectorDefinition, security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = ConnectorView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(def): ApiJson<serde_json::Value>,
) -> ApiResult<Json<ConnectorView>> {
    Ok(Json(
        state.services.connectors.update(id, def).await?.into(),
    ))
}

/// Stops and deletes a connector with its status, data and secrets.
#[utoipa::path(delete, path = "/api/v1/connectors/{id}", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.services.connectors.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts collecting (on the worker that owns the connector).
#[utoipa::path(post, path = "/api/v1/connectors/{id}/start", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = ConnectorView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn start(state: State<AppState>, id: ApiPath<Uuid>) -> ApiResult<Json<ConnectorView>> {
    set_desired(state, id, Desired::Running).await
}

/// Stops collecting.
#[utoipa::path(post, path = "/api/v1/connectors/{id}/stop", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = ConnectorView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stop(state: State<AppState>, id: ApiPath<Uuid>) -> ApiResult<Json<ConnectorView>> {
    set_desired(state, id, Desired::Stopped).await
}

async fn set_desired(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    desired: Desired,
) -> ApiResult<Json<ConnectorView>> {
    let c = state.services.connectors.set_desired(id, desired).await?;
    Ok(Json(c.into()))
}

/// A connector's status: `state` (`connecting`, `running`, `reconnecting`,
/// `cooling_down`, `stopped`, `failed`), counters and the last message time.
#[utoipa::path(get, path = "/api/v1/connectors/{id}/status", tag = "connectors", params(("id" = Uuid, Path, description = "Connector id")),
    responses((status = 200, body = ConnectorStatus), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ConnectorStatus>> {
    Ok(Json(state.services.connectors.status(id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataParams {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size (default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataPage {
    pub count: usize,
    /// Oldest first: each response or frame with what was made of it.
    pub records: Vec<ConnectorRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// What a connector collected, cursor-paginated: the processed records
/// with the raw response or frame each came from.
#[utoipa::path(get, path = "/api/v1/connectors/{id}/data", tag = "connectors",
    params(("id" = Uuid, Path, description = "Connector id"), DataParams),
    responses((status = 200, body = DataPage), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn data(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(p): ApiQuery<DataParams>,
) -> ApiResult<Json<DataPage>> {
    let page = state
        .services
        .connectors
        .records(id, p.cursor.as_deref(), p.limit)
        .await?;
    Ok(Json(DataPage {
        count: page.records.len(),
        records: page.records,
        next_cursor: page.next_cursor,
    }))
}

/// One record a preview mapped.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewTickView {
    /// Position among the records `mapping.records` selected.
    pub index: usize,
    #[schema(value_type = String)]
    pub symbol: marketd_model::Symbol,
    #[serde(with = "marketd_model::decimal_number")]
    #[schema(value_type = f64)]
    pub price: marketd_model::Decimal,
    #[serde(with = "marketd_model::decimal_number")]
    #[schema(value_type = f64)]
    pub size: marketd_model::Decimal,
    /// Event time, ns since the epoch, UTC.
    pub ts_event: i64,
    /// `buy` or `sell` when the mapping has `side`.
    #[schema(value_type = Option<String>)]
    pub side: Option<marketd_sources::connectors::Side>,
    pub trade_id: Option<String>,
}

/// One record a preview could not map.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewErrorView {
    pub index: usize,
    /// The mapping field that failed (`price`, `ts`, ...).
    pub field: String,
    pub message: String,
}

/// What one fetch of a REST connector returned and what its mapping made
/// of it. Nothing of it is stored or published.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    /// The upstream's HTTP status.
    pub status: u16,
    /// The answer as text (secrets of the definition masked), cut to 64 KiB.
    pub body: String,
    /// The answer's full length, bytes.
    pub body_bytes: usize,
    /// Whether `body` was cut.
    pub truncated: bool,
    /// Why the mapping was not applied (a non-2xx answer, not JSON).
    pub body_error: Option<String>,
    /// Records `mapping.records` selected.
    pub records: usize,
    /// Records that mapped.
    pub mapped: usize,
    /// Records that did not.
    pub rejected: usize,
    /// The mapped records (at most 1000).
    pub ticks: Vec<PreviewTickView>,
    /// The records that did not map (at most 1000).
    pub errors: Vec<PreviewErrorView>,
}

impl From<Preview> for PreviewView {
    fn from(p: Preview) -> Self {
        PreviewView {
            status: p.status,
            body: p.body,
            body_bytes: p.body_bytes,
            truncated: p.truncated,
            body_error: p.body_error,
            records: p.records,
            mapped: p.mapped,
            rejected: p.rejected,
            ticks: p
                .ticks
                .into_iter()
                .map(|t| PreviewTickView {
                    index: t.index,
                    symbol: t.symbol,
                    price: t.price,
                    size: t.size,
                    ts_event: t.ts_event,
                    side: t.side,
                    trade_id: t.trade_id,
                })
                .collect(),
            errors: p
                .errors
                .into_iter()
                .map(|e| PreviewErrorView {
                    index: e.index,
                    field: e.field.to_string(),
                    message: e.message,
                })
                .collect(),
        }
    }
}

/// Fetches once from a REST connector's upstream and shows what its
/// mapping extracts: the status, the answer (cut to 64 KiB), the ticks and
/// the records that did not map. The body is a definition as for `POST
/// /api/v1/connectors`, checked the same way. Nothing is stored or
/// published; secrets never come back. REST only: a websocket definition
/// is a 422.
#[utoipa::path(post, path = "/api/v1/connectors/test", tag = "connectors", request_body = RestConnectorDefinition,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The upstream answered (any status)", body = PreviewView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 422, description = "Invalid definition, or a websocket connector", body = ErrorBody),
        (status = 502, description = "The upstream could not be reached", body = ErrorBody),
    ))]
pub async fn test(
    State(state): State<AppState>,
    ApiJson(def): ApiJson<serde_json::Value>,
) -> ApiResult<Json<PreviewView>> {
    Ok(Json(state.services.connectors.preview(def).await?.into()))
}
