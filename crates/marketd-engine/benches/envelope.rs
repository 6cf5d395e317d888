//! Cost of the bus envelope codecs per tick: encoding a tick envelope (what
//! a producer does per message) and decoding it back (what every consumer
//! group does per message), as JSON and in the binary tick layout
//! (`bus.codec`), on the simulated ticks the ingest benches use.
//!
//! `cargo bench -p marketd-engine --bench envelope`

mod common;

/// The allocator the `marketd` binary ships with (its `main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use marketd_model::{Codec, Envelope, Event};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("MARKETD_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let envelopes: Vec<Envelope> = common::ticks(n, common::an_hour_ago())
        .into_iter()
        .map(|t| Envelope::new(Event::Tick(t)))
        .collect();
    let mut encoded: Vec<Vec<u8>> = Vec::with_capacity(n);
    for round in 0..3 {
        for codec in [Codec::Json, Codec::Binary] {
            encoded.clear();
            let started = Instant::now();
            let mut buf = Vec::with_capacity(512);
            for env in &envelopes {
                buf.clear();
                // As the Kafka producer does: one reused buffer, and a copy
                // of each payload (librdkafka's own copy).
                black_box(env).encode(codec, &mut buf).unwrap();
                encoded.push(buf.clone());
            }
            let encode = started.elapsed();
            let started = Instant::now();
            for bytes in &encoded {
                black_box(Envelope::decode(black_box(bytes)).unwrap());
            }
            let decode = started.elapsed();
            let bytes: usize = encoded.iter().map(Vec::len).sum();
            println!(
                "round {round} {:<6}: encode {:.0} ns/tick, decode {:.0} ns/tick ({} B/envelope)",
                codec.name(),
                encode.as_nanos() as f64 / n as f64,
                decode.as_nanos() as f64 / n as f64,
                bytes / n
            );
        }
    }
    assert_eq!(Envelope::decode(&encoded[0]).unwrap(), envelopes[0]);
}
