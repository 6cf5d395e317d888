//! The polling-job aggregate (table `polling_jobs`): the [`JobStore`] trait,
//! implemented once for every backend that supplies its dialect's
//! statements ([`JobSql`]).

use crate::Result;
use crate::backend::{Backend, Dialect, read_all, read_one, write_built, write_stmt};
use crate::error::failed;
use crate::rows::{Cols, SqlRow, to_i64};
use crate::sql::{Binds, Filter};
use marketd_model::{JobStatus, PollingJob};
use std::future::Future;
use uuid::Uuid;

/// Polling jobs: their definitions and run statistics.
pub trait JobStore: Send + Sync {
    fn upsert_polling_job(&self, job: &PollingJob) -> impl Future<Output = Result<()>> + Send;
    fn polling_job(&self, id: Uuid) -> impl Future<Output = Result<Option<PollingJob>>> + Send;
    /// Jobs ordered by creation time; deleted ones only when asked.
    fn polling_jobs(
        &self,
        include_deleted: bool,
    ) -> impl Future<Output = Result<Vec<PollingJob>>> + Send;
    /// Records one run: bumps `run_count` (and `error_count` when `error` is
    /// set), sets `last_run_at` and `last_error`.
    fn record_job_run(
        &self,
        id: Uuid,
        at: i64,
        error: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Marks a job deleted; false when no active job had that id.
    fn delete_polling_job(&self, id: Uuid) -> impl Future<Output = Result<bool>> + Send;
}

/// The statements of [`JobStore`] whose SQL differs between dialects.
pub(crate) trait JobSql: Backend {
    /// Inserts a job, binding [`bind_job`]'s columns, or updates its
    /// definition; run statistics never go backwards.
    const UPSERT_JOB: &'static str;
    /// Records a run; binds the error (or NULL), the time and the id.
    const RECORD_RUN: &'static str;
}

impl<B: JobSql> JobStore for B {
    async fn upsert_polling_job(&self, job: &PollingJob) -> Result<()> {
        let q = bind_job(B::Db::stmt(B::UPSERT_JOB), job);
        write_stmt(self, q, failed("upserting a polling job")).await?;
        Ok(())
    }

    async fn polling_job(&self, id: Uuid) -> Result<Option<PollingJob>> {
        let mut qb = B::Db::builder(JOB_SELECT);
        qb.sql(" WHERE id = ").owned(id.to_string());
        read_one(self, &mut qb, "reading a polling job", job_from_row).await
    }

    async fn polling_jobs(&self, include_deleted: bool) -> Result<Vec<PollingJob>> {
        let mut qb = B::Db::builder(&jobs_sql(include_deleted));
        read_all(self, &mut qb, "listing polling jobs", |r, _| {
            job_from_row(r)
        })
        .await
    }

    async fn record_job_run(&self, id: Uuid, at: i64, error: Option<&str>) -> Result<()> {
        let q = B::Db::stmt(B::RECORD_RUN).opt_text(error).int(at);
        write_stmt(self, q.owned(id.to_string()), failed("recording a job run")).await?;
        Ok(())
    }

    async fn delete_polling_job(&self, id: Uuid) -> Result<bool> {
        let mut qb = B::Db::builder("UPDATE polling_jobs SET status = 'deleted' WHERE id = ");
        qb.owned(id.to_string()).sql(" AND status = 'active'");
        write_built(self, &mut qb, "deleting a polling job").await
    }
}

/// The columns every backend reads, in [`job_from_row`]'s order.
const JOB_SELECT: &str = "SELECT id, symbol, provider, interval_ms, status, created_at, run_count, error_count, \
     last_run_at, last_error FROM polling_jobs";

/// `polling_jobs()`'s statement without and with deleted jobs.
fn jobs_sql(include_deleted: bool) -> String {
    if include_deleted {
        format!("{JOB_SELECT} ORDER BY created_at, id")
    } else {
        format!("{JOB_SELECT} WHERE status = 'active' ORDER BY created_at, id")
    }
}

fn job_from_row<R: SqlRow>(row: &R) -> Result<PollingJob> {
    let c = Cols::new(row, "polling_jobs");
    let status = c.case(4, "status", JobStatus::parse)?;
    Ok(PollingJob {
        id: c.uuid(0)?,
        symbol: c.symbol(1)?,
        provider: c.string(2)?,
        interval_ms: c.count(3)?,
        status,
        created_at: c.int(5)?,
        run_count: c.count(6)?,
        error_count: c.count(7)?,
        last_run_at: c.opt_int(8)?,
        last_error: c.opt_string(9)?,
    })
}

/// Binds every column of `job`, in the order of both dialects' upserts
/// (id, symbol, provider, interval_ms, status, created_at, run_count,
/// error_count, last_run_at, last_error).
pub(crate) fn bind_job<'q, Q: Binds<'q>>(q: Q, job: &'q PollingJob) -> Q {
    q.owned(job.id.to_string())
        .text(job.symbol.as_str())
        .text(&job.provider)
        .int(to_i64(job.interval_ms))
        .text(job.status.as_str())
        .int(job.created_at)
        .int(to_i64(job.run_count))
        .int(to_i64(job.error_count))
        .opt_int(job.last_run_at)
        .opt_text(job.last_error.as_deref())
}
