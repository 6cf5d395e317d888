use thiserror::Error;

/// Why a provider could not answer. The API maps these onto status codes:
/// `SymbolNotFound` → 404, `RateLimited`/`Upstream`/`Timeout`/`Malformed` → 502.
///
/// No variant ever carries a credential: upstream URLs are stripped from
/// transport errors and tokens travel only in request headers.
#[derive(Debug, Error)]
pub enum Error {
    #[error("symbol {0} not found at the provider")]
    SymbolNotFound(String),
    #[error("provider rate limit exceeded")]
    RateLimited,
    #[error("provider answered HTTP {status}")]
    Upstream { status: u16 },
    #[error("provider did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("malformed provider response: {0}")]
    Malformed(String),
    #[error("transport error: {0}")]
    Transport(String),
    #[error("{0} is not supported by this provider")]
    Unsupported(&'static str),
    #[error("invalid provider configuration: {0}")]
    Config(String),
    #[error("replay source error: {0}")]
    Replay(String),
    #[error("circuit open after repeated provider failures (next attempt in {retry_in:?})")]
    CircuitOpen { retry_in: std::time::Duration },
}

impl Error {
    /// Whether a retry may succeed (throttling, server errors, timeouts, transport).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::RateLimited
                | Error::Upstream { status: 500..=599 }
                | Error::Timeout(_)
                | Error::Transport(_)
        )
    }

    /// A short, stable label for metrics (`kind` label of
    /// `marketd_provider_errors_total`) and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::SymbolNotFound(_) => "symbol_not_found",
            Error::RateLimited => "rate_limited",
            Error::Upstream { .. } => "upstream",
            Error::Timeout(_) => "timeout",
            Error::Malformed(_) => "malformed",
            Error::Transport(_) => "transport",
            Error::Unsupported(_) => "unsupported",
            Error::Config(_) => "config",
            Error::Replay(_) => "replay",
            Error::CircuitOpen { .. } => "circuit_open",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
