//! `marketd connectors list|start|stop`: the connector service (the one
//! the HTTP handlers call) on the configured store and bus.
//!
//! `start`/`stop` store the desired state and announce it on the bus, as
//! `POST /api/v1/connectors/{id}/start|stop` do. With Kafka the owning
//! worker acts at once; with the in-process bus of another `serve` the
//! announcement does not reach it, and its supervisor picks the change up
//! from the store on its next reconcile (every 15 s).

use crate::config::Config;
use marketd_engine::services::access::AccessService;
use marketd_engine::services::connectors::{ConnectorError, ConnectorService};
use marketd_model::{Connector, Desired};
use marketd_store::prelude::*;
use std::sync::Arc;

/// What to do.
#[derive(Debug, Clone)]
pub enum Action {
    List,
    /// By id or name.
    Start(String),
    Stop(String),
}

/// Runs `action`, printing its result on standard output.
pub async fn run(action: Action, cfg: &Config) -> anyhow::Result<()> {
    let store = Arc::new(crate::open_store(cfg).await?);
    let bus = crate::connect_bus(cfg).await?;
    let access = AccessService::new(store.clone(), Arc::new(crate::keyring(cfg)?));
    let service = ConnectorService::new(store.clone(), bus, access, cfg.services().max_page);
    let result = match action {
        Action::List => list(&service).await,
        Action::Start(which) => set(&service, &which, Desired::Running).await,
        Action::Stop(which) => set(&service, &which, Desired::Stopped).await,
    };
    store.close().await;
    result
}

async fn list(service: &ConnectorService) -> anyhow::Result<()> {
    let connectors = service.list().await?;
    println!(
        "{:<36}  {:<24}  {:<9}  {:<15}  {:<7}  STATUS",
        "ID", "NAME", "KIND", "VENUE", "DESIRED"
    );
    for c in connectors {
        let status = service.status(c.id).await?;
        println!(
            "{:<36}  {:<24}  {:<9}  {:<15}  {:<7}  {}",
            c.id,
            c.name,
            c.kind.as_str(),
            c.spec["venue"].as_str().unwrap_or("-"),
            c.desired.as_str(),
            status.state.as_str()
        );
    }
    Ok(())
}

async fn set(service: &ConnectorService, which: &str, desired: Desired) -> anyhow::Result<()> {
    let connector = find(service, which).await?;
    let verb = match desired {
        Desired::Running => "start",
        Desired::Stopped => "stop",
    };
    match service.set_desired(connector.id, desired).await {
        Ok(c) => println!(
            "connector {} ({}) desired state: {}",
            c.id,
            c.name,
            c.desired.as_str()
        ),
        // Stored, not announced: the owner follows on its next reconcile.
        Err(e @ ConnectorError::Unavailable(_)) => {
            println!(
                "connector {} ({}) desired state: {} ({e})",
                connector.id,
                connector.name,
                desired.as_str()
            );
        }
        Err(e) => return Err(anyhow::anyhow!("cannot {verb} connector {which}: {e}")),
    }
    Ok(())
}

/// The connector named or numbered `which`.
async fn find(service: &ConnectorService, which: &str) -> anyhow::Result<Connector> {
    if let Ok(id) = which.parse::<uuid::Uuid>() {
        return Ok(service.get(id).await?);
    }
    service
        .list()
        .await?
        .into_iter()
        .find(|c| c.name == which)
        .ok_or_else(|| anyhow::anyhow!("no connector has the id or name {which:?}"))
}
