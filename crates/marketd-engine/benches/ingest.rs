//! Ingest throughput of the embedded pipeline: simulated ticks published on
//! the memory bus, stored in SQLite by the batched writer, with 1s/1m/5m/1h/1d
//! bars and SMA/EMA (5, 20, 50) derived and stored. Timed from the first
//! publish until shutdown has drained every stage (all rows durable).
//!
//! `cargo bench -p marketd-engine --bench ingest`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marketd_bus::{AnyBus, BusOptions};
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::{Backends, Engine, EngineConfig, FeedsConfig, Roles, feeds::publish_ticks};
use marketd_model::Symbol;
use marketd_sources::{ProviderRegistry, ProvidersConfig, SimulatedMarket};
use marketd_store::{AnyStore, Store, StoreOptions};
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
    let backends = Backends {
        store: store.clone(),
        bus: AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap(),
        cache: AnyCache::connect("memory://", CacheOptions::default())
            .await
            .unwrap(),
        providers: Arc::new(ProviderRegistry::from_config(&ProvidersConfig::default()).unwrap()),
    };
    let mut feeds = FeedsConfig::default();
    feeds.simulated.enabled = false;
    let engine = Engine::start(
        backends.clone(),
        &EngineConfig::default(),
        &feeds,
        &marketd_engine::PricesConfig::default(),
        Roles {
            consumers: true,
            producers: false,
        },
    )
    .await
    .unwrap();
    let started = Instant::now();
    for batch in ticks {
        publish_ticks(&backends.bus, batch).await;
    }
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
    let symbols: Vec<Symbol> = [
        "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT",
    ]
    .iter()
    .map(|s| Symbol::parse(s).unwrap())
    .collect();
    let market = SimulatedMarket::new(42);
    let start = marketd_model::time::now_ns() - 3_600 * 1_000_000_000;
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("sqlite_with_bars_and_averages", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                // Fresh event times per run so no tick is a duplicate; 1 ms apart.
                let ticks = market.generate(&symbols, start + i as i64 * 1_000_000, 1_000_000, N);
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
