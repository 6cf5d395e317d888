//! Exact decimals on the wire as JSON numbers.
//!
//! Prices are `rust_decimal::Decimal` end to end. On JSON they are written as
//! numbers carrying the exact decimal digits (never through `f64`), and read
//! from either numbers or strings, since venues use both (Finnhub sends
//! numbers, Binance and OKX strings).
//!
//! Reading a JSON number exactly needs its text, not serde's `f64`: the
//! deserializer asks serde_json for the raw value (the protocol of
//! `serde_json::value::RawValue`), and falls back to the plain value with
//! every other deserializer (query strings, configuration, buffered content),
//! where `f64`'s shortest round-trip text is used.

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// `#[serde(with = "decimal_number")]` for `Decimal` fields.
pub mod decimal_number {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
        let text = d.normalize().to_string();
        match serde_json::value::RawValue::from_string(text.clone()) {
            Ok(raw) => raw.serialize(s),
            Err(_) => s.serialize_str(&text),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        d.deserialize_newtype_struct(RAW_VALUE_TOKEN, DecimalVisitor)
    }
}

/// The newtype name by which serde_json hands out a value's raw text (as a
/// one-entry map whose value is the text); other deserializers see a plain
/// newtype. A test below fails if serde_json ever changes it.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// `#[serde(with = "option_decimal_number")]` for `Option<Decimal>` fields.
pub mod option_decimal_number {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => decimal_number::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        d.deserialize_option(OptionVisitor)
    }

    struct OptionVisitor;
    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a decimal number, a decimal string or null")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            decimal_number::deserialize(d).map(Some)
        }
    }
}

struct DecimalVisitor;

impl<'de> Visitor<'de> for DecimalVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal number or a decimal string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Decimal, E> {
        Decimal::from_str(v.trim())
            .or_else(|_| Decimal::from_scientific(v.trim()))
            .map_err(|_| E::custom(format!("invalid decimal {v:?}")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Decimal, E> {
        if !v.is_finite() {
            return Err(E::custom("decimal must be finite"));
        }
        // `Display` of f64 is the shortest text that round-trips, so 261.74
        // becomes exactly 261.74 rather than its binary approximation.
        self.visit_str(&v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Decimal, D::Error> {
        d.deserialize_any(DecimalVisitor)
    }
    /// serde_json's raw value: `{TOKEN: "<the JSON text>"}`.
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Decimal, A::Error> {
        let Some(_key) = map.next_key::<de::IgnoredAny>()? else {
            return Err(de::Error::custom(
                "expected a decimal, found an empty object",
            ));
        };
        let raw: std::borrow::Cow<'de, str> = map.next_value()?;
        let text = raw.trim();
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(quoted) => self.visit_str(quoted),
            None if text.starts_with(['{', '[', 'n', 't', 'f']) => Err(de::Error::custom(format!(
                "expected a decimal number or string, found {text}"
            ))),
            None => self.visit_str(text),
        }
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct P {
        #[serde(with = "decimal_number")]
        p: Decimal,
        #[serde(with = "option_decimal_number", default)]
        q: Option<Decimal>,
    }

    #[test]
    fn writes_exact_numbers_and_reads_both_spellings() {
        let p = P {
            p: Decimal::from_str("261.740").unwrap(),
            q: None,
        };
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"p":261.74,"q":null}"#
        );
        let a: P = serde_json::from_str(r#"{"p":261.74}"#).unwrap();
        let b: P = serde_json::from_str(r#"{"p":"261.74","q":"0.1"}"#).unwrap();
        assert_eq!(a.p, Decimal::from_str("261.74").unwrap());
        assert_eq!(b.p, a.p);
        assert_eq!(b.q, Some(Decimal::from_str("0.1").unwrap()));
        assert!(serde_json::from_str::<P>(r#"{"p":"abc"}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"p":{"x":1}}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"p":null}"#).is_err());
    }

    #[test]
    fn json_numbers_keep_every_digit() {
        for text in [
            "187.123456789012345678",
            "0.000000000000000001",
            "79228162514264337593543950335",
            "-12.5e3",
        ] {
            let p: P = serde_json::from_str(&format!(r#"{{"p":{text},"q":{text}}}"#)).unwrap();
            let want = Decimal::from_str(text)
                .or_else(|_| Decimal::from_scientific(text))
                .unwrap();
            assert_eq!(p.p, want, "{text}");
            assert_eq!(p.q, Some(want), "{text}");
            let again: P = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
            assert_eq!(again, p);
        }
        // From bytes and from a reader too.
        let p: P = serde_json::from_slice(br#"{"p":1.000000000000000000001}"#).unwrap();
        assert_eq!(p.p, Decimal::from_str("1.000000000000000000001").unwrap());
    }
}
