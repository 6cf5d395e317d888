//! One symbol's random walk: its profile (start price, volatility, tick and
//! trade sizes by asset class) and geometric Brownian motion on its own
//! seeded random stream.

use marketd_model::{Decimal, Symbol, Tick, TickKind};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::Arc;

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
pub(super) enum AssetClass {
    Equity,
    Crypto,
    Fx,
    Index,
}

/// How a symbol behaves: where it starts, how much it moves, what it trades in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Profile {
    pub(super) class: AssetClass,
    pub(super) start: f64,
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

pub(super) fn splitmix64(mut x: u64) -> u64 {
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

pub(super) fn profile(symbol: &Symbol) -> Profile {
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
pub(super) fn price_scale(class: AssetClass, price: f64) -> u32 {
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
pub(super) fn to_decimal(v: f64, scale: u32, min_one_step: bool) -> Decimal {
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
pub(super) struct Walk {
    pub(super) profile: Profile,
    pub(super) year_secs: f64,
    pub(super) rng: StdRng,
    /// Current (unrounded) price.
    pub(super) price: f64,
    pub(super) last_ns: Option<i64>,
    pub(super) seq: u64,
}

impl Walk {
    pub(super) fn new(seed: u64, symbol: &Symbol) -> Self {
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
    pub(super) fn step(&mut self, now_ns: i64) -> (Decimal, Decimal) {
        self.step_in(now_ns, None)
    }

    /// [`Walk::step`] under a regime: `shock` is (volatility factor,
    /// correlation, market seed) when the regime applies to this walk now.
    pub(super) fn step_in(
        &mut self,
        now_ns: i64,
        shock: Option<(f64, f64, u64)>,
    ) -> (Decimal, Decimal) {
        let t0 = self.last_ns;
        let dt_ns = self
            .last_ns
            .map_or(0, |last| now_ns.saturating_sub(last).max(0));
        self.last_ns = Some(self.last_ns.map_or(now_ns, |last| last.max(now_ns)));
        let mut z: f64 = StandardNormal.sample(&mut self.rng);
        let mut sigma = self.profile.sigma;
        if dt_ns > 0
            && let (Some((factor, rho, seed)), Some(t0)) = (shock, t0)
        {
            sigma *= factor;
            if let Some(zc) = common_factor(seed, t0, t0 + dt_ns) {
                z = rho.sqrt() * zc + (1.0 - rho).sqrt() * z;
            }
        }
        if dt_ns > 0 {
            let dt = dt_ns as f64 / 1e9 / self.year_secs;
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

    /// The walk's next trade of `symbol` at `ts` (its event and receive
    /// time), numbered by the walk's sequence.
    pub(super) fn trade(&mut self, symbol: &Symbol, source: Arc<str>, ts: i64) -> Tick {
        self.trade_in(symbol, source, ts, None, 0)
    }

    /// [`Walk::trade`] under an optional regime change of the market.
    pub(super) fn trade_in(
        &mut self,
        symbol: &Symbol,
        source: Arc<str>,
        ts: i64,
        regime: Option<&super::market::Regime>,
        seed: u64,
    ) -> Tick {
        let shock = regime
            .filter(|r| ts >= r.at_ns && r.symbols.contains(symbol))
            .map(|r| (r.volatility_factor, r.correlation, seed));
        let (price, size) = self.step_in(ts, shock);
        let mut tick = Tick::new(symbol.clone(), source, TickKind::Trade, price, size, ts, ts);
        tick.sequence = Some(self.seq);
        tick
    }
}

/// Cells of the common Brownian path of a regime change.
const CELL_NS: i64 = 10_000_000;
/// Longest span (in cells) the common factor is summed over; longer gaps
/// move on the walk's own noise alone.
const MAX_CELLS: i64 = 1_000_000;

/// A standard normal draw of cell `c`, the same for every walk.
fn cell_normal(seed: u64, c: i64) -> f64 {
    let h1 =
        splitmix64(seed ^ 0x5eed_c0ff_ee00_0001 ^ (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let h2 = splitmix64(h1);
    let u1 = ((h1 >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let u2 = (h2 >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The increment of the shared path over `[t0, t1)` divided by `√(t1-t0)`
/// (a standard normal when the span covers many cells): each cell moves
/// by its own normal draw, spread linearly over the cell.
fn common_factor(seed: u64, t0: i64, t1: i64) -> Option<f64> {
    let (c0, c1) = (t0.div_euclid(CELL_NS), (t1 - 1).div_euclid(CELL_NS));
    if t1 <= t0 || c1 - c0 > MAX_CELLS {
        return None;
    }
    let mut sum = 0.0;
    for c in c0..=c1 {
        let lo = t0.max(c * CELL_NS);
        let hi = t1.min((c + 1) * CELL_NS);
        let frac = (hi - lo) as f64 / CELL_NS as f64;
        sum += frac * cell_normal(seed, c);
    }
    // Each full cell adds variance 1 in units of one cell.
    Some(sum / ((t1 - t0) as f64 / CELL_NS as f64).sqrt())
}
