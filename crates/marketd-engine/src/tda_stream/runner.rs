//! Each basket as a unit of the [`Supervisor`](crate::supervisor::Supervisor):
//! the baskets are the configured ones, and a basket runs on the worker whose
//! `tda-stream` consumer owns the partition of its id on `tda-signals`, so
//! with several workers on Kafka each basket is computed by exactly one,
//! and a rebalance moves it (the new owner rebuilds it from the store).
//!
//! A running basket follows `bars` with a tail (every bar, not a share of
//! a consumer group: a basket needs all its symbols, which live on several
//! partitions), waits `settle_ms` so that bars published just before are
//! stored, rebuilds its state from the stored signals and bars (computing
//! any window the stored bars complete that was not done), then computes
//! each window as its last bar closes: upsert into `tda_signals`, then
//! publish on `tda-signals`. A tail that falls behind (memory bus) rebuilds
//! from the store the same way; a failed write ends the run and the
//! supervisor restarts it, which rebuilds it too.

use super::{BasketConfig, BasketState, Computed, TdaStreamConfig};
use crate::supervisor::{Command, UnitKind, UnitResult};
use marketd_bus::{AnyBus, Bus, Tailed};
use marketd_model::time::now_ns;
use marketd_model::{Envelope, Event, Topic, rust_decimal_to_f64};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, SignalQuery};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most bars read per symbol when rebuilding.
const REBUILD_BARS: u32 = 100_000;

/// The streaming baskets as a supervised unit kind.
#[derive(Debug)]
pub struct TdaBaskets {
    cfg: TdaStreamConfig,
    store: Arc<AnyStore>,
    bus: AnyBus,
}

/// The unit id of a basket: a stable hash of its name.
pub fn basket_id(name: &str) -> Uuid {
    let h = |seed: u64| {
        name.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    Uuid::from_u64_pair(h(0xcbf2_9ce4_8422_2325), h(0x8422_2325_cbf2_9ce4))
}

impl TdaBaskets {
    pub fn new(cfg: TdaStreamConfig, store: Arc<AnyStore>, bus: AnyBus) -> Self {
        TdaBaskets { cfg, store, bus }
    }

    /// The state of `basket` after what the store holds, and the windows the
    /// stored bars complete beyond the newest stored signal (not yet written).
    pub async fn rebuild(
        &self,
        basket: &BasketConfig,
    ) -> marketd_store::Result<(BasketState, Vec<Computed>)> {
        rebuild(&*self.store, &self.cfg, basket, now_ns()).await
    }

    /// Writes one computed window: upsert, then publish; metrics.
    async fn emit(&self, c: &Computed, live: bool) -> UnitResult {
        let s = &c.signal;
        self.store.upsert_tda_signal(s).await?;
        self.bus.publish(Event::TdaSignal(s.clone())).await?;
        let basket = s.basket.clone();
        metrics::counter!("marketd_tda_stream_windows_total", "basket" => basket.clone())
            .increment(1);
        metrics::histogram!(
            "marketd_tda_computation_seconds",
            "algorithm" => "vietoris-rips",
            "dim" => "1"
        )
        .record(c.measures.seconds);
        if s.alarm_raised {
            metrics::counter!("marketd_tda_stream_alarms_total", "basket" => basket.clone())
                .increment(1);
            tracing::warn!(basket = %basket, zscore = ?s.zscore, window_end = s.window_end, "tda alarm raised");
        }
        if live {
            metrics::histogram!("marketd_tda_stream_emit_lag_seconds")
                .record(emit_lag_seconds(s, basket_interval(&self.cfg, &basket)));
        }
        Ok(())
    }

    async fn run_basket(&self, basket: Arc<BasketConfig>, cancel: CancellationToken) -> UnitResult {
        let mut tail = self.bus.tail(Topic::Bars).await?;
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(self.cfg.settle_ms)) => {}
        }
        let (mut state, catch_up) = self.rebuild(&basket).await?;
        tracing::info!(
            basket = %basket.name,
            last_window_end = ?state.last_end(),
            catch_up = catch_up.len(),
            "tda basket started"
        );
        for c in &catch_up {
            self.emit(c, false).await?;
        }
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                next = tail.recv() => next?,
            };
            match next {
                None => return Ok(()),
                Some(Tailed::Lagged(n)) => {
                    tracing::warn!(basket = %basket.name, skipped = n, "bars tail fell behind; rebuilding from the store");
                    let (rebuilt, catch_up) = self.rebuild(&basket).await?;
                    state = rebuilt;
                    for c in &catch_up {
                        self.emit(c, false).await?;
                    }
                }
                Some(Tailed::Message(d)) => {
                    let Some((i, start, close)) = accept(&state, &d.envelope) else {
                        continue;
                    };
                    for c in state.push(i, start, close, now_ns()) {
                        self.emit(&c, true).await?;
                    }
                }
            }
        }
    }
}

fn basket_interval(cfg: &TdaStreamConfig, name: &str) -> i64 {
    cfg.basket(name).map_or(0, |b| b.interval.nanos())
}

/// Emit lag: the signal's emission time minus the end of its window in event
/// time (the end of the window's last bar, `window_end + interval`).
pub fn emit_lag_seconds(s: &marketd_model::TdaSignal, interval_ns: i64) -> f64 {
    (s.emitted_at - (s.window_end + interval_ns)) as f64 / 1e9
}

/// A closed bar of one of the basket's symbols, of its interval and source:
/// (symbol index, start, close).
fn accept(state: &BasketState, envelope: &Envelope) -> Option<(usize, i64, f64)> {
    let Event::Bar(b) = &envelope.event else {
        return None;
    };
    let cfg = &state.cfg;
    if !b.closed
        || b.interval != cfg.interval
        || cfg.source.as_deref().is_some_and(|s| s != &*b.source)
    {
        return None;
    }
    let i = state.symbol_index(b.symbol.as_str())?;
    Some((i, b.start, rust_decimal_to_f64(b.close)))
}

/// [`TdaBaskets::rebuild`] on any store, at time `now`.
pub async fn rebuild<S: SignalStore + SeriesStore>(
    store: &S,
    cfg: &TdaStreamConfig,
    basket: &BasketConfig,
    now: i64,
) -> marketd_store::Result<(BasketState, Vec<Computed>)> {
    let stored = store
        .tda_signals(&SignalQuery {
            basket: basket.name.clone(),
            from: None,
            to: None,
            limit: u32::try_from(cfg.zscore_history).unwrap_or(u32::MAX),
        })
        .await?;
    let mut state = BasketState::new(basket.clone(), cfg.zscore_history, &stored);
    let interval = basket.interval.nanos();
    // Enough bars for the newest stored window (to continue its Wasserstein
    // distance) with room for gaps; on a first start, enough for the
    // z-score history to exist at once when the bars are there.
    let from = match state.last_end() {
        Some(end) => end - (2 * basket.window as i64 + 16) * interval,
        None => {
            now - 2 * (basket.window + (basket.min_history + 1) * basket.step) as i64 * interval
        }
    };
    let mut bars: Vec<(i64, usize, f64)> = Vec::new();
    for (i, symbol) in basket.symbols.iter().enumerate() {
        let q = BarQuery {
            symbol: symbol.clone(),
            source: basket.source.clone(),
            interval: basket.interval,
            from: Some(from),
            to: None,
            limit: REBUILD_BARS,
        };
        for b in store.bars(&q).await? {
            if b.closed {
                bars.push((b.start, i, rust_decimal_to_f64(b.close)));
            }
        }
    }
    bars.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut computed = Vec::new();
    for (start, i, close) in bars {
        computed.extend(state.push(i, start, close, now));
    }
    Ok((state, computed))
}

impl UnitKind for TdaBaskets {
    type Unit = Arc<BasketConfig>;
    const NAME: &'static str = "tda-basket";
    const TOPIC: Topic = Topic::TdaSignals;
    const GROUP: &'static str = "tda-stream";
    const RUNNING_GAUGE: &'static str = "marketd_tda_stream_baskets_running";

    fn id(unit: &Self::Unit) -> Uuid {
        basket_id(&unit.name)
    }

    async fn load(&self) -> marketd_store::Result<Vec<Self::Unit>> {
        Ok(self.cfg.baskets.iter().cloned().map(Arc::new).collect())
    }

    /// Signals on the topic are not commands: the baskets come from the
    /// configuration, the topic only decides who owns which.
    fn command(&self, _envelope: &Envelope) -> Option<Command<Self::Unit>> {
        None
    }

    async fn run(self: Arc<Self>, unit: Self::Unit, cancel: CancellationToken) -> UnitResult {
        self.run_basket(unit, cancel).await
    }
}
