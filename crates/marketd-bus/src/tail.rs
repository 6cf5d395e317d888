//! Tailing a topic: every message published from now on, read outside any
//! consumer group. The realtime API of each `marketd api`/`serve` instance
//! tails the topics it streams, so every instance sees every message (a
//! shared group would split them between instances), and a tail never
//! holds producers back: on the memory bus a reader that falls behind loses
//! the oldest messages and is told how many; on Kafka it reads from the log
//! at its own pace, starting at the end and never committing.

use crate::kafka::KafkaTail;
use crate::memory::MemoryTail;
use crate::{Delivery, Result};

/// What a tail reads.
#[derive(Debug, Clone)]
pub enum Tailed {
    /// The next message.
    Message(Delivery),
    /// The reader fell behind and this many messages were skipped (memory
    /// bus only); the reader's view of every key may be stale.
    Lagged(u64),
}

/// A tail of the configured backend.
#[derive(Debug)]
pub enum AnyTail {
    Memory(MemoryTail),
    Kafka(KafkaTail),
}

impl AnyTail {
    /// The next message, or `None` once the topic is closed.
    pub async fn recv(&mut self) -> Result<Option<Tailed>> {
        match self {
            AnyTail::Memory(t) => Ok(t.recv().await),
            AnyTail::Kafka(t) => t.recv().await,
        }
    }
}
