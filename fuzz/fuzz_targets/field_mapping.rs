//! The generic JSONPath field mapping of REST connectors: a mapping
//! definition (JSON, first line) compiled and applied to an upstream answer
//! (the rest). Fixed mappings are applied to the answer as well, so the
//! body alone is fuzzed even when the first line is not a valid mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_sources::connectors::mapping::{ExtractContext, FieldMapping, TsUnit};
use std::sync::Arc;

fn fixed() -> Vec<FieldMapping> {
    let m = |records: &str,
             symbol: Option<&str>,
             price: &str,
             size: Option<&str>,
             ts: Option<&str>,
             unit| FieldMapping {
        records: records.into(),
        symbol: symbol.map(Into::into),
        price: price.into(),
        size: size.map(Into::into),
        ts: ts.map(Into::into),
        ts_unit: unit,
        trade_id: Some("$.id".into()),
        side: Some("$.side".into()),
    };
    vec![
        m(
            "$[*]",
            Some("$.s"),
            "$.p",
            Some("$.q"),
            Some("$.T"),
            TsUnit::Ms,
        ),
        m(
            "$.data[*]",
            Some("$.instId"),
            "$.px",
            Some("$.sz"),
            Some("$.ts"),
            TsUnit::Ms,
        ),
        m(
            "$",
            Some("$.symbol"),
            "$.price",
            None,
            Some("$.time"),
            TsUnit::Rfc3339,
        ),
        m(
            "$..trades[*]",
            None,
            "$.price",
            Some("$.size"),
            Some("$.ts"),
            TsUnit::Ns,
        ),
        m(
            "$.result[?@.p > 0]",
            Some("$.s"),
            "$.p",
            None,
            Some("$.t"),
            TsUnit::S,
        ),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, body) = text.split_once('\n').unwrap_or(("", text));
    let mut mappings = fixed();
    if let Ok(m) = serde_json::from_str::<FieldMapping>(head) {
        mappings.push(m);
    }
    let ctx = ExtractContext {
        source: Arc::from("fuzz"),
        symbol: marketd_model::Symbol::parse("BTC-USDT").ok(),
        received_ns: 1_700_000_000_000_000_000,
    };
    for m in &mappings {
        let Ok(compiled) = m.compile() else { continue };
        if let Ok((ticks, errors)) = compiled.extract_bytes(body.as_bytes(), &ctx) {
            let records = serde_json::from_str(body)
                .map(|v| compiled.records(&v).len())
                .unwrap_or(0);
            assert_eq!(
                ticks.len() + errors.len(),
                records,
                "every record is a tick or an error"
            );
        }
    }
});
