use crate::{
    Bar, ConnectorCommand, ConnectorStatus, Indicator, PollingJobCommand, PriceRequest, TdaJob,
    TdaSignal, Tick,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

mod binary;

pub use binary::{BinaryError, LAYOUT_1};

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
    /// Connector commands, keyed by connector id (compacted).
    Connectors,
}

impl Topic {
    pub const ALL: [Topic; 9] = [
        Topic::Ticks,
        Topic::PriceRequests,
        Topic::PollingJobs,
        Topic::Bars,
        Topic::Indicators,
        Topic::Jobs,
        Topic::TdaSignals,
        Topic::ConnectorStatus,
        Topic::Connectors,
    ];

    /// Command topics, whose last message per key is the unit's state:
    /// compacted on Kafka.
    pub fn is_compacted(self) -> bool {
        matches!(self, Topic::PollingJobs | Topic::Connectors)
    }

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
            Topic::Connectors => "connectors",
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
    Connector,
    ConnectorStatus,
    Job,
    TdaSignal,
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
    Connector(ConnectorCommand),
    ConnectorStatus(ConnectorStatus),
    /// A persistent-homology job's transition or progress (`jobs`).
    Job(TdaJob),
    /// One window of a streaming basket's signal (`tda-signals`).
    TdaSignal(TdaSignal),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Tick(_) => EventKind::Tick,
            Event::Bar(_) => EventKind::Bar,
            Event::Indicator(_) => EventKind::Indicator,
            Event::PriceRequest(_) => EventKind::PriceRequest,
            Event::PollingJob(_) => EventKind::PollingJob,
            Event::Connector(_) => EventKind::Connector,
            Event::ConnectorStatus(_) => EventKind::ConnectorStatus,
            Event::Job(_) => EventKind::Job,
            Event::TdaSignal(_) => EventKind::TdaSignal,
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
            Event::Connector(c) => c.connector_id().to_string(),
            Event::ConnectorStatus(s) => s.connector_id.to_string(),
            Event::Job(j) => j.id.to_string(),
            Event::TdaSignal(s) => s.basket.clone(),
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
            Event::Connector(_) => Topic::Connectors,
            Event::ConnectorStatus(_) => Topic::ConnectorStatus,
            Event::Job(_) => Topic::Jobs,
            Event::TdaSignal(_) => Topic::TdaSignals,
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
///
/// Reading an envelope decodes the payload directly from its JSON text (no
/// buffering through serde's generic content), so decimals keep every digit,
/// and in one pass when `kind` comes before `payload`, as marketd writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Envelope {
    pub schema_version: u16,
    pub id: Uuid,
    pub key: String,
    /// When the envelope was made, nanoseconds since the epoch.
    pub produced_at: i64,
    #[serde(flatten)]
    pub event: Event,
}

impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct("Envelope", ENVELOPE_FIELDS, EnvelopeVisitor)
    }
}

const ENVELOPE_FIELDS: &[&str] = &[
    "schema_version",
    "id",
    "key",
    "produced_at",
    "kind",
    "payload",
];

/// The envelope's fields; others are ignored (a newer producer may add some).
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EnvelopeField {
    SchemaVersion,
    Id,
    Key,
    ProducedAt,
    Kind,
    Payload,
    #[serde(other)]
    Other,
}

/// Reads an envelope in one pass. Producers write `kind` before `payload`,
/// so the payload is decoded straight into its type as it is read; a
/// payload that comes first is kept as JSON text and decoded once the kind
/// is known.
struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = Envelope;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a marketd envelope")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        use serde::de::Error as _;
        fn once<T, E: serde::de::Error>(
            slot: &mut Option<T>,
            v: T,
            name: &'static str,
        ) -> Result<(), E> {
            match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(E::duplicate_field(name)),
            }
        }
        let mut schema_version = None;
        let mut id = None;
        let mut key = None;
        let mut produced_at = None;
        let mut kind: Option<EventKind> = None;
        let mut event: Option<Event> = None;
        let mut early_payload: Option<Box<serde_json::value::RawValue>> = None;
        while let Some(field) = map.next_key::<EnvelopeField>()? {
            match field {
                EnvelopeField::SchemaVersion => {
                    once(&mut schema_version, map.next_value()?, "schema_version")?
                }
                EnvelopeField::Id => once(&mut id, map.next_value::<Uuid>()?, "id")?,
                EnvelopeField::Key => once(&mut key, map.next_value::<String>()?, "key")?,
                EnvelopeField::ProducedAt => {
                    once(&mut produced_at, map.next_value::<i64>()?, "produced_at")?
                }
                EnvelopeField::Kind => once(&mut kind, map.next_value()?, "kind")?,
                EnvelopeField::Payload => {
                    if event.is_some() || early_payload.is_some() {
                        return Err(A::Error::duplicate_field("payload"));
                    }
                    match kind {
                        // Worded as the payload-first path below: a
                        // refusal reads the same whatever the field order.
                        Some(k) => {
                            event = Some(map.next_value_seed(PayloadSeed(k)).map_err(|e| {
                                A::Error::custom(format!("invalid {k:?} payload: {e}"))
                            })?)
                        }
                        None => early_payload = Some(map.next_value()?),
                    }
                }
                EnvelopeField::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let kind = kind.ok_or_else(|| A::Error::missing_field("kind"))?;
        let event = match (event, early_payload) {
            (Some(event), _) => event,
            (None, Some(raw)) => {
                let mut d = serde_json::Deserializer::from_str(raw.get());
                serde::de::DeserializeSeed::deserialize(PayloadSeed(kind), &mut d)
                    .map_err(|e| A::Error::custom(format!("invalid {kind:?} payload: {e}")))?
            }
            (None, None) => return Err(A::Error::missing_field("payload")),
        };
        Ok(Envelope {
            schema_version: schema_version
                .ok_or_else(|| A::Error::missing_field("schema_version"))?,
            id: id.ok_or_else(|| A::Error::missing_field("id"))?,
            key: key.ok_or_else(|| A::Error::missing_field("key"))?,
            produced_at: produced_at.ok_or_else(|| A::Error::missing_field("produced_at"))?,
            event,
        })
    }
}

/// Decodes a payload of a known kind into its event.
struct PayloadSeed(EventKind);

impl<'de> serde::de::DeserializeSeed<'de> for PayloadSeed {
    type Value = Event;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Event, D::Error> {
        Ok(match self.0 {
            EventKind::Tick => Event::Tick(Deserialize::deserialize(d)?),
            EventKind::Bar => Event::Bar(Deserialize::deserialize(d)?),
            EventKind::Indicator => Event::Indicator(Deserialize::deserialize(d)?),
            EventKind::PriceRequest => Event::PriceRequest(Deserialize::deserialize(d)?),
            EventKind::PollingJob => Event::PollingJob(Deserialize::deserialize(d)?),
            EventKind::Connector => Event::Connector(Deserialize::deserialize(d)?),
            EventKind::ConnectorStatus => Event::ConnectorStatus(Deserialize::deserialize(d)?),
            EventKind::Job => Event::Job(Deserialize::deserialize(d)?),
            EventKind::TdaSignal => Event::TdaSignal(Deserialize::deserialize(d)?),
        })
    }
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

    /// Appends the envelope's bytes in `codec` to `out`. Under
    /// [`Codec::Binary`] only ticks have a binary layout; other events are
    /// written as JSON, which every reader takes too.
    pub fn encode(&self, codec: Codec, out: &mut Vec<u8>) -> Result<(), CodecError> {
        if codec == Codec::Binary && binary::encode(self, out) {
            return Ok(());
        }
        serde_json::to_writer(out, self).map_err(|e| CodecError::Json(e.to_string()))
    }

    /// Reads an envelope in either codec: a binary envelope starts with its
    /// layout byte ([`LAYOUT_1`]), and no byte from 0x80 up begins a JSON
    /// text, so such a first byte is read as a layout (a later one is
    /// refused by name, not as bad JSON).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, CodecError> {
        match bytes.first() {
            Some(&b) if b >= 0x80 => binary::decode(bytes).map_err(CodecError::Binary),
            _ => serde_json::from_slice(bytes).map_err(|e| CodecError::Json(e.to_string())),
        }
    }
}

/// How envelopes are written on the log (`bus.codec`). Readers take both,
/// whichever their own setting, so producers can be switched one at a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// JSON text (docs/events.md), readable by any Kafka consumer.
    #[default]
    Json,
    /// Ticks in the compact binary layout of docs/events.md (about a quarter
    /// of the bytes, a fraction of the CPU to write and read); every other
    /// event as JSON.
    Binary,
}

impl Codec {
    /// The codec's name in configuration (`bus.codec`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Binary => "binary",
        }
    }
}

impl std::str::FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        match s {
            "json" => Ok(Codec::Json),
            "binary" => Ok(Codec::Binary),
            other => Err(format!(
                "unknown codec {other:?}: expected \"json\" or \"binary\""
            )),
        }
    }
}

/// Why an envelope could not be written or read.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("invalid JSON envelope: {0}")]
    Json(String),
    #[error(transparent)]
    Binary(#[from] BinaryError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Symbol, TickKind};
    use rust_decimal::Decimal;

    /// Nanoseconds since the epoch of the test ticks' events.
    const T0: i64 = 1_700_000_000_000_000_000;

    /// The envelope of a tick of `symbol` from `source` at `price` and `size` (decimal text),
    /// with its event at `ts_event` and received 100 ns later.
    fn tick_envelope(
        symbol: &str,
        source: &str,
        kind: TickKind,
        price_size: [&str; 2],
        ts_event: i64,
    ) -> Envelope {
        let [price, size] = price_size.map(|d| d.parse::<Decimal>().unwrap());
        let symbol = Symbol::parse(symbol).unwrap();
        let t = Tick::new(symbol, source, kind, price, size, ts_event, ts_event + 100);
        Envelope::new(Event::Tick(t))
    }

    #[test]
    fn envelope_wire_shape_round_trips() {
        let env = tick_envelope("AAPL", "simulated", TickKind::Last, ["189.25", "3"], T0);
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["schema_version"], 1);
        assert_eq!(json["kind"], "tick");
        assert_eq!(json["key"], "AAPL");
        assert_eq!(json["payload"]["symbol"], "AAPL");
        assert_eq!(json["payload"]["source"], "simulated");
        assert_eq!(json["payload"]["price"], serde_json::json!(189.25));
        assert_eq!(json["payload"]["ts_event"], T0);
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn decimals_cross_the_wire_exactly() {
        // 18 decimal places in the price and in the size
        let exact = ["97123.123456789012345678", "0.000000000000000001"];
        let env = tick_envelope("BTC-USDT", "okx", TickKind::Trade, exact, T0 + 1);
        let bytes = serde_json::to_vec(&env).unwrap();
        let back: Envelope = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, env);
        // Field order on the wire does not matter.
        let reordered = r#"{"payload":{"symbol":"AAPL","source":"x","kind":"last","price":1.10,"size":1,"ts_event":1,"ts_received":2},"kind":"tick","key":"AAPL","produced_at":3,"id":"0190a1b2-0000-7000-8000-000000000000","schema_version":1}"#;
        let e: Envelope = serde_json::from_str(reordered).unwrap();
        assert_eq!(e.key, "AAPL");
        let bad = reordered.replace(r#""price":1.10"#, r#""price":"x""#);
        let err = serde_json::from_str::<Envelope>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid Tick payload"), "{err}");
        // The same refusal, worded the same, with the kind before the payload.
        let kind_first = serde_json::to_string(&env)
            .unwrap()
            .replace("97123.123456789012345678", "\"x\"");
        assert!(kind_first.find("\"kind\"") < kind_first.find("\"payload\""));
        let err = serde_json::from_str::<Envelope>(&kind_first)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid Tick payload"), "{err}");
    }

    #[test]
    fn envelopes_are_read_in_either_field_order_and_refuse_what_is_not_one() {
        let env = tick_envelope(
            "ETH-USDT",
            "binance",
            TickKind::Trade,
            ["2500.5", "0.25"],
            T0,
        );
        let text = serde_json::to_string(&env).unwrap();
        // marketd writes the kind before the payload (read in one pass).
        assert!(text.find(r#""kind""#) < text.find(r#""payload""#), "{text}");
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), env);
        // A field a newer producer adds is ignored, wherever it is.
        let extra = text.replacen('{', r#"{"trace":{"a":[1,2]},"#, 1);
        assert_eq!(serde_json::from_str::<Envelope>(&extra).unwrap(), env);
        // An invalid payload after its kind names the field.
        let bad = text.replace(r#""size":0.25"#, r#""size":[1]"#);
        let err = serde_json::from_str::<Envelope>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decimal"), "{err}");
        // A payload of the wrong kind is refused.
        let wrong = text.replace(r#""kind":"tick""#, r#""kind":"bar""#);
        assert!(serde_json::from_str::<Envelope>(&wrong).is_err());
        // Repeated and missing fields are refused.
        let twice = text.replacen('{', r#"{"kind":"tick","#, 1);
        let err = serde_json::from_str::<Envelope>(&twice)
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field `kind`"), "{err}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for field in ENVELOPE_FIELDS {
            let mut missing = v.clone();
            missing.as_object_mut().unwrap().remove(*field);
            let err = serde_json::from_value::<Envelope>(missing)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("missing field `{field}`")),
                "{field}: {err}"
            );
        }
    }
}
