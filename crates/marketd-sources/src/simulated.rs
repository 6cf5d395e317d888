//! The simulated market: per-symbol geometric Brownian motion, seeded and
//! deterministic, with realistic tick sizes, trade sizes and volatilities.
//!
//! - [`SimulatedMarket`] holds one random walk per symbol. Each symbol's
//!   random stream is derived from the seed and the symbol alone, so adding a
//!   symbol never changes another's prices; the same seed and the same call
//!   sequence always give the same ticks.
//! - [`SimulatedFeed`] streams trades for a set of symbols at a configured
//!   rate (Poisson arrivals on an absolute schedule, so no drift accumulates).
//! - [`SimulatedProvider`] answers `latest` (and synthetic `history`) for any
//!   valid symbol, so polling jobs with provider `simulated` always work.

use crate::config::SimulatedFeedConfig;
use crate::health::{ProviderHealth, Tracker};
use crate::{HistoryRequest, Provider, Result};
use marketd_model::time::now_ns;
use marketd_model::{Bar, Decimal, Symbol, Tick, TickKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, StandardNormal};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "simulated";

/// Trading seconds in a year for equities and indices (252 days of 6.5 h):
/// their volatility is quoted over trading time.
const EQUITY_YEAR_SECS: f64 = 252.0 * 6.5 * 3600.0;
/// Crypto trades around the clock.
const CRYPTO_YEAR_SECS: f64 = 365.25 * 86_400.0;
/// FX trades around the clock on weekdays.
const FX_YEAR_SECS: f64 = 260.0 * 86_400.0;
/// Dispersion (log scale) of trade sizes around their median.
const SIZE_SIGMA: f64 = 1.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AssetClass {
    Equity,
    Crypto,
    Fx,
    Index,
}

/// How a symbol behaves: where it starts, how much it moves, what it trades in.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Profile {
    class: AssetClass,
    start: f64,
    /// Annualized volatility.
    sigma: f64,
    /// Median notional of a trade, in the quote currency.
    median_notional: f64,
}

/// Plausible start prices and volatilities of well-known symbols.
const KNOWN: &[(&str, f64, f64)] = &[
    ("AAPL", 190.0, 0.25),
    ("MSFT", 420.0, 0.22),
    ("GOOGL", 170.0, 0.28),
    ("GOOG", 171.0, 0.28),
    ("AMZN", 185.0, 0.30),
    ("TSLA", 250.0, 0.55),
    ("NVDA", 120.0, 0.50),
    ("META", 500.0, 0.35),
    ("NFLX", 650.0, 0.35),
    ("AMD", 160.0, 0.50),
    ("INTC", 30.0, 0.40),
    ("IBM", 190.0, 0.22),
    ("ORCL", 140.0, 0.28),
    ("JPM", 200.0, 0.22),
    ("V", 280.0, 0.18),
    ("KO", 62.0, 0.14),
    ("BRK.B", 420.0, 0.16),
    ("SPY", 520.0, 0.15),
    ("QQQ", 450.0, 0.20),
    ("BTC-USDT", 65_000.0, 0.55),
    ("BTC-USD", 65_000.0, 0.55),
    ("BTC-USDC", 65_000.0, 0.55),
    ("ETH-USDT", 3_200.0, 0.70),
    ("ETH-USD", 3_200.0, 0.70),
    ("ETH-USDC", 3_200.0, 0.70),
    ("ETH-BTC", 0.05, 0.45),
    ("SOL-USDT", 150.0, 0.90),
    ("SOL-USD", 150.0, 0.90),
    ("BNB-USDT", 580.0, 0.60),
    ("XRP-USDT", 0.55, 0.80),
    ("DOGE-USDT", 0.15, 1.00),
    ("ADA-USDT", 0.45, 0.85),
    ("^GSPC", 5_200.0, 0.15),
    ("^DJI", 39_000.0, 0.14),
    ("^IXIC", 16_000.0, 0.20),
    ("EURUSD=X", 1.08, 0.07),
    ("GBPUSD=X", 1.27, 0.08),
    ("USDJPY=X", 150.0, 0.09),
];

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Uniform in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn class_of(symbol: &Symbol) -> AssetClass {
    let s = symbol.as_str();
    if s.ends_with("=X") {
        AssetClass::Fx
    } else if s.starts_with('^') {
        AssetClass::Index
    } else if symbol.is_pair() {
        AssetClass::Crypto
    } else {
        AssetClass::Equity
    }
}

fn quote_is_coin(symbol: &Symbol) -> bool {
    matches!(
        symbol.as_str().rsplit('-').next(),
        Some("BTC" | "ETH" | "BNB")
    )
}

fn profile(symbol: &Symbol) -> Profile {
    let class = class_of(symbol);
    let coin_quoted = class == AssetClass::Crypto && quote_is_coin(symbol);
    let median_notional = match class {
        AssetClass::Equity => 4_000.0,
        AssetClass::Crypto if coin_quoted => 0.01,
        AssetClass::Crypto => 300.0,
        AssetClass::Fx => 100_000.0,
        AssetClass::Index => 0.0,
    };
    if let Some((_, start, sigma)) = KNOWN.iter().find(|(s, _, _)| *s == symbol.as_str()) {
        return Profile {
            class,
            start: *start,
            sigma: *sigma,
            median_notional,
        };
    }
    // Any other symbol: a start price from a hash of the symbol (the same on
    // every run and with every seed), log-uniform over a plausible range.
    let h = splitmix64(fnv1a(symbol.as_str().as_bytes()));
    let (lo, hi, sigma): (f64, f64, f64) = match class {
        AssetClass::Equity => (5.0, 500.0, 0.30),
        AssetClass::Crypto if coin_quoted => (1e-6, 0.1, 0.80),
        AssetClass::Crypto => (0.01, 1_000.0, 0.80),
        AssetClass::Fx => (0.5, 2.0, 0.08),
        AssetClass::Index => (1_000.0, 20_000.0, 0.16),
    };
    let start = lo * (hi / lo).powf(unit(h));
    Profile {
        class,
        start,
        sigma,
        median_notional,
    }
}

/// Decimal places of the price step: equities trade in cents (hundredths of
/// a cent below $1), crypto in 0.01 of the quote currency for big prices and
/// about five significant digits for small ones, FX in pips/10.
fn price_scale(class: AssetClass, price: f64) -> u32 {
    match class {
        AssetClass::Equity => {
            if price >= 1.0 {
                2
            } else {
                4
            }
        }
        AssetClass::Index => 2,
        AssetClass::Crypto => (4 - price.log10().floor() as i64).clamp(2, 8) as u32,
        AssetClass::Fx => {
            if price >= 20.0 {
                3
            } else {
                5
            }
        }
    }
}

/// Decimal places of the size step: whole shares, 0.0001 coins, whole FX units.
fn size_scale(class: AssetClass) -> u32 {
    match class {
        AssetClass::Crypto => 4,
        _ => 0,
    }
}

/// Rounds to `scale` decimal places, at least one step.
fn to_decimal(v: f64, scale: u32, min_one_step: bool) -> Decimal {
    let units = (v * 10f64.powi(scale as i32)).round();
    let units = if units.is_finite() {
        units.clamp(0.0, 9.0e15) as i64
    } else {
        0
    };
    Decimal::new(if min_one_step { units.max(1) } else { units }, scale)
}

/// One symbol's random walk.
#[derive(Debug, Clone)]
struct Walk {
    profile: Profile,
    year_secs: f64,
    rng: StdRng,
    /// Current (unrounded) price.
    price: f64,
    last_ns: Option<i64>,
    seq: u64,
}

impl Walk {
    fn new(seed: u64, symbol: &Symbol) -> Self {
        let profile = profile(symbol);
        let year_secs = match profile.class {
            AssetClass::Equity | AssetClass::Index => EQUITY_YEAR_SECS,
            AssetClass::Crypto => CRYPTO_YEAR_SECS,
            AssetClass::Fx => FX_YEAR_SECS,
        };
        let rng = StdRng::seed_from_u64(splitmix64(
            seed ^ splitmix64(fnv1a(symbol.as_str().as_bytes())),
        ));
        Walk {
            profile,
            year_secs,
            rng,
            price: profile.start,
            last_ns: None,
            seq: 0,
        }
    }

    /// Moves the price to `now_ns` (GBM with zero drift: the price is a
    /// martingale) and draws a trade size. Returns (price, size) as decimals
    /// on the symbol's tick grid. Time never runs backwards for a walk.
    fn step(&mut self, now_ns: i64) -> (Decimal, Decimal) {
        let dt_ns = self
            .last_ns
            .map_or(0, |last| now_ns.saturating_sub(last).max(0));
        self.last_ns = Some(self.last_ns.map_or(now_ns, |last| last.max(now_ns)));
        let z: f64 = StandardNormal.sample(&mut self.rng);
        if dt_ns > 0 {
            let dt = dt_ns as f64 / 1e9 / self.year_secs;
            let sigma = self.profile.sigma;
            self.price *= (-0.5 * sigma * sigma * dt + sigma * dt.sqrt() * z).exp();
            self.price = self.price.clamp(1e-8, 1e12);
        }
        let zs: f64 = StandardNormal.sample(&mut self.rng);
        self.seq += 1;
        let class = self.profile.class;
        let price = to_decimal(self.price, price_scale(class, self.price), true);
        let size = if class == AssetClass::Index {
            Decimal::ZERO
        } else {
            let median_units = self.profile.median_notional / self.price.max(1e-8);
            let units = (median_units.ln() + SIZE_SIGMA * zs).exp().min(1e9);
            to_decimal(units, size_scale(class), true)
        };
        (price, size)
    }
}

/// The simulated market: one deterministic random walk per symbol.
/// Thread-safe; share it as `Arc<SimulatedMarket>` between the feed and the
/// provider so `latest` agrees with the stream.
#[derive(Debug)]
pub struct SimulatedMarket {
    seed: u64,
    walks: Mutex<HashMap<Symbol, Walk>>,
}

impl SimulatedMarket {
    pub fn new(seed: u64) -> Self {
        SimulatedMarket {
            seed,
            walks: Mutex::new(HashMap::new()),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The price a symbol's walk starts from (on its tick grid).
    pub fn start_price(symbol: &Symbol) -> Decimal {
        let p = profile(symbol);
        to_decimal(p.start, price_scale(p.class, p.start), true)
    }

    /// The next trade of `symbol` at `now_ns`: the walk advances by the time
    /// since its previous tick (not at all on its first tick, which is at the
    /// start price). Kind `Trade`, `ts_event = ts_received = now_ns`.
    pub fn next_tick(&self, symbol: &Symbol, now_ns: i64) -> Tick {
        let mut walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
        let walk = walks
            .entry(symbol.clone())
            .or_insert_with(|| Walk::new(self.seed, symbol));
        let (price, size) = walk.step(now_ns);
        let mut tick = Tick::new(
            symbol.clone(),
            NAME,
            TickKind::Trade,
            price,
            size,
            now_ns,
            now_ns,
        );
        tick.sequence = Some(walk.seq);
        tick
    }

    /// A pure, fast generator for benchmarks: `n` trades round-robin over
    /// `symbols`, the i-th at `start_ns + i * step_ns`. Uses fresh walks from
    /// the seed (the market's live state is neither read nor changed), so the
    /// same arguments always give the same ticks.
    pub fn generate(&self, symbols: &[Symbol], start_ns: i64, step_ns: i64, n: usize) -> Vec<Tick> {
        if symbols.is_empty() {
            return Vec::new();
        }
        let mut walks: Vec<Walk> = symbols.iter().map(|s| Walk::new(self.seed, s)).collect();
        let source: Arc<str> = Arc::from(NAME);
        let mut out = Vec::with_capacity(n);
        let mut ts = start_ns;
        for i in 0..n {
            let k = i % symbols.len();
            let (price, size) = walks[k].step(ts);
            let mut tick = Tick::new(
                symbols[k].clone(),
                source.clone(),
                TickKind::Trade,
                price,
                size,
                ts,
                ts,
            );
            tick.sequence = Some(walks[k].seq);
            out.push(tick);
            ts = ts.saturating_add(step_ns);
        }
        out
    }
}

/// At most this many bars from one synthetic `history` call (the latest ones).
pub const MAX_HISTORY_BARS: i64 = 5_000;

/// The simulated market as a provider: `latest` for any valid symbol
/// (kind `Last`, size 0), `history` as synthetic bars.
#[derive(Debug)]
pub struct SimulatedProvider {
    market: Arc<SimulatedMarket>,
    tracker: Tracker,
}

impl SimulatedProvider {
    pub fn new(market: Arc<SimulatedMarket>) -> Self {
        SimulatedProvider {
            market,
            tracker: Tracker::new(NAME),
        }
    }

    /// The market this provider reads, to share with a [`SimulatedFeed`].
    pub fn market(&self) -> &Arc<SimulatedMarket> {
        &self.market
    }

    fn latest_now(&self, symbol: &Symbol) -> Tick {
        let mut tick = self.market.next_tick(symbol, now_ns());
        tick.kind = TickKind::Last;
        tick.size = Decimal::ZERO;
        tick
    }

    /// Synthetic bars over `[from, to)` up to now: a GBM path seeded by
    /// (seed, symbol, interval, first bucket), starting at the symbol's
    /// start price. Deterministic for the same request; two different windows
    /// are not one consistent path.
    fn synthetic_history(&self, req: &HistoryRequest, now: i64) -> Vec<Bar> {
        let step = req.interval.nanos();
        let end = req.to.min(now.saturating_add(1));
        let mut first = req.interval.bucket_start(req.from);
        if first < req.from {
            first = first.saturating_add(step);
        }
        if end <= first {
            return Vec::new();
        }
        let last = req.interval.bucket_start(end - 1);
        let count = ((last - first) / step + 1).min(MAX_HISTORY_BARS);
        let first = last - (count - 1) * step;
        let mut walk = Walk::new(
            self.market.seed ^ splitmix64(step as u64) ^ splitmix64(first as u64).rotate_left(17),
            &req.symbol,
        );
        let source: Arc<str> = Arc::from(NAME);
        let mut bars = Vec::with_capacity(count as usize);
        walk.step(first);
        for i in 0..count {
            let start = first + i * step;
            let trades = walk.rng.random_range(4..=16);
            let mut bar: Option<Bar> = None;
            for j in 0..trades {
                let ts = start + step * j / trades;
                let (price, size) = walk.step(ts);
                let tick = Tick::new(
                    req.symbol.clone(),
                    source.clone(),
                    TickKind::Trade,
                    price,
                    size,
                    ts,
                    ts,
                );
                match &mut bar {
                    None => bar = Some(Bar::open_with(&tick, req.interval)),
                    Some(b) => b.apply(&tick),
                }
            }
            if let Some(mut b) = bar {
                b.closed = start.saturating_add(step) <= now;
                bars.push(b);
            }
        }
        bars
    }
}

impl Provider for SimulatedProvider {
    fn name(&self) -> &str {
        NAME
    }

    async fn latest(&self, symbol: &Symbol) -> Result<Tick> {
        self.tracker
            .observe(async { Ok(self.latest_now(symbol)) })
            .await
    }

    async fn history(&self, req: &HistoryRequest) -> Result<Vec<Bar>> {
        self.tracker
            .observe(async { Ok(self.synthetic_history(req, now_ns())) })
            .await
    }

    fn health(&self) -> ProviderHealth {
        self.tracker.snapshot()
    }
}

/// Minimum time between two batches of the feed.
const MIN_BATCH_GAP: Duration = Duration::from_millis(5);
/// Most ticks in one batch.
const MAX_BATCH: usize = 256;
/// Arrivals further behind schedule than this (a slow consumer) are dropped
/// rather than sent in one burst.
const MAX_LAG_NS: u64 = 1_000_000_000;

/// Streams simulated trades for the configured symbols.
#[derive(Debug)]
pub struct SimulatedFeed {
    cfg: SimulatedFeedConfig,
    market: Arc<SimulatedMarket>,
}

impl SimulatedFeed {
    pub fn new(cfg: SimulatedFeedConfig, market: Arc<SimulatedMarket>) -> Self {
        SimulatedFeed { cfg, market }
    }

    /// Sends batches of trades to `tx` until `cancel` fires or the receiver
    /// is dropped. Each symbol trades as a Poisson process of
    /// `ticks_per_second` (exponential, i.e. jittered, inter-arrival times);
    /// the schedule is absolute from the start, so timing does not drift, and
    /// each tick's `ts_event` is its scheduled time. Ticks due at about the
    /// same time go out as one small batch. Does nothing (but still waits for
    /// cancellation) when disabled, without symbols or with a rate ≤ 0.
    pub async fn run(self, tx: mpsc::Sender<Vec<Tick>>, cancel: CancellationToken) {
        let rate = self.cfg.ticks_per_second;
        let symbols = self.cfg.symbols.clone();
        let Some(exp) = (self.cfg.enabled && !symbols.is_empty() && rate.is_finite() && rate > 0.0)
            .then(|| Exp::new(rate).ok())
            .flatten()
        else {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tx.closed() => {}
            }
            return;
        };
        let mut rng = StdRng::seed_from_u64(self.cfg.seed);
        let mut gap = move || -> u64 { (exp.sample(&mut rng) * 1e9).round().max(1.0) as u64 };
        let origin = tokio::time::Instant::now();
        let origin_wall = now_ns();
        let mut heap: BinaryHeap<Reverse<(u64, usize)>> =
            (0..symbols.len()).map(|i| Reverse((gap(), i))).collect();
        let mut last_wake = origin;
        let mut dropped: u64 = 0;
        tracing::info!(symbols = symbols.len(), rate, "simulated feed started");
        loop {
            let Some(Reverse((due, _))) = heap.peek().copied() else {
                return;
            };
            let wake = (origin + Duration::from_nanos(due)).max(last_wake + MIN_BATCH_GAP);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tx.closed() => break,
                _ = tokio::time::sleep_until(wake) => {}
            }
            last_wake = tokio::time::Instant::now();
            let now_off =
                u64::try_from(last_wake.duration_since(origin).as_nanos()).unwrap_or(u64::MAX);
            let mut batch = Vec::new();
            while batch.len() < MAX_BATCH {
                let Some(Reverse((due, i))) = heap.peek().copied() else {
                    break;
                };
                if due > now_off {
                    break;
                }
                heap.pop();
                if now_off - due > MAX_LAG_NS {
                    dropped += 1;
                    heap.push(Reverse((now_off + gap(), i)));
                    continue;
                }
                let ts = origin_wall.saturating_add(i64::try_from(due).unwrap_or(i64::MAX));
                batch.push(self.market.next_tick(&symbols[i], ts));
                heap.push(Reverse((due + gap(), i)));
            }
            if batch.is_empty() {
                continue;
            }
            let received = now_ns();
            for t in &mut batch {
                t.ts_received = received.max(t.ts_event);
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                sent = tx.send(batch) => if sent.is_err() { break },
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "simulated feed dropped ticks a slow consumer could not take"
            );
        }
        tracing::info!("simulated feed stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn sym(s: &str) -> Symbol {
        Symbol::parse(s).unwrap()
    }

    const T0: i64 = 1_700_000_000_000_000_000;
    const MS: i64 = 1_000_000;

    #[test]
    fn same_seed_same_prices_and_symbols_are_independent() {
        let a = SimulatedMarket::new(7);
        let b = SimulatedMarket::new(7);
        let c = SimulatedMarket::new(8);
        let aapl = sym("AAPL");
        let mut pa = Vec::new();
        for i in 0..200 {
            let ta = a.next_tick(&aapl, T0 + i * 100 * MS);
            // b interleaves another symbol: AAPL's path must not change.
            b.next_tick(&sym("BTC-USDT"), T0 + i * 100 * MS);
            let tb = b.next_tick(&aapl, T0 + i * 100 * MS);
            assert_eq!(ta, tb, "tick {i}");
            pa.push(ta.price);
        }
        let pc: Vec<Decimal> = (0..200)
            .map(|i| c.next_tick(&aapl, T0 + i * 100 * MS).price)
            .collect();
        assert_ne!(pa, pc, "another seed gives another path");
        assert_eq!(
            pa[0],
            Decimal::from_str("190.00").unwrap(),
            "first tick at the start price"
        );
        assert!(pa.iter().any(|p| *p != pa[0]), "the price moves");
    }

    #[test]
    fn tick_sizes_follow_the_grid() {
        let m = SimulatedMarket::new(1);
        for (s, price_scale, size_scale) in [
            ("AAPL", 2, 0),
            ("TSLA", 2, 0),
            ("BTC-USDT", 2, 4),
            ("ETH-USDT", 2, 4),
        ] {
            let symbol = sym(s);
            for i in 0..500 {
                let t = m.next_tick(&symbol, T0 + i * 10 * MS);
                assert!(
                    t.price.scale() == price_scale,
                    "{s} price {} not on a 10^-{price_scale} grid",
                    t.price
                );
                assert!(
                    t.size.scale() == size_scale,
                    "{s} size {} not on a 10^-{size_scale} grid",
                    t.size
                );
                assert!(
                    t.price > Decimal::ZERO && t.size > Decimal::ZERO,
                    "{s}: {t:?}"
                );
                assert_eq!(t.kind, TickKind::Trade);
                assert_eq!(t.sequence, Some(i as u64 + 1));
                t.validate(T0 + 86_400_000 * MS).unwrap();
            }
        }
        // Sub-dollar crypto gets finer steps than 0.01 rather than collapsing.
        let doge = m.next_tick(&sym("DOGE-USDT"), T0);
        assert_eq!(doge.price, Decimal::from_str("0.15000").unwrap());
        assert_eq!(to_decimal(123.456, 2, true).to_string(), "123.46");
        assert_eq!(
            to_decimal(0.00001, 4, true).to_string(),
            "0.0001",
            "never rounds to zero"
        );
    }

    #[test]
    fn unknown_symbols_get_stable_plausible_start_prices() {
        let p1 = SimulatedMarket::start_price(&sym("ZZZZ"));
        assert_eq!(p1, SimulatedMarket::start_price(&sym("ZZZZ")));
        assert_ne!(p1, SimulatedMarket::start_price(&sym("ZZZY")));
        for s in [
            "ZZZZ", "ABCD", "X", "BRK.A2", "FOO-USDT", "FOO-BTC", "^FOO", "ABCUSD=X",
        ] {
            let p = SimulatedMarket::start_price(&sym(s));
            assert!(p > Decimal::ZERO && p < Decimal::from(20_001), "{s}: {p}");
            let a = SimulatedMarket::new(3).next_tick(&sym(s), T0);
            assert_eq!(a.price, p, "{s}");
        }
        assert_eq!(
            SimulatedMarket::start_price(&sym("BTC-USDT")),
            Decimal::from(65_000)
        );
    }

    #[test]
    fn volatility_is_realistic_per_asset_class() {
        // Daily log-return stdev over many simulated days: ~sigma/sqrt(252) for
        // equities (trading day = 6.5 h), ~sigma/sqrt(365) for crypto.
        let m = SimulatedMarket::new(11);
        let day_stdev = |s: &str, day_ns: i64| {
            let symbol = sym(s);
            let mut prev = m.next_tick(&symbol, T0).price;
            let mut rets = Vec::new();
            for d in 1..=2000 {
                let p = m.next_tick(&symbol, T0 + d * day_ns).price;
                rets.push((f64::try_from(p).unwrap() / f64::try_from(prev).unwrap()).ln());
                prev = p;
            }
            let mean = rets.iter().sum::<f64>() / rets.len() as f64;
            (rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rets.len() - 1) as f64).sqrt()
        };
        let aapl = day_stdev("AAPL", 23_400 * 1_000 * MS);
        let btc = day_stdev("BTC-USDT", 86_400 * 1_000 * MS);
        assert!(
            (0.25 / 252f64.sqrt() * 0.85..0.25 / 252f64.sqrt() * 1.15).contains(&aapl),
            "AAPL {aapl}"
        );
        assert!(
            (0.55 / 365.25f64.sqrt() * 0.85..0.55 / 365.25f64.sqrt() * 1.15).contains(&btc),
            "BTC {btc}"
        );
    }

    #[test]
    fn generate_is_pure_round_robin_and_deterministic() {
        let m = SimulatedMarket::new(5);
        let symbols = [sym("AAPL"), sym("BTC-USDT"), sym("NEWCO")];
        let a = m.generate(&symbols, T0, MS, 3_000);
        assert_eq!(a.len(), 3_000);
        assert_eq!(a, m.generate(&symbols, T0, MS, 3_000));
        for (i, t) in a.iter().enumerate() {
            assert_eq!(t.symbol, symbols[i % 3]);
            assert_eq!(t.ts_event, T0 + i as i64 * MS);
        }
        // Live state untouched, and live ticks follow the same walk.
        assert_eq!(m.next_tick(&symbols[0], T0), a[0]);
        assert!(m.generate(&[], T0, MS, 10).is_empty());
    }

    #[tokio::test]
    async fn provider_latest_and_history() {
        let p = SimulatedProvider::new(Arc::new(SimulatedMarket::new(1)));
        let t = p.latest(&sym("ANYTHING")).await.unwrap();
        assert_eq!(t.kind, TickKind::Last);
        assert_eq!(&*t.source, "simulated");
        assert!(p.health().last_success_ns.is_some());
        let now = now_ns();
        let req = HistoryRequest {
            symbol: sym("AAPL"),
            interval: marketd_model::Interval::M1,
            from: now - 3_600 * 1_000 * MS,
            to: now + 3_600 * 1_000 * MS,
        };
        let bars = p.history(&req).await.unwrap();
        assert!((60..=61).contains(&bars.len()), "{}", bars.len());
        for w in bars.windows(2) {
            assert_eq!(w[1].start - w[0].start, 60_000 * MS);
        }
        assert!(
            bars.iter()
                .all(|b| b.start >= req.from && b.start <= now && b.low <= b.high)
        );
        assert!(bars.first().unwrap().closed && !bars.last().unwrap().closed);
        let day = HistoryRequest {
            interval: marketd_model::Interval::S1,
            from: 0,
            to: now,
            ..req
        };
        assert_eq!(
            p.history(&day).await.unwrap().len() as i64,
            MAX_HISTORY_BARS
        );
    }

    #[tokio::test(start_paused = true)]
    async fn feed_rate_jitter_batches_and_no_drift() {
        let market = Arc::new(SimulatedMarket::new(9));
        let cfg = SimulatedFeedConfig {
            symbols: vec![sym("AAPL"), sym("BTC-USDT")],
            ticks_per_second: 100.0,
            ..SimulatedFeedConfig::default()
        };
        let (tx, mut rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let started = tokio::time::Instant::now();
        let feed = tokio::spawn(SimulatedFeed::new(cfg, market).run(tx, cancel.clone()));
        let mut ticks: Vec<Tick> = Vec::new();
        let mut batches = 0;
        while started.elapsed() < Duration::from_secs(10) {
            let batch = rx.recv().await.expect("feed alive");
            assert!(!batch.is_empty() && batch.len() <= MAX_BATCH);
            batches += 1;
            ticks.extend(batch);
        }
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), feed)
            .await
            .expect("stops on cancel")
            .unwrap();
        let first = ticks[0].ts_event;
        let span_s = (ticks.last().unwrap().ts_event - first) as f64 / 1e9;
        // Event times keep pace with the (virtual) clock: no drift.
        assert!((span_s - 10.0).abs() < 0.1, "span {span_s}");
        for s in ["AAPL", "BTC-USDT"] {
            let mine: Vec<&Tick> = ticks.iter().filter(|t| t.symbol.as_str() == s).collect();
            // Poisson(1000): 5 standard deviations is ±160.
            assert!((840..=1160).contains(&mine.len()), "{s}: {}", mine.len());
            let gaps: Vec<i64> = mine
                .windows(2)
                .map(|w| w[1].ts_event - w[0].ts_event)
                .collect();
            assert!(gaps.iter().all(|g| *g > 0), "{s}: event times increase");
            let distinct: std::collections::HashSet<_> = gaps.iter().collect();
            assert!(
                distinct.len() > gaps.len() / 2,
                "{s}: inter-arrival times are jittered"
            );
        }
        assert!(batches < ticks.len(), "ticks are batched");
        assert!(batches > 100, "but in small batches: {batches}");
    }

    #[tokio::test(start_paused = true)]
    async fn feed_stops_when_receiver_dropped() {
        let (tx, rx) = mpsc::channel(1);
        let feed = tokio::spawn(
            SimulatedFeed::new(
                SimulatedFeedConfig::default(),
                Arc::new(SimulatedMarket::new(1)),
            )
            .run(tx, CancellationToken::new()),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(rx);
        tokio::time::timeout(Duration::from_secs(1), feed)
            .await
            .expect("stops when the receiver is gone")
            .unwrap();
    }
}
