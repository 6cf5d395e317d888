//! Throughput of `Store::insert_ticks` on batches of 5,000 new ticks into a
//! SQLite file (WAL, synchronous=NORMAL), the store writer's hot path.
//!
//! `cargo bench -p marketd-store --bench insert_ticks`; criterion reports
//! elements (ticks) per second.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use marketd_model::{Decimal, Symbol, Tick, TickKind};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use std::cell::Cell;
use std::sync::Arc;

const BATCH: usize = 5_000;
const T0: i64 = 1_700_000_000_000_000_000;

fn batch(next: &Cell<i64>, with_trade_id: bool) -> Vec<Tick> {
    let symbols: Vec<Symbol> = ["AAPL", "MSFT", "BTC-USDT", "ETH-USDT", "GOOG"]
        .iter()
        .map(|s| Symbol::parse(s).unwrap())
        .collect();
    let source: Arc<str> = "simulated".into();
    (0..BATCH)
        .map(|_| {
            let n = next.get();
            next.set(n + 1);
            let price = Decimal::new(6_543_210 + (n % 10_000), 2);
            let mut t = Tick::new(
                symbols[n as usize % symbols.len()].clone(),
                source.clone(),
                TickKind::Trade,
                price,
                Decimal::new(n % 997 + 1, 3),
                T0 + n * 1_000_000,
                T0 + n * 1_000_000 + 5_000,
            );
            if with_trade_id {
                t.trade_id = Some(n.to_string());
            }
            t
        })
        .collect()
}

fn insert_ticks(c: &mut Criterion) {
    let rt = marketd_testkit::bench_runtime();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("insert_ticks");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);
    for (name, with_trade_id) in [("hash_identity_5000", false), ("trade_id_5000", true)] {
        let url = format!("sqlite://{}/{name}.db", dir.path().display());
        let store = rt.block_on(async {
            let s = AnyStore::connect(&url, &StoreOptions::default())
                .await
                .unwrap();
            s.migrate().await.unwrap();
            s
        });
        let next = Cell::new(0i64);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || batch(&next, with_trade_id),
                |ticks| {
                    let store = &store;
                    async move {
                        let n = store.insert_ticks(&ticks).await.unwrap();
                        assert_eq!(n, BATCH as u64);
                    }
                },
                BatchSize::PerIteration,
            )
        });
        rt.block_on(store.close());
    }
    group.finish();
}

criterion_group!(benches, insert_ticks);
criterion_main!(benches);
