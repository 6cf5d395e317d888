//! The aggregator as a bus consumer: `ticks` in, `bars` and `indicators`
//! out, committing ticks only after a publication that reflects them.

use super::seed::seed_new_series;
use super::{Aggregator, AggregatorConfig};
use crate::cache_updater::LatestFeed;
use marketd_bus::{AnyBus, AnyConsumer, Bus, Consumer, Delivery};
use marketd_model::{Event, Topic};
use marketd_store::AnyStore;
use std::sync::Arc;
use std::time::Duration;

/// The aggregator consumer: ticks in, bars and indicators out on the bus.
/// Open bars are published every `flush_interval_ms` and whenever a batch
/// closes or corrects a bar; on shutdown the last open bars are published
/// before it returns. Ticks are committed right after a publication that
/// includes them, so after a crash the redelivered ticks are exactly those
/// no published bar holds. Series are seeded from `store` when first seen
/// (see the module docs). The newest tick of every series received goes to
/// `latest`, the latest-price cache's writer.
pub(crate) async fn run(
    mut consumer: AnyConsumer,
    bus: AnyBus,
    store: Arc<AnyStore>,
    latest: LatestFeed,
    cfg: AggregatorConfig,
) {
    let mut agg = Aggregator::new(cfg.clone());
    let mut flush = tokio::time::interval(Duration::from_millis(cfg.flush_interval_ms.max(10)));
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut assignment = consumer.assignment();
    let mut batch = Vec::with_capacity(4096);
    let mut out = Vec::new();
    // Ticks applied but not yet committed: the newest delivery per partition.
    // They are committed only right after a publication that reflects them.
    let mut applied: Vec<Delivery> = Vec::new();
    // Before the first batch of every assignment is seeded: wait for the
    // tick writer (see `wait_for_tick_writer`).
    let mut check_writer = true;
    loop {
        batch.clear();
        let ended = tokio::select! {
            r = consumer.recv_batch(&mut batch, 4096) => match r {
                Ok(0) => true,
                Ok(_) if std::mem::take(&mut check_writer)
                    && !wait_for_tick_writer(&mut consumer).await =>
                {
                    // Shut down while waiting: the batch is neither applied
                    // nor committed, so it is delivered again next time.
                    true
                }
                Ok(_) => {
                    latest.offer(batch.iter().filter_map(|d| match &d.envelope.event {
                        Event::Tick(t) => Some(t),
                        _ => None,
                    }));
                    let before = out.len();
                    seed_new_series(&store, &mut agg, &batch, &mut out).await;
                    let seeded = out.len() > before;
                    agg.apply_batch(
                        batch.iter().filter_map(|d| match &d.envelope.event {
                            Event::Tick(t) => Some(t),
                            _ => None,
                        }),
                        &mut out,
                    );
                    if seeded {
                        // Recomputed bars go out: so do the open bars this
                        // batch changed, before its ticks are committed.
                        agg.flush_open(&mut out);
                    }
                    for d in &batch {
                        match applied.iter_mut().find(|a| a.partition == d.partition) {
                            Some(a) => *a = d.clone(),
                            None => applied.push(d.clone()),
                        }
                    }
                    false
                }
                Err(e) => {
                    tracing::error!(error = %e, "aggregator receive failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    false
                }
            },
            _ = flush.tick() => {
                agg.flush_open(&mut out);
                false
            }
            Ok(()) = assignment.changed() => {
                // A rebalance: keep the series of the partitions still ours
                // (an empty assignment is the revocation before the next
                // one), publish open bars, so the new owners seed from them.
                let now = assignment.borrow_and_update().clone();
                agg.flush_open(&mut out);
                if !now.partitions.is_empty() {
                    check_writer = true;
                    agg.retain(|symbol| now.contains(bus.partition_for(Topic::Ticks, symbol.as_str())));
                }
                false
            }
        };
        if ended {
            agg.flush_open(&mut out);
        }
        if !out.is_empty() {
            publish_until_done(&bus, std::mem::take(&mut out)).await;
            // Every open bar changed by the applied ticks was just published:
            // commit them.
            if !applied.is_empty() {
                let _ = consumer.commit(&applied).await;
                applied.clear();
            }
        }
        if ended {
            return;
        }
    }
}

/// How long the aggregator waits for the tick writer before seeding anyway.
const TICK_WRITER_WAIT: Duration = Duration::from_secs(30);

/// Waits until the tick writer's group has committed this member's
/// partitions as far as the aggregator's group has.
///
/// Series are seeded from the stored ticks (`seed.rs`), and the ticks before
/// the aggregator's committed offset are not delivered again: their bars were
/// published before a crash or a rebalance. When the tick writer lags the
/// aggregator at that moment (with Kafka they are separate groups, possibly
/// on different workers), some of those ticks are not stored yet, and bars
/// recomputed without them would replace the published bars that held them,
/// for good. Once the tick writer committed as far, every one of them is
/// stored. A tick writer that does not catch up within
/// [`TICK_WRITER_WAIT`] (a store outage) is logged and counted
/// (`marketd_aggregator_seed_unsynced_total`), and seeding goes on from what
/// is stored. The memory bus answers at once (nothing survives a restart).
///
/// `false` when the topic closed meanwhile (a shutdown, which stops the tick
/// writer as well): seeding then would recompute bars without the ticks the
/// writer did not get to, so the aggregator ends instead.
async fn wait_for_tick_writer(consumer: &mut AnyConsumer) -> bool {
    let group = crate::sinks::writer_group(Topic::Ticks);
    match consumer.caught_up(&group, TICK_WRITER_WAIT).await {
        Ok(true) => true,
        Err(marketd_bus::Error::Closed(_)) => {
            tracing::info!(%group, "shut down while waiting for the tick writer; the batch is left for the next start");
            false
        }
        Ok(false) => {
            metrics::counter!("marketd_aggregator_seed_unsynced_total").increment(1);
            tracing::warn!(
                %group,
                wait_s = TICK_WRITER_WAIT.as_secs(),
                "the tick writer has not stored every tick the aggregator already reflected; seeding from what is stored"
            );
            true
        }
        Err(e) => {
            metrics::counter!("marketd_aggregator_seed_unsynced_total").increment(1);
            tracing::warn!(%group, error = %e, "could not compare with the tick writer's progress; seeding from what is stored");
            true
        }
    }
}

/// Publishes derived events, retrying with capped backoff while the bus is
/// unavailable: the ticks they come from are committed only afterwards, so a
/// bus outage stalls the aggregator instead of losing bars. Gives up only
/// when the topic is closed (shutdown).
async fn publish_until_done(bus: &AnyBus, events: Vec<Event>) {
    let mut delay = Duration::from_millis(50);
    loop {
        match bus.publish_batch(events.clone()).await {
            Ok(()) => return,
            Err(marketd_bus::Error::Closed(topic)) => {
                tracing::warn!(%topic, events = events.len(), "bus closed; bars/indicators not published");
                return;
            }
            Err(e) => {
                metrics::counter!("marketd_aggregator_publish_errors_total").increment(1);
                tracing::error!(error = %e, events = events.len(), "could not publish bars/indicators; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}
