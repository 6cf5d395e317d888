//! Connectors: user-configured sources (a generic REST API polled on a
//! grid, or a venue's WebSocket stream) that collect into the same tick
//! model as the providers.
//!
//! The model keeps what every layer shares: the stored connector (its
//! definition is an opaque JSON document here, typed and validated by
//! `marketd-sources`, whose types the model cannot name), its commands on
//! the `connectors` topic, its status (also published on
//! `connector-status`) and its collected records.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// How a connector collects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorKind {
    /// An HTTP API polled on a fixed grid, records picked out by a mapping.
    Rest,
    /// A venue's WebSocket stream, decoded by the venue's normalizer.
    Websocket,
}

impl ConnectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorKind::Rest => "rest",
            ConnectorKind::Websocket => "websocket",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rest" => Some(ConnectorKind::Rest),
            "websocket" => Some(ConnectorKind::Websocket),
            _ => None,
        }
    }
}

/// Whether the user wants the connector collecting (set by start/stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    pub fn as_str(self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Desired::Running),
            "stopped" => Some(Desired::Stopped),
            _ => None,
        }
    }
}

/// A stored connector. `spec` is the definition without its secrets (those
/// are sealed in the credential store under [`Connector::credential_name`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connector {
    pub id: Uuid,
    /// Unique among connectors; the `source` of a generic connector's ticks.
    pub name: String,
    pub kind: ConnectorKind,
    /// The definition as the user gave it, secrets removed.
    pub spec: serde_json::Value,
    pub desired: Desired,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Connector {
    /// Where the connector's sealed secrets live in the credential store
    /// (`connectors.<id>.secrets`).
    pub fn credential_name(id: Uuid) -> String {
        format!("connectors.{id}.secrets")
    }
}

/// Commands on the `connectors` topic, keyed by connector id (compacted on
/// Kafka: the last command per connector is its state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ConnectorCommand {
    /// The connector was created, changed, started or stopped: its owner
    /// (re)starts it when `desired` is running, stops it otherwise.
    Upsert {
        connector: Connector,
    },
    Delete {
        id: Uuid,
    },
}

impl ConnectorCommand {
    pub fn connector_id(&self) -> Uuid {
        match self {
            ConnectorCommand::Upsert { connector } => connector.id,
            ConnectorCommand::Delete { id } => *id,
        }
    }
}

/// Where a connector's collection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorState {
    /// Opening its first connection (or making its first request).
    Connecting,
    /// Receiving data.
    Running,
    /// Lost its connection (or its requests fail) and is retrying.
    Reconnecting,
    /// Held back by the upstream's rate limit until `cooldown_until`.
    CoolingDown,
    /// Not collecting, as asked.
    Stopped,
    /// Gave up: the definition cannot work (the status says why).
    Failed,
}

impl ConnectorState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectorState::Connecting => "connecting",
            ConnectorState::Running => "running",
            ConnectorState::Reconnecting => "reconnecting",
            ConnectorState::CoolingDown => "cooling_down",
            ConnectorState::Stopped => "stopped",
            ConnectorState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "connecting" => ConnectorState::Connecting,
            "running" => ConnectorState::Running,
            "reconnecting" => ConnectorState::Reconnecting,
            "cooling_down" => ConnectorState::CoolingDown,
            "stopped" => ConnectorState::Stopped,
            "failed" => ConnectorState::Failed,
            _ => return None,
        })
    }
}

/// A connector's status: stored in `connector_status` (one row a
/// connector, newest wins) and published on `connector-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorStatus {
    pub connector_id: Uuid,
    pub state: ConnectorState,
    /// Connections (or request streaks) lost and re-established.
    pub reconnects: u64,
    /// Trade-id gaps seen (each backfilled where the venue allows).
    pub gaps: u64,
    /// Trades recovered from the venue's REST history to fill gaps.
    #[serde(default)]
    pub backfilled: u64,
    /// Frames or responses received.
    pub messages_received: u64,
    /// Ticks produced.
    pub ticks: u64,
    /// Frames, responses or records rejected.
    pub errors: u64,
    /// Time of the last message, ns since the epoch.
    pub last_message_at: Option<i64>,
    pub last_error: Option<String>,
    /// While cooling down after a 429/418: until when, ns.
    pub cooldown_until: Option<i64>,
    /// When this status was taken, ns.
    pub updated_at: i64,
}

impl ConnectorStatus {
    /// The status of a connector that has not run yet.
    pub fn initial(connector_id: Uuid, state: ConnectorState, now: i64) -> Self {
        ConnectorStatus {
            connector_id,
            state,
            reconnects: 0,
            gaps: 0,
            backfilled: 0,
            messages_received: 0,
            ticks: 0,
            errors: 0,
            last_message_at: None,
            last_error: None,
            cooldown_until: None,
            updated_at: now,
        }
    }
}

/// One collected message of a connector: a REST response or a WebSocket
/// frame, with what was made of it (`connector_data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorRecord {
    /// Increasing per store; the cursor of `GET /connectors/{id}/data`.
    pub seq: i64,
    pub connector_id: Uuid,
    /// When it was received, ns.
    pub received_at: i64,
    /// The ticks made of it (none when every record was rejected or the
    /// request failed).
    #[schema(value_type = Option<Vec<crate::Tick>>)]
    pub data: serde_json::Value,
    /// The response or frame as received (text).
    pub raw: String,
    /// Why (part of) it was rejected.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_stored_or_published_before_backfill_reads_with_zero_backfilled() {
        let id = Uuid::nil();
        let old = serde_json::json!({
            "connector_id": id, "state": "running", "reconnects": 1, "gaps": 2,
            "messages_received": 10, "ticks": 9, "errors": 0, "last_message_at": null,
            "last_error": null, "cooldown_until": null, "updated_at": 5
        });
        let s: ConnectorStatus = serde_json::from_value(old).unwrap();
        assert_eq!((s.gaps, s.backfilled), (2, 0));
        let mut now = ConnectorStatus::initial(id, ConnectorState::Running, 5);
        now.backfilled = 3;
        assert_eq!(serde_json::to_value(&now).unwrap()["backfilled"], 3);
    }
}
