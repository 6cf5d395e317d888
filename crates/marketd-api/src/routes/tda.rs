//! Persistent homology over HTTP: the synchronous `/tda/*` computations,
//! `/jobs` and `/uploads`, adapters over the TDA service (docs/tda.md).
//! Jobs are answered as they travel on the `jobs` topic and the realtime
//! `jobs` channel (times in ns since the epoch).

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::TryStreamExt;
use marketd_engine::services::tda::SyncAnswer;
use marketd_model::{TdaJob, TdaJobStatus, Upload, UploadFormat};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A Vietoris–Rips request: exactly one of `points` (rows of coordinates),
/// `distance_matrix` (full square) or `upload_id`; `max_dim` (1),
/// `threshold` (none: the enclosing radius), `modulus` (2, prime);
/// optionally `summaries` (`landscape`, `silhouette`, `betti-curve`,
/// `persistence-image`, `entropy`, `amplitude`) with their parameters
/// (`landscape: {"layers": K, "samples": N}`, ...). See docs/tda.md.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"points": [[0, 0], [1, 0], [1, 1], [0, 1]], "max_dim": 1,
    "summaries": ["landscape"], "landscape": {"layers": 2, "samples": 50}}))]
pub struct VietorisRipsRequest(pub serde_json::Value);

/// Diagrams per dimension (`{"0": [[birth, death_or_null], ...]}`), the
/// summaries asked for, `duration_ms` and `cached`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(value_type = Object, example = json!({"diagrams": {"0": [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, null]],
    "1": [[1.0, 1.4142135]]}, "points": 4, "max_dim": 1, "duration_ms": 0.05, "cached": false}))]
pub struct VietorisRipsAnswer(pub serde_json::Value);

/// A summaries request (`{"diagrams": {...}, "summaries": [...], ...}`).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"diagrams": {"1": [[0.5, 2.0], [1.0, 1.5]]}, "summaries": ["entropy"]}))]
pub struct SummariesRequest(pub serde_json::Value);

/// A distance request (`{"a": [[b, d], ...], "b": [...], "metric":
/// "bottleneck"|"wasserstein", "p": 2}`).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"a": [[0.0, 1.0], [0.5, null]], "b": [[0.0, 2.0]], "metric": "wasserstein", "p": 2}))]
pub struct DistanceRequest(pub serde_json::Value);

/// A job: its kind (`vietoris-rips`, `summaries`, `distance`) and the
/// kind's request fields, inline or with `upload_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(value_type = Object, example = json!({"kind": "vietoris-rips", "upload_id": "0190a1b2-0000-7000-8000-000000000000", "max_dim": 1}))]
pub struct JobRequest(pub serde_json::Value);

/// Whether the caller asked `Prefer: respond-async`.
fn prefers_async(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
}

/// 202 with `Location` of the job and the job.
fn accepted(job: &TdaJob, replayed: bool) -> Response {
    let mut r = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// Computes Vietoris–Rips persistent homology now; a problem bigger than
/// `tda.sync_max_simplices`, or a request with `Prefer: respond-async`, is
/// answered 202 with `Location` of a job instead. Answers of the same input
/// and parameters come from a cache (`"cached": true`).
#[utoipa::path(post, path = "/api/v1/tda/vietoris-rips", tag = "tda", request_body = VietorisRipsRequest,
    security((), ("api_key" = []), ("bearer" = [])),
    params(("Prefer" = Option<String>, Header, description = "`respond-async`: submit a job")),
    responses(
        (status = 200, description = "Diagrams (and summaries)", body = VietorisRipsAnswer),
        (status = 202, description = "Submitted as a job (see Location)", body = TdaJob),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "Over a limit (points, coordinates, body)", body = ErrorBody),
        (status = 422, description = "Invalid request (the detail names the field)", body = ErrorBody),
    ))]
pub async fn vietoris_rips(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    match state
        .services
        .tda
        .vietoris_rips(body, prefers_async(&headers))
        .await?
    {
        SyncAnswer::Computed(v) => Ok(Json(v).into_response()),
        SyncAnswer::Queued(job) => Ok(accepted(&job, false)),
    }
}

/// Summaries of given persistence diagrams (landscapes, silhouettes, Betti
/// curves, persistence images, entropy, amplitudes).
#[utoipa::path(post, path = "/api/v1/tda/summaries", tag = "tda", request_body = SummariesRequest,
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The summaries, per dimension", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Invalid request", body = ErrorBody),
    ))]
pub async fn summaries(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        state.services.tda.compute_now(body, "summaries").await?,
    ))
}

/// Bottleneck or p-Wasserstein distance between two diagrams.
#[utoipa::path(post, path = "/api/v1/tda/distance", tag = "tda", request_body = DistanceRequest,
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "`{\"distance\", \"metric\", \"p\"}`", body = Object),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Invalid request", body = ErrorBody),
    ))]
pub async fn distance(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        state.services.tda.compute_now(body, "distance").await?,
    ))
}

/// Longest `Idempotency-Key`, in bytes.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What an `Idempotency-Key` header may be as sent: 1 to 255 visible ASCII
/// characters (tabs and spaces inside), with any spaces and tabs around
/// them, which HTTP drops.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[\\t ]*[!-~](?:[\\t -~]{0,253}[!-~])?[\\t ]*$";

/// Submits a job. With an `Idempotency-Key` header, a retried submit of the
/// same body answers the same job; another body under that key is 409.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "tda", request_body = JobRequest,
    security(("api_key" = []), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retried submits return the same job")),
    responses(
        (status = 202, description = "Queued (see Location)", body = TdaJob),
        (status = 400, description = "Malformed JSON or idempotency key", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 409, description = "Idempotency key used for another request", body = ErrorBody),
        (status = 413, description = "Over a limit", body = ErrorBody),
        (status = 422, description = "Invalid request (the detail names the field)", body = ErrorBody),
    ))]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
                .ok_or_else(|| {
                    ApiError::bad_request("Idempotency-Key: 1 to 255 visible ASCII characters")
                })?;
            Some(k.to_string())
        }
    };
    let (job, new) = state.services.tda.submit(body, key.as_deref()).await?;
    Ok(accepted(&job, !new))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// At most this many, newest first (default 100).
    pub limit: Option<u32>,
}

/// (`TdaJobList` in the document: `JobList` is the polling jobs' list.)
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TdaJobList)]
pub struct JobList {
    pub count: usize,
    pub jobs: Vec<TdaJob>,
}

/// Jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "tda", params(JobListQuery),
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = JobList),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Unknown status or bad limit", body = ErrorBody),
    ))]
pub async fn list_jobs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> ApiResult<Json<JobList>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(TdaJobStatus::parse(s).ok_or_else(|| {
            ApiError::validation(format!(
                "status: one of queued, running, succeeded, failed, canceled (got {s:?})"
            ))
        })?),
    };
    let limit = limit(q.limit, MAX_PAGE)?;
    let jobs = state.services.tda.jobs(status, limit).await?;
    Ok(Json(JobList {
        count: jobs.len(),
        jobs,
    }))
}

/// Most jobs or uploads one list answers.
pub const MAX_PAGE: u32 = 1000;

fn limit(asked: Option<u32>, max: u32) -> ApiResult<u32> {
    match asked {
        None => Ok(100.min(max)),
        Some(n) if n >= 1 && n <= max => Ok(n),
        Some(n) => Err(ApiError::validation(format!("limit: 1 to {max} (got {n})"))),
    }
}

/// A job: status, progress and stage, attempts, times, error.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "tda", params(("id" = Uuid, Path)),
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = TdaJob),
        (status = 422, description = "Not an id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn get_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TdaJob>> {
    Ok(Json(state.services.tda.job(id).await?))
}

/// A finished job's result: 409 while it is not finished (or when it failed
/// or was canceled), 410 once its result expired.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/result", tag = "tda", params(("id" = Uuid, Path)),
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The result (as the synchronous endpoint answers)", body = Object),
        (status = 422, description = "Not an id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "Not finished, failed or canceled", body = ErrorBody),
        (status = 410, description = "The result expired", body = ErrorBody),
    ))]
pub async fn job_result(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(state.services.tda.result(id).await?))
}

/// Cancels a queued or running job (a running one stops within a second;
/// until then it reads `cancel_requested: true`). A finished job is
/// returned unchanged.
#[utoipa::path(delete, path = "/api/v1/jobs/{id}", tag = "tda", params(("id" = Uuid, Path)),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The job after the cancel", body = TdaJob),
        (status = 422, description = "Not an id", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<TdaJob>> {
    Ok(Json(state.services.tda.cancel(id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadQuery {
    /// `point-cloud`, `distance-matrix` (or `distance`), `lower-distance`,
    /// `upper-distance`, `sparse`, `dipha`, `binary`. Required for a raw
    /// body; a multipart upload may give it as a `format` field instead.
    pub format: Option<String>,
    /// A name to keep with the upload (a multipart file's name otherwise).
    pub name: Option<String>,
}

fn format_of(s: &str) -> ApiResult<UploadFormat> {
    UploadFormat::parse(s).ok_or_else(|| {
        ApiError::validation(format!(
            "format: one of point-cloud, distance-matrix, lower-distance, upper-distance, sparse, dipha, binary (got {s:?})"
        ))
    })
}

/// Uploads a point cloud or distance matrix: the raw body with `?format=`,
/// or `multipart/form-data` with a `file` part (and optionally a `format`
/// part). The input is parsed before it is stored: errors name the line and
/// column (or byte offset).
#[utoipa::path(post, path = "/api/v1/uploads", tag = "tda", params(UploadQuery),
    request_body(content = String, description = "The file (text or binary), or multipart/form-data with `file`", content_type = "text/csv"),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Stored", body = Upload),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 413, description = "Over tda.max_upload_bytes or tda.max_points", body = ErrorBody),
        (status = 422, description = "Unknown format, or the input does not parse (line and column named)", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Upload>)> {
    let max = state.services.tda.config().max_upload_bytes;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (bytes, format, name) = if content_type.starts_with("multipart/form-data") {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|e| ApiError::bad_request(format!("multipart: {e}")))?;
        let (bytes, format, file_name) = read_multipart(body, &boundary, max).await?;
        let format = match (q.format.as_deref(), format.as_deref()) {
            (Some(f), _) | (None, Some(f)) => format_of(f)?,
            (None, None) => return Err(ApiError::validation("format: required")),
        };
        (bytes, format, q.name.or(file_name))
    } else {
        let format = format_of(
            q.format
                .as_deref()
                .ok_or_else(|| ApiError::validation("format: required (a query parameter)"))?,
        )?;
        let bytes = axum::body::to_bytes(body, max)
            .await
            .map_err(|_| too_large(max))?;
        (bytes, format, q.name)
    };
    let up = state.services.tda.upload(bytes, format, name).await?;
    Ok((StatusCode::CREATED, Json(up)))
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "PAYLOAD_TOO_LARGE",
        format!("the upload is over tda.max_upload_bytes ({max} bytes)"),
    )
}

/// [`read_multipart`] over a body held in memory: the `file` part, the
/// `format` part and the file name, or the error the upload route answers.
/// Exists for fuzzing (`fuzz/fuzz_targets/uploads.rs`); the route itself
/// reads the request's body stream.
pub async fn read_multipart_bytes(
    body: Bytes,
    boundary: &str,
    max: usize,
) -> ApiResult<(Bytes, Option<String>, Option<String>)> {
    read_multipart(Body::from(body), boundary, max).await
}

/// The `file` part (and an optional `format` part) of a multipart body.
async fn read_multipart(
    body: Body,
    boundary: &str,
    max: usize,
) -> ApiResult<(Bytes, Option<String>, Option<String>)> {
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(max as u64 + 64 * 1024)
            .per_field(max as u64),
    );
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let mut mp = multer::Multipart::with_constraints(stream, boundary, limits);
    let (mut file, mut format, mut name) = (None, None, None);
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(multipart_error(e, max)),
        };
        match field.name() {
            Some("file") => {
                name = field.file_name().map(str::to_string);
                file = Some(field.bytes().await.map_err(|e| multipart_error(e, max))?);
            }
            Some("format") => {
                format = Some(field.text().await.map_err(|e| multipart_error(e, max))?);
            }
            other => {
                return Err(ApiError::validation(format!(
                    "multipart: unexpected part {:?} (expected file and format)",
                    other.unwrap_or("")
                )));
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::validation("multipart: no file part"))?;
    Ok((file, format, name))
}

fn multipart_error(e: multer::Error, max: usize) -> ApiError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(max)
        }
        other => ApiError::bad_request(format!("multipart: {other}")),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UploadListQuery {
    /// At most this many, newest first (default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UploadList {
    pub count: usize,
    pub uploads: Vec<Upload>,
}

/// Uploads, newest first.
#[utoipa::path(get, path = "/api/v1/uploads", tag = "tda", params(UploadListQuery),
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UploadList),
        (status = 401, body = ErrorBody),
        (status = 422, description = "Bad limit", body = ErrorBody),
    ))]
pub async fn list_uploads(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<UploadListQuery>,
) -> ApiResult<Json<UploadList>> {
    let limit = limit(q.limit, MAX_PAGE)?;
    let uploads = state.services.tda.uploads(limit).await?;
    Ok(Json(UploadList {
        count: uploads.len(),
        uploads,
    }))
}

/// An upload's description (format, size, SHA-256, points, dimension).
#[utoipa::path(get, path = "/api/v1/uploads/{id}", tag = "tda", params(("id" = Uuid, Path)),
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Upload),
        (status = 422, description = "Not an id", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
    ))]
pub async fn get_upload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Upload>> {
    Ok(Json(state.services.tda.get_upload(id).await?))
}

/// Deletes an upload (jobs that read it keep their results).
#[utoipa::path(delete, path = "/api/v1/uploads/{id}", tag = "tda", params(("id" = Uuid, Path)),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 422, description = "Not an id", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Role below write", body = ErrorBody),
        (status = 404, description = "No such upload", body = ErrorBody),
    ))]
pub async fn delete_upload(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.services.tda.delete_upload(id).await?;
    Ok(StatusCode::NO_CONTENT)
}
