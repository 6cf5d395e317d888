//! Persistent-homology work as resources and events: uploaded inputs, jobs
//! (stored in `tda_jobs`, every transition published on `jobs` keyed by job
//! id) and the streaming topological signals (`tda_signals`, published on
//! `tda-signals` keyed by basket).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Lifecycle of a job: `queued` → `running` → `succeeded` | `failed` |
/// `canceled` (a queued job may be canceled before it runs; a running job
/// whose worker dies goes back to `queued` until its attempts run out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TdaJobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl TdaJobStatus {
    pub const ALL: [TdaJobStatus; 5] = [
        TdaJobStatus::Queued,
        TdaJobStatus::Running,
        TdaJobStatus::Succeeded,
        TdaJobStatus::Failed,
        TdaJobStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TdaJobStatus::Queued => "queued",
            TdaJobStatus::Running => "running",
            TdaJobStatus::Succeeded => "succeeded",
            TdaJobStatus::Failed => "failed",
            TdaJobStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        TdaJobStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the job is over (no further transition).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TdaJobStatus::Succeeded | TdaJobStatus::Failed | TdaJobStatus::Canceled
        )
    }
}

/// Why a job failed, in the API's error shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TdaJobError {
    pub error_code: String,
    pub detail: String,
}

/// A job as the API answers it and as `jobs` carries it (every transition,
/// progress included). Its request and result are stored beside it and
/// served by their own routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TdaJob {
    pub id: Uuid,
    /// `vietoris-rips`, or a summary/distance kind (docs/tda.md).
    pub kind: String,
    pub status: TdaJobStatus,
    /// Fraction done, 0 to 1.
    pub progress: f64,
    /// What the job is doing: `queued`, `distances`, `h0`, `h1`, ...,
    /// `summaries`, `done`.
    pub stage: String,
    /// Runs started (a worker that died mid-run counts one).
    pub attempts: u32,
    pub max_attempts: u32,
    /// The upload the input came from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<Uuid>,
    /// Times in ns since the epoch.
    pub submitted_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub updated_at: i64,
    /// When a finished job's result is dropped (410 after).
    pub expires_at: Option<i64>,
    pub error: Option<TdaJobError>,
    /// Cancellation was asked for and the job has not stopped yet.
    #[serde(default)]
    pub cancel_requested: bool,
}

/// What an upload holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UploadFormat {
    /// Rows of coordinates (CSV or whitespace separated).
    PointCloud,
    /// Full square distance matrix.
    DistanceMatrix,
    /// Lower-triangular distance matrix (Ripser's default input).
    LowerDistance,
    /// Upper-triangular distance matrix.
    UpperDistance,
    /// `i j d` triples of a sparse matrix.
    Sparse,
    /// DIPHA's binary distance matrix.
    Dipha,
    /// Ripser's binary lower-triangular format (little-endian f32).
    Binary,
}

impl UploadFormat {
    pub const ALL: [UploadFormat; 7] = [
        UploadFormat::PointCloud,
        UploadFormat::DistanceMatrix,
        UploadFormat::LowerDistance,
        UploadFormat::UpperDistance,
        UploadFormat::Sparse,
        UploadFormat::Dipha,
        UploadFormat::Binary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UploadFormat::PointCloud => "point-cloud",
            UploadFormat::DistanceMatrix => "distance-matrix",
            UploadFormat::LowerDistance => "lower-distance",
            UploadFormat::UpperDistance => "upper-distance",
            UploadFormat::Sparse => "sparse",
            UploadFormat::Dipha => "dipha",
            UploadFormat::Binary => "binary",
        }
    }

    /// A format by name; `distance` (Ripser's name) is `distance-matrix`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "distance" {
            return Some(UploadFormat::DistanceMatrix);
        }
        UploadFormat::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether the bytes are binary (not text with lines and columns).
    pub fn is_binary(self) -> bool {
        matches!(self, UploadFormat::Dipha | UploadFormat::Binary)
    }
}

/// A stored input (its bytes are kept beside it, not in this record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Upload {
    pub id: Uuid,
    pub format: UploadFormat,
    /// The name the client gave (a multipart file name), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Bytes.
    pub size: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
    /// Points (or matrix rows).
    pub points: u64,
    /// Coordinates per point (0 for matrices).
    pub dimension: u64,
    pub created_at: i64,
}

/// One window of a streaming basket's topological signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TdaSignal {
    pub basket: String,
    /// The window's first and last bar (their start times, ns); one signal
    /// per (basket, window_end), whatever redelivery or restart happens.
    pub window_start: i64,
    pub window_end: i64,
    /// Points in the window's cloud.
    pub points: u32,
    /// H1 bars of the window.
    pub h1_bars: u32,
    /// Exact L1 and L2 norms of the H1 persistence landscape.
    pub landscape_l1: f64,
    pub landscape_l2: f64,
    /// Persistence entropy of H1 (natural log).
    pub entropy: f64,
    /// 2-Wasserstein distance of H1 to the previous window's.
    pub wasserstein: Option<f64>,
    /// Realized volatility of the window's returns (mean over symbols of
    /// the standard deviation of log returns), for comparison.
    pub volatility: f64,
    /// Robust z-score of `landscape_l1` against the preceding windows
    /// (median and MAD); `None` while too few are known.
    pub zscore: Option<f64>,
    /// The alarm's state after this window.
    pub alarm: bool,
    /// This window raised the alarm (it was off before).
    pub alarm_raised: bool,
    /// When the signal was computed, ns.
    pub emitted_at: i64,
}
