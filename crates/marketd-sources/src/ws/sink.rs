//! Where decoded items go. Delivery is awaited by the read loop, so a slow
//! consumer slows reading from the socket (and TCP slows the server) instead
//! of growing a queue: memory stays bounded by the consumer's channel plus one
//! message's items.

use std::future::Future;
use tokio::sync::mpsc;

/// The consumer of a session's items is gone; the session stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the consumer of the feed's items has gone away")]
pub struct SinkClosed;

/// Receives the items decoded from one message. Implementations must be
/// bounded: waiting for room is how backpressure reaches the socket.
pub trait ItemSink<T>: Send {
    /// Takes the items out of `items` (leaving it empty, its capacity may be
    /// kept) and hands them on, waiting while the consumer is full.
    fn deliver(
        &mut self,
        items: &mut Vec<T>,
    ) -> impl Future<Output = Result<(), SinkClosed>> + Send;
}

/// One batch per message, as the other feeds of this crate send ticks.
impl<T: Send + 'static> ItemSink<T> for mpsc::Sender<Vec<T>> {
    async fn deliver(&mut self, items: &mut Vec<T>) -> Result<(), SinkClosed> {
        if items.is_empty() {
            return Ok(());
        }
        // The batch moves to the consumer; `items` starts empty next time.
        let batch = std::mem::take(items);
        self.send(batch).await.map_err(|_| SinkClosed)
    }
}

/// One channel slot per item.
#[derive(Debug, Clone)]
pub struct PerItem<T>(pub mpsc::Sender<T>);

impl<T: Send + 'static> ItemSink<T> for PerItem<T> {
    async fn deliver(&mut self, items: &mut Vec<T>) -> Result<(), SinkClosed> {
        // `drain` keeps the capacity of `items`: no allocation per message.
        for item in items.drain(..) {
            self.0.send(item).await.map_err(|_| SinkClosed)?;
        }
        Ok(())
    }
}
