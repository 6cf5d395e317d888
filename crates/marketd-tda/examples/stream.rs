//! Streaming throughput probe: H1 of random 50-point clouds in R^4, one thread.
//! `cargo run --release -p marketd-tda --example stream [seconds]`

#[path = "../tests/support/mod.rs"]
mod support;

use marketd_tda::{Options, compute};

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let windows = support::random_windows(7, 64, 50);
    let opts = Options {
        max_dim: 1,
        ..Options::default()
    };
    let c0 = cpu_seconds();
    // optional second argument: stop after this many windows (for instruction counts)
    let max_windows: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let t0 = std::time::Instant::now();
    let mut count = 0usize;
    let mut bars = 0usize;
    while t0.elapsed().as_secs_f64() < secs && count < max_windows {
        for w in &windows {
            bars += compute(w, &opts).unwrap().barcode.dim(1).len();
            count += 1;
        }
    }
    let t = t0.elapsed().as_secs_f64();
    let c = cpu_seconds() - c0;
    println!(
        "{count} windows in {t:.2} s wall, {c:.2} s on CPU: {:.0} windows/s wall, {:.0} per CPU second ({} H1 bars per window)",
        count as f64 / t,
        count as f64 / c,
        bars / count
    );
}

/// CPU time of this thread (Linux /proc/thread-self/schedstat), NaN elsewhere.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}
