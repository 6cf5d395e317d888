//! The realtime protocol's messages (JSON text frames, tagged by `type`).
//! `docs/realtime.md` shows each with an example.

use marketd_engine::realtime::{Channel, Outgoing};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client's message.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Subscribe {
        channel: String,
        symbols: Vec<String>,
        /// The last `seq` the client has, per key: what came after is
        /// replayed before the live stream.
        #[serde(default)]
        since: BTreeMap<String, u64>,
        /// `bars` and `indicators`: only this interval (`1m`, …).
        #[serde(default)]
        interval: Option<String>,
    },
    Unsubscribe {
        channel: String,
        symbols: Vec<String>,
    },
    Ping {
        /// Echoed in the `pong`.
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    /// The answer to a server `ping`.
    Pong {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
}

/// Why a client message was refused (the `error` frame's `error_code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            code,
            detail: detail.into(),
        }
    }
}

/// Reads a client text frame.
pub fn parse(text: &str) -> Result<ClientMessage, Refusal> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Refusal::new("MALFORMED_MESSAGE", format!("not JSON: {e}")))?;
    let kind = value
        .get("type")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| Refusal::new("MALFORMED_MESSAGE", "a message needs a string \"type\""))?
        .to_owned();
    if !["subscribe", "unsubscribe", "ping", "pong"].contains(&kind.as_str()) {
        return Err(Refusal::new(
            "UNKNOWN_MESSAGE",
            format!("unknown type {kind:?}; expected subscribe, unsubscribe, ping or pong"),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| Refusal::new("INVALID_MESSAGE", format!("{kind}: {e}")))
}

/// A channel by name, or the refusal naming the known ones.
pub fn channel(name: &str) -> Result<Channel, Refusal> {
    Channel::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Channel::ALL.iter().map(|c| c.name()).collect();
        Refusal::new(
            "UNKNOWN_CHANNEL",
            format!("unknown channel {name:?}; known: {}", known.join(", ")),
        )
    })
}

/// A server message other than `data_update` (whose frame the hub makes).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage<'a> {
    Connected {
        connection_id: u64,
        server_time: String,
        heartbeat_interval_ms: u64,
        channels: Vec<&'static str>,
    },
    Subscribed {
        channel: &'static str,
        /// `["*"]` for every symbol.
        symbols: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        interval: Option<String>,
    },
    Unsubscribed {
        channel: &'static str,
        symbols: &'a [String],
    },
    Ping {
        server_time: String,
    },
    Pong {
        server_time: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    Gap {
        channel: &'static str,
        key: &'a str,
        from: u64,
        to: u64,
        reason: &'static str,
    },
    Error {
        error_code: &'static str,
        detail: &'a str,
        timestamp: String,
    },
}

impl ServerMessage<'_> {
    pub fn to_text(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The text of an outbox item.
pub fn outgoing_text(x: &Outgoing) -> Result<axum::extract::ws::Utf8Bytes, std::str::Utf8Error> {
    match x {
        Outgoing::Update(u) => axum::extract::ws::Utf8Bytes::try_from(u.frame.clone()),
        Outgoing::Gap {
            channel,
            key,
            from,
            to,
            reason,
        } => Ok(ServerMessage::Gap {
            channel: channel.name(),
            key,
            from: *from,
            to: *to,
            reason,
        }
        .to_text()
        .into()),
    }
}

pub fn now_rfc3339() -> String {
    marketd_model::time::to_rfc3339(marketd_model::time::now_ns())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse_or_are_refused_with_a_code() {
        assert_eq!(
            parse(
                r#"{"type":"subscribe","channel":"ticks","symbols":["AAPL"],"since":{"AAPL":4}}"#
            ),
            Ok(ClientMessage::Subscribe {
                channel: "ticks".into(),
                symbols: vec!["AAPL".into()],
                since: BTreeMap::from([("AAPL".into(), 4)]),
                interval: None,
            })
        );
        assert_eq!(
            parse(r#"{"type":"ping","id":7}"#),
            Ok(ClientMessage::Ping {
                id: Some(serde_json::json!(7))
            })
        );
        for (text, code) in [
            ("{nope", "MALFORMED_MESSAGE"),
            ("[1]", "MALFORMED_MESSAGE"),
            (r#"{"type":"dance"}"#, "UNKNOWN_MESSAGE"),
            (
                r#"{"type":"subscribe","channel":"ticks"}"#,
                "INVALID_MESSAGE",
            ),
            (
                r#"{"type":"subscribe","channel":"ticks","symbols":["A"],"extra":1}"#,
                "INVALID_MESSAGE",
            ),
            (
                r#"{"type":"subscribe","channel":"ticks","symbols":["A"],"since":{"A":-1}}"#,
                "INVALID_MESSAGE",
            ),
        ] {
            assert_eq!(parse(text).unwrap_err().code, code, "{text}");
        }
        assert_eq!(channel("bars"), Ok(Channel::Bars));
        assert_eq!(channel("news").unwrap_err().code, "UNKNOWN_CHANNEL");
    }
}
