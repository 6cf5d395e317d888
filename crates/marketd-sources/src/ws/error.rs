//! Why a connection attempt or a connection failed. The messages are what
//! the status's `last_error` shows an operator, so they say what happened
//! and where, never with a URL's query string (it may carry a token).

use std::time::Duration;

/// A session error: the reason of one failed attempt or lost connection,
/// or (for [`WsError::InvalidUrl`] and [`WsError::GaveUp`]) why the session
/// stopped for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("invalid WebSocket URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("connecting to {host} timed out after {after:?}")]
    ConnectTimeout { host: String, after: Duration },
    #[error("connecting to {host} failed: {reason}")]
    Connect { host: String, reason: String },
    #[error("{host} refused the WebSocket upgrade with HTTP {status}")]
    Upgrade { host: String, status: u16 },
    #[error("{host} rate-limited the connection (HTTP {status}); cooling down for {cooldown:?}")]
    RateLimited {
        host: String,
        status: u16,
        cooldown: Duration,
    },
    #[error("no message from the server for {0:?}")]
    Idle(Duration),
    #[error("no pong within {0:?} of the keepalive ping")]
    PongTimeout(Duration),
    #[error("the server closed the connection ({0})")]
    Closed(String),
    #[error("WebSocket error: {0}")]
    Socket(String),
    #[error("the venue said we are over its limits; cooling down for {0:?}")]
    InBandRateLimit(Duration),
    #[error("gave up after {failures} consecutive failures; last: {last}")]
    GaveUp { failures: u32, last: Box<WsError> },
}

impl WsError {
    /// A short, stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            WsError::InvalidUrl { .. } => "invalid_url",
            WsError::ConnectTimeout { .. } => "connect_timeout",
            WsError::Connect { .. } => "connect",
            WsError::Upgrade { .. } => "upgrade",
            WsError::RateLimited { .. } => "rate_limited",
            WsError::Idle(_) => "idle",
            WsError::PongTimeout(_) => "pong_timeout",
            WsError::Closed(_) => "closed",
            WsError::Socket(_) => "socket",
            WsError::InBandRateLimit(_) => "rate_limited",
            WsError::GaveUp { .. } => "gave_up",
        }
    }
}
