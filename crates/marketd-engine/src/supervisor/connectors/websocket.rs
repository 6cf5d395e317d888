//! A WebSocket connector's run: a venue session (reconnects with jittered
//! backoff, resubscribes everything on each connection, idle timeout, per-
//! host connect gate, cool-down on 429/418) whose ticks are published on
//! `ticks`; the session's live status is copied into the connector's.
//! With `archive` set, every frame also goes to the raw archive
//! (`archive.rs`).

use super::Shared;
use super::archive::{self, Archiving};
use super::backfill::{self, Backfill, Gap};
use super::status::StatusReporter;
use crate::feeds::TickPublisher;
use crate::services::connectors::WsDefinition;
use marketd_model::{ConnectorState, Tick};
use marketd_sources::venues::VenueSession;
use marketd_sources::ws::{SessionOptions, SessionState, StatusSnapshot, WsSession};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Batches of ticks the session may have decoded ahead of the bus: a slow
/// bus slows the reading (backpressure) instead of growing memory.
const QUEUED_BATCHES: usize = 64;

/// Most ticks gathered into one bus publish: under load the session queues
/// many small batches (one per frame), and one publish per frame costs the
/// bus more than the decoding did.
const MAX_PUBLISH_BATCH: usize = 1024;

/// How often the session's status is copied into the connector's.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// Collects until cancelled; the session retries upstream failures itself.
pub(super) async fn run(
    shared: &Shared,
    id: Uuid,
    def: WsDefinition,
    status: &mut StatusReporter,
    cancel: CancellationToken,
) -> super::UnitResult {
    let options = SessionOptions {
        label_key: "connector",
        idle_timeout: def.idle_timeout,
        limiters: shared.ws_limiters.clone(),
        ..SessionOptions::default()
    };
    let (tap, archiver) = match def.archive {
        Some(retention) => {
            let (tap, writer) = archive::start(shared.store.clone(), id, retention);
            (Some(tap), Some(writer))
        }
        None => (None, None),
    };
    let mut backfill = Backfill::start(shared, id, &def, cancel.child_token());
    let session = WsSession::new(
        id.to_string(),
        Archiving::new(VenueSession::new(def.venue, def.plan), tap),
        options,
    );
    let live = session.status();
    let (tx, mut rx) = mpsc::channel::<Vec<Tick>>(QUEUED_BATCHES);
    let session_cancel = cancel.child_token();
    let task = tokio::spawn(session.run(tx, session_cancel.clone()));
    let mut publisher = TickPublisher::new(shared.bus.clone());
    let mut every = tokio::time::interval(STATUS_EVERY);
    let base = status.status().clone();
    let mut ids = def.sequential_ids.then(TradeIds::default);
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(mut ticks) => {
                    // Whatever else is already queued goes in the same publish.
                    while ticks.len() < MAX_PUBLISH_BATCH {
                        match rx.try_recv() {
                            Ok(more) => ticks.extend(more),
                            Err(_) => break,
                        }
                    }
                    if let Some(ids) = &mut ids {
                        ids.check(&mut ticks);
                    }
                    publisher.publish(ticks).await;
                    if let Some(ids) = ids.as_mut().filter(|ids| !ids.found.is_empty()) {
                        let total = base.gaps + ids.gaps;
                        backfill::found(ids.found.drain(..), total, backfill.as_ref(), status).await;
                    }
                }
                None => break,
            },
            _ = every.tick() => {
                copy_status(&live.snapshot(), &base, ids.as_ref(), status).await;
                if let Some(b) = &backfill {
                    b.report(&base, status).await;
                }
            }
        }
    }
    publisher.flush().await;
    session_cancel.cancel();
    if let Some(b) = &mut backfill {
        b.stop().await;
        b.report(&base, status).await;
    }
    let end = task.await?;
    // The session (and with it the archive's queue) is gone: the writer
    // stores what is queued and ends.
    if let Some(writer) = archiver {
        writer.await?;
    }
    copy_status(&live.snapshot(), &base, ids.as_ref(), status).await;
    end.map(|_| ()).map_err(Into::into)
}

/// Trade ids per symbol, for venues whose ids are consecutive per symbol
/// (Binance `t` and `a`): a repeated or older id is dropped before the bus
/// (a reconnect replaying the last trades), a skipped range is a gap,
/// counted, logged and kept in `found` for the backfill.
#[derive(Debug, Default)]
struct TradeIds {
    last: std::collections::HashMap<marketd_model::Symbol, u64>,
    gaps: u64,
    repeated: u64,
    found: Vec<Gap>,
}

impl TradeIds {
    fn check(&mut self, ticks: &mut Vec<Tick>) {
        ticks.retain(|t| {
            let Some(id) = t.trade_id.as_deref().and_then(|s| s.parse::<u64>().ok()) else {
                return true;
            };
            match self.last.get_mut(&t.symbol) {
                None => {
                    self.last.insert(t.symbol.clone(), id);
                    true
                }
                Some(last) if id <= *last => {
                    self.repeated += 1;
                    metrics::counter!("marketd_connector_repeated_trades_total").increment(1);
                    false
                }
                Some(last) => {
                    if id > *last + 1 {
                        self.gaps += 1;
                        metrics::counter!("marketd_connector_gaps_total").increment(1);
                        tracing::warn!(symbol = %t.symbol, from = *last + 1, to = id - 1, "trade ids skipped");
                        self.found.push(Gap {
                            symbol: t.symbol.clone(),
                            from: *last + 1,
                            to: id - 1,
                        });
                    }
                    *last = id;
                    true
                }
            }
        });
    }
}

/// The connector's status: its stored counters (`base`, from earlier runs)
/// plus this session's and, when ids are checked, this run's gaps.
async fn copy_status(
    s: &StatusSnapshot,
    base: &marketd_model::ConnectorStatus,
    ids: Option<&TradeIds>,
    status: &mut StatusReporter,
) {
    let state = match s.state {
        SessionState::Connecting => ConnectorState::Connecting,
        SessionState::Running => ConnectorState::Running,
        SessionState::Reconnecting => ConnectorState::Reconnecting,
        SessionState::CoolingDown => ConnectorState::CoolingDown,
        SessionState::Stopped => ConnectorState::Stopped,
        SessionState::Failed => ConnectorState::Failed,
    };
    // One report for both: counters and state.
    status.apply(|c| {
        c.reconnects = base.reconnects + s.reconnects;
        c.messages_received = base.messages_received + s.messages_received;
        c.ticks = base.ticks + s.items;
        c.errors = base.errors + s.decode_errors;
        c.last_message_at = s.last_message_at.or(base.last_message_at);
        if s.last_error.is_some() {
            c.last_error = s.last_error.clone();
        }
        c.cooldown_until = s.cooldown_until;
        if let Some(ids) = ids {
            c.gaps = base.gaps + ids.gaps;
        }
    });
    status.set_state(state).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::{Decimal, Symbol, TickKind};

    fn trade(symbol: &str, id: u64) -> Tick {
        let mut t = Tick::new(
            Symbol::parse(symbol).unwrap(),
            "binance",
            TickKind::Trade,
            Decimal::ONE,
            Decimal::ONE,
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_001,
        );
        t.trade_id = Some(id.to_string());
        t
    }

    #[test]
    fn repeated_ids_are_dropped_and_skipped_ranges_counted_per_symbol() {
        let mut ids = TradeIds::default();
        let mut batch = vec![
            trade("BTC-USDT", 10),
            trade("BTC-USDT", 11),
            trade("ETH-USDT", 500),
        ];
        ids.check(&mut batch);
        assert_eq!(batch.len(), 3);
        // A reconnect replays 11, then the stream goes on past a gap.
        let mut batch = vec![
            trade("BTC-USDT", 11),
            trade("BTC-USDT", 12),
            trade("BTC-USDT", 15),
            trade("ETH-USDT", 501),
        ];
        ids.check(&mut batch);
        let kept: Vec<&str> = batch
            .iter()
            .map(|t| t.trade_id.as_deref().unwrap())
            .collect();
        assert_eq!(kept, ["12", "15", "501"]);
        assert_eq!((ids.gaps, ids.repeated), (1, 1));
        assert_eq!(
            ids.found,
            [Gap {
                symbol: Symbol::parse("BTC-USDT").unwrap(),
                from: 13,
                to: 14
            }]
        );
    }
}
