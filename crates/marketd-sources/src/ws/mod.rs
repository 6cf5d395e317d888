//! A venue-agnostic WebSocket session runtime for exchange feeds and
//! connectors. Feeds that go silent and never recover, reconnect storms,
//! subscriptions lost after a reconnect, bans for reconnecting too fast and
//! slow consumers growing memory are the failures users see in other market
//! data systems; this module handles them once, for every venue:
//!
//! - [`WsProtocol`] is the seam a venue implements (`src/venues/…`): the URL,
//!   the subscribe frames, the keepalive, and decoding a message into items.
//! - [`run_session`] / [`WsSession::run`] drive it: connect (with a
//!   timeout), subscribe, read; answer control pings (flushed at once) and
//!   send the protocol's keepalive pings, expecting pongs; replace a
//!   connection that has been silent for `idle_timeout`; reconnect with full
//!   jitter ([`ReconnectBackoff`]: first retry at once, then random up to
//!   `min(30 s, 1 s·2^n)`, reset only after a healthy minute); resubscribe on
//!   every connection; cool down on HTTP 429/418 honouring `Retry-After`.
//! - Connection attempts pass through one [`HostGate`] per host
//!   ([`ConnectLimiters`]), shared by all sessions: a token bucket spreads
//!   reconnects out, and a rate-limit answer to one session holds back all.
//! - Items go to an [`ItemSink`] (a bounded `mpsc::Sender`) whose send is
//!   awaited by the read loop: a slow consumer slows reading; nothing grows.
//! - [`SessionStatus`] (state, counters, times, last error) is readable at
//!   any time; metrics `marketd_ws_messages_total`, `marketd_ws_items_total`,
//!   `marketd_ws_decode_errors_total`, `marketd_ws_connected_sessions`
//!   (gauge), `marketd_ws_disconnects_total{reason}`,
//!   `marketd_ws_connect_failures_total{reason}`, `marketd_ws_cooldowns_total`,
//!   all labelled `venue` (or `connector`, [`SessionOptions::label_key`]).
//!
//! Limits: messages above `max_message_size` or frames above
//! `max_frame_size` drop the connection (and count as a failure). Binary
//! messages go to [`WsProtocol::on_binary`], which ignores them by default
//! (counted as ignored). Garbage is the protocol's [`Inbound::Error`]:
//! counted, and the session goes on.
//!
//! **permessage-deflate is not supported**: tungstenite 0.29 has no
//! compression extension (no `deflate` feature; it never offers
//! `Sec-WebSocket-Extensions`), so connections are uncompressed. Venues that
//! compress only on request (Binance, OKX) send plain frames then.
//!
//! TLS: rustls with the ring provider, as the rest of the workspace, and
//! Mozilla's roots by default or the OS's ([`TlsRoots`]).

mod error;
mod limiter;
mod options;
mod protocol;
mod reconnect;
mod session;
mod sink;
mod status;
mod tls;

pub use error::WsError;
pub use limiter::{ConnectLimiters, ConnectRate, HostGate};
pub use options::{SessionOptions, TlsRoots};
pub use protocol::{Inbound, Keepalive, WsProtocol};
pub use reconnect::{ReconnectBackoff, ReconnectPolicy};
pub use session::{SessionEnd, WsSession, run_session};
pub use sink::{ItemSink, PerItem, SinkClosed};
pub use status::{SessionState, SessionStatus, StatusSnapshot};
