//! End to end through a WebSocket connector: a local mock Binance server
//! pushes combined-stream `@trade` frames as fast as the socket takes them;
//! the connector decodes them with the Binance normalizer, checks trade ids,
//! publishes on the memory bus, and the writer stores them in SQLite (with
//! bars and averages derived as in `serve`). Timed from the mock's first
//! frame until every trade is a durable row.
//!
//! `cargo bench -p marketd-engine --bench connector_ingest`
//! (`MARKETD_BENCH_TRADES` sets the trades per run, default 300,000).

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::SinkExt;
use marketd_bus::{AnyBus, BusOptions};
use marketd_model::{Desired, Symbol};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions, TickQuery};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"];

fn trades_per_run() -> usize {
    std::env::var("MARKETD_BENCH_TRADES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000)
}

/// `n` combined-stream trade frames over [`SYMBOLS`], ids consecutive per
/// symbol (so none is dropped as a repeat nor counted as a gap), 1 ms apart
/// from `start_ms`.
fn frames(n: usize, start_ms: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let s = SYMBOLS[i % SYMBOLS.len()];
            let id = i / SYMBOLS.len() + 1;
            let t = start_ms + i as i64;
            let price = 100 + (i % 97);
            format!(
                r#"{{"stream":"{lower}@trade","data":{{"e":"trade","E":{t},"s":"{s}","t":{id},"p":"{price}.{frac:02}000000","q":"0.{q:04}0000","T":{t},"m":{m},"M":true}}}}"#,
                lower = s.to_ascii_lowercase(),
                frac = i % 100,
                q = 1 + i % 9973,
                m = i % 2 == 0,
            )
        })
        .collect()
}

/// A mock Binance endpoint for one connection: accepts it, then sends every
/// frame; `first` fires when sending begins.
async fn mock_binance(frames: Vec<String>) -> (String, oneshot::Receiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        let _ = tx.send(Instant::now());
        for chunk in frames.chunks(512) {
            for f in chunk {
                if ws.feed(Message::text(f.as_str())).await.is_err() {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
        }
        // Stay open (silent) until the connector goes away.
        use futures::StreamExt;
        while let Some(Ok(_)) = ws.next().await {}
    });
    (url, rx)
}

async fn run_once(n: usize, start_ms: i64) -> (Duration, String) {
    let frames = frames(n, start_ms);
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
    let services = common::services(&backends);
    let engine = common::start_engine(&backends, &services, true).await;
    let (ws_url, first) = mock_binance(frames).await;
    let symbols: Vec<String> = SYMBOLS
        .iter()
        .map(|s| format!("{}-USDT", s.trim_end_matches("USDT")))
        .collect();
    let connector = services
        .connectors
        .create(serde_json::json!({
            "name": "bench", "kind": "websocket", "venue": "binance", "url": ws_url,
            "symbols": symbols, "channels": ["trades"],
        }))
        .await
        .unwrap();
    let cpu = common::CpuClock::start();
    services
        .connectors
        .set_desired(connector.id, Desired::Running)
        .await
        .unwrap();
    let started = first.await.unwrap();
    // Done when the newest trade of every symbol is stored, then every row.
    let wanted: Vec<(Symbol, i64)> = (0..SYMBOLS.len().min(n))
        .map(|k| {
            // The last trade of symbol k.
            let i = n - 1 - ((n - 1 - k) % SYMBOLS.len());
            (
                Symbol::parse(&symbols[i % SYMBOLS.len()]).unwrap(),
                (start_ms + i as i64) * 1_000_000,
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut done = true;
        for (symbol, ts) in &wanted {
            let q = TickQuery {
                symbol: symbol.clone(),
                source: Some("binance".into()),
                from: Some(*ts),
                to: None,
                limit: 1,
                cursor: None,
            };
            if store.tick_history(&q).await.unwrap().ticks.is_empty() {
                done = false;
                break;
            }
        }
        if done && store.count_ticks(None).await.unwrap() as usize == n {
            break;
        }
        assert!(Instant::now() < deadline, "trades not stored in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu.per_item(n);
    engine.shutdown().await;
    (elapsed, cpu)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let n = trades_per_run();
    let mut g = c.benchmark_group("connector_ingest");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("binance_ws_to_sqlite", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Trade times an hour ago: inside what the pipeline accepts.
                let start_ms = common::an_hour_ago() / 1_000_000;
                let (elapsed, cpu) = rt.block_on(run_once(n, start_ms));
                eprintln!(
                    "  {n} trades in {:.2} s: {:.0} trades/s, CPU {cpu} per trade",
                    elapsed.as_secs_f64(),
                    n as f64 / elapsed.as_secs_f64()
                );
                total += elapsed;
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
