//! The simulated market: one deterministic random walk per symbol.

use super::NAME;
use super::walk::{Walk, price_scale, profile, to_decimal};
use marketd_model::{Decimal, Symbol, Tick};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// A regime change: from `at_ns` on, the walks of `symbols` have their
/// volatility multiplied by `volatility_factor`, and each increment is
/// `√ρ·common + √(1-ρ)·own` where `common` is one Brownian path shared by
/// all of them (ρ = `correlation`, the pairwise correlation of increments
/// over the same interval).
#[derive(Debug, Clone, PartialEq)]
pub struct Regime {
    pub at_ns: i64,
    pub symbols: Vec<Symbol>,
    pub volatility_factor: f64,
    pub correlation: f64,
}

/// The simulated market: one deterministic random walk per symbol.
/// Thread-safe; share it as `Arc<SimulatedMarket>` between the feed and the
/// provider so `latest` agrees with the stream.
#[derive(Debug)]
pub struct SimulatedMarket {
    seed: u64,
    walks: Mutex<HashMap<Symbol, Walk>>,
    regime: RwLock<Option<Arc<Regime>>>,
}

impl SimulatedMarket {
    pub fn new(seed: u64) -> Self {
        SimulatedMarket {
            seed,
            walks: Mutex::new(HashMap::new()),
            regime: RwLock::new(None),
        }
    }

    /// Sets (or clears) the regime change; ticks from now on follow it.
    pub fn set_regime(&self, regime: Option<Regime>) {
        *self.regime.write().unwrap_or_else(|e| e.into_inner()) = regime.map(Arc::new);
    }

    fn regime(&self) -> Option<Arc<Regime>> {
        self.regime
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        let regime = self.regime();
        walk.trade_in(
            symbol,
            Arc::from(NAME),
            now_ns,
            regime.as_deref(),
            self.seed,
        )
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
        let regime = self.regime();
        for i in 0..n {
            let k = i % symbols.len();
            let tick = walks[k].trade_in(
                &symbols[k],
                source.clone(),
                ts,
                regime.as_deref(),
                self.seed,
            );
            out.push(tick);
            ts = ts.saturating_add(step_ns);
        }
        out
    }
}
