//! Configuration of the providers and of the simulated and replay feeds.
//! The doc comment of every field documents its key in `marketd.example.toml`.

use marketd_model::{Secret, Symbol};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Default seed of the simulated market: same seed, same prices.
pub const DEFAULT_SEED: u64 = 42;

/// `[providers]`: the on-demand price providers (`GET /prices/latest?provider=`,
/// polling jobs). The simulated provider is always present; the others are
/// present only when enabled.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// `[providers.simulated]`: the built-in simulated market (always enabled).
    pub simulated: SimulatedProviderConfig,
    /// `[providers.finnhub]`: Finnhub REST quotes (needs an API key).
    pub finnhub: FinnhubConfig,
    /// `[providers.yahoo]`: Yahoo Finance chart API (unofficial, no key).
    pub yahoo: YahooConfig,
    /// `[providers.circuit_breaker]`: applies to each upstream provider.
    pub circuit_breaker: crate::CircuitBreakerConfig,
}

impl ProvidersConfig {
    /// The config key of every credential a provider can take, enabled or
    /// not: the names under which the credential store may hold them.
    pub const CREDENTIAL_KEYS: &'static [&'static str] = &["providers.finnhub.api_key"];

    /// The credential slots of the enabled providers, each with its config
    /// key (one of [`ProvidersConfig::CREDENTIAL_KEYS`]), so that a caller
    /// can fill the empty ones (from the encrypted credential store) without
    /// naming a provider.
    pub fn credential_slots(&mut self) -> Vec<(&'static str, &mut Option<Secret>)> {
        let mut slots = Vec::new();
        if self.finnhub.enabled {
            slots.push((Self::CREDENTIAL_KEYS[0], &mut self.finnhub.api_key));
        }
        slots
    }
}

/// `[providers.simulated]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedProviderConfig {
    /// Seed of the simulated market's random walks: the same seed and the same
    /// sequence of requests give the same prices.
    pub seed: u64,
}

impl Default for SimulatedProviderConfig {
    fn default() -> Self {
        SimulatedProviderConfig { seed: DEFAULT_SEED }
    }
}

/// `[providers.finnhub]`
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FinnhubConfig {
    /// Register the Finnhub provider (requires `api_key`).
    pub enabled: bool,
    /// Base URL of the Finnhub REST API.
    pub base_url: String,
    /// Finnhub API token, sent in the `X-Finnhub-Token` header; never logged
    /// (set it with `MARKETD__PROVIDERS__FINNHUB__API_KEY` rather than in a file).
    pub api_key: Option<Secret>,
    /// Requests allowed per minute (client-side token bucket; the free plan allows 60).
    pub rate_limit_per_minute: u32,
    /// Timeout of one HTTP attempt, in milliseconds; also bounds the wait for a rate-limit token.
    pub timeout_ms: u64,
    /// Retries after a 429, a 5xx or a transport error (exponential backoff with full jitter).
    pub max_retries: u32,
}

impl Default for FinnhubConfig {
    fn default() -> Self {
        FinnhubConfig {
            enabled: false,
            base_url: "https://finnhub.io/api/v1".into(),
            api_key: None,
            rate_limit_per_minute: 60,
            timeout_ms: 5_000,
            max_retries: 3,
        }
    }
}

impl FinnhubConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// `[providers.yahoo]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct YahooConfig {
    /// Register the Yahoo Finance provider (an unofficial endpoint; off by default).
    pub enabled: bool,
    /// Base URL of the Yahoo Finance API (`query1` or `query2` host).
    pub base_url: String,
    /// Timeout of one HTTP attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Retries after a 429, a 5xx or a transport error (exponential backoff with full jitter).
    pub max_retries: u32,
}

impl Default for YahooConfig {
    fn default() -> Self {
        YahooConfig {
            enabled: false,
            base_url: "https://query2.finance.yahoo.com".into(),
            timeout_ms: 5_000,
            max_retries: 3,
        }
    }
}

impl YahooConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The simulated market feed: a stream of trades for a set of symbols, so a
/// fresh install has live data at once.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedFeedConfig {
    /// Run the simulated feed.
    pub enabled: bool,
    /// Symbols to simulate (canonical spelling: `AAPL`, `BTC-USDT`).
    pub symbols: Vec<Symbol>,
    /// Average trades per second, per symbol (arrivals are randomly spaced around this rate).
    pub ticks_per_second: f64,
    /// Seed of the random arrival times (prices come from the simulated market's own seed).
    pub seed: u64,
    /// `[feeds.simulated.regime]`: an optional regime change of the market
    /// (unset: the walks keep their volatility and stay independent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regime: Option<RegimeConfig>,
}

/// When a regime change happens: an RFC 3339 time, or seconds after start.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RegimeAt {
    SecondsAfterStart(f64),
    Time(String),
}

/// A regime change of the simulated market: from `at` on, the walks of
/// `symbols` move `volatility_factor` times as much and their increments
/// share a common factor with pairwise correlation `correlation`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeConfig {
    pub at: RegimeAt,
    pub symbols: Vec<Symbol>,
    #[serde(default = "default_volatility_factor")]
    pub volatility_factor: f64,
    #[serde(default = "default_correlation")]
    pub correlation: f64,
}

fn default_volatility_factor() -> f64 {
    3.0
}

fn default_correlation() -> f64 {
    0.8
}

impl RegimeConfig {
    /// The regime with its start in ns since the epoch, `start_ns` being
    /// when the process started; errors name the key.
    pub fn resolve(&self, start_ns: i64) -> Result<crate::simulated::Regime, String> {
        let at_ns = match &self.at {
            RegimeAt::SecondsAfterStart(s) if s.is_finite() && *s >= 0.0 => {
                start_ns.saturating_add((s * 1e9) as i64)
            }
            RegimeAt::SecondsAfterStart(s) => {
                return Err(format!(
                    "feeds.simulated.regime.at: {s} seconds is not a time after start"
                ));
            }
            RegimeAt::Time(t) => marketd_model::time::parse_ts(t).ok_or_else(|| {
                format!(
                    "feeds.simulated.regime.at: expected RFC 3339 or seconds after start, got {t:?}"
                )
            })?,
        };
        if self.symbols.is_empty() {
            return Err("feeds.simulated.regime.symbols must name at least one symbol".into());
        }
        if !self.volatility_factor.is_finite() || self.volatility_factor <= 0.0 {
            return Err("feeds.simulated.regime.volatility_factor must be positive".into());
        }
        if !(0.0..=1.0).contains(&self.correlation) {
            return Err("feeds.simulated.regime.correlation must be between 0 and 1".into());
        }
        Ok(crate::simulated::Regime {
            at_ns,
            symbols: self.symbols.clone(),
            volatility_factor: self.volatility_factor,
            correlation: self.correlation,
        })
    }
}

impl Default for SimulatedFeedConfig {
    fn default() -> Self {
        SimulatedFeedConfig {
            enabled: true,
            symbols: [
                "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT",
            ]
            .into_iter()
            .map(|s| Symbol::parse(s).expect("default symbols are valid"))
            .collect(),
            ticks_per_second: 10.0,
            seed: DEFAULT_SEED,
            regime: None,
        }
    }
}

/// The replay feed: plays a CSV file of ticks (`symbol,ts,price,size`) into the pipeline.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplayFeedConfig {
    /// Run the replay feed.
    pub enabled: bool,
    /// CSV file of ticks: `symbol,ts,price,size` per line, header optional,
    /// `ts` as RFC 3339 or epoch seconds/milliseconds/nanoseconds.
    pub path: Option<PathBuf>,
    /// Playback speed: 1.0 = real time, 2.0 = twice as fast, 0 = as fast as possible.
    pub speed: f64,
    /// Start again at the end of the file (timestamps shifted forward each pass).
    pub loop_forever: bool,
}

impl Default for ReplayFeedConfig {
    fn default() -> Self {
        ReplayFeedConfig {
            enabled: false,
            path: None,
            speed: 1.0,
            loop_forever: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_unknown_keys() {
        let cfg: ProvidersConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, ProvidersConfig::default());
        assert_eq!(cfg.finnhub.base_url, "https://finnhub.io/api/v1");
        assert_eq!(cfg.finnhub.rate_limit_per_minute, 60);
        assert_eq!(cfg.finnhub.timeout_ms, 5000);
        assert_eq!(cfg.finnhub.max_retries, 3);
        assert_eq!(cfg.yahoo.base_url, "https://query2.finance.yahoo.com");

        let cfg: ProvidersConfig =
            toml::from_str("[finnhub]\nenabled = true\napi_key = \"sekrit\"\n").unwrap();
        assert_eq!(cfg.finnhub.api_key.as_ref().unwrap().expose(), "sekrit");
        assert!(!format!("{cfg:?}").contains("sekrit"));
        assert!(!toml::to_string(&cfg).unwrap().contains("sekrit"));

        assert!(toml::from_str::<ProvidersConfig>("[finnhub]\napikey = \"x\"\n").is_err());
        assert!(toml::from_str::<SimulatedFeedConfig>("symbols = [\"BAD SYMBOL\"]").is_err());

        let feed = SimulatedFeedConfig::default();
        assert!(feed.enabled);
        assert_eq!(feed.symbols.len(), 7);
        assert_eq!(feed.symbols[5].as_str(), "BTC-USDT");
        assert_eq!(feed.ticks_per_second, 10.0);
        let replay = ReplayFeedConfig::default();
        assert!(!replay.enabled && replay.speed == 1.0 && !replay.loop_forever);
    }

    #[test]
    fn credential_slots_name_the_enabled_providers_keys() {
        let mut cfg = ProvidersConfig::default();
        assert!(cfg.credential_slots().is_empty(), "finnhub is off");
        cfg.finnhub.enabled = true;
        for (key, slot) in cfg.credential_slots() {
            assert!(ProvidersConfig::CREDENTIAL_KEYS.contains(&key));
            assert!(slot.is_none());
            *slot = Some(Secret::new("from-the-store"));
        }
        assert_eq!(
            cfg.finnhub.api_key.as_ref().map(Secret::expose),
            Some("from-the-store")
        );
        let keys: Vec<_> = cfg.credential_slots().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["providers.finnhub.api_key"]);
    }
}
