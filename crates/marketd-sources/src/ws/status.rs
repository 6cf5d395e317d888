//! What a session is doing, readable at any time by a supervisor or the API
//! without locking the read loop: counters and times are atomics, only the
//! last error (rare) sits behind a mutex. The same events feed `metrics`
//! counters labelled with the venue or connector.

use metrics::{Counter, Gauge};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};

/// The lifecycle of a session. `connecting`, `running`, `reconnecting`,
/// `stopped` and `failed` are API contract names (see [`SessionState::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// The first connection attempt is under way.
    Connecting,
    /// Connected and subscribed; messages are being read.
    Running,
    /// The connection was lost; waiting for (or making) the next attempt.
    Reconnecting,
    /// The venue rate-limited us (HTTP 429/418 or in-band): waiting out the
    /// cool-down before trying again.
    CoolingDown,
    /// Cancelled, or the consumer went away.
    Stopped,
    /// Gave up: a configuration error or too many consecutive failures.
    Failed,
}

impl SessionState {
    pub const ALL: [SessionState; 6] = [
        SessionState::Connecting,
        SessionState::Running,
        SessionState::Reconnecting,
        SessionState::CoolingDown,
        SessionState::Stopped,
        SessionState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Running => "running",
            SessionState::Reconnecting => "reconnecting",
            SessionState::CoolingDown => "cooling_down",
            SessionState::Stopped => "stopped",
            SessionState::Failed => "failed",
        }
    }

    fn from_u8(v: u8) -> Self {
        Self::ALL
            .get(usize::from(v))
            .copied()
            .unwrap_or(SessionState::Failed)
    }

    fn to_u8(self) -> u8 {
        // The discriminants are the positions in `ALL`.
        self as u8
    }
}

impl std::fmt::Display for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live status of one session; share it as `Arc<SessionStatus>`.
/// Times are nanoseconds since the epoch (wall clock); `0` means "never".
#[derive(Debug)]
pub struct SessionStatus {
    name: String,
    state: AtomicU8,
    reconnects: AtomicU64,
    messages_received: AtomicU64,
    items: AtomicU64,
    decode_errors: AtomicU64,
    ignored: AtomicU64,
    last_message_at: AtomicI64,
    cooldown_until: AtomicI64,
    connected_since: AtomicI64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`SessionStatus`] at one moment, for APIs and logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSnapshot {
    pub name: String,
    pub state: SessionState,
    pub reconnects: u64,
    pub messages_received: u64,
    pub items: u64,
    pub decode_errors: u64,
    /// Messages the protocol ignored (including binary frames it does not read).
    pub ignored: u64,
    pub last_message_at: Option<i64>,
    pub last_error: Option<String>,
    pub cooldown_until: Option<i64>,
    pub connected_since: Option<i64>,
}

fn opt(v: i64) -> Option<i64> {
    (v != 0).then_some(v)
}

impl SessionStatus {
    /// A status for the session `name` (the venue or connector), `connecting`.
    pub fn new(name: impl Into<String>) -> Self {
        SessionStatus {
            name: name.into(),
            state: AtomicU8::new(SessionState::Connecting.to_u8()),
            reconnects: AtomicU64::new(0),
            messages_received: AtomicU64::new(0),
            items: AtomicU64::new(0),
            decode_errors: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            last_message_at: AtomicI64::new(0),
            cooldown_until: AtomicI64::new(0),
            connected_since: AtomicI64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn state(&self) -> SessionState {
        SessionState::from_u8(self.state.load(Ordering::Acquire))
    }
    /// Connections made after the first one.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }
    /// Messages of every kind (data, acks, pongs, control frames, garbage).
    pub fn messages_received(&self) -> u64 {
        self.messages_received.load(Ordering::Relaxed)
    }
    /// Items delivered to the consumer.
    pub fn items(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors.load(Ordering::Relaxed)
    }
    pub fn ignored(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }
    pub fn last_message_at(&self) -> Option<i64> {
        opt(self.last_message_at.load(Ordering::Relaxed))
    }
    /// Until when the session waits after being rate-limited.
    pub fn cooldown_until(&self) -> Option<i64> {
        opt(self.cooldown_until.load(Ordering::Relaxed))
    }
    /// When the current connection was established (`None` while down).
    pub fn connected_since(&self) -> Option<i64> {
        opt(self.connected_since.load(Ordering::Relaxed))
    }
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        StatusSnapshot {
            name: self.name.clone(),
            state: self.state(),
            reconnects: self.reconnects(),
            messages_received: self.messages_received(),
            items: self.items(),
            decode_errors: self.decode_errors(),
            ignored: self.ignored(),
            last_message_at: self.last_message_at(),
            last_error: self.last_error(),
            cooldown_until: self.cooldown_until(),
            connected_since: self.connected_since(),
        }
    }

    pub(crate) fn set_state(&self, s: SessionState) {
        self.state.store(s.to_u8(), Ordering::Release);
    }
    pub(crate) fn set_error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.into());
    }
    pub(crate) fn set_cooldown_until(&self, ns: i64) {
        self.cooldown_until.store(ns, Ordering::Relaxed);
    }
    pub(crate) fn set_connected_since(&self, ns: i64) {
        self.connected_since.store(ns, Ordering::Relaxed);
    }
}

/// The session's status plus its `metrics` handles, resolved once per
/// session so the read loop does no label lookups.
#[derive(Debug)]
pub(crate) struct Recorder {
    pub(crate) status: std::sync::Arc<SessionStatus>,
    label_key: &'static str,
    messages: Counter,
    items: Counter,
    decode_errors: Counter,
    connected: Gauge,
}

impl Recorder {
    pub(crate) fn new(status: std::sync::Arc<SessionStatus>, label_key: &'static str) -> Self {
        let v = status.name().to_string();
        Recorder {
            messages: metrics::counter!("marketd_ws_messages_total", label_key => v.clone()),
            items: metrics::counter!("marketd_ws_items_total", label_key => v.clone()),
            decode_errors: metrics::counter!("marketd_ws_decode_errors_total", label_key => v.clone()),
            connected: metrics::gauge!("marketd_ws_connected_sessions", label_key => v),
            status,
            label_key,
        }
    }

    pub(crate) fn message(&self, now_ns: i64) {
        self.status
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        self.status.last_message_at.store(now_ns, Ordering::Relaxed);
        self.messages.increment(1);
    }

    pub(crate) fn items(&self, n: usize) {
        let n = n as u64;
        self.status.items.fetch_add(n, Ordering::Relaxed);
        self.items.increment(n);
    }

    pub(crate) fn decode_error(&self, e: &str) {
        self.status.decode_errors.fetch_add(1, Ordering::Relaxed);
        self.decode_errors.increment(1);
        self.status.set_error(format!("decode error: {e}"));
    }

    pub(crate) fn ignored(&self) {
        self.status.ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn connected(&self, now_ns: i64, first: bool) {
        if !first {
            self.status.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.status.set_connected_since(now_ns);
        self.status.set_cooldown_until(0);
        self.status.set_state(SessionState::Running);
        self.connected.increment(1.0);
    }

    /// The connection ended for `reason` (a short metrics label).
    pub(crate) fn disconnected(&self, reason: &'static str) {
        self.status.set_connected_since(0);
        self.connected.decrement(1.0);
        metrics::counter!("marketd_ws_disconnects_total",
            self.label_key => self.status.name().to_string(), "reason" => reason)
        .increment(1);
    }

    pub(crate) fn connect_failed(&self, reason: &'static str) {
        metrics::counter!("marketd_ws_connect_failures_total",
            self.label_key => self.status.name().to_string(), "reason" => reason)
        .increment(1);
    }

    pub(crate) fn cooldown(&self, until_ns: i64) {
        self.status.set_cooldown_until(until_ns);
        self.status.set_state(SessionState::CoolingDown);
        metrics::counter!("marketd_ws_cooldowns_total",
            self.label_key => self.status.name().to_string())
        .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_are_the_contract() {
        let names: Vec<&str> = SessionState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "connecting",
                "running",
                "reconnecting",
                "cooling_down",
                "stopped",
                "failed"
            ]
        );
        for s in SessionState::ALL {
            assert_eq!(SessionState::from_u8(s.to_u8()), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }

    #[test]
    fn snapshot_reports_never_as_none() {
        let st = SessionStatus::new("binance");
        let snap = st.snapshot();
        assert_eq!(snap.state, SessionState::Connecting);
        assert_eq!(snap.last_message_at, None);
        assert_eq!(snap.connected_since, None);
        st.set_error("boom");
        st.set_state(SessionState::Running);
        assert_eq!(st.last_error().as_deref(), Some("boom"));
        assert_eq!(st.state(), SessionState::Running);
    }
}
