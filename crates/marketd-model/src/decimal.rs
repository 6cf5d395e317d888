//! Exact decimals on the wire as JSON numbers.
//!
//! Prices are `rust_decimal::Decimal` end to end. On JSON they are written as
//! numbers carrying the exact decimal digits (never through `f64`), and read
//! from either numbers or strings, since venues use both (Finnhub sends
//! numbers, Binance and OKX strings).

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
        d.deserialize_any(DecimalVisitor)
    }
}

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
    }
}
