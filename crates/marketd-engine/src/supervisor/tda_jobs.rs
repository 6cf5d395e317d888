//! Persistent-homology jobs as a unit kind of the [`Supervisor`]: jobs live
//! in `tda_jobs`, every transition is published on `jobs` (keyed by job id),
//! and a queued job there is the command to run it. The worker owning the
//! job's partition (consumer group `tda-jobs`) runs it; when that worker
//! dies, the next owner finds it `running` in the store and runs it again,
//! until `max_attempts` runs have started.
//!
//! A run reports progress (stage and fraction) at most every
//! [`PROGRESS_EVERY`], and stops within a second of a cancel: the API's
//! cancel reaches it as a stop command on `jobs`, and the run also re-reads
//! the job's cancel flag every second in case that command was lost. A run
//! stopped by its process shutting down puts the job back in the queue.

use super::{Command, Supervisor, UnitKind, UnitResult};
use crate::services::tda::{TdaError, TdaService, record_duration};
use crate::tda::ProblemError;
use crate::tda::problem::Problem;
use crate::tda::run::{Control, Job};
use marketd_model::time::now_ns;
use marketd_model::{Envelope, Event, TdaJob, TdaJobError, TdaJobStatus, Topic};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Shortest time between two progress reports of a run.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Runs the jobs this process owns.
pub type TdaJobRunner = Supervisor<TdaJobs>;

/// The job unit kind.
pub struct TdaJobs {
    store: Arc<AnyStore>,
    service: TdaService,
}

impl TdaJobs {
    pub fn new(store: Arc<AnyStore>, service: TdaService) -> Self {
        TdaJobs { store, service }
    }

    /// Stores and announces a transition; false when the job had already
    /// finished (another writer got there first).
    async fn transition(&self, job: &TdaJob) -> marketd_store::Result<bool> {
        let written = self.store.update_tda_job(job).await?;
        if written {
            self.service.announce(job).await;
            if job.status.is_final() {
                metrics::counter!("marketd_tda_jobs_finished_total", "status" => job.status.as_str())
                    .increment(1);
            }
        }
        Ok(written)
    }

    async fn fail(
        &self,
        job: &mut TdaJob,
        code: &str,
        detail: String,
    ) -> marketd_store::Result<()> {
        let now = now_ns();
        job.status = TdaJobStatus::Failed;
        job.stage = "failed".into();
        job.finished_at = Some(now);
        job.updated_at = now;
        job.error = Some(TdaJobError {
            error_code: code.into(),
            detail,
        });
        self.transition(job).await.map(|_| ())
    }

    async fn run_job(self: Arc<Self>, id: Uuid, cancel: CancellationToken) -> UnitResult {
        // The command may be stale: the store says what the job is now.
        let Some(mut job) = self.store.tda_job(id).await? else {
            return Ok(());
        };
        if job.status.is_final() {
            return Ok(());
        }
        let now = now_ns();
        if job.cancel_requested {
            job.status = TdaJobStatus::Canceled;
            job.stage = "canceled".into();
            job.finished_at = Some(now);
            job.updated_at = now;
            self.transition(&job).await?;
            return Ok(());
        }
        if job.attempts >= job.max_attempts {
            let detail = format!(
                "the job was started {} times and its worker stopped each time",
                job.attempts
            );
            self.fail(&mut job, "ATTEMPTS_EXHAUSTED", detail).await?;
            return Ok(());
        }
        job.status = TdaJobStatus::Running;
        job.attempts += 1;
        job.started_at = Some(now);
        job.updated_at = now;
        job.stage = "loading".into();
        if !self.transition(&job).await? {
            return Ok(());
        }
        let Some(request) = self.store.tda_job_request(id).await? else {
            return Ok(());
        };
        let cfg = self.service.config().clone();
        let prepared = match serde_json::from_str(&request) {
            Ok(body) => match Problem::parse(&body, &job.kind, &cfg) {
                Ok(p) => match p {
                    Problem::VietorisRips { .. } => {
                        self.service.load(&p).await.map(|(d, _)| (p, Some(d)))
                    }
                    _ => Ok((p, None)),
                },
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(ProblemError::Invalid(format!("stored request unreadable: {e}")).into()),
        };
        let (problem, data) = match prepared {
            Ok(x) => x,
            Err(TdaError::Problem(e)) => {
                let (code, detail) = problem_code(&e);
                self.fail(&mut job, code, detail).await?;
                return Ok(());
            }
            Err(e) => return Err(Box::new(e)),
        };
        let dim = match &problem {
            Problem::VietorisRips { options, .. } => options.max_dim,
            _ => 0,
        };
        let control = Arc::new(Control::new());
        let started = std::time::Instant::now();
        let mut computation = tokio::spawn(
            Job {
                problem,
                data,
                control: control.clone(),
            }
            .run(),
        );
        let mut ticks = tokio::time::interval(PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut turns = 0u32;
        let mut stopping = false;
        let outcome = loop {
            tokio::select! {
                res = &mut computation => break res.map_err(|e| ProblemError::Failed(e.to_string())).and_then(|r| r),
                () = cancel.cancelled(), if !stopping => {
                    stopping = true;
                    control.cancel();
                }
                _ = ticks.tick() => {
                    turns += 1;
                    // The cancel flag, in case the stop command was lost.
                    if turns.is_multiple_of(4)
                        && let Ok(Some(now)) = self.store.tda_job(id).await
                        && (now.cancel_requested || now.status.is_final())
                    {
                        control.cancel();
                    }
                    let (stage, fraction) = control.progress();
                    let stage = stage.as_str().to_string();
                    if stage != job.stage || (fraction - job.progress).abs() >= 0.01 {
                        job.stage = stage;
                        job.progress = fraction.clamp(0.0, 1.0);
                        job.updated_at = now_ns();
                        if !self.transition(&job).await? {
                            control.cancel();
                        }
                    }
                }
            }
        };
        let took = started.elapsed().as_secs_f64();
        let now = now_ns();
        match outcome {
            Ok(mut answer) => {
                record_duration(&job.kind, dim, took);
                if let serde_json::Value::Object(m) = &mut answer {
                    m.insert("duration_ms".into(), serde_json::json!(took * 1e3));
                }
                job.status = TdaJobStatus::Succeeded;
                job.stage = "done".into();
                job.progress = 1.0;
                job.finished_at = Some(now);
                job.updated_at = now;
                let ttl = i64::try_from(cfg.result_ttl_secs.saturating_mul(1_000_000_000))
                    .unwrap_or(i64::MAX);
                job.expires_at = Some(now.saturating_add(ttl));
                if self.store.finish_tda_job(&job, &answer.to_string()).await? {
                    self.service.announce(&job).await;
                    metrics::counter!("marketd_tda_jobs_finished_total", "status" => "succeeded")
                        .increment(1);
                }
            }
            Err(ProblemError::Canceled) => {
                let asked = self
                    .store
                    .tda_job(id)
                    .await?
                    .is_some_and(|j| j.cancel_requested);
                if asked {
                    job.status = TdaJobStatus::Canceled;
                    job.stage = "canceled".into();
                    job.finished_at = Some(now);
                } else {
                    // This process is stopping: the job goes back to the
                    // queue, and this run does not count as an attempt.
                    job.status = TdaJobStatus::Queued;
                    job.stage = "queued".into();
                    job.progress = 0.0;
                    job.attempts = job.attempts.saturating_sub(1);
                }
                job.updated_at = now;
                self.transition(&job).await?;
            }
            Err(e) => {
                let (code, detail) = problem_code(&e);
                self.fail(&mut job, code, detail).await?;
            }
        }
        Ok(())
    }
}

/// The error code and detail a failed job carries.
fn problem_code(e: &ProblemError) -> (&'static str, String) {
    let code = match e {
        ProblemError::Invalid(_) => "INVALID_REQUEST",
        ProblemError::TooLarge(_) => "TOO_LARGE",
        ProblemError::UploadNotFound(_) => "UPLOAD_NOT_FOUND",
        ProblemError::Canceled => "CANCELED",
        ProblemError::Failed(_) => "COMPUTATION_FAILED",
    };
    (code, e.to_string())
}

impl UnitKind for TdaJobs {
    type Unit = TdaJob;
    const NAME: &'static str = "tda-jobs";
    const TOPIC: Topic = Topic::Jobs;
    const GROUP: &'static str = "tda-jobs";
    const RUNNING_GAUGE: &'static str = "marketd_tda_jobs_running";

    fn id(unit: &TdaJob) -> Uuid {
        unit.id
    }

    async fn load(&self) -> marketd_store::Result<Vec<TdaJob>> {
        let jobs = self.store.unfinished_tda_jobs().await?;
        let queued = jobs
            .iter()
            .filter(|j| j.status == TdaJobStatus::Queued)
            .count();
        metrics::gauge!("marketd_tda_jobs_queued").set(queued as f64);
        Ok(jobs)
    }

    fn command(&self, envelope: &Envelope) -> Option<Command<TdaJob>> {
        let Event::Job(job) = &envelope.event else {
            return None;
        };
        if job.cancel_requested || job.status.is_final() {
            Some(Command::Stop(job.id))
        } else if job.status == TdaJobStatus::Queued {
            Some(Command::Start(job.clone()))
        } else {
            // Progress of a running job.
            None
        }
    }

    async fn run(self: Arc<Self>, unit: TdaJob, cancel: CancellationToken) -> UnitResult {
        self.run_job(unit.id, cancel).await
    }
}
