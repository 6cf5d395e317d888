//! Domain types of marketd: the one event model every source normalizes into
//! (ticks, bars, moving averages, price requests, polling jobs) and the bus
//! envelope that carries them. No I/O lives here, so every other crate (and a
//! consumer written in another language, via `docs/events.md`) agrees on one
//! vocabulary.

mod access;
mod connectors;
mod decimal;
mod envelope;
mod error;
mod jobs;
mod market;
mod secret;
mod symbol;
mod tda;
pub mod time;

pub use access::{ApiKey, Role, SealedSecret, StoredCredential};
pub use connectors::{
    Connector, ConnectorCommand, ConnectorKind, ConnectorRecord, ConnectorState, ConnectorStatus,
    Desired,
};
pub use decimal::{decimal_number, option_decimal_number};
pub use envelope::{
    BinaryError, Codec, CodecError, Envelope, Event, EventKind, LAYOUT_1, SCHEMA_VERSION, Topic,
};
pub use error::{Error, Result};
pub use jobs::{JobStatus, PollingJob, PollingJobCommand, PriceRequest, RequestOutcome};
pub use market::{Bar, Indicator, Interval, MaKind, Tick, TickKind};
pub use rust_decimal::Decimal;
pub use secret::Secret;
pub use symbol::{SYMBOL_MAX_CHARS, SYMBOL_PATTERN, Symbol};
pub use tda::{TdaJob, TdaJobError, TdaJobStatus, TdaSignal, Upload, UploadFormat};

/// Lossy conversion of an exact price to `f64` for analytics (moving averages).
pub fn rust_decimal_to_f64(d: Decimal) -> f64 {
    use rust_decimal::prelude::ToPrimitive;
    d.to_f64().unwrap_or(f64::NAN)
}
