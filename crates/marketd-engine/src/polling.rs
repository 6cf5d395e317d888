//! Polling jobs: each active job fetches its symbol from its provider on a
//! fixed grid (`created_at + k·interval`), so runs never drift and a restart
//! resumes on the same grid. Jobs live in the store (they survive restarts)
//! and changes arrive as commands on the `polling-jobs` topic.

use crate::price::PriceService;
use marketd_bus::{AnyConsumer, Consumer};
use marketd_model::time::{NANOS_PER_MILLI, now_ns};
use marketd_model::{Event, JobStatus, PollingJob, PollingJobCommand};
use marketd_store::{AnyStore, Store};
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

/// Runs the active polling jobs of this process.
pub struct PollingScheduler {
    store: Arc<AnyStore>,
    prices: Arc<PriceService>,
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
        cancel: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(PollingScheduler {
            store,
            prices,
            running: Mutex::new(HashMap::new()),
            cancel,
        })
    }

    /// Number of jobs running in this process.
    pub fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Starts every active job in the store, then follows the command topic
    /// until it closes or the scheduler is cancelled.
    pub async fn run(self: Arc<Self>, mut commands: AnyConsumer) {
        match self.store.polling_jobs(false).await {
            Ok(jobs) => {
                tracing::info!(jobs = jobs.len(), "resuming polling jobs");
                for job in jobs {
                    self.start_job(job);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not load polling jobs"),
        }
        loop {
            let next = tokio::select! {
                _ = self.cancel.cancelled() => break,
                d = commands.recv() => d,
            };
            match next {
                Ok(Some(d)) => {
                    if let Event::PollingJob(cmd) = &d.envelope.event {
                        match cmd {
                            PollingJobCommand::Upsert { job }
                                if job.status == JobStatus::Active =>
                            {
                                self.start_job(job.clone())
                            }
                            PollingJobCommand::Upsert { job } => self.stop_job(job.id),
                            PollingJobCommand::Delete { id } => self.stop_job(*id),
                        }
                    }
                    let _ = commands.commit(&d).await;
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
