//! Field mapping of generic REST connectors: where, in an upstream's JSON
//! answer, the records are and which field of a record is the symbol,
//! price, size, time, trade id and side.
//!
//! A [`FieldMapping`] is the `mapping` object of a connector's JSON:
//!
//! ```json
//! { "records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
//!   "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id", "side": "$.side" }
//! ```
//!
//! Paths are JSONPath (RFC 9535, `serde_json_path`). `records` is evaluated
//! on the whole body; every other path on one record (its `$` is the
//! record). [`FieldMapping::compile`] parses every path once into a
//! [`CompiledMapping`]; [`CompiledMapping::extract`] then turns each record
//! into a [`Tick`] of kind `trade`, collecting a [`RecordError`] (record
//! index and field) for each record that cannot be read without stopping
//! the others.
//!
//! Decisions:
//! - `symbol` is optional: without it (or when it matches nothing) the
//!   connector's fixed symbol ([`ExtractContext::symbol`]) is used; with
//!   neither, the record fails on `symbol`. A mapped symbol goes through
//!   [`Symbol::parse`]; the venue's spelling is kept in `venue_symbol`
//!   when it differs.
//! - `size` is optional: absent (path not given) means size 0, as for the
//!   providers' last-price ticks. A `size` path that is given must match.
//! - `ts` is optional: absent (path not given) means the receive time. A
//!   `ts` path that is given must match.
//! - Decimals are read from JSON strings or numbers. serde_json's
//!   `arbitrary_precision` is *not* enabled: it breaks numbers inside
//!   internally tagged and untagged enums and `flatten` (serde buffers them
//!   as maps; serde-rs/json#505), which [`super::UpstreamAuth`] is
//!   (`recv_window` would no longer parse). Numbers are
//!   read from their text: integers exactly; fractional numbers from the
//!   shortest text that round-trips their `f64`, which is exact for up to
//!   15 significant digits (every price we know of). Longer values (such as
//!   fractional-second timestamps with sub-microsecond digits) should be
//!   sent as strings, which are always exact.
//! - Epoch timestamps may be fractional in any unit; the result is
//!   truncated to whole nanoseconds (toward negative infinity). Overflow of
//!   `i64` nanoseconds is a record error.
//! - `side` is read (`buy`/`sell`, also `b`/`s`, `bid`/`ask`, any case) and
//!   returned by [`CompiledMapping::extract_trades`]; a [`Tick`] has no side,
//!   so [`CompiledMapping::extract`] drops it (a bad side still fails the record).

use marketd_model::{Decimal, Symbol, Tick, TickKind};
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use thiserror::Error;

/// The unit of an epoch timestamp field, or RFC 3339 text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsUnit {
    S,
    #[default]
    Ms,
    Us,
    Ns,
    Rfc3339,
}

impl TsUnit {
    fn nanos(self) -> i64 {
        match self {
            TsUnit::S => 1_000_000_000,
            TsUnit::Ms => 1_000_000,
            TsUnit::Us => 1_000,
            TsUnit::Ns | TsUnit::Rfc3339 => 1,
        }
    }
}

/// Where the fields of a tick are in an upstream's answer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    /// The records, on the whole body (`$.data[*]`; `$` for a single object).
    pub records: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub price: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(default)]
    pub ts_unit: TsUnit,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<String>,
}

/// A mapping path that does not parse.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("mapping.{field}: invalid JSONPath {path:?}: {message}")]
pub struct MappingError {
    pub field: &'static str,
    pub path: String,
    pub message: String,
}

/// One record that could not become a tick.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("record {index}: {field}: {message}")]
pub struct RecordError {
    /// Position of the record among those `records` matched.
    pub index: usize,
    /// The mapping field that failed (`price`, `ts`, …).
    pub field: &'static str,
    pub message: String,
}

/// A trade's aggressor side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

/// A record read: the tick and what a tick has no room for.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedTrade {
    pub index: usize,
    pub tick: Tick,
    pub side: Option<Side>,
}

/// What extraction needs besides the body.
#[derive(Debug, Clone)]
pub struct ExtractContext {
    /// `Tick::source`: the connector's name.
    pub source: Arc<str>,
    /// The connector's fixed symbol, used when the mapping has none.
    pub symbol: Option<Symbol>,
    /// `Tick::ts_received` (and `ts_event` when the mapping has no `ts`).
    pub received_ns: i64,
}

/// A [`FieldMapping`] with every path parsed.
#[derive(Clone)]
pub struct CompiledMapping {
    records: JsonPath,
    symbol: Option<JsonPath>,
    price: JsonPath,
    size: Option<JsonPath>,
    ts: Option<JsonPath>,
    ts_unit: TsUnit,
    trade_id: Option<JsonPath>,
    side: Option<JsonPath>,
    source: FieldMapping,
}

impl fmt::Debug for CompiledMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledMapping")
            .field(&self.source)
            .finish()
    }
}

fn compile(field: &'static str, path: &str) -> Result<JsonPath, MappingError> {
    JsonPath::parse(path).map_err(|e| MappingError {
        field,
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn compile_opt(
    field: &'static str,
    path: &Option<String>,
) -> Result<Option<JsonPath>, MappingError> {
    path.as_deref().map(|p| compile(field, p)).transpose()
}

impl FieldMapping {
    /// Parses every path once. The error names the field, the path and the parser's message.
    pub fn compile(&self) -> Result<CompiledMapping, MappingError> {
        Ok(CompiledMapping {
            records: compile("records", &self.records)?,
            symbol: compile_opt("symbol", &self.symbol)?,
            price: compile("price", &self.price)?,
            size: compile_opt("size", &self.size)?,
            ts: compile_opt("ts", &self.ts)?,
            ts_unit: self.ts_unit,
            trade_id: compile_opt("trade_id", &self.trade_id)?,
            side: compile_opt("side", &self.side)?,
            source: self.clone(),
        })
    }
}

/// The one value `path` selects in `record`: `None` when it selects nothing
/// or `null`, an error when it selects several.
fn one<'a>(
    path: &JsonPath,
    record: &'a Value,
    field: &'static str,
) -> Result<Option<&'a Value>, String> {
    match path.query(record).at_most_one() {
        Ok(Some(Value::Null)) | Ok(None) => Ok(None),
        Ok(Some(v)) => Ok(Some(v)),
        Err(_) => {
            let n = path.query(record).len();
            Err(format!("{field} path matched {n} values, expected one"))
        }
    }
}

/// The text of a scalar: a string's content or a number's text.
fn scalar_text(v: &Value) -> Result<std::borrow::Cow<'_, str>, String> {
    match v {
        Value::String(s) => Ok(std::borrow::Cow::Borrowed(s.as_str())),
        Value::Number(n) => Ok(std::borrow::Cow::Owned(n.to_string())),
        other => Err(format!(
            "expected a number or a string, found {}",
            kind(other)
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An exact decimal from a JSON string or number.
pub fn decimal_of(v: &Value) -> Result<Decimal, String> {
    if let Value::Number(n) = v {
        if let Some(i) = n.as_i64() {
            return Ok(Decimal::from(i));
        }
        if let Some(u) = n.as_u64() {
            return Ok(Decimal::from(u));
        }
    }
    let text = scalar_text(v)?;
    let t = text.trim();
    Decimal::from_str(t)
        .or_else(|_| Decimal::from_scientific(t))
        .map_err(|_| format!("invalid decimal {t:?}"))
}

/// Nanoseconds since the epoch from a timestamp value in `unit`.
pub fn ts_of(v: &Value, unit: TsUnit) -> Result<i64, String> {
    if unit == TsUnit::Rfc3339 {
        let Value::String(s) = v else {
            return Err(format!("expected an RFC 3339 string, found {}", kind(v)));
        };
        let t =
            time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("invalid RFC 3339 time {s:?}: {e}"))?;
        return i64::try_from(t.unix_timestamp_nanos())
            .map_err(|_| format!("time {s:?} is out of range"));
    }
    let factor = unit.nanos();
    if let Some(i) = v.as_i64() {
        return i
            .checked_mul(factor)
            .ok_or_else(|| format!("timestamp {i} overflows nanoseconds"));
    }
    let d = decimal_of(v)?;
    d.checked_mul(Decimal::from(factor))
        .and_then(|ns| ns.floor().to_i64())
        .ok_or_else(|| format!("timestamp {d} overflows nanoseconds"))
}

fn side_of(v: &Value) -> Result<Side, String> {
    let Value::String(s) = v else {
        return Err(format!("expected a string, found {}", kind(v)));
    };
    match s.trim().to_ascii_lowercase().as_str() {
        "buy" | "b" | "bid" => Ok(Side::Buy),
        "sell" | "s" | "ask" => Ok(Side::Sell),
        _ => Err(format!("unknown side {s:?}")),
    }
}

impl CompiledMapping {
    /// The mapping this was compiled from.
    pub fn mapping(&self) -> &FieldMapping {
        &self.source
    }

    /// The records `records` selects in `body`.
    pub fn records<'a>(&self, body: &'a Value) -> Vec<&'a Value> {
        self.records.query(body).all()
    }

    /// One record as a trade, or the first field that fails.
    pub fn map_record(
        &self,
        index: usize,
        record: &Value,
        ctx: &ExtractContext,
    ) -> Result<MappedTrade, RecordError> {
        let err = |field: &'static str| {
            move |message: String| RecordError {
                index,
                field,
                message,
            }
        };
        let missing = |field: &'static str| RecordError {
            index,
            field,
            message: "missing".to_string(),
        };

        let mapped_symbol = match &self.symbol {
            Some(p) => one(p, record, "symbol").map_err(err("symbol"))?,
            None => None,
        };
        let (symbol, venue_symbol) = match (mapped_symbol, &ctx.symbol) {
            (Some(v), _) => {
                let raw = scalar_text(v).map_err(err("symbol"))?;
                let symbol = Symbol::parse(&raw).map_err(|e| err("symbol")(e.to_string()))?;
                let venue = (symbol.as_str() != raw).then(|| raw.into_owned());
                (symbol, venue)
            }
            (None, Some(fixed)) => (fixed.clone(), None),
            (None, None) => return Err(missing("symbol")),
        };

        let price = one(&self.price, record, "price")
            .map_err(err("price"))?
            .ok_or_else(|| missing("price"))?;
        let price = decimal_of(price).map_err(err("price"))?;

        let size = match &self.size {
            Some(p) => {
                let v = one(p, record, "size")
                    .map_err(err("size"))?
                    .ok_or_else(|| missing("size"))?;
                decimal_of(v).map_err(err("size"))?
            }
            None => Decimal::ZERO,
        };

        let ts_event = match &self.ts {
            Some(p) => {
                let v = one(p, record, "ts")
                    .map_err(err("ts"))?
                    .ok_or_else(|| missing("ts"))?;
                ts_of(v, self.ts_unit).map_err(err("ts"))?
            }
            None => ctx.received_ns,
        };

        let trade_id = match &self.trade_id {
            Some(p) => match one(p, record, "trade_id").map_err(err("trade_id"))? {
                Some(v) => Some(scalar_text(v).map_err(err("trade_id"))?.into_owned()),
                None => None,
            },
            None => None,
        };

        let side = match &self.side {
            Some(p) => match one(p, record, "side").map_err(err("side"))? {
                Some(v) => Some(side_of(v).map_err(err("side"))?),
                None => None,
            },
            None => None,
        };

        let mut tick = Tick::new(
            symbol,
            ctx.source.clone(),
            TickKind::Trade,
            price,
            size,
            ts_event,
            ctx.received_ns,
        );
        tick.trade_id = trade_id;
        tick.venue_symbol = venue_symbol;
        Ok(MappedTrade { index, tick, side })
    }

    /// Every record of `body` as a trade; the records that fail are reported
    /// and skipped.
    pub fn extract_trades(
        &self,
        body: &Value,
        ctx: &ExtractContext,
    ) -> (Vec<MappedTrade>, Vec<RecordError>) {
        let records = self.records.query(body);
        let mut trades = Vec::with_capacity(records.len());
        let mut errors = Vec::new();
        for (index, record) in records.iter().enumerate() {
            match self.map_record(index, record, ctx) {
                Ok(t) => trades.push(t),
                Err(e) => errors.push(e),
            }
        }
        (trades, errors)
    }

    /// Every record of `body` as a tick; the records that fail are reported
    /// and skipped.
    pub fn extract(&self, body: &Value, ctx: &ExtractContext) -> (Vec<Tick>, Vec<RecordError>) {
        let (trades, errors) = self.extract_trades(body, ctx);
        (trades.into_iter().map(|t| t.tick).collect(), errors)
    }

    /// [`CompiledMapping::extract`] on raw body bytes; a body that is not
    /// JSON is an error of the whole answer.
    pub fn extract_bytes(
        &self,
        body: &[u8],
        ctx: &ExtractContext,
    ) -> Result<(Vec<Tick>, Vec<RecordError>), serde_json::Error> {
        let value: Value = serde_json::from_slice(body)?;
        Ok(self.extract(&value, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ExtractContext {
        ExtractContext {
            source: "conn".into(),
            symbol: None,
            received_ns: 42,
        }
    }

    fn mapping(ts_unit: TsUnit) -> CompiledMapping {
        FieldMapping {
            records: "$.data[*]".into(),
            symbol: Some("$.s".into()),
            price: "$.p".into(),
            size: Some("$.q".into()),
            ts: Some("$.t".into()),
            ts_unit,
            trade_id: Some("$.id".into()),
            side: Some("$.side".into()),
        }
        .compile()
        .unwrap()
    }

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn ts_with(unit: TsUnit, t: Value) -> Result<i64, RecordError> {
        let body = json!({"data": [{"s": "AAPL", "p": "1", "q": "1", "t": t}]});
        let (ticks, mut errors) = mapping(unit).extract(&body, &ctx());
        match errors.pop() {
            Some(e) => Err(e),
            None => Ok(ticks[0].ts_event),
        }
    }

    #[test]
    fn every_ts_unit() {
        let ns = 1_633_998_512_063_356_900_i64;
        assert_eq!(
            ts_with(TsUnit::S, json!(1_633_998_512)),
            Ok(1_633_998_512_000_000_000)
        );
        assert_eq!(
            ts_with(TsUnit::S, json!("1633998512")),
            Ok(1_633_998_512_000_000_000)
        );
        assert_eq!(
            ts_with(TsUnit::Ms, json!(1_633_998_512_063_i64)),
            Ok(1_633_998_512_063_000_000)
        );
        assert_eq!(
            ts_with(TsUnit::Us, json!(1_633_998_512_063_356_i64)),
            Ok(1_633_998_512_063_356_000)
        );
        assert_eq!(ts_with(TsUnit::Ns, json!(ns)), Ok(ns));
        assert_eq!(ts_with(TsUnit::Ns, json!(ns.to_string())), Ok(ns));
        assert_eq!(
            ts_with(TsUnit::Rfc3339, json!("2021-10-12T00:28:32.0633569Z")),
            Ok(ns)
        );
        assert_eq!(
            ts_with(TsUnit::Rfc3339, json!("2021-10-12T02:28:32.0633569+02:00")),
            Ok(ns)
        );
        // Fractional seconds: exact from a string, to the nanosecond.
        assert_eq!(ts_with(TsUnit::S, json!("1633998512.0633569")), Ok(ns));
        // The same as a JSON number: its shortest round-trip text is the
        // text sent, so it is exact too.
        let number: Value = serde_json::from_str("1633998512.0633569").unwrap();
        assert_eq!(ts_with(TsUnit::S, number), Ok(ns));
        // From a number: exact while it fits 15 significant digits.
        assert_eq!(
            ts_with(TsUnit::S, json!(1_633_998_512.063_f64)),
            Ok(1_633_998_512_063_000_000)
        );
        assert_eq!(
            ts_with(TsUnit::Ms, json!("1633998512063.5")),
            Ok(1_633_998_512_063_500_000)
        );
        // Sub-nanosecond digits are cut toward negative infinity.
        assert_eq!(ts_with(TsUnit::Ns, json!("5.9")), Ok(5));
    }

    #[test]
    fn bad_times_are_record_errors() {
        let e = ts_with(TsUnit::S, json!(i64::MAX / 10)).unwrap_err();
        assert_eq!((e.index, e.field), (0, "ts"));
        assert!(e.message.contains("overflows"), "{e}");
        let e = ts_with(TsUnit::Ns, json!(u64::MAX)).unwrap_err();
        assert!(e.message.contains("overflows"), "{e}");
        let e = ts_with(TsUnit::Rfc3339, json!("yesterday")).unwrap_err();
        assert!(e.message.starts_with("invalid RFC 3339"), "{e}");
        let e = ts_with(TsUnit::Rfc3339, json!(1_633_998_512)).unwrap_err();
        assert!(e.message.contains("RFC 3339 string"), "{e}");
        let e = ts_with(TsUnit::Ms, json!(true)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "record 0: ts: expected a number or a string, found a boolean"
        );
    }

    #[test]
    fn numbers_and_strings_are_exact() {
        let body = json!({"data": [
            {"s": "btc/usdt", "p": "61234.123456789012345678", "q": 0.00012, "t": 1, "id": 7, "side": "SELL"},
            {"s": "AAPL", "p": 261.74, "q": "100", "t": "2", "id": "x-9", "side": "b"},
            {"s": "AAPL", "p": 1e-7, "q": 12345678901234567_u64, "t": 3},
        ]});
        let (trades, errors) = mapping(TsUnit::S).extract_trades(&body, &ctx());
        assert!(errors.is_empty(), "{errors:?}");
        let t = &trades[0].tick;
        assert_eq!(t.symbol.as_str(), "BTC-USDT");
        assert_eq!(t.venue_symbol.as_deref(), Some("btc/usdt"));
        assert_eq!(t.price.to_string(), "61234.123456789012345678");
        assert_eq!(t.size.to_string(), "0.00012");
        assert_eq!(t.trade_id.as_deref(), Some("7"));
        assert_eq!(
            (&*t.source, t.kind, t.ts_received),
            ("conn", TickKind::Trade, 42)
        );
        assert_eq!(trades[0].side, Some(Side::Sell));
        let t = &trades[1].tick;
        assert_eq!(t.price.to_string(), "261.74");
        assert_eq!(t.venue_symbol, None);
        assert_eq!(t.ts_event, 2_000_000_000);
        assert_eq!(trades[1].side, Some(Side::Buy));
        assert_eq!(trades[2].tick.price, d("0.0000001"));
        assert_eq!(trades[2].tick.size, d("12345678901234567"));
        assert_eq!(trades[2].side, None);

        // The documented limit: a number with more digits than an f64 holds
        // loses them (the same digits in a string are exact).
        let long: Value = serde_json::from_str("0.300000000000000000001").unwrap();
        assert_eq!(decimal_of(&long), Ok(d("0.3")));
        assert_eq!(
            decimal_of(&json!("0.300000000000000000001")),
            Ok(d("0.300000000000000000001"))
        );
    }

    #[test]
    fn failing_records_do_not_stop_the_others() {
        let body = json!({"data": [
            {"s": "AAPL", "p": "1.5", "q": "2", "t": 10},
            {"s": "AAPL", "q": "2", "t": 11},
            {"s": "AAPL", "p": "abc", "q": "2", "t": 12},
            {"s": "AAPL", "p": "1", "q": "2", "t": 13, "side": "up"},
            {"s": "not a symbol!", "p": "1", "q": "2", "t": 14},
            {"s": "AAPL", "p": ["1"], "q": "2", "t": 15},
            {"s": "AAPL", "p": "2.5", "q": "3", "t": 16},
            {"s": "AAPL", "p": null, "q": "2", "t": 17},
            {"s": "AAPL", "p": "2", "t": 18},
        ]});
        let (ticks, errors) = mapping(TsUnit::S).extract(&body, &ctx());
        assert_eq!(
            ticks.iter().map(|t| t.price).collect::<Vec<_>>(),
            [d("1.5"), d("2.5")]
        );
        let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.index, e.field)).collect();
        assert_eq!(
            got,
            [
                (1, "price"),
                (2, "price"),
                (3, "side"),
                (4, "symbol"),
                (5, "price"),
                (7, "price"),
                (8, "size")
            ]
        );
        assert_eq!(errors[0].to_string(), "record 1: price: missing");
        assert_eq!(
            errors[1].to_string(),
            "record 2: price: invalid decimal \"abc\""
        );
    }

    #[test]
    fn optional_fields_and_fixed_symbol() {
        let m = FieldMapping {
            records: "$".into(),
            symbol: None,
            price: "$.last".into(),
            size: None,
            ts: None,
            ts_unit: TsUnit::Ms,
            trade_id: None,
            side: None,
        }
        .compile()
        .unwrap();
        let body = json!({"last": "3.25"});
        let (ticks, errors) = m.extract(&body, &ctx());
        assert_eq!(
            errors,
            [RecordError {
                index: 0,
                field: "symbol",
                message: "missing".into()
            }]
        );
        assert!(ticks.is_empty());
        let fixed = ExtractContext {
            symbol: Some(Symbol::parse("ETH-USD").unwrap()),
            ..ctx()
        };
        let (ticks, errors) = m.extract(&body, &fixed);
        assert!(errors.is_empty());
        assert_eq!(ticks[0].symbol.as_str(), "ETH-USD");
        assert_eq!((ticks[0].size, ticks[0].ts_event), (Decimal::ZERO, 42));

        // A path matching several values is an error, not a guess.
        let m = FieldMapping {
            price: "$.p[*]".into(),
            ..m.mapping().clone()
        }
        .compile()
        .unwrap();
        let (_, errors) = m.extract(&json!({"p": [1, 2]}), &fixed);
        assert_eq!(
            errors[0].message,
            "price path matched 2 values, expected one"
        );
        // Records matching nothing: no ticks, no errors.
        let (ticks, errors) = mapping(TsUnit::Ms).extract(&json!({"other": []}), &ctx());
        assert!(ticks.is_empty() && errors.is_empty());
    }

    #[test]
    fn bad_paths_name_the_field() {
        let mut m = FieldMapping {
            records: "$.data[*]".into(),
            symbol: None,
            price: "$.p".into(),
            size: None,
            ts: Some("$.t[".into()),
            ts_unit: TsUnit::Ms,
            trade_id: None,
            side: None,
        };
        let err = m.compile().unwrap_err();
        assert_eq!((err.field, err.path.as_str()), ("ts", "$.t["));
        assert!(
            err.to_string()
                .starts_with("mapping.ts: invalid JSONPath \"$.t[\": "),
            "{err}"
        );
        assert!(!err.message.is_empty());
        m.ts = None;
        m.records = "data".into();
        assert_eq!(m.compile().unwrap_err().field, "records");
    }

    #[test]
    fn json_shape() {
        let m: FieldMapping = serde_json::from_value(json!({
            "records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
            "ts": "$.t", "ts_unit": "rfc3339", "trade_id": "$.id", "side": "$.side"
        }))
        .unwrap();
        assert_eq!(m.ts_unit, TsUnit::Rfc3339);
        let m: FieldMapping =
            serde_json::from_value(json!({"records": "$", "price": "$.p"})).unwrap();
        assert_eq!(m.ts_unit, TsUnit::Ms);
        assert!(
            serde_json::from_value::<FieldMapping>(
                json!({"records": "$", "price": "$.p", "px": 1})
            )
            .is_err()
        );
    }

    #[test]
    fn bytes_that_are_not_json_fail_the_answer() {
        let m = mapping(TsUnit::Ms);
        assert!(m.extract_bytes(b"<html>", &ctx()).is_err());
        let (ticks, errors) = m
            .extract_bytes(br#"{"data":[{"s":"AAPL","p":"1","q":"1","t":5}]}"#, &ctx())
            .unwrap();
        assert_eq!(
            (ticks.len(), errors.len(), ticks[0].ts_event),
            (1, 0, 5_000_000)
        );
    }
}
