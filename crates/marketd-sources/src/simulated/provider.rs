//! The simulated market as a provider (`latest`, synthetic `history`).

use super::walk::{Walk, splitmix64};
use super::{NAME, SimulatedMarket};
use crate::health::{ProviderHealth, Tracker};
use crate::{HistoryRequest, Provider, Result};
use marketd_model::time::now_ns;
use marketd_model::{Bar, Decimal, Symbol, Tick, TickKind};
use rand::Rng;
use std::sync::Arc;

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
            self.market.seed() ^ splitmix64(step as u64) ^ splitmix64(first as u64).rotate_left(17),
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
                let tick = walk.trade(&req.symbol, source.clone(), ts);
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
