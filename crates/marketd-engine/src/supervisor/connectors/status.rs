//! A running connector's status: counted as it collects, stored in
//! `connector_status` and published on `connector-status` when its state
//! changes and at most once per [`REPORT_EVERY`] otherwise, so a busy feed
//! costs one status write a second, not one per message.

use marketd_bus::{AnyBus, Bus};
use marketd_model::time::now_ns;
use marketd_model::{ConnectorState, ConnectorStatus, Event};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Longest time between two reports of a connector whose counters move.
pub const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Keeps one connector's [`ConnectorStatus`] and reports it.
pub struct StatusReporter {
    status: ConnectorStatus,
    store: Arc<AnyStore>,
    bus: AnyBus,
    last_report: Option<Instant>,
    dirty: bool,
}

impl StatusReporter {
    /// Starts from the stored status (counters keep counting across
    /// restarts and moves between workers).
    pub fn new(id: Uuid, store: Arc<AnyStore>, bus: AnyBus) -> Self {
        StatusReporter {
            status: ConnectorStatus::initial(id, ConnectorState::Connecting, now_ns()),
            store,
            bus,
            last_report: None,
            dirty: false,
        }
    }

    /// Loads the stored counters; call once before the first report.
    pub async fn resume(&mut self) {
        match self.store.connector_status(self.status.connector_id).await {
            Ok(Some(s)) => {
                let state = self.status.state;
                self.status = ConnectorStatus { state, ..s };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connector = %self.status.connector_id, error = %e, "could not read the stored status; counting from zero")
            }
        }
    }

    pub fn status(&self) -> &ConnectorStatus {
        &self.status
    }

    /// Changes the state and reports at once.
    pub async fn set_state(&mut self, state: ConnectorState) {
        if self.status.state != state {
            self.status.state = state;
            if state != ConnectorState::CoolingDown {
                self.status.cooldown_until = None;
            }
            self.report().await;
        } else {
            self.maybe_report().await;
        }
    }

    /// Records a failure that ends the run.
    pub async fn fail(&mut self, error: &str) {
        self.status.last_error = Some(error.to_string());
        self.status.errors += 1;
        self.status.state = ConnectorState::Failed;
        self.report().await;
    }

    /// Updates the counters with `f` without reporting: the caller reports
    /// next (e.g. through [`set_state`](Self::set_state), which reports what
    /// changed once, not twice).
    pub fn apply(&mut self, f: impl FnOnce(&mut ConnectorStatus)) {
        f(&mut self.status);
        self.dirty = true;
    }

    /// Updates the counters with `f`; reported within [`REPORT_EVERY`].
    pub async fn update(&mut self, f: impl FnOnce(&mut ConnectorStatus)) {
        f(&mut self.status);
        self.dirty = true;
        self.maybe_report().await;
    }

    /// Reports if the counters moved and the last report is old enough.
    pub async fn maybe_report(&mut self) {
        let due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= REPORT_EVERY);
        if self.dirty && due {
            self.report().await;
        }
    }

    /// Stores and publishes the status now. Failures are logged: a status
    /// is advisory, and the next report repairs a lost one.
    pub async fn report(&mut self) {
        self.status.updated_at = now_ns().max(self.status.updated_at + 1);
        self.last_report = Some(Instant::now());
        self.dirty = false;
        let id = self.status.connector_id;
        if let Err(e) = self.store.put_connector_status(&self.status).await {
            tracing::warn!(connector = %id, error = %e, "could not store the connector status");
        }
        if let Err(e) = self
            .bus
            .publish(Event::ConnectorStatus(self.status.clone()))
            .await
        {
            tracing::warn!(connector = %id, error = %e, "could not publish the connector status");
        }
    }
}
