//! The aggregation state machine: bars, averages, late ticks and warm starts.

use super::*;
use marketd_model::{Decimal, MaKind, TickKind};

const S: i64 = 1_000_000_000;

fn tick(ts: i64, price: i64) -> Tick {
    Tick::new(
        Symbol::parse("AAPL").unwrap(),
        "sim",
        TickKind::Trade,
        Decimal::from(price),
        Decimal::ONE,
        ts,
        ts,
    )
}

fn agg(windows: Vec<u32>) -> Aggregator {
    Aggregator::new(AggregatorConfig {
        intervals: vec![Interval::S1],
        ma_windows: windows,
        ma_intervals: vec![Interval::S1],
        late_buckets: 2,
        flush_interval_ms: 1000,
    })
}

fn bars(out: &[Event]) -> Vec<&Bar> {
    out.iter()
        .filter_map(|e| if let Event::Bar(b) = e { Some(b) } else { None })
        .collect()
}

fn inds(out: &[Event], kind: MaKind) -> Vec<f64> {
    out.iter()
        .filter_map(|e| {
            if let Event::Indicator(i) = e {
                (i.kind == kind).then_some(i.value)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn closes_buckets_on_the_series_watermark() {
    let mut a = agg(vec![]);
    let mut out = Vec::new();
    for (ts, p) in [
        (100 * S, 10),
        (100 * S + 5, 12),
        (100 * S + 9, 11),
        (101 * S + 1, 13),
    ] {
        a.apply(&tick(ts, p), &mut out);
    }
    let b = bars(&out);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].start, b[0].closed, b[0].trades), (100 * S, true, 3));
    assert_eq!(
        (b[0].open, b[0].high, b[0].low, b[0].close),
        (10.into(), 12.into(), 10.into(), 11.into())
    );
    out.clear();
    a.flush_open(&mut out);
    let open = bars(&out);
    assert_eq!(
        (open[0].start, open[0].closed, open[0].close),
        (101 * S, false, 13.into())
    );
    out.clear();
    a.flush_open(&mut out);
    assert!(out.is_empty(), "unchanged open bars are not republished");
}

#[test]
fn sma_and_ema_over_closed_bars() {
    let mut a = agg(vec![3]);
    let mut out = Vec::new();
    for (i, p) in [10, 11, 12, 13, 14, 15].iter().enumerate() {
        a.apply(&tick((i as i64 + 1) * S, *p), &mut out);
    }
    // Closed bars: 10..14 (the 15 bar is still open).
    assert_eq!(inds(&out, MaKind::Sma), vec![11.0, 12.0, 13.0]);
    let alpha = 0.5;
    let e1 = 11.0;
    let e2 = alpha * 13.0 + (1.0 - alpha) * e1;
    let e3 = alpha * 14.0 + (1.0 - alpha) * e2;
    assert_eq!(inds(&out, MaKind::Ema), vec![e1, e2, e3]);
}

#[test]
fn late_ticks_within_grace_update_bars_and_older_are_dropped() {
    let mut a = agg(vec![]);
    let mut out = Vec::new();
    for s in [10, 11, 12, 13] {
        a.apply(&tick(s * S, 100), &mut out);
    }
    out.clear();
    a.apply(&tick(12 * S + 1, 150), &mut out); // bucket 12 is closed but retained
    let b = bars(&out);
    assert_eq!(
        (b[0].start, b[0].high, b[0].trades, b[0].closed),
        (12 * S, 150.into(), 2, true)
    );
    out.clear();
    a.apply(&tick(9 * S, 1), &mut out); // older than every retained bucket
    assert!(out.is_empty());
    assert_eq!(a.late_dropped(), 1);
}

#[test]
fn series_are_separate_per_source_and_symbol() {
    let mut a = agg(vec![]);
    let mut out = Vec::new();
    let mut other = tick(S, 5);
    other.source = "finnhub".into();
    a.apply(&tick(S, 1), &mut out);
    a.apply(&other, &mut out);
    a.apply(&tick(2 * S, 2), &mut out);
    let b = bars(&out);
    assert_eq!(b.len(), 1);
    assert_eq!((&*b[0].source, b[0].close), ("sim", 1.into()));
}

/// What a store holds after upserting `events` on top of `into`: the
/// last version of each bar and indicator.
#[derive(Default, Debug, PartialEq)]
struct Stored {
    bars: std::collections::BTreeMap<(Interval, i64), Bar>,
    inds: std::collections::BTreeMap<(Interval, &'static str, u32, i64), u64>,
}

impl Stored {
    fn upsert(&mut self, events: &[Event]) {
        for e in events {
            match e {
                Event::Bar(b) => {
                    self.bars.insert((b.interval, b.start), b.clone());
                }
                Event::Indicator(i) => {
                    let kind = match i.kind {
                        MaKind::Sma => "sma",
                        MaKind::Ema => "ema",
                    };
                    self.inds
                        .insert((i.interval, kind, i.window, i.ts), i.value.to_bits());
                }
                _ => {}
            }
        }
    }

    /// The history a warm start reads, as `load_history` reads it.
    fn history(&self, agg: &Aggregator) -> Vec<SeriesHistory> {
        agg.intervals()
            .iter()
            .map(|&iv| {
                let all: Vec<Bar> = self
                    .bars
                    .values()
                    .filter(|b| b.interval == iv)
                    .cloned()
                    .collect();
                let bars = all[all.len().saturating_sub(agg.history_depth())..].to_vec();
                let last_closed = bars.iter().rev().find(|b| b.closed).map(|b| b.start);
                let emas = match last_closed.filter(|_| agg.is_ma_interval(iv)) {
                    Some(at) => agg
                        .ma_windows()
                        .iter()
                        .map(|&w| {
                            self.inds
                                .get(&(iv, "ema", w, at))
                                .map(|bits| f64::from_bits(*bits))
                        })
                        .collect(),
                    None => Vec::new(),
                };
                SeriesHistory {
                    bars,
                    emas,
                    rebuilt: Vec::new(),
                }
            })
            .collect()
    }
}

/// A restart in the middle of a bucket, after a graceful stop or a crash,
/// seeded from what the store holds and resumed from the committed
/// position, ends with the same stored bars and moving averages (to the
/// bit) as a run that never stopped: open bars continue, closes and EMAs
/// carry on, and no redelivered tick counts twice.
#[test]
fn a_seeded_restart_continues_bars_and_averages_exactly() {
    let cfg = AggregatorConfig {
        intervals: vec![Interval::S1, Interval::M1],
        ma_windows: vec![3, 5],
        ma_intervals: vec![Interval::S1],
        late_buckets: 2,
        flush_interval_ms: 1000,
    };
    // 60 ms apart over 18 s: several batches per 1s bar.
    let ticks: Vec<Tick> = (0..300)
        .map(|i| tick(i * 60_000_000, 100 + (i * 7) % 13))
        .collect();
    // As `run` does: batches of 3 ticks, open bars flushed every 4th
    // batch (the timer); after every publication the applied ticks are
    // committed. Returns the committed position.
    let run = |agg: &mut Aggregator, ticks: &[Tick], store: &mut Stored, stop: bool| {
        let mut committed = 0;
        for (i, chunk) in ticks.chunks(3).enumerate() {
            let mut out = Vec::new();
            agg.apply_batch(chunk, &mut out);
            if i % 4 == 3 {
                agg.flush_open(&mut out);
            }
            if !out.is_empty() {
                store.upsert(&out);
                committed = (i + 1) * 3;
            }
        }
        if stop {
            // A graceful stop publishes the open bars (and commits).
            let mut out = Vec::new();
            agg.flush_open(&mut out);
            store.upsert(&out);
            committed = ticks.len();
        }
        committed.min(ticks.len())
    };
    let mut reference = Stored::default();
    run(
        &mut Aggregator::new(cfg.clone()),
        &ticks,
        &mut reference,
        true,
    );

    let mut redelivered = 0;
    for split in [101, 150, 233] {
        for graceful in [true, false] {
            let mut store = Stored::default();
            let resume = run(
                &mut Aggregator::new(cfg.clone()),
                &ticks[..split],
                &mut store,
                graceful,
            );
            // A crash redelivers everything after the last commit.
            redelivered += split - resume;
            let mut second = Aggregator::new(cfg.clone());
            let history = store.history(&second);
            second.seed(
                "sim".into(),
                Symbol::parse("AAPL").unwrap(),
                history,
                &mut Vec::new(),
            );
            run(&mut second, &ticks[resume..], &mut store, true);
            let how = if graceful { "stop" } else { "crash" };
            assert_eq!(
                store.bars, reference.bars,
                "bars after a {how} at tick {split}"
            );
            assert_eq!(
                store.inds, reference.inds,
                "averages after a {how} at tick {split}"
            );
        }
    }

    assert!(redelivered > 0, "no crash left ticks to redeliver");

    // Without the seed, the open bars restart from the ticks after the
    // restart: the test above would fail.
    let mut store = Stored::default();
    run(
        &mut Aggregator::new(cfg.clone()),
        &ticks[..101],
        &mut store,
        true,
    );
    run(
        &mut Aggregator::new(cfg.clone()),
        &ticks[101..],
        &mut store,
        true,
    );
    assert_ne!(store.bars, reference.bars);
}

/// A warm start that rebuilt the bars from the stored ticks (the tick
/// writer got further than the aggregator's last publication) and then
/// receives the ticks a persistent bus redelivers (from the last commit,
/// before the stored ones end) counts each tick once: the refolded ones are
/// skipped until the first tick the store did not hold.
#[test]
fn a_rebuilt_seed_skips_the_redelivered_ticks_it_already_folded() {
    let cfg = AggregatorConfig {
        intervals: vec![Interval::S1, Interval::M1],
        ma_windows: vec![3, 5],
        ma_intervals: vec![Interval::S1],
        late_buckets: 2,
        flush_interval_ms: 1000,
    };
    let ticks: Vec<Tick> = (0..300)
        .map(|i| tick(i * 60_000_000, 100 + (i * 7) % 13))
        .collect();
    let mut reference = Stored::default();
    let mut out = Vec::new();
    let mut first = Aggregator::new(cfg.clone());
    first.apply_batch(&ticks, &mut out);
    first.flush_open(&mut out);
    reference.upsert(&out);

    // The store holds ticks[..200]; the bus redelivers from tick 150.
    let stored = &ticks[..200];
    let history: Vec<SeriesHistory> = cfg
        .intervals
        .iter()
        .map(|&iv| SeriesHistory {
            rebuilt: super::seed::fold_ticks(iv, stored.iter()),
            ..SeriesHistory::default()
        })
        .collect();
    let (src, sym): (Arc<str>, Symbol) = ("sim".into(), Symbol::parse("AAPL").unwrap());
    let mut second = Aggregator::new(cfg.clone());
    let mut out = Vec::new();
    second.seed(src.clone(), sym.clone(), history, &mut out);
    second.skip_refolded(src, sym, stored.iter().map(Tick::identity).collect());
    second.apply_batch(&ticks[150..], &mut out);
    second.flush_open(&mut out);
    let mut store = Stored::default();
    store.upsert(&out);
    assert_eq!(store.bars, reference.bars);
    assert_eq!(store.inds, reference.inds);
}

/// A crash can leave stored bars holding ticks the store never took (the
/// bars writer ran ahead of the tick writer, and the memory bus keeps
/// nothing): the warm start recomputes from the stored ticks and deletes
/// the bars whose buckets hold no stored tick, so every stored bar equals
/// a recomputation from the stored ticks.
#[tokio::test]
async fn a_warm_start_deletes_bars_of_ticks_the_store_never_took() {
    use marketd_bus::Delivery;
    use marketd_model::Envelope;
    use marketd_store::BarQuery;
    use marketd_store::prelude::*;

    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::sqlite_store(&dir).await;
    // A minute boundary: seconds 0-5 stored as ticks, 6 and 7 only in bars.
    let t0 = 1_796_294_640 * S;
    let ticks: Vec<Tick> = (0..8).map(|i| tick(t0 + i * S, 100 + i)).collect();
    store.insert_ticks(&ticks[..6]).await.unwrap();
    let mut stored = super::seed::fold_ticks(Interval::S1, ticks.iter());
    stored.extend(super::seed::fold_ticks(Interval::M1, ticks.iter()));
    store.upsert_bars(&stored).await.unwrap();

    let mut agg = Aggregator::new(AggregatorConfig {
        intervals: vec![Interval::S1, Interval::M1],
        ma_windows: vec![],
        ma_intervals: vec![],
        late_buckets: 2,
        flush_interval_ms: 1000,
    });
    let next = tick(t0 + 8 * S, 108);
    let batch = [Delivery {
        envelope: Arc::new(Envelope::new(Event::Tick(next))),
        topic: marketd_model::Topic::Ticks,
        partition: 0,
        offset: 0,
    }];
    let mut out = Vec::new();
    super::seed::seed_new_series(&store, &mut agg, &batch, &mut out).await;

    let query = |interval| BarQuery {
        symbol: Symbol::parse("AAPL").unwrap(),
        source: Some("sim".into()),
        interval,
        from: Some(0),
        to: None,
        limit: 100,
    };
    let seconds: Vec<i64> = store
        .bars(&query(Interval::S1))
        .await
        .unwrap()
        .iter()
        .map(|b| (b.start - t0) / S)
        .collect();
    assert_eq!(seconds, vec![0, 1, 2, 3, 4, 5]);
    // The minute bar is recomputed from the six stored ticks and published.
    let minute: Vec<&Bar> = bars(&out)
        .into_iter()
        .filter(|b| b.interval == Interval::M1)
        .collect();
    assert_eq!(minute.len(), 1);
    assert_eq!(minute[0].trades, 6);
    assert_eq!(minute[0].close, Decimal::from(105));
    let published: Vec<i64> = bars(&out)
        .iter()
        .filter(|b| b.interval == Interval::S1)
        .map(|b| (b.start - t0) / S)
        .collect();
    assert_eq!(published, vec![0, 1, 2, 3, 4, 5]);
}

/// Kafka failover: the aggregator that takes over a partition waits for the
/// tick writer's group before it seeds, so the bars it recomputes hold the
/// ticks the dead worker's aggregator had already put into published bars
/// although the tick writer had not stored them yet. Without the wait the
/// recomputed minute bar held 7 of the 12 ticks, for good. Skipped without
/// a broker (`MARKETD_TEST_KAFKA_BROKERS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failover_seeding_waits_for_the_tick_writer() {
    use crate::sinks::{SINKS, WriterConfig};
    use marketd_bus::{AnyBus, AnyConsumer, Bus, BusOptions, Consumer, Delivery};
    use marketd_cache::{AnyCache, CacheOptions};
    use marketd_model::Topic;
    use marketd_store::prelude::*;
    use std::time::Duration;
    use tokio::time::{Instant, timeout};

    let Some(brokers) = marketd_testkit::service(
        "MARKETD_TEST_KAFKA_BROKERS",
        "kafka test after_a_failover_seeding_waits_for_the_tick_writer",
    ) else {
        return;
    };
    let bus = AnyBus::connect(
        &format!("kafka://{brokers}"),
        BusOptions {
            partitions: 1,
            topic_prefix: format!("agg{}.", uuid::Uuid::now_v7().simple()),
            session_timeout_ms: 6_000,
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    async fn take(c: &mut AnyConsumer, n: usize) -> Vec<Delivery> {
        let mut got = Vec::new();
        while got.len() < n {
            let want = n - got.len();
            let r = timeout(Duration::from_secs(30), c.recv_batch(&mut got, want));
            assert!(r.await.expect("messages within 30 s").unwrap() > 0);
        }
        got
    }
    async fn commit_landed(c: &mut AnyConsumer, batch: &[Delivery]) {
        c.commit(batch).await.unwrap();
        let AnyConsumer::Kafka(k) = &*c else {
            unreachable!()
        };
        let next = batch.last().unwrap().offset + 1;
        let deadline = Instant::now() + Duration::from_secs(30);
        while k.committed().await.unwrap().get(&0) != Some(&next) {
            assert!(Instant::now() < deadline, "commit not on the broker");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = crate::test_support::sqlite_store(&dir).await;
    let t0 = 1_796_294_640 * S; // a minute boundary
    let ticks: Vec<Tick> = (0..12).map(|i| tick(t0 + i * S / 10, 100 + i)).collect();
    // One produce request per tick: tansu fetches only from a batch's start.
    for t in &ticks[..10] {
        bus.publish(Event::Tick(t.clone())).await.unwrap();
    }
    let cfg = AggregatorConfig {
        intervals: vec![Interval::M1],
        ma_windows: vec![],
        ma_intervals: vec![],
        late_buckets: 2,
        flush_interval_ms: 100,
    };
    // The dead worker: its aggregator published (and its bars writer
    // stored) the minute bar of the first ten ticks and committed them...
    let mut old = bus.subscribe(Topic::Ticks, "aggregator").await.unwrap();
    let seen = take(&mut old, 10).await;
    let mut dead = Aggregator::new(cfg.clone());
    let mut out = Vec::new();
    dead.apply_batch(ticks[..10].iter(), &mut out);
    dead.flush_open(&mut out);
    let published: Vec<Bar> = bars(&out).into_iter().cloned().collect();
    assert_eq!(published.last().unwrap().trades, 10);
    store.upsert_bars(&published).await.unwrap();
    commit_landed(&mut old, &seen).await;
    drop(old);
    // ... while its tick writer had stored and committed five of them.
    store.insert_ticks(&ticks[..5]).await.unwrap();
    let mut writer = bus.subscribe(Topic::Ticks, "store-ticks").await.unwrap();
    let seen = take(&mut writer, 10).await;
    commit_landed(&mut writer, &seen[..5]).await;
    drop(writer);

    // The survivor: an aggregator first, then two more ticks.
    let cache = AnyCache::connect("memory://", CacheOptions::default())
        .await
        .unwrap();
    let tasks = tokio_util::task::TaskTracker::new();
    let latest = crate::cache_updater::LatestFeed::start(cache, &tasks);
    let consumer = bus.subscribe(Topic::Ticks, "aggregator").await.unwrap();
    let mut audit = bus.subscribe(Topic::Bars, "audit").await.unwrap();
    tasks.spawn(super::run(
        consumer,
        bus.clone(),
        store.clone(),
        latest,
        cfg,
    ));
    for t in &ticks[10..] {
        bus.publish(Event::Tick(t.clone())).await.unwrap();
    }
    // The tick writer comes back once the aggregator published a bar (it
    // seeded without waiting) or 3 s passed (it waits for the writer).
    let mut got = Vec::new();
    let early = timeout(Duration::from_secs(3), audit.recv_batch(&mut got, 100)).await;
    let consumer = bus.subscribe(Topic::Ticks, "store-ticks").await.unwrap();
    let writer_cfg = WriterConfig {
        batch_size: 100,
        flush_interval_ms: 20,
    };
    tasks.spawn(crate::sinks::run(
        SINKS[0],
        consumer,
        store.clone(),
        writer_cfg,
    ));
    // The minute bar ends with all twelve ticks, as a recomputation from the
    // stored ticks has it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let trades = |got: &[Delivery]| {
        got.iter()
            .filter_map(|d| match &d.envelope.event {
                Event::Bar(b) => Some(b.trades),
                _ => None,
            })
            .next_back()
    };
    while trades(&got) != Some(12) {
        assert!(
            Instant::now() < deadline,
            "minute bar with {:?} trades, want 12 (published before the writer came back: {})",
            trades(&got),
            early.is_ok()
        );
        let _ = timeout(Duration::from_millis(500), audit.recv_batch(&mut got, 100)).await;
    }
    assert_eq!(store.count_ticks(None).await.unwrap(), 12);
    bus.close_topic(Topic::Ticks);
    bus.close_topic(Topic::Bars);
    tasks.close();
    timeout(Duration::from_secs(30), tasks.wait())
        .await
        .unwrap();
}
