//! Equality with Ripser on every case of `shared/data/tda/expected/INDEX.md`: the command line of
//! each case is run through the CLI runner and the bars are compared per dimension as multisets
//! within 1e-5 relative tolerance.
//!
//! Cases Ripser needs over ~10 s are `slow_*` and ignored by default (CI runs them with
//! `cargo test --release -p marketd-tda -- --include-ignored`); the two largest (o3_4096_d1,
//! cyclooctane_d1) additionally need `MARKETD_TDA_HUGE=1`.

mod support;

use std::path::PathBuf;

use clap::Parser;
use marketd_tda::Barcode;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: marketd_tda::cli::TdaArgs,
}

fn data_dir() -> PathBuf {
    support::data_dir_with("expected/INDEX.md")
        .expect("test data not found: set MARKETD_TDA_DATA to shared/data/tda")
}

fn command_of(name: &str) -> Vec<String> {
    let index = std::fs::read_to_string(data_dir().join("expected/INDEX.md")).expect("INDEX.md");
    for line in index.lines() {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        if cols.len() > 3 && cols[1] == name {
            let cmd = cols[2].trim_matches('`');
            let mut words: Vec<String> = cmd.split_whitespace().map(String::from).collect();
            words[0] = "marketd-tda".into();
            return words;
        }
    }
    panic!("case {name} not in INDEX.md");
}

/// Compares two barcodes as multisets per dimension within a relative tolerance of 1e-5. Ripser's
/// binary is built with fast-math, so Euclidean distances can differ in the last float bit: bars
/// shorter than 1e-4 (relative) that exist in one output only are tolerated, as the data's
/// README allows.
fn assert_same(ours: &Barcode, theirs: &Barcode, case: &str) {
    assert_eq!(
        ours.num_dims(),
        theirs.num_dims(),
        "{case}: number of dimensions"
    );
    let close = |x: f64, y: f64| x == y || (x - y).abs() <= 1e-5 * x.abs().max(y.abs());
    let tiny = |x: &(f64, f64)| x.1.is_finite() && (x.1 - x.0) <= 1e-4 * x.1.abs().max(1e-3);
    for k in 0..theirs.num_dims() {
        let key = |b: &marketd_tda::Bar| (b.birth, b.death);
        let mut a: Vec<(f64, f64)> = ours.dim(k).iter().map(key).collect();
        let mut b: Vec<(f64, f64)> = theirs.dim(k).iter().map(key).collect();
        let cmp = |x: &(f64, f64), y: &(f64, f64)| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1));
        a.sort_by(cmp);
        b.sort_by(cmp);
        let mut used = vec![false; b.len()];
        let mut unmatched = 0usize;
        for x in &a {
            // b is sorted by birth: look at the window of births within tolerance
            let lo = b.partition_point(|y| y.0 < x.0 - 1e-5 * x.0.abs() - 1e-12);
            let found = (lo..b.len())
                .take_while(|&j| b[j].0 <= x.0 + 1e-5 * x.0.abs() + 1e-12)
                .find(|&j| !used[j] && close(x.0, b[j].0) && close(x.1, b[j].1));
            match found {
                Some(j) => used[j] = true,
                None if tiny(x) => unmatched += 1,
                None => panic!("{case}: our bar {x:?} in dim {k} has no match in Ripser's output"),
            }
        }
        for (j, y) in b.iter().enumerate() {
            if !used[j] {
                assert!(
                    tiny(y),
                    "{case}: Ripser's bar {y:?} in dim {k} has no match in ours"
                );
                unmatched += 1;
            }
        }
        assert!(
            unmatched <= 4,
            "{case}: {unmatched} tiny bars unmatched in dim {k}"
        );
    }
}

fn run_case(name: &str, threads: usize) {
    let dir = data_dir();
    let mut words = command_of(name);
    words.push("--threads".into());
    words.push(threads.to_string());
    let cli = Cli::try_parse_from(&words).expect("command line");
    let mut args = cli.args;
    args.file = args.file.map(|f| dir.join(f));
    let mut out = Vec::new();
    marketd_tda::cli::run(&args, &mut out).expect("run");
    let ours = Barcode::from_ripser_text(&String::from_utf8(out).unwrap()).unwrap();
    let expected = std::fs::read_to_string(dir.join(format!("expected/{name}.txt"))).unwrap();
    let theirs = Barcode::from_ripser_text(&expected).unwrap();
    assert_same(&ours, &theirs, name);
}

/// The case on one thread and on two.
fn both_thread_counts(name: &str) {
    run_case(name, 1);
    run_case(name, 2);
}

fn two_threads(name: &str) {
    run_case(name, 2);
}

/// The two largest cases: only with `MARKETD_TDA_HUGE=1`.
fn huge(name: &str) {
    if std::env::var("MARKETD_TDA_HUGE").as_deref() != Ok("1") {
        eprintln!("skipping {name}: set MARKETD_TDA_HUGE=1 to run it");
        return;
    }
    run_case(name, 2);
}

/// One test per case: `test_name => "case name", runner;`, with the test's extra attributes
/// in front.
macro_rules! cases {
    ($($(#[$attr:meta])* $f:ident => $name:literal, $run:ident;)*) => {
        $(
            #[test]
            $(#[$attr])*
            fn $f() {
                $run($name);
            }
        )*
    };
}

cases! {
    coeff_o3_1024_d2_t1_8_mod3 => "coeff_o3_1024_d2_t1.8_mod3", both_thread_counts;
    coeff_projective_plane_d2_mod2 => "coeff_projective_plane_d2_mod2", both_thread_counts;
    coeff_projective_plane_d2_mod3 => "coeff_projective_plane_d2_mod3", both_thread_counts;
    coeff_rp2_600_d1_mod3 => "coeff_rp2_600_d1_mod3", both_thread_counts;
    #[ignore = "slow: run with --release --include-ignored"]
    slow_coeff_rp2_600_d2_mod2 => "coeff_rp2_600_d2_mod2", two_threads;
    coeff_rp2_600_d2_mod3 => "coeff_rp2_600_d2_mod3", two_threads;
    coeff_sphere_3_192_d2_mod3 => "coeff_sphere_3_192_d2_mod3", both_thread_counts;
    #[ignore = "slow: run with --release --include-ignored (and MARKETD_TDA_HUGE=1)"]
    slow_cyclooctane_d1 => "cyclooctane_d1", huge;
    o3_1024_d1 => "o3_1024_d1", two_threads;
    o3_1024_d2_t1_8 => "o3_1024_d2_t1.8", both_thread_counts;
    o3_1024_d3_t1_8 => "o3_1024_d3_t1.8", two_threads;
    o3_1024_d3_t1_8_ratio2 => "o3_1024_d3_t1.8_ratio2", two_threads;
    o3_2048_d1 => "o3_2048_d1", two_threads;
    o3_2048_d2_t1_6 => "o3_2048_d2_t1.6", two_threads;
    #[ignore = "slow: run with --release --include-ignored (and MARKETD_TDA_HUGE=1)"]
    slow_o3_4096_d1 => "o3_4096_d1", huge;
    o3_4096_d1_t1_4 => "o3_4096_d1_t1.4", two_threads;
    o3_4096_d2_t1_4 => "o3_4096_d2_t1.4", two_threads;
    #[ignore = "slow: run with --release --include-ignored"]
    slow_o3_4096_d3_t1_4_ratio2 => "o3_4096_d3_t1.4_ratio2", two_threads;
    o3_8192_d1_t1_0 => "o3_8192_d1_t1.0", two_threads;
    projective_plane_csv_d1 => "projective_plane_csv_d1", both_thread_counts;
    projective_plane_csv_d2 => "projective_plane_csv_d2", both_thread_counts;
    projective_plane_dipha_d1 => "projective_plane_dipha_d1", both_thread_counts;
    projective_plane_dipha_d2 => "projective_plane_dipha_d2", both_thread_counts;
    projective_plane_lower_d1 => "projective_plane_lower_d1", both_thread_counts;
    projective_plane_lower_d2 => "projective_plane_lower_d2", both_thread_counts;
    random16_d1 => "random16_d1", both_thread_counts;
    random16_d2 => "random16_d2", both_thread_counts;
    random20_d1 => "random20_d1", both_thread_counts;
    random20_d2 => "random20_d2", both_thread_counts;
    rp2_600_d1 => "rp2_600_d1", two_threads;
    #[ignore = "slow: run with --release --include-ignored"]
    slow_rp2_600_d2 => "rp2_600_d2", two_threads;
    sphere_3_192_d1 => "sphere_3_192_d1", both_thread_counts;
    sphere_3_192_d2 => "sphere_3_192_d2", both_thread_counts;
}
