//! Ingest throughput of the embedded pipeline: simulated ticks published on
//! the memory bus, stored in SQLite by the batched writer, with 1s/1m/5m/1h/1d
//! bars and SMA/EMA (5, 20, 50) derived and stored. Timed from the first
//! publish until shutdown has drained every stage (all rows durable).
//!
//! `cargo bench -p marketd-engine --bench ingest`

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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

criterion_group!(benches, bench);
criterion_main!(benches);
