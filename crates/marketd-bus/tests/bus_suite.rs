//! One suite of event-log behaviour, run against every backend: `memory://`
//! always, Kafka when `MARKETD_TEST_KAFKA_BROKERS` names a broker
//! (scripts/test starts a private tansu broker). Without it the Kafka runs are
//! skipped, unless `MARKETD_REQUIRE_SERVICES=1`, where they fail. Every Kafka
//! test uses its own topic prefix, so tests never see each other's messages.

use futures::FutureExt;
use marketd_bus::{AnyBus, AnyConsumer, AnyTail, Bus, BusOptions, Consumer, Delivery, Tailed};
use marketd_model::{Decimal, Event, Symbol, Tick, TickKind, Topic};
use std::collections::BTreeMap;
use std::time::Duration;

fn tick(sym: &str, n: i64) -> Event {
    Event::Tick(Tick::new(
        Symbol::parse(sym).unwrap(),
        "test",
        TickKind::Trade,
        Decimal::from(100 + n),
        Decimal::ONE,
        n,
        n,
    ))
}

fn ts(d: &Delivery) -> i64 {
    match &d.envelope.event {
        Event::Tick(t) => t.ts_event,
        other => panic!("unexpected {other:?}"),
    }
}

/// Receives until `n` messages arrived (or fails after 30 s).
async fn take(c: &mut AnyConsumer, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let want = n - got.len();
        match tokio::time::timeout(left, c.recv_batch(&mut got, want)).await {
            Ok(r) => assert!(r.unwrap() > 0, "stream ended after {} of {n}", got.len()),
            Err(_) => panic!("only {} of {n} messages within 30 s", got.len()),
        }
    }
    got
}

/// Asserts nothing more arrives within `wait`.
async fn nothing_more(c: &mut AnyConsumer, wait: Duration) {
    let mut extra = Vec::new();
    if let Ok(r) = tokio::time::timeout(wait, c.recv_batch(&mut extra, 100)).await {
        let n = r.unwrap();
        assert_eq!(
            n,
            0,
            "unexpected messages: {:?}",
            extra.iter().map(ts).collect::<Vec<_>>()
        );
    }
}

/// Per key, the event times in arrival order.
fn per_key(got: &[Delivery]) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in got {
        m.entry(d.envelope.key.clone()).or_default().push(ts(d));
    }
    m
}

async fn every_group_gets_every_message_in_key_order(bus: &AnyBus) {
    let mut a = bus.subscribe(Topic::Ticks, "a").await.unwrap();
    let mut b = bus.subscribe(Topic::Ticks, "b").await.unwrap();
    let events: Vec<Event> = (0..60)
        .map(|i| tick(["AAPL", "MSFT", "BTC-USDT"][i as usize % 3], i))
        .collect();
    bus.publish_batch(events).await.unwrap();
    for c in [&mut a, &mut b] {
        let got = take(c, 60).await;
        let keys = per_key(&got);
        assert_eq!(keys.len(), 3);
        for (key, times) in keys {
            assert_eq!(times.len(), 20, "{key}");
            assert!(
                times.windows(2).all(|w| w[0] < w[1]),
                "{key} out of order: {times:?}"
            );
        }
        nothing_more(c, Duration::from_millis(300)).await;
    }
}

async fn messages_land_on_the_partition_of_their_key(bus: &AnyBus) {
    let mut c = bus.subscribe(Topic::Ticks, "p").await.unwrap();
    let keys = ["AAPL", "MSFT", "GOOG", "BTC-USDT", "ETH-USDT", "EURUSD"];
    bus.publish_batch(
        keys.iter()
            .enumerate()
            .map(|(i, k)| tick(k, i as i64))
            .collect(),
    )
    .await
    .unwrap();
    for d in take(&mut c, keys.len()).await {
        assert_eq!(
            d.partition,
            bus.partition_for(Topic::Ticks, &d.envelope.key)
        );
        assert_eq!(d.topic, Topic::Ticks);
    }
}

async fn topics_are_separate(bus: &AnyBus) {
    let mut bars = bus.subscribe(Topic::Bars, "g").await.unwrap();
    bus.publish(tick("AAPL", 1)).await.unwrap();
    nothing_more(&mut bars, Duration::from_millis(500)).await;
}

/// Commits `batch` and, on Kafka (which commits asynchronously), waits
/// until the broker has the commit (the memory bus commits at once).
async fn commit_landed(c: &mut AnyConsumer, batch: &[Delivery]) {
    c.commit(batch).await.unwrap();
    if let AnyConsumer::Kafka(k) = &*c {
        let last = batch.last().expect("a batch to commit");
        let (partition, next) = (last.partition, last.offset + 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while k.committed().await.unwrap().get(&partition) != Some(&next) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "commit of offset {next} not on the broker within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn a_new_member_resumes_after_the_committed_offset(bus: &AnyBus) {
    let mut c = bus.subscribe(Topic::Ticks, "resume").await.unwrap();
    // One produce request per message: the test broker (tansu 0.6, memory
    // engine) cannot fetch from an offset inside a record batch (its fetch
    // lists batches by base offset), which Kafka can. Separate requests make
    // every message its own batch, so the committed offset starts one.
    for i in 0..10 {
        bus.publish(tick("AAPL", i)).await.unwrap();
    }
    let first = take(&mut c, 5).await;
    assert_eq!(
        first.iter().map(ts).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    commit_landed(&mut c, &first).await;
    drop(c);
    let mut next = bus.subscribe(Topic::Ticks, "resume").await.unwrap();
    let rest = take(&mut next, 5).await;
    assert_eq!(rest.iter().map(ts).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9]);
}

async fn close_hands_over_then_ends(bus: &AnyBus) {
    let mut c = bus.subscribe(Topic::Ticks, "close").await.unwrap();
    bus.publish(tick("AAPL", 1)).await.unwrap();
    let got = take(&mut c, 1).await;
    c.commit(&got).await.unwrap();
    bus.close_topic(Topic::Ticks);
    assert!(matches!(
        bus.publish(tick("AAPL", 2)).await,
        Err(marketd_bus::Error::Closed(Topic::Ticks))
    ));
    let end = tokio::time::timeout(Duration::from_secs(5), c.recv())
        .await
        .expect("a closed topic ends the stream");
    assert!(end.unwrap().is_none());
}

async fn decimals_and_ids_survive_the_wire(bus: &AnyBus) {
    let mut c = bus.subscribe(Topic::Ticks, "exact").await.unwrap();
    let t = Tick::new(
        Symbol::parse("BTC-USDT").unwrap(),
        "okx",
        TickKind::Trade,
        "97123.123456789012345678".parse().unwrap(),
        "0.00000001".parse().unwrap(),
        1_700_000_000_000_000_001,
        1_700_000_000_000_000_002,
    );
    bus.publish(Event::Tick(t.clone())).await.unwrap();
    let got = take(&mut c, 1).await;
    assert_eq!(got[0].envelope.event, Event::Tick(t));
    assert_eq!(got[0].envelope.key, "BTC-USDT");
    assert_eq!(
        got[0].envelope.schema_version,
        marketd_model::SCHEMA_VERSION
    );
}

/// Several batches queued with `send_batch` before any receipt is awaited
/// (how feeds pipeline): every receipt resolves, and each key's events
/// arrive in the order they were sent, across batches.
async fn pipelined_batches_keep_key_order(bus: &AnyBus) {
    let mut c = bus.subscribe(Topic::Ticks, "pipelined").await.unwrap();
    let mut receipts = Vec::new();
    for batch in 0..8_i64 {
        let events: Vec<Event> = (0..30)
            .map(|i| tick(["AAPL", "MSFT", "BTC-USDT"][i as usize % 3], batch * 30 + i))
            .collect();
        receipts.push(bus.send_batch(events).await.unwrap());
    }
    for r in receipts {
        r.wait().await.unwrap();
    }
    let got = take(&mut c, 240).await;
    for (key, times) in per_key(&got) {
        assert_eq!(times.len(), 80, "{key}");
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "{key} out of order: {times:?}"
        );
    }
    nothing_more(&mut c, Duration::from_millis(300)).await;
}

/// The next `n` messages of a tail (fails after 30 s or on a lag).
async fn tail_take(t: &mut AnyTail, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, t.recv()).await {
            Ok(Ok(Some(Tailed::Message(d)))) => got.push(d),
            Ok(other) => panic!("after {} of {n}: {other:?}", got.len()),
            Err(_) => panic!("only {} of {n} messages within 30 s", got.len()),
        }
    }
    got
}

/// Two tails each see every message published after they started, in key
/// order, beside a consumer group that still gets them all; tailing
/// commits nothing, so a group member started later still begins at the
/// start, and what came before a tail started is not in it.
async fn tails_see_everything_from_their_start_without_a_group(bus: &AnyBus) {
    let mut group = bus.subscribe(Topic::Ticks, "beside-tails").await.unwrap();
    bus.publish_batch((0..5).map(|i| tick("AAPL", i)).collect())
        .await
        .unwrap();
    let mut a = bus.tail(Topic::Ticks).await.unwrap();
    let mut b = bus.tail(Topic::Ticks).await.unwrap();
    let events: Vec<Event> = (5..65)
        .map(|i| tick(["AAPL", "MSFT", "BTC-USDT"][i as usize % 3], i))
        .collect();
    bus.publish_batch(events).await.unwrap();
    for t in [&mut a, &mut b] {
        let got = tail_take(t, 60).await;
        let times: Vec<i64> = per_key(&got).into_values().flatten().collect();
        assert!(
            times.iter().all(|&t| t >= 5),
            "from before the tail: {times:?}"
        );
        for (key, times) in per_key(&got) {
            assert_eq!(times.len(), 20, "{key}");
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{key}: {times:?}");
        }
    }
    assert_eq!(take(&mut group, 65).await.len(), 65);
    // Other topics are not tailed.
    bus.publish(Event::ConnectorStatus(
        marketd_model::ConnectorStatus::initial(
            uuid::Uuid::now_v7(),
            marketd_model::ConnectorState::Running,
            1,
        ),
    ))
    .await
    .unwrap();
    bus.publish(tick("AAPL", 99)).await.unwrap();
    let next = tail_take(&mut a, 1).await;
    assert_eq!(ts(&next[0]), 99);
}

macro_rules! for_each_suite_test {
    ($runner:ident) => {
        $runner!(
            every_group_gets_every_message_in_key_order,
            messages_land_on_the_partition_of_their_key,
            topics_are_separate,
            a_new_member_resumes_after_the_committed_offset,
            close_hands_over_then_ends,
            decimals_and_ids_survive_the_wire,
            pipelined_batches_keep_key_order,
            tails_see_everything_from_their_start_without_a_group,
        );
    };
}

mod memory {
    use super::*;

    macro_rules! memory_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test]
            async fn $name() {
                let bus = AnyBus::connect("memory://", BusOptions::default()).await.unwrap();
                assert_eq!(bus.backend_name(), "memory");
                super::$name(&bus).await;
            }
        )*};
    }
    for_each_suite_test!(memory_tests);

    /// The memory bus keeps no commit across a restart: no group ever waits
    /// for another.
    #[tokio::test]
    async fn caught_up_is_immediate() {
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let mut c = bus.subscribe(Topic::Ticks, "ahead").await.unwrap();
        bus.publish(tick("AAPL", 1)).await.unwrap();
        let got = take(&mut c, 1).await;
        c.commit(&got).await.unwrap();
        assert!(c.caught_up("behind", Duration::ZERO).await.unwrap());
    }
}

mod kafka {
    use super::*;
    use marketd_model::Codec;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::Message as _;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    const VAR: &str = "MARKETD_TEST_KAFKA_BROKERS";

    fn brokers(test: &str) -> Option<String> {
        marketd_testkit::service(VAR, &format!("kafka test {test}"))
    }

    /// For `test`, the brokers and a bus on topics of its own with
    /// `partitions` each; `None` (the test is skipped) without a broker.
    async fn kafka_bus(test: &str, partitions: u32) -> Option<(String, AnyBus)> {
        let brokers = brokers(test)?;
        let bus = fresh(&brokers, partitions).await;
        assert_eq!(bus.backend_name(), "kafka");
        Some((brokers, bus))
    }

    /// A bus on its own topics.
    pub(super) async fn fresh(brokers: &str, partitions: u32) -> AnyBus {
        let prefix = format!(
            "test{}-{}.",
            std::process::id(),
            uuid::Uuid::now_v7().simple()
        );
        on_prefix(brokers, partitions, &prefix, Codec::Json).await
    }

    /// A bus on the topics of `prefix`, its producers writing `codec`.
    async fn on_prefix(brokers: &str, partitions: u32, prefix: &str, codec: Codec) -> AnyBus {
        AnyBus::connect(
            &format!("kafka://{brokers}"),
            BusOptions {
                partitions,
                topic_prefix: prefix.to_string(),
                session_timeout_ms: 6_000,
                codec,
                ..BusOptions::default()
            },
        )
        .await
        .unwrap()
    }

    macro_rules! kafka_tests {
        ($($name:ident),* $(,)?) => {$(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((_, bus)) = kafka_bus(stringify!($name), 3).await else { return };
                super::$name(&bus).await;
            }
        )*};
    }
    for_each_suite_test!(kafka_tests);

    /// The member's lag (what `marketd_bus_consumer_lag` exports) counts what
    /// it received but did not commit yet, and drops to 0 after the commit.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn consumer_lag_follows_commits() {
        let Some((_, bus)) = kafka_bus("consumer_lag_follows_commits", 3).await else {
            return;
        };
        let mut c = bus.subscribe(Topic::Ticks, "lag").await.unwrap();
        let events: Vec<Event> = (0..30)
            .map(|i| tick(["AAPL", "MSFT", "BTC-USDT"][i as usize % 3], i))
            .collect();
        bus.publish_batch(events).await.unwrap();
        let got = take(&mut c, 30).await;
        async fn lag_becomes(c: &mut AnyConsumer, want: u64) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                // Statistics are served while the member polls.
                let mut sink = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_millis(250), c.recv_batch(&mut sink, 1))
                        .await;
                assert!(sink.is_empty(), "unexpected message");
                let AnyConsumer::Kafka(k) = &*c else {
                    panic!("not a Kafka consumer")
                };
                if k.lag() == Some(want) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "lag {:?}, want {want}, within 30 s",
                    k.lag()
                );
            }
        }
        // Known once the group has committed offsets.
        c.commit(&got).await.unwrap();
        lag_becomes(&mut c, 0).await;
        let more: Vec<Event> = (30..50)
            .map(|i| tick(["AAPL", "MSFT", "BTC-USDT"][i as usize % 3], i))
            .collect();
        bus.publish_batch(more).await.unwrap();
        let got = take(&mut c, 20).await;
        lag_becomes(&mut c, 20).await;
        c.commit(&got).await.unwrap();
        lag_becomes(&mut c, 0).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_members_split_the_partitions() {
        let Some((_, bus)) = kafka_bus("two_members_split_the_partitions", 4).await else {
            return;
        };
        let mut a = bus.subscribe(Topic::PollingJobs, "split").await.unwrap();
        let mut b = bus.subscribe(Topic::PollingJobs, "split").await.unwrap();
        let (mut ra, mut rb) = (a.assignment(), b.assignment());
        // Rebalances happen while the members poll.
        async fn poll(c: &mut AnyConsumer) {
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_millis(200), c.recv_batch(&mut sink, 1)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            poll(&mut a).await;
            poll(&mut b).await;
            let (pa, pb) = (
                ra.borrow_and_update().clone(),
                rb.borrow_and_update().clone(),
            );
            let mut all: Vec<u32> = pa
                .partitions
                .iter()
                .chain(&pb.partitions)
                .copied()
                .collect();
            all.sort_unstable();
            if all == vec![0, 1, 2, 3] && !pa.partitions.is_empty() && !pb.partitions.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no disjoint split of 4 partitions within 60 s: {pa:?} / {pb:?}"
            );
        }
        // When one member leaves, the other takes every partition.
        drop(b);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            poll(&mut a).await;
            if ra.borrow_and_update().partitions == vec![0, 1, 2, 3] {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "partitions did not move within 60 s"
            );
        }
    }

    /// `caught_up` waits for another group's commits to reach this group's:
    /// false while the other group is behind (or never committed), true once
    /// it committed as far, and true at once for a group with no commits of
    /// its own.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caught_up_follows_the_other_groups_commits() {
        let Some((_, bus)) = kafka_bus("caught_up_follows_the_other_groups_commits", 1).await
        else {
            return;
        };
        // One produce request per message: a commit inside a record batch
        // is no place tansu can fetch from (see above).
        for i in 0..10 {
            bus.publish(tick("AAPL", i)).await.unwrap();
        }
        let mut fresh = bus.subscribe(Topic::Ticks, "fresh").await.unwrap();
        take(&mut fresh, 10).await;
        assert!(
            fresh.caught_up("nobody", Duration::ZERO).await.unwrap(),
            "nothing committed by its own group: nothing to wait for"
        );
        let mut ahead = bus.subscribe(Topic::Ticks, "ahead").await.unwrap();
        let all = take(&mut ahead, 10).await;
        commit_landed(&mut ahead, &all).await;
        let mut behind = bus.subscribe(Topic::Ticks, "behind").await.unwrap();
        let seen = take(&mut behind, 10).await;
        commit_landed(&mut behind, &seen[..5]).await;
        let short = Duration::from_millis(300);
        assert!(!ahead.caught_up("behind", short).await.unwrap());
        assert!(!ahead.caught_up("never-committed", short).await.unwrap());
        commit_landed(&mut behind, &seen).await;
        assert!(
            ahead
                .caught_up("behind", Duration::from_secs(30))
                .await
                .unwrap()
        );
        assert!(behind.caught_up("ahead", Duration::ZERO).await.unwrap());
    }

    /// A wait in `caught_up` ends with `Closed` once the topic closes (a
    /// shutdown, which stops the other group too) instead of running out its
    /// time: the aggregator waiting for a tick writer that shut down before
    /// catching up held the shutdown up to 30 s, then seeded without the
    /// ticks it was waiting for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn caught_up_ends_when_the_topic_closes() {
        let Some((_, bus)) = kafka_bus("caught_up_ends_when_the_topic_closes", 1).await else {
            return;
        };
        for i in 0..3 {
            bus.publish(tick("AAPL", i)).await.unwrap();
        }
        let mut ahead = bus.subscribe(Topic::Ticks, "ahead").await.unwrap();
        let all = take(&mut ahead, 3).await;
        commit_landed(&mut ahead, &all).await;
        let waiting = tokio::spawn(async move {
            ahead
                .caught_up("never-committed", Duration::from_secs(600))
                .await
        });
        bus.close_topic(Topic::Ticks);
        let ended = tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the wait ends with the topic, long before its 600 s")
            .unwrap();
        assert!(
            matches!(ended, Err(marketd_bus::Error::Closed(Topic::Ticks))),
            "{ended:?}"
        );
    }

    /// A receive that is polled once and then dropped (as a select whose
    /// other branch is ready drops it) still gets the messages
    /// over many tries: the description of the group after an assignment runs
    /// beside the messages and is not started over by each cancelled receive.
    /// Before, every try started it again and no try got past it, so the
    /// aggregator, whose receive its flush timer cancels every
    /// `flush_interval_ms`, never received on tansu with 100 ms.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receives_cancelled_after_one_poll_still_deliver() {
        let Some((_, bus)) = kafka_bus("receives_cancelled_after_one_poll_still_deliver", 1).await
        else {
            return;
        };
        let mut c = bus.subscribe(Topic::Ticks, "impatient").await.unwrap();
        for i in 0..5 {
            bus.publish(tick("AAPL", i)).await.unwrap();
        }
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while got.len() < 5 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of 5 messages within 30 s",
                got.len()
            );
            let _ = c.recv_batch(&mut got, 5).now_or_never();
            // Paces the tries (the broker, librdkafka's threads and the
            // description's task work meanwhile).
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(got.iter().map(ts).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn malformed_messages_are_skipped_not_fatal() {
        let Some((brokers, bus)) = kafka_bus("malformed_messages_are_skipped_not_fatal", 1).await
        else {
            return;
        };
        let marketd_bus::AnyBus::Kafka(k) = &bus else {
            unreachable!()
        };
        let topic = k.topic_name(Topic::Ticks).to_string();
        let mut c = bus.subscribe(Topic::Ticks, "strict").await.unwrap();
        let raw: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        // Not JSON, a JSON object that is no envelope, and a binary
        // envelope cut short after its schema version.
        for payload in [
            &b"not json"[..],
            br#"{"schema_version":1}"#,
            b"\xB1\x01\x00",
        ] {
            raw.send(
                FutureRecord::to(&topic).key("AAPL").payload(payload),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        }
        bus.publish(tick("AAPL", 7)).await.unwrap();
        let got = take(&mut c, 1).await;
        assert_eq!(
            ts(&got[0]),
            7,
            "the valid message after three bad ones arrives"
        );
        assert_eq!(got[0].offset, 3, "the bad ones were skipped, not delivered");
    }

    /// Producers writing binary tick envelopes and producers writing JSON
    /// share a topic; a consumer reads both, field for field, whatever its
    /// own bus writes. Events without a binary layout stay JSON.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn binary_and_json_envelopes_share_a_topic() {
        let Some(brokers) = brokers("binary_and_json_envelopes_share_a_topic") else {
            return;
        };
        let prefix = format!("testcodec{}.", uuid::Uuid::now_v7().simple());
        let json = on_prefix(&brokers, 1, &prefix, Codec::Json).await;
        let binary = on_prefix(&brokers, 1, &prefix, Codec::Binary).await;
        let mut c = json.subscribe(Topic::Ticks, "reader").await.unwrap();
        let mut full = Tick::new(
            Symbol::parse("BTC-USDT").unwrap(),
            "okx",
            TickKind::Quote,
            "97123.123456789012345678".parse().unwrap(),
            "0.000000000000000001".parse().unwrap(),
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_100,
        );
        full.bid = Some("97123.1".parse().unwrap());
        full.ask = Some("97123.2".parse().unwrap());
        full.trade_id = Some("42".into());
        full.sequence = Some(7);
        full.venue_symbol = Some("BTC-USDT-SWAP".into());
        json.publish(tick("BTC-USDT", 1)).await.unwrap();
        binary.publish(Event::Tick(full.clone())).await.unwrap();
        binary.publish(tick("BTC-USDT", 3)).await.unwrap();
        let got = take(&mut c, 3).await;
        assert_eq!(got[0].envelope.event, tick("BTC-USDT", 1));
        assert_eq!(got[1].envelope.event, Event::Tick(full));
        assert_eq!(got[2].envelope.event, tick("BTC-USDT", 3));
        assert_eq!(got[1].envelope.key, "BTC-USDT");

        // On the wire: JSON, then the binary layout.
        let marketd_bus::AnyBus::Kafka(k) = &binary else {
            unreachable!()
        };
        let raw: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", format!("{prefix}raw"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(k.topic_name(Topic::Ticks), 0, Offset::Beginning)
            .unwrap();
        raw.assign(&tpl).unwrap();
        let mut first_bytes = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while first_bytes.len() < 3 && std::time::Instant::now() < deadline {
            if let Some(m) = raw.poll(Duration::from_millis(200)) {
                first_bytes.push(m.unwrap().payload().unwrap()[0]);
            }
        }
        assert_eq!(first_bytes, vec![b'{', 0xB1, 0xB1]);

        // A bar has no binary layout: written as JSON by the binary bus.
        let mut bars = json.subscribe(Topic::Bars, "bar-reader").await.unwrap();
        let Event::Tick(t) = tick("BTC-USDT", 4) else {
            unreachable!()
        };
        let bar = Event::Bar(marketd_model::Bar::open_with(
            &t,
            marketd_model::Interval::M1,
        ));
        binary.publish(bar.clone()).await.unwrap();
        assert_eq!(take(&mut bars, 1).await[0].envelope.event, bar);
    }

    #[tokio::test]
    async fn an_unreachable_broker_fails_naming_it() {
        let err = AnyBus::connect("kafka://127.0.0.1:1", BusOptions::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }

    #[tokio::test]
    async fn bad_urls_are_refused() {
        for url in ["kafka://", "nats://x:1", "kafka://host:1/path"] {
            assert!(
                AnyBus::connect(url, BusOptions::default()).await.is_err(),
                "{url}"
            );
        }
    }
}
