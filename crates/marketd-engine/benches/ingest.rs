//! Ingest throughput of the embedded pipeline: simulated ticks published on
//! the memory bus, stored in SQLite by the batched writer, with 1s/1m/5m/1h/1d
//! bars and SMA/EMA (5, 20, 50) derived and stored. Timed from the first
//! publish until shutdown has drained every stage (all rows durable).
//!
//! `cargo bench -p marketd-engine --bench ingest`
//!
//! With `MARKETD_BENCH_COMPARE=1` it skips criterion and measures the
//! pipeline against its serial floor instead, alternating in one run
//! (`MARKETD_BENCH_ROUNDS` rounds, 3 by default): the pipeline as above,
//! then the store's `insert_ticks` alone taking the same ticks in the
//! writer's batches of 5,000 into a fresh SQLite file (no bus, no bars, no
//! averages). It prints both and the ratio of their medians (`ratio` line,
//! read by `scripts/bench --compare`).

mod common;

/// The allocator the `marketd` binary ships with (its `main.rs`): the
/// pipeline allocates per event where the insert alone does not, so the
/// ratio is measured with what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{Criterion, Throughput, criterion_group};
use marketd_bus::{AnyBus, BusOptions};
use marketd_engine::feeds::TickPublisher;
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 500_000;

async fn run_once(ticks: Vec<Vec<marketd_model::Tick>>) -> Duration {
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
    let engine = common::start_consumers(&backends).await;
    let started = Instant::now();
    let mut feed = TickPublisher::new(backends.bus.clone());
    for batch in ticks {
        feed.publish(batch).await;
    }
    feed.flush().await;
    engine.shutdown().await;
    let elapsed = started.elapsed();
    let stored = store.count_ticks(None).await.unwrap();
    assert_eq!(stored as usize, N, "every tick stored");
    elapsed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = common::an_hour_ago();
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("sqlite_with_bars_and_averages", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                // Fresh event times per run so no tick is a duplicate; 1 ms apart.
                let ticks = common::ticks(N, start + i as i64 * 1_000_000);
                let batches: Vec<_> = ticks.chunks(1_000).map(|c| c.to_vec()).collect();
                total += rt.block_on(run_once(batches));
            }
            total
        })
    });
    g.finish();
}

/// The store alone: `ticks` into a fresh SQLite file by `insert_ticks` in
/// the writer's batches of 5,000. Returns ticks/s.
async fn insert_alone(ticks: &[marketd_model::Tick]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("alone.db").display());
    let store = AnyStore::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let started = Instant::now();
    for chunk in ticks.chunks(5_000) {
        store.insert_ticks(chunk).await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(store.count_ticks(None).await.unwrap() as usize, ticks.len());
    store.close().await;
    ticks.len() as f64 / took.as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Pipeline and insert alone, alternating; prints the ratio of medians.
fn compare() {
    let rounds: usize = std::env::var("MARKETD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut pipeline, mut alone) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Fresh event times per round so no tick is a duplicate.
        let ticks = common::ticks(N, common::an_hour_ago() + round as i64 * 1_000_000);
        let batches: Vec<_> = ticks.chunks(1_000).map(|c| c.to_vec()).collect();
        let took = rt.block_on(run_once(batches));
        pipeline.push(N as f64 / took.as_secs_f64());
        alone.push(rt.block_on(insert_alone(&ticks)));
        println!(
            "round {}: pipeline {:.0} ticks/s, insert alone {:.0} ticks/s",
            round + 1,
            pipeline[round],
            alone[round]
        );
    }
    let (p, a) = (median(pipeline), median(alone));
    println!(
        "ratio      SQLite pipeline / store insert alone: {:.3} ({p:.0} vs {a:.0} ticks/s, medians of {rounds} alternated rounds of {N} ticks)",
        p / a
    );
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var("MARKETD_BENCH_COMPARE").is_ok_and(|v| v == "1") {
        // `cargo test --benches` runs this with `--list`-like arguments: no work.
        if !std::env::args().any(|a| a == "--bench") {
            return;
        }
        compare();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
