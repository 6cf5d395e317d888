//! The realtime API under load (`scripts/bench --realtime`): the release
//! `marketd serve` binary in its own process with the simulated feed, and a
//! load generator (this program) holding many WebSocket clients on
//! loopback, each subscribed to every symbol's ticks.
//!
//! Prints: the server's resident memory per idle connection; deliveries per
//! second over the measured window; publish-to-receive latency (the tick's
//! `ts_received`, stamped when the feed made it, to the moment the client
//! read it) at p50/p99/max; the server's CPU per delivery; and the `gap`
//! frames the clients got (a client that fell behind).
//!
//! Environment: `MARKETD_BENCH_CLIENTS` (1000), `MARKETD_BENCH_SYMBOLS` (8),
//! `MARKETD_BENCH_TICKS_PER_SECOND` per symbol (50), `MARKETD_BENCH_SECONDS`
//! measured (20, after 3 s of warm-up).

mod common;

use common::{Server, env_or, free_port};
use futures::{SinkExt, StreamExt};
use marketd_model::time::now_ns;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of `pid`, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line: 11 and 12 after `)`.
    (ticks(11) + ticks(12)) / 100.0
}

/// The integer after `"ts_received":` in a frame, read without parsing it.
fn ts_received(frame: &str) -> Option<i64> {
    let at = frame.find("\"ts_received\":")? + "\"ts_received\":".len();
    let digits: String = frame[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

fn start_server(symbols: usize, rate: f64) -> Server {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..symbols).map(|i| format!("RT{i:03}")).collect();
    let child = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .env("MARKETD__FEEDS__SIMULATED__ENABLED", "true")
        .env(
            "MARKETD__FEEDS__SIMULATED__SYMBOLS",
            format!(
                "[{}]",
                names
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        )
        .env(
            "MARKETD__FEEDS__SIMULATED__TICKS_PER_SECOND",
            rate.to_string(),
        )
        .env("MARKETD__REALTIME__MAX_CONNECTIONS_PER_CLIENT", "100000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the marketd binary");
    Server { child, port, dir }
}

#[derive(Default)]
struct Counts {
    deliveries: AtomicU64,
    gaps: AtomicU64,
}

fn main() {
    let clients: usize = env_or("MARKETD_BENCH_CLIENTS", 1000);
    let symbols: usize = env_or("MARKETD_BENCH_SYMBOLS", 8);
    let rate: f64 = env_or("MARKETD_BENCH_TICKS_PER_SECOND", 50.0);
    let seconds: u64 = env_or("MARKETD_BENCH_SECONDS", 20);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = start_server(symbols, rate);
    let pid = server.child.id();
    let base = format!("127.0.0.1:{}", server.port);
    rt.block_on(async {
        let http = reqwest::Client::new();
        let live = format!("http://{base}/health/live");
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(&live).send().await.is_err() {
            assert!(Instant::now() < deadline, "marketd did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Settle, then the server's memory without clients.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_before = rss_kib(pid);

        let url = format!("ws://{base}/api/v1/realtime");
        let mut sockets = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
            // `connected`
            ws.next().await.unwrap().unwrap();
            sockets.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_idle = rss_kib(pid);
        let per_idle = (rss_idle.saturating_sub(rss_before)) as f64 * 1024.0 / clients as f64;
        println!(
            "realtime: {clients} idle connections: server RSS {rss_before} KiB -> {rss_idle} KiB, {:.1} KiB per idle connection",
            per_idle / 1024.0
        );

        let counts = Arc::new(Counts::default());
        let measuring = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::with_capacity(clients);
        for mut ws in sockets {
            let (counts, measuring) = (counts.clone(), measuring.clone());
            let sub = r#"{"type":"subscribe","channel":"ticks","symbols":["*"]}"#;
            ws.send(Message::Text(sub.into())).await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut latencies_us: Vec<u32> = Vec::new();
                while let Some(Ok(msg)) = ws.next().await {
                    let Message::Text(t) = msg else { continue };
                    if t.starts_with(r#"{"type":"data_update""#) {
                        if measuring.load(Ordering::Relaxed) {
                            counts.deliveries.fetch_add(1, Ordering::Relaxed);
                            if let Some(ts) = ts_received(&t) {
                                let us = (now_ns() - ts).max(0) / 1_000;
                                latencies_us.push(us.min(u32::MAX as i64) as u32);
                            }
                        }
                    } else if t.starts_with(r#"{"type":"ping""#) {
                        let pong = Message::Text(r#"{"type":"pong"}"#.into());
                        if ws.send(pong).await.is_err() {
                            break;
                        }
                    } else if t.starts_with(r#"{"type":"gap""#) {
                        counts.gaps.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies_us
            }));
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let cpu0 = cpu_secs(pid);
        let started = Instant::now();
        measuring.store(true, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        measuring.store(false, Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = cpu_secs(pid) - cpu0;
        let delivered = counts.deliveries.load(Ordering::Relaxed);
        drop(server);
        let mut all: Vec<u32> = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap_or_default());
        }
        all.sort_unstable();
        let pct = |p: f64| {
            all.get(((all.len() as f64 - 1.0) * p) as usize)
                .map_or(0.0, |&us| f64::from(us) / 1_000.0)
        };
        println!(
            "realtime: {clients} clients x {symbols} symbols x {rate} ticks/s: {:.0} deliveries/s over {elapsed:.1} s \
             (offered {:.0}/s), publish-to-receive p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
             server CPU {:.2} s ({:.2} us per delivery); gap frames {}",
            delivered as f64 / elapsed,
            clients as f64 * symbols as f64 * rate,
            pct(0.50),
            pct(0.99),
            pct(1.0),
            cpu,
            cpu * 1e6 / delivered.max(1) as f64,
            counts.gaps.load(Ordering::Relaxed),
        );
    });
}
