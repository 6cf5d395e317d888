//! Throughput of the memory bus: batches of ticks published to two consumer
//! groups and drained by them.
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use marketd_bus::{Bus, BusOptions, Consumer, MemoryBus};
use marketd_model::{Decimal, Event, Symbol, Tick, TickKind, Topic};

fn bench(c: &mut Criterion) {
    let rt = marketd_testkit::bench_runtime();
    let n = 100_000usize;
    let sym = Symbol::parse("AAPL").unwrap();
    let mut g = c.benchmark_group("memory_bus");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(10);
    g.bench_function("publish_batch_2_groups", |b| {
        b.to_async(&rt).iter(|| async {
            let bus = MemoryBus::new(BusOptions::default());
            let mut consumers = Vec::new();
            for group in ["writer", "aggregator"] {
                let mut c = bus.subscribe(Topic::Ticks, group).await.unwrap();
                consumers.push(tokio::spawn(async move {
                    let mut buf = Vec::with_capacity(1024);
                    let mut seen = 0;
                    loop {
                        buf.clear();
                        let got = c.recv_batch(&mut buf, 1024).await.unwrap();
                        if got == 0 {
                            break seen;
                        }
                        seen += got;
                    }
                }));
            }
            for chunk in 0..(n / 1000) {
                let events = (0..1000)
                    .map(|i| {
                        Event::Tick(Tick::new(
                            sym.clone(),
                            "sim",
                            TickKind::Trade,
                            Decimal::from(100),
                            Decimal::ONE,
                            (chunk * 1000 + i) as i64,
                            0,
                        ))
                    })
                    .collect();
                bus.publish_batch(events).await.unwrap();
            }
            bus.close_topic(Topic::Ticks);
            for c in consumers {
                assert_eq!(c.await.unwrap(), n);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
