//! Crash and fault injection against the real binary (issue 15, item 3).
//!
//! `kill -9` of `marketd serve` during a fast simulated feed into SQLite,
//! then a restart on the same data directory: every tick stored before the
//! kill is still stored, once; SQLite recovers its WAL (the database opens,
//! `PRAGMA integrity_check` is ok); after the restart every stored bar of
//! every interval equals a recomputation from the stored ticks, every moving
//! average equals a recomputation from the stored closed bars, ingest goes
//! on into the same open bars, and the polling job and the connector created
//! before the kill run again.
//!
//! The comparison helpers are public to the proof scenario
//! (`scripts/proof.d/fault-kill9` runs this test and reads its `FIGURES`
//! line).

mod common;

use axum::extract::State;
use axum::routing::get;
use common::process::{Proc, run};
use common::wait_until;
use marketd_model::{Bar, Indicator, Interval, MaKind, Symbol, Tick};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, BarQuery, IndicatorQuery, StoreOptions, TickQuery};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(120);
const WINDOWS: [u32; 3] = [5, 20, 50];
const MA_INTERVALS: [Interval; 2] = [Interval::S1, Interval::M1];

/// Ticks per second per symbol of the simulated feed.
fn rate() -> String {
    std::env::var("FAULTS_TICKS_PER_SECOND").unwrap_or_else(|_| "300".into())
}

/// Seconds of ingest before the kill, at the feed's nominal rate.
fn run_secs() -> u64 {
    std::env::var("FAULTS_KILL_AFTER_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// Ticks stored in `secs` seconds at half the feed's nominal rate (7
/// symbols): what the test waits for instead of a wall-clock time, so a
/// loaded machine only takes longer.
fn ticks_in(secs: u64) -> f64 {
    let rate: f64 = rate().parse().unwrap_or(300.0);
    secs as f64 * rate * 7.0 / 2.0
}

/// Waits until the polling job has run `runs` times, the connector is
/// running and the upstream it polls has had `hits` requests.
async fn polled(
    http: &reqwest::Client,
    job_url: &str,
    status_url: &str,
    hits: &Arc<AtomicU64>,
    runs: u64,
    min_hits: u64,
) {
    wait_until(DEADLINE, "the polling job and the connector", || {
        let http = http.clone();
        let (job_url, status_url) = (job_url.to_string(), status_url.to_string());
        let hits = hits.clone();
        async move {
            let j = get_json(&http, &job_url).await;
            let c = get_json(&http, &status_url).await;
            (j["run_count"].as_u64().unwrap_or(0) >= runs
                && c["state"] == "running"
                && hits.load(Ordering::SeqCst) >= min_hits)
                .then_some(())
        }
    })
    .await;
}

/// Waits until the server at `base` has stored at least `n` ticks since it
/// started (`marketd_ticks_stored_total`).
async fn wait_stored(http: &reqwest::Client, base: &str, n: f64) {
    let url = format!("{base}/metrics");
    wait_until(DEADLINE, "ticks stored", || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let page = http.get(&url).send().await.ok()?.text().await.ok()?;
            (common::metric_sum(&page, "marketd_ticks_stored_total", "") >= n).then_some(())
        }
    })
    .await;
}

fn serve(name: &str, dir: &Path) -> Proc {
    let env = vec![
        (
            "MARKETD__FEEDS__SIMULATED__TICKS_PER_SECOND".to_string(),
            rate(),
        ),
        // A fresh seed per run: new identities, so nothing collides with a
        // tick of the run before the kill by accident.
        (
            "MARKETD__FEEDS__SIMULATED__SEED".to_string(),
            format!("{}", marketd_model::time::now_ns() % 1_000_000),
        ),
    ];
    Proc::marketd(
        name,
        &["serve", "--addr", "127.0.0.1:0"],
        dir,
        &env,
        false,
        "info",
    )
}

/// A REST upstream in this process: one trade per request, ids and times
/// never repeating across marketd's restarts. Returns its base URL and its
/// request counter.
async fn mock_upstream() -> (String, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    async fn trades(State(hits): State<Arc<AtomicU64>>) -> axum::Json<Value> {
        let n = hits.fetch_add(1, Ordering::SeqCst) + 1;
        let t = marketd_model::time::now_ns() / 1_000_000;
        axum::Json(
            json!({"data": [{"s": "ZZZ", "p": format!("10.{:03}", n % 1000), "q": "2", "t": t, "id": n}]}),
        )
    }
    let router = axum::Router::new()
        .route("/v1/trades", get(trades))
        .with_state(hits.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}"), hits)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post_json(http: &reqwest::Client, key: &str, url: &str, body: &Value) -> (u16, Value) {
    let r = http
        .post(url)
        .header("X-API-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn open_store(dir: &Path) -> AnyStore {
    let url = format!("sqlite://{}", dir.join("marketd.db").display());
    AnyStore::connect(&url, &StoreOptions::default())
        .await
        .expect("the database opens after the kill")
}

/// `PRAGMA integrity_check` on the data directory's database.
async fn integrity(dir: &Path) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("marketd.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut c)
        .await
        .unwrap();
    rows.join("; ")
}

async fn series_keys(dir: &Path) -> Vec<(String, String)> {
    use sqlx::Connection;
    let url = format!("sqlite://{}", dir.join("marketd.db").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query_as("SELECT DISTINCT source, symbol FROM ticks ORDER BY 1, 2")
        .fetch_all(&mut c)
        .await
        .unwrap()
}

/// Every stored tick per (source, symbol), ascending as stored.
async fn all_ticks(store: &AnyStore, dir: &Path) -> BTreeMap<(String, String), Vec<Tick>> {
    let mut out = BTreeMap::new();
    for (source, symbol) in series_keys(dir).await {
        let mut q = TickQuery {
            symbol: Symbol::parse(&symbol).unwrap(),
            source: Some(source.clone()),
            from: None,
            to: None,
            limit: 10_000,
            cursor: None,
        };
        let mut ticks = Vec::new();
        loop {
            let page = store.tick_history(&q).await.unwrap();
            ticks.extend(page.ticks);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        out.insert((source, symbol), ticks);
    }
    out
}

/// What a check of stored bars and averages found.
#[derive(Debug, Default)]
struct Check {
    bars: usize,
    bar_mismatches: Vec<String>,
    averages: usize,
    average_mismatches: Vec<String>,
}

/// Compares every stored bar of every interval with a fold of the stored
/// ticks of its bucket, and every stored moving average with a
/// recomputation from the stored closed bars (SMA: the mean of the last
/// `window` closes summed oldest first; EMA: seeded with the SMA of the
/// first window, then `α·close + (1-α)·previous`).
async fn check_derived(store: &AnyStore, ticks: &BTreeMap<(String, String), Vec<Tick>>) -> Check {
    let mut check = Check::default();
    for ((source, symbol), ticks) in ticks {
        let sym = Symbol::parse(symbol).unwrap();
        for interval in Interval::ALL {
            let mut want: BTreeMap<i64, Bar> = BTreeMap::new();
            for t in ticks {
                let start = interval.bucket_start(t.ts_event);
                match want.get_mut(&start) {
                    Some(b) => b.apply(t),
                    None => {
                        want.insert(start, Bar::open_with(t, interval));
                    }
                }
            }
            let stored = store
                .bars(&BarQuery {
                    symbol: sym.clone(),
                    source: Some(source.clone()),
                    interval,
                    from: Some(i64::MIN),
                    to: None,
                    limit: u32::MAX,
                })
                .await
                .unwrap();
            let stored_starts: HashSet<i64> = stored.iter().map(|b| b.start).collect();
            for (start, w) in &want {
                if !stored_starts.contains(start) {
                    check.bar_mismatches.push(format!(
                        "{source}/{symbol} {interval} {start}: no bar stored for {} ticks",
                        w.trades
                    ));
                }
            }
            for b in &stored {
                check.bars += 1;
                let Some(w) = want.get(&b.start) else {
                    check.bar_mismatches.push(format!(
                        "{source}/{symbol} {interval} {}: stored bar of {} trades, no stored tick",
                        b.start, b.trades
                    ));
                    continue;
                };
                let same = b.open == w.open
                    && b.high == w.high
                    && b.low == w.low
                    && b.close == w.close
                    && b.volume == w.volume
                    && b.trades == w.trades
                    && b.notional == w.notional;
                if !same {
                    check.bar_mismatches.push(format!(
                        "{source}/{symbol} {interval} {}: stored o={} h={} l={} c={} v={} n={} notional={:?}, recomputed o={} h={} l={} c={} v={} n={} notional={:?}",
                        b.start, b.open, b.high, b.low, b.close, b.volume, b.trades, b.notional,
                        w.open, w.high, w.low, w.close, w.volume, w.trades, w.notional
                    ));
                }
            }
            if !MA_INTERVALS.contains(&interval) {
                continue;
            }
            let closed: Vec<&Bar> = stored.iter().filter(|b| b.closed).collect();
            let closes: Vec<f64> = closed
                .iter()
                .map(|b| marketd_model::rust_decimal_to_f64(b.close))
                .collect();
            for window in WINDOWS {
                let w = window as usize;
                let mut expect: HashMap<(MaKind, i64), f64> = HashMap::new();
                let mut ema: Option<f64> = None;
                for (k, b) in closed.iter().enumerate() {
                    if k + 1 < w {
                        continue;
                    }
                    let sma = closes[k + 1 - w..=k].iter().sum::<f64>() / w as f64;
                    let e = match ema {
                        None => sma,
                        Some(prev) => {
                            let a = 2.0 / (f64::from(window) + 1.0);
                            a * closes[k] + (1.0 - a) * prev
                        }
                    };
                    ema = Some(e);
                    expect.insert((MaKind::Sma, b.start), sma);
                    expect.insert((MaKind::Ema, b.start), e);
                }
                for kind in [MaKind::Sma, MaKind::Ema] {
                    let got: Vec<Indicator> = store
                        .indicators(&IndicatorQuery {
                            symbol: sym.clone(),
                            source: Some(source.clone()),
                            interval,
                            kind,
                            window,
                            from: Some(i64::MIN),
                            to: None,
                            limit: u32::MAX,
                        })
                        .await
                        .unwrap();
                    let want_n = expect.keys().filter(|(k, _)| *k == kind).count();
                    if got.len() != want_n {
                        check.average_mismatches.push(format!(
                            "{source}/{symbol} {interval} {kind:?}{window}: {} stored, {want_n} closed bars call for",
                            got.len()
                        ));
                    }
                    for i in got {
                        check.averages += 1;
                        match expect.get(&(kind, i.ts)) {
                            Some(v) if (v - i.value).abs() <= 1e-9 * v.abs().max(1.0) => {}
                            other => check.average_mismatches.push(format!(
                                "{source}/{symbol} {interval} {kind:?}{window} at {}: stored {}, recomputed {other:?}",
                                i.ts, i.value
                            )),
                        }
                    }
                }
            }
        }
    }
    check
}

fn identities(ticks: &BTreeMap<(String, String), Vec<Tick>>) -> (HashMap<String, usize>, usize) {
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for (k, ts) in ticks {
        for t in ts {
            n += 1;
            *ids.entry(format!("{}|{}|{}", k.0, k.1, t.identity()))
                .or_default() += 1;
        }
    }
    (ids, n)
}

fn report(what: &str, c: &Check) -> String {
    let mut s = format!(
        "{what}: {} bars checked, {} mismatches; {} averages checked, {} mismatches",
        c.bars,
        c.bar_mismatches.len(),
        c.averages,
        c.average_mismatches.len()
    );
    for m in c
        .bar_mismatches
        .iter()
        .chain(&c.average_mismatches)
        .take(20)
    {
        s.push_str("\n  ");
        s.push_str(m);
    }
    s
}

/// The defect of issue 15: after a kill -9 the stored open bars lack the
/// ticks stored after their last publication, and a restart continued them
/// from there. Now the warm start recomputes them from the stored ticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_ingest_then_restart_keeps_ticks_bars_and_averages_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key_out = run(
        &["keys", "create", "--role", "admin", "--name", "faults"],
        dir,
    );
    assert!(key_out.status.success(), "{key_out:?}");
    let key = String::from_utf8_lossy(&key_out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    let (upstream, hits) = mock_upstream().await;

    let mut first = serve("faults-kill9-first", dir);
    let base = first.ready().await;

    // A polling job and a started connector, to resume after the kill.
    let (s, job) = post_json(
        &http,
        &key,
        &format!("{base}/api/v1/prices/poll"),
        &json!({"symbols": ["NVDA"], "interval": 1, "provider": "simulated"}),
    )
    .await;
    assert_eq!(s, 202, "{job}");
    let job_id = job["job_ids"][0]
        .as_str()
        .or_else(|| job["jobs"][0]["id"].as_str())
        .unwrap_or_else(|| panic!("a job id in {job}"))
        .to_string();
    let def = json!({
        "name": "faults-rest", "kind": "rest", "url": format!("{upstream}/v1/trades"), "method": "GET",
        "polling_interval_ms": 200,
        "mapping": {"records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
                    "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id"}
    });
    let (s, conn) = post_json(&http, &key, &format!("{base}/api/v1/connectors"), &def).await;
    assert_eq!(s, 201, "{conn}");
    let conn_id = conn["id"].as_str().unwrap().to_string();
    let (s, b) = post_json(
        &http,
        &key,
        &format!("{base}/api/v1/connectors/{conn_id}/start"),
        &json!({}),
    )
    .await;
    assert!(s < 300, "start: {s} {b}");
    let job_url = format!("{base}/api/v1/polling-jobs/{job_id}");
    let status_url = format!("{base}/api/v1/connectors/{conn_id}/status");
    polled(&http, &job_url, &status_url, &hits, 1, 2).await;

    // Ingest until a few seconds' worth of ticks is stored, then kill -9.
    wait_stored(&http, &base, ticks_in(run_secs())).await;
    let runs_before = get_json(&http, &job_url).await["run_count"]
        .as_u64()
        .unwrap();
    first.kill9();
    let hits_at_kill = hits.load(Ordering::SeqCst);

    // The WAL recovers: the database opens and is consistent.
    let integrity_after_kill = integrity(dir).await;
    assert_eq!(integrity_after_kill, "ok");
    let store = open_store(dir).await;
    let before = all_ticks(&store, dir).await;
    let (ids_before, n_before) = identities(&before);
    assert_eq!(n_before, ids_before.len(), "duplicate ticks after the kill");
    let at_kill = check_derived(&store, &before).await;
    eprintln!("{}", report("stored at the kill", &at_kill));
    store.close().await;
    drop(store);

    // Restart on the same data directory.
    let restart = Instant::now();
    let mut second = serve("faults-kill9-second", dir);
    let base = second.ready().await;
    let restart_ms = restart.elapsed().as_millis();
    let job_url = format!("{base}/api/v1/polling-jobs/{job_id}");
    let status_url = format!("{base}/api/v1/connectors/{conn_id}/status");
    // Ingest goes on: the polling job runs again, the connector polls again,
    // and the open bars of the feed grow past what the kill left.
    polled(
        &http,
        &job_url,
        &status_url,
        &hits,
        runs_before + 1,
        hits_at_kill + 3,
    )
    .await;
    // A few more seconds of ingest into the same open bars, then a graceful
    // stop (which publishes and stores the open bars).
    wait_stored(&http, &base, ticks_in(3)).await;
    let status = second.terminate(Duration::from_secs(20));
    assert!(status.success(), "graceful stop: {status}");

    assert_eq!(integrity(dir).await, "ok");
    let store = open_store(dir).await;
    let after = all_ticks(&store, dir).await;
    let (ids_after, n_after) = identities(&after);
    let duplicates = n_after - ids_after.len();
    let lost = ids_before
        .keys()
        .filter(|k| !ids_after.contains_key(*k))
        .count();
    // The bars open at the kill grew after the restart.
    let newest_before: i64 = before
        .values()
        .flat_map(|t| t.iter().map(|t| t.ts_event))
        .max()
        .unwrap();
    let extended = after
        .values()
        .flatten()
        .filter(|t| {
            Interval::D1.bucket_start(t.ts_event) == Interval::D1.bucket_start(newest_before)
                && t.ts_event > newest_before
        })
        .count();
    let check = check_derived(&store, &after).await;
    eprintln!("{}", report("after the restart", &check));
    println!(
        "FIGURES ticks_before_kill={n_before} stored_after={n_after} lost={lost} duplicates={duplicates} \
         bars_checked={} bar_mismatches={} averages_checked={} average_mismatches={} \
         mismatches_at_kill={} restart_ms={restart_ms} integrity=ok ticks_after_restart={}",
        check.bars,
        check.bar_mismatches.len(),
        check.averages,
        check.average_mismatches.len(),
        at_kill.bar_mismatches.len(),
        n_after - n_before,
    );
    assert_eq!(duplicates, 0, "duplicate ticks");
    assert_eq!(lost, 0, "ticks stored before the kill were lost");
    assert!(
        extended > 0,
        "no tick extended the day bar open at the kill"
    );
    assert!(
        check.bar_mismatches.is_empty() && check.average_mismatches.is_empty(),
        "{}",
        report("after the restart", &check)
    );
    assert!(check.bars > 0 && check.averages > 0);
}
