//! Parsers: no panic on any input, clear errors naming line and column, and the CLI end to end.

use marketd_tda::{Data, Error, Format, parse};
use proptest::prelude::*;

const FORMATS: [Format; 7] = [
    Format::PointCloud,
    Format::Distance,
    Format::LowerDistance,
    Format::UpperDistance,
    Format::Sparse,
    Format::Dipha,
    Format::Binary,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn no_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        for f in FORMATS {
            let _ = parse(&bytes, f);
        }
    }

    #[test]
    fn no_panic_on_number_like_text(s in "[0-9 ,.eE+\\-\n\tnaifINF]{0,120}") {
        for f in FORMATS {
            if let Ok(d) = parse(s.as_bytes(), f) {
                // whatever parses must also compute without panicking
                let _ = marketd_tda::compute(&d, &marketd_tda::Options { max_dim: 2, ..Default::default() });
            }
        }
    }

    #[test]
    fn no_panic_on_dipha_like_headers(n in -3i64..6, tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut b = Vec::new();
        b.extend_from_slice(&8067171840i64.to_le_bytes());
        b.extend_from_slice(&7i64.to_le_bytes());
        b.extend_from_slice(&n.to_le_bytes());
        b.extend_from_slice(&tail);
        let _ = parse(&b, Format::Dipha);
    }

    #[test]
    fn binary_roundtrip(vals in prop::collection::vec(0.0f32..10.0, 0..5)) {
        // only triangular counts are valid
        let n = vals.len();
        let mut b = Vec::new();
        for v in &vals {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let tri = (0..10).any(|m: usize| m * m.saturating_sub(1) / 2 == n);
        prop_assert_eq!(parse(&b, Format::Binary).is_ok(), tri);
    }
}

fn parse_err(text: &str, f: Format) -> (usize, usize, String) {
    match parse(text.as_bytes(), f) {
        Err(Error::Parse {
            line,
            column,
            message,
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn ragged_point_cloud_names_line() {
    let (line, _, msg) = parse_err("1,2,3\n4,5,6\n7,8\n", Format::PointCloud);
    assert_eq!(line, 3);
    assert!(msg.contains("ragged"), "{msg}");
}

#[test]
fn errors_name_line_and_column() {
    let (line, col, msg) = parse_err("1\n2,nan\n", Format::LowerDistance);
    assert_eq!((line, col), (2, 3));
    assert!(msg.contains("NaN"), "{msg}");
    let (line, col, msg) = parse_err("1\n2,-3\n", Format::LowerDistance);
    assert_eq!((line, col), (2, 3));
    assert!(msg.contains("negative"), "{msg}");
    let (line, col, _) = parse_err("0,1,2\n1,0,x\n2,1,0\n", Format::Distance);
    assert_eq!((line, col), (2, 5));
    let (line, _, _) = parse_err("0,1\n1,0,5\n", Format::Distance);
    assert_eq!(line, 2);
    let (line, col, _) = parse_err("0 1 0.5\n1 2\n", Format::Sparse);
    assert_eq!((line, col), (2, 1));
    let (line, col, _) = parse_err("0 1 0.5\n1 -2 3\n", Format::Sparse);
    assert_eq!((line, col), (2, 3));
    let (line, _, _) = parse_err("1\n2 3\n4 5\n", Format::LowerDistance);
    assert_eq!(line, 3);
}

#[test]
fn formats_agree() {
    // the same 4-point metric in every text format
    let full = "0,1,2,3\n1,0,4,5\n2,4,0,6\n3,5,6,0\n";
    let lower = "\n1\n2,4\n3,5,6\n";
    let upper = "1 2 3\n4 5\n6\n";
    let sparse = "0 1 1\n0 2 2\n0 3 3\n1 2 4\n1 3 5\n2 3 6\n";
    let a = parse(full.as_bytes(), Format::Distance).unwrap();
    let b = parse(lower.as_bytes(), Format::LowerDistance).unwrap();
    let c = parse(upper.as_bytes(), Format::UpperDistance).unwrap();
    assert_eq!(a, b);
    assert_eq!(a, c);
    let mut bin = Vec::new();
    for v in [1f32, 2., 4., 3., 5., 6.] {
        bin.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(parse(&bin, Format::Binary).unwrap(), a);
    let mut dipha = Vec::new();
    dipha.extend_from_slice(&8067171840i64.to_le_bytes());
    dipha.extend_from_slice(&7i64.to_le_bytes());
    dipha.extend_from_slice(&4i64.to_le_bytes());
    let m = [
        [0., 1., 2., 3.],
        [1., 0., 4., 5.],
        [2., 4., 0., 6.],
        [3., 5., 6., 0.],
    ];
    for r in m {
        for v in r {
            dipha.extend_from_slice(&f64::to_le_bytes(v));
        }
    }
    assert_eq!(parse(&dipha, Format::Dipha).unwrap(), a);
    let s = parse(sparse.as_bytes(), Format::Sparse).unwrap();
    let o = marketd_tda::Options {
        max_dim: 2,
        ..Default::default()
    };
    let bs = marketd_tda::compute(&s, &o).unwrap().barcode;
    let ba = marketd_tda::compute(&a, &o).unwrap().barcode;
    assert_eq!(bs, ba);
    let d = Data::from_distance_matrix(&m).unwrap();
    assert_eq!(d, a);
}

#[test]
fn cli_reads_stdin_and_prints_ripser_text_and_json() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_marketd-tda");
    let run = |args: &[&str], input: &str| {
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let square = "0 0\n1 0\n1 1\n0 1\n";
    let out = run(&["--format", "point-cloud", "--dim", "1"], square);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("persistence intervals in dim 1:\n [1,1.41421)\n"),
        "{text}"
    );
    let out = run(
        &[
            "--format",
            "point-cloud",
            "--dim",
            "1",
            "--json",
            "--cocycles",
            "-",
        ],
        square,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dims"][1][0]["birth"], 1.0);
    assert!(
        v["dims"][0]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["death"].is_null())
    );
    assert_eq!(v["cocycles"].as_array().unwrap().len(), 1);
    let out = run(&["--format", "point-cloud"], "1 2\n3\n");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 2"), "{err}");
    let out = run(&["--format", "distance", "--modulus", "4"], "0 1\n1 0\n");
    assert!(!out.status.success());
}
