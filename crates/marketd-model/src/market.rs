use crate::decimal::{decimal_number, option_decimal_number};
use crate::time::NANOS_PER_SEC;
use crate::{Error, Result, Symbol};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use utoipa::ToSchema;

/// What a tick reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TickKind {
    /// An executed trade on a venue.
    Trade,
    /// A best bid/offer update; `price` is the mid.
    Quote,
    /// A provider's last price (REST snapshot, simulated feed).
    Last,
}

impl TickKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TickKind::Trade => "trade",
            TickKind::Quote => "quote",
            TickKind::Last => "last",
        }
    }
}

impl FromStr for TickKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trade" => Ok(TickKind::Trade),
            "quote" => Ok(TickKind::Quote),
            "last" => Ok(TickKind::Last),
            other => Err(Error::InvalidTick(format!("unknown kind {other:?}"))),
        }
    }
}

/// One normalized price observation. Every source (providers, exchange feeds,
/// replay) produces these; everything downstream consumes only these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tick {
    pub symbol: Symbol,
    /// Provider or venue that produced the tick (`simulated`, `finnhub`, `binance`, ...).
    #[schema(value_type = String)]
    pub source: Arc<str>,
    pub kind: TickKind,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub price: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub size: Decimal,
    #[serde(
        with = "option_decimal_number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>)]
    pub bid: Option<Decimal>,
    #[serde(
        with = "option_decimal_number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<f64>)]
    pub ask: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// The venue's own spelling of the symbol, when it differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue_symbol: Option<String>,
    /// Exchange (event) time, nanoseconds since the epoch, UTC.
    pub ts_event: i64,
    /// Our receive time, nanoseconds since the epoch, UTC.
    pub ts_received: i64,
}

impl Tick {
    /// A tick with only the required fields set.
    pub fn new(
        symbol: Symbol,
        source: impl Into<Arc<str>>,
        kind: TickKind,
        price: Decimal,
        size: Decimal,
        ts_event: i64,
        ts_received: i64,
    ) -> Self {
        Tick {
            symbol,
            source: source.into(),
            kind,
            price,
            size,
            bid: None,
            ask: None,
            trade_id: None,
            sequence: None,
            venue_symbol: None,
            ts_event,
            ts_received,
        }
    }

    /// Rejects ticks no store should accept: non-positive prices, negative
    /// sizes, timestamps before 1971 or more than a day in the future.
    pub fn validate(&self, now_ns: i64) -> Result<()> {
        if self.price <= Decimal::ZERO {
            return Err(Error::InvalidTick(format!(
                "price must be positive, got {}",
                self.price
            )));
        }
        if self.size < Decimal::ZERO {
            return Err(Error::InvalidTick(format!(
                "size must not be negative, got {}",
                self.size
            )));
        }
        if self.ts_event < 365 * 86_400 * NANOS_PER_SEC
            || self.ts_event > now_ns + 86_400 * NANOS_PER_SEC
        {
            return Err(Error::InvalidTick(format!(
                "ts_event {} out of range",
                self.ts_event
            )));
        }
        Ok(())
    }

    /// The tick's identity (see DESIGN.md): `t:<trade id>` when the venue
    /// gives one, else `h:<hash>` of (source, symbol, ts_event, price, size).
    /// Writers insert with conflict-ignore on (source, symbol, identity).
    pub fn identity(&self) -> String {
        if let Some(id) = &self.trade_id {
            return format!("t:{id}");
        }
        let digest = self.content_hash();
        let mut out = String::with_capacity(2 + 32);
        out.push_str("h:");
        for b in digest {
            use fmt::Write;
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    /// The first 16 bytes of SHA-256 over (source, symbol, ts_event, price,
    /// size), decimals in normalized form so `1.50` and `1.5` agree. This is
    /// the `h:` identity in binary; stores may keep a prefix of it.
    pub fn content_hash(&self) -> [u8; 16] {
        /// Feeds `Display` output straight into the hasher (no allocation).
        struct HashWriter<'a>(&'a mut Sha256);
        impl fmt::Write for HashWriter<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                self.0.update(s.as_bytes());
                Ok(())
            }
        }
        use fmt::Write;
        let mut h = Sha256::new();
        h.update(self.source.as_bytes());
        h.update([0]);
        h.update(self.symbol.as_str().as_bytes());
        h.update([0]);
        h.update(self.ts_event.to_be_bytes());
        let _ = write!(HashWriter(&mut h), "{}", self.price.normalize());
        h.update([0]);
        let _ = write!(HashWriter(&mut h), "{}", self.size.normalize());
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }
}

/// Bar intervals with UTC bucket boundaries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
pub enum Interval {
    #[serde(rename = "1s")]
    S1,
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl Interval {
    pub const ALL: [Interval; 5] = [
        Interval::S1,
        Interval::M1,
        Interval::M5,
        Interval::H1,
        Interval::D1,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interval::S1 => "1s",
            Interval::M1 => "1m",
            Interval::M5 => "5m",
            Interval::H1 => "1h",
            Interval::D1 => "1d",
        }
    }

    pub fn nanos(self) -> i64 {
        NANOS_PER_SEC
            * match self {
                Interval::S1 => 1,
                Interval::M1 => 60,
                Interval::M5 => 300,
                Interval::H1 => 3_600,
                Interval::D1 => 86_400,
            }
    }

    /// Start of the UTC bucket holding `ts` (floor division, so negative
    /// timestamps bucket correctly too).
    pub fn bucket_start(self, ts: i64) -> i64 {
        ts.div_euclid(self.nanos()) * self.nanos()
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Interval {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Interval::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| Error::InvalidInterval(s.to_string()))
    }
}

/// An OHLCV bar of one (source, symbol) over one UTC bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Bar {
    pub symbol: Symbol,
    #[schema(value_type = String)]
    pub source: Arc<str>,
    pub interval: Interval,
    /// Bucket start, nanoseconds since the epoch (UTC boundary).
    pub start: i64,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub open: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub high: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub low: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub close: Decimal,
    #[serde(with = "decimal_number")]
    #[schema(value_type = f64)]
    pub volume: Decimal,
    /// Number of ticks in the bar.
    pub trades: u64,
    /// Σ price × size over the bar's ticks, exact; `None` where the bar was
    /// not folded from ticks (a provider's own bars) or the sum overflowed.
    #[serde(default, with = "option_decimal_number")]
    #[schema(value_type = Option<f64>)]
    pub notional: Option<Decimal>,
    /// Volume-weighted average price, `notional / volume` rounded to
    /// [`Bar::VWAP_DECIMALS`] places; `None` without notional or volume.
    #[serde(default, with = "option_decimal_number")]
    #[schema(value_type = Option<f64>)]
    pub vwap: Option<Decimal>,
    /// Event time of the first and last tick (for open/close and late-tick merges).
    pub first_ts: i64,
    pub last_ts: i64,
    /// False while the bucket may still receive ticks.
    pub closed: bool,
}

impl Bar {
    /// A bar holding one tick.
    pub fn open_with(tick: &Tick, interval: Interval) -> Self {
        Bar {
            symbol: tick.symbol.clone(),
            source: tick.source.clone(),
            interval,
            start: interval.bucket_start(tick.ts_event),
            open: tick.price,
            high: tick.price,
            low: tick.price,
            close: tick.price,
            volume: tick.size,
            trades: 1,
            notional: tick.price.checked_mul(tick.size),
            vwap: None,
            first_ts: tick.ts_event,
            last_ts: tick.ts_event,
            closed: false,
        }
        .with_vwap()
    }

    /// Decimal places of [`Bar::vwap`]: a quotient rarely terminates, and
    /// twelve places are finer than any venue's tick size.
    pub const VWAP_DECIMALS: u32 = 12;

    /// The bar with [`Bar::vwap`] computed from its notional and volume.
    pub fn with_vwap(mut self) -> Self {
        self.refresh_vwap();
        self
    }

    /// Recomputes [`Bar::vwap`] from the notional and volume (after
    /// [`Bar::fold`]).
    pub fn refresh_vwap(&mut self) {
        self.vwap = vwap(self.notional, self.volume);
    }

    /// Folds a tick of the same bucket into the bar. Open is the tick with the
    /// earliest event time (first arrival wins ties), close the latest (last
    /// arrival wins ties), so a late tick lands where its timestamp says.
    pub fn apply(&mut self, tick: &Tick) {
        self.fold(tick);
        self.refresh_vwap();
    }

    /// [`Bar::apply`] without recomputing [`Bar::vwap`], which is then stale
    /// until [`Bar::refresh_vwap`]: the division and rounding cost more than
    /// the rest of the fold, and a bar folded from every tick is shown far
    /// less often than it changes.
    pub fn fold(&mut self, tick: &Tick) {
        if tick.ts_event < self.first_ts {
            self.first_ts = tick.ts_event;
            self.open = tick.price;
        }
        if tick.ts_event >= self.last_ts {
            self.last_ts = tick.ts_event;
            self.close = tick.price;
        }
        if tick.price > self.high {
            self.high = tick.price;
        }
        if tick.price < self.low {
            self.low = tick.price;
        }
        self.volume += tick.size;
        self.trades += 1;
        self.notional = self
            .notional
            .and_then(|n| n.checked_add(tick.price.checked_mul(tick.size)?));
    }
}

fn vwap(notional: Option<Decimal>, volume: Decimal) -> Option<Decimal> {
    if volume.is_zero() {
        return None;
    }
    notional?
        .checked_div(volume)
        .map(|v| v.round_dp(Bar::VWAP_DECIMALS).normalize())
}

/// Moving-average kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MaKind {
    Sma,
    Ema,
}

impl MaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MaKind::Sma => "sma",
            MaKind::Ema => "ema",
        }
    }
}

impl FromStr for MaKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "sma" => Ok(MaKind::Sma),
            "ema" => Ok(MaKind::Ema),
            _ => Err(Error::InvalidMaKind(s.to_string())),
        }
    }
}

/// A moving average of bar closes: one value per closed bar of `interval`,
/// stamped with that bar's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Indicator {
    pub symbol: Symbol,
    #[schema(value_type = String)]
    pub source: Arc<str>,
    pub interval: Interval,
    pub kind: MaKind,
    pub window: u32,
    pub ts: i64,
    pub value: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(ts: i64, price: &str) -> Tick {
        Tick::new(
            Symbol::parse("AAPL").unwrap(),
            "test",
            TickKind::Trade,
            price.parse().unwrap(),
            Decimal::ONE,
            ts,
            ts,
        )
    }

    #[test]
    fn buckets_are_utc_floors() {
        let t = 1_700_000_123_456_789_000;
        assert_eq!(Interval::S1.bucket_start(t), 1_700_000_123_000_000_000);
        assert_eq!(Interval::M1.bucket_start(t), 1_700_000_100_000_000_000);
        assert_eq!(Interval::M5.bucket_start(t), 1_700_000_100_000_000_000);
        assert_eq!(Interval::H1.bucket_start(t), 1_699_999_200_000_000_000);
        assert_eq!(Interval::D1.bucket_start(t), 1_699_920_000_000_000_000);
        assert_eq!(Interval::S1.bucket_start(-1), -NANOS_PER_SEC);
        assert_eq!("5m".parse::<Interval>().unwrap(), Interval::M5);
        assert!("2m".parse::<Interval>().is_err());
    }

    #[test]
    fn bar_folds_late_ticks_by_event_time() {
        let mut bar = Bar::open_with(&tick(5, "10"), Interval::S1);
        bar.apply(&tick(7, "12"));
        bar.apply(&tick(3, "9")); // late: becomes the open
        bar.apply(&tick(7, "11")); // same ts as close: later arrival wins
        assert_eq!(bar.open, "9".parse().unwrap());
        assert_eq!(bar.close, "11".parse().unwrap());
        assert_eq!(bar.high, "12".parse().unwrap());
        assert_eq!(bar.low, "9".parse().unwrap());
        assert_eq!(bar.trades, 4);
        assert_eq!(bar.volume, Decimal::from(4));
        assert_eq!(bar.notional, Some("42".parse().unwrap()));
        assert_eq!(bar.vwap, Some("10.5".parse().unwrap()));
    }

    #[test]
    fn vwap_weights_by_size_and_is_exact_to_its_places() {
        let sized = |ts: i64, price: &str, size: &str| {
            let mut t = tick(ts, price);
            t.size = size.parse().unwrap();
            t
        };
        let mut bar = Bar::open_with(&sized(1, "100.10", "0.5"), Interval::M1);
        bar.apply(&sized(2, "100.40", "1.5"));
        bar.apply(&sized(3, "99.95", "1"));
        // (50.05 + 150.6 + 99.95) / 3 = 300.6 / 3
        assert_eq!(bar.notional, Some("300.600".parse().unwrap()));
        assert_eq!(bar.vwap, Some("100.2".parse().unwrap()));
        bar.apply(&sized(4, "100", "0.0001"));
        // 300.61 / 3.0001 = 100.1999933335555481... rounded to 12 places.
        assert_eq!(bar.vwap, Some("100.199993333556".parse().unwrap()));
        // Without volume there is no average.
        let zero = Bar::open_with(&sized(1, "5", "0"), Interval::M1);
        assert_eq!((zero.notional, zero.vwap), (Some(Decimal::ZERO), None));
        let json = serde_json::to_value(&bar).unwrap();
        assert_eq!(json["vwap"].to_string(), "100.199993333556");
        let back: Bar = serde_json::from_value(json).unwrap();
        assert_eq!(back, bar);
    }

    /// Folding without the VWAP and refreshing it once gives the bar that
    /// applying every tick gives; until the refresh the VWAP is the old one.
    #[test]
    fn fold_then_refresh_equals_apply() {
        let sized = |ts: i64, price: &str, size: &str| {
            let mut t = tick(ts, price);
            t.size = size.parse().unwrap();
            t
        };
        let ticks = [
            sized(2, "100.40", "1.5"),
            sized(1, "99.10", "0.25"),
            sized(3, "99.95", "1"),
            sized(3, "101.5", "0.0001"),
        ];
        let first = sized(2, "100.10", "0.5");
        let mut applied = Bar::open_with(&first, Interval::M1);
        let mut folded = applied.clone();
        for t in &ticks {
            applied.apply(t);
            folded.fold(t);
        }
        assert_eq!(
            folded.vwap,
            Some("100.1".parse().unwrap()),
            "stale until refreshed"
        );
        assert_ne!(folded, applied);
        folded.refresh_vwap();
        assert_eq!(folded, applied);
        assert_eq!(
            (applied.open, applied.close),
            ("99.10".parse().unwrap(), "101.5".parse().unwrap())
        );
    }

    #[test]
    fn identity_prefers_trade_id_and_hashes_otherwise() {
        let mut a = tick(1_700_000_000_000_000_000, "1.50");
        let b = tick(1_700_000_000_000_000_000, "1.5");
        assert_eq!(a.identity(), b.identity(), "scale must not change identity");
        assert!(a.identity().starts_with("h:"));
        let hex: String = a
            .content_hash()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            a.identity(),
            format!("h:{hex}"),
            "content_hash is the identity in binary"
        );
        assert_ne!(
            a.identity(),
            tick(1_700_000_000_000_000_001, "1.5").identity()
        );
        a.trade_id = Some("42".into());
        assert_eq!(a.identity(), "t:42");
    }

    #[test]
    fn validation_rejects_nonsense() {
        let now = 1_700_000_000_000_000_000;
        assert!(tick(now, "1").validate(now).is_ok());
        assert!(tick(now, "0").validate(now).is_err());
        assert!(tick(0, "1").validate(now).is_err());
        assert!(
            tick(now + 2 * 86_400 * NANOS_PER_SEC, "1")
                .validate(now)
                .is_err()
        );
    }
}
