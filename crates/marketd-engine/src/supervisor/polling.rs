//! Polling jobs: each active job fetches its symbol from its provider on a
//! fixed grid (`created_at + k·interval`), so runs never drift and a restart
//! resumes on the same grid. Jobs live in the store (they survive restarts)
//! and changes arrive as commands on the `polling-jobs` topic, keyed by job
//! id.
//!
//! The jobs are a unit kind of the [`Supervisor`]: ownership follows the
//! `polling-jobs` partitions (consumer group `polling-scheduler`), and the
//! new owner of a job after a rebalance reloads it and resumes its grid.

use super::{Command, Supervisor, UnitKind, UnitResult};
use crate::PriceService;
use marketd_model::time::{NANOS_PER_MILLI, now_ns};
use marketd_model::{Envelope, Event, JobStatus, PollingJob, PollingJobCommand, Topic};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Polling limits (`[polling]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PollingConfig {
    /// Shortest allowed interval, milliseconds.
    pub min_interval_ms: u64,
    /// Longest allowed interval, milliseconds.
    pub max_interval_ms: u64,
    /// Most symbols in one `POST /prices/poll`.
    pub max_symbols: usize,
}

impl Default for PollingConfig {
    fn default() -> Self {
        PollingConfig {
            min_interval_ms: 1_000,
            max_interval_ms: 86_400_000,
            max_symbols: 500,
        }
    }
}

impl PollingConfig {
    /// The shortest and longest interval of a request, in seconds.
    pub fn interval_bounds_s(&self) -> (f64, f64) {
        (
            self.min_interval_ms as f64 / 1000.0,
            self.max_interval_ms as f64 / 1000.0,
        )
    }
}

/// Runs the active polling jobs this process owns.
pub type PollingScheduler = Supervisor<PollingJobs>;

/// The polling-job unit kind: jobs stored in the store, commands on
/// `polling-jobs`, one provider fetch per slot of the job's grid.
pub struct PollingJobs {
    store: Arc<AnyStore>,
    prices: Arc<PriceService>,
}

impl PollingJobs {
    pub fn new(store: Arc<AnyStore>, prices: Arc<PriceService>) -> Self {
        PollingJobs { store, prices }
    }
}

impl UnitKind for PollingJobs {
    type Unit = PollingJob;
    const NAME: &'static str = "polling";
    const TOPIC: Topic = Topic::PollingJobs;
    const GROUP: &'static str = "polling-scheduler";
    const RUNNING_GAUGE: &'static str = "marketd_polling_jobs_running";

    fn id(job: &PollingJob) -> Uuid {
        job.id
    }

    async fn load(&self) -> marketd_store::Result<Vec<PollingJob>> {
        let jobs = self.store.polling_jobs(false).await?;
        Ok(jobs
            .into_iter()
            .filter(|j| j.status == JobStatus::Active)
            .collect())
    }

    fn command(&self, envelope: &Envelope) -> Option<Command<PollingJob>> {
        let Event::PollingJob(cmd) = &envelope.event else {
            return None;
        };
        Some(match cmd {
            PollingJobCommand::Upsert { job } if job.status == JobStatus::Active => {
                Command::Start(job.clone())
            }
            PollingJobCommand::Upsert { job } => Command::Stop(job.id),
            PollingJobCommand::Delete { id } => Command::Stop(*id),
        })
    }

    /// Fetches on the job's grid until cancelled. A failed fetch is not a
    /// failure of the unit: it is counted and recorded on the job.
    async fn run(self: Arc<Self>, job: PollingJob, cancel: CancellationToken) -> UnitResult {
        let period = Duration::from_millis(job.interval_ms.max(1));
        let mut ticker =
            tokio::time::interval_at(Instant::now() + first_delay(&job, now_ns()), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        tracing::debug!(job = %job.id, symbol = %job.symbol, provider = %job.provider, "polling job started");
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = ticker.tick() => {}
            }
            let result = self.prices.fetch_fresh(&job.provider, &job.symbol).await;
            let error = result.as_ref().err().map(|e| e.to_string());
            metrics::counter!("marketd_polling_runs_total", "outcome" => if error.is_some() { "error" } else { "ok" }).increment(1);
            if let Some(e) = &error {
                tracing::warn!(job = %job.id, symbol = %job.symbol, error = %e, "polling run failed");
            }
            if let Err(e) = self
                .store
                .record_job_run(job.id, now_ns(), error.as_deref())
                .await
            {
                tracing::error!(job = %job.id, error = %e, "could not record polling run");
            }
        }
    }
}

/// Delay until the job's next slot on its grid `created_at + k·interval`
/// (zero for a job that has never run).
fn first_delay(job: &PollingJob, now: i64) -> Duration {
    if job.run_count == 0 {
        return Duration::ZERO;
    }
    let period = i64::try_from(job.interval_ms).unwrap_or(i64::MAX).max(1) * NANOS_PER_MILLI;
    let elapsed = (now - job.created_at).max(0);
    let next = job.created_at + (elapsed / period + 1) * period;
    Duration::from_nanos(u64::try_from(next - now).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::Symbol;

    #[test]
    fn resumed_jobs_keep_their_grid() {
        let mut job = PollingJob {
            id: Uuid::now_v7(),
            symbol: Symbol::parse("AAPL").unwrap(),
            provider: "simulated".into(),
            interval_ms: 1_000,
            status: JobStatus::Active,
            created_at: 10_000 * NANOS_PER_MILLI,
            run_count: 0,
            error_count: 0,
            last_run_at: None,
            last_error: None,
        };
        assert_eq!(first_delay(&job, 12_300 * NANOS_PER_MILLI), Duration::ZERO);
        job.run_count = 3;
        assert_eq!(
            first_delay(&job, 12_300 * NANOS_PER_MILLI),
            Duration::from_millis(700)
        );
        assert_eq!(
            first_delay(&job, 13_000 * NANOS_PER_MILLI),
            Duration::from_millis(1_000)
        );
    }
}
