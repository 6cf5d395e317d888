//! `cargo bench -p marketd-tda --bench summaries`: summaries and distances on Ripser's expected
//! barcodes, best of N wall time per operation, printed as a table (and JSON lines with
//! `--json`). `scripts/reference/tda_summaries_bench.py` times giotto-tda's transformers on the
//! same diagrams with the same parameters; run both in one session for the side-by-side figures
//! of `docs/benchmarks.md`.
//!
//! Each summary is timed as the library computes it (grid range, grid, values: what giotto-tda's
//! `fit_transform` does on a one-diagram collection of one dimension), and once more through
//! `summaries::summarize` (`*_json`: parameters validated and the JSON answer built, what the
//! API pays). Infinite bars are dropped first (giotto-tda never sees them).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use marketd_tda::summaries::{self, DistanceKind, SummarySpec};
use marketd_tda::{Bar, Barcode};
use serde_json::json;

/// (name, expected file, dimension)
pub const DIAGRAMS: [(&str, &str, usize); 4] = [
    ("sphere_3_192_H1", "sphere_3_192_d2", 1),
    ("rp2_600_H2", "rp2_600_d2", 2),
    ("o3_1024_H0", "o3_1024_d2_t1.8", 0),
    ("o3_4096_H1", "o3_4096_d1_t1.4", 1),
];

/// An expected barcode file and a dimension.
type Diagram = (&'static str, usize);

/// (name, diagram a, diagram b): both of finite bars.
pub const PAIRS: [(&str, Diagram, Diagram); 3] = [
    (
        "sphere_H1_vs_rp2_H1",
        ("sphere_3_192_d2", 1),
        ("rp2_600_d2", 1),
    ),
    (
        "rp2_H2_vs_o3_1024_H2",
        ("rp2_600_d2", 2),
        ("o3_1024_d2_t1.8", 2),
    ),
    (
        "sphere_H0_vs_rp2_H0",
        ("sphere_3_192_d2", 0),
        ("rp2_600_d2", 0),
    ),
];

/// Best of as many runs as fit in `budget` (at least 3, at most 1000).
fn best<T>(budget: Duration, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    let mut best = Duration::MAX;
    let mut runs = 0;
    while runs < 3 || (start.elapsed() < budget && runs < 1000) {
        let t = Instant::now();
        std::hint::black_box(f());
        best = best.min(t.elapsed());
        runs += 1;
    }
    best
}

fn finite(bars: &[Bar]) -> Vec<Bar> {
    bars.iter()
        .copied()
        .filter(|b| b.death.is_finite())
        .collect()
}

fn main() {
    let json_out = std::env::args().any(|a| a == "--json");
    let Some(dir) = support::data_dir_with("expected") else {
        eprintln!("shared/data/tda not found: skipping the summaries benchmark");
        return;
    };
    let load = |file: &str, dim: usize| -> Vec<Bar> {
        let text = std::fs::read_to_string(dir.join("expected").join(format!("{file}.txt")))
            .expect("expected barcode");
        finite(Barcode::from_ripser_text(&text).unwrap().dim(dim))
    };
    let budget = Duration::from_millis(1500);
    let specs: [(&str, serde_json::Value); 3] = [
        (
            "landscape_json",
            json!({"summaries": ["landscape"], "landscape": {"layers": 5, "samples": 100}}),
        ),
        (
            "persistence_image_json",
            json!({"summaries": ["persistence-image"], "persistence_image": {"sigma": 0.1, "pixels": [100, 100]}}),
        ),
        ("entropy_json", json!({"summaries": ["entropy"]})),
    ];
    if !json_out {
        println!(
            "{:<22} {:<22} {:>8} {:>14}",
            "diagram", "operation", "bars", "best µs"
        );
    }
    let report = |diagram: &str, op: &str, bars: usize, t: Duration| {
        let us = t.as_secs_f64() * 1e6;
        if json_out {
            println!(
                "{}",
                json!({"diagram": diagram, "op": op, "bars": bars, "best_us": us})
            );
        } else {
            println!("{diagram:<22} {op:<22} {bars:>8} {us:>14.1}");
        }
    };
    for (name, file, dim) in DIAGRAMS {
        let bars = load(file, dim);
        let bc = Barcode {
            dims: vec![bars.clone()],
        };
        let n = bars.len();
        let grid = || {
            let r = summaries::sample_ranges(&bc, &[0])[0];
            summaries::linspace(r.0, r.1, 100).0
        };
        report(
            name,
            "landscape",
            n,
            best(budget, || summaries::landscape(&bars, 5, &grid())),
        );
        report(
            name,
            "betti_curve",
            n,
            best(budget, || summaries::betti_curve(&bars, &grid())),
        );
        report(
            name,
            "persistence_image",
            n,
            best(budget, || {
                let (rb, rp) = summaries::image_ranges(&bc, &[0])[0];
                summaries::persistence_image_giotto(
                    &bars,
                    (rb.0, rb.1, 100),
                    (rp.0, rp.1, 100),
                    0.1,
                    summaries::ImageWeight::One,
                )
            }),
        );
        report(
            name,
            "entropy",
            n,
            best(budget, || {
                summaries::entropy(&bars, summaries::EntropyBase::Two, false)
            }),
        );
        report(
            name,
            "silhouette",
            n,
            best(budget, || summaries::silhouette(&bars, 1.0, &grid())),
        );
        report(
            name,
            "amplitude_landscape",
            n,
            best(budget, || {
                let opts = summaries::AmplitudeOptions::default();
                let line = summaries::sample_ranges(&bc, &[0])[0];
                let image = summaries::image_ranges(&bc, &[0])[0];
                summaries::amplitude(
                    &bars,
                    summaries::AmplitudeMetric::Landscape,
                    &opts,
                    line,
                    image,
                )
            }),
        );
        for (op, v) in &specs {
            let spec: SummarySpec = serde_json::from_value(v.clone()).unwrap();
            let t = best(budget, || summaries::summarize(&bc, &spec).unwrap());
            report(name, op, n, t);
        }
    }
    for (name, (fa, da), (fb, db)) in PAIRS {
        let (a, b) = (load(fa, da), load(fb, db));
        for (op, kind, p) in [
            ("bottleneck", DistanceKind::Bottleneck, 1.0),
            ("wasserstein_2", DistanceKind::Wasserstein, 2.0),
        ] {
            let t = best(budget, || summaries::distance(&a, &b, kind, p).unwrap());
            report(name, op, a.len() + b.len(), t);
        }
    }
}
