//! Inputs shared by this crate's tests, benchmark and example (the benchmark and the example
//! include this file by path): the location of Ripser's example data and seeded random point
//! clouds.

// each includer uses only part of this module
#![allow(dead_code)]

use std::path::PathBuf;

use marketd_tda::Data;

/// The directory `shared/data/tda` (or `MARKETD_TDA_DATA`), if it holds `marker`.
pub fn data_dir_with(marker: &str) -> Option<PathBuf> {
    if let Ok(d) = std::env::var("MARKETD_TDA_DATA") {
        return Some(PathBuf::from(d));
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    [
        "../../../shared/data/tda",
        "../../shared/data/tda",
        "../shared/data/tda",
    ]
    .iter()
    .map(|up| here.join(up))
    .find(|p| p.join(marker).exists())
}

/// `windows` point clouds of `points` points drawn uniformly from the unit cube of R^4 by a
/// linear congruential generator seeded with `seed`: the streaming use (sliding windows of a
/// 4-dimensional series), the same clouds on every run.
pub fn random_windows(seed: u64, windows: usize, points: usize) -> Vec<Data> {
    let mut seed = seed;
    let mut rnd = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64) / ((1u64 << 53) as f64)
    };
    (0..windows)
        .map(|_| {
            let pts: Vec<[f64; 4]> = (0..points).map(|_| [rnd(), rnd(), rnd(), rnd()]).collect();
            Data::from_points(&pts).unwrap()
        })
        .collect()
}
