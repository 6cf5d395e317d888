//! The compact binary layout of a tick envelope (`bus.codec = "binary"`).
//!
//! Ticks are nearly every message on the log, and in a scaled-out worker
//! every tick is encoded once and decoded by each consumer group that reads
//! it. As JSON that costs about 0.7 µs to write and 1.4 µs to read per tick
//! (`cargo bench -p marketd-engine --bench envelope`); this layout writes the
//! same fields without names or decimal text, so it is written and read in
//! about a sixth of that and takes about a quarter of the bytes. It is documented
//! field by field in docs/events.md, so readers in other languages can
//! decode it, and it carries exactly what the JSON form does: decimals keep
//! every digit (mantissa and scale), normalized as the JSON writer
//! normalizes them.
//!
//! Layout 1, integers little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | `0xB1`: the layout (never the first byte of a JSON text) |
//! | 2 | `schema_version` |
//! | 16 | `id` (the UUID's 16 bytes in RFC 9562 order) |
//! | 8 | `produced_at` (i64) |
//! | 1 | event kind: `1` tick (the only kind of layout 1) |
//! | str | `key` |
//! | str | `symbol` |
//! | str | `source` |
//! | 1 | tick kind: `0` trade, `1` quote, `2` last |
//! | dec | `price` |
//! | dec | `size` |
//! | 1 | present optional fields: bit 0 `bid`, 1 `ask`, 2 `trade_id`, 3 `sequence`, 4 `venue_symbol` |
//! | dec, dec, str, varint, str | those fields that are present, in that order |
//! | 8 | `ts_event` (i64) |
//! | 8 | `ts_received` (i64) |
//!
//! `str` is a varint byte length followed by that many bytes of UTF-8;
//! `varint` is unsigned LEB128 (at most 10 bytes); `dec` is the scale (one
//! byte, 0 to 28) followed by the mantissa as a zigzag varint (at most 96
//! bits): 189.42 is scale 2 and mantissa 18942. Nothing may follow the last
//! field.

use super::{Envelope, Event};
use crate::{Symbol, Tick, TickKind};
use rust_decimal::Decimal;
use std::sync::Arc;
use thiserror::Error;
use uuid::Uuid;

/// The first byte of a binary envelope: the layout described above.
pub const LAYOUT_1: u8 = 0xB1;

/// The event kind of a tick in layout 1.
const KIND_TICK: u8 = 1;

const HAS_BID: u8 = 1;
const HAS_ASK: u8 = 1 << 1;
const HAS_TRADE_ID: u8 = 1 << 2;
const HAS_SEQUENCE: u8 = 1 << 3;
const HAS_VENUE_SYMBOL: u8 = 1 << 4;
const KNOWN_FLAGS: u8 = HAS_BID | HAS_ASK | HAS_TRADE_ID | HAS_SEQUENCE | HAS_VENUE_SYMBOL;

/// Why bytes are not a binary envelope; `field` names where reading stopped.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BinaryError {
    #[error("binary envelope ends inside `{0}`")]
    Truncated(&'static str),
    #[error("binary envelope: invalid `{field}`: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("binary envelope has {0} bytes after its last field")]
    TrailingBytes(usize),
    #[error("binary envelope of layout {0:#04x}: this version reads layout 0xb1")]
    UnknownLayout(u8),
}

fn invalid(field: &'static str, reason: impl Into<String>) -> BinaryError {
    BinaryError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Writes `env` in layout 1 when its event is a tick (returns `true`);
/// other events have no binary layout and are left to JSON (`false`,
/// nothing written).
pub(super) fn encode(env: &Envelope, out: &mut Vec<u8>) -> bool {
    let Event::Tick(t) = &env.event else {
        return false;
    };
    // A typical tick envelope is under 100 bytes.
    out.reserve(128);
    out.push(LAYOUT_1);
    out.extend_from_slice(&env.schema_version.to_le_bytes());
    out.extend_from_slice(env.id.as_bytes());
    out.extend_from_slice(&env.produced_at.to_le_bytes());
    out.push(KIND_TICK);
    put_str(out, &env.key);
    put_str(out, t.symbol.as_str());
    put_str(out, &t.source);
    out.push(match t.kind {
        TickKind::Trade => 0,
        TickKind::Quote => 1,
        TickKind::Last => 2,
    });
    put_decimal(out, t.price);
    put_decimal(out, t.size);
    let bit = |present: bool, bit: u8| if present { bit } else { 0 };
    out.push(
        bit(t.bid.is_some(), HAS_BID)
            | bit(t.ask.is_some(), HAS_ASK)
            | bit(t.trade_id.is_some(), HAS_TRADE_ID)
            | bit(t.sequence.is_some(), HAS_SEQUENCE)
            | bit(t.venue_symbol.is_some(), HAS_VENUE_SYMBOL),
    );
    if let Some(bid) = t.bid {
        put_decimal(out, bid);
    }
    if let Some(ask) = t.ask {
        put_decimal(out, ask);
    }
    if let Some(id) = &t.trade_id {
        put_str(out, id);
    }
    if let Some(seq) = t.sequence {
        put_varint(out, seq);
    }
    if let Some(venue) = &t.venue_symbol {
        put_str(out, venue);
    }
    out.extend_from_slice(&t.ts_event.to_le_bytes());
    out.extend_from_slice(&t.ts_received.to_le_bytes());
    true
}

/// Reads a whole binary envelope (its first byte is [`LAYOUT_1`]).
pub(super) fn decode(bytes: &[u8]) -> Result<Envelope, BinaryError> {
    let mut r = Reader(bytes);
    match r.byte("layout")? {
        LAYOUT_1 => {}
        other => return Err(BinaryError::UnknownLayout(other)),
    }
    let schema_version = u16::from_le_bytes(r.array("schema_version")?);
    let id = Uuid::from_bytes(r.array("id")?);
    let produced_at = i64::from_le_bytes(r.array("produced_at")?);
    match r.byte("kind")? {
        KIND_TICK => {}
        other => return Err(invalid("kind", format!("unknown event kind {other}"))),
    }
    let key = r.string("key")?;
    let symbol = Symbol::parse(r.str("symbol")?).map_err(|e| invalid("symbol", e.to_string()))?;
    let source: Arc<str> = Arc::from(r.str("source")?);
    let kind = match r.byte("tick kind")? {
        0 => TickKind::Trade,
        1 => TickKind::Quote,
        2 => TickKind::Last,
        other => return Err(invalid("tick kind", format!("unknown tick kind {other}"))),
    };
    let price = r.decimal("price")?;
    let size = r.decimal("size")?;
    let flags = r.byte("optional fields")?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(invalid(
            "optional fields",
            format!("unknown bits {:#04x}", flags & !KNOWN_FLAGS),
        ));
    }
    let has = |bit: u8| flags & bit != 0;
    let bid = has(HAS_BID).then(|| r.decimal("bid")).transpose()?;
    let ask = has(HAS_ASK).then(|| r.decimal("ask")).transpose()?;
    let trade_id = has(HAS_TRADE_ID)
        .then(|| r.string("trade_id"))
        .transpose()?;
    let sequence = has(HAS_SEQUENCE)
        .then(|| r.varint("sequence"))
        .transpose()?;
    let venue_symbol = has(HAS_VENUE_SYMBOL)
        .then(|| r.string("venue_symbol"))
        .transpose()?;
    let ts_event = i64::from_le_bytes(r.array("ts_event")?);
    let ts_received = i64::from_le_bytes(r.array("ts_received")?);
    if !r.0.is_empty() {
        return Err(BinaryError::TrailingBytes(r.0.len()));
    }
    Ok(Envelope {
        schema_version,
        id,
        key,
        produced_at,
        event: Event::Tick(Tick {
            symbol,
            source,
            kind,
            price,
            size,
            bid,
            ask,
            trade_id,
            sequence,
            venue_symbol,
            ts_event,
            ts_received,
        }),
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The normalized scale, then the mantissa as a zigzag varint.
fn put_decimal(out: &mut Vec<u8>, d: Decimal) {
    let d = d.normalize();
    out.push(d.scale() as u8);
    let m = d.mantissa();
    let mut zigzag = ((m << 1) ^ (m >> 127)) as u128;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// The unread rest of an envelope.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], BinaryError> {
        if self.0.len() < n {
            return Err(BinaryError::Truncated(field));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8, BinaryError> {
        Ok(self.take(1, field)?[0])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BinaryError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, BinaryError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte(field)?;
            if i == 9 && b > 1 {
                return Err(invalid(field, "varint longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(invalid(field, "varint longer than 10 bytes"))
    }

    fn str(&mut self, field: &'static str) -> Result<&'a str, BinaryError> {
        let len = self.varint(field)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.0.len())
            .ok_or(BinaryError::Truncated(field))?;
        std::str::from_utf8(self.take(len, field)?).map_err(|e| invalid(field, e.to_string()))
    }

    fn string(&mut self, field: &'static str) -> Result<String, BinaryError> {
        self.str(field).map(str::to_owned)
    }

    fn decimal(&mut self, field: &'static str) -> Result<Decimal, BinaryError> {
        let scale = u32::from(self.byte(field)?);
        // 97 bits (a 96-bit magnitude and the sign) take at most 14 bytes.
        let mut zigzag: u128 = 0;
        for i in 0..14 {
            let b = self.byte(field)?;
            zigzag |= u128::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if zigzag >> 97 != 0 {
                    return Err(invalid(field, "mantissa wider than 96 bits"));
                }
                let m = ((zigzag >> 1) as i128) ^ -((zigzag & 1) as i128);
                return Decimal::try_from_i128_with_scale(m, scale)
                    .map_err(|e| invalid(field, e.to_string()));
            }
        }
        Err(invalid(field, "mantissa wider than 96 bits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Codec, CodecError};
    use crate::{Bar, Interval};
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000_000_000;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A tick with every optional field set, decimals at the edges of
    /// what `Decimal` holds.
    fn full_tick() -> Envelope {
        let mut t = Tick::new(
            Symbol::parse("BTC-USDT").unwrap(),
            "okx",
            TickKind::Quote,
            dec("97123.123456789012345678"),
            dec("0.000000000000000000000000001"),
            T0,
            T0 + 7,
        );
        t.bid = Some(dec("79228162514264337593543950335"));
        t.ask = Some(dec("-7.9228162514264337593543950335"));
        t.trade_id = Some("trade-é-42".into());
        t.sequence = Some(u64::MAX);
        t.venue_symbol = Some("BTCUSDT".into());
        Envelope::new(Event::Tick(t))
    }

    fn plain_tick() -> Envelope {
        let t = Tick::new(
            Symbol::parse("AAPL").unwrap(),
            "simulated",
            TickKind::Last,
            dec("189.42"),
            dec("12"),
            T0,
            T0 + 100,
        );
        Envelope::new(Event::Tick(t))
    }

    fn binary(env: &Envelope) -> Vec<u8> {
        let mut out = Vec::new();
        env.encode(Codec::Binary, &mut out).unwrap();
        out
    }

    /// What a JSON round trip makes of `env`: the binary codec must agree.
    fn via_json(env: &Envelope) -> Envelope {
        let mut out = Vec::new();
        env.encode(Codec::Json, &mut out).unwrap();
        Envelope::decode(&out).unwrap()
    }

    #[test]
    fn ticks_round_trip_exactly_and_as_json_does() {
        for env in [full_tick(), plain_tick()] {
            let bytes = binary(&env);
            assert_eq!(bytes[0], LAYOUT_1);
            let back = Envelope::decode(&bytes).unwrap();
            assert_eq!(back, env);
            assert_eq!(back, via_json(&env));
        }
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let env = plain_tick();
        let bytes = binary(&env);
        let mut expected = vec![0xB1, 1, 0];
        expected.extend_from_slice(env.id.as_bytes());
        expected.extend_from_slice(&env.produced_at.to_le_bytes());
        expected.push(1); // tick
        expected.extend_from_slice(b"\x04AAPL\x04AAPL\x09simulated");
        expected.push(2); // last
        // 189.42: scale 2, mantissa 18942, zigzag 37884 = 0xFC 0xA7 0x02
        expected.extend_from_slice(&[2, 0xFC, 0xA7, 0x02]);
        // 12: scale 0, zigzag 24
        expected.extend_from_slice(&[0, 24]);
        expected.push(0); // no optional field
        expected.extend_from_slice(&T0.to_le_bytes());
        expected.extend_from_slice(&(T0 + 100).to_le_bytes());
        assert_eq!(bytes, expected);
        assert!(bytes.len() < 100, "{} bytes", bytes.len());
    }

    /// Bytes written by fuzz/seed-corpora's encoder, a Python one written
    /// from docs/events.md alone, read field for field.
    #[test]
    fn reads_what_an_encoder_written_from_the_docs_writes() {
        let hex = "b101000190b8f000007000800000000000000000002a36fe9c971701084254432d55534454\
                   084254432d55534454036f6b7801129ccde7ddcde59d999cc4a40112021f01bec77601bfc776\
                   023432070d4254432d555344542d5357415000002a36fe9c971764002a36fe9c9717";
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let env = Envelope::decode(&bytes).unwrap();
        assert_eq!(env.schema_version, 1);
        assert_eq!(env.id.to_string(), "0190b8f0-0000-7000-8000-000000000000");
        assert_eq!(env.produced_at, T0);
        assert_eq!(env.key, "BTC-USDT");
        let Event::Tick(t) = env.event else {
            panic!("not a tick")
        };
        assert_eq!(
            (t.symbol.as_str(), &*t.source, t.kind),
            ("BTC-USDT", "okx", TickKind::Quote)
        );
        assert_eq!(t.price.to_string(), "97123.123456789012345678");
        assert_eq!(t.size.to_string(), "0.000000000000000001");
        assert_eq!(t.bid, Some(dec("97123.1")));
        assert_eq!(t.ask, Some(dec("-97123.2")));
        assert_eq!(t.trade_id.as_deref(), Some("42"));
        assert_eq!(t.sequence, Some(7));
        assert_eq!(t.venue_symbol.as_deref(), Some("BTC-USDT-SWAP"));
        assert_eq!((t.ts_event, t.ts_received), (T0, T0 + 100));
    }

    #[test]
    fn decimals_are_normalized_as_the_json_writer_does() {
        let mut env = plain_tick();
        let Event::Tick(t) = &mut env.event else {
            unreachable!()
        };
        t.price = dec("1.5000");
        let back = Envelope::decode(&binary(&env)).unwrap();
        let Event::Tick(b) = &back.event else {
            unreachable!()
        };
        assert_eq!(b.price.to_string(), "1.5");
        assert_eq!(back, via_json(&env));
    }

    #[test]
    fn other_events_stay_json_under_the_binary_codec() {
        let Event::Tick(t) = plain_tick().event else {
            unreachable!()
        };
        let bar = Bar::open_with(&t, Interval::M1);
        let env = Envelope::new(Event::Bar(bar));
        let bytes = binary(&env);
        assert_eq!(bytes[0], b'{');
        assert_eq!(Envelope::decode(&bytes).unwrap(), env);
    }

    #[test]
    fn every_truncation_is_refused_with_the_field_it_stopped_in() {
        let bytes = binary(&full_tick());
        for end in 1..bytes.len() {
            match Envelope::decode(&bytes[..end]) {
                Err(CodecError::Binary(BinaryError::Truncated(_))) => {}
                other => panic!("{end} of {} bytes: {other:?}", bytes.len()),
            }
        }
        let err = Envelope::decode(&bytes[..20]).unwrap_err().to_string();
        assert_eq!(err, "binary envelope ends inside `produced_at`");
    }

    #[test]
    fn what_is_not_a_binary_tick_is_refused() {
        let good = binary(&plain_tick());
        let refused = |bytes: Vec<u8>| Envelope::decode(&bytes).unwrap_err().to_string();
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            refused(trailing),
            "binary envelope has 1 bytes after its last field"
        );
        // Offsets in `plain_tick`'s layout: kind at 27, key 28..33,
        // symbol 33..38, source 38..48, tick kind 48, price 49..53,
        // size 53..55, flags 55.
        let patched = |at: usize, b: u8| {
            let mut v = good.clone();
            v[at] = b;
            v
        };
        assert!(refused(patched(27, 2)).contains("unknown event kind 2"));
        assert!(refused(patched(48, 3)).contains("unknown tick kind 3"));
        assert!(refused(patched(55, 0x20)).contains("unknown bits 0x20"));
        assert!(refused(patched(34, b'a' ^ 0x80)).contains("`symbol`"));
        assert!(refused(patched(34, b'%')).contains("invalid symbol"));
        assert!(refused(patched(49, 29)).contains("`price`"));
        // A mantissa of 97 bits and more.
        let mut wide = good[..50].to_vec();
        wide.extend_from_slice(&[0xFF; 13]);
        wide.push(0x7F);
        assert!(refused(wide).contains("mantissa wider than 96 bits"));
        assert_eq!(
            refused(b"\xB2".to_vec()),
            "binary envelope of layout 0xb2: this version reads layout 0xb1"
        );
        assert!(refused(b"not json".to_vec()).contains("invalid JSON envelope"));
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any tick comes back from the binary codec as from JSON.
        #[test]
        fn any_tick_round_trips(
            price in any_decimal(),
            size in any_decimal(),
            bid in proptest::option::of(any_decimal()),
            ask in proptest::option::of(any_decimal()),
            trade_id in proptest::option::of("\\PC{0,40}"),
            sequence in proptest::option::of(any::<u64>()),
            venue in proptest::option::of("[A-Z:]{1,20}"),
            kind in 0u8..3,
            ts in any::<i64>(),
        ) {
            let kind = [TickKind::Trade, TickKind::Quote, TickKind::Last][kind as usize];
            let mut t = Tick::new(Symbol::parse("ETH-USDT").unwrap(), "binance", kind, price, size, ts, ts.wrapping_add(1));
            t.bid = bid;
            t.ask = ask;
            t.trade_id = trade_id;
            t.sequence = sequence;
            t.venue_symbol = venue;
            let env = Envelope::new(Event::Tick(t));
            let back = Envelope::decode(&binary(&env)).unwrap();
            prop_assert_eq!(&back, &env);
            prop_assert_eq!(back, via_json(&env));
        }

        /// Arbitrary bytes after the layout byte are refused or read, never a panic.
        #[test]
        fn garbage_never_panics(rest in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![LAYOUT_1];
            bytes.extend(rest);
            let _ = Envelope::decode(&bytes);
        }
    }
}
