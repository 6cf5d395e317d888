//! Records per second of a compiled JSONPath field mapping
//! (`connectors::mapping`) on a 1,000-record body: extraction from a parsed
//! body, and parsing plus extraction from the raw bytes.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marketd_sources::connectors::{ExtractContext, FieldMapping};
use std::hint::black_box;

const RECORDS: usize = 1_000;

fn body() -> Vec<u8> {
    let records: Vec<serde_json::Value> = (0..RECORDS)
        .map(|i| {
            serde_json::json!({
                "s": "ETH/USDT",
                "p": format!("3021.{:04}", i % 10_000),
                "q": if i % 2 == 0 { serde_json::json!(0.015) } else { serde_json::json!("2.5") },
                "t": 1_700_000_000_000_i64 + i as i64,
                "id": i,
                "side": if i % 3 == 0 { "sell" } else { "buy" },
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"code": "0", "data": records})).unwrap()
}

fn mapping(c: &mut Criterion) {
    let mapping: FieldMapping = serde_json::from_value(serde_json::json!({
        "records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
        "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id", "side": "$.side"
    }))
    .unwrap();
    let compiled = mapping.compile().unwrap();
    let ctx = ExtractContext {
        source: "bench".into(),
        symbol: None,
        received_ns: 1_700_000_001_000_000_000,
    };
    let bytes = body();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let (ticks, errors) = compiled.extract(&value, &ctx);
    assert_eq!((ticks.len(), errors.len()), (RECORDS, 0));

    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.bench_function("extract_1000_records", |b| {
        b.iter(|| black_box(compiled.extract(black_box(&value), &ctx)))
    });
    group.bench_function("parse_and_extract_1000_records", |b| {
        b.iter(|| black_box(compiled.extract_bytes(black_box(&bytes), &ctx).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, mapping);
criterion_main!(benches);
