//! Throughput of the scaled-out pipeline on real engines:
//!
//! 1. `kafka_bus`: marketd's Kafka bus producing N tick envelopes (JSON,
//!    idempotent, acks=all) and one consumer group reading them back, next to
//!    the broker's own figures for the same record count and size through
//!    librdkafka without marketd (raw bytes, same producer settings).
//! 2. `ingest`: N simulated ticks published on Kafka, consumed by the engine's
//!    writer, aggregator (1s..1d bars, SMA/EMA 5/20/50) and cache updater, and
//!    stored in PostgreSQL; timed from the first publish until every tick is
//!    a row in PostgreSQL.
//!
//! Needs `MARKETD_BENCH_KAFKA_BROKERS` (or `MARKETD_TEST_KAFKA_BROKERS`) and
//! `MARKETD_BENCH_POSTGRES_URL` (or `MARKETD_TEST_POSTGRES_URL`); scripts/bench
//! starts both. `N` defaults to 200,000 (`MARKETD_BENCH_TICKS`).
//!
//! `cargo bench -p marketd-engine --bench scale_out`

use marketd_bus::{AnyBus, Bus, BusOptions, Consumer};
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::{Backends, Engine, EngineConfig, FeedsConfig, Roles, feeds::publish_ticks};
use marketd_model::{Envelope, Event, Symbol, Tick};
use marketd_sources::{ProviderRegistry, ProvidersConfig, SimulatedMarket};
use marketd_store::{AnyStore, Store, StoreOptions};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

fn prefix() -> String {
    format!("bench{}.", uuid::Uuid::now_v7().simple())
}

fn ticks(n: usize) -> Vec<Tick> {
    let symbols: Vec<Symbol> = [
        "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT",
    ]
    .iter()
    .map(|s| Symbol::parse(s).unwrap())
    .collect();
    let start = marketd_model::time::now_ns() - 3_600 * 1_000_000_000;
    SimulatedMarket::new(42).generate(&symbols, start, 1_000_000, n)
}

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:>9.0} msg/s ({:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

async fn kafka_bus(brokers: &str, n: usize) {
    let ticks = ticks(n);
    let bus = AnyBus::connect(
        &format!("kafka://{brokers}"),
        BusOptions {
            topic_prefix: prefix(),
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    let mut consumer = bus
        .subscribe(marketd_model::Topic::Ticks, "bench")
        .await
        .unwrap();
    let sample = serde_json::to_vec(&Envelope::new(Event::Tick(ticks[0].clone()))).unwrap();

    let started = Instant::now();
    for chunk in ticks.chunks(5_000) {
        bus.publish_batch(chunk.iter().cloned().map(Event::Tick).collect())
            .await
            .unwrap();
    }
    let produced = started.elapsed();
    let started = Instant::now();
    let mut got = Vec::with_capacity(10_000);
    let mut seen = 0;
    while seen < n {
        got.clear();
        seen += consumer.recv_batch(&mut got, 10_000).await.unwrap();
        consumer.commit(&got).await.unwrap();
    }
    let consumed = started.elapsed();
    println!(
        "kafka bus  produce {}  consume {}  ({} B/envelope)",
        rate(n, produced),
        rate(n, consumed),
        sample.len()
    );

    // The broker's own figures: same record count and size, no marketd (on
    // topics made like marketd's, since brokers need not auto-create them).
    let raw_prefix = prefix();
    let _topics = AnyBus::connect(
        &format!("kafka://{brokers}"),
        BusOptions {
            topic_prefix: raw_prefix.clone(),
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    let topic = format!("{raw_prefix}ticks");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .unwrap();
    let started = Instant::now();
    let mut acks = Vec::with_capacity(n);
    for i in 0..n {
        let key = [
            "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT",
        ][i % 7];
        let mut record = FutureRecord::to(&topic).key(key).payload(sample.as_slice());
        loop {
            match producer.send_result(record) {
                Ok(f) => {
                    acks.push(f);
                    break;
                }
                Err((_, r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for a in acks {
        a.await.unwrap().unwrap();
    }
    let raw_produced = started.elapsed();
    let raw: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    raw.subscribe(&[&topic]).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        raw.recv().await.unwrap();
    }
    let raw_consumed = started.elapsed();
    println!(
        "librdkafka produce {}  consume {}  (raw records, same size)",
        rate(n, raw_produced),
        rate(n, raw_consumed)
    );
}

async fn ingest(brokers: &str, pg: &str, n: usize) {
    let db = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(pg).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = format!("{}/{db}", pg.rsplit_once('/').unwrap().0);
    let store = AnyStore::connect(&url, &StoreOptions { max_connections: 8 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let backends = Backends {
        store: store.clone(),
        bus: AnyBus::connect(
            &format!("kafka://{brokers}"),
            BusOptions {
                topic_prefix: prefix(),
                ..BusOptions::default()
            },
        )
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
    let batches: Vec<Vec<Tick>> = ticks(n).chunks(1_000).map(|c| c.to_vec()).collect();
    let started = Instant::now();
    for batch in batches {
        publish_ticks(&backends.bus, batch).await;
    }
    let published = started.elapsed();
    loop {
        let stored = store.count_ticks(None).await.unwrap() as usize;
        if stored >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let bars = store
        .bars(&marketd_store::BarQuery {
            symbol: Symbol::parse("AAPL").unwrap(),
            source: None,
            interval: marketd_model::Interval::M1,
            from: None,
            to: None,
            limit: 100_000,
        })
        .await
        .map(|b| b.len())
        .unwrap_or(0);
    println!(
        "ingest     Kafka -> PostgreSQL with bars and SMA/EMA: {} ticks in {:.2} s = {:.0} ticks/s (published in {:.2} s; AAPL 1m bars so far: {bars})",
        n,
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        published.as_secs_f64()
    );
    engine.shutdown().await;
    store.close().await;
    let _ = sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let brokers = env_any(&["MARKETD_BENCH_KAFKA_BROKERS", "MARKETD_TEST_KAFKA_BROKERS"]);
    let pg = env_any(&["MARKETD_BENCH_POSTGRES_URL", "MARKETD_TEST_POSTGRES_URL"]);
    let n: usize = std::env::var("MARKETD_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let Some(brokers) = brokers else {
        eprintln!(
            "scale_out bench skipped: set MARKETD_BENCH_KAFKA_BROKERS (scripts/bench --scale-out starts a broker)"
        );
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(kafka_bus(&brokers, n));
    match pg {
        Some(pg) => rt.block_on(ingest(&brokers, &pg, n)),
        None => eprintln!("ingest part skipped: set MARKETD_BENCH_POSTGRES_URL"),
    }
}
