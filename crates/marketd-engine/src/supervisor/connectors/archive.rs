//! A WebSocket connector's raw frame archive (`raw_messages`): every frame
//! the venue sent, classed `data`, `control` or `rejected` (a frame that did
//! not decode is kept too, so it can be looked at and replayed once the
//! decoder handles it), written in batches by a task of its own and pruned
//! to the connector's retention. `marketd replay --connector` plays it.
//!
//! The session decodes on its read path, which must never wait on the
//! store: frames cross to the writer through a bounded queue and, should
//! the store fall that far behind, the overflow is dropped, logged and
//! counted (`marketd_connector_archive_dropped_total`) rather than slowing
//! the live feed or growing memory.

use marketd_model::Tick;
use marketd_sources::ws::{Inbound, Keepalive, WsProtocol};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, RawMessage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Frames waiting for the writer: a few seconds of a busy feed.
const QUEUED_FRAMES: usize = 16_384;

/// Most frames written by one insert.
const WRITE_BATCH: usize = 2_000;

/// How often frames older than the retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// A [`WsProtocol`] that hands every frame it decodes to an archive, when
/// the connector keeps one, and otherwise is the protocol it wraps.
pub(super) struct Archiving<P> {
    inner: P,
    tap: Option<Tap>,
}

impl<P> Archiving<P> {
    pub(super) fn new(inner: P, tap: Option<Tap>) -> Self {
        Archiving { inner, tap }
    }
}

impl<P: WsProtocol<Item = Tick>> WsProtocol for Archiving<P> {
    type Item = Tick;

    fn connect_url(&self) -> String {
        self.inner.connect_url()
    }

    fn subscribe_frames(&self) -> Vec<String> {
        self.inner.subscribe_frames()
    }

    fn keepalive(&self) -> Keepalive {
        self.inner.keepalive()
    }

    fn on_connected(&mut self) {
        self.inner.on_connected();
    }

    fn on_text(&mut self, text: &str, received_ns: i64, out: &mut Vec<Tick>) -> Inbound {
        let inbound = self.inner.on_text(text, received_ns, out);
        if let Some(tap) = &mut self.tap {
            tap.keep(text.to_owned(), received_ns, &inbound);
        }
        inbound
    }

    fn on_binary(&mut self, data: &[u8], received_ns: i64, out: &mut Vec<Tick>) -> Inbound {
        let inbound = self.inner.on_binary(data, received_ns, out);
        if let Some(tap) = &mut self.tap {
            // The archive holds text; a binary frame (no venue here sends
            // any) is kept readable, its invalid bytes replaced.
            tap.keep(
                String::from_utf8_lossy(data).into_owned(),
                received_ns,
                &inbound,
            );
        }
        inbound
    }
}

/// The session's end of the archive queue.
pub(super) struct Tap {
    connector_id: Uuid,
    tx: mpsc::Sender<RawMessage>,
    dropped: u64,
}

impl Tap {
    fn keep(&mut self, frame: String, received_at: i64, inbound: &Inbound) {
        let class = match inbound {
            Inbound::Data => "data",
            Inbound::Error(_) => "rejected",
            _ => "control",
        };
        let raw = RawMessage {
            connector_id: self.connector_id,
            received_at,
            class: class.to_owned(),
            frame,
        };
        if self.tx.try_send(raw).is_err() {
            self.dropped += 1;
            metrics::counter!("marketd_connector_archive_dropped_total").increment(1);
            // One line per thousand, not one per frame, while it lasts.
            if self.dropped % 1_000 == 1 {
                tracing::warn!(connector = %self.connector_id, dropped = self.dropped,
                    "the raw archive is behind; frames not archived");
            }
        }
    }
}

/// Starts a connector's archive writer, keeping frames for `retention`;
/// the [`Tap`] goes into [`Archiving`]. The writer ends, after writing what
/// is queued, once the tap is dropped (the session ended).
pub(super) fn start(
    store: Arc<AnyStore>,
    connector_id: Uuid,
    retention: Duration,
) -> (Tap, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUED_FRAMES);
    let writer = tokio::spawn(write(store, connector_id, retention, rx));
    let tap = Tap {
        connector_id,
        tx,
        dropped: 0,
    };
    (tap, writer)
}

async fn write(
    store: Arc<AnyStore>,
    id: Uuid,
    retention: Duration,
    mut rx: mpsc::Receiver<RawMessage>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    // The first tick is at once: a restarted connector prunes what aged out
    // while it was stopped.
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, WRITE_BATCH) => {
                if n == 0 {
                    break;
                }
                match store.insert_raw_messages(&batch).await {
                    Ok(_) => {
                        metrics::counter!("marketd_connector_archived_frames_total")
                            .increment(batch.len() as u64);
                    }
                    Err(e) => {
                        metrics::counter!("marketd_connector_archive_dropped_total")
                            .increment(batch.len() as u64);
                        tracing::warn!(connector = %id, frames = batch.len(), error = %e,
                            "archiving raw frames failed; these frames are not archived");
                    }
                }
                batch.clear();
            }
            _ = prune.tick() => {
                let before = marketd_model::time::now_ns()
                    .saturating_sub(i64::try_from(retention.as_nanos()).unwrap_or(i64::MAX));
                match store.prune_raw_messages(id, before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(connector = %id, frames = n, "pruned archived frames"),
                    Err(e) => tracing::warn!(connector = %id, error = %e, "pruning archived frames failed"),
                }
            }
        }
    }
}
