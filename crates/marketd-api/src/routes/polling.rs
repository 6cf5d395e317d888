//! Polling jobs: created by `POST /prices/poll`, stored, announced on the
//! `polling-jobs` topic and run by the polling scheduler.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_bus::Bus;
use marketd_model::time::{now_ns, to_rfc3339};
use marketd_model::{Event, JobStatus, PollingJob, PollingJobCommand, Symbol};
use marketd_store::prelude::*;
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
    let limits = &state.cfg.polling;
    if req.symbols.is_empty() {
        return Err(ApiError::validation("symbols must not be empty"));
    }
    if req.symbols.len() > limits.max_symbols {
        return Err(ApiError::validation(format!(
            "at most {} symbols per request, got {}",
            limits.max_symbols,
            req.symbols.len()
        )));
    }
    let mut symbols: Vec<Symbol> = Vec::with_capacity(req.symbols.len());
    let mut invalid = Vec::new();
    for s in &req.symbols {
        match Symbol::parse(s) {
            Ok(sym) if !symbols.contains(&sym) => symbols.push(sym),
            Ok(_) => {}
            Err(_) => invalid.push(s.chars().take(40).collect::<String>()),
        }
    }
    if !invalid.is_empty() {
        return Err(ApiError::validation(format!(
            "invalid symbols: {invalid:?}"
        )));
    }
    if !req.interval.is_finite()
        || req.interval * 1000.0 < limits.min_interval_ms as f64
        || req.interval * 1000.0 > limits.max_interval_ms as f64
    {
        return Err(ApiError::validation(format!(
            "interval must be between {} and {} seconds",
            limits.min_interval_ms as f64 / 1000.0,
            limits.max_interval_ms as f64 / 1000.0
        )));
    }
    let provider = req
        .provider
        .unwrap_or_else(|| state.engine.prices.default_provider().to_string());
    if state.engine.backends.providers.get(&provider).is_none() {
        return Err(ApiError::validation(format!(
            "unknown provider {provider:?}; available: {}",
            state.engine.backends.providers.names().join(", ")
        )));
    }
    let interval_ms = (req.interval * 1000.0).round() as u64;
    let now = now_ns();
    let mut jobs = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        let job = PollingJob {
            id: Uuid::now_v7(),
            symbol,
            provider: provider.clone(),
            interval_ms,
            status: JobStatus::Active,
            created_at: now,
            run_count: 0,
            error_count: 0,
            last_run_at: None,
            last_error: None,
        };
        state.engine.backends.store.upsert_polling_job(&job).await?;
        state
            .engine
            .backends
            .bus
            .publish(Event::PollingJob(PollingJobCommand::Upsert { job: job.clone() }))
            .await
            .map_err(|e| ApiError { internal: Some(e.to_string()), ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "the job was stored but could not be scheduled now; it starts on the next restart") })?;
        jobs.push(JobView::from(job));
    }
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
    let jobs: Vec<JobView> = state
        .engine
        .backends
        .store
        .polling_jobs(false)
        .await?
        .into_iter()
        .map(JobView::from)
        .collect();
    Ok(Json(JobList {
        count: jobs.len(),
        jobs,
    }))
}

/// One polling job with its run statistics.
#[utoipa::path(get, path = "/api/v1/polling-jobs/{id}", tag = "polling", params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<JobView>> {
    match state.engine.backends.store.polling_job(id).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(ApiError::not_found(
            "JOB_NOT_FOUND",
            format!("polling job {id} not found"),
        )),
    }
}

/// Stops and deletes a polling job.
#[utoipa::path(delete, path = "/api/v1/polling-jobs/{id}", tag = "polling", params(("id" = Uuid, Path, description = "Job id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    if !state.engine.backends.store.delete_polling_job(id).await? {
        return Err(ApiError::not_found(
            "JOB_NOT_FOUND",
            format!("polling job {id} not found"),
        ));
    }
    if let Err(e) = state
        .engine
        .backends
        .bus
        .publish(Event::PollingJob(PollingJobCommand::Delete { id }))
        .await
    {
        tracing::warn!(job = %id, error = %e, "job deleted in the store but the stop command was not published");
    }
    Ok(StatusCode::NO_CONTENT)
}
