//! Polling jobs: each active job fetches its symbol from its provider on a
//! fixed grid (`created_at + k·interval`), so runs never drift and a restart
//! resumes on the same grid. Jobs live in the store (they survive restarts)
//! and changes arrive as commands on the `polling-jobs` topic, keyed by job
//! id.
//!
//! Ownership follows the bus: a scheduler runs exactly the jobs whose key
//! falls in the `polling-jobs` partitions assigned to its consumer. With
//! Kafka, the workers of one consumer group split the partitions, so each job
//! runs on one worker at a time, and when a worker dies or joins, the next
//! rebalance moves its jobs (the new owner reloads them from the store and
//! resumes their grid). The memory bus has one partition: every job runs in
//! the one process. A periodic reconcile with the store repairs anything a
//! lost command or a failed store read left behind.

use crate::price::PriceService;
use marketd_bus::{AnyBus, AnyConsumer, Assignment, Bus, Consumer};
use marketd_model::time::{NANOS_PER_MILLI, now_ns};
use marketd_model::{Event, JobStatus, PollingJob, PollingJobCommand, Topic};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
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

/// How often the scheduler re-reads the active jobs it owns from the store.
const RECONCILE_EVERY: Duration = Duration::from_secs(15);

/// Runs the active polling jobs this process owns.
pub struct PollingScheduler {
    store: Arc<AnyStore>,
    prices: Arc<PriceService>,
    bus: AnyBus,
    running: Mutex<HashMap<Uuid, (CancellationToken, JoinHandle<()>)>>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for PollingScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PollingScheduler").finish_non_exhaustive()
    }
}

impl PollingScheduler {
    pub fn new(
        store: Arc<AnyStore>,
        prices: Arc<PriceService>,
        bus: AnyBus,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(PollingScheduler {
            store,
            prices,
            bus,
            running: Mutex::new(HashMap::new()),
            cancel,
        })
    }

    /// Number of jobs running in this process.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Ids of the jobs running in this process.
    pub fn running_ids(&self) -> Vec<Uuid> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.keys().copied().collect()
    }

    fn owns(&self, assignment: &Assignment, id: Uuid) -> bool {
        assignment.contains(self.bus.partition_for(Topic::PollingJobs, &id.to_string()))
    }

    /// Makes the running set equal to the active jobs of the store that this
    /// process owns under `assignment`.
    async fn reconcile(self: &Arc<Self>, assignment: &Assignment) {
        let jobs = match self.store.polling_jobs(false).await {
            Ok(jobs) => jobs,
            Err(e) => {
                // Keep what runs; the next reconcile retries.
                tracing::error!(error = %e, "could not load polling jobs");
                return;
            }
        };
        let owned: HashMap<Uuid, PollingJob> = jobs
            .into_iter()
            .filter(|j| j.status == JobStatus::Active && self.owns(assignment, j.id))
            .map(|j| (j.id, j))
            .collect();
        let stale: Vec<Uuid> = self
            .running_ids()
            .into_iter()
            .filter(|id| !owned.contains_key(id))
            .collect();
        let (before, stopped) = (self.running(), stale.len());
        for id in stale {
            self.stop_job(id);
        }
        for job in owned.into_values() {
            self.start_job(job);
        }
        let now = self.running();
        if stopped > 0 || now != before - stopped {
            tracing::info!(
                partitions = ?assignment.partitions,
                running = now,
                stopped,
                "polling jobs reconciled"
            );
        }
        metrics::gauge!("marketd_polling_jobs_running").set(now as f64);
    }

    /// Runs the jobs this process owns, follows the command topic and the
    /// consumer's partition assignment until the topic closes or the
    /// scheduler is cancelled.
    pub async fn run(self: Arc<Self>, mut commands: AnyConsumer) {
        let mut assignment_rx = commands.assignment();
        let mut assignment = assignment_rx.borrow_and_update().clone();
        let mut follow_assignment = true;
        self.reconcile(&assignment).await;
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.set_missed_tick_behavior(MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            let next = tokio::select! {
                _ = self.cancel.cancelled() => break,
                changed = assignment_rx.changed(), if follow_assignment => {
                    match changed {
                        Ok(()) => {
                            assignment = assignment_rx.borrow_and_update().clone();
                            self.reconcile(&assignment).await;
                        }
                        Err(_) => follow_assignment = false,
                    }
                    continue;
                }
                _ = reconcile.tick() => {
                    self.reconcile(&assignment).await;
                    continue;
                }
                d = commands.recv() => d,
            };
            match next {
                Ok(Some(d)) => {
                    if let Event::PollingJob(cmd) = &d.envelope.event {
                        match cmd {
                            PollingJobCommand::Upsert { job }
                                if job.status == JobStatus::Active
                                    && self.owns(&assignment, job.id) =>
                            {
                                self.start_job(job.clone())
                            }
                            PollingJobCommand::Upsert { job } => self.stop_job(job.id),
                            PollingJobCommand::Delete { id } => self.stop_job(*id),
                        }
                    }
                    let _ = commands.commit(std::slice::from_ref(&d)).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "polling command stream failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.stop_all().await;
    }

    fn start_job(self: &Arc<Self>, job: PollingJob) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if running.contains_key(&job.id) {
            return;
        }
        let token = self.cancel.child_token();
        let this = self.clone();
        let t = token.clone();
        let id = job.id;
        let handle = tokio::spawn(async move { this.run_job(job, t).await });
        running.insert(id, (token, handle));
    }

    fn stop_job(&self, id: Uuid) {
        if let Some((token, _)) = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
        {
            token.cancel();
        }
    }

    async fn stop_all(&self) {
        let jobs: Vec<_> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, (token, handle)) in jobs {
            token.cancel();
            let _ = handle.await;
        }
    }

    async fn run_job(&self, job: PollingJob, cancel: CancellationToken) {
        let period = Duration::from_millis(job.interval_ms.max(1));
        let mut ticker =
            tokio::time::interval_at(Instant::now() + first_delay(&job, now_ns()), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        tracing::debug!(job = %job.id, symbol = %job.symbol, provider = %job.provider, "polling job started");
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
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
