//! The venue normalizers (Binance spot and USD-M futures, OKX v5, Finnhub):
//! one text frame as a connection receives it. The first byte picks the
//! venue, the rest is the frame. A frame decodes whole or not at all: on an
//! error no tick may be left behind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_sources::venues::Venue;

const VENUES: [Venue; 4] = [
    Venue::Binance,
    Venue::BinanceFutures,
    Venue::Okx,
    Venue::Finnhub,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(frame) = std::str::from_utf8(rest) else {
        return;
    };
    let mut decoder = VENUES[pick as usize % VENUES.len()].decoder();
    let mut out = Vec::new();
    match decoder.decode(frame, 1_700_000_000_000_000_000, &mut out) {
        Ok(_) => {
            for t in &out {
                assert!(!t.symbol.as_str().is_empty());
            }
        }
        Err(_) => assert!(out.is_empty(), "a failed frame left {} ticks", out.len()),
    }
    // The same decoder again: its symbol cache must not change the answer.
    let mut again = Vec::new();
    let _ = decoder.decode(frame, 1_700_000_000_000_000_000, &mut again);
    assert_eq!(out.len(), again.len());
});
