use crate::{Error, Result};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Arc;

/// Quote currencies recognized when splitting a venue's concatenated pair
/// (`BTCUSDT`) into canonical `BASE-QUOTE`. Longest first so `USDT` wins over `USD`.
const QUOTES: &[&str] = &[
    "FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USDP", "DAI", "USD", "EUR", "GBP", "JPY", "TRY",
    "BRL", "BTC", "ETH", "BNB",
];

/// A canonical instrument symbol: equities as the ticker (`AAPL`, `BRK.B`),
/// crypto pairs as `BASE-QUOTE` (`BTC-USDT`). Cheap to clone (shared string),
/// as it is copied into every tick.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// Validates a symbol as a client would type it: trimmed, upper-cased,
    /// `/` and `_` between base and quote read as `-`.
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 32 {
            return Err(Error::InvalidSymbol(raw.to_string()));
        }
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                'a'..='z' => out.push(c.to_ascii_uppercase()),
                'A'..='Z' | '0'..='9' | '.' | '-' | '=' | '^' => out.push(c),
                '/' => out.push('-'),
                _ => return Err(Error::InvalidSymbol(raw.to_string())),
            }
        }
        let first = out.as_bytes()[0];
        let last = out.as_bytes()[out.len() - 1];
        if first == b'-' || first == b'.' || last == b'-' || last == b'.' || out.contains("--") {
            return Err(Error::InvalidSymbol(raw.to_string()));
        }
        Ok(Symbol(out.into()))
    }

    /// Canonicalizes a crypto venue's spelling: `BTCUSDT`, `btc-usdt`,
    /// `BINANCE:BTCUSDT`, `BTC/USDT`, `BTC-USDT-SWAP` (OKX) all become
    /// `BTC-USDT`.
    pub fn from_crypto_venue(raw: &str) -> Result<Self> {
        let s = raw
            .rsplit(':')
            .next()
            .unwrap_or(raw)
            .trim()
            .to_ascii_uppercase();
        let s = s.replace(['/', '_'], "-");
        if let Some((base, rest)) = s.split_once('-') {
            // OKX derivatives carry a suffix (`-SWAP`, `-240628`): the pair is the first two parts.
            let quote = rest.split('-').next().unwrap_or(rest);
            return Symbol::parse(&format!("{base}-{quote}"));
        }
        for q in QUOTES {
            if let Some(base) = s.strip_suffix(q).filter(|b| !b.is_empty()) {
                return Symbol::parse(&format!("{base}-{q}"));
            }
        }
        Err(Error::InvalidSymbol(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `BASE-QUOTE` pairs.
    pub fn is_pair(&self) -> bool {
        self.0.contains('-')
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Symbol {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Symbol::parse(s)
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Symbol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Symbol::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Symbol {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some(r"^[A-Za-z0-9^=][A-Za-z0-9.^=/-]{0,31}$"))
            .examples([serde_json::json!("AAPL")])
            .description(Some("Canonical symbol: equity ticker or BASE-QUOTE pair"))
            .into()
    }
}
impl utoipa::ToSchema for Symbol {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_symbols() {
        assert_eq!(Symbol::parse(" aapl ").unwrap().as_str(), "AAPL");
        assert_eq!(Symbol::parse("BRK.B").unwrap().as_str(), "BRK.B");
        assert_eq!(Symbol::parse("^GSPC").unwrap().as_str(), "^GSPC");
        assert_eq!(Symbol::parse("btc/usdt").unwrap().as_str(), "BTC-USDT");
        for bad in [
            "",
            "A B",
            "AAPL;DROP",
            "-AAPL",
            "A--B",
            "ÄPPLE",
            &"X".repeat(33),
        ] {
            assert!(Symbol::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn venue_spellings() {
        for raw in [
            "BTCUSDT",
            "btcusdt",
            "BINANCE:BTCUSDT",
            "BTC-USDT",
            "BTC-USDT-SWAP",
            "BTC/USDT",
        ] {
            assert_eq!(
                Symbol::from_crypto_venue(raw).unwrap().as_str(),
                "BTC-USDT",
                "{raw}"
            );
        }
        assert_eq!(
            Symbol::from_crypto_venue("ETHBTC").unwrap().as_str(),
            "ETH-BTC"
        );
        assert_eq!(
            Symbol::from_crypto_venue("FDUSDUSDT").unwrap().as_str(),
            "FDUSD-USDT"
        );
        assert!(Symbol::from_crypto_venue("USDT").is_err());
    }
}

#[cfg(test)]
mod symbol_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any input: no panic; an accepted symbol is canonical (1-32 of the
        /// allowed characters, no edge separators) and parses to itself.
        #[test]
        fn parse_is_total_and_canonical(raw in prop_oneof![".{0,48}", "[A-Za-z0-9./_=^ -]{0,40}"]) {
            if let Ok(sym) = Symbol::parse(&raw) {
                let s = sym.as_str();
                prop_assert!(!s.is_empty() && s.len() <= 32);
                prop_assert!(s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b".-=^".contains(&b)));
                prop_assert!(!s.starts_with(['-', '.']) && !s.ends_with(['-', '.']));
                prop_assert_eq!(Symbol::parse(s).unwrap(), sym);
            }
        }

        #[test]
        fn venue_spellings_never_panic(raw in ".{0,48}") {
            let _ = Symbol::from_crypto_venue(&raw);
        }
    }
}
