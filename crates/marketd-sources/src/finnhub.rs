//! Finnhub REST provider: `GET {base_url}/quote?symbol=X` with the token in
//! the `X-Finnhub-Token` header (never in the URL, so never in a log line).

use crate::config::FinnhubConfig;
use crate::http::{HttpCaller, join_url};
use crate::ratelimit::TokenBucket;
use crate::rest::{RestApi, RestProvider, last_price};
use crate::{Error, HistoryRequest, Result};
use marketd_model::time::{NANOS_PER_SEC, now_ns};
use marketd_model::{Bar, Decimal, Symbol, Tick, option_decimal_number};
use reqwest::header::HeaderValue;
use serde::Deserialize;

pub const NAME: &str = "finnhub";

/// The fields of a `/quote` body marketd uses (the rest are ignored).
#[derive(Debug, Deserialize)]
struct QuoteBody {
    /// Current price.
    #[serde(default, with = "option_decimal_number")]
    c: Option<Decimal>,
    /// Unix time in seconds.
    #[serde(default)]
    t: Option<i64>,
    /// Error text some plans return with a 200.
    #[serde(default)]
    error: Option<String>,
}

/// Normalizes a Finnhub `/quote` body into a `Last` tick. All-zero bodies
/// (Finnhub's answer for a symbol it does not know) are `SymbolNotFound`.
/// A missing `t` falls back to `received_ns`.
pub fn parse_quote(symbol: &Symbol, body: &[u8], received_ns: i64) -> Result<Tick> {
    let q: QuoteBody = serde_json::from_slice(body)
        .map_err(|e| Error::Malformed(format!("finnhub quote: {e}")))?;
    if let Some(err) = q.error {
        return Err(Error::Malformed(format!("finnhub quote: error {err:?}")));
    }
    let price = q.c.unwrap_or_default();
    if price.is_zero() {
        return Err(Error::SymbolNotFound(symbol.to_string()));
    }
    if price.is_sign_negative() {
        return Err(Error::Malformed(format!(
            "finnhub quote: negative price {price}"
        )));
    }
    let ts_event = match q.t {
        Some(t) if t > 0 => t.checked_mul(NANOS_PER_SEC).ok_or_else(|| {
            Error::Malformed(format!("finnhub quote: timestamp {t} out of range"))
        })?,
        _ => received_ns,
    };
    Ok(last_price(symbol, NAME, price, ts_event, received_ns))
}

/// Latest quotes from Finnhub. History is not offered (candles are a paid endpoint).
pub type FinnhubProvider = RestProvider<FinnhubApi>;

/// Finnhub's `/quote` endpoint and the token it is called with.
#[derive(Debug)]
pub struct FinnhubApi {
    quote_url: reqwest::Url,
    token: HeaderValue,
}

impl FinnhubProvider {
    /// Builds the provider; a missing or empty `api_key` is `Error::Config`
    /// naming `providers.finnhub.api_key`.
    pub fn new(cfg: &FinnhubConfig) -> Result<Self> {
        let key = cfg
            .api_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "providers.finnhub.api_key is required when providers.finnhub.enabled = true"
                        .into(),
                )
            })?;
        let mut token = HeaderValue::from_str(key.expose().trim()).map_err(|_| {
            Error::Config(
                "providers.finnhub.api_key contains characters not allowed in a header".into(),
            )
        })?;
        token.set_sensitive(true);
        if cfg.timeout_ms == 0 {
            return Err(Error::Config(
                "providers.finnhub.timeout_ms must be positive".into(),
            ));
        }
        if cfg.rate_limit_per_minute == 0 {
            return Err(Error::Config(
                "providers.finnhub.rate_limit_per_minute must be positive".into(),
            ));
        }
        let quote_url = join_url(&cfg.base_url, "quote", "providers.finnhub.base_url")?;
        let limiter = TokenBucket::per_minute(cfg.rate_limit_per_minute);
        let http = HttpCaller::new(NAME, cfg.timeout(), cfg.max_retries, Some(limiter))?;
        Ok(RestProvider::from_parts(
            FinnhubApi { quote_url, token },
            http,
        ))
    }
}

impl RestApi for FinnhubApi {
    const NAME: &'static str = NAME;

    async fn latest(&self, http: &HttpCaller, symbol: &Symbol) -> Result<Tick> {
        let reply = http
            .get(|client| {
                client
                    .get(self.quote_url.clone())
                    .query(&[("symbol", symbol.as_str())])
                    .header("X-Finnhub-Token", self.token.clone())
            })
            .await?;
        match reply.status {
            200..=299 => parse_quote(symbol, &reply.body, now_ns()),
            status => Err(Error::Upstream { status }),
        }
    }

    async fn history(&self, _: &HttpCaller, _: &HistoryRequest) -> Result<Vec<Bar>> {
        Err(Error::Unsupported(
            "history (Finnhub candles are a paid endpoint)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::Secret;
    use marketd_model::TickKind;
    use std::str::FromStr;

    fn aapl() -> Symbol {
        Symbol::parse("AAPL").unwrap()
    }

    #[test]
    fn normalizes_the_docs_sample_exactly() {
        let body = br#"{"c":261.74,"h":263.31,"l":260.68,"o":261.07,"pc":259.45,"t":1582641000}"#;
        let tick = parse_quote(&aapl(), body, 7).unwrap();
        assert_eq!(tick.price, Decimal::from_str("261.74").unwrap());
        assert_eq!(
            tick.price.to_string(),
            "261.74",
            "exact decimal, no binary residue"
        );
        assert_eq!(tick.ts_event, 1_582_641_000_000_000_000);
        assert_eq!(tick.ts_received, 7);
        assert_eq!(tick.kind, TickKind::Last);
        assert_eq!(&*tick.source, "finnhub");
        assert_eq!(tick.size, Decimal::ZERO);
        assert_eq!(tick.symbol, aapl());
    }

    #[test]
    fn accepts_the_shape_with_change_fields() {
        let body = br#"{"c":261.74,"d":2.29,"dp":0.8826,"h":263.31,"l":260.68,"o":261.07,"pc":259.45,"t":1783526400}"#;
        let tick = parse_quote(&aapl(), body, 0).unwrap();
        assert_eq!(tick.ts_event, 1_783_526_400 * NANOS_PER_SEC);
    }

    #[test]
    fn zeros_are_unknown_symbols() {
        for body in [
            &br#"{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}"#[..],
            br#"{"c":0,"h":0,"l":0,"o":0,"pc":0,"t":1582641000}"#,
            br#"{"c":0.0,"t":0}"#,
            br#"{}"#,
        ] {
            assert!(
                matches!(parse_quote(&aapl(), body, 0), Err(Error::SymbolNotFound(s)) if s == "AAPL")
            );
        }
    }

    #[test]
    fn malformed_bodies() {
        for body in [
            &b"<html>oops</html>"[..],
            br#"{"c":"abc","t":1}"#,
            br#"{"c":-1,"t":1}"#,
            br#"{"error":"no access"}"#,
            b"",
        ] {
            assert!(
                matches!(parse_quote(&aapl(), body, 0), Err(Error::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Missing timestamp: our receive time.
        assert_eq!(
            parse_quote(&aapl(), br#"{"c":1.5}"#, 99).unwrap().ts_event,
            99
        );
    }

    #[test]
    fn config_errors_name_the_key() {
        let mut cfg = FinnhubConfig {
            enabled: true,
            ..FinnhubConfig::default()
        };
        let e = FinnhubProvider::new(&cfg).unwrap_err();
        assert!(
            matches!(&e, Error::Config(m) if m.contains("providers.finnhub.api_key")),
            "{e}"
        );
        cfg.api_key = Some(Secret::new("  "));
        assert!(FinnhubProvider::new(&cfg).is_err());
        cfg.api_key = Some(Secret::new("s3cr3t-xyz"));
        cfg.base_url = "not a url".into();
        let e = FinnhubProvider::new(&cfg).unwrap_err();
        assert!(e.to_string().contains("providers.finnhub.base_url"), "{e}");
        cfg.base_url = "http://127.0.0.1:1/api/v1/".into();
        let p = FinnhubProvider::new(&cfg).unwrap();
        assert_eq!(
            p.api().quote_url.as_str(),
            "http://127.0.0.1:1/api/v1/quote"
        );
        assert!(
            !format!("{p:?}").contains("s3cr3t"),
            "Debug must not show the token"
        );
    }
}
