//! Polling jobs over HTTP: `POST /prices/poll` and `/polling-jobs`,
//! adapters over the polling service (which checks, stores and announces
//! the jobs the polling scheduler runs).

use super::views::counted;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_engine::services::polling::NewPolling;
use marketd_model::time::to_rfc3339;
use marketd_model::{JobStatus, PollingJob, Symbol};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /prices/poll`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PollRequest {
    /// Symbols to poll (1 to 500); one job per distinct symbol.
    pub symbols: Vec<String>,
    /// Seconds between runs (at least 1).
    pub interval: f64,
    /// Provider to poll (default: the configured default provider).
    pub provider: Option<String>,
}

/// A polling job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub symbol: Symbol,
    pub provider: String,
    /// Seconds between runs.
    pub interval: f64,
    pub interval_ms: u64,
    pub status: JobStatus,
    pub created_at: String,
    pub run_count: u64,
    pub error_count: u64,
    pub last_run_at: Option<String>,
    pub last_error: Option<String>,
}

impl From<PollingJob> for JobView {
    fn from(j: PollingJob) -> Self {
        JobView {
            id: j.id,
            symbol: j.symbol,
            provider: j.provider,
            interval: j.interval_ms as f64 / 1000.0,
            interval_ms: j.interval_ms,
            status: j.status,
            created_at: to_rfc3339(j.created_at),
            run_count: j.run_count,
            error_count: j.error_count,
            last_run_at: j.last_run_at.map(to_rfc3339),
            last_error: j.last_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PollAccepted {
    pub status: String,
    pub job_ids: Vec<Uuid>,
    pub jobs: Vec<JobView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub count: usize,
    pub jobs: Vec<JobView>,
}

/// Creates polling jobs (one per symbol).
#[utoipa::path(post, path = "/api/v1/prices/poll", tag = "polling", request_body = PollRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Jobs created", body = PollAccepted),
        (status = 401, description = "No valid key or token", body = ErrorBody),
        (status = 403, description = "Role below write", body = ErrorBody),
        (status = 413, description = "Body over http.max_body_bytes", body = ErrorBody),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "Invalid symbols, interval or provider", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PollRequest>,
) -> ApiResult<(StatusCode, Json<PollAccepted>)> {
    let created = state
        .services
        .polling
        .create(NewPolling {
            symbols: req.symbols,
            interval_s: req.interval,
            provider: req.provider,
        })
        .await?;
    let jobs: Vec<JobView> = created.into_iter().map(JobView::from).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(PollAccepted {
            status: "accepted".into(),
            job_ids: jobs.iter().map(|j| j.id).collect(),
            jobs,
        }),
    ))
}

/// Lists the active polling jobs.
#[utoipa::path(get, path = "/api/v1/polling-jobs", tag = "polling", responses((status = 200, body = JobList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<JobList>> {
    let (count, jobs) = counted(state.services.polling.list().await?);
    Ok(Json(JobList { count, jobs }))
}

/// One polling job with its run statistics.
#[utoipa::path(get, path = "/api/v1/polling-jobs/{id}", tag = "polling", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<JobView>> {
    Ok(Json(state.services.polling.get(id).await?.into()))
}

/// Stops and deletes a polling job.
#[utoipa::path(delete, path = "/api/v1/polling-jobs/{id}", tag = "polling", params(("id" = Uuid, Path, description = "Job id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.services.polling.delete(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
