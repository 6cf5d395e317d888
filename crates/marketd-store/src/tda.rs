//! The persistent-homology aggregate (tables `uploads` and `tda_jobs`): the
//! [`TdaStore`] trait, written once in the SQL both dialects share.
//!
//! Job writes are conditional on the job's state, so that racing writers
//! (the API cancelling, a worker reporting progress, a second worker that
//! took the job over after a rebalance) cannot move a finished job again.

use crate::Result;
use crate::backend::{Backend, Dialect, read_all, read_one, write_built};
use crate::error::conflict;
use crate::rows::{Cols, SqlRow, to_i64};
use crate::sql::Filter;
use marketd_model::{TdaJob, TdaJobError, TdaJobStatus, Upload, UploadFormat};
use std::future::Future;
use uuid::Uuid;

/// A job as submitted: its state, the request it runs and what makes a
/// retried submit the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTdaJob<'a> {
    pub job: &'a TdaJob,
    /// The request (JSON text) the worker runs.
    pub request: &'a str,
    /// Hash of the request, to tell a retried submit from a different one
    /// under the same idempotency key.
    pub request_hash: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// A job found by its idempotency key, with the hash of its request.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedTdaJob {
    pub job: TdaJob,
    pub request_hash: String,
}

/// A job's result as stored.
#[derive(Debug, Clone, PartialEq)]
pub enum TdaResult {
    /// The job has not succeeded (yet).
    NotReady(TdaJob),
    /// Succeeded; the result was dropped when it expired.
    Expired(TdaJob),
    /// Succeeded; the result's JSON text.
    Ready(TdaJob, String),
}

/// Uploads and jobs of the persistent-homology service.
pub trait TdaStore: Send + Sync {
    /// Stores an upload and its bytes.
    fn insert_upload(&self, u: &Upload, body: &[u8]) -> impl Future<Output = Result<()>> + Send;
    fn upload(&self, id: Uuid) -> impl Future<Output = Result<Option<Upload>>> + Send;
    /// The bytes of an upload.
    fn upload_body(&self, id: Uuid) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
    /// Uploads, newest first.
    fn uploads(&self, limit: u32) -> impl Future<Output = Result<Vec<Upload>>> + Send;
    fn delete_upload(&self, id: Uuid) -> impl Future<Output = Result<bool>> + Send;

    /// Stores a submitted job; [`Error::Conflict`] when its idempotency key
    /// is taken (read the holder with [`TdaStore::tda_job_by_key`]).
    fn insert_tda_job(&self, j: &NewTdaJob<'_>) -> impl Future<Output = Result<()>> + Send;
    fn tda_job(&self, id: Uuid) -> impl Future<Output = Result<Option<TdaJob>>> + Send;
    fn tda_job_by_key(&self, key: &str)
    -> impl Future<Output = Result<Option<KeyedTdaJob>>> + Send;
    /// The request a job runs.
    fn tda_job_request(&self, id: Uuid) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Jobs, newest first, of one status or all.
    fn tda_jobs(
        &self,
        status: Option<TdaJobStatus>,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<TdaJob>>> + Send;
    /// Jobs that still have to run somewhere (queued or running), oldest first.
    fn unfinished_tda_jobs(&self) -> impl Future<Output = Result<Vec<TdaJob>>> + Send;
    /// Writes a job's state (not its cancel flag, request or result) unless
    /// it is already finished; false when it was.
    fn update_tda_job(&self, j: &TdaJob) -> impl Future<Output = Result<bool>> + Send;
    /// Writes the final state of a job that succeeded, with its result,
    /// unless it is already finished; false when it was.
    fn finish_tda_job(&self, j: &TdaJob, result: &str)
    -> impl Future<Output = Result<bool>> + Send;
    /// Asks a job to stop: a queued one is canceled at once, a running one
    /// is flagged for its worker. The job after the change; `None` when
    /// there is no such job. A finished job is returned unchanged.
    fn cancel_tda_job(
        &self,
        id: Uuid,
        at: i64,
    ) -> impl Future<Output = Result<Option<TdaJob>>> + Send;
    fn tda_job_result(
        &self,
        id: Uuid,
        now: i64,
    ) -> impl Future<Output = Result<Option<TdaResult>>> + Send;
    /// Drops the results that expired before `now`; how many.
    fn prune_tda_results(&self, now: i64) -> impl Future<Output = Result<u64>> + Send;
}

const UPLOAD_COLS: &str =
    "SELECT id, format, name, size, sha256, points, dimension, created_at FROM uploads";

const JOB_COLS: &str = "SELECT id, kind, status, progress, stage, attempts, max_attempts, upload_id, \
     submitted_at, started_at, finished_at, updated_at, expires_at, error_code, error_detail, \
     cancel_requested FROM tda_jobs";

const FINAL: &str = "('succeeded', 'failed', 'canceled')";

impl<B: Backend> TdaStore for B {
    async fn insert_upload(&self, u: &Upload, body: &[u8]) -> Result<()> {
        let mut qb = B::Db::builder(
            "INSERT INTO uploads (id, format, name, size, sha256, points, dimension, created_at, body) VALUES (",
        );
        qb.owned(u.id.to_string())
            .sql(", ")
            .text(u.format.as_str())
            .sql(", ")
            .opt_text(u.name.as_deref())
            .sql(", ")
            .int(to_i64(u.size))
            .sql(", ")
            .text(&u.sha256)
            .sql(", ")
            .int(to_i64(u.points))
            .sql(", ")
            .int(to_i64(u.dimension))
            .sql(", ")
            .int(u.created_at)
            .sql(", ")
            .bytes(body)
            .sql(")");
        write_built(self, &mut qb, "storing an upload").await?;
        Ok(())
    }

    async fn upload(&self, id: Uuid) -> Result<Option<Upload>> {
        let mut qb = B::Db::builder(UPLOAD_COLS);
        qb.sql(" WHERE id = ").owned(id.to_string());
        read_one(self, &mut qb, "reading an upload", upload_from_row).await
    }

    async fn upload_body(&self, id: Uuid) -> Result<Option<Vec<u8>>> {
        let mut qb = B::Db::builder("SELECT body FROM uploads WHERE id = ");
        qb.owned(id.to_string());
        read_one(self, &mut qb, "reading an upload's bytes", |r| {
            Cols::new(r, "uploads").bytes(0)
        })
        .await
    }

    async fn uploads(&self, limit: u32) -> Result<Vec<Upload>> {
        let mut qb = B::Db::builder(UPLOAD_COLS);
        qb.sql(" ORDER BY created_at DESC, id DESC LIMIT ")
            .int(i64::from(limit));
        read_all(self, &mut qb, "listing uploads", |r, _| upload_from_row(r)).await
    }

    async fn delete_upload(&self, id: Uuid) -> Result<bool> {
        let mut qb = B::Db::builder("DELETE FROM uploads WHERE id = ");
        qb.owned(id.to_string());
        write_built(self, &mut qb, "deleting an upload").await
    }

    async fn insert_tda_job(&self, n: &NewTdaJob<'_>) -> Result<()> {
        let j = n.job;
        let mut qb = B::Db::builder(
            "INSERT INTO tda_jobs (id, kind, status, progress, stage, attempts, max_attempts, upload_id, \
             submitted_at, started_at, finished_at, updated_at, expires_at, error_code, error_detail, \
             cancel_requested, request, request_hash, idempotency_key) VALUES (",
        );
        qb.owned(j.id.to_string())
            .sql(", ")
            .text(&j.kind)
            .sql(", ")
            .text(j.status.as_str())
            .sql(", ")
            .float(j.progress)
            .sql(", ")
            .text(&j.stage)
            .sql(", ")
            .int(i64::from(j.attempts))
            .sql(", ")
            .int(i64::from(j.max_attempts))
            .sql(", ");
        match j.upload_id {
            Some(u) => qb.owned(u.to_string()),
            None => qb.opt_text(None),
        };
        qb.sql(", ").int(j.submitted_at).sql(", ");
        push_values(&mut qb, j);
        qb.sql(", ")
            .text(n.request)
            .sql(", ")
            .text(n.request_hash)
            .sql(", ")
            .opt_text(n.idempotency_key)
            .sql(")");
        let _turn = self.write_turn().await;
        B::Db::run(self.writer(), &mut qb)
            .await
            .map_err(|e| conflict(e, "submitting a job", "idempotency key"))?;
        Ok(())
    }

    async fn tda_job(&self, id: Uuid) -> Result<Option<TdaJob>> {
        let mut qb = B::Db::builder(JOB_COLS);
        qb.sql(" WHERE id = ").owned(id.to_string());
        read_one(self, &mut qb, "reading a job", job_from_row).await
    }

    async fn tda_job_by_key(&self, key: &str) -> Result<Option<KeyedTdaJob>> {
        let mut qb = B::Db::builder(&JOB_COLS.replace(" FROM", ", request_hash FROM"));
        qb.sql(" WHERE idempotency_key = ").text(key);
        read_one(self, &mut qb, "reading a job by idempotency key", |r| {
            Ok(KeyedTdaJob {
                job: job_from_row(r)?,
                request_hash: Cols::new(r, "tda_jobs").string(16)?,
            })
        })
        .await
    }

    async fn tda_job_request(&self, id: Uuid) -> Result<Option<String>> {
        let mut qb = B::Db::builder("SELECT request FROM tda_jobs WHERE id = ");
        qb.owned(id.to_string());
        read_one(self, &mut qb, "reading a job's request", |r| {
            Cols::new(r, "tda_jobs").string(0)
        })
        .await
    }

    async fn tda_jobs(&self, status: Option<TdaJobStatus>, limit: u32) -> Result<Vec<TdaJob>> {
        let mut qb = B::Db::builder(JOB_COLS);
        qb.sql(" WHERE 1 = 1");
        if let Some(s) = status {
            qb.eq_text("status", s.as_str());
        }
        qb.sql(" ORDER BY submitted_at DESC, id DESC LIMIT ")
            .int(i64::from(limit));
        read_all(self, &mut qb, "listing jobs", |r, _| job_from_row(r)).await
    }

    async fn unfinished_tda_jobs(&self) -> Result<Vec<TdaJob>> {
        let mut qb = B::Db::builder(JOB_COLS);
        qb.sql(" WHERE status IN ('queued', 'running') ORDER BY submitted_at, id");
        read_all(self, &mut qb, "listing unfinished jobs", |r, _| {
            job_from_row(r)
        })
        .await
    }

    async fn update_tda_job(&self, j: &TdaJob) -> Result<bool> {
        let mut qb = B::Db::builder("UPDATE tda_jobs SET ");
        push_state(&mut qb, j);
        qb.sql(" WHERE id = ")
            .owned(j.id.to_string())
            .sql(&format!(" AND status NOT IN {FINAL}"));
        write_built(self, &mut qb, "updating a job").await
    }

    async fn finish_tda_job(&self, j: &TdaJob, result: &str) -> Result<bool> {
        let mut qb = B::Db::builder("UPDATE tda_jobs SET result = ");
        qb.text(result).sql(", ");
        push_state(&mut qb, j);
        qb.sql(" WHERE id = ")
            .owned(j.id.to_string())
            .sql(&format!(" AND status NOT IN {FINAL}"));
        write_built(self, &mut qb, "storing a job's result").await
    }

    async fn cancel_tda_job(&self, id: Uuid, at: i64) -> Result<Option<TdaJob>> {
        let mut qb = B::Db::builder(
            "UPDATE tda_jobs SET \
             status = CASE WHEN status = 'queued' THEN 'canceled' ELSE status END, \
             stage = CASE WHEN status = 'queued' THEN 'canceled' ELSE stage END, \
             finished_at = CASE WHEN status = 'queued' THEN ",
        );
        qb.int(at)
            .sql(" ELSE finished_at END, cancel_requested = CASE WHEN status = 'running' THEN 1 ELSE cancel_requested END, updated_at = ")
            .int(at)
            .sql(" WHERE id = ")
            .owned(id.to_string())
            .sql(" AND status IN ('queued', 'running')");
        write_built(self, &mut qb, "canceling a job").await?;
        self.tda_job(id).await
    }

    async fn tda_job_result(&self, id: Uuid, now: i64) -> Result<Option<TdaResult>> {
        let mut qb = B::Db::builder(&JOB_COLS.replace(" FROM", ", result FROM"));
        qb.sql(" WHERE id = ").owned(id.to_string());
        let row = read_one(self, &mut qb, "reading a job's result", |r| {
            Ok((job_from_row(r)?, Cols::new(r, "tda_jobs").opt_string(16)?))
        })
        .await?;
        Ok(row.map(|(job, result)| result_of(job, result, now)))
    }

    async fn prune_tda_results(&self, now: i64) -> Result<u64> {
        let mut qb = B::Db::builder(
            "UPDATE tda_jobs SET result = NULL WHERE result IS NOT NULL AND expires_at < ",
        );
        qb.int(now);
        let _turn = self.write_turn().await;
        B::Db::run(self.writer(), &mut qb)
            .await
            .map_err(crate::error::failed("pruning job results"))
    }
}

fn result_of(job: TdaJob, result: Option<String>, now: i64) -> TdaResult {
    if job.status != TdaJobStatus::Succeeded {
        return TdaResult::NotReady(job);
    }
    match result {
        Some(r) if job.expires_at.is_none_or(|e| e > now) => TdaResult::Ready(job, r),
        _ => TdaResult::Expired(job),
    }
}

/// started_at … cancel_requested of an insert, in column order.
fn push_values<'q, Q: Filter<'q>>(qb: &mut Q, j: &'q TdaJob) {
    qb.opt_int(j.started_at)
        .sql(", ")
        .opt_int(j.finished_at)
        .sql(", ")
        .int(j.updated_at)
        .sql(", ")
        .opt_int(j.expires_at)
        .sql(", ")
        .opt_text(j.error.as_ref().map(|e| e.error_code.as_str()))
        .sql(", ")
        .opt_text(j.error.as_ref().map(|e| e.detail.as_str()))
        .sql(", ")
        .int(i64::from(j.cancel_requested));
}

/// ` status = …, progress = …, …` of a state write.
fn push_state<'q, Q: Filter<'q>>(qb: &mut Q, j: &'q TdaJob) {
    qb.sql("status = ")
        .text(j.status.as_str())
        .sql(", progress = ")
        .float(j.progress)
        .sql(", stage = ")
        .text(&j.stage)
        .sql(", attempts = ")
        .int(i64::from(j.attempts))
        .sql(", started_at = ")
        .opt_int(j.started_at)
        .sql(", finished_at = ")
        .opt_int(j.finished_at)
        .sql(", updated_at = ")
        .int(j.updated_at)
        .sql(", expires_at = ")
        .opt_int(j.expires_at)
        .sql(", error_code = ")
        .opt_text(j.error.as_ref().map(|e| e.error_code.as_str()))
        .sql(", error_detail = ")
        .opt_text(j.error.as_ref().map(|e| e.detail.as_str()));
}

fn upload_from_row<R: SqlRow>(row: &R) -> Result<Upload> {
    let c = Cols::new(row, "uploads");
    Ok(Upload {
        id: c.uuid(0)?,
        format: c.case(1, "format", UploadFormat::parse)?,
        name: c.opt_string(2)?,
        size: c.count(3)?,
        sha256: c.string(4)?,
        points: c.count(5)?,
        dimension: c.count(6)?,
        created_at: c.int(7)?,
    })
}

fn job_from_row<R: SqlRow>(row: &R) -> Result<TdaJob> {
    let c = Cols::new(row, "tda_jobs");
    let error = match (c.opt_string(13)?, c.opt_string(14)?) {
        (Some(error_code), detail) => Some(TdaJobError {
            error_code,
            detail: detail.unwrap_or_default(),
        }),
        (None, _) => None,
    };
    let small = |i: usize| -> Result<u32> {
        u32::try_from(c.count(i)?).map_err(|_| c.corrupt(format!("column {i} out of range")))
    };
    Ok(TdaJob {
        id: c.uuid(0)?,
        kind: c.string(1)?,
        status: c.case(2, "status", TdaJobStatus::parse)?,
        progress: c.float(3)?,
        stage: c.string(4)?,
        attempts: small(5)?,
        max_attempts: small(6)?,
        upload_id: c
            .opt_string(7)?
            .map(|s| s.parse().map_err(|_| c.corrupt("upload_id is not a uuid")))
            .transpose()?,
        submitted_at: c.int(8)?,
        started_at: c.opt_int(9)?,
        finished_at: c.opt_int(10)?,
        updated_at: c.int(11)?,
        expires_at: c.opt_int(12)?,
        error,
        cancel_requested: c.int(15)? != 0,
    })
}
