//! Property tests against a naive reference (full boundary matrix, standard column reduction
//! over Z/p), known shapes, and the summaries.

#![allow(clippy::needless_range_loop)]

mod support;

use marketd_tda::{Bar, Barcode, Data, Options, compute};
use proptest::prelude::*;

/// Naive Vietoris–Rips barcode: all simplices up to dimension max_dim + 1 with diameter
/// <= threshold, ordered by (diameter, dimension), standard reduction of the boundary matrix.
fn naive(d: &[Vec<f32>], max_dim: usize, threshold: f32, p: u32) -> Vec<Vec<(f32, f32)>> {
    let n = d.len();
    let mut simplices: Vec<(f32, Vec<usize>)> = (0..n).map(|v| (0.0, vec![v])).collect();
    let mut frontier: Vec<Vec<usize>> = (0..n).map(|v| vec![v]).collect();
    for _ in 1..=max_dim + 1 {
        let mut next = Vec::new();
        for s in &frontier {
            let last = *s.last().unwrap();
            for v in last + 1..n {
                let mut t = s.clone();
                t.push(v);
                let mut diam = 0f32;
                for a in 0..t.len() {
                    for b in a + 1..t.len() {
                        diam = diam.max(d[t[a]][t[b]]);
                    }
                }
                if diam <= threshold {
                    simplices.push((diam, t.clone()));
                    next.push(t);
                }
            }
        }
        frontier = next;
    }
    simplices.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.len().cmp(&b.1.len())));
    let index: std::collections::HashMap<Vec<usize>, usize> = simplices
        .iter()
        .enumerate()
        .map(|(i, s)| (s.1.clone(), i))
        .collect();
    let m = simplices.len();
    // columns: sorted vec of (row, coef)
    let mut cols: Vec<Vec<(usize, u32)>> = simplices
        .iter()
        .map(|(_, s)| {
            if s.len() == 1 {
                return Vec::new();
            }
            let mut c: Vec<(usize, u32)> = (0..s.len())
                .map(|k| {
                    let mut f = s.clone();
                    f.remove(k);
                    (index[&f], if k % 2 == 0 { 1 } else { p - 1 })
                })
                .collect();
            c.sort();
            c
        })
        .collect();
    let inv = |a: u32| (1..p).find(|&x| (a * x) % p == 1).unwrap();
    let mut low_of: std::collections::HashMap<usize, usize> = Default::default();
    let mut paired = vec![false; m];
    let mut bars = vec![Vec::new(); max_dim + 1];
    for j in 0..m {
        while let Some(&(low, c)) = cols[j].last() {
            match low_of.get(&low) {
                Some(&k) => {
                    let ck = cols[k].last().unwrap().1;
                    let f = (p - (c * inv(ck)) % p) % p;
                    let mut merged: std::collections::BTreeMap<usize, u32> =
                        cols[j].iter().copied().collect();
                    for &(r, x) in &cols[k] {
                        let e = merged.entry(r).or_insert(0);
                        *e = (*e + f * x) % p;
                    }
                    cols[j] = merged.into_iter().filter(|&(_, x)| x != 0).collect();
                }
                None => break,
            }
        }
        if let Some(&(low, _)) = cols[j].last() {
            low_of.insert(low, j);
            paired[low] = true;
            paired[j] = true;
            let dim = simplices[low].1.len() - 1;
            let (b, dd) = (simplices[low].0, simplices[j].0);
            if dd > b && dim <= max_dim {
                bars[dim].push((b, dd));
            }
        }
    }
    for i in 0..m {
        let dim = simplices[i].1.len() - 1;
        if !paired[i] && dim <= max_dim && cols[i].is_empty() {
            bars[dim].push((simplices[i].0, f32::INFINITY));
        }
    }
    for b in &mut bars {
        b.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
    }
    bars
}

fn sorted(b: &Barcode) -> Vec<Vec<(f32, f32)>> {
    b.dims
        .iter()
        .map(|v| {
            let mut v: Vec<(f32, f32)> =
                v.iter().map(|b| (b.birth as f32, b.death as f32)).collect();
            v.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.total_cmp(&y.1)));
            v
        })
        .collect()
}

/// Euclidean distance, summed in coordinate order as the crate does in f32 (so that ties in
/// the reference's filtration are the crate's).
fn euclid(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

/// `n` points evenly spaced on the unit circle.
fn circle(n: usize) -> Vec<[f64; 2]> {
    (0..n)
        .map(|i| {
            let a = i as f64 * std::f64::consts::TAU / n as f64;
            [a.cos(), a.sin()]
        })
        .collect()
}

fn lower(d: &[Vec<f32>]) -> Data {
    let n = d.len();
    let mut values = Vec::new();
    for i in 0..n {
        for j in 0..i {
            values.push(d[i][j]);
        }
    }
    Data::LowerTriangle { n, values }
}

fn opts(max_dim: usize, p: u32, threads: usize, threshold: Option<f32>) -> Options {
    Options {
        max_dim,
        modulus: p,
        threads,
        threshold,
        ..Options::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn point_clouds_match_naive(
        pts in prop::collection::vec(prop::collection::vec(-1.0f32..1.0, 3), 3..9),
        max_dim in 0usize..=2,
        p in prop::sample::select(vec![2u32, 3]),
        threads in 1usize..=2,
    ) {
        let n = pts.len();
        let d: Vec<Vec<f32>> = (0..n).map(|i| (0..n).map(|j| euclid(&pts[i], &pts[j])).collect()).collect();
        let rows: Vec<Vec<f64>> = pts.iter().map(|r| r.iter().map(|&x| x as f64).collect()).collect();
        let data = Data::from_points(&rows).unwrap();
        let ours = compute(&data, &opts(max_dim, p, threads, None)).unwrap();
        prop_assert_eq!(sorted(&ours.barcode), naive(&d, max_dim, f32::INFINITY, p));
    }

    #[test]
    fn distance_matrices_with_ties_match_naive(
        n in 3usize..9,
        raw in prop::collection::vec(1u8..12, 36),
        max_dim in 0usize..=2,
        p in prop::sample::select(vec![2u32, 3]),
        threads in 1usize..=2,
        cut in prop::option::of(1u8..12),
    ) {
        let mut d = vec![vec![0f32; n]; n];
        let mut k = 0;
        for i in 0..n {
            for j in 0..i {
                d[i][j] = raw[k] as f32;
                d[j][i] = raw[k] as f32;
                k += 1;
            }
        }
        let threshold = cut.map(|c| c as f32);
        let ours = compute(&lower(&d), &opts(max_dim, p, threads, threshold)).unwrap();
        prop_assert_eq!(sorted(&ours.barcode), naive(&d, max_dim, threshold.unwrap_or(f32::INFINITY), p));
    }

    #[test]
    fn sparse_input_matches_naive(
        n in 3usize..9,
        raw in prop::collection::vec(prop::option::weighted(0.7, 1u8..20), 36),
        max_dim in 0usize..=2,
        p in prop::sample::select(vec![2u32, 3]),
    ) {
        let mut d = vec![vec![f32::INFINITY; n]; n];
        let mut edges = Vec::new();
        let mut k = 0;
        for i in 0..n {
            d[i][i] = 0.0;
            for j in 0..i {
                if let Some(x) = raw[k] {
                    d[i][j] = x as f32;
                    d[j][i] = x as f32;
                    edges.push((i as u32, j as u32, x as f32));
                }
                k += 1;
            }
        }
        let data = Data::Sparse { n, edges };
        let ours = compute(&data, &opts(max_dim, p, 1, None)).unwrap();
        prop_assert_eq!(sorted(&ours.barcode), naive(&d, max_dim, f32::INFINITY, p));
    }
}

fn long_bars(b: &Barcode, dim: usize, min_len: f64) -> usize {
    b.dim(dim)
        .iter()
        .filter(|x| x.persistence() > min_len)
        .count()
}

#[test]
fn circle_has_one_long_h1_bar() {
    let pts = circle(60);
    let out = compute(&Data::from_points(&pts).unwrap(), &opts(1, 2, 1, None)).unwrap();
    assert_eq!(long_bars(&out.barcode, 1, 0.5), 1);
    assert_eq!(
        out.barcode
            .dim(0)
            .iter()
            .filter(|b| b.is_infinite())
            .count(),
        1
    );
}

#[test]
fn sphere_has_one_long_h2_bar() {
    // Fibonacci sphere
    let n = 80;
    let pts: Vec<[f64; 3]> = (0..n)
        .map(|i| {
            let y = 1.0 - 2.0 * (i as f64 + 0.5) / n as f64;
            let r = (1.0 - y * y).sqrt();
            let phi = i as f64 * std::f64::consts::PI * (3.0 - 5f64.sqrt());
            [r * phi.cos(), y, r * phi.sin()]
        })
        .collect();
    for threads in [1, 2] {
        let out = compute(
            &Data::from_points(&pts).unwrap(),
            &opts(2, 2, threads, None),
        )
        .unwrap();
        assert_eq!(long_bars(&out.barcode, 2, 0.5), 1);
        assert_eq!(long_bars(&out.barcode, 1, 0.5), 0);
    }
}

#[test]
fn torus_has_two_long_h1_bars_and_one_long_h2_bar() {
    // Clifford torus in R^4 on a 12 x 12 grid
    let k = 12;
    let mut pts = Vec::new();
    for i in 0..k {
        for j in 0..k {
            let (a, b) = (
                i as f64 * std::f64::consts::TAU / k as f64,
                j as f64 * std::f64::consts::TAU / k as f64,
            );
            pts.push([a.cos(), a.sin(), b.cos(), b.sin()]);
        }
    }
    for p in [2, 3] {
        let out = compute(&Data::from_points(&pts).unwrap(), &opts(2, p, 2, None)).unwrap();
        assert_eq!(long_bars(&out.barcode, 1, 0.5), 2, "p = {p}");
        assert_eq!(long_bars(&out.barcode, 2, 0.5), 1, "p = {p}");
    }
}

#[test]
fn projective_plane_depends_on_coefficients() {
    let Some(dir) = support::data_dir_with("examples/projective_plane.lower_distance_matrix")
    else {
        return;
    };
    let bytes = std::fs::read(dir.join("examples/projective_plane.lower_distance_matrix")).unwrap();
    let data = marketd_tda::parse(&bytes, marketd_tda::Format::LowerDistance).unwrap();
    let z2 = compute(&data, &opts(2, 2, 1, None)).unwrap();
    let z3 = compute(&data, &opts(2, 3, 1, None)).unwrap();
    assert_eq!((z2.barcode.dim(1).len(), z2.barcode.dim(2).len()), (1, 1));
    assert_eq!((z3.barcode.dim(1).len(), z3.barcode.dim(2).len()), (0, 0));
}

#[test]
fn cocycles_are_cocycles() {
    // representative H1 cocycle of a square: coboundary vanishes on the (absent) triangles,
    // and it is supported on edges
    let pts = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
    let mut o = opts(1, 3, 1, None);
    o.cocycles = true;
    let out = compute(&Data::from_points(&pts).unwrap(), &o).unwrap();
    let cs = out.cocycles.unwrap();
    assert_eq!(cs.len(), out.barcode.dim(1).len());
    assert_eq!(cs.len(), 1);
    assert!(cs[0].simplices.iter().all(|(v, c)| v.len() == 2 && *c != 0));
}

#[test]
fn ratio_filters_bars() {
    let pts = circle(30);
    let mut o = opts(1, 2, 1, None);
    o.ratio = 2.0;
    let out = compute(&Data::from_points(&pts).unwrap(), &o).unwrap();
    assert!(
        out.barcode
            .dim(1)
            .iter()
            .all(|b: &Bar| b.death > 2.0 * b.birth)
    );
}

#[test]
fn streaming_windows_h1() {
    // many tiny problems: 50 points in R^4
    for w in support::random_windows(1, 50, 50) {
        let out = compute(&w, &opts(1, 2, 1, None)).unwrap();
        assert_eq!(out.barcode.dim(0).len(), 50);
    }
}
