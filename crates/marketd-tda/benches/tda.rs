//! `cargo bench -p marketd-tda`: the engine on Ripser's examples (1 and 2 threads) and the
//! streaming use (H1 of 50-point clouds in R^4). For the side-by-side comparison with giotto-ph
//! use `scripts/bench-tda`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use marketd_tda::{Format, Options, compute, parse};

fn examples(c: &mut Criterion) {
    let Some(dir) = support::data_dir_with("examples") else {
        eprintln!("shared/data/tda not found: skipping the example benchmarks");
        return;
    };
    let cases: [(&str, &str, Format, usize, Option<f32>); 3] = [
        (
            "sphere_3_192_d2",
            "sphere_3_192.lower_distance_matrix",
            Format::LowerDistance,
            2,
            None,
        ),
        (
            "o3_1024_d2_t1.8",
            "o3_1024.txt",
            Format::PointCloud,
            2,
            Some(1.8),
        ),
        (
            "rp2_600_d1",
            "rp2_600.lower_distance_matrix.csv",
            Format::LowerDistance,
            1,
            None,
        ),
    ];
    let mut g = c.benchmark_group("examples");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, file, format, dim, threshold) in cases {
        let bytes = std::fs::read(dir.join("examples").join(file)).expect("example file");
        let data = parse(&bytes, format).expect("parse");
        for threads in [1, 2] {
            let opts = Options {
                max_dim: dim,
                threshold,
                threads,
                ..Options::default()
            };
            g.bench_with_input(
                BenchmarkId::new(name, format!("{threads}t")),
                &data,
                |b, d| b.iter(|| compute(d, &opts).unwrap()),
            );
        }
    }
    g.finish();
}

fn streaming(c: &mut Criterion) {
    let windows = support::random_windows(7, 64, 50);
    let opts = Options {
        max_dim: 1,
        ..Options::default()
    };
    let mut g = c.benchmark_group("streaming");
    g.throughput(Throughput::Elements(windows.len() as u64));
    g.bench_function("h1_50pts_r4_x64", |b| {
        b.iter(|| {
            for w in &windows {
                std::hint::black_box(compute(w, &opts).unwrap());
            }
        })
    });
    g.bench_function("h1_50pts_r4_x64_computer", |b| {
        let mut computer = marketd_tda::Computer::new();
        b.iter(|| {
            for w in &windows {
                std::hint::black_box(computer.compute(w, &opts).unwrap());
            }
        })
    });
    let opts2 = Options {
        max_dim: 1,
        threads: 2,
        ..Options::default()
    };
    g.bench_function("h1_50pts_r4_x64_batch_2t", |b| {
        b.iter(|| std::hint::black_box(marketd_tda::compute_batch(&windows, &opts2)))
    });
    g.finish();
}

criterion_group!(benches, streaming, examples);
criterion_main!(benches);
