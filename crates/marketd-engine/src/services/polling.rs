//! Polling jobs as a domain operation: checked, stored, then announced on
//! the `polling-jobs` topic, where the worker that owns a job's partition
//! picks it up. Whoever serves the request (an `api` instance) never runs
//! the job itself.

use crate::PollingConfig;
use crate::services::prices::UnknownProvider;
use marketd_bus::{AnyBus, Bus};
use marketd_model::time::now_ns;
use marketd_model::{Event, JobStatus, PollingJob, PollingJobCommand, Symbol};
use marketd_sources::ProviderRegistry;
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::sync::Arc;
use uuid::Uuid;

/// Why a polling-job operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum PollingError {
    /// The request is malformed; the message is safe to show to the caller.
    #[error("{0}")]
    Validation(String),
    #[error("polling job {0} not found")]
    NotFound(Uuid),
    /// The job is stored but its start command could not be published: it
    /// starts when a worker next reconciles (at the latest on a restart).
    #[error("the job was stored but could not be scheduled now; it starts on the next restart")]
    Unavailable(#[source] marketd_bus::Error),
    #[error(transparent)]
    Store(#[from] marketd_store::Error),
}

impl From<UnknownProvider> for PollingError {
    fn from(e: UnknownProvider) -> Self {
        PollingError::Validation(e.to_string())
    }
}

/// What a caller asks for: poll these symbols every `interval_s` seconds.
#[derive(Debug, Clone)]
pub struct NewPolling {
    /// Symbols as written; one job per distinct valid symbol.
    pub symbols: Vec<String>,
    /// Seconds between runs.
    pub interval_s: f64,
    /// Provider to poll (default: the configured default provider).
    pub provider: Option<String>,
}

/// Creates, lists, reads and deletes polling jobs.
#[derive(Debug, Clone)]
pub struct PollingService {
    store: Arc<AnyStore>,
    bus: AnyBus,
    providers: Arc<ProviderRegistry>,
    default_provider: String,
    limits: PollingConfig,
}

impl PollingService {
    pub fn new(
        store: Arc<AnyStore>,
        bus: AnyBus,
        providers: Arc<ProviderRegistry>,
        default_provider: String,
        limits: PollingConfig,
    ) -> Self {
        PollingService {
            store,
            bus,
            providers,
            default_provider,
            limits,
        }
    }

    /// The limits of a request.
    pub fn limits(&self) -> &PollingConfig {
        &self.limits
    }

    /// Checks the request, stores one active job per symbol and announces
    /// each. On a publish failure the jobs stored so far stay (the scheduler
    /// finds them when it next reads the store).
    pub async fn create(&self, req: NewPolling) -> Result<Vec<PollingJob>, PollingError> {
        let (symbols, interval_ms, provider) = self.check(req)?;
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
            self.store.upsert_polling_job(&job).await?;
            self.bus
                .publish(Event::PollingJob(PollingJobCommand::Upsert {
                    job: job.clone(),
                }))
                .await
                .map_err(PollingError::Unavailable)?;
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// The active jobs.
    pub async fn list(&self) -> Result<Vec<PollingJob>, PollingError> {
        Ok(self.store.polling_jobs(false).await?)
    }

    pub async fn get(&self, id: Uuid) -> Result<PollingJob, PollingError> {
        self.store
            .polling_job(id)
            .await?
            .ok_or(PollingError::NotFound(id))
    }

    /// Deletes the job and announces the stop. A stop that cannot be
    /// published is only logged: the job is gone from the store, and the
    /// owner drops it when it next reconciles.
    pub async fn delete(&self, id: Uuid) -> Result<(), PollingError> {
        if !self.store.delete_polling_job(id).await? {
            return Err(PollingError::NotFound(id));
        }
        if let Err(e) = self
            .bus
            .publish(Event::PollingJob(PollingJobCommand::Delete { id }))
            .await
        {
            tracing::warn!(job = %id, error = %e, "job deleted in the store but the stop command was not published");
        }
        Ok(())
    }

    /// The distinct symbols, the interval in milliseconds and the provider,
    /// or the first thing wrong with the request.
    fn check(&self, req: NewPolling) -> Result<(Vec<Symbol>, u64, String), PollingError> {
        let invalid = |m: String| Err(PollingError::Validation(m));
        let limits = &self.limits;
        if req.symbols.is_empty() {
            return invalid("symbols must not be empty".into());
        }
        if req.symbols.len() > limits.max_symbols {
            return invalid(format!(
                "at most {} symbols per request, got {}",
                limits.max_symbols,
                req.symbols.len()
            ));
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(req.symbols.len());
        let mut bad = Vec::new();
        for s in &req.symbols {
            match Symbol::parse(s) {
                Ok(sym) if !symbols.contains(&sym) => symbols.push(sym),
                Ok(_) => {}
                Err(_) => bad.push(s.chars().take(40).collect::<String>()),
            }
        }
        if !bad.is_empty() {
            return invalid(format!("invalid symbols: {bad:?}"));
        }
        // Compared in seconds, as the OpenAPI document states the bounds.
        let (lo, hi) = limits.interval_bounds_s();
        if !(req.interval_s.is_finite() && req.interval_s >= lo && req.interval_s <= hi) {
            return invalid(format!("interval must be between {lo} and {hi} seconds"));
        }
        let ms = req.interval_s * 1000.0;
        let provider = req
            .provider
            .unwrap_or_else(|| self.default_provider.clone());
        UnknownProvider::check(&self.providers, &provider)?;
        Ok((symbols, ms.round() as u64, provider))
    }
}
