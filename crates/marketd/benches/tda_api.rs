//! The persistent-homology API under load (`scripts/bench --tda`): the
//! release `marketd serve` in its own process (SQLite, memory bus, no feed),
//! and this load generator beside it on loopback.
//!
//! Prints:
//! 1. `POST /api/v1/tda/vietoris-rips` on 100 random points in R^3 to H1, a
//!    new cloud per request (no cache hit): requests/s, p50/p99 latency, at
//!    `MARKETD_BENCH_CONCURRENCY` (4) requests in flight;
//! 2. the same with one cloud repeated (answered from the cache);
//! 3. jobs: `POST /api/v1/jobs` (a 20-point cloud) latency, `GET
//!    /api/v1/jobs/{id}` latency, and submit-to-succeeded turnaround
//!    (polled every 2 ms, so within 2 ms), p50/p99 each.
//!
//! `MARKETD_BENCH_SECONDS` (10) per throughput phase.

mod common;

use common::{Server, env_or, free_port};
use marketd_tda::{Data, Options};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The server and a `write` key for it.
fn start_server() -> (Server, String) {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_marketd");
    let out = Command::new(bin)
        .args([
            "keys",
            "create",
            "--role",
            "write",
            "--name",
            "bench",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("marketd keys create");
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
    let child = Command::new(bin)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env("MARKETD__FEEDS__SIMULATED__ENABLED", "false")
        .env("MARKETD__RATE_LIMIT__ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the marketd binary");
    (Server { child, port, dir }, key)
}

/// `n` points in the unit cube of R^3 from `seed` (a 64-bit LCG).
fn cloud(n: usize, seed: u64) -> Vec<[f64; 3]> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n).map(|_| [next(), next(), next()]).collect()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn summary(name: &str, mut xs: Vec<Duration>, secs: f64) {
    xs.sort();
    println!(
        "tda-api: {name}: {} requests in {secs:.1} s = {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        xs.len(),
        xs.len() as f64 / secs,
        pct(&xs, 0.5),
        pct(&xs, 0.99),
        pct(&xs, 1.0),
    );
}

/// Sends `body(i)` to `url` from `concurrency` tasks for `seconds`; the
/// latencies of the 200 answers.
async fn load(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    seconds: u64,
    body: Arc<dyn Fn(u64) -> serde_json::Value + Send + Sync>,
) -> (Vec<Duration>, f64) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let (client, url, stop, body) =
            (client.clone(), url.to_string(), stop.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = t as u64;
            while !stop.load(Ordering::Relaxed) {
                let b = body(i);
                i += concurrency as u64;
                let t0 = Instant::now();
                let r = client.post(&url).json(&b).send().await.unwrap();
                assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
                let _ = r.bytes().await.unwrap();
                lat.push(t0.elapsed());
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed().as_secs_f64())
}

fn main() {
    let seconds: u64 = env_or("MARKETD_BENCH_SECONDS", 10);
    let concurrency: usize = env_or("MARKETD_BENCH_CONCURRENCY", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (server, key) = start_server();
    let base = format!("http://127.0.0.1:{}", server.port);
    // The engine alone on the same clouds, for the overhead of the API.
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < Duration::from_secs(2) {
        let c = cloud(100, n);
        let d = Data::from_points(&c).unwrap();
        let out = marketd_tda::compute(&d, &Options::default()).unwrap();
        std::hint::black_box(out);
        n += 1;
    }
    println!(
        "tda-api: the engine alone, 100 points in R^3 to H1, one thread: {:.2} ms per cloud",
        t0.elapsed().as_secs_f64() * 1e3 / n as f64
    );
    rt.block_on(async {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-api-key", key.parse().unwrap());
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while client
            .get(format!("{base}/health/live"))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "marketd did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let url = format!("{base}/api/v1/tda/vietoris-rips");
        let fresh: Arc<dyn Fn(u64) -> serde_json::Value + Send + Sync> =
            Arc::new(|i| serde_json::json!({"points": cloud(100, 1_000_000 + i), "max_dim": 1}));
        let (lat, secs) = load(&client, &url, concurrency, seconds, fresh).await;
        summary(
            &format!(
                "vietoris-rips, 100 points in R^3 to H1, a new cloud each, {concurrency} in flight"
            ),
            lat,
            secs,
        );
        let same: Arc<dyn Fn(u64) -> serde_json::Value + Send + Sync> =
            Arc::new(|_| serde_json::json!({"points": cloud(100, 7), "max_dim": 1}));
        let (lat, secs) = load(&client, &url, concurrency, seconds.min(5), same).await;
        summary(
            &format!("the same, one cloud repeated (cache), {concurrency} in flight"),
            lat,
            secs,
        );

        // Jobs, one at a time.
        let (mut submit, mut status, mut turnaround) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..200u64 {
            let body =
                serde_json::json!({"kind": "vietoris-rips", "points": cloud(20, i), "max_dim": 1});
            let t0 = Instant::now();
            let r = client
                .post(format!("{base}/api/v1/jobs"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            let job: serde_json::Value = r.json().await.unwrap();
            submit.push(t0.elapsed());
            let job_url = format!("{base}/api/v1/jobs/{}", job["id"].as_str().unwrap());
            loop {
                let t1 = Instant::now();
                let j: serde_json::Value = client
                    .get(&job_url)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                status.push(t1.elapsed());
                if j["status"] == "succeeded" {
                    turnaround.push(t0.elapsed());
                    break;
                }
                assert!(j["status"] == "queued" || j["status"] == "running", "{j}");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        for (name, mut xs) in [
            ("job submit (POST /api/v1/jobs)", submit),
            ("job status (GET /api/v1/jobs/{id})", status),
            ("job submit to succeeded (polled every 2 ms)", turnaround),
        ] {
            xs.sort();
            println!(
                "tda-api: {name}: n {}, p50 {:.2} ms, p99 {:.2} ms",
                xs.len(),
                pct(&xs, 0.5),
                pct(&xs, 0.99)
            );
        }
    });
    drop(server);
}
