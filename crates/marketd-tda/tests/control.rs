//! Cancellation and progress of a computation (`compute_controlled`): a cancel from another
//! thread ends a long computation (asserted with a generous deadline; the latency itself is
//! measured by `cargo bench -p marketd-tda -- cancel`), progress is monotonic and ends at
//! (Done, 1), and a controlled computation gives the same barcode as `compute`.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use marketd_tda::{Control, Data, Error, Options, Stage, compute, compute_controlled};

/// `n` points uniform in the unit cube of R^3 (a fixed linear congruential generator).
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

/// H2 of 2,000 points at threshold 0.35: about 12 s on one core of the development machine.
fn long_problem(threads: usize) -> (Data, Options) {
    let opts = Options {
        max_dim: 2,
        threshold: Some(0.35),
        threads,
        ..Options::default()
    };
    (cube(2000, 11), opts)
}

fn cancel_within_deadline(threads: usize) {
    let (data, opts) = long_problem(threads);
    let control = Arc::new(Control::new());
    let (tx, rx) = mpsc::channel();
    let c = control.clone();
    let worker = std::thread::spawn(move || {
        let r = compute_controlled(&data, &opts, &c);
        let _ = tx.send((r.map(|_| ()), Instant::now()));
    });
    // let it get into the reduction
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        rx.try_recv().is_err(),
        "the long problem finished before the cancel: make it longer"
    );
    let (stage, fraction) = control.progress();
    assert!(!matches!(stage, Stage::Queued | Stage::Done), "{stage:?}");
    assert!(fraction < 1.0, "{fraction}");
    let t0 = Instant::now();
    control.cancel();
    // generous: a cancel is seen within milliseconds; the deadline only catches a hang
    let (res, done) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the computation did not stop within 20 s of the cancel");
    assert!(matches!(res, Err(Error::Canceled)), "{res:?}");
    eprintln!(
        "{threads} thread(s): canceled at {stage:?} {fraction:.3}, returned after {:?}",
        done - t0
    );
    assert_eq!(control.progress(), (Stage::Done, 1.0));
    worker.join().unwrap();
}

#[test]
fn cancel_stops_a_long_computation() {
    cancel_within_deadline(1);
}

#[test]
fn cancel_stops_a_long_parallel_computation() {
    cancel_within_deadline(2);
}

#[test]
fn canceled_before_the_start() {
    let control = Control::new();
    control.cancel();
    let r = compute_controlled(&cube(50, 1), &Options::default(), &control);
    assert!(matches!(r, Err(Error::Canceled)));
    assert_eq!(control.progress(), (Stage::Done, 1.0));
}

#[test]
fn progress_is_monotonic_and_ends_at_done() {
    let data = cube(1500, 5);
    let opts = Options {
        max_dim: 2,
        threshold: Some(0.25),
        ..Options::default()
    };
    let control = Arc::new(Control::new());
    assert_eq!(control.progress(), (Stage::Queued, 0.0));
    let c = control.clone();
    let watcher = std::thread::spawn(move || {
        let mut seen = vec![c.progress()];
        while seen.last().unwrap().0 != Stage::Done {
            std::thread::sleep(Duration::from_micros(200));
            seen.push(c.progress());
        }
        seen
    });
    let out = compute_controlled(&data, &opts, &control).unwrap();
    let seen = watcher.join().unwrap();
    let rank = |s: Stage| match s {
        Stage::Queued => 0,
        Stage::Distances => 1,
        Stage::Dimension(k) => 2 + k,
        Stage::Cocycles => 100,
        Stage::Done => 101,
    };
    for w in seen.windows(2) {
        assert!(rank(w[1].0) >= rank(w[0].0), "stage went back: {w:?}");
        assert!(w[1].1 >= w[0].1, "fraction went back: {w:?}");
    }
    assert_eq!(*seen.last().unwrap(), (Stage::Done, 1.0));
    // the reduction was seen part way
    assert!(
        seen.iter()
            .any(|&(s, f)| matches!(s, Stage::Dimension(1 | 2)) && f > 0.05 && f < 1.0),
        "{:?}",
        &seen[..seen.len().min(20)]
    );
    assert_eq!(Stage::Dimension(2).as_str(), "h2");
    // same barcode as without a control
    assert_eq!(out.barcode, compute(&data, &opts).unwrap().barcode);
}
