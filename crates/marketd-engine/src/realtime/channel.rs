//! The realtime channels, the bus topic each is fed from, how a message is
//! keyed, and the `data_update` frame it becomes (serialized once, shared
//! by every client that receives it).

use bytes::Bytes;
use marketd_model::{Event, Topic};
use serde::Serialize;
use std::sync::Arc;

/// A realtime channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Ticks,
    Bars,
    Indicators,
    ConnectorStatus,
    Jobs,
    TdaSignals,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Ticks,
        Channel::Bars,
        Channel::Indicators,
        Channel::ConnectorStatus,
        Channel::Jobs,
        Channel::TdaSignals,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Ticks => "ticks",
            Channel::Bars => "bars",
            Channel::Indicators => "indicators",
            Channel::ConnectorStatus => "connector-status",
            Channel::Jobs => "jobs",
            Channel::TdaSignals => "tda-signals",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The bus topic the channel is fed from.
    pub fn topic(self) -> Topic {
        match self {
            Channel::Ticks => Topic::Ticks,
            Channel::Bars => Topic::Bars,
            Channel::Indicators => Topic::Indicators,
            Channel::ConnectorStatus => Topic::ConnectorStatus,
            Channel::Jobs => Topic::Jobs,
            Channel::TdaSignals => Topic::TdaSignals,
        }
    }

    /// Whether a waiting message is replaced by a newer one of its key: a
    /// state channel's latest value is what a late client needs; every
    /// trade counts, so `ticks` never conflate, and neither do
    /// `tda-signals` (each window is an event: a raised alarm must not be
    /// replaced by the next window).
    pub fn conflates(self) -> bool {
        !matches!(self, Channel::Ticks | Channel::TdaSignals)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// One message of a channel as clients receive it.
#[derive(Debug, PartialEq)]
pub struct Update {
    pub channel: Channel,
    /// What `seq` counts per: the symbol for ticks; symbol, interval and
    /// source for bars; symbol, interval, kind and window for indicators;
    /// the connector id for connector status.
    pub key: Arc<str>,
    /// The symbol the client filters on (the key for channels without one).
    pub symbol: Arc<str>,
    /// The bar or indicator interval (`bars` subscriptions may filter on it).
    pub interval: Option<&'static str>,
    /// 1 for the first message of the key this hub saw, then +1 each.
    pub seq: u64,
    /// When the producer published it (ns), for publish-to-send latency.
    pub produced_at: i64,
    /// The whole `data_update` frame, JSON.
    pub frame: Bytes,
}

/// The `data_update` frame: the payload is the same JSON the REST API
/// answers for that object.
#[derive(Serialize)]
struct DataUpdate<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    channel: &'static str,
    symbol: &'a str,
    key: &'a str,
    seq: u64,
    data: &'a T,
}

/// What a bus event is on the realtime side: its channel, key, symbol and
/// interval; `None` for events no channel carries (commands, requests).
pub(crate) struct Keyed<'a> {
    pub channel: Channel,
    pub key: String,
    pub symbol: String,
    pub interval: Option<&'static str>,
    payload: Payload<'a>,
}

/// The object a frame carries, serialized as itself.
#[derive(Serialize)]
#[serde(untagged)]
enum Payload<'a> {
    Tick(&'a marketd_model::Tick),
    Bar(&'a marketd_model::Bar),
    Indicator(&'a marketd_model::Indicator),
    ConnectorStatus(&'a marketd_model::ConnectorStatus),
    Job(&'a marketd_model::TdaJob),
    TdaSignal(&'a marketd_model::TdaSignal),
}

pub(crate) fn keyed(event: &Event) -> Option<Keyed<'_>> {
    Some(match event {
        Event::Tick(t) => {
            let s = t.symbol.to_string();
            Keyed {
                channel: Channel::Ticks,
                key: s.clone(),
                symbol: s,
                interval: None,
                payload: Payload::Tick(t),
            }
        }
        Event::Bar(b) => Keyed {
            channel: Channel::Bars,
            key: format!("{}:{}:{}", b.symbol, b.interval.as_str(), b.source),
            symbol: b.symbol.to_string(),
            interval: Some(b.interval.as_str()),
            payload: Payload::Bar(b),
        },
        Event::Indicator(i) => Keyed {
            channel: Channel::Indicators,
            key: format!(
                "{}:{}:{}{}:{}",
                i.symbol,
                i.interval.as_str(),
                i.kind.as_str(),
                i.window,
                i.source
            ),
            symbol: i.symbol.to_string(),
            interval: Some(i.interval.as_str()),
            payload: Payload::Indicator(i),
        },
        Event::ConnectorStatus(s) => {
            let id = s.connector_id.to_string();
            Keyed {
                channel: Channel::ConnectorStatus,
                key: id.clone(),
                symbol: id,
                interval: None,
                payload: Payload::ConnectorStatus(s),
            }
        }
        Event::Job(j) => {
            let id = j.id.to_string();
            Keyed {
                channel: Channel::Jobs,
                key: id.clone(),
                symbol: id,
                interval: None,
                payload: Payload::Job(j),
            }
        }
        Event::TdaSignal(s) => Keyed {
            channel: Channel::TdaSignals,
            key: s.basket.clone(),
            symbol: s.basket.clone(),
            interval: None,
            payload: Payload::TdaSignal(s),
        },
        Event::PriceRequest(_) | Event::PollingJob(_) | Event::Connector(_) => return None,
    })
}

impl Keyed<'_> {
    /// The `data_update` frame numbered `seq`.
    pub(crate) fn frame(&self, seq: u64) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&DataUpdate {
            kind: "data_update",
            channel: self.channel.name(),
            symbol: &self.symbol,
            key: &self.key,
            seq,
            data: &self.payload,
        })
    }
}
