//! The persistent-homology input parsers (marketd-tda): the first byte picks
//! the format (point cloud, distance matrices, sparse triplets, DIPHA,
//! Ripser's binary), the rest is the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketd_tda::Format;

const FORMATS: [Format; 7] = [
    Format::PointCloud,
    Format::Distance,
    Format::LowerDistance,
    Format::UpperDistance,
    Format::Sparse,
    Format::Dipha,
    Format::Binary,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    if let Ok(parsed) = marketd_tda::parse(rest, FORMATS[pick as usize % FORMATS.len()]) {
        let _ = parsed.len();
    }
});
