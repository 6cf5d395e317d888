//! One client's connection: reads its messages (subscribe, unsubscribe,
//! ping, pong), drains its outbox onto the socket, pings it, and closes it
//! when it goes silent or stays too far behind.

use super::protocol::{self, ClientMessage, Refusal, ServerMessage, now_rfc3339};
use super::revocations::Revoked;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use marketd_engine::realtime::{Channel, Hub, Outbox, Outgoing};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior, interval, timeout};

/// Close codes (also in docs/realtime.md).
pub mod close {
    /// No frame from the client within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4000;
    /// The client's credentials were revoked.
    pub const REVOKED: u16 = 4001;
    /// The client's credentials expired (the token's `exp`, the key's expiry).
    pub const EXPIRED: u16 = 4002;
    /// The client stayed behind the stream for too long.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The server is shutting down (standard "going away").
    pub const GOING_AWAY: u16 = 1001;
}

/// Most outbox items written between two flushes.
const WRITE_BATCH: usize = 256;

struct Session {
    hub: Hub,
    outbox: Arc<Outbox>,
    /// Token bucket of the client's messages.
    tokens: f64,
    refilled: Instant,
}

enum End {
    Client,
    Close(u16, &'static str),
}

/// Runs a connection until it ends; `key` (the caller's API key id and the
/// revoked keys) closes it when that key is revoked, `expires_at` (ns since
/// the epoch) when its credentials expire.
pub async fn run(
    socket: WebSocket,
    hub: Hub,
    key: Option<(std::sync::Arc<str>, Revoked)>,
    expires_at: Option<i64>,
) {
    let (key_id, mut revoked) = match key {
        Some((id, r)) => (Some(id), Some(r)),
        None => (None, None),
    };
    let outbox = hub.outbox();
    let config = hub.config().clone();
    let heartbeat = Duration::from_secs(config.heartbeat_secs.max(1));
    let silent_limit = Duration::from_secs(config.heartbeat_timeout_secs.max(1));
    let write_limit = Duration::from_secs(config.slow_close_secs.max(1));
    let rate = f64::from(config.client_messages_per_sec.max(1));
    let coalesce = Duration::from_millis(config.coalesce_ms);
    let (mut tx, mut rx) = socket.split();
    let mut session = Session {
        hub: hub.clone(),
        outbox: outbox.clone(),
        tokens: rate * 2.0,
        refilled: Instant::now(),
    };
    metrics::gauge!("marketd_realtime_clients").increment(1.0);
    let hello = ServerMessage::Connected {
        connection_id: outbox.id(),
        server_time: now_rfc3339(),
        heartbeat_interval_ms: heartbeat.as_millis() as u64,
        channels: Channel::ALL.iter().map(|c| c.name()).collect(),
    };
    let mut end = End::Client;
    if tx.send(text(hello.to_text())).await.is_err() {
        metrics::gauge!("marketd_realtime_clients").decrement(1.0);
        return;
    }
    let mut pings = interval(heartbeat);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    pings.tick().await;
    let mut last_heard = Instant::now();
    // One timer for the connection's life, not one per loop turn.
    let expiry = tokio::time::sleep(match expires_at {
        Some(at) => Duration::from_nanos(
            u64::try_from(at.saturating_sub(marketd_model::time::now_ns())).unwrap_or(0),
        ),
        None => Duration::from_secs(86_400 * 365),
    });
    tokio::pin!(expiry);
    // Metric handles looked up once, not per message.
    let latency = metrics::histogram!("marketd_realtime_publish_to_send_seconds");
    let sent = metrics::counter!("marketd_realtime_messages_sent_total");
    let bytes = metrics::counter!("marketd_realtime_bytes_sent_total");
    // Grows on first use: an idle connection holds no batch.
    let mut batch: Vec<Outgoing> = Vec::new();
    'conn: loop {
        tokio::select! {
            msg = rx.next() => {
                let Some(Ok(msg)) = msg else { break 'conn };
                last_heard = Instant::now();
                let reply = match msg {
                    Message::Text(t) => session.on_text(t.as_str(), rate),
                    Message::Binary(_) => Some(error(&Refusal::new(
                        "MALFORMED_MESSAGE",
                        "binary frames are not part of the protocol: send JSON text",
                    ))),
                    Message::Close(_) => break 'conn,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(r) = reply
                    && tx.send(text(r)).await.is_err()
                {
                    break 'conn;
                }
            }
            () = outbox.ready() => {
                // Let what the hub is dispatching right now join this
                // write: one write and flush for a burst, not one per tick.
                if !coalesce.is_zero() {
                    tokio::time::sleep(coalesce).await;
                }
                loop {
                    if outbox.closed().is_some() {
                        end = End::Close(close::SLOW_CONSUMER, "too far behind the stream");
                        break 'conn;
                    }
                    batch.clear();
                    if outbox.take(&mut batch, WRITE_BATCH) == 0 {
                        break;
                    }
                    let mut sent_bytes = 0usize;
                    for x in &batch {
                        let Ok(frame) = protocol::outgoing_text(x) else { continue };
                        sent_bytes += frame.len();
                        if let Outgoing::Update(u) = x {
                            let lag_ns = marketd_model::time::now_ns().saturating_sub(u.produced_at);
                            latency.record(lag_ns as f64 / 1e9);
                        }
                        match timeout(write_limit, tx.feed(Message::Text(frame))).await {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) => break 'conn,
                            Err(_) => {
                                end = End::Close(close::SLOW_CONSUMER, "not reading");
                                break 'conn;
                            }
                        }
                    }
                    match timeout(write_limit, tx.flush()).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break 'conn,
                        Err(_) => {
                            end = End::Close(close::SLOW_CONSUMER, "not reading");
                            break 'conn;
                        }
                    }
                    sent.increment(batch.len() as u64);
                    bytes.increment(sent_bytes as u64);
                }
            }
            Ok(()) = async {
                match revoked.as_mut() {
                    Some(r) => r.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                let gone = revoked.as_ref().is_some_and(|r| {
                    key_id.as_ref().is_some_and(|id| r.borrow().contains(&**id))
                });
                if gone {
                    end = End::Close(close::REVOKED, "the API key was revoked");
                    break 'conn;
                }
            }
            () = &mut expiry, if expires_at.is_some() => {
                end = End::Close(close::EXPIRED, "the credentials expired");
                break 'conn;
            }
            () = hub.stopped() => {
                end = End::Close(close::GOING_AWAY, "the server is shutting down");
                break 'conn;
            }
            _ = pings.tick() => {
                if last_heard.elapsed() > silent_limit {
                    end = End::Close(close::HEARTBEAT_TIMEOUT, "no frame within the heartbeat timeout");
                    break 'conn;
                }
                let ping = ServerMessage::Ping { server_time: now_rfc3339() };
                if tx.send(text(ping.to_text())).await.is_err() {
                    break 'conn;
                }
            }
        }
    }
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = timeout(write_limit, tx.send(Message::Close(Some(frame)))).await;
    }
    hub.remove(&outbox);
    metrics::gauge!("marketd_realtime_clients").decrement(1.0);
}

fn text(s: String) -> Message {
    Message::Text(s.into())
}

fn error(r: &Refusal) -> String {
    ServerMessage::Error {
        error_code: r.code,
        detail: &r.detail,
        timestamp: now_rfc3339(),
    }
    .to_text()
}

impl Session {
    /// Handles one client text frame; the reply to send, if any.
    fn on_text(&mut self, text: &str, rate: f64) -> Option<String> {
        let now = Instant::now();
        let burst = rate * 2.0;
        self.tokens =
            (self.tokens + now.duration_since(self.refilled).as_secs_f64() * rate).min(burst);
        self.refilled = now;
        if self.tokens < 1.0 {
            metrics::counter!("marketd_realtime_rate_limited_total").increment(1);
            return Some(error(&Refusal::new(
                "RATE_LIMITED",
                format!("more than {rate} messages a second; this one was not processed"),
            )));
        }
        self.tokens -= 1.0;
        match protocol::parse(text).and_then(|m| self.handle(m)) {
            Ok(reply) => reply,
            Err(r) => Some(error(&r)),
        }
    }

    fn handle(&mut self, m: ClientMessage) -> Result<Option<String>, Refusal> {
        Ok(match m {
            ClientMessage::Subscribe {
                channel,
                symbols,
                since,
                interval,
            } => {
                let channel = protocol::channel(&channel)?;
                let sub = self
                    .hub
                    .subscribe(&self.outbox, channel, &symbols, interval.as_deref(), &since)
                    .map_err(|e| Refusal::new("INVALID_SUBSCRIPTION", e.to_string()))?;
                Some(
                    ServerMessage::Subscribed {
                        channel: channel.name(),
                        symbols: sub.symbols.unwrap_or_else(|| vec!["*".into()]),
                        interval: sub.interval,
                    }
                    .to_text(),
                )
            }
            ClientMessage::Unsubscribe { channel, symbols } => {
                let channel = protocol::channel(&channel)?;
                self.hub.unsubscribe(&self.outbox, channel, &symbols);
                Some(
                    ServerMessage::Unsubscribed {
                        channel: channel.name(),
                        symbols: &symbols,
                    }
                    .to_text(),
                )
            }
            ClientMessage::Ping { id } => Some(
                ServerMessage::Pong {
                    server_time: now_rfc3339(),
                    id,
                }
                .to_text(),
            ),
            ClientMessage::Pong { .. } => None,
        })
    }
}
