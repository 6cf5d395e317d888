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

    /// Every venue here speaks text on its public streams (permessage-
    /// deflate is not negotiated, so nothing arrives compressed): a binary
    /// message is not one of theirs, and is counted as a decode error like
    /// any other frame that does not decode.
    fn on_binary(&mut self, data: &[u8], _received_ns: i64, _out: &mut Vec<Tick>) -> Inbound {
        Inbound::Error(format!(
            "{}: unexpected binary message ({} bytes); the venue sends text",
            self.venue.name(),
            data.len()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venues::Channel;
    use marketd_model::Symbol;

    fn session(venue: Venue) -> VenueSession {
        let symbol = match venue {
            Venue::BinanceFutures => "BTC-USDT-PERP",
            _ => "BTC-USDT",
        };
        let symbols = [Symbol::parse(symbol).unwrap()];
        let plan = venue
            .plan(venue.default_ws_url(), &symbols, &[Channel::Trades])
            .unwrap();
        VenueSession::new(venue, plan)
    }

    #[test]
    fn binary_messages_are_decode_errors_for_every_venue() {
        for venue in Venue::ALL {
            let mut s = session(venue);
            let mut out = Vec::new();
            let got = s.on_binary(&[0xde, 0xad, 0xbe, 0xef], 1, &mut out);
            let Inbound::Error(message) = got else {
                panic!("{venue}: a binary message is {got:?}, not an error");
            };
            assert!(message.contains(venue.name()), "{message}");
            assert!(message.contains("4 bytes"), "{message}");
            assert!(out.is_empty());
        }
    }

    #[test]
    fn text_that_does_not_decode_is_an_error_and_a_trade_is_data() {
        let mut s = session(Venue::Binance);
        let mut out = Vec::new();
        assert!(matches!(
            s.on_text("}{ not json", 1, &mut out),
            Inbound::Error(_)
        ));
        let trade = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.50","q":"2","T":1700000000000,"m":true,"M":true}}"#;
        assert_eq!(s.on_text(trade, 1, &mut out), Inbound::Data);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].trade_id.as_deref(), Some("7"));
    }
}
