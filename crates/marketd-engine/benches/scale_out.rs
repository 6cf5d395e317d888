//! Throughput of the scaled-out pipeline on real engines, in five stages
//! (`MARKETD_BENCH_STAGES=sink,bus,ceiling,drain,ingest`, all by default):
//!
//! 1. `sink`: the PostgreSQL store alone, `insert_ticks` in the writer's
//!    batches of 5,000 on one connection (the ceiling of the tick writer).
//! 2. `bus`: marketd's Kafka bus producing N tick envelopes (JSON,
//!    idempotent, acks=all), once waiting for each batch's acks before the
//!    next and once with the feeds' window of batches in flight, and one
//!    consumer group reading them back; next to the broker's own figures for
//!    the same record count and size through librdkafka without marketd.
//! 3. `drain`: N ticks already on Kafka when a worker's consumers start:
//!    writer, aggregator (1s..1d bars, SMA/EMA 5/20/50) and cache updater
//!    into PostgreSQL; timed until every consumer group has committed the
//!    whole topic (every tick a row, every bar and average stored).
//! 4. `ingest`: the same with the feed publishing while the worker consumes
//!    (batches of 1,000, the feeds' publish window), timed from the first
//!    publish until every group committed everything.
//! 5. `ceiling`: PostgreSQL alone taking the same N rows into the same table
//!    and indexes (a fresh, migrated database) by one `COPY ... FROM STDIN`
//!    on one connection: the most this machine's PostgreSQL takes. Measured
//!    before `drain` and again after `ingest`; the pipeline's ticks/s are
//!    printed as a ratio of their mean (`ratio` lines).
//!
//! Needs `MARKETD_BENCH_KAFKA_BROKERS` (or `MARKETD_TEST_KAFKA_BROKERS`) and
//! `MARKETD_BENCH_POSTGRES_URL` (or `MARKETD_TEST_POSTGRES_URL`); scripts/bench
//! starts both. `N` defaults to 200,000 (`MARKETD_BENCH_TICKS`). The
//! producers write envelopes in `bus.codec`'s default, JSON, or in each codec
//! of `MARKETD_BENCH_CODEC` (`json`, `binary` or `json,binary`: a `drain`
//! and an `ingest` run per codec, between the same two ceilings).
//!
//! CPU per tick is printed by process: this one (marketd), the bench's
//! PostgreSQL (its postmaster's tree, found from a backend's parent) and the
//! broker (`MARKETD_BENCH_BROKER_PID`, else any `tansu` process).
//!
//! `cargo bench -p marketd-engine --bench scale_out`

mod common;

/// The allocator the `marketd` binary ships with (its `main.rs`), so CPU
/// per tick is what production spends.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use marketd_bus::{AnyBus, Bus, BusOptions, Consumer};
use marketd_engine::feeds::{PUBLISH_WINDOW, TickPublisher};
use marketd_model::{Codec, Envelope, Event, Tick, Topic};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use marketd_testkit::FreshDatabase;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
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

fn rate(n: usize, d: Duration) -> String {
    format!(
        "{:>9.0} msg/s ({:.2} s)",
        n as f64 / d.as_secs_f64(),
        d.as_secs_f64()
    )
}

/// The envelope codecs the producers write in, one `drain` and `ingest` run
/// each (`MARKETD_BENCH_CODEC`: `json`, the default of `bus.codec`,
/// `binary`, or both as `json,binary`).
fn codecs() -> Vec<Codec> {
    std::env::var("MARKETD_BENCH_CODEC")
        .unwrap_or_else(|_| "json".into())
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("MARKETD_BENCH_CODEC: json, binary or both")
        })
        .collect()
}

async fn kafka(brokers: &str, prefix: &str, codec: Codec) -> AnyBus {
    AnyBus::connect(
        &format!("kafka://{brokers}"),
        BusOptions {
            topic_prefix: prefix.to_string(),
            codec,
            ..BusOptions::default()
        },
    )
    .await
    .unwrap()
}

/// A fresh database on the server of `pg`, migrated.
async fn fresh_store(pg: &str) -> (Arc<AnyStore>, FreshDatabase) {
    let db = FreshDatabase::create(pg, "bench").await;
    let store = AnyStore::connect(&db.url, &StoreOptions { max_connections: 8 })
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), db)
}

async fn drop_store(store: Arc<AnyStore>, db: FreshDatabase) {
    store.close().await;
    db.drop().await;
}

/// The store alone: `insert_ticks` in the writer's batches of 5,000, on
/// `connections` connections at once (ticks split by symbol, as the writer
/// splits a batch by partition).
async fn sink(pg: &str, n: usize, connections: usize) {
    let (store, db) = fresh_store(pg).await;
    let ticks = common::ticks(n, common::an_hour_ago());
    let mut lanes: Vec<Vec<Tick>> = vec![Vec::new(); connections];
    for t in ticks {
        let lane = marketd_bus::partition_of(t.symbol.as_str(), connections as u32) as usize;
        lanes[lane].push(t);
    }
    let cpu = common::CpuClock::start();
    let started = Instant::now();
    let writers = lanes.into_iter().map(|lane| {
        let store = store.clone();
        tokio::spawn(async move {
            for chunk in lane.chunks(5_000 / connections) {
                store.insert_ticks(chunk).await.unwrap();
            }
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let cpu = cpu.per_item(n);
    assert_eq!(store.count_ticks(None).await.unwrap() as usize, n);
    println!(
        "sink       PostgreSQL insert_ticks, batches of 5,000 over {connections} connection(s): {}  CPU/tick: {cpu}",
        rate(n, took).replace("msg/s", "ticks/s")
    );
    drop_store(store, db).await;
}

/// The columns the ceiling copies: every column of `ticks` the store writes.
const CEILING_COPY: &str = "COPY ticks (symbol, source, kind, price, size, bid, ask, trade_id, sequence, \
     venue_symbol, ts_event, ts_received, tick_key) FROM STDIN";

/// `ticks` as `COPY` text rows (the bench's ticks need no escaping: plain
/// symbols and sources, no trade id, so the content hash as bytea hex).
fn copy_text(ticks: &[Tick]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(ticks.len() * 160);
    for t in ticks {
        assert!(t.trade_id.is_none() && t.venue_symbol.is_none());
        let opt =
            |d: Option<marketd_model::Decimal>| d.map_or("\\N".to_string(), |d| d.to_string());
        write!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\t{}\t\\N\t{}\t{}\t\\\\x",
            t.symbol.as_str(),
            t.source,
            t.kind.as_str(),
            t.price,
            t.size,
            opt(t.bid),
            opt(t.ask),
            t.sequence
                .map_or("\\N".to_string(), |s| (s as i64).to_string()),
            t.ts_event,
            t.ts_received
        )
        .unwrap();
        for b in t.content_hash() {
            write!(out, "{b:02x}").unwrap();
        }
        out.push(b'\n');
    }
    out
}

/// PostgreSQL alone: the pipeline's `n` ticks (the same rows) into a fresh
/// migrated database (the same table and indexes) by one `COPY` on one
/// connection, the text prepared beforehand. Returns ticks/s.
async fn ceiling(pg: &str, n: usize) -> f64 {
    use sqlx::Connection;
    let (store, db) = fresh_store(pg).await;
    let data = copy_text(&common::ticks(n, common::an_hour_ago()));
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let cpu = common::CpuClock::start();
    let started = Instant::now();
    let mut copy = conn.copy_in_raw(CEILING_COPY).await.unwrap();
    copy.send(data).await.unwrap();
    let rows = copy.finish().await.unwrap();
    let took = started.elapsed();
    let cpu = cpu.per_item(n);
    assert_eq!(rows as usize, n);
    println!(
        "ceiling    PostgreSQL alone, one COPY of the same {n} rows into ticks (same indexes): {}  CPU/tick: {cpu}",
        rate(n, took).replace("msg/s", "ticks/s")
    );
    conn.close().await.ok();
    drop_store(store, db).await;
    n as f64 / took.as_secs_f64()
}

async fn kafka_bus(brokers: &str, n: usize, codec: Codec) {
    let ticks = common::ticks(n, common::an_hour_ago());
    let mut sample = Vec::new();
    Envelope::new(Event::Tick(ticks[0].clone()))
        .encode(codec, &mut sample)
        .unwrap();

    // Each batch's acks awaited before the next (`publish_batch`).
    let bus = kafka(brokers, &prefix(), codec).await;
    let started = Instant::now();
    for chunk in ticks.chunks(5_000) {
        bus.publish_batch(chunk.iter().cloned().map(Event::Tick).collect())
            .await
            .unwrap();
    }
    let serial = started.elapsed();

    // The feeds' way: up to PUBLISH_WINDOW batches queued while acks arrive.
    let bus = kafka(brokers, &prefix(), codec).await;
    let mut consumer = bus.subscribe(Topic::Ticks, "bench").await.unwrap();
    let started = Instant::now();
    let mut feed = TickPublisher::new(bus.clone());
    for chunk in ticks.chunks(5_000) {
        feed.publish(chunk.to_vec()).await;
    }
    feed.flush().await;
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
        "kafka bus  produce {} waiting per batch of 5,000; {} with {PUBLISH_WINDOW} batches in flight; consume {}  ({} B/envelope)",
        rate(n, serial),
        rate(n, produced),
        rate(n, consumed),
        sample.len()
    );

    // The broker's own figures: same record count and size, no marketd (on
    // topics made like marketd's, since brokers need not auto-create them).
    let raw_prefix = prefix();
    let _topics = kafka(brokers, &raw_prefix, codec).await;
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
        let key = common::SYMBOLS[i % common::SYMBOLS.len()];
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
        "librdkafka produce {}  consume {}  (raw records, same size, everything in flight)",
        rate(n, raw_produced),
        rate(n, raw_consumed)
    );
}

/// The consumer groups of the worker and their topics.
const GROUPS: [(Topic, &str); 4] = [
    (Topic::Ticks, "store-ticks"),
    (Topic::Ticks, "aggregator"),
    (Topic::Bars, "store-bars"),
    (Topic::Indicators, "store-indicators"),
];

/// Readers of the committed offsets of every group of the worker: the
/// ticks (writer, aggregator, cache), and the bars and averages the
/// aggregator derived from them (their sinks). Made once per run, polled
/// until the worker has drained.
struct Progress {
    readers: Vec<(String, BaseConsumer)>,
}

impl Progress {
    fn new(brokers: &str, prefix: &str) -> Progress {
        let readers = GROUPS
            .iter()
            .map(|(topic, group)| {
                let reader: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", brokers)
                    .set("group.id", format!("{prefix}{group}"))
                    .set("enable.auto.commit", "false")
                    .create()
                    .unwrap();
                (format!("{prefix}{}", topic.name()), reader)
            })
            .collect();
        Progress { readers }
    }

    /// Per group (in the order of [`GROUPS`]): whether it has committed
    /// anything, and whether it has committed the whole of its topic. The
    /// groups are asked at once, one thread each: asked one after another
    /// (five rounds of metadata, committed offsets and watermarks) a poll
    /// took long enough to add a visible delay to the measured end.
    fn committed(&self) -> Vec<(bool, bool)> {
        std::thread::scope(|scope| {
            let asked: Vec<_> = self
                .readers
                .iter()
                .map(|(name, reader)| scope.spawn(move || Self::group(name, reader)))
                .collect();
            asked
                .into_iter()
                .map(|a| a.join().unwrap_or((false, false)))
                .collect()
        })
    }

    fn group(name: &str, reader: &BaseConsumer) -> (bool, bool) {
        let timeout = Duration::from_secs(5);
        let Ok(meta) = reader.fetch_metadata(Some(name), timeout) else {
            return (false, false);
        };
        let partitions = meta.topics()[0].partitions().len() as i32;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(name, p);
        }
        let Ok(committed) = reader.committed_offsets(tpl, timeout) else {
            return (false, false);
        };
        let started = committed
            .elements()
            .iter()
            .any(|e| matches!(e.offset(), Offset::Offset(o) if o > 0));
        let done = (0..partitions).all(|p| {
            let high = reader
                .fetch_watermarks(name, p, timeout)
                .map(|(_, h)| h)
                .unwrap_or(i64::MAX);
            let done = match committed.find_partition(name, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => 0,
            };
            done >= high
        });
        (started, done)
    }
}

/// Waits until every group committed everything and every tick is a row.
/// The broker's offsets are asked first: counting a growing `ticks` table
/// every few milliseconds would charge PostgreSQL's CPU for the observer
/// (a sequential scan per poll), not for the pipeline. The store sink
/// commits only after its writes are durable, so the count is a check.
async fn wait_drained(progress: &Arc<Progress>, store: &AnyStore, n: usize, started: Instant) {
    // Per group: when it first committed, and when it had committed all.
    let mut seen: Vec<(Option<Duration>, Option<Duration>)> = vec![(None, None); GROUPS.len()];
    // The longest poll: how late the end of a run can be seen.
    let mut slowest = Duration::ZERO;
    loop {
        let p = progress.clone();
        let asked = Instant::now();
        let state = tokio::task::spawn_blocking(move || p.committed())
            .await
            .unwrap();
        slowest = slowest.max(asked.elapsed());
        for ((first, last), (began, done)) in seen.iter_mut().zip(&state) {
            if *began && first.is_none() {
                *first = Some(started.elapsed());
            }
            // The last time it caught up: bars come after the ticks.
            match (*done, &last) {
                (true, None) => *last = Some(started.elapsed()),
                (false, Some(_)) => *last = None,
                _ => {}
            }
        }
        if state.iter().all(|(_, done)| *done)
            && store.count_ticks(None).await.unwrap() as usize >= n
        {
            // Which consumer group bounds the run, and how long the groups
            // took to join and make their first batch durable.
            let secs =
                |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.2}", d.as_secs_f64()));
            println!(
                "           groups (first commit / all committed, s; polled in at most {:.0} ms): {}",
                slowest.as_secs_f64() * 1e3,
                GROUPS
                    .iter()
                    .zip(&seen)
                    .map(|((_, g), (first, last))| format!("{g} {}/{}", secs(*first), secs(*last)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return;
        }
        // A run takes seconds; one that has not drained in minutes is stuck
        // (a group that stopped committing), and says which group it is.
        if started.elapsed() > DRAIN_DEADLINE {
            let stuck: Vec<&str> = GROUPS
                .iter()
                .zip(&state)
                .filter(|(_, (_, done))| !done)
                .map(|((_, g), _)| *g)
                .collect();
            panic!(
                "not drained within {} s: groups {stuck:?} have not committed the whole topic",
                DRAIN_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a pipeline run may take before the bench gives up on it.
const DRAIN_DEADLINE: Duration = Duration::from_secs(120);

async fn bars_stored(store: &AnyStore) -> usize {
    store
        .bars(&marketd_store::BarQuery {
            symbol: marketd_model::Symbol::parse("AAPL").unwrap(),
            source: None,
            interval: marketd_model::Interval::M1,
            from: None,
            to: None,
            limit: 100_000,
        })
        .await
        .map(|b| b.len())
        .unwrap_or(0)
}

/// `drain = true`: the ticks are on Kafka before the worker starts;
/// otherwise the feed publishes while the worker consumes.
async fn ingest(brokers: &str, pg: &str, n: usize, drain: bool, codec: Codec) -> f64 {
    let (store, db) = fresh_store(pg).await;
    let prefix = prefix();
    let bus = kafka(brokers, &prefix, codec).await;
    let progress = Arc::new(Progress::new(brokers, &prefix));
    let backends = common::backends(store.clone(), bus.clone()).await;
    let batches: Vec<Vec<Tick>> = common::ticks(n, common::an_hour_ago())
        .chunks(1_000)
        .map(|c| c.to_vec())
        .collect();
    let publish = async |batches: Vec<Vec<Tick>>| {
        let started = Instant::now();
        let mut feed = TickPublisher::new(bus.clone());
        for batch in batches {
            feed.publish(batch).await;
        }
        feed.flush().await;
        started.elapsed()
    };
    let mut cpu = common::CpuClock::start();
    let (engine, published, started) = if drain {
        let published = publish(batches).await;
        cpu = common::CpuClock::start();
        let started = Instant::now();
        (common::start_consumers(&backends).await, published, started)
    } else {
        let engine = common::start_consumers(&backends).await;
        let started = Instant::now();
        (engine, publish(batches).await, started)
    };
    wait_drained(&progress, &store, n, started).await;
    let elapsed = started.elapsed();
    // Dropped only now: closing its readers takes librdkafka a while.
    drop(progress);
    let cpu = cpu.per_item(n);
    let what = if drain {
        "drain  N ticks waiting on Kafka"
    } else {
        "ingest feed publishing meanwhile"
    };
    println!(
        "{what} -> PostgreSQL with bars and SMA/EMA ({} envelopes): {n} ticks in {:.2} s = {:.0} ticks/s (publishing took {:.2} s; AAPL 1m bars: {})  CPU/tick: {cpu}",
        codec.name(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        published.as_secs_f64(),
        bars_stored(&store).await
    );
    engine.shutdown().await;
    drop_store(store, db).await;
    n as f64 / elapsed.as_secs_f64()
}

/// Pins the CPU accounting to the bench's PostgreSQL and broker.
async fn pin_services(pg: Option<&str>) {
    use sqlx::Connection;
    let mut pids = common::ServicePids {
        broker: std::env::var("MARKETD_BENCH_BROKER_PID")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    if let Some(pg) = pg
        && let Ok(mut conn) = sqlx::PgConnection::connect(pg).await
    {
        pids.postmaster = common::postmaster_of(&mut conn).await;
        conn.close().await.ok();
    }
    common::set_service_pids(pids);
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
    let stages = std::env::var("MARKETD_BENCH_STAGES")
        .unwrap_or_else(|_| "sink,bus,ceiling,drain,ingest".into());
    let stage = |s: &str| stages.split(',').any(|x| x.trim() == s);
    let codecs = codecs();
    // `RUST_LOG` (e.g. `marketd_bus=debug`) prints the engine's logs, to
    // see what a slow or stuck run did.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pin_services(pg.as_deref()));
    match &pg {
        Some(pg) if stage("sink") => {
            rt.block_on(sink(pg, n, 1));
            rt.block_on(sink(pg, n, 2));
        }
        None => eprintln!("PostgreSQL stages skipped: set MARKETD_BENCH_POSTGRES_URL"),
        _ => {}
    }
    let Some(brokers) = brokers else {
        eprintln!(
            "Kafka stages skipped: set MARKETD_BENCH_KAFKA_BROKERS (scripts/bench --scale-out starts a broker)"
        );
        return;
    };
    if stage("bus") {
        rt.block_on(kafka_bus(&brokers, n, codecs[0]));
    }
    let Some(pg) = &pg else { return };
    let mut ceilings = Vec::new();
    if stage("ceiling") {
        ceilings.push(rt.block_on(ceiling(pg, n)));
    }
    let mut runs = Vec::new();
    for &codec in &codecs {
        if stage("drain") {
            runs.push((
                "drain",
                codec,
                rt.block_on(ingest(&brokers, pg, n, true, codec)),
            ));
        }
        if stage("ingest") {
            runs.push((
                "ingest",
                codec,
                rt.block_on(ingest(&brokers, pg, n, false, codec)),
            ));
        }
    }
    if ceilings.is_empty() || runs.is_empty() {
        return;
    }
    ceilings.push(rt.block_on(ceiling(pg, n)));
    let limit = ceilings.iter().sum::<f64>() / ceilings.len() as f64;
    for (what, codec, got) in runs {
        // One line per pipeline run, read by scripts/bench --compare.
        println!(
            "ratio      {what} / COPY ceiling: {:.3} ({got:.0} vs {limit:.0} ticks/s, ceilings {}; {} envelopes)",
            got / limit,
            ceilings
                .iter()
                .map(|c| format!("{c:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            codec.name()
        );
    }
}
