//! The simulated market: per-symbol geometric Brownian motion, seeded and
//! deterministic, with realistic tick sizes, trade sizes and volatilities.
//!
//! - [`SimulatedMarket`] holds one random walk per symbol. Each symbol's
//!   random stream is derived from the seed and the symbol alone, so adding a
//!   symbol never changes another's prices; the same seed and the same call
//!   sequence always give the same ticks.
//! - An optional [`Regime`] change: from a given time, the walks of some
//!   symbols move more and share a common factor (volatility and
//!   cross-correlation jump), so derived signals can be seen to react.
//! - [`SimulatedFeed`] streams trades for a set of symbols at a configured
//!   rate (Poisson arrivals on an absolute schedule, so no drift accumulates).
//! - [`SimulatedProvider`] answers `latest` (and synthetic `history`) for any
//!   valid symbol, so polling jobs with provider `simulated` always work.

mod feed;
mod market;
mod provider;
#[cfg(test)]
mod tests;
mod walk;

pub use feed::SimulatedFeed;
pub use market::{Regime, SimulatedMarket};
pub use provider::{MAX_HISTORY_BARS, SimulatedProvider};

/// The simulated provider's name, and the source of its ticks.
pub const NAME: &str = "simulated";
