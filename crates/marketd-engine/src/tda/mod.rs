//! The persistent-homology service's problems: what a request asks
//! (`problem`), how one is computed with cancellation and progress (`run`),
//! and the limits of `[tda]` (here). The HTTP handlers and the job workers
//! both go through [`crate::services::tda::TdaService`] and
//! [`crate::supervisor::tda_jobs`], which use these.

pub mod problem;
pub mod run;

use serde::{Deserialize, Serialize};

/// `[tda]`: limits of the synchronous endpoint, the jobs and the uploads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TdaConfig {
    /// Most points (or matrix rows) of any problem.
    pub max_points: usize,
    /// Most coordinates per point.
    pub max_coordinates: usize,
    /// Highest homology dimension a request may ask for.
    pub max_dim: usize,
    /// Largest problem answered synchronously, in (max_dim+1)-simplices of
    /// the complete complex, C(n, max_dim + 2): a bigger one becomes a job
    /// (202 with its `Location`).
    pub sync_max_simplices: f64,
    /// Synchronous computations running at once in one process (0: as
    /// many as the machine has cores); more wait.
    pub max_concurrent: usize,
    /// Synchronous results kept in memory, keyed by a hash of input and
    /// parameters.
    pub cache_entries: u64,
    /// How long a finished job's result is kept, seconds.
    pub result_ttl_secs: u64,
    /// Runs of a job before it fails for good (a worker that died counts).
    pub max_attempts: u32,
    /// Largest upload, bytes.
    pub max_upload_bytes: usize,
    /// `[tda.stream]`: streaming topological signals over baskets of symbols.
    pub stream: crate::tda_stream::TdaStreamConfig,
}

impl Default for TdaConfig {
    fn default() -> Self {
        TdaConfig {
            max_points: 20_000,
            max_coordinates: 1_000,
            max_dim: 4,
            sync_max_simplices: 2.0e8,
            max_concurrent: 0,
            cache_entries: 1_024,
            result_ttl_secs: 86_400,
            max_attempts: 3,
            max_upload_bytes: 64 * 1024 * 1024,
            stream: crate::tda_stream::TdaStreamConfig::default(),
        }
    }
}

/// Errors of a problem, with the request field (or input position) they
/// are about.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProblemError {
    /// The request is malformed or asks for something unsupported (422).
    #[error("{0}")]
    Invalid(String),
    /// The input exceeds a configured limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// The upload named does not exist (404).
    #[error("upload {0} not found")]
    UploadNotFound(uuid::Uuid),
    /// The computation was canceled.
    #[error("canceled")]
    Canceled,
    /// The computation failed (its input passed the checks).
    #[error("{0}")]
    Failed(String),
}
