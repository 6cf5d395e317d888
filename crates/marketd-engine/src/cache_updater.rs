//! Keeps the latest-price cache warm from the `ticks` topic, so
//! `GET /prices/latest` for a streamed symbol is a cache hit.

use marketd_bus::{AnyConsumer, Consumer};
use marketd_cache::{AnyCache, Cache, CachedPrice, latest_key};
use marketd_model::time::now_ns;
use marketd_model::{Event, Tick};
use std::collections::HashMap;

pub(crate) async fn run(mut consumer: AnyConsumer, cache: AnyCache) {
    let mut batch = Vec::with_capacity(4096);
    loop {
        batch.clear();
        match consumer.recv_batch(&mut batch, 4096).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "latest-cache consumer failed");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        }
        // Only the newest tick per key matters; coalesce before writing.
        let mut newest: HashMap<(&str, &str), &Tick> = HashMap::new();
        for d in &batch {
            if let Event::Tick(t) = &d.envelope.event {
                let e = newest.entry((&t.source, t.symbol.as_str())).or_insert(t);
                if t.ts_event >= e.ts_event {
                    *e = t;
                }
            }
        }
        let now = now_ns();
        for ((source, symbol), tick) in newest {
            if let Err(e) = cache
                .put_latest(
                    &latest_key(source, symbol),
                    CachedPrice {
                        tick: tick.clone(),
                        cached_at: now,
                    },
                )
                .await
            {
                tracing::warn!(error = %e, "cache write failed");
            }
        }
        let _ = consumer.commit(&batch).await;
    }
}
