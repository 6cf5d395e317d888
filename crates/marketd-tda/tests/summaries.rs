//! Summaries and distances against their references: fixtures written by
//! `scripts/reference/tda_summaries.py` from giotto-tda 0.6, persim 0.4 and GUDHI 3.14 (see
//! the script for what each file holds), and a brute-force oracle (every matching, the diagonal
//! included) for the bottleneck and Wasserstein distances on small random diagrams.
//!
//! Tolerances: 1e-9 relative to the largest value compared for everything giotto-tda, persim
//! and GUDHI compute by the same formula (they differ from ours only in the order of floating
//! point operations); Betti curves exactly; the exact landscape norms against giotto-tda's
//! Riemann sum on 20,000 points within 1e-3 relative (the sum's own error); distances within
//! 1e-9 of GUDHI's exact bottleneck and 1e-8 relative of hera's Wasserstein (run with relative
//! error 1e-12).

use std::collections::BTreeMap;
use std::path::PathBuf;

use marketd_tda::summaries::{
    self, AmplitudeMetric, AmplitudeOptions, DistanceKind, EntropyBase, ImageWeight, SummarySpec,
    amplitude, bottleneck, entropy, image_ranges, landscape, landscape_norms, linspace,
    persistence_image_persim, sample_ranges, summarize, wasserstein,
};
use marketd_tda::{Bar, Barcode};
use proptest::prelude::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/summaries")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

fn barcode(v: &Value) -> Barcode {
    Barcode {
        dims: v
            .as_array()
            .unwrap()
            .iter()
            .map(|bars| {
                bars.as_array()
                    .unwrap()
                    .iter()
                    .map(|b| {
                        Bar::new(
                            b[0].as_f64().unwrap(),
                            b[1].as_f64().unwrap_or(f64::INFINITY),
                        )
                    })
                    .collect()
            })
            .collect(),
    }
}

fn diagrams() -> BTreeMap<String, Barcode> {
    let d = fixture("diagrams.json");
    d["diagrams"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), barcode(v)))
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .flat_map(|x| match x {
            Value::Array(_) => floats(x),
            _ => vec![x.as_f64().unwrap()],
        })
        .collect()
}

/// Asserts that `ours` equals `theirs` within `rel` times the largest magnitude of `theirs`
/// (or `rel` absolute if that is below 1).
fn close(what: &str, ours: &[f64], theirs: &[f64], rel: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let scale = theirs.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!(
            (a - b).abs() <= rel * scale,
            "{what}[{i}]: ours {a}, reference {b} (scale {scale})"
        );
    }
}

const SAMPLES: usize = 40;
const LAYERS: usize = 3;
const PIXELS: usize = 12;
const SIGMA: f64 = 0.1;

fn spec(extra: Value) -> SummarySpec {
    let mut v = json!({
        "summaries": ["landscape", "silhouette", "betti-curve", "persistence-image", "entropy"],
        "landscape": {"layers": LAYERS, "samples": SAMPLES},
        "silhouette": {"power": 1.0, "samples": SAMPLES},
        "betti_curve": {"samples": SAMPLES},
        "persistence_image": {"sigma": SIGMA, "pixels": [PIXELS, PIXELS]},
        "entropy": {"base": "2"},
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

#[test]
fn fixtures_were_made_with_these_parameters() {
    let m = &fixture("diagrams.json")["meta"];
    assert_eq!(m["samples"], json!(SAMPLES));
    assert_eq!(m["layers"], json!(LAYERS));
    assert_eq!(m["pixels"], json!(PIXELS));
    assert_eq!(m["sigma"], json!(SIGMA));
    assert!(m["versions"]["gudhi"].as_str().unwrap() >= "3.14");
}

#[test]
fn vectorizations_equal_giotto_tda() {
    let g = fixture("giotto.json");
    let ds = diagrams();
    assert!(ds.len() >= 10);
    for (name, bc) in &ds {
        let r = &g[name];
        let out = summarize(bc, &spec(json!({}))).unwrap();
        for d in 0..bc.num_dims() {
            let k = d.to_string();
            let what = |s: &str| format!("{name} H{d} {s}");
            // Betti curves: grid, then the counts exactly
            let bo = &out["betti_curve"][&k];
            close(
                &what("betti grid"),
                &floats(&bo["grid"]),
                &floats(&r["betti_curve"]["grid"][&k]),
                1e-12,
            );
            assert_eq!(
                floats(&bo["values"]),
                floats(&r["betti_curve"]["values"][&k]),
                "{}",
                what("betti")
            );
            // landscapes: same grid, K levels, no √2
            let lo = &out["landscape"][&k];
            close(
                &what("landscape grid"),
                &floats(&lo["grid"]),
                &floats(&r["landscape"]["grid"][&k]),
                1e-12,
            );
            close(
                &what("landscape"),
                &floats(&lo["values"]),
                &floats(&r["landscape"]["values"][&k]),
                1e-9,
            );
            close(
                &what("silhouette p1"),
                &floats(&out["silhouette"][&k]["values"]),
                &floats(&r["silhouette_power1"][&k]),
                1e-9,
            );
            close(
                &what("image"),
                &floats(&out["persistence_image"][&k]["values"]),
                &floats(&r["persistence_image"][&k]),
                1e-9,
            );
            // the image's axes are giotto's samplings
            let s = floats(&r["persistence_image_samplings"][&k]);
            close(
                &what("image birth axis"),
                &floats(&out["persistence_image"][&k]["birth"]),
                &s[..PIXELS],
                1e-12,
            );
            close(
                &what("image pers axis"),
                &floats(&out["persistence_image"][&k]["persistence"]),
                &s[PIXELS..],
                1e-12,
            );
            for (norm, key) in [
                (false, "entropy_normalize_false"),
                (true, "entropy_normalize_true"),
            ] {
                let ours = entropy(bc.dim(d), EntropyBase::Two, norm);
                match r[key][&k].as_f64() {
                    Some(x) => {
                        let o = ours.unwrap_or_else(|| panic!("{}: none", what(key)));
                        assert!((o - x).abs() < 1e-12, "{}: {o} vs {x}", what(key));
                    }
                    None => assert_eq!(ours, None, "{}", what(key)),
                }
            }
        }
        let out2 = summarize(bc, &spec(json!({"summaries": ["silhouette"], "silhouette": {"power": 2.0, "samples": SAMPLES}}))).unwrap();
        for d in 0..bc.num_dims() {
            let k = d.to_string();
            close(
                &format!("{name} H{d} silhouette p2"),
                &floats(&out2["silhouette"][&k]["values"]),
                &floats(&r["silhouette_power2"][&k]),
                1e-9,
            );
        }
    }
}

#[test]
fn amplitudes_equal_giotto_tda() {
    let g = fixture("giotto.json");
    let mut checked = 0;
    for (name, bc) in &diagrams() {
        let dims: Vec<usize> = (0..bc.num_dims()).collect();
        for (metric_name, runs) in g[name]["amplitude"].as_object().unwrap() {
            if metric_name == "landscape_fine" {
                continue;
            }
            let metric: AmplitudeMetric = serde_json::from_value(json!(metric_name)).unwrap();
            for run in runs.as_array().unwrap() {
                let p = &run["params"];
                let opts = AmplitudeOptions {
                    p: p["p"].as_f64().unwrap_or(2.0),
                    samples: p["n_bins"].as_u64().map_or(100, |x| x as usize),
                    layers: p["n_layers"].as_u64().map_or(1, |x| x as usize),
                    sigma: p["sigma"].as_f64().unwrap_or(0.1),
                    power: p["power"].as_f64().unwrap_or(1.0),
                };
                let lines = sample_ranges(bc, &dims);
                let images = image_ranges(bc, &dims);
                for d in &dims {
                    let ours = amplitude(bc.dim(*d), metric, &opts, lines[*d], images[*d]);
                    let theirs = run["values"][d.to_string()].as_f64().unwrap();
                    assert!(
                        (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0),
                        "{name} H{d} {metric_name} {p}: ours {ours}, giotto {theirs}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 200, "{checked}");
}

#[test]
fn amplitude_through_the_spec() {
    let g = fixture("giotto.json");
    let bc = &diagrams()["sphere_3_192_d2"];
    let spec: SummarySpec = serde_json::from_value(json!({
        "summaries": ["amplitude"],
        "amplitude": {"metric": "landscape", "p": 2.0, "samples": SAMPLES, "layers": LAYERS},
    }))
    .unwrap();
    let out = summarize(bc, &spec).unwrap();
    let theirs = &g["sphere_3_192_d2"]["amplitude"]["landscape"][0];
    assert_eq!(theirs["params"]["n_layers"], json!(LAYERS));
    for d in 0..3 {
        let k = d.to_string();
        let (a, b) = (
            out["amplitude"][&k].as_f64().unwrap(),
            theirs["values"][&k].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9 * b.max(1.0), "H{d}: {a} vs {b}");
    }
}

#[test]
fn exact_landscape_norms_against_a_fine_grid() {
    let g = fixture("giotto.json");
    for (name, bc) in &diagrams() {
        if bc.dims.iter().any(|d| d.len() > 700) {
            continue; // the exact norms of K levels are quadratic: the small diagrams suffice
        }
        for run in g[name]["amplitude"]["landscape_fine"].as_array().unwrap() {
            let p = run["params"]["p"].as_f64().unwrap();
            assert_eq!(run["params"]["n_layers"], json!(LAYERS));
            for d in 0..bc.num_dims() {
                let n = landscape_norms(bc.dim(d), Some(LAYERS));
                let ours = if p == 1.0 { n.l1 } else { n.l2 };
                let theirs = run["values"][d.to_string()].as_f64().unwrap();
                assert!(
                    (ours - theirs).abs() <= 1e-3 * theirs.max(1e-9),
                    "{name} H{d} L{p}: exact {ours}, giotto on 20000 points {theirs}"
                );
            }
        }
    }
}

#[test]
fn persim_images() {
    let f = fixture("persim.json");
    for (name, bc) in &diagrams() {
        for d in 0..bc.num_dims() {
            let r = &f[name][d.to_string()];
            let be = floats(&r["birth_edges"]);
            let pe = floats(&r["pers_edges"]);
            let im =
                persistence_image_persim(bc.dim(d), &be, &pe, SIGMA, ImageWeight::Persistence(1.0));
            close(
                &format!("{name} H{d} persim"),
                &im.values.concat(),
                &floats(&r["values"]),
                1e-9,
            );
        }
        // the spec's persim convention uses the same edges
        let out = summarize(bc, &spec(json!({"summaries": ["persistence-image"],
            "persistence_image": {"sigma": SIGMA, "pixels": [PIXELS, PIXELS], "convention": "persim"}}))).unwrap();
        for d in 0..bc.num_dims() {
            let k = d.to_string();
            close(
                &format!("{name} H{d} persim spec"),
                &floats(&out["persistence_image"][&k]["values"]),
                &floats(&f[name][&k]["values"]),
                1e-9,
            );
        }
    }
}

#[test]
fn gudhi_landscapes_carry_sqrt2_and_entropy_is_natural_log() {
    let f = fixture("gudhi.json");
    let mut n = 0;
    for (name, bc) in &diagrams() {
        for (k, r) in f[name]["landscape"].as_object().unwrap() {
            let d: usize = k.parse().unwrap();
            let range = floats(&r["range"]);
            let (grid, _) = linspace(range[0], range[1], SAMPLES);
            let ours: Vec<f64> = landscape(bc.dim(d), LAYERS, &grid)
                .concat()
                .iter()
                .map(|x| x * std::f64::consts::SQRT_2)
                .collect();
            close(
                &format!("{name} H{d} gudhi landscape"),
                &ours,
                &floats(&r["values"]),
                1e-9,
            );
            n += 1;
        }
        for (k, x) in f[name]["entropy"].as_object().unwrap() {
            let d: usize = k.parse().unwrap();
            let ours = entropy(bc.dim(d), EntropyBase::E, false).unwrap();
            let theirs = x.as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{name} H{d} entropy {ours} vs gudhi {theirs}"
            );
        }
    }
    assert!(n >= 15, "{n}");
}

#[test]
fn distances_equal_gudhi_and_hera() {
    let ds = diagrams();
    let rows = fixture("distances.json");
    assert!(rows.as_array().unwrap().len() >= 15);
    for r in rows.as_array().unwrap() {
        let (a, b) = (&ds[r["a"].as_str().unwrap()], &ds[r["b"].as_str().unwrap()]);
        let d = r["dim"].as_u64().unwrap() as usize;
        let what = format!("{} vs {} H{d}", r["a"], r["b"]);
        let check = |ours: f64, theirs: &Value, rel: f64, kind: &str| match theirs.as_f64() {
            None => assert_eq!(ours, f64::INFINITY, "{what} {kind}"),
            Some(t) => assert!(
                (ours - t).abs() <= rel * t.max(1.0),
                "{what} {kind}: ours {ours}, reference {t}"
            ),
        };
        check(
            bottleneck(a.dim(d), b.dim(d)),
            &r["bottleneck"],
            1e-9,
            "bottleneck",
        );
        let via_api =
            summaries::distance(a.dim(d), b.dim(d), DistanceKind::Bottleneck, 1.0).unwrap();
        check(via_api, &r["bottleneck"], 1e-9, "bottleneck via distance()");
        for q in [1, 2] {
            let ours = wasserstein(a.dim(d), b.dim(d), q as f64);
            check(ours, &r[format!("wasserstein_{q}")], 1e-8, &format!("W{q}"));
        }
    }
}

/// Every partial matching of `a` into `b` (the unmatched points of both go to the diagonal):
/// (bottleneck, Σ cost^q) minimised independently.
fn brute_force(a: &[(f64, f64)], b: &[(f64, f64)], q: f64) -> (f64, f64) {
    fn rec(
        i: usize,
        a: &[(f64, f64)],
        b: &[(f64, f64)],
        used: &mut Vec<bool>,
        q: f64,
        cur: (f64, f64),
        best: &mut (f64, f64),
    ) {
        let diag = |p: (f64, f64)| (p.1 - p.0) / 2.0;
        if i == a.len() {
            let mut c = cur;
            for (j, &y) in b.iter().enumerate() {
                if !used[j] {
                    c = (c.0.max(diag(y)), c.1 + diag(y).powf(q));
                }
            }
            *best = (best.0.min(c.0), best.1.min(c.1));
            return;
        }
        let x = a[i];
        rec(
            i + 1,
            a,
            b,
            used,
            q,
            (cur.0.max(diag(x)), cur.1 + diag(x).powf(q)),
            best,
        );
        for j in 0..b.len() {
            if !used[j] {
                used[j] = true;
                let y = b[j];
                let c = (x.0 - y.0).abs().max((x.1 - y.1).abs());
                rec(
                    i + 1,
                    a,
                    b,
                    used,
                    q,
                    (cur.0.max(c), cur.1 + c.powf(q)),
                    best,
                );
                used[j] = false;
            }
        }
    }
    let mut best = (f64::INFINITY, f64::INFINITY);
    rec(0, a, b, &mut vec![false; b.len()], q, (0.0, 0.0), &mut best);
    best
}

fn small_diagram() -> impl Strategy<Value = Vec<(f64, f64)>> {
    // coordinates on a coarse grid sometimes, so that ties are common
    prop::collection::vec((0u32..40, 1u32..40, any::<bool>()), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(b, l, coarse)| {
                let (b, l) = if coarse {
                    ((b / 10) as f64 * 0.25, (l / 10 + 1) as f64 * 0.25)
                } else {
                    (b as f64 * 0.0317, l as f64 * 0.0291)
                };
                (b, b + l)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn distances_equal_brute_force(a in small_diagram(), b in small_diagram(), q in prop::sample::select(vec![1.0, 2.0, 3.5])) {
        let (bn, ws) = brute_force(&a, &b, q);
        let bars = |v: &[(f64, f64)]| v.iter().map(|&(x, y)| Bar::new(x, y)).collect::<Vec<_>>();
        let (ba, bb) = (bars(&a), bars(&b));
        let ours_b = bottleneck(&ba, &bb);
        prop_assert!((ours_b - bn).abs() < 1e-12, "bottleneck {} vs brute force {}", ours_b, bn);
        let ours_w = wasserstein(&ba, &bb, q);
        let brute_w = ws.powf(1.0 / q);
        prop_assert!((ours_w - brute_w).abs() < 1e-9 * brute_w.max(1.0), "W{} {} vs brute force {}", q, ours_w, brute_w);
        // symmetric, and the triangle through the empty diagram
        prop_assert_eq!(ours_b, bottleneck(&bb, &ba));
        prop_assert!(ours_b <= bottleneck(&ba, &[]).max(bottleneck(&[], &bb)) + 1e-12);
    }
}

#[test]
fn cli_prints_summaries() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: marketd_tda::cli::TdaArgs,
    }
    // four points on a unit square: one H1 bar [1, √2)
    let path = std::env::temp_dir().join(format!("marketd-tda-square-{}.txt", std::process::id()));
    std::fs::write(&path, "1\n1.41421356 1\n1 1.41421356 1\n").unwrap();
    let run = |extra: &[&str]| -> Result<Value, String> {
        let mut argv = vec!["marketd-tda", "--format", "lower-distance", "--dim", "1"];
        argv.extend_from_slice(extra);
        argv.push(path.to_str().unwrap());
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        marketd_tda::cli::run(&cli.args, &mut out).map_err(|e| e.to_string())?;
        Ok(serde_json::from_slice(&out).unwrap())
    };
    let v = run(&[
        "--summary",
        "landscape",
        "--summary",
        "entropy",
        "--layers",
        "2",
        "--samples",
        "5",
    ])
    .unwrap();
    let l = &v["landscape"]["1"];
    assert_eq!(l["values"].as_array().unwrap().len(), 2);
    let peak = l["values"][0][2].as_f64().unwrap();
    assert!(
        (peak - (std::f64::consts::SQRT_2 - 1.0) / 2.0).abs() < 1e-6,
        "{peak}"
    );
    assert_eq!(l["values"][1], json!([0.0, 0.0, 0.0, 0.0, 0.0]));
    assert_eq!(v["entropy"]["1"], json!(0.0));
    let v = run(&[
        "--summary-spec",
        r#"{"summaries": ["amplitude"], "amplitude": {"metric": "bottleneck"}}"#,
    ])
    .unwrap();
    assert!(
        (v["amplitude"]["1"].as_f64().unwrap() - (std::f64::consts::SQRT_2 - 1.0) / 2.0).abs()
            < 1e-6
    );
    let e = run(&["--summary", "landscapes"]).unwrap_err();
    assert!(
        e.starts_with("summaries[0]: unknown summary \"landscapes\""),
        "{e}"
    );
    let _ = std::fs::remove_file(&path);
}
