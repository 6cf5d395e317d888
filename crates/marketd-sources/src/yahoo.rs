//! Yahoo Finance provider over the (unofficial) chart API v8:
//! `GET {base_url}/v8/finance/chart/{symbol}?interval=..&period1=..&period2=..`.
//! Yahoo spells crypto pairs `BTC-USD`, like our canonical symbols, so symbols
//! are sent as they are.

use crate::config::YahooConfig;
use crate::http::{HttpCaller, join_url};
use crate::rest::{RestApi, RestProvider, last_price};
use crate::{Error, HistoryRequest, Result};
use marketd_model::time::{NANOS_PER_SEC, now_ns};
use marketd_model::{Bar, Decimal, Interval, Symbol, Tick, option_decimal_number};
use serde::Deserialize;
use std::sync::Arc;

pub const NAME: &str = "yahoo";

/// Significant digits kept of Yahoo's bar values: they are single-precision
/// floats widened to double (75.0875 arrives as 75.0875015258789).
const BAR_SIGNIFICANT_DIGITS: u32 = 7;

#[derive(Debug, Deserialize)]
struct Envelope {
    chart: Chart,
}

#[derive(Debug, Deserialize)]
struct Chart {
    #[serde(default)]
    result: Option<Vec<ChartResult>>,
    #[serde(default)]
    error: Option<ChartError>,
}

#[derive(Debug, Deserialize)]
struct ChartError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChartResult {
    meta: Meta,
    #[serde(default)]
    timestamp: Option<Vec<Option<i64>>>,
    #[serde(default)]
    indicators: Option<Indicators>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    symbol: Option<String>,
    #[serde(default, with = "option_decimal_number")]
    regular_market_price: Option<Decimal>,
    #[serde(default)]
    regular_market_time: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
struct Indicators {
    #[serde(default)]
    quote: Vec<QuoteArrays>,
}

#[derive(Debug, Default, Deserialize)]
struct QuoteArrays {
    #[serde(default)]
    open: Vec<Option<f64>>,
    #[serde(default)]
    high: Vec<Option<f64>>,
    #[serde(default)]
    low: Vec<Option<f64>>,
    #[serde(default)]
    close: Vec<Option<f64>>,
    #[serde(default)]
    volume: Vec<Option<f64>>,
}

/// Parses a chart body into its first result, mapping `chart.error` (the 404
/// body `{"code":"Not Found"}` included) onto errors.
fn parse_chart(symbol: &Symbol, body: &[u8]) -> Result<ChartResult> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|e| Error::Malformed(format!("yahoo chart: {e}")))?;
    if let Some(err) = env.chart.error {
        let code = err.code.unwrap_or_default();
        if code.eq_ignore_ascii_case("Not Found") {
            return Err(Error::SymbolNotFound(symbol.to_string()));
        }
        return Err(Error::Malformed(format!(
            "yahoo chart error {code:?}: {}",
            err.description.unwrap_or_default()
        )));
    }
    env.chart
        .result
        .and_then(|r| r.into_iter().next())
        .ok_or_else(|| Error::SymbolNotFound(symbol.to_string()))
}

fn venue_symbol(symbol: &Symbol, meta: &Meta) -> Option<String> {
    meta.symbol
        .as_deref()
        .filter(|s| *s != symbol.as_str())
        .map(str::to_string)
}

/// Normalizes a chart body into a `Last` tick from `meta.regularMarketPrice`
/// and `meta.regularMarketTime` (unix seconds).
pub fn parse_latest(symbol: &Symbol, body: &[u8], received_ns: i64) -> Result<Tick> {
    let result = parse_chart(symbol, body)?;
    let meta = &result.meta;
    let price = meta
        .regular_market_price
        .ok_or_else(|| Error::Malformed("yahoo chart: meta.regularMarketPrice missing".into()))?;
    if price <= Decimal::ZERO {
        return Err(Error::SymbolNotFound(symbol.to_string()));
    }
    let ts_event = match meta.regular_market_time {
        Some(t) if t > 0 => t.saturating_mul(NANOS_PER_SEC),
        _ => received_ns,
    };
    let mut tick = last_price(symbol, NAME, price, ts_event, received_ns);
    tick.venue_symbol = venue_symbol(symbol, meta);
    Ok(tick)
}

/// An exact decimal of a JSON float (its shortest round-trip text).
fn exact(v: f64) -> Option<Decimal> {
    if !v.is_finite() {
        return None;
    }
    Decimal::from_str_exact(&v.to_string()).ok()
}

/// A bar price: float32 noise removed.
fn price(v: f64) -> Option<Decimal> {
    let d = exact(v)?;
    Some(d.round_sf(BAR_SIGNIFICANT_DIGITS).unwrap_or(d).normalize())
}

/// Normalizes a chart body into bars of `interval`. Windows without trades
/// (no `timestamp` key, `quote: [{}]`) give no bars; entries whose open, high,
/// low or close is `null` are skipped (a `null` volume counts as 0). Bars are
/// keyed by the UTC bucket of their timestamp; `closed` once the bucket has
/// ended by `now_ns`.
pub fn parse_bars(
    symbol: &Symbol,
    interval: Interval,
    body: &[u8],
    now_ns: i64,
) -> Result<Vec<Bar>> {
    let result = parse_chart(symbol, body)?;
    let Some(timestamps) = result.timestamp else {
        return Ok(Vec::new());
    };
    let quote = result
        .indicators
        .unwrap_or_default()
        .quote
        .into_iter()
        .next()
        .unwrap_or_default();
    let source: Arc<str> = Arc::from(NAME);
    let at = |v: &Vec<Option<f64>>, i: usize| v.get(i).copied().flatten().and_then(price);
    let mut bars: Vec<Bar> = Vec::with_capacity(timestamps.len());
    for (i, ts) in timestamps.iter().enumerate() {
        let Some(ts) = ts.and_then(|t| t.checked_mul(NANOS_PER_SEC)) else {
            continue;
        };
        let (Some(open), Some(high), Some(low), Some(close)) = (
            at(&quote.open, i),
            at(&quote.high, i),
            at(&quote.low, i),
            at(&quote.close, i),
        ) else {
            continue;
        };
        if close <= Decimal::ZERO {
            continue;
        }
        let start = interval.bucket_start(ts);
        let bar = Bar {
            symbol: symbol.clone(),
            source: source.clone(),
            interval,
            start,
            open,
            high: high.max(open).max(close),
            low: low.min(open).min(close),
            close,
            volume: quote
                .volume
                .get(i)
                .copied()
                .flatten()
                .and_then(exact)
                .unwrap_or_default()
                .max(Decimal::ZERO),
            trades: 0,
            notional: None,
            vwap: None,
            first_ts: ts,
            last_ts: ts,
            closed: start.saturating_add(interval.nanos()) <= now_ns,
        };
        // Yahoo's last intraday entry can repeat the bucket of the one before
        // (the running bar): keep the later.
        match bars.last_mut() {
            Some(prev) if prev.start == start => *prev = bar,
            _ => bars.push(bar),
        }
    }
    Ok(bars)
}

/// Yahoo's spelling of an interval (1h is `60m`; 1s does not exist).
fn yahoo_interval(interval: Interval) -> Result<&'static str> {
    Ok(match interval {
        Interval::S1 => return Err(Error::Unsupported("1s bars")),
        Interval::M1 => "1m",
        Interval::M5 => "5m",
        Interval::H1 => "60m",
        Interval::D1 => "1d",
    })
}

/// Latest prices and bar history from Yahoo Finance.
pub type YahooProvider = RestProvider<YahooApi>;

/// Yahoo's chart endpoint.
#[derive(Debug)]
pub struct YahooApi {
    chart_url: reqwest::Url,
}

impl YahooProvider {
    pub fn new(cfg: &YahooConfig) -> Result<Self> {
        if cfg.timeout_ms == 0 {
            return Err(Error::Config(
                "providers.yahoo.timeout_ms must be positive".into(),
            ));
        }
        let chart_url = join_url(
            &cfg.base_url,
            "v8/finance/chart",
            "providers.yahoo.base_url",
        )?;
        if chart_url.cannot_be_a_base() {
            return Err(Error::Config(format!(
                "providers.yahoo.base_url: invalid URL {:?}",
                cfg.base_url
            )));
        }
        let http = HttpCaller::new(NAME, cfg.timeout(), cfg.max_retries, None)?;
        Ok(RestProvider::from_parts(YahooApi { chart_url }, http))
    }
}

impl YahooApi {
    fn url(&self, symbol: &Symbol) -> reqwest::Url {
        let mut url = self.chart_url.clone();
        // Canonical symbols hold only A-Z 0-9 . - = ^; `^` (indices) is
        // percent-encoded as browsers do.
        let segment = symbol.as_str().replace('^', "%5E");
        let path = format!("{}/{segment}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    }

    async fn chart(
        &self,
        http: &HttpCaller,
        symbol: &Symbol,
        query: &[(&str, String)],
    ) -> Result<bytes::Bytes> {
        let url = self.url(symbol);
        let reply = http
            .get(|client| client.get(url.clone()).query(query))
            .await?;
        match reply.status {
            200..=299 => Ok(reply.body),
            404 => match parse_chart(symbol, &reply.body) {
                Err(e @ Error::SymbolNotFound(_)) => Err(e),
                _ => Err(Error::Upstream { status: 404 }),
            },
            status => Err(Error::Upstream { status }),
        }
    }
}

impl RestApi for YahooApi {
    const NAME: &'static str = NAME;

    async fn latest(&self, http: &HttpCaller, symbol: &Symbol) -> Result<Tick> {
        let body = self
            .chart(
                http,
                symbol,
                &[("range", "1d".into()), ("interval", "1m".into())],
            )
            .await?;
        parse_latest(symbol, &body, now_ns())
    }

    async fn history(&self, http: &HttpCaller, req: &HistoryRequest) -> Result<Vec<Bar>> {
        let interval = yahoo_interval(req.interval)?;
        if req.to <= req.from {
            return Ok(Vec::new());
        }
        let period1 = req.from.div_euclid(NANOS_PER_SEC);
        let period2 =
            req.to.div_euclid(NANOS_PER_SEC) + i64::from(req.to.rem_euclid(NANOS_PER_SEC) != 0);
        let query = [
            ("interval", interval.to_string()),
            ("period1", period1.to_string()),
            ("period2", period2.to_string()),
            ("includePrePost", "false".to_string()),
        ];
        let body = self.chart(http, &req.symbol, &query).await?;
        let mut bars = parse_bars(&req.symbol, req.interval, &body, now_ns())?;
        bars.retain(|b| b.first_ts >= req.from && b.first_ts < req.to);
        Ok(bars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::TickKind;
    use serde_json::Value;
    use std::str::FromStr;

    fn fixture() -> Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/formats/yahoo_chart_v8.json"
        );
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap()
    }

    fn body(v: &Value) -> Vec<u8> {
        serde_json::to_vec(v).unwrap()
    }

    fn aapl() -> Symbol {
        Symbol::parse("AAPL").unwrap()
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn latest_from_meta() {
        let f = fixture();
        let tick = parse_latest(&aapl(), &body(&f["daily_bars_example"]["body"]), 5).unwrap();
        assert_eq!(tick.price, d("244.87"));
        assert_eq!(tick.price.to_string(), "244.87");
        assert_eq!(tick.ts_event, 1_739_998_801 * NANOS_PER_SEC);
        assert_eq!(tick.kind, TickKind::Last);
        assert_eq!(&*tick.source, "yahoo");
        assert_eq!(tick.venue_symbol, None);
    }

    #[test]
    fn daily_bar_from_the_fixture() {
        let f = fixture();
        let bars = parse_bars(
            &aapl(),
            Interval::D1,
            &body(&f["daily_bars_example"]["body"]),
            i64::MAX,
        )
        .unwrap();
        assert_eq!(bars.len(), 1);
        let b = &bars[0];
        assert_eq!(b.first_ts, 1_577_975_400 * NANOS_PER_SEC);
        assert_eq!(
            b.start,
            1_577_923_200 * NANOS_PER_SEC,
            "UTC midnight of 2020-01-02"
        );
        assert_eq!(b.open, d("74.06"));
        assert_eq!(b.close, d("75.0875"));
        assert_eq!(b.high, d("75.15"));
        assert_eq!(b.low, d("73.7975"));
        assert_eq!(b.volume, d("135480400"));
        assert!(b.closed);
    }

    #[test]
    fn empty_window_gives_no_bars_and_still_a_latest() {
        let f = fixture();
        let raw = body(&f["empty_window_example_weekend_1m"]["body"]);
        assert!(
            parse_bars(&aapl(), Interval::M1, &raw, 0)
                .unwrap()
                .is_empty()
        );
        assert_eq!(parse_latest(&aapl(), &raw, 0).unwrap().price, d("244.87"));
    }

    #[test]
    fn null_entries_are_skipped_not_zeroed() {
        let raw = br#"{"chart":{"result":[{"meta":{"symbol":"AAPL","regularMarketPrice":1.5},
            "timestamp":[1738573800,1738573860,1738573920,null,1738574040],
            "indicators":{"quote":[{"open":[10.0,null,12.0,13.0,14.0],"high":[10.5,11.5,12.5,13.5,14.5],
              "low":[9.5,10.5,11.5,12.5,13.5],"close":[10.25,11.25,12.25,13.25,14.25],
              "volume":[100,200,null,400,32129951]}]}}],"error":null}}"#;
        let bars = parse_bars(&aapl(), Interval::M1, raw, 1_738_574_000 * NANOS_PER_SEC).unwrap();
        let starts: Vec<i64> = bars.iter().map(|b| b.first_ts / NANOS_PER_SEC).collect();
        assert_eq!(starts, vec![1_738_573_800, 1_738_573_920, 1_738_574_040]);
        assert_eq!(
            bars[1].volume,
            Decimal::ZERO,
            "null volume is 0, the bar stays"
        );
        assert_eq!(bars[0].volume, d("100"));
        assert_eq!(
            bars[2].volume,
            d("32129951"),
            "volumes are exact, not rounded like prices"
        );
        assert_eq!(bars[0].close, d("10.25"));
        assert!(bars[0].closed && !bars[2].closed);
        // Shorter arrays than timestamps: missing entries are skipped too.
        let raw = br#"{"chart":{"result":[{"meta":{},"timestamp":[1738573800,1738573860],
            "indicators":{"quote":[{"open":[1],"high":[1],"low":[1],"close":[1]}]}}],"error":null}}"#;
        assert_eq!(parse_bars(&aapl(), Interval::M1, raw, 0).unwrap().len(), 1);
    }

    #[test]
    fn not_found_body_and_malformed() {
        let f = fixture();
        let raw = body(&f["error_example"]["body"]);
        assert!(
            matches!(parse_latest(&aapl(), &raw, 0), Err(Error::SymbolNotFound(s)) if s == "AAPL")
        );
        assert!(matches!(
            parse_bars(&aapl(), Interval::D1, &raw, 0),
            Err(Error::SymbolNotFound(_))
        ));
        assert!(matches!(
            parse_latest(&aapl(), b"{\"chart\":", 0),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            parse_latest(&aapl(), br#"{"foo":1}"#, 0),
            Err(Error::Malformed(_))
        ));
        let other = br#"{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input"}}}"#;
        assert!(
            matches!(parse_latest(&aapl(), other, 0), Err(Error::Malformed(m)) if m.contains("Bad Request"))
        );
    }

    #[test]
    fn intervals_and_urls() {
        assert!(matches!(
            yahoo_interval(Interval::S1),
            Err(Error::Unsupported(_))
        ));
        assert_eq!(yahoo_interval(Interval::H1).unwrap(), "60m");
        let p = YahooProvider::new(&YahooConfig {
            base_url: "http://127.0.0.1:9/".into(),
            ..YahooConfig::default()
        })
        .unwrap();
        assert_eq!(
            p.api().url(&Symbol::parse("^GSPC").unwrap()).as_str(),
            "http://127.0.0.1:9/v8/finance/chart/%5EGSPC"
        );
        assert_eq!(
            p.api().url(&Symbol::parse("BTC-USD").unwrap()).as_str(),
            "http://127.0.0.1:9/v8/finance/chart/BTC-USD"
        );
    }
}
