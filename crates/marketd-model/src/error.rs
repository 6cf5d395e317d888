use thiserror::Error;

/// Validation errors raised while building model values from outside input.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error(
        "invalid symbol {0:?}: expected 1-32 characters of A-Z, 0-9, '.', '-', '_', '=', '^', optionally BASE-QUOTE"
    )]
    InvalidSymbol(String),
    #[error("unknown interval {0:?}: expected one of 1s, 1m, 5m, 1h, 1d")]
    InvalidInterval(String),
    #[error("unknown moving-average kind {0:?}: expected sma or ema")]
    InvalidMaKind(String),
    #[error("invalid tick: {0}")]
    InvalidTick(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
