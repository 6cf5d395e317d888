use crate::Symbol;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// How an on-demand latest-price request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Fetched from the provider.
    Provider,
    /// The provider failed; answered with the last stored tick (stale).
    Store,
    /// Neither the provider nor the store had a price.
    Error,
}

impl RequestOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestOutcome::Provider => "provider",
            RequestOutcome::Store => "store",
            RequestOutcome::Error => "error",
        }
    }
}

/// A cache miss of `GET /prices/latest`: logged on `price-requests` and
/// stored in `price_requests` (the seeds' request log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PriceRequest {
    pub id: Uuid,
    pub symbol: Symbol,
    #[schema(value_type = String)]
    pub provider: Arc<str>,
    pub requested_at: i64,
    pub outcome: RequestOutcome,
    pub latency_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Lifecycle of a polling job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Active,
    Deleted,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Active => "active",
            JobStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(JobStatus::Active),
            "deleted" => Some(JobStatus::Deleted),
            _ => None,
        }
    }
}

/// A polling job: fetch `symbol` from `provider` every `interval_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PollingJob {
    pub id: Uuid,
    pub symbol: Symbol,
    pub provider: String,
    pub interval_ms: u64,
    pub status: JobStatus,
    pub created_at: i64,
    pub run_count: u64,
    pub error_count: u64,
    #[serde(default)]
    pub last_run_at: Option<i64>,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Commands on the `polling-jobs` topic, keyed by job id (compacted on Kafka:
/// the last command per job is its state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PollingJobCommand {
    Upsert { job: PollingJob },
    Delete { id: Uuid },
}

impl PollingJobCommand {
    pub fn job_id(&self) -> Uuid {
        match self {
            PollingJobCommand::Upsert { job } => job.id,
            PollingJobCommand::Delete { id } => *id,
        }
    }
}
