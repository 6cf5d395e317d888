//! Realtime fan-out: every message of the streamed topics, numbered per
//! (channel, key), kept in a short history for resuming, and handed to
//! each subscribed client's bounded [`Outbox`].
//!
//! One [`Hub`] per API instance tails the bus ([`marketd_bus::Bus::tail`]:
//! its own reader that starts at the end and never commits, so every
//! instance sees every message and none holds producers back). The
//! WebSocket endpoint (`marketd-api`) turns a client's subscribe into
//! [`Hub::subscribe`] and drains its outbox onto the socket.
//!
//! Slow clients: channels that carry state (`bars`, `indicators`,
//! `connector-status`, `jobs`, `tda-signals`) keep only the latest value per
//! key waiting (conflation); `ticks` are queued up to the client's bound and
//! what overflows is replaced by a `gap` stating the skipped `seq` range, so
//! no trade is dropped silently. One client's queue never delays the hub or
//! another client.

mod channel;
mod history;
mod hub;
mod outbox;

pub use channel::{Channel, Update};
pub use hub::{Admission, Hub, RealtimeConfig, SubscribeError, Subscription};
pub use outbox::{Outbox, Outgoing};
