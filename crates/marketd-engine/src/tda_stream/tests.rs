//! Window assembly, alignment and the alarm state machine.

use super::alarm::{Alarm, AlarmParams, History};
use super::window::{Assembler, log_returns, point_cloud};

const SEC: i64 = 1_000_000_000;

#[test]
fn windows_need_every_symbol_and_align_on_the_step_grid() {
    // 2 symbols, 1 s bars, windows of 3 bars every 2 bars.
    let mut a = Assembler::new(2, SEC, 3, 2);
    let mut ends = Vec::new();
    for t in 10..20i64 {
        ends.extend(
            a.push(0, t * SEC, 100.0 + t as f64)
                .iter()
                .map(|w| w.end() / SEC),
        );
        // Symbol 1 has no bar at 13: that step is skipped.
        if t != 13 {
            ends.extend(
                a.push(1, t * SEC, 50.0 + t as f64)
                    .iter()
                    .map(|w| w.end() / SEC),
            );
        }
    }
    // Complete steps 10 11 12 14 15 ...; windows end on even starts once 3
    // complete steps exist: 12 (10,11,12), 14 (11,12,14), 16, 18.
    assert_eq!(ends, [12, 14, 16, 18]);
    assert_eq!(a.skipped, 1);
}

#[test]
fn a_step_is_sealed_only_when_every_symbol_has_moved_past_it() {
    let mut a = Assembler::new(2, SEC, 3, 1);
    for t in 0..3 {
        assert!(
            a.push(0, t * SEC, 10.0).is_empty(),
            "symbol 1 has not reported"
        );
    }
    assert!(a.push(1, 0, 5.0).is_empty());
    assert!(a.push(1, SEC, 5.0).is_empty());
    let w = a.push(1, 2 * SEC, 5.5);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].starts, [0, SEC, 2 * SEC]);
    assert_eq!(w[0].closes[2], [10.0, 5.5]);
    // A redelivered bar of a sealed step changes nothing.
    assert!(a.push(1, 2 * SEC, 99.0).is_empty());
    assert!(a.push(0, 2 * SEC, 99.0).is_empty());
    // Symbol 1 jumps ahead: step 3 is sealed without it (skipped).
    assert!(a.push(1, 4 * SEC, 6.0).is_empty());
    assert_eq!(
        a.skipped, 0,
        "step 3 is not sealed before symbol 0 reaches it"
    );
    assert!(a.push(0, 3 * SEC, 10.0).is_empty());
    assert_eq!(a.skipped, 1, "both reached 3, symbol 1 has no bar there");
    let w = a.push(0, 4 * SEC, 11.0);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].starts, [SEC, 2 * SEC, 4 * SEC]);
}

#[test]
fn returns_and_embedding() {
    let mut a = Assembler::new(1, SEC, 5, 1);
    let closes = [100.0, 110.0, 99.0, 99.0, 108.9];
    let mut w = Vec::new();
    for (t, c) in closes.iter().enumerate() {
        w.extend(a.push(0, t as i64 * SEC, *c));
    }
    let r = log_returns(&w[0]);
    let expect = [1.1f64.ln(), 0.9f64.ln(), 0.0, 1.1f64.ln()];
    for (x, e) in r.iter().zip(expect) {
        assert!((x[0] - e).abs() < 1e-12);
    }
    let (n, dim, coords) = point_cloud(&r, Some((2, 2)));
    assert_eq!((n, dim), (2, 2));
    assert_eq!(
        coords,
        [expect[0] as f32, 0.0, expect[1] as f32, expect[3] as f32]
    );
    let (n, dim, _) = point_cloud(&r, None);
    assert_eq!((n, dim), (4, 1));
}

#[test]
fn closed_form_landscape_norms_equal_the_exact_ones_and_entropy_is_in_nats() {
    use super::signal::{landscape_norms, persistence_entropy};
    use marketd_tda::Bar;
    use marketd_tda::summaries::landscape_norm_exact;
    let bars = [
        Bar::new(0.0, 4.0),
        Bar::new(1.0, 3.0),
        Bar::new(2.0, 7.5),
        Bar::new(2.5, 2.75),
        Bar::new(6.0, 9.0),
        Bar::new(1.0, f64::INFINITY),
    ];
    let (l1, l2) = landscape_norms(&bars);
    let (e1, e2) = (
        landscape_norm_exact(&bars, 1.0),
        landscape_norm_exact(&bars, 2.0),
    );
    assert!((l1 - e1).abs() <= 1e-12 * e1, "{l1} {e1}");
    assert!((l2 - e2).abs() <= 1e-12 * e2, "{l2} {e2}");
    // One bar [0, 2): a tent of height 1, area 1, ∫ tent² = 2/3.
    assert_eq!(
        landscape_norms(&[Bar::new(0.0, 2.0)]),
        (1.0, (2.0f64 / 3.0).sqrt())
    );
    assert_eq!(landscape_norms(&[]), (0.0, 0.0));
    // Lengths 1 and 3: p = 1/4, 3/4.
    let h = persistence_entropy(&[Bar::new(0.0, 1.0), Bar::new(1.0, 4.0)]);
    let expect = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
    assert!((h - expect).abs() < 1e-15);
    assert_eq!(persistence_entropy(&[]), 0.0);
}

#[test]
fn robust_zscore_uses_median_and_mad() {
    let mut h = History::new(5, 3);
    h.push(1.0);
    h.push(2.0);
    assert_eq!(h.zscore(10.0), None, "too little history");
    h.push(3.0);
    // median 2, MAD 1 → scale 1.4826.
    let z = h.zscore(5.0).unwrap();
    assert!((z - 3.0 / 1.4826).abs() < 1e-12, "{z}");
    for x in [4.0, 5.0, 6.0] {
        h.push(x);
    }
    assert_eq!(h.len(), 5, "only the newest 5 are kept");
    // 2..6: median 4, MAD 1.
    assert!((h.zscore(4.0).unwrap()).abs() < 1e-12);
    let mut flat = History::new(5, 3);
    for _ in 0..4 {
        flat.push(1.0);
    }
    assert_eq!(flat.zscore(2.0), None, "no spread, no z-score");
}

fn params() -> AlarmParams {
    AlarmParams {
        threshold: 3.0,
        hysteresis: 1.5,
        cooldown: 3,
    }
}

#[test]
fn alarm_threshold_hysteresis_and_cooldown() {
    let mut a = Alarm::new(params());
    let seq = [
        (Some(2.9), (false, false)),
        (None, (false, false)),
        (Some(3.0), (true, true)),
        (Some(2.0), (true, false)),  // above hysteresis: stays on
        (Some(1.4), (false, false)), // clears
        (Some(5.0), (false, false)), // 3rd window after the raise: cooling down
        (Some(5.0), (true, true)),   // 4th: raised again
        (None, (true, false)),
        (Some(1.49), (false, false)),
    ];
    for (i, (z, expect)) in seq.into_iter().enumerate() {
        assert_eq!(a.step(z), expect, "window {i}");
    }
}

#[test]
fn alarm_restores_from_stored_windows() {
    // Raised two windows ago and still on.
    let a = Alarm::restore(
        params(),
        &[(false, false), (true, true), (true, false), (true, false)],
    );
    assert!(a.on);
    assert_eq!(a.since_raise, Some(2));
    let mut b = a;
    assert_eq!(b.step(Some(1.0)), (false, false));
    assert_eq!(b.step(Some(9.0)), (true, true), "4 windows after the raise");
    let c = Alarm::restore(params(), &[]);
    assert!(!c.on);
    assert_eq!(c.since_raise, None);
}

// ---------------------------------------------------------------------------
// The signal on a simulated regime change, computed offline.

use super::runner::{TdaBaskets, rebuild};
use super::{BasketConfig, BasketState, TdaStreamConfig};
use crate::supervisor::Supervisor;
use marketd_bus::{AnyBus, Bus, BusOptions};
use marketd_model::{Bar, Decimal, Event, Interval, Symbol, TdaSignal, rust_decimal_to_f64};
use marketd_sources::{Regime, SimulatedMarket};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, SignalQuery};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const T0: i64 = 1_700_000_000 * SEC;

fn symbols() -> Vec<Symbol> {
    ["BTC-USDT", "BTC-USD", "ETH-USDT", "ETH-USD"]
        .into_iter()
        .map(|s| Symbol::parse(s).unwrap())
        .collect()
}

/// Closes of 1 s bars of the basket's symbols, one trade per symbol per
/// second from the simulated market (seed 7), with a regime change (vol ×3,
/// correlation 0.8) at `T0 + change` seconds.
fn regime_series(seconds: i64, change: i64) -> Vec<(i64, Vec<f64>)> {
    let market = SimulatedMarket::new(7);
    market.set_regime(Some(Regime {
        at_ns: T0 + change * SEC,
        symbols: symbols(),
        volatility_factor: 3.0,
        correlation: 0.8,
    }));
    (0..seconds)
        .map(|t| {
            let ts = T0 + t * SEC;
            let closes = symbols()
                .iter()
                .map(|s| rust_decimal_to_f64(market.next_tick(s, ts).price))
                .collect();
            (ts, closes)
        })
        .collect()
}

fn basket(window: usize, step: usize) -> BasketConfig {
    BasketConfig {
        step,
        ..BasketConfig::new("crypto4", symbols(), Interval::S1, window)
    }
}

fn run_offline(cfg: &BasketConfig, series: &[(i64, Vec<f64>)]) -> Vec<TdaSignal> {
    let mut state = BasketState::new(cfg.clone(), 100, &[]);
    let mut out = Vec::new();
    for (ts, closes) in series {
        for (i, c) in closes.iter().enumerate() {
            out.extend(state.push(i, *ts, *c, *ts).into_iter().map(|c| c.signal));
        }
    }
    out
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn alarm_fires_after_the_regime_change_and_not_before() {
    let change = 600;
    let series = regime_series(900, change);
    // 50-point windows in R^4 every 5 bars, default alarm parameters.
    let cfg = basket(51, 5);
    let signals = run_offline(&cfg, &series);
    assert_eq!(
        signals.len(),
        (900 - 50) / 5,
        "one signal per grid step once 51 bars exist"
    );
    let at = T0 + change * SEC;
    let calm: Vec<&TdaSignal> = signals.iter().filter(|s| s.window_end < at).collect();
    let after: Vec<&TdaSignal> = signals.iter().filter(|s| s.window_end >= at).collect();
    assert!(
        calm.iter().filter(|s| s.zscore.is_some()).count() >= 50,
        "a calm history exists"
    );
    assert!(
        calm.iter().all(|s| !s.alarm && !s.alarm_raised),
        "no alarm in the calm segment: {:?}",
        calm.iter()
            .filter(|s| s.alarm)
            .map(|s| (s.window_end - T0) / SEC)
            .collect::<Vec<_>>()
    );
    let first = after
        .iter()
        .find(|s| s.alarm_raised)
        .expect("the alarm fires after the change");
    let delay = (first.window_end - at) / SEC;
    assert!(
        delay <= 50,
        "raised {delay} s after the change, within one window"
    );
    // Every field is filled.
    assert_eq!(first.points, 50);
    assert!(first.h1_bars > 0 && first.landscape_l1 > 0.0 && first.landscape_l2 > 0.0);
    assert!(first.entropy > 0.0 && first.wasserstein.is_some() && first.volatility > 0.0);
    assert!(first.zscore.unwrap() >= 3.0);
    // The norm follows volatility: report their correlation over the run.
    let l1: Vec<f64> = signals.iter().map(|s| s.landscape_l1).collect();
    let vol: Vec<f64> = signals.iter().map(|s| s.volatility).collect();
    let vol2: Vec<f64> = vol.iter().map(|v| v * v).collect();
    let (r, r2) = (pearson(&l1, &vol), pearson(&l1, &vol2));
    let mean = |xs: &[&TdaSignal], f: fn(&TdaSignal) -> f64| {
        xs.iter().map(|s| f(s)).sum::<f64>() / xs.len() as f64
    };
    eprintln!(
        "regime run: windows {} calm {} first alarm +{delay}s; corr(L1, vol) = {r:.3}, corr(L1, vol^2) = {r2:.3}; \
         mean L1 calm {:.3e} late {:.3e}; mean vol calm {:.3e} late {:.3e}",
        signals.len(),
        calm.len(),
        mean(&calm, |s| s.landscape_l1),
        mean(&after[after.len() / 2..], |s| s.landscape_l1),
        mean(&calm, |s| s.volatility),
        mean(&after[after.len() / 2..], |s| s.volatility),
    );
    assert!(
        r > 0.5,
        "landscape L1 follows realized volatility (r = {r})"
    );
}

#[test]
fn delay_embedding_baskets_compute() {
    let series = regime_series(200, 1_000);
    let cfg = BasketConfig {
        embedding: Some(super::Embedding {
            dimension: 3,
            delay: 2,
        }),
        symbols: vec![symbols()[0].clone()],
        ..basket(41, 10)
    };
    assert_eq!(cfg.points(), 36);
    let one: Vec<(i64, Vec<f64>)> = series.iter().map(|(t, c)| (*t, vec![c[0]])).collect();
    let signals = run_offline(&cfg, &one);
    assert_eq!(signals.len(), (200 - 40) / 10);
    assert!(signals.iter().all(|s| s.points == 36));
    assert!(signals.iter().any(|s| s.h1_bars > 0));
}

// ---------------------------------------------------------------------------
// Exactly once, through the real runner: bars on the bus (twice), a restart.

fn bar(symbol: &Symbol, start: i64, close: f64) -> Bar {
    let close = Decimal::from_f64_retain(close).unwrap().round_dp(6);
    Bar {
        symbol: symbol.clone(),
        source: "simulated".into(),
        interval: Interval::S1,
        start,
        open: close,
        high: close,
        low: close,
        close,
        volume: Decimal::ONE,
        trades: 1,
        notional: None,
        vwap: None,
        first_ts: start,
        last_ts: start,
        closed: true,
    }
}

fn bars_of(series: &[(i64, Vec<f64>)]) -> Vec<Bar> {
    series
        .iter()
        .flat_map(|(t, closes)| {
            symbols()
                .iter()
                .zip(closes)
                .map(|(s, c)| bar(s, *t, *c))
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn ends(store: &AnyStore) -> Vec<i64> {
    let q = SignalQuery {
        basket: "crypto4".into(),
        from: Some(0),
        to: None,
        limit: 10_000,
    };
    let xs = store.tda_signals(&q).await.unwrap();
    xs.iter().map(|s| (s.window_end - T0) / SEC).collect()
}

#[tokio::test]
async fn redelivery_and_restart_store_each_window_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::sqlite_store(&dir).await;
    let bus = AnyBus::connect("memory://", BusOptions::default())
        .await
        .unwrap();
    let cfg = TdaStreamConfig {
        baskets: vec![basket(11, 5)],
        settle_ms: 0,
        ..TdaStreamConfig::default()
    };
    let series = regime_series(120, 10_000);
    let (first, second) = series.split_at(60);
    let start = |cancel: CancellationToken| {
        let kind = TdaBaskets::new(cfg.clone(), store.clone(), bus.clone());
        let tasks = TaskTracker::new();
        let bus = bus.clone();
        async move {
            let sup = Supervisor::start(kind, &bus, cancel, &tasks).await.unwrap();
            (sup, tasks)
        }
    };
    let mut signals = bus.tail(marketd_model::Topic::TdaSignals).await.unwrap();

    // Run 1: the first minute's bars, stored (as the bar sink does) and
    // published twice (a redelivery).
    let cancel = CancellationToken::new();
    let (sup, tasks) = start(cancel.clone()).await;
    let id = super::runner::basket_id("crypto4");
    marketd_testkit::wait_until(Duration::from_secs(10), "the basket runs", || {
        let s = sup.state(id);
        async move { (s == Some(crate::UnitState::Running)).then_some(()) }
    })
    .await;
    // The runner follows `bars` once it has rebuilt; wait for that before
    // publishing, by the rebuild's log-free signal: an empty store read.
    let bars = bars_of(first);
    store.upsert_bars(&bars).await.unwrap();
    for _ in 0..2 {
        for b in &bars {
            bus.publish(Event::Bar(b.clone())).await.unwrap();
        }
    }
    // Windows end on multiples of 5 s once 11 bars exist: 10, 15, ..., 55.
    let expect1: Vec<i64> = (2..=11).map(|k| k * 5).collect();
    marketd_testkit::wait_until(
        Duration::from_secs(20),
        "the first minute's windows",
        || {
            let store = store.clone();
            let expect1 = expect1.clone();
            async move { (ends(&store).await == expect1).then_some(()) }
        },
    )
    .await;
    cancel.cancel();
    tasks.close();
    tasks.wait().await;

    // Published once each on tda-signals, in order.
    let mut published = Vec::new();
    while published.len() < expect1.len() {
        match tokio::time::timeout(Duration::from_secs(10), signals.recv()).await {
            Ok(Ok(Some(marketd_bus::Tailed::Message(d)))) => {
                if let Event::TdaSignal(s) = &d.envelope.event {
                    published.push((s.window_end - T0) / SEC);
                }
            }
            other => panic!("tda-signals ended early: {other:?}"),
        }
    }
    assert_eq!(published, expect1);

    // Down time: the second minute's bars are stored (and published while
    // nobody follows). A restart computes exactly the missing windows.
    store.upsert_bars(&bars_of(second)).await.unwrap();
    let before: Vec<TdaSignal> = store
        .tda_signals(&SignalQuery {
            basket: "crypto4".into(),
            from: Some(0),
            to: None,
            limit: 100,
        })
        .await
        .unwrap();
    let cancel = CancellationToken::new();
    let (_sup, tasks) = start(cancel.clone()).await;
    let expect2: Vec<i64> = (2..=23).map(|k| k * 5).collect();
    marketd_testkit::wait_until(
        Duration::from_secs(20),
        "the windows after the restart",
        || {
            let store = store.clone();
            let expect2 = expect2.clone();
            async move { (ends(&store).await == expect2).then_some(()) }
        },
    )
    .await;
    // Redelivering everything changes nothing.
    for b in bars_of(&series) {
        bus.publish(Event::Bar(b)).await.unwrap();
    }
    cancel.cancel();
    tasks.close();
    tasks.wait().await;
    assert_eq!(ends(&store).await, expect2);
    let after: Vec<TdaSignal> = store
        .tda_signals(&SignalQuery {
            basket: "crypto4".into(),
            from: Some(0),
            to: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "windows done before the restart are untouched"
    );

    // The restarted run continued the state: same values as one run over
    // everything.
    let offline = run_offline(&basket(11, 5), &series);
    for (a, b) in after.iter().zip(&offline) {
        assert_eq!(a.window_end, b.window_end);
        assert!((a.landscape_l1 - b.landscape_l1).abs() <= 1e-9 * b.landscape_l1.max(1e-30));
        assert_eq!(a.zscore.is_some(), b.zscore.is_some());
        assert_eq!(
            a.wasserstein.is_some(),
            b.wasserstein.is_some(),
            "{}",
            a.window_end
        );
        assert_eq!(a.alarm, b.alarm);
    }
    // A rebuild now finds nothing left to do.
    let (state, todo) = rebuild(&*store, &cfg, &cfg.baskets[0], T0 + 200 * SEC)
        .await
        .unwrap();
    assert!(todo.is_empty());
    assert_eq!(state.last_end(), Some(T0 + 115 * SEC));
    store.close().await;
}
