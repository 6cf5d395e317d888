//! The feeds' side of the bus: validation, per-source counts and a window of
//! batches in flight.

use marketd_bus::{AnyBus, Bus, Receipt};
use marketd_model::time::now_ns;
use marketd_model::{Event, Tick};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Batches a feed may have queued on the bus before it waits for the oldest
/// one's acknowledgements: enough to hide a broker round trip per batch,
/// few enough that a broker outage stops the feed within a few batches.
pub const PUBLISH_WINDOW: usize = 8;

/// Publishes feed batches with up to [`PUBLISH_WINDOW`] in flight; invalid
/// ticks are logged, counted and dropped. Ends when the feed ends (its sender
/// is dropped) and every batch is acknowledged.
pub(super) async fn forward(mut rx: mpsc::Receiver<Vec<Tick>>, bus: AnyBus) {
    let mut publisher = TickPublisher::new(bus);
    while let Some(batch) = rx.recv().await {
        publisher.publish(batch).await;
    }
    publisher.flush().await;
}

/// A feed's side of the bus: validates ticks (invalid ones are logged,
/// counted and dropped), counts them per source once per batch (this is the
/// ingest hot path), and keeps up to [`PUBLISH_WINDOW`] batches queued on the
/// bus while earlier ones are being acknowledged. Order per key is kept: the
/// bus orders every batch after the ones sent before it.
pub struct TickPublisher {
    bus: AnyBus,
    in_flight: VecDeque<(Receipt, usize)>,
}

impl TickPublisher {
    pub fn new(bus: AnyBus) -> TickPublisher {
        TickPublisher {
            bus,
            in_flight: VecDeque::with_capacity(PUBLISH_WINDOW),
        }
    }

    /// Queues `batch` on the bus; waits for the oldest batch in flight when
    /// the window is full.
    pub async fn publish(&mut self, batch: Vec<Tick>) {
        let events = validate(batch);
        if events.is_empty() {
            return;
        }
        while self.in_flight.len() >= PUBLISH_WINDOW {
            self.settle_oldest().await;
        }
        let n = events.len();
        match self.bus.send_batch(events).await {
            Ok(receipt) => self.in_flight.push_back((receipt, n)),
            Err(e) => lost(n, &e),
        }
    }

    /// Waits until every batch published so far is acknowledged.
    pub async fn flush(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
        }
    }

    async fn settle_oldest(&mut self) {
        if let Some((receipt, n)) = self.in_flight.pop_front()
            && let Err(e) = receipt.wait().await
        {
            lost(n, &e);
        }
    }
}

/// A batch the bus did not take: logged and counted, the feed goes on.
fn lost(n: usize, e: &marketd_bus::Error) {
    metrics::counter!("marketd_feed_publish_failed_total").increment(n as u64);
    tracing::warn!(ticks = n, error = %e, "could not publish feed ticks");
}

/// The valid ticks of `batch` as events, counted per source.
fn validate(batch: Vec<Tick>) -> Vec<Event> {
    let now = now_ns();
    let mut events = Vec::with_capacity(batch.len());
    let mut counts: Vec<(std::sync::Arc<str>, u64)> = Vec::new();
    for t in batch {
        match t.validate(now) {
            Ok(()) => {
                match counts.iter_mut().find(|(s, _)| *s == t.source) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((t.source.clone(), 1)),
                }
                events.push(Event::Tick(t));
            }
            Err(e) => {
                metrics::counter!("marketd_feed_rejected_total", "source" => t.source.to_string())
                    .increment(1);
                tracing::warn!(source = %t.source, symbol = %t.symbol, error = %e, "tick rejected");
            }
        }
    }
    for (source, n) in counts {
        metrics::counter!("marketd_ticks_ingested_total", "source" => source.to_string())
            .increment(n);
    }
    events
}
