//! The persistent-homology service: synchronous computations (bounded,
//! cached, off the async runtime), jobs (stored, announced on `jobs`, run
//! by the workers' [`crate::supervisor::tda_jobs`]) and uploads.

use crate::tda::problem::{Input, Problem, hex, request_hash, simplices};
use crate::tda::run::{Control, Job};
use crate::tda::{ProblemError, TdaConfig};
use marketd_bus::{AnyBus, Bus};
use marketd_model::time::now_ns;
use marketd_model::{Event, TdaJob, TdaJobStatus, Upload, UploadFormat};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, NewTdaJob, TdaResult};
use marketd_tda::Data;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// What went wrong, for the API to map (`marketd_api::error`).
#[derive(Debug, thiserror::Error)]
pub enum TdaError {
    #[error(transparent)]
    Problem(#[from] ProblemError),
    #[error("{0} {1} not found")]
    NotFound(&'static str, Uuid),
    /// The job has not finished: its result is not there yet.
    #[error("job {} is {}: no result yet", .0.id, .0.status.as_str())]
    NotFinished(Box<TdaJob>),
    /// The job failed or was canceled: it has no result.
    #[error("job {} {}: it has no result", .0.id, .0.status.as_str())]
    NoResult(Box<TdaJob>),
    /// The result was dropped after `result_ttl_secs`.
    #[error("the result of job {0} expired")]
    Expired(Uuid),
    #[error("the idempotency key was used for a different request")]
    IdempotencyConflict,
    #[error("{0}")]
    InvalidUpload(String),
    #[error("{0}")]
    UploadTooLarge(String),
    #[error("storage: {0}")]
    Store(#[from] marketd_store::Error),
    #[error("bus: {0}")]
    Bus(#[from] marketd_bus::Error),
}

/// The answer of the synchronous endpoint.
#[derive(Debug)]
pub enum SyncAnswer {
    /// Computed now (or from the cache).
    Computed(Value),
    /// Too big to answer now, or asked to run asynchronously: a job.
    Queued(TdaJob),
}

/// Synchronous computations, jobs and uploads.
#[derive(Clone)]
pub struct TdaService {
    store: Arc<AnyStore>,
    bus: AnyBus,
    cfg: Arc<TdaConfig>,
    cache: moka::sync::Cache<String, Arc<Value>>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for TdaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TdaService")
            .field("cfg", &self.cfg)
            .finish()
    }
}

/// The `marketd_tda` format of an upload format.
pub fn tda_format(f: UploadFormat) -> marketd_tda::Format {
    use marketd_tda::Format;
    match f {
        UploadFormat::PointCloud => Format::PointCloud,
        UploadFormat::DistanceMatrix => Format::Distance,
        UploadFormat::LowerDistance => Format::LowerDistance,
        UploadFormat::UpperDistance => Format::UpperDistance,
        UploadFormat::Sparse => Format::Sparse,
        UploadFormat::Dipha => Format::Dipha,
        UploadFormat::Binary => Format::Binary,
    }
}

impl TdaService {
    pub fn new(store: Arc<AnyStore>, bus: AnyBus, cfg: TdaConfig) -> Self {
        TdaService {
            cache: moka::sync::Cache::new(cfg.cache_entries),
            permits: Arc::new(Semaphore::new(match cfg.max_concurrent {
                0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
                n => n,
            })),
            store,
            bus,
            cfg: Arc::new(cfg),
        }
    }

    pub fn config(&self) -> &TdaConfig {
        &self.cfg
    }

    /// `POST /tda/vietoris-rips`: computes now, from the cache when the
    /// same input and parameters were computed before, or (when
    /// `prefer_async`, or when the problem is bigger than
    /// `sync_max_simplices`) submits a job instead.
    pub async fn vietoris_rips(
        &self,
        body: Value,
        prefer_async: bool,
    ) -> Result<SyncAnswer, TdaError> {
        let problem = self.parse_as(&body, "vietoris-rips")?;
        // The cache is looked up before the input is read: a hit on an
        // upload costs its metadata, not its bytes.
        let upload_sha = match problem.upload_id() {
            Some(id) => Some(
                self.store
                    .upload(id)
                    .await?
                    .ok_or(ProblemError::UploadNotFound(id))?
                    .sha256,
            ),
            None => None,
        };
        let key = request_hash(&body, upload_sha.as_deref());
        if !prefer_async && let Some(hit) = self.cache.get(&key) {
            metrics::counter!("marketd_tda_cache_hits_total").increment(1);
            let mut v = (*hit).clone();
            if let Value::Object(m) = &mut v {
                m.insert("cached".into(), json!(true));
            }
            return Ok(SyncAnswer::Computed(v));
        }
        let (data, _) = self.load(&problem).await?;
        let Problem::VietorisRips { options, .. } = &problem else {
            unreachable!("parsed as vietoris-rips")
        };
        if prefer_async || simplices(data.len(), options.max_dim) > self.cfg.sync_max_simplices {
            let mut body = body;
            if let Value::Object(m) = &mut body {
                m.insert("kind".into(), json!("vietoris-rips"));
            }
            let (job, _) = self.submit(body, None).await?;
            return Ok(SyncAnswer::Queued(job));
        }
        let max_dim = options.max_dim;
        let answer = self.run_now(problem, Some(data), max_dim).await?;
        self.cache.insert(key, Arc::new(answer.clone()));
        let mut answer = answer;
        if let Value::Object(m) = &mut answer {
            m.insert("cached".into(), json!(false));
        }
        Ok(SyncAnswer::Computed(answer))
    }

    /// `body` checked as a request of `kind` (a body naming another kind is
    /// refused: each endpoint computes one).
    fn parse_as(&self, body: &Value, kind: &str) -> Result<Problem, TdaError> {
        let problem = Problem::parse(body, kind, &self.cfg)?;
        if problem.kind() != kind {
            return Err(
                ProblemError::Invalid(format!("kind: this endpoint computes {kind}")).into(),
            );
        }
        Ok(problem)
    }

    /// Computes now, within the bound on concurrent computations; the
    /// answer carries `duration_ms`, and the duration is recorded by
    /// algorithm and dimension.
    async fn run_now(
        &self,
        problem: Problem,
        data: Option<Data>,
        dim: usize,
    ) -> Result<Value, TdaError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ProblemError::Failed("the service is shutting down".into()))?;
        let algorithm = problem.kind();
        let started = Instant::now();
        let mut answer = Job {
            problem,
            data,
            control: Arc::new(Control::new()),
        }
        .run()
        .await?;
        let took = started.elapsed().as_secs_f64();
        record_duration(algorithm, dim, took);
        if let Value::Object(m) = &mut answer {
            m.insert("duration_ms".into(), json!(took * 1e3));
        }
        Ok(answer)
    }

    /// Summaries or a distance of given diagrams, now (they are cheap).
    pub async fn compute_now(&self, body: Value, kind: &str) -> Result<Value, TdaError> {
        let problem = self.parse_as(&body, kind)?;
        self.run_now(problem, None, 0).await
    }

    /// The data of a Vietoris–Rips problem (read from its upload if it
    /// names one) and that upload's hash.
    pub async fn load(&self, problem: &Problem) -> Result<(Data, Option<String>), TdaError> {
        let Problem::VietorisRips { input, .. } = problem else {
            return Err(ProblemError::Failed("not a vietoris-rips problem".into()).into());
        };
        match input {
            Input::Inline(d) => Ok((d.clone(), None)),
            Input::Upload(id) => {
                let up = self
                    .store
                    .upload(*id)
                    .await?
                    .ok_or(ProblemError::UploadNotFound(*id))?;
                if up.points > self.cfg.max_points as u64 {
                    return Err(ProblemError::TooLarge(format!(
                        "upload {id}: {} points (at most {})",
                        up.points, self.cfg.max_points
                    ))
                    .into());
                }
                let bytes = self
                    .store
                    .upload_body(*id)
                    .await?
                    .ok_or(ProblemError::UploadNotFound(*id))?;
                let format = tda_format(up.format);
                let data = tokio::task::spawn_blocking(move || marketd_tda::parse(&bytes, format))
                    .await
                    .map_err(|e| ProblemError::Failed(e.to_string()))?
                    .map_err(|e| ProblemError::Failed(format!("upload {id}: {e}")))?;
                Ok((data, Some(up.sha256)))
            }
        }
    }

    /// `POST /jobs`: checks and stores a job and announces it. With an
    /// `idempotency_key`, a retried submit of the same request returns the
    /// job it made (`false`: not new); a different request under the same
    /// key is a conflict.
    pub async fn submit(
        &self,
        body: Value,
        idempotency_key: Option<&str>,
    ) -> Result<(TdaJob, bool), TdaError> {
        let kind = match body.get("kind") {
            Some(Value::String(k)) => k.clone(),
            Some(_) => return Err(ProblemError::Invalid("kind: expected a string".into()).into()),
            None => {
                return Err(ProblemError::Invalid(
                    "kind: required (vietoris-rips, summaries or distance)".into(),
                )
                .into());
            }
        };
        let problem = Problem::parse(&body, &kind, &self.cfg)?;
        let upload = match problem.upload_id() {
            Some(id) => Some(
                self.store
                    .upload(id)
                    .await?
                    .ok_or(ProblemError::UploadNotFound(id))?,
            ),
            None => None,
        };
        let hash = request_hash(&body, upload.as_ref().map(|u| u.sha256.as_str()));
        if let Some(key) = idempotency_key
            && let Some(found) = self.same_key(key, &hash).await?
        {
            return Ok((found, false));
        }
        let now = now_ns();
        let job = TdaJob {
            id: Uuid::now_v7(),
            kind: problem.kind().to_string(),
            status: TdaJobStatus::Queued,
            progress: 0.0,
            stage: "queued".into(),
            attempts: 0,
            max_attempts: self.cfg.max_attempts.max(1),
            upload_id: upload.map(|u| u.id),
            submitted_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            expires_at: None,
            error: None,
            cancel_requested: false,
        };
        let request = body.to_string();
        let stored = self
            .store
            .insert_tda_job(&NewTdaJob {
                job: &job,
                request: &request,
                request_hash: &hash,
                idempotency_key,
            })
            .await;
        match (stored, idempotency_key) {
            (Ok(()), _) => {}
            // Two submits with one key raced: the other one won.
            (Err(marketd_store::Error::Conflict(_)), Some(key)) => {
                if let Some(found) = self.same_key(key, &hash).await? {
                    return Ok((found, false));
                }
                return Err(TdaError::IdempotencyConflict);
            }
            (Err(e), _) => return Err(e.into()),
        }
        metrics::counter!("marketd_tda_jobs_submitted_total", "kind" => job.kind.clone())
            .increment(1);
        self.announce(&job).await;
        Ok((job, true))
    }

    async fn same_key(&self, key: &str, hash: &str) -> Result<Option<TdaJob>, TdaError> {
        match self.store.tda_job_by_key(key).await? {
            Some(k) if k.request_hash == hash => Ok(Some(k.job)),
            Some(_) => Err(TdaError::IdempotencyConflict),
            None => Ok(None),
        }
    }

    /// Publishes a job's state on `jobs` (a lost announcement is repaired
    /// by the workers' periodic reconcile with the store).
    pub async fn announce(&self, job: &TdaJob) {
        if let Err(e) = self.bus.publish(Event::Job(job.clone())).await {
            tracing::warn!(job = %job.id, error = %e, "a job transition was stored but not published");
        }
    }

    pub async fn job(&self, id: Uuid) -> Result<TdaJob, TdaError> {
        self.store
            .tda_job(id)
            .await?
            .ok_or(TdaError::NotFound("job", id))
    }

    pub async fn jobs(
        &self,
        status: Option<TdaJobStatus>,
        limit: u32,
    ) -> Result<Vec<TdaJob>, TdaError> {
        Ok(self.store.tda_jobs(status, limit).await?)
    }

    /// A finished job's result.
    pub async fn result(&self, id: Uuid) -> Result<Value, TdaError> {
        match self.store.tda_job_result(id, now_ns()).await? {
            None => Err(TdaError::NotFound("job", id)),
            Some(TdaResult::NotReady(job)) if job.status.is_final() => {
                Err(TdaError::NoResult(Box::new(job)))
            }
            Some(TdaResult::NotReady(job)) => Err(TdaError::NotFinished(Box::new(job))),
            Some(TdaResult::Expired(_)) => Err(TdaError::Expired(id)),
            Some(TdaResult::Ready(_, text)) => serde_json::from_str(&text)
                .map_err(|e| ProblemError::Failed(format!("stored result unreadable: {e}")).into()),
        }
    }

    /// `DELETE /jobs/{id}`: a queued job is canceled at once, a running
    /// one is told to stop (its worker ends it within a second).
    pub async fn cancel(&self, id: Uuid) -> Result<TdaJob, TdaError> {
        let job = self
            .store
            .cancel_tda_job(id, now_ns())
            .await?
            .ok_or(TdaError::NotFound("job", id))?;
        if job.status == TdaJobStatus::Canceled || job.cancel_requested {
            self.announce(&job).await;
        }
        Ok(job)
    }

    /// `POST /uploads`: checks the bytes in `format` (errors name line and
    /// column, or byte offset) and stores them.
    pub async fn upload(
        &self,
        bytes: bytes::Bytes,
        format: UploadFormat,
        name: Option<String>,
    ) -> Result<Upload, TdaError> {
        if bytes.len() > self.cfg.max_upload_bytes {
            return Err(TdaError::UploadTooLarge(format!(
                "{} bytes (at most {})",
                bytes.len(),
                self.cfg.max_upload_bytes
            )));
        }
        if bytes.is_empty() {
            return Err(TdaError::InvalidUpload("the upload is empty".into()));
        }
        let parsed = bytes.clone();
        let data =
            tokio::task::spawn_blocking(move || marketd_tda::parse(&parsed, tda_format(format)))
                .await
                .map_err(|e| ProblemError::Failed(e.to_string()))?
                .map_err(|e| TdaError::InvalidUpload(format!("{} input: {e}", format.as_str())))?;
        if data.len() > self.cfg.max_points {
            return Err(TdaError::UploadTooLarge(format!(
                "{} points (at most {})",
                data.len(),
                self.cfg.max_points
            )));
        }
        let dimension = match &data {
            Data::PointCloud { dim, .. } => *dim as u64,
            _ => 0,
        };
        let upload = Upload {
            id: Uuid::now_v7(),
            format,
            name: name.map(|n| n.chars().take(256).collect()),
            size: bytes.len() as u64,
            sha256: hex(&Sha256::digest(&bytes)),
            points: data.len() as u64,
            dimension,
            created_at: now_ns(),
        };
        self.store.insert_upload(&upload, &bytes).await?;
        Ok(upload)
    }

    pub async fn uploads(&self, limit: u32) -> Result<Vec<Upload>, TdaError> {
        Ok(self.store.uploads(limit).await?)
    }

    pub async fn get_upload(&self, id: Uuid) -> Result<Upload, TdaError> {
        self.store
            .upload(id)
            .await?
            .ok_or(TdaError::NotFound("upload", id))
    }

    pub async fn delete_upload(&self, id: Uuid) -> Result<(), TdaError> {
        if self.store.delete_upload(id).await? {
            Ok(())
        } else {
            Err(TdaError::NotFound("upload", id))
        }
    }
}

/// `marketd_tda_computation_seconds{algorithm, dim}`.
pub fn record_duration(algorithm: &str, dim: usize, secs: f64) {
    metrics::histogram!(
        "marketd_tda_computation_seconds",
        "algorithm" => algorithm.to_string(),
        "dim" => dim.to_string()
    )
    .record(secs);
}
