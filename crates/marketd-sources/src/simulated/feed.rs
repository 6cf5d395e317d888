//! The simulated feed: Poisson arrivals of trades for a set of symbols.

use super::SimulatedMarket;
use crate::config::SimulatedFeedConfig;
use marketd_model::Tick;
use marketd_model::time::now_ns;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Exp};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Minimum time between two batches of the feed.
const MIN_BATCH_GAP: Duration = Duration::from_millis(5);
/// Most ticks in one batch.
pub(super) const MAX_BATCH: usize = 256;
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
