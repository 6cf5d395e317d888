//! The pure building blocks of generic REST connectors: a connector is a
//! [`RequestSpec`] (what to send, with [`UpstreamAuth`]) polled on an
//! interval, whose answers a [`FieldMapping`] turns into ticks. This module
//! holds no store, bus or API code: the engine's connector unit kind and the
//! connector service put these together.
//!
//! - [`auth`]: API key, bearer, basic, Binance and OKX HMAC signing; secrets
//!   are [`marketd_model::Secret`]s, listed by [`UpstreamAuth::secrets`].
//! - [`mapping`]: JSONPath (RFC 9535) field mapping compiled once, records
//!   to [`marketd_model::Tick`]s with per-record errors.
//! - [`request`]: the spec, its validation, building and one exchange
//!   ([`fetch_once`]) with the answer classified.
//! - [`retry`]: jittered backoff honouring `Retry-After`, per-host rate
//!   limiters ([`HostLimiters`]), and [`fetch_with_retry`].

pub mod auth;
pub mod mapping;
pub mod request;
pub mod retry;

pub use auth::{AuthError, KeyLocation, REDACTED, UpstreamAuth};
pub use mapping::{
    CompiledMapping, ExtractContext, FieldMapping, MappedTrade, MappingError, RecordError, Side,
    TsUnit,
};
pub use request::{
    FetchError, FetchOutcome, FieldError, HttpMethod, MAX_TIMEOUT, MIN_TIMEOUT, RequestSpec,
    ResponseClass, ValidationErrors, classify, fetch_once, parse_retry_after,
};
pub use retry::{Fetched, HostLimiters, HostRate, RetryPolicy, fetch_with_retry, host_key};
