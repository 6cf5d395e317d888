//! The seam between the session driver and a venue: what to connect to, what
//! to send after connecting, how to keep the connection alive, and how to read
//! what arrives. A venue normalizer (`src/venues/…`) implements
//! [`WsProtocol`]; the driver ([`super::run_session`]) owns the socket, the
//! timers, reconnects and delivery, so no venue re-implements them.

use std::time::Duration;

/// A venue's WebSocket dialect, as the session driver sees it.
///
/// The driver calls [`connect_url`](WsProtocol::connect_url) and
/// [`subscribe_frames`](WsProtocol::subscribe_frames) again on **every**
/// connection, so a reconnect resubscribes everything and a URL that changed
/// (a new endpoint, a fresh token) is followed.
///
/// `on_text`/`on_binary` decode one message: they push the decoded items
/// into `out` (the driver delivers them, applying backpressure, and clears
/// `out` afterwards; it is reused from message to message) and say what the
/// message was. They must not block and must never panic on bad input:
/// garbage is [`Inbound::Error`], which the driver counts and moves past.
pub trait WsProtocol: Send {
    /// What the protocol decodes messages into (typically `marketd_model::Tick`).
    type Item: Send + 'static;

    /// The `ws://` or `wss://` URL of the next connection attempt.
    fn connect_url(&self) -> String;

    /// The text frames to send after each connect (subscriptions, login),
    /// in order. Called once per connection.
    fn subscribe_frames(&self) -> Vec<String>;

    /// The application-level keepalive the venue expects. WebSocket control
    /// pings from the server are always answered by the driver.
    fn keepalive(&self) -> Keepalive {
        Keepalive::None
    }

    /// Called when a connection is established, before the subscribe frames
    /// are sent: a protocol that tracks sequence numbers resets them here.
    fn on_connected(&mut self) {}

    /// Decodes a text message received at `received_ns` (ns since the epoch).
    fn on_text(&mut self, text: &str, received_ns: i64, out: &mut Vec<Self::Item>) -> Inbound;

    /// Decodes a binary message; the default ignores it (the driver counts it).
    fn on_binary(&mut self, data: &[u8], received_ns: i64, out: &mut Vec<Self::Item>) -> Inbound {
        let _ = (data, received_ns, out);
        Inbound::Ignored
    }
}

/// How the driver keeps a connection alive beyond answering control pings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keepalive {
    /// Nothing: the server pings (and the driver answers) or data flows.
    None,
    /// Send the text frame `ping` (`"ping"` for OKX, `{"op":"ping"}` for a
    /// JSON dialect) every `every`; if no pong arrives within `pong_timeout`
    /// the connection is considered dead and replaced. A pong is a text
    /// message equal to `pong` when that is set (matched by the driver, the
    /// protocol never sees it), else whatever the protocol reports as
    /// [`Inbound::Pong`].
    Text {
        ping: String,
        pong: Option<String>,
        every: Duration,
        pong_timeout: Duration,
    },
    /// Send WebSocket control pings every `every`; a control pong must
    /// arrive within `pong_timeout`.
    Control {
        every: Duration,
        pong_timeout: Duration,
    },
}

impl Keepalive {
    /// `ping`/`pong` text frames every `every`, with a pong timeout of `every`.
    pub fn text(ping: &str, pong: &str, every: Duration) -> Self {
        Keepalive::Text {
            ping: ping.to_string(),
            pong: Some(pong.to_string()),
            every,
            pong_timeout: every,
        }
    }
}

/// What a message was, as decoded by the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Market data: the items were pushed into `out` (possibly none, e.g. an
    /// empty book update).
    Data,
    /// A subscription (or login) acknowledgement.
    Ack,
    /// The answer to the keepalive ping.
    Pong,
    /// Send this text frame back (e.g. a server-initiated `{"ping":n}` that
    /// wants `{"pong":n}`). Anything pushed into `out` is delivered too.
    Reply(String),
    /// The server announced it is going away (maintenance, rotation):
    /// reconnect at once; not a failure.
    ServerShutdown,
    /// The server said we are over its limits: close and cool down for
    /// `retry_after` (the session's default cool-down when `None`).
    RateLimited { retry_after: Option<Duration> },
    /// The message could not be decoded (or is a venue error reply): counted
    /// as a decode error; the session goes on.
    Error(String),
    /// Something the protocol does not care about (heartbeats, info).
    Ignored,
}
