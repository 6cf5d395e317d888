use crate::{Bar, Indicator, PollingJobCommand, PriceRequest, Tick};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// Version of the envelope schema (`docs/events.md`). Bumped on any
/// incompatible change of the envelope or a payload.
pub const SCHEMA_VERSION: u16 = 1;

/// The bus topics of DESIGN.md. The wire name (Kafka topic) is
/// `<prefix><name>`, prefix `marketd.` by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topic {
    Ticks,
    PriceRequests,
    PollingJobs,
    Bars,
    Indicators,
    Jobs,
    TdaSignals,
    ConnectorStatus,
}

impl Topic {
    pub const ALL: [Topic; 8] = [
        Topic::Ticks,
        Topic::PriceRequests,
        Topic::PollingJobs,
        Topic::Bars,
        Topic::Indicators,
        Topic::Jobs,
        Topic::TdaSignals,
        Topic::ConnectorStatus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::Ticks => "ticks",
            Topic::PriceRequests => "price-requests",
            Topic::PollingJobs => "polling-jobs",
            Topic::Bars => "bars",
            Topic::Indicators => "indicators",
            Topic::Jobs => "jobs",
            Topic::TdaSignals => "tda-signals",
            Topic::ConnectorStatus => "connector-status",
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kind of an envelope's payload (the `kind` field on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Tick,
    Bar,
    Indicator,
    PriceRequest,
    PollingJob,
}

/// The payloads carried on the bus, tagged by `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Event {
    Tick(Tick),
    Bar(Bar),
    Indicator(Indicator),
    PriceRequest(PriceRequest),
    PollingJob(PollingJobCommand),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Tick(_) => EventKind::Tick,
            Event::Bar(_) => EventKind::Bar,
            Event::Indicator(_) => EventKind::Indicator,
            Event::PriceRequest(_) => EventKind::PriceRequest,
            Event::PollingJob(_) => EventKind::PollingJob,
        }
    }

    /// The partition key: the symbol for market data, the job id for jobs.
    pub fn key(&self) -> String {
        match self {
            Event::Tick(t) => t.symbol.to_string(),
            Event::Bar(b) => b.symbol.to_string(),
            Event::Indicator(i) => i.symbol.to_string(),
            Event::PriceRequest(r) => r.symbol.to_string(),
            Event::PollingJob(c) => c.job_id().to_string(),
        }
    }

    /// The topic this event belongs on.
    pub fn topic(&self) -> Topic {
        match self {
            Event::Tick(_) => Topic::Ticks,
            Event::Bar(_) => Topic::Bars,
            Event::Indicator(_) => Topic::Indicators,
            Event::PriceRequest(_) => Topic::PriceRequests,
            Event::PollingJob(_) => Topic::PollingJobs,
        }
    }
}

/// Every bus message: schema version, event id (UUIDv7, so ids sort by
/// creation time), key and the tagged payload.
///
/// ```json
/// {"schema_version":1,"id":"0190...","key":"AAPL","produced_at":1700000000000000000,
///  "kind":"tick","payload":{"symbol":"AAPL","source":"simulated",...}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub schema_version: u16,
    pub id: Uuid,
    pub key: String,
    /// When the envelope was made, nanoseconds since the epoch.
    pub produced_at: i64,
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    pub fn new(event: Event) -> Self {
        Envelope {
            schema_version: SCHEMA_VERSION,
            id: Uuid::now_v7(),
            key: event.key(),
            produced_at: crate::time::now_ns(),
            event,
        }
    }

    pub fn kind(&self) -> EventKind {
        self.event.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Symbol, TickKind};
    use rust_decimal::Decimal;

    #[test]
    fn envelope_wire_shape_round_trips() {
        let t = Tick::new(
            Symbol::parse("AAPL").unwrap(),
            "simulated",
            TickKind::Last,
            "189.25".parse().unwrap(),
            Decimal::from(3),
            1_700_000_000_000_000_000,
            1_700_000_000_000_000_100,
        );
        let env = Envelope::new(Event::Tick(t));
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["kind"], "tick");
        assert_eq!(json["key"], "AAPL");
        assert_eq!(json["payload"]["symbol"], "AAPL");
        assert_eq!(json["payload"]["source"], "simulated");
        assert_eq!(json["payload"]["price"], serde_json::json!(189.25));
        assert_eq!(json["payload"]["ts_event"], 1_700_000_000_000_000_000_i64);
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }
}
