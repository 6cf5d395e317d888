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

/// Longest symbol accepted, in characters, surrounding whitespace included.
pub const SYMBOL_MAX_CHARS: usize = 32;

/// The characters [`str::trim`] removes (Unicode `White_Space`), as the
/// body of a regular-expression class (a macro, for `concat!`).
#[macro_export]
macro_rules! white_space_class {
    () => {
        r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// What [`Symbol::parse`] accepts, as a regular expression both ECMA-262
/// (JSON Schema) and the `regex` crate read alike (with
/// [`SYMBOL_MAX_CHARS`] as the schema's `maxLength`): optional whitespace
/// around letters, digits, `=`, `^` and `.`, with `-`, `/` or `_` (read as
/// `-`) between two of them, never two in a row, never first or last, and
/// `.` neither first nor last.
pub const SYMBOL_PATTERN: &str = concat!(
    "^[",
    white_space_class!(),
    "]*[A-Za-z0-9=^](?:(?:[-/_]?[A-Za-z0-9=^.])*[-/_]?[A-Za-z0-9=^])?[",
    white_space_class!(),
    "]*$"
);

/// A canonical instrument symbol: equities as the ticker (`AAPL`, `BRK.B`),
/// crypto pairs as `BASE-QUOTE` (`BTC-USDT`). Cheap to clone (shared string),
/// as it is copied into every tick.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(Arc<str>);

impl Symbol {
    /// Validates a symbol as a client would type it: at most
    /// [`SYMBOL_MAX_CHARS`] characters, trimmed, upper-cased, `/` and `_`
    /// between base and quote read as `-` ([`SYMBOL_PATTERN`] says the
    /// same).
    pub fn parse(raw: &str) -> Result<Self> {
        let s = raw.trim();
        if s.is_empty() || raw.chars().count() > SYMBOL_MAX_CHARS {
            return Err(Error::InvalidSymbol(raw.to_string()));
        }
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match c {
                'a'..='z' => out.push(c.to_ascii_uppercase()),
                'A'..='Z' | '0'..='9' | '.' | '-' | '=' | '^' => out.push(c),
                '/' | '_' => out.push('-'),
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
            .pattern(Some(SYMBOL_PATTERN))
            .min_length(Some(1))
            .max_length(Some(SYMBOL_MAX_CHARS))
            .examples([serde_json::json!("AAPL")])
            .description(Some(
                "Symbol: equity ticker or BASE-QUOTE pair (case-insensitive; `/` and `_` read as `-`; surrounding whitespace ignored)",
            ))
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
        assert_eq!(Symbol::parse("eth_usdt").unwrap().as_str(), "ETH-USDT");
        assert_eq!(Symbol::parse("\u{3000}A.B\t").unwrap().as_str(), "A.B");
        for bad in [
            "",
            "A B",
            "AAPL;DROP",
            "-AAPL",
            "A--B",
            "ÄPPLE",
            "A_-B",
            "_A",
            "A.",
            &"X".repeat(33),
            // 32 characters with the whitespace: the limit counts it.
            &format!(" {}", "X".repeat(32)),
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

    /// What the OpenAPI document says of a symbol: [`SYMBOL_PATTERN`] and
    /// at most [`SYMBOL_MAX_CHARS`] characters.
    fn schema_accepts(s: &str) -> bool {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        RE.get_or_init(|| regex::Regex::new(SYMBOL_PATTERN).expect("the pattern compiles"))
            .is_match(s)
            && s.chars().count() <= SYMBOL_MAX_CHARS
    }

    #[test]
    fn the_schema_pattern_and_the_parser_agree_on_examples() {
        let valid = [
            "AAPL",
            "aapl",
            " aapl ",
            "BRK.B",
            "^GSPC",
            "ES=F",
            "BTC-USDT",
            "btc/usdt",
            "eth_usdt",
            "A",
            "9",
            "A..B",
            "A.-.B",
            "A-.B",
            "\u{2003}X\u{3000}",
            "\tX\n",
            "X\u{85}",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
        ];
        let invalid = [
            "",
            " ",
            "\u{3000}",
            "-A",
            "A-",
            ".A",
            "A.",
            "/A",
            "A_",
            "A--B",
            "A/_B",
            "A B",
            "A\u{feff}",
            "\u{feff}A",
            "ÄPPLE",
            "A;B",
            "A\u{0}",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
            " ABCDEFGHIJKLMNOPQRSTUVWXYZ012345",
        ];
        for s in valid {
            assert!(Symbol::parse(s).is_ok(), "{s:?} refused by the parser");
            assert!(schema_accepts(s), "{s:?} refused by the pattern");
        }
        for s in invalid {
            assert!(Symbol::parse(s).is_err(), "{s:?} accepted by the parser");
            assert!(!schema_accepts(s), "{s:?} accepted by the pattern");
        }
    }

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

        /// The pattern and the parser accept the same strings.
        #[test]
        fn the_schema_pattern_and_the_parser_agree(raw in prop_oneof![
            ".{0,40}",
            "[A-Za-z0-9./_=^ \t\u{3000}\u{85}\u{feff}-]{0,36}",
            "[ \t]{0,2}[A-Z][A-Z0-9./_-]{0,30}[A-Z0-9.]?[ \t]{0,2}",
        ]) {
            prop_assert_eq!(Symbol::parse(&raw).is_ok(), schema_accepts(&raw), "{:?}", raw);
        }

        #[test]
        fn venue_spellings_never_panic(raw in ".{0,48}") {
            let _ = Symbol::from_crypto_venue(&raw);
        }
    }
}
