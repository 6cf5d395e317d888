//! A venue as a [`WsProtocol`]: the plan's URL and subscribe frames are
//! sent again on every connection (so a reconnect resubscribes everything),
//! the venue's keepalive is mapped to the session's, and each decoded
//! [`Frame`] tells the session what happened (data, an ack, a server ping
//! to answer, a shutdown notice, a rate limit, an error).

use super::{ConnectPlan, Decoder, Frame, Keepalive as VenueKeepalive, Venue};
use crate::ws::{Inbound, Keepalive, WsProtocol};
use marketd_model::Tick;

/// One venue connection plan, decoded into ticks.
pub struct VenueSession {
    venue: Venue,
    plan: ConnectPlan,
    decoder: Decoder,
}

impl VenueSession {
    /// `plan` from [`Venue::plan`]; its URL is used as is (a Finnhub token
    /// must already be in its query).
    pub fn new(venue: Venue, plan: ConnectPlan) -> Self {
        VenueSession {
            venue,
            decoder: venue.decoder(),
            plan,
        }
    }
}

impl WsProtocol for VenueSession {
    type Item = Tick;

    fn connect_url(&self) -> String {
        self.plan.url.clone()
    }

    fn subscribe_frames(&self) -> Vec<String> {
        self.plan.frames.clone()
    }

    fn keepalive(&self) -> Keepalive {
        match self.venue.keepalive() {
            VenueKeepalive::ClientTextPing { ping, pong, idle } => {
                Keepalive::text(ping, pong, idle)
            }
            // Control pings are answered by the WebSocket library; a
            // heartbeat needs no answer. The idle timeout covers both.
            _ => Keepalive::None,
        }
    }

    fn on_connected(&mut self) {
        // Symbols are cached per connection.
        self.decoder = self.venue.decoder();
    }

    fn on_text(&mut self, text: &str, received_ns: i64, out: &mut Vec<Tick>) -> Inbound {
        match self.decoder.decode(text, received_ns, out) {
            Ok(Frame::Data { .. }) => Inbound::Data,
            Ok(Frame::Ack(_)) => Inbound::Ack,
            Ok(Frame::Pong) => Inbound::Pong,
            Ok(Frame::Ping { reply: Some(r) }) => Inbound::Reply(r.to_string()),
            Ok(Frame::Ping { reply: None } | Frame::Ignored { .. } | Frame::Notice(_)) => {
                Inbound::Ignored
            }
            Ok(Frame::ServerShutdown(_)) => Inbound::ServerShutdown,
            Ok(Frame::Limit { .. }) => Inbound::RateLimited { retry_after: None },
            Ok(Frame::Error(m)) => Inbound::Error(format!("{} error: {m}", self.venue.name())),
            Err(e) => Inbound::Error(e.to_string()),
        }
    }
}
