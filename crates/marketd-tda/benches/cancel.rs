//! `cargo bench -p marketd-tda --bench cancel`: the latency of a cancel, from `Control::cancel`
//! on one thread to `compute_controlled` returning `Error::Canceled` on another, on a
//! computation that would run for about 12 s (H2 of 2,000 points in the unit cube at threshold
//! 0.35, the problem of `tests/control.rs`), canceled 0.3 s and 2 s in, at 1 and 2 threads.
//! Prints the smallest, median and largest latency of `RUNS` cancels per case. (Not criterion:
//! each sample needs seconds of computation before the few milliseconds it measures.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketd_tda::{Control, Data, Error, Options, compute_controlled};

const RUNS: usize = 5;

/// `n` points uniform in the unit cube of R^3.
fn cube(n: usize, seed: u64) -> Data {
    let mut s = seed;
    let mut r = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64) / ((1u64 << 53) as f64)
    };
    let pts: Vec<[f64; 3]> = (0..n).map(|_| [r(), r(), r()]).collect();
    Data::from_points(&pts).unwrap()
}

fn main() {
    let data = Arc::new(cube(2000, 11));
    println!(
        "{:<8} {:>10} {:>12} {:>12} {:>12}  stage at the cancel",
        "threads", "after ms", "min ms", "median ms", "max ms"
    );
    for threads in [1, 2] {
        for after in [300u64, 2000] {
            let opts = Options {
                max_dim: 2,
                threshold: Some(0.35),
                threads,
                ..Options::default()
            };
            let mut lat = Vec::new();
            let mut stages = Vec::new();
            for _ in 0..RUNS {
                let control = Arc::new(Control::new());
                let (c, d, o) = (control.clone(), data.clone(), opts.clone());
                let h = std::thread::spawn(move || {
                    let r = compute_controlled(&d, &o, &c);
                    (matches!(r, Err(Error::Canceled)), Instant::now())
                });
                std::thread::sleep(Duration::from_millis(after));
                let (stage, fraction) = control.progress();
                let t0 = Instant::now();
                control.cancel();
                let (canceled, done) = h.join().unwrap();
                assert!(canceled, "the computation finished before the cancel");
                lat.push((done - t0).as_secs_f64() * 1e3);
                stages.push(format!("{}:{fraction:.2}", stage.as_str()));
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "{threads:<8} {after:>10} {:>12.2} {:>12.2} {:>12.2}  {}",
                lat[0],
                lat[RUNS / 2],
                lat[RUNS - 1],
                stages.join(" ")
            );
        }
    }
}
