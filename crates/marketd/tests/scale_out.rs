//! Scale-out end to end, with real processes on real engines: a Kafka broker,
//! PostgreSQL and Redis (from `MARKETD_TEST_KAFKA_BROKERS`,
//! `MARKETD_TEST_POSTGRES_URL`, `MARKETD_TEST_REDIS_URL`, which scripts/test
//! provides), two `marketd worker` and two `marketd api` processes of the real
//! binary. Skipped without the services, failed under
//! `MARKETD_REQUIRE_SERVICES=1`.

mod common;

use common::process::{Proc, marketd};
use common::{metrics, poll_until, service, status_of, strings, wait_until};
use futures::{SinkExt, StreamExt};
use marketd_bus::{AnyBus, Bus, BusOptions, Consumer};
use marketd_model::{Decimal, Event, Topic};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// How long a stopped process may take to exit after SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(15);

/// Starts `marketd <args>` (with its own data directory below `dir`) and
/// returns it with its base URL once it reports ready on `/health/ready`.
async fn start(
    client: &reqwest::Client,
    name: &str,
    args: &[&str],
    env: &[(String, String)],
    dir: &std::path::Path,
) -> (Proc, String) {
    let mut proc = Proc::marketd(name, args, &dir.join(name), env, true, "info");
    let base = proc.ready().await;
    wait_ready(client, &proc, &base).await;
    (proc, base)
}

async fn wait_ready(client: &reqwest::Client, proc: &Proc, base: &str) {
    let url = format!("{base}/health/ready");
    let ready = poll_until(Duration::from_secs(60), || async {
        let r = client.get(&url).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "{} not ready within 60 s:\n{}",
        proc.name,
        proc.tail()
    );
}

/// SIGTERM; the process must exit 0 within [`EXIT_DEADLINE`].
fn terminate(proc: &mut Proc) {
    let status = proc.terminate(EXIT_DEADLINE);
    assert!(
        status.success(),
        "{} exited {status}:\n{}",
        proc.name,
        proc.tail()
    );
}

/// The value of an unlabelled gauge in a Prometheus text page.
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn running_jobs(client: &reqwest::Client, admin: &str) -> Option<f64> {
    let page = metrics(client, admin).await?;
    gauge(&page, "marketd_polling_jobs_running")
}

/// The polling jobs an api process lists.
async fn jobs(client: &reqwest::Client, url: &str) -> Vec<Value> {
    let list: Value = client.get(url).send().await.unwrap().json().await.unwrap();
    list["jobs"].as_array().cloned().unwrap_or_default()
}

/// Reads `audit` into `out` until nothing arrives for 5 s.
async fn read_until_quiet(audit: &mut marketd_bus::AnyConsumer, out: &mut Vec<TickKey>) {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        match tokio::time::timeout(Duration::from_secs(5), audit.recv_batch(&mut batch, 10_000))
            .await
        {
            Ok(r) => assert!(r.unwrap() > 0),
            Err(_) => return,
        }
        for d in &batch {
            if let Event::Tick(t) = &d.envelope.event {
                out.push((
                    t.source.to_string(),
                    t.symbol.to_string(),
                    t.ts_event,
                    t.price.normalize(),
                ));
            }
        }
    }
}

/// Every row of the `ticks` table, as the test compares them.
async fn stored_ticks(conn: &mut sqlx::PgConnection) -> Vec<TickKey> {
    let rows = sqlx::query("SELECT source, symbol, ts_event, price::text AS price FROM ticks")
        .fetch_all(conn)
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.get::<String, _>("source"),
                r.get::<String, _>("symbol"),
                r.get::<i64, _>("ts_event"),
                Decimal::from_str(&r.get::<String, _>("price"))
                    .unwrap()
                    .normalize(),
            )
        })
        .collect()
}

/// A realtime client subscribed to every tick of an api instance; what it
/// received, in order, as (symbol, seq, tick). It answers the server's
/// pings so a long test does not look like a dead client.
async fn realtime_client(base: &str) -> Arc<Mutex<Vec<(String, u64, TickKey)>>> {
    let url = format!("{}/api/v1/realtime", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let sub = json!({"type": "subscribe", "channel": "ticks", "symbols": ["*"]});
    ws.send(WsMessage::Text(sub.to_string().into()))
        .await
        .unwrap();
    // `connected`, then `subscribed`: the subscription is in place when
    // this returns, before any tick is published.
    loop {
        let Some(Ok(WsMessage::Text(t))) = ws.next().await else {
            panic!("{url}: closed before subscribing")
        };
        if serde_json::from_str::<Value>(&t).unwrap()["type"] == "subscribed" {
            break;
        }
    }
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let WsMessage::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v["type"].as_str() {
                Some("ping") => {
                    let pong = WsMessage::Text(json!({"type": "pong"}).to_string().into());
                    if ws.send(pong).await.is_err() {
                        return;
                    }
                }
                Some("data_update") => {
                    let d = &v["data"];
                    let key = (
                        d["source"].as_str().unwrap().to_string(),
                        d["symbol"].as_str().unwrap().to_string(),
                        d["ts_event"].as_i64().unwrap(),
                        Decimal::from_str(&d["price"].to_string())
                            .unwrap()
                            .normalize(),
                    );
                    let symbol = v["symbol"].as_str().unwrap().to_string();
                    sink.lock()
                        .unwrap()
                        .push((symbol, v["seq"].as_u64().unwrap(), key));
                }
                other => panic!("unexpected realtime frame {other:?}: {v}"),
            }
        }
    });
    got
}

/// Per symbol, the seqs and ticks a realtime client received, in order.
type PerSymbol = BTreeMap<String, (Vec<u64>, Vec<TickKey>)>;

fn received_per_symbol(got: &Mutex<Vec<(String, u64, TickKey)>>) -> PerSymbol {
    let mut m = PerSymbol::new();
    for (symbol, seq, key) in got.lock().unwrap().iter() {
        let e = m.entry(symbol.clone()).or_default();
        e.0.push(*seq);
        e.1.push(key.clone());
    }
    m
}

/// The identity of a tick as the test compares it across Kafka and PostgreSQL.
type TickKey = (String, String, i64, Decimal);

/// How the test stops one of the two workers mid-stream.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stop {
    /// `kill -9`: no goodbye; the group notices after the session timeout.
    Kill9,
    /// SIGTERM: the worker drains and leaves its groups.
    Term,
}

/// kill -9 of a worker (the one that leads the consumer groups): its jobs
/// move to the other within one rebalance and every tick is stored once. The
/// group coordinator notices the crash after the session timeout. On the test broker, tansu 0.6, the survivor is first
/// handed its previous assignment; its consumers see that (the group shrank,
/// the assignment did not move) and leave and rejoin the group, which makes
/// tansu assign the whole topic (`KafkaConsumer::check_group` in
/// marketd-bus). Apache Kafka reassigns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_jobs_survive_kill_9_and_store_each_tick_once() {
    scale_out(
        "two_workers_share_jobs_survive_kill_9_and_store_each_tick_once",
        Stop::Kill9,
    )
    .await;
}

/// SIGTERM of a worker mid-stream: it leaves its groups, its jobs move to the
/// other within one rebalance, every tick is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_jobs_survive_a_stopped_worker_and_store_each_tick_once() {
    scale_out(
        "two_workers_share_jobs_survive_a_stopped_worker_and_store_each_tick_once",
        Stop::Term,
    )
    .await;
}

async fn scale_out(test: &str, stop: Stop) {
    let Some((brokers, pg, redis)) = cluster_services(test) else {
        return;
    };
    let db = marketd_testkit::FreshDatabase::create(&pg, "e2e").await.url;
    let dir = tempfile::tempdir().unwrap();
    let session_ms = 6_000u64;
    let env = cluster_env(&brokers, &db, &redis, session_ms);
    let prefix = env
        .iter()
        .find(|(k, _)| k == "MARKETD__BUS__TOPIC_PREFIX")
        .map(|(_, v)| v.clone())
        .unwrap();
    let client = write_client(&db, dir.path());
    // The first worker creates the topics; the others find them. The second
    // writes binary tick envelopes (`bus.codec`), the rest JSON: a cluster
    // switching codecs one process at a time, every consumer reading both.
    let worker = ["worker", "--admin-addr", "127.0.0.1:0"];
    let mut binary_env = env.clone();
    binary_env.push(("MARKETD__BUS__CODEC".into(), "binary".into()));
    let (w1, w1_url) = start(&client, "worker1", &worker, &env, dir.path()).await;
    let (w2, w2_url) = start(&client, "worker2", &worker, &binary_env, dir.path()).await;
    let api = ["api", "--addr", "127.0.0.1:0"];
    let (mut a1, a1_url) = start(&client, "api1", &api, &env, dir.path()).await;
    let (mut a2, a2_url) = start(&client, "api2", &api, &env, dir.path()).await;
    // A realtime client on each api instance, subscribed before any tick.
    let live = [
        realtime_client(&a1_url).await,
        realtime_client(&a2_url).await,
    ];

    // An api process serves no operations on the worker side.
    let workers_have_no_api = status_of(&client, &format!("{w1_url}/api/v1/polling-jobs")).await;
    assert_eq!(workers_have_no_api, 404);

    let symbols: Vec<String> = [
        "AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "NFLX", "IBM", "ORCL", "INTC",
        "AMD",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let res = client
        .post(format!("{a1_url}/api/v1/prices/poll"))
        .json(&json!({"symbols": symbols, "interval": 1.0, "provider": "simulated"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let accepted: Value = res.json().await.unwrap();
    let job_ids = strings(&accepted["job_ids"]);
    assert_eq!(job_ids.len(), symbols.len());

    // Jobs spread over both workers, each job on exactly one.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (n1, n2) = loop {
        let n1 = running_jobs(&client, &w1_url).await.unwrap_or(0.0);
        let n2 = running_jobs(&client, &w2_url).await.unwrap_or(0.0);
        if n1 > 0.0 && n2 > 0.0 && n1 + n2 == symbols.len() as f64 {
            break (n1, n2);
        }
        assert!(
            Instant::now() < deadline,
            "jobs not spread over both workers within 60 s: {n1} + {n2}\n{}\n{}",
            w1.tail(),
            w2.tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("jobs spread: worker1 {n1}, worker2 {n2}");
    // Mid-stream: every job has run a few times (seen through the api).
    let jobs_url = format!("{a2_url}/api/v1/polling-jobs");
    wait_until(Duration::from_secs(60), "every job run 3 times", || async {
        let list = jobs(&client, &jobs_url).await;
        list.iter()
            .all(|j| j["run_count"].as_u64().unwrap_or(0) >= 3)
            .then_some(())
    })
    .await;

    // Stop one worker mid-stream: its jobs move to the other.
    // kill -9 takes worker1: it joined every group first, so it leads them
    // (the coordinator loses the leader too); SIGTERM takes worker2.
    let (mut victim, mut survivor, survivor_url) = match stop {
        Stop::Kill9 => (w1, w2, w2_url),
        Stop::Term => (w2, w1, w1_url),
    };
    match stop {
        Stop::Kill9 => victim.kill9(),
        Stop::Term => terminate(&mut victim),
    }
    let killed_wall = marketd_model::time::now_ns();
    // Within one rebalance: the session timeout and a generous margin (a
    // deadline on the promised move, not a measurement).
    let one_rebalance = Duration::from_millis(session_ms) + Duration::from_secs(15);
    let moved = poll_until(one_rebalance, || async {
        let n = running_jobs(&client, &survivor_url).await.unwrap_or(0.0);
        (n == symbols.len() as f64).then_some(())
    })
    .await;
    assert!(
        moved.is_some(),
        "{} does not run all {} jobs within one rebalance ({one_rebalance:?}) after {stop:?}\n{}",
        survivor.name,
        symbols.len(),
        survivor.tail()
    );

    // Every job runs again on the survivor (seen through the other api).
    let ran_since_kill = |job: &Value| {
        job["last_run_at"]
            .as_str()
            .and_then(marketd_model::time::parse_ts)
            .is_some_and(|ns| ns > killed_wall)
    };
    let list = poll_until(Duration::from_secs(60), || async {
        let list = jobs(&client, &jobs_url).await;
        list.iter().all(ran_since_kill).then_some(list)
    })
    .await;
    let Some(list) = list else {
        let stale: Vec<String> = jobs(&client, &jobs_url)
            .await
            .iter()
            .filter(|j| !ran_since_kill(j))
            .map(|j| format!("{} at {}", j["symbol"], j["last_run_at"]))
            .collect();
        panic!("jobs last ran before the kill: {stale:?}");
    };
    assert_eq!(list.len(), symbols.len());

    // Stop production, let the survivor drain.
    for id in &job_ids {
        let r = client
            .delete(format!("{a2_url}/api/v1/polling-jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "delete {id}: {}", r.status());
    }
    wait_until(
        Duration::from_secs(30),
        "no job running after delete",
        || async {
            (running_jobs(&client, &survivor_url).await.unwrap_or(1.0) == 0.0).then_some(())
        },
    )
    .await;

    // Everything published on the ticks topic, read back by an audit group
    // (production has stopped: the topic is read to its end, which is when
    // nothing more arrives for 5 s).
    let bus = AnyBus::connect(
        &format!("kafka://{brokers}"),
        BusOptions {
            topic_prefix: prefix.clone(),
            partitions: 6,
            ..BusOptions::default()
        },
    )
    .await
    .unwrap();
    let mut audit = bus.subscribe(Topic::Ticks, "audit").await.unwrap();
    let mut published: Vec<TickKey> = Vec::new();
    let mut distinct: BTreeSet<TickKey> = BTreeSet::new();
    let mut conn = sqlx::PgConnection::connect(&db).await.unwrap();
    // The topic is read until it falls quiet and what it held covers what
    // PostgreSQL holds (the writers store only what was published, so a
    // short read means the audit consumer is behind, not done): a quiet
    // window alone misreads a consumer that is slow to join or stalls on a
    // loaded machine.
    let deadline = Instant::now() + Duration::from_secs(120);
    let stored: Vec<TickKey> = loop {
        read_until_quiet(&mut audit, &mut published).await;
        distinct.extend(published.iter().cloned());
        let stored = stored_ticks(&mut conn).await;
        let covered = stored.iter().all(|k| distinct.contains(k));
        let settled = covered && stored.len() >= distinct.len();
        if settled || Instant::now() > deadline {
            break stored;
        }
    };
    // Every successful run published a tick, so each symbol has at least as
    // many as its job recorded before the delete.
    let per_symbol: BTreeMap<&str, u64> = distinct.iter().fold(BTreeMap::new(), |mut m, k| {
        *m.entry(k.1.as_str()).or_default() += 1;
        m
    });
    assert_eq!(per_symbol.len(), symbols.len(), "every symbol published");
    for job in &list {
        let symbol = job["symbol"].as_str().unwrap();
        let ok_runs = job["run_count"].as_u64().unwrap() - job["error_count"].as_u64().unwrap();
        assert!(
            per_symbol[symbol] >= ok_runs,
            "{symbol}: {} ticks published for {ok_runs} successful runs",
            per_symbol[symbol]
        );
    }

    // PostgreSQL holds each of them exactly once. The rows are read from the
    // database itself: what two writers put in the shared store, duplicates
    // included, is the point here, beyond what one api process would list.
    let stored_set: BTreeSet<TickKey> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "a tick is stored twice");
    let missing: Vec<_> = distinct.difference(&stored_set).take(5).collect();
    assert!(missing.is_empty(), "published but not stored: {missing:?}");
    let extra: Vec<_> = stored_set.difference(&distinct).take(5).collect();
    assert!(extra.is_empty(), "stored but never published: {extra:?}");
    eprintln!(
        "{} messages on {prefix}ticks, {} distinct ticks, {} rows in PostgreSQL",
        published.len(),
        distinct.len(),
        stored.len()
    );

    // The realtime clients on the two api instances each received every
    // message of the topic, numbered 1.. per symbol without a hole, in the
    // same order on both.
    let mut published_per_symbol: BTreeMap<String, usize> = BTreeMap::new();
    for k in &published {
        *published_per_symbol.entry(k.1.clone()).or_default() += 1;
    }
    let views = poll_until(Duration::from_secs(60), || async {
        let views: Vec<PerSymbol> = live.iter().map(|c| received_per_symbol(c)).collect();
        views
            .iter()
            .all(|v| {
                published_per_symbol
                    .iter()
                    .all(|(s, n)| v.get(s).is_some_and(|(seqs, _)| seqs.len() >= *n))
            })
            .then_some(views)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the realtime clients did not receive every published tick: {:?} vs {:?}",
            live.iter()
                .map(|c| c.lock().unwrap().len())
                .collect::<Vec<_>>(),
            published.len()
        )
    });
    assert_eq!(views[0], views[1], "the two instances streamed the same");
    for (symbol, (seqs, keys)) in &views[0] {
        assert_eq!(
            seqs,
            &(1..=seqs.len() as u64).collect::<Vec<_>>(),
            "{symbol}: seq without holes"
        );
        let received: BTreeSet<&TickKey> = keys.iter().collect();
        let expected: BTreeSet<&TickKey> = distinct.iter().filter(|k| &k.1 == symbol).collect();
        assert_eq!(received, expected, "{symbol}: the ticks published");
    }
    assert_eq!(views[0].len(), symbols.len());

    for p in [&mut survivor, &mut a1, &mut a2] {
        terminate(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_across_api_instances() {
    const TEST: &str = "the_rate_limit_holds_across_api_instances";
    let Some(redis) = service("MARKETD_TEST_REDIS_URL", TEST) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("MARKETD__CACHE__URL", redis),
        ("MARKETD__RATE_LIMIT__ANONYMOUS_BURST", "5".to_string()),
        (
            "MARKETD__RATE_LIMIT__ANONYMOUS_PER_SECOND",
            "0.2".to_string(),
        ),
        // Each test run limits a client address of its own.
        (
            "MARKETD__RATE_LIMIT__TRUST_FORWARDED_FOR",
            "true".to_string(),
        ),
        ("MARKETD__FEEDS__SIMULATED__ENABLED", "false".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let client = reqwest::Client::new();
    let api = ["api", "--addr", "127.0.0.1:0"];
    let (_a1, base1) = start(&client, "api1", &api, &env, dir.path()).await;
    let (_a2, base2) = start(&client, "api2", &api, &env, dir.path()).await;
    let bases = [base1, base2];
    let me = format!("198.51.100.{}", std::process::id() % 250 + 1);
    let mut statuses = Vec::new();
    let mut refused = None;
    for i in 0..8 {
        let r = client
            .get(format!(
                "{}/api/v1/prices/latest?symbol=AAPL&provider=simulated",
                bases[i % 2]
            ))
            .header("x-forwarded-for", &me)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 && refused.is_none() {
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let body: Value = r.json().await.unwrap();
            refused = Some((retry, body));
        }
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 200, 429, 429, 429],
        "five requests alternating over two instances use up one budget"
    );
    let (retry, body) = refused.unwrap();
    assert!((1..=5).contains(&retry), "Retry-After {retry}");
    assert_eq!(body["error_code"], "RATE_LIMITED");
    assert!(body["request_id"].as_str().is_some_and(|s| !s.is_empty()));
    // Another client is not affected; health is never limited.
    let other = client
        .get(format!("{}/api/v1/prices/latest?symbol=AAPL", bases[0]))
        .header("x-forwarded-for", "192.0.2.200")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    for _ in 0..10 {
        let h = client
            .get(format!("{}/health/live", bases[1]))
            .header("x-forwarded-for", &me)
            .send()
            .await
            .unwrap();
        assert_eq!(h.status(), 200);
    }
}

/// Kafka brokers, PostgreSQL and Redis URLs of the cluster tests; `None`
/// (after a skip notice, or a failure under MARKETD_REQUIRE_SERVICES=1)
/// when one is missing.
fn cluster_services(test: &str) -> Option<(String, String, String)> {
    let (Some(brokers), Some(pg), Some(redis)) = (
        service("MARKETD_TEST_KAFKA_BROKERS", test),
        service("MARKETD_TEST_POSTGRES_URL", test),
        service("MARKETD_TEST_REDIS_URL", test),
    ) else {
        return None;
    };
    Some((brokers, pg, redis))
}

/// The environment of every process of a test cluster: the shared
/// PostgreSQL database, Kafka with a topic prefix of its own, Redis.
fn cluster_env(brokers: &str, db: &str, redis: &str, session_ms: u64) -> Vec<(String, String)> {
    let prefix = format!("e2e{}.", uuid::Uuid::now_v7().simple());
    [
        ("MARKETD__STORAGE__URL", db.to_string()),
        ("MARKETD__BUS__URL", format!("kafka://{brokers}")),
        ("MARKETD__CACHE__URL", redis.to_string()),
        ("MARKETD__BUS__TOPIC_PREFIX", prefix),
        ("MARKETD__BUS__PARTITIONS", "6".into()),
        ("MARKETD__BUS__SESSION_TIMEOUT_MS", session_ms.to_string()),
        ("MARKETD__FEEDS__SIMULATED__ENABLED", "false".into()),
        ("MARKETD__WRITER__FLUSH_INTERVAL_MS", "200".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A client sending a `write` key, made with the CLI on the shared database.
fn write_client(db: &str, dir: &std::path::Path) -> reqwest::Client {
    let out = marketd()
        .args([
            "keys",
            "create",
            "--role",
            "write",
            "--name",
            "e2e",
            "--data-dir",
        ])
        .arg(dir.join("cli"))
        .env("MARKETD__STORAGE__URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", key.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// kill -9 of the worker running a persistent-homology job: after one
/// rebalance the other worker runs it again (attempt 2), and it can still be
/// canceled there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tda_job_whose_worker_dies_runs_again_on_the_other() {
    let test = "a_tda_job_whose_worker_dies_runs_again_on_the_other";
    let Some((brokers, pg, redis)) = cluster_services(test) else {
        return;
    };
    let db = marketd_testkit::FreshDatabase::create(&pg, "e2e").await.url;
    let dir = tempfile::tempdir().unwrap();
    let session_ms = 6_000u64;
    let env = cluster_env(&brokers, &db, &redis, session_ms);
    let client = write_client(&db, dir.path());
    let worker = ["worker", "--admin-addr", "127.0.0.1:0"];
    let (w1, w1_url) = start(&client, "worker1", &worker, &env, dir.path()).await;
    let (w2, w2_url) = start(&client, "worker2", &worker, &env, dir.path()).await;
    let (mut api, api_url) = start(
        &client,
        "api1",
        &["api", "--addr", "127.0.0.1:0"],
        &env,
        dir.path(),
    )
    .await;

    // 2,048 points on O(3) to H2 without a threshold: minutes of work.
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = here
        .ancestors()
        .map(|a| a.join("shared/data/tda/examples/o3_2048.txt"))
        .find(|p| p.is_file())
        .unwrap();
    let r = client
        .post(format!("{api_url}/api/v1/uploads?format=point-cloud"))
        .body(std::fs::read(file).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let up: Value = r.json().await.unwrap();
    let r = client
        .post(format!("{api_url}/api/v1/jobs"))
        .json(&json!({"kind": "vietoris-rips", "upload_id": up["id"], "max_dim": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let job_url = format!("{api_url}/api/v1/jobs/{}", job["id"].as_str().unwrap());
    let running_tda = |url: String| {
        let client = client.clone();
        async move {
            let page = metrics(&client, &url).await?;
            gauge(&page, "marketd_tda_jobs_running")
        }
    };
    // Running on exactly one of the two workers.
    let on = poll_until(Duration::from_secs(60), || async {
        let n1 = running_tda(w1_url.clone()).await.unwrap_or(0.0);
        let n2 = running_tda(w2_url.clone()).await.unwrap_or(0.0);
        match (n1, n2) {
            (1.0, 0.0) => Some(1),
            (0.0, 1.0) => Some(2),
            _ => None,
        }
    })
    .await
    .expect("the job runs on one worker");
    let (mut victim, survivor, survivor_url) = if on == 1 {
        (w1, w2, w2_url)
    } else {
        (w2, w1, w1_url)
    };
    let status: Value = client
        .get(&job_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (status["status"].as_str(), status["attempts"].as_u64()),
        (Some("running"), Some(1))
    );
    victim.kill9();

    // The survivor takes the job's partition and runs it again.
    let again = poll_until(
        Duration::from_millis(session_ms) + Duration::from_secs(30),
        || async {
            let j: Value = client.get(&job_url).send().await.ok()?.json().await.ok()?;
            let n = running_tda(survivor_url.clone()).await.unwrap_or(0.0);
            (j["attempts"] == 2 && j["status"] == "running" && n == 1.0).then_some(j)
        },
    )
    .await;
    assert!(
        again.is_some(),
        "the job did not run again on {}:\n{}",
        survivor.name,
        survivor.tail()
    );

    // And is canceled there.
    let r = client.delete(&job_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let done = poll_until(Duration::from_secs(30), || async {
        let j: Value = client.get(&job_url).send().await.ok()?.json().await.ok()?;
        (j["status"] == "canceled").then_some(j)
    })
    .await;
    assert!(done.is_some(), "not canceled:\n{}", survivor.tail());
    terminate(&mut api);
    let mut survivor = survivor;
    terminate(&mut survivor);
}
