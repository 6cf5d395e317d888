//! Streaming topological signals.
//!
//! 1. Throughput (criterion, `tda_stream/windows`): one basket's state fed
//!    closed 1 s bars of 4 symbols, a window of 51 bars (50 points in R^4)
//!    completed by every step; each window is the whole signal (H1 by
//!    Vietoris–Rips, exact landscape L1/L2, entropy, 2-Wasserstein to the
//!    previous window, volatility, robust z-score, alarm). One thread.
//! 2. Emit lag (a timed run, printed): the real engine on the memory bus and
//!    SQLite, the simulated feed at `MARKETD_BENCH_TPS` trades per second
//!    per symbol (default 50) on 4 symbols, the aggregator's 1 s bars, a
//!    basket of 21-bar windows every bar; after `MARKETD_BENCH_LAG_SECS`
//!    (default 60; 0 skips) the stored signals give emit lag = emitted_at −
//!    (window_end + 1 s), i.e. from the moment the window's last bar ends in
//!    event time.
//!
//! `cargo bench -p marketd-engine --bench tda_stream`

mod common;

use criterion::{Criterion, Throughput};
use marketd_bus::{AnyBus, BusOptions};
use marketd_engine::tda_stream::runner::emit_lag_seconds;
use marketd_engine::tda_stream::{BasketConfig, BasketState, TdaStreamConfig};
use marketd_engine::{EngineConfig, FeedsConfig, Roles};
use marketd_model::{Interval, Symbol, rust_decimal_to_f64};
use marketd_sources::SimulatedMarket;
use marketd_store::prelude::*;
use marketd_store::{AnyStore, SignalQuery, StoreOptions};
use std::sync::Arc;
use std::time::Duration;

const SEC: i64 = 1_000_000_000;

fn symbols() -> Vec<Symbol> {
    ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT"]
        .into_iter()
        .map(|s| Symbol::parse(s).unwrap())
        .collect()
}

fn basket(window: usize) -> BasketConfig {
    BasketConfig {
        source: Some("simulated".into()),
        ..BasketConfig::new("bench4", symbols(), Interval::S1, window)
    }
}

/// Closes of 1 s bars of the 4 symbols for `steps` seconds.
fn series(steps: usize) -> Vec<Vec<f64>> {
    let market = SimulatedMarket::new(11);
    let t0 = 1_700_000_000 * SEC;
    (0..steps as i64)
        .map(|t| {
            symbols()
                .iter()
                .map(|s| rust_decimal_to_f64(market.next_tick(s, t0 + t * SEC).price))
                .collect()
        })
        .collect()
}

/// Windows of `series` through a fresh basket state.
fn run_basket(series: &[Vec<f64>]) -> u64 {
    let t0 = 1_700_000_000 * SEC;
    let mut state = BasketState::new(basket(51), 100, &[]);
    let mut n = 0u64;
    for (t, closes) in series.iter().enumerate() {
        for (i, c) in closes.iter().enumerate() {
            n += state.push(i, t0 + t as i64 * SEC, *c, 0).len() as u64;
        }
    }
    n
}

/// Windows per CPU second of this process (less sensitive than wall time
/// to other work on a shared machine).
fn per_cpu_second() {
    let series = series(2_050);
    let clock = common::CpuClock::start();
    let started = std::time::Instant::now();
    let mut n = 0;
    for _ in 0..5 {
        n += run_basket(&series);
    }
    println!(
        "tda_stream/windows_50pt_r4: {n} windows, {:.0} windows/s wall; cpu {}",
        n as f64 / started.elapsed().as_secs_f64(),
        clock.per_item(n as usize)
    );
}

fn throughput(c: &mut Criterion) {
    let market = SimulatedMarket::new(11);
    let t0 = 1_700_000_000 * SEC;
    let steps = 1_050usize;
    let series: Vec<Vec<f64>> = (0..steps as i64)
        .map(|t| {
            symbols()
                .iter()
                .map(|s| rust_decimal_to_f64(market.next_tick(s, t0 + t * SEC).price))
                .collect()
        })
        .collect();
    let windows = (steps - 50) as u64;
    let mut g = c.benchmark_group("tda_stream");
    g.throughput(Throughput::Elements(windows));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("windows_50pt_r4", |b| {
        b.iter(|| {
            let mut state = BasketState::new(basket(51), 100, &[]);
            let mut n = 0u64;
            for (t, closes) in series.iter().enumerate() {
                for (i, c) in closes.iter().enumerate() {
                    n += state.push(i, t0 + t as i64 * SEC, *c, 0).len() as u64;
                }
            }
            assert_eq!(n, windows);
        })
    });
    g.finish();
}

async fn lag_run(secs: u64, tps: f64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = AnyStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let bus = AnyBus::connect("memory://", BusOptions::default())
        .await
        .unwrap();
    let backends = common::backends(store.clone(), bus).await;
    let services = common::services(&backends);
    let mut feeds = FeedsConfig::default();
    feeds.simulated.symbols = symbols();
    feeds.simulated.ticks_per_second = tps;
    let cfg = EngineConfig {
        tda_stream: TdaStreamConfig {
            baskets: vec![basket(21)],
            ..TdaStreamConfig::default()
        },
        ..EngineConfig::default()
    };
    let engine = marketd_engine::Engine::start(backends, &cfg, &feeds, &services, Roles::ALL)
        .await
        .unwrap();
    let clock = common::CpuClock::start();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    engine.shutdown().await;
    let q = SignalQuery {
        basket: "bench4".into(),
        from: Some(0),
        to: None,
        limit: 100_000,
    };
    let signals = store.tda_signals(&q).await.unwrap();
    // The first windows may come from the stored bars at start (catch-up).
    let mut lags: Vec<f64> = signals
        .iter()
        .skip(3)
        .map(|s| emit_lag_seconds(s, SEC))
        .collect();
    let late: Vec<String> = signals
        .iter()
        .enumerate()
        .filter(|(_, s)| emit_lag_seconds(s, SEC) > 0.5)
        .map(|(i, s)| format!("#{i} {:.2}s", emit_lag_seconds(s, SEC)))
        .collect();
    if !late.is_empty() {
        println!(
            "tda_stream/emit_lag: windows later than 0.5 s: {}",
            late.join(", ")
        );
    }
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| lags[((lags.len() as f64 - 1.0) * p).round() as usize] * 1e3;
    if lags.is_empty() {
        println!("tda_stream/emit_lag: no windows in {secs} s");
        return;
    }
    println!(
        "tda_stream/emit_lag: {} windows in {secs} s at {tps} trades/s/symbol; emit lag ms p50 {:.1} p95 {:.1} p99 {:.1} max {:.1}; cpu {}",
        lags.len(),
        pct(0.5),
        pct(0.95),
        pct(0.99),
        pct(1.0),
        clock.per_item(lags.len()),
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
    per_cpu_second();
    let secs: u64 = std::env::var("MARKETD_BENCH_LAG_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let tps: f64 = std::env::var("MARKETD_BENCH_TPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50.0);
    if secs > 0 {
        marketd_testkit::bench_runtime().block_on(lag_run(secs, tps));
    }
}
