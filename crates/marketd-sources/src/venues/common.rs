//! Pieces every venue's decoder shares: exact decimals from text, millisecond
//! timestamps to nanoseconds, and serde helpers for fields whose JSON type
//! depends on the message kind (decoded in one pass, without `Value`).

use super::{DecodeError, Frame, Limit, VenueMessage};
use rust_decimal::Decimal;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

const NANOS_PER_MILLI: i64 = 1_000_000;

/// The first characters of a frame, for error messages.
pub(super) fn snippet(frame: &str) -> String {
    const MAX: usize = 80;
    match frame.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &frame[..i]),
        None => frame.to_string(),
    }
}

pub(super) fn json_error(venue: &'static str, frame: &str, e: serde_json::Error) -> DecodeError {
    DecodeError::Json {
        venue,
        source: e,
        snippet: snippet(frame),
    }
}

/// A frame that parses but is none of the venue's known shapes.
pub(super) fn unrecognized(venue: &'static str, frame: &str) -> DecodeError {
    DecodeError::Unrecognized {
        venue,
        snippet: snippet(frame),
    }
}

/// An error message from the venue, as a [`Frame::Limit`] when it names a
/// limit and as a [`Frame::Error`] otherwise.
pub(super) fn error_or_limit(limit: Option<Limit>, error: VenueMessage) -> Frame {
    match limit {
        Some(limit) => Frame::Limit { limit, error },
        None => Frame::Error(error),
    }
}

/// An exact decimal from the venue's text. `from_str_exact` refuses values
/// that would lose digits instead of rounding them.
pub(super) fn decimal(
    venue: &'static str,
    field: &'static str,
    text: &str,
) -> Result<Decimal, DecodeError> {
    Decimal::from_str_exact(text).map_err(|_| DecodeError::BadField {
        venue,
        field,
        value: text.to_string(),
        expected: "a decimal number",
    })
}

/// A JSON number's own text (`7296.89`, `1e-5`) as an exact decimal; also
/// accepts a number sent as a string.
pub(super) fn decimal_from_number(
    venue: &'static str,
    field: &'static str,
    raw: &str,
) -> Result<Decimal, DecodeError> {
    let text = raw.trim().trim_matches('"');
    Decimal::from_str_exact(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|_| DecodeError::BadField {
            venue,
            field,
            value: raw.to_string(),
            expected: "a decimal number",
        })
}

/// Milliseconds since the epoch to nanoseconds, refusing values that would
/// overflow (untrusted input must not panic in debug builds or wrap in release).
pub(super) fn millis_to_nanos(
    venue: &'static str,
    field: &'static str,
    ms: i64,
) -> Result<i64, DecodeError> {
    ms.checked_mul(NANOS_PER_MILLI)
        .ok_or_else(|| DecodeError::BadField {
            venue,
            field,
            value: ms.to_string(),
            expected: "a millisecond timestamp",
        })
}

/// Milliseconds as decimal text (OKX sends `"ts":"1652459199958"`).
pub(super) fn millis_text_to_nanos(
    venue: &'static str,
    field: &'static str,
    text: &str,
) -> Result<i64, DecodeError> {
    let ms: i64 = text.parse().map_err(|_| DecodeError::BadField {
        venue,
        field,
        value: text.to_string(),
        expected: "a millisecond timestamp",
    })?;
    millis_to_nanos(venue, field, ms)
}

/// A trade id as text without the formatting machinery (hot path).
pub(super) fn id_text(mut n: u64) -> String {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[i..].iter().map(|&b| char::from(b)).collect()
}

pub(super) fn require<T>(
    venue: &'static str,
    kind: &'static str,
    field: &'static str,
    v: Option<T>,
) -> Result<T, DecodeError> {
    // Not `ok_or(error)`: building and dropping an unused error per field
    // showed up in the profile of the hot path.
    match v {
        Some(v) => Ok(v),
        None => Err(DecodeError::MissingField { venue, kind, field }),
    }
}

/// A field whose JSON type depends on the message: Binance's `a` is the ask
/// price (string) in `bookTicker`, the aggregate trade id (number) in
/// `aggTrade`, the seller order id in the legacy `trade`, and an array of
/// levels in `depthUpdate`. Anything but a borrowed string or an unsigned
/// integer is skipped as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Loose<'a> {
    Str(&'a str),
    Int(u64),
    /// A negative integer (Binance error codes such as `-1003`).
    Neg(i64),
    Other,
}

impl<'a> Loose<'a> {
    pub(super) fn as_str(self) -> Option<&'a str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(super) fn as_u64(self) -> Option<u64> {
        match self {
            Loose::Int(n) => Some(n),
            _ => None,
        }
    }

    /// A code as text, whether sent as `"60012"` or `2`.
    pub(super) fn code(self) -> Option<String> {
        match self {
            Loose::Str(s) => Some(s.to_string()),
            Loose::Int(n) => Some(n.to_string()),
            Loose::Neg(n) => Some(n.to_string()),
            Loose::Other => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Loose<'a>, E> {
                Ok(Loose::Str(v))
            }
            // A string with escapes cannot be borrowed; no price or id has any.
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loose<'a>, E> {
                Ok(Loose::Int(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loose<'a>, E> {
                Ok(Loose::Neg(v))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Loose<'a>, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// An array element that is `T` when it is a JSON object and skipped
/// otherwise (OKX `candle*` pushes carry arrays of arrays in `data`; they
/// must be ignored, not fail the frame).
#[derive(Debug)]
pub(super) struct Tolerant<T>(pub(super) Option<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tolerant<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Tolerant<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Tolerant<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| Tolerant(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tolerant<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Tolerant(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Tolerant<T>, E> {
                Ok(Tolerant(None))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A JSON array of objects `T` (non-objects skipped, see [`Tolerant`]),
/// with the first element stored inline: pushes almost always carry one
/// entry, and this keeps the hot path free of a heap allocation.
#[derive(Debug)]
#[cfg_attr(test, derive(PartialEq))]
pub(super) struct Items<T> {
    first: Option<T>,
    rest: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Items::new()
    }
}

impl<T> Items<T> {
    pub(super) fn new() -> Self {
        Items {
            first: None,
            rest: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, item: T) {
        if self.first.is_none() {
            self.first = Some(item);
        } else {
            self.rest.push(item);
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.first.iter().chain(self.rest.iter())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Items<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Items<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<T>, A::Error> {
                let mut items = Items::new();
                while let Some(Tolerant(item)) = seq.next_element::<Tolerant<T>>()? {
                    let Some(item) = item else { continue };
                    items.push(item);
                }
                Ok(items)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

/// The raw JSON text of a field that is present, `null` included
/// (`Option<&RawValue>` would read `null` as absent): Binance's
/// `{"result":null,"id":1}` is an answer because `result` is there.
pub(super) fn raw_present<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<&'a serde_json::value::RawValue>, D::Error> {
    <&'a serde_json::value::RawValue>::deserialize(d).map(Some)
}

/// Which limit an error's wording names, if any. Venues document few codes
/// for these, so the text decides (codes are matched by each venue first).
pub(super) fn limit_in_text(msg: &str) -> Option<Limit> {
    let m = msg.to_ascii_lowercase();
    if m.contains("too many connection")
        || m.contains("connection limit")
        || m.contains("connections limit")
    {
        Some(Limit::Connections)
    } else if m.contains("too many request")
        || m.contains("too frequent")
        || m.contains("rate limit")
        || m.contains("too many messages")
    {
        Some(Limit::Requests)
    } else if m.contains("too many symbols")
        || m.contains("too many streams")
        || m.contains("too many subscriptions")
        || (m.contains("subscription") && m.contains("exceed"))
    {
        Some(Limit::Subscriptions)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_and_errors_name_the_field() {
        assert_eq!(
            decimal("x", "p", "0.35280000").unwrap().to_string(),
            "0.35280000"
        );
        let e = decimal("x", "p", "12a").unwrap_err().to_string();
        assert!(e.contains("`p`") && e.contains("12a"), "{e}");
        assert_eq!(
            decimal_from_number("x", "v", "1e-5").unwrap(),
            Decimal::new(1, 5)
        );
        assert_eq!(
            decimal_from_number("x", "p", "7296.89")
                .unwrap()
                .to_string(),
            "7296.89"
        );
        assert!(decimal("x", "p", "1.00000000000000000000000000001").is_err());
    }

    #[test]
    fn ids_as_text() {
        for n in [0, 7, 10, 12_345, u64::MAX] {
            assert_eq!(id_text(n), n.to_string());
        }
    }

    #[test]
    fn timestamps_refuse_overflow() {
        assert_eq!(
            millis_to_nanos("x", "T", 1_672_515_782_136).unwrap(),
            1_672_515_782_136_000_000
        );
        assert!(millis_to_nanos("x", "T", i64::MAX / 10).is_err());
        assert!(millis_text_to_nanos("x", "ts", "12x").is_err());
    }

    #[test]
    fn snippets_cut_on_char_boundaries() {
        let s = "é".repeat(100);
        assert_eq!(snippet(&s).chars().count(), 81);
        assert_eq!(snippet("ab"), "ab");
    }
}
