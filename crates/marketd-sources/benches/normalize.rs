//! Nanoseconds per venue message through the typed decoders (one message,
//! one tick, decoder and output vector reused as a connection would).
//! The issue's goal: at most 500 ns per Binance or OKX trade on one core.
//!
//! With `MARKETD_BENCH_CAPTURES=DIR` (shared/fixtures/captures) it measures
//! instead messages/s per recorded capture, for the side-by-side comparison
//! with cryptofeed (scripts/compare.d/decode): the trade and book-ticker
//! frames of each capture (Binance `@aggTrade`/`@bookTicker`, OKX
//! `trades`/`tickers`, the set scripts/reference/cryptofeed_decode.py feeds
//! cryptofeed's handlers) decoded in a loop for `MARKETD_BENCH_SECONDS`
//! (default 2) per capture, one line `CAPTURE <name> frames=.. ticks=..
//! msgs_per_s=..` each. Criterion's per-frame figures stay the default.

use criterion::{Criterion, Throughput, criterion_group};
use marketd_sources::venues::{Frame, Venue};
use std::hint::black_box;

const RECEIVED: i64 = 1_700_000_000_000_000_000;

const CASES: &[(&str, Venue, &str)] = &[
    (
        "binance/trade",
        Venue::Binance,
        r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1672515782136,"s":"BTCUSDT","t":3370034463,"p":"16541.08000000","q":"0.00120000","T":1672515782136,"m":true,"M":true}}"#,
    ),
    (
        "binance/aggTrade",
        Venue::Binance,
        r#"{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}}"#,
    ),
    (
        "binance/bookTicker",
        Venue::Binance,
        r#"{"stream":"nknusdt@bookTicker","data":{"u":499869768,"s":"NKNUSDT","b":"0.35210000","B":"672.00000000","a":"0.35260000","A":"3199.00000000"}}"#,
    ),
    (
        "binance_futures/bookTicker",
        Venue::BinanceFutures,
        r#"{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297","T":1626992741012,"E":1626992741017}}"#,
    ),
    (
        "okx/trades",
        Venue::Okx,
        r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}]}"#,
    ),
    (
        "okx/tickers",
        Venue::Okx,
        r#"{"arg":{"channel":"tickers","instId":"BTC-USD-220527"},"data":[{"instType":"FUTURES","instId":"BTC-USD-220527","last":"30218.8","lastSz":"1","askPx":"30220.1","askSz":"3","bidPx":"30210.4","bidSz":"4","open24h":"29571.4","high24h":"31003.3","low24h":"27930.8","sodUtc0":"28935.3","sodUtc8":"30320.5","volCcy24h":"2620.289","vol24h":"779573","ts":"1652459223003"}]}"#,
    ),
    (
        "finnhub/trade",
        Venue::Finnhub,
        r#"{"data":[{"c":null,"p":7296.89,"s":"BINANCE:BTCUSDT","t":1575526691134,"v":0.011467}],"type":"trade"}"#,
    ),
];

fn normalize(c: &mut Criterion) {
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(1));
    for &(name, venue, frame) in CASES {
        let mut decoder = venue.decoder();
        let mut out = Vec::with_capacity(16);
        // Sanity: every case is one tick of data.
        assert!(matches!(
            decoder.decode(frame, RECEIVED, &mut out),
            Ok(Frame::Data { ticks: 1, .. })
        ));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let f = decoder.decode(black_box(frame), RECEIVED, &mut out);
                black_box(f).ok();
            })
        });
    }
    group.finish();

    // The floor: serde_json only skipping the same frame, nothing kept.
    let mut floor = c.benchmark_group("json_skip_floor");
    floor.throughput(Throughput::Elements(1));
    for &(name, _, frame) in CASES {
        floor.bench_function(name, |b| {
            b.iter(|| serde_json::from_str::<serde::de::IgnoredAny>(black_box(frame)).ok())
        });
    }
    floor.finish();
}

/// The capture files compared, with the venue whose decoder reads them.
const CAPTURES: &[(&str, Venue)] = &[
    ("BINANCE.ws.1.0", Venue::Binance),
    ("BINANCE_FUTURES.ws.1.0", Venue::BinanceFutures),
    ("OKX.ws.1.0", Venue::Okx),
];

/// The capture's inbound trade and book-ticker frames (cryptofeed's capture
/// format: `<unix time>: <json>` a line; outbound and header lines hold ` <-`).
fn capture_frames(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.contains(" <-"))
        .filter_map(|l| l.split_once(": ").map(|(_, f)| f))
        // OKX subscribe acks name the channel too.
        .filter(|f| !f.contains("\"event\":"))
        .filter(|f| {
            [
                "@aggTrade\"",
                "@bookTicker\"",
                "\"channel\":\"trades\"",
                "\"channel\":\"tickers\"",
            ]
            .iter()
            .any(|k| f.contains(k))
        })
        .collect()
}

fn captures(dir: &str) {
    let secs: f64 = std::env::var("MARKETD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    for &(name, venue) in CAPTURES {
        let path = std::path::Path::new(dir).join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let frames = capture_frames(&text);
        let mut decoder = venue.decoder();
        let mut out = Vec::with_capacity(16);
        // One pass first: every selected frame must be data (a frame the
        // decoder rejected or ignored would make the comparison unequal).
        let mut ticks = 0;
        for f in &frames {
            out.clear();
            match decoder.decode(f, RECEIVED, &mut out) {
                Ok(Frame::Data { ticks: n, .. }) => ticks += n,
                other => panic!("{name}: not data: {other:?} for {f}"),
            }
        }
        let start = std::time::Instant::now();
        let mut decoded = 0u64;
        while start.elapsed().as_secs_f64() < secs {
            for f in &frames {
                out.clear();
                black_box(decoder.decode(black_box(f), RECEIVED, &mut out)).ok();
            }
            decoded += frames.len() as u64;
        }
        let rate = decoded as f64 / start.elapsed().as_secs_f64();
        println!(
            "CAPTURE {name} frames={} ticks={ticks} msgs_per_s={rate:.0}",
            frames.len()
        );
    }
}

criterion_group!(benches, normalize);

fn main() {
    if let Ok(dir) = std::env::var("MARKETD_BENCH_CAPTURES") {
        captures(&dir);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
