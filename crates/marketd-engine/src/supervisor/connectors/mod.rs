//! Connectors as a unit kind of the [`Supervisor`]: stored in the store,
//! announced on the `connectors` topic (consumer group `connectors`), run
//! by the worker whose partition holds their id, moved by a rebalance when
//! that worker dies (the new owner reloads them from the store).
//!
//! A unit's run opens the connector's sealed secrets, then collects: a REST
//! connector polls on a fixed grid (`rest.rs`), a WebSocket connector keeps
//! a venue session (`websocket.rs`) whose trade-id gaps a worker fills from
//! the venue's REST history (`backfill.rs`). Both hand ticks to the `ticks` topic
//! through a [`TickPublisher`](crate::feeds::TickPublisher) (same identity
//! rules as every feed, so a redelivery never duplicates) and report their
//! [`ConnectorStatus`] through a [`StatusReporter`] (`status.rs`), which
//! stores it and publishes it on `connector-status`.

mod archive;
mod backfill;
mod rest;
mod status;
mod websocket;

pub use status::StatusReporter;

use super::{Command, Supervisor, UnitKind, UnitResult};
use crate::services::connectors::{ConnectorService, rest_definition, ws_definition};
use marketd_bus::AnyBus;
use marketd_model::{
    Connector, ConnectorCommand, ConnectorKind, ConnectorState, Desired, Envelope, Event, Topic,
};
use marketd_sources::connectors::{HostLimiters, HostRate, RetryPolicy};
use marketd_sources::ws::ConnectLimiters;
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Runs the connectors this process owns.
pub type ConnectorSupervisor = Supervisor<Connectors>;

/// The connector unit kind.
pub struct Connectors {
    store: Arc<AnyStore>,
    bus: AnyBus,
    service: ConnectorService,
    shared: Shared,
}

/// What every connector of a process shares: one HTTP client (its
/// connection pool) and one rate limiter per upstream host, so connectors
/// calling the same API share its budget.
pub(crate) struct Shared {
    store: Arc<AnyStore>,
    bus: AnyBus,
    http: reqwest::Client,
    limiters: HostLimiters,
    retry: RetryPolicy,
    ws_limiters: Arc<ConnectLimiters>,
}

impl Connectors {
    pub fn new(store: Arc<AnyStore>, bus: AnyBus, service: ConnectorService) -> Self {
        let shared = Shared {
            store: store.clone(),
            bus: bus.clone(),
            http: reqwest::Client::builder()
                .user_agent(concat!("marketd/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default(),
            limiters: HostLimiters::new(HostRate::default()),
            retry: RetryPolicy::default(),
            ws_limiters: ConnectLimiters::global(),
        };
        Connectors {
            store,
            bus,
            service,
            shared,
        }
    }
}

impl UnitKind for Connectors {
    type Unit = Connector;
    const NAME: &'static str = "connector";
    const TOPIC: Topic = Topic::Connectors;
    const GROUP: &'static str = "connectors";
    const RUNNING_GAUGE: &'static str = "marketd_connectors_running";

    fn id(c: &Connector) -> Uuid {
        c.id
    }

    /// Every change (`PUT`, start, stop) moves `updated_at` forward, so a
    /// running connector whose definition (or sealed secrets) changed
    /// restarts with it; a `start` sent to a running connector changes
    /// nothing and keeps its version, so it does not restart.
    fn version(c: &Connector) -> i64 {
        c.updated_at
    }

    async fn load(&self) -> marketd_store::Result<Vec<Connector>> {
        let all = self.store.connectors().await?;
        Ok(all
            .into_iter()
            .filter(|c| c.desired == Desired::Running)
            .collect())
    }

    fn command(&self, envelope: &Envelope) -> Option<Command<Connector>> {
        let Event::Connector(cmd) = &envelope.event else {
            return None;
        };
        Some(match cmd {
            ConnectorCommand::Upsert { connector } if connector.desired == Desired::Running => {
                Command::Start(connector.clone())
            }
            ConnectorCommand::Upsert { connector } => Command::Stop(connector.id),
            ConnectorCommand::Delete { id } => Command::Stop(*id),
        })
    }

    /// Collects until cancelled. Upstream failures are the collector's to
    /// retry (they show in the status); an error returned here (a definition
    /// that cannot run, secrets that cannot be opened) is a unit failure the
    /// supervisor restarts with backoff.
    async fn run(self: Arc<Self>, connector: Connector, cancel: CancellationToken) -> UnitResult {
        let id = connector.id;
        let mut status = StatusReporter::new(id, self.store.clone(), self.bus.clone());
        status.resume().await;
        status.set_state(ConnectorState::Connecting).await;
        let result = self.collect(connector, &mut status, cancel).await;
        match &result {
            Ok(()) => status.set_state(ConnectorState::Stopped).await,
            Err(e) => status.fail(&e.to_string()).await,
        }
        result
    }
}

impl Connectors {
    async fn collect(
        &self,
        connector: Connector,
        status: &mut StatusReporter,
        cancel: CancellationToken,
    ) -> UnitResult {
        let opened = self.service.open(connector).await?;
        let spec: serde_json::Value = serde_json::from_str(opened.spec.expose())?;
        let c = &opened.connector;
        tracing::info!(connector = %c.id, name = %c.name, kind = c.kind.as_str(), "connector running");
        match c.kind {
            ConnectorKind::Rest => {
                let def = rest_definition(&spec)?;
                let source: Arc<str> = c.name.as_str().into();
                rest::run(&self.shared, c.id, source, def, status, cancel).await
            }
            ConnectorKind::Websocket => {
                let def = ws_definition(&spec)?;
                websocket::run(&self.shared, c.id, def, status, cancel).await
            }
        }
    }
}
