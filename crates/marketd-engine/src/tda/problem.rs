//! What a request asks: its kind, its input (inline points, an inline
//! distance matrix, an upload, or diagrams), the computation's parameters
//! and the summaries wanted. Everything is checked here, before anything
//! runs, so that a bad request is a 422 naming its field, never a failed
//! job.

use super::{ProblemError, TdaConfig};
use marketd_tda::{Bar, Data, Options};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The kinds of job (and of synchronous request).
pub const KINDS: [&str; 3] = ["vietoris-rips", "summaries", "distance"];

/// Where a Vietoris–Rips problem's input is.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Inline(Data),
    Upload(Uuid),
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// Persistent homology of a point cloud or distance matrix, then the
    /// summaries asked for (`summaries` is the request's summary part).
    VietorisRips {
        input: Input,
        options: Options,
        summaries: Option<Map<String, Value>>,
    },
    /// Summaries of given diagrams (`{"0": [[b, d], ...], ...}`).
    Summaries {
        diagrams: Vec<Vec<Bar>>,
        summaries: Map<String, Value>,
    },
    /// Distance between two diagrams.
    Distance {
        a: Vec<Bar>,
        b: Vec<Bar>,
        metric: String,
        p: f64,
    },
}

/// The request fields that are not the summaries' own.
const INPUT_FIELDS: [&str; 9] = [
    "kind",
    "points",
    "distance_matrix",
    "upload_id",
    "max_dim",
    "threshold",
    "modulus",
    "diagrams",
    "metric",
];

fn invalid(m: impl Into<String>) -> ProblemError {
    ProblemError::Invalid(m.into())
}

impl Problem {
    /// Checks a request body. `kind` is the job kind (the synchronous
    /// endpoint passes `vietoris-rips`); a body's own `kind` must agree.
    pub fn parse(
        body: &Value,
        default_kind: &str,
        cfg: &TdaConfig,
    ) -> Result<Problem, ProblemError> {
        let Value::Object(map) = body else {
            return Err(invalid("the body must be a JSON object"));
        };
        let kind = match map.get("kind") {
            None => default_kind,
            Some(Value::String(k)) => k.as_str(),
            Some(_) => return Err(invalid("kind: expected a string")),
        };
        match kind {
            "vietoris-rips" => vietoris_rips(map, cfg),
            "summaries" => summaries_problem(map),
            "distance" => distance_problem(map),
            other => Err(invalid(format!(
                "kind: unknown kind {other:?} (one of {})",
                KINDS.join(", ")
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Problem::VietorisRips { .. } => "vietoris-rips",
            Problem::Summaries { .. } => "summaries",
            Problem::Distance { .. } => "distance",
        }
    }

    /// The upload the problem reads, if any.
    pub fn upload_id(&self) -> Option<Uuid> {
        match self {
            Problem::VietorisRips {
                input: Input::Upload(id),
                ..
            } => Some(*id),
            _ => None,
        }
    }
}

fn vietoris_rips(map: &Map<String, Value>, cfg: &TdaConfig) -> Result<Problem, ProblemError> {
    for f in ["diagrams", "metric", "a", "b", "p"] {
        if map.contains_key(f) {
            return Err(invalid(format!(
                "{f}: not a field of a vietoris-rips request"
            )));
        }
    }
    let given: Vec<&str> = ["points", "distance_matrix", "upload_id"]
        .into_iter()
        .filter(|f| map.contains_key(*f))
        .collect();
    if given.len() != 1 {
        return Err(invalid(
            "exactly one of points, distance_matrix or upload_id is required",
        ));
    }
    let input = match given[0] {
        "points" => Input::Inline(points(&map["points"], cfg)?),
        "distance_matrix" => Input::Inline(distance_matrix(&map["distance_matrix"], cfg)?),
        _ => match &map["upload_id"] {
            Value::String(s) => Input::Upload(
                s.parse()
                    .map_err(|_| invalid("upload_id: not a valid id"))?,
            ),
            _ => return Err(invalid("upload_id: expected a string")),
        },
    };
    let max_dim = match map.get("max_dim") {
        None => 1,
        Some(v) => v
            .as_u64()
            .and_then(|d| usize::try_from(d).ok())
            .ok_or_else(|| invalid("max_dim: expected a non-negative integer"))?,
    };
    if max_dim > cfg.max_dim {
        return Err(invalid(format!(
            "max_dim: at most {} (asked {max_dim})",
            cfg.max_dim
        )));
    }
    let threshold = match map.get("threshold") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let t = v
                .as_f64()
                .ok_or_else(|| invalid("threshold: expected a number"))?;
            if !(t.is_finite() && t > 0.0) {
                return Err(invalid("threshold: must be a positive finite number"));
            }
            Some(t as f32)
        }
    };
    let modulus = match map.get("modulus") {
        None => 2,
        Some(v) => v
            .as_u64()
            .and_then(|m| u32::try_from(m).ok())
            .filter(|&m| marketd_tda::is_prime(m) && m <= marketd_tda::MAX_MODULUS)
            .ok_or_else(|| {
                invalid(format!(
                    "modulus: expected a prime number up to {}",
                    marketd_tda::MAX_MODULUS
                ))
            })?,
    };
    let summaries = summary_part(map)?;
    Ok(Problem::VietorisRips {
        input,
        options: Options {
            max_dim,
            threshold,
            modulus,
            ..Options::default()
        },
        summaries,
    })
}

/// The summary fields of a request (`summaries` and the per-summary
/// parameters), `None` when none was asked for.
fn summary_part(map: &Map<String, Value>) -> Result<Option<Map<String, Value>>, ProblemError> {
    let rest: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| !INPUT_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if rest.is_empty() {
        return Ok(None);
    }
    if !rest.contains_key("summaries") {
        let first = rest.keys().next().map_or("", String::as_str);
        return Err(invalid(format!(
            "{first}: unknown field (summary parameters need \"summaries\")"
        )));
    }
    // Checked now, so that a job never fails on its parameters.
    super::run::check_summaries(&rest)?;
    Ok(Some(rest))
}

fn summaries_problem(map: &Map<String, Value>) -> Result<Problem, ProblemError> {
    let Some(d) = map.get("diagrams") else {
        return Err(invalid("diagrams: required for kind summaries"));
    };
    let diagrams = diagrams(d)?;
    let mut rest = map.clone();
    rest.remove("kind");
    rest.remove("diagrams");
    if !rest.contains_key("summaries") {
        return Err(invalid("summaries: required for kind summaries"));
    }
    super::run::check_summaries(&rest)?;
    Ok(Problem::Summaries {
        diagrams,
        summaries: rest,
    })
}

fn distance_problem(map: &Map<String, Value>) -> Result<Problem, ProblemError> {
    for k in map.keys() {
        if !["kind", "a", "b", "metric", "p"].contains(&k.as_str()) {
            return Err(invalid(format!("{k}: not a field of a distance request")));
        }
    }
    let bars = |f: &str| -> Result<Vec<Bar>, ProblemError> {
        let v = map
            .get(f)
            .ok_or_else(|| invalid(format!("{f}: required for kind distance")))?;
        diagram(v, f)
    };
    let (a, b) = (bars("a")?, bars("b")?);
    let metric = match map.get("metric") {
        None => "bottleneck".to_string(),
        Some(Value::String(m)) if m == "bottleneck" || m == "wasserstein" => m.clone(),
        Some(_) => return Err(invalid("metric: bottleneck or wasserstein")),
    };
    let p = match map.get("p") {
        None => 2.0,
        Some(v) => v
            .as_f64()
            .filter(|p| p.is_finite() && *p >= 1.0)
            .ok_or_else(|| invalid("p: a number of at least 1"))?,
    };
    Ok(Problem::Distance { a, b, metric, p })
}

/// What a key of `diagrams` may be: a dimension up to
/// [`marketd_tda::summaries::MAX_DIMENSION`] as Rust reads a `usize`
/// (optional `+`, leading zeros).
pub const DIMENSION_KEY_PATTERN: &str = "^[+]?0*(?:[0-9]|[1-5][0-9]|6[0-4])$";

/// `{"0": [[b, d], ...], "1": ...}` as bars per dimension.
fn diagrams(v: &Value) -> Result<Vec<Vec<Bar>>, ProblemError> {
    let Value::Object(m) = v else {
        return Err(invalid(
            "diagrams: expected an object of dimension -> [[birth, death], ...]",
        ));
    };
    let mut out: Vec<Vec<Bar>> = Vec::new();
    for (k, bars) in m {
        let dim: usize = k
            .parse()
            .ok()
            .filter(|d| *d <= marketd_tda::summaries::MAX_DIMENSION)
            .ok_or_else(|| invalid(format!("diagrams: {k:?} is not a dimension")))?;
        if out.len() <= dim {
            out.resize(dim + 1, Vec::new());
        }
        out[dim] = diagram(bars, &format!("diagrams.{k}"))?;
    }
    Ok(out)
}

/// `[[birth, death_or_null], ...]`.
fn diagram(v: &Value, field: &str) -> Result<Vec<Bar>, ProblemError> {
    let Value::Array(xs) = v else {
        return Err(invalid(format!("{field}: expected [[birth, death], ...]")));
    };
    if xs.len() > 1_000_000 {
        return Err(ProblemError::TooLarge(format!(
            "{field}: {} bars (at most 1000000)",
            xs.len()
        )));
    }
    xs.iter()
        .enumerate()
        .map(|(i, x)| {
            let pair = x
                .as_array()
                .filter(|p| p.len() == 2)
                .ok_or_else(|| invalid(format!("{field}[{i}]: expected [birth, death]")))?;
            let birth = pair[0]
                .as_f64()
                .filter(|b| b.is_finite())
                .ok_or_else(|| invalid(format!("{field}[{i}]: birth must be a finite number")))?;
            let death = match &pair[1] {
                Value::Null => f64::INFINITY,
                d => d.as_f64().filter(|d| d.is_finite()).ok_or_else(|| {
                    invalid(format!("{field}[{i}]: death must be a number or null"))
                })?,
            };
            if death < birth {
                return Err(invalid(format!("{field}[{i}]: death before birth")));
            }
            Ok(Bar::new(birth, death))
        })
        .collect()
}

fn rows<'a>(
    v: &'a Value,
    field: &str,
    cfg: &TdaConfig,
) -> Result<Vec<&'a Vec<Value>>, ProblemError> {
    let Value::Array(rows) = v else {
        return Err(invalid(format!("{field}: expected an array of rows")));
    };
    if rows.is_empty() {
        return Err(invalid(format!("{field}: no rows")));
    }
    if rows.len() > cfg.max_points {
        return Err(ProblemError::TooLarge(format!(
            "{field}: {} rows (at most {})",
            rows.len(),
            cfg.max_points
        )));
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            r.as_array()
                .ok_or_else(|| invalid(format!("{field}[{i}]: expected an array of numbers")))
        })
        .collect()
}

fn numbers(row: &[Value], field: &str, i: usize) -> Result<Vec<f64>, ProblemError> {
    row.iter()
        .enumerate()
        .map(|(j, x)| {
            x.as_f64()
                .filter(|x| x.is_finite())
                .ok_or_else(|| invalid(format!("{field}[{i}][{j}]: expected a finite number")))
        })
        .collect()
}

fn points(v: &Value, cfg: &TdaConfig) -> Result<Data, ProblemError> {
    let rows = rows(v, "points", cfg)?;
    let dim = rows[0].len();
    if dim == 0 {
        return Err(invalid("points[0]: no coordinates"));
    }
    if dim > cfg.max_coordinates {
        return Err(ProblemError::TooLarge(format!(
            "points: {dim} coordinates per point (at most {})",
            cfg.max_coordinates
        )));
    }
    let mut parsed = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if r.len() != dim {
            return Err(invalid(format!(
                "points[{i}]: {} coordinates, expected {dim} as in points[0]",
                r.len()
            )));
        }
        parsed.push(numbers(r, "points", i)?);
    }
    Data::from_points(&parsed).map_err(|e| invalid(format!("points: {e}")))
}

fn distance_matrix(v: &Value, cfg: &TdaConfig) -> Result<Data, ProblemError> {
    let rows = rows(v, "distance_matrix", cfg)?;
    let n = rows.len();
    let mut parsed = Vec::with_capacity(n);
    for (i, r) in rows.iter().enumerate() {
        if r.len() != n {
            return Err(invalid(format!(
                "distance_matrix[{i}]: {} entries, a full square matrix of {n} rows needs {n}",
                r.len()
            )));
        }
        let xs = numbers(r, "distance_matrix", i)?;
        if let Some(j) = xs.iter().position(|x| *x < 0.0) {
            return Err(invalid(format!(
                "distance_matrix[{i}][{j}]: negative distance"
            )));
        }
        if xs[i] != 0.0 {
            return Err(invalid(format!(
                "distance_matrix[{i}][{i}]: the diagonal must be 0"
            )));
        }
        parsed.push(xs);
    }
    for (i, row) in parsed.iter().enumerate() {
        for (j, x) in row.iter().enumerate().take(i) {
            if *x != parsed[j][i] {
                return Err(invalid(format!(
                    "distance_matrix[{i}][{j}] differs from distance_matrix[{j}][{i}]: the matrix must be symmetric"
                )));
            }
        }
    }
    Data::from_distance_matrix(&parsed).map_err(|e| invalid(format!("distance_matrix: {e}")))
}

/// Simplices of dimension `max_dim + 1` in the complete complex on `n`
/// vertices, C(n, max_dim + 2): the measure of a problem's size.
pub fn simplices(n: usize, max_dim: usize) -> f64 {
    let k = max_dim + 2;
    if n < k {
        return 0.0;
    }
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// SHA-256 (hex) of a request as canonical JSON (keys sorted, as
/// serde_json's map keeps them) and of the upload bytes' hash it names:
/// the cache key of a synchronous result and what tells a retried submit
/// from a different one.
pub fn request_hash(body: &Value, upload_sha256: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(body).unwrap_or_default());
    if let Some(s) = upload_sha256 {
        h.update(b"\0upload:");
        h.update(s.as_bytes());
    }
    hex(&h.finalize())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Problem, ProblemError> {
        Problem::parse(&v, "vietoris-rips", &TdaConfig::default())
    }

    fn err(v: Value) -> String {
        parse(v).unwrap_err().to_string()
    }

    #[test]
    fn inputs_and_parameters_are_checked_with_the_field_named() {
        let ok = parse(
            json!({"points": [[0, 0], [1, 0]], "max_dim": 2, "threshold": 3.5, "modulus": 3}),
        )
        .unwrap();
        match ok {
            Problem::VietorisRips {
                input: Input::Inline(d),
                options,
                summaries,
            } => {
                assert_eq!(d.len(), 2);
                assert_eq!(
                    (options.max_dim, options.threshold, options.modulus),
                    (2, Some(3.5), 3)
                );
                assert_eq!(summaries, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(err(json!({})).contains("exactly one of points"));
        assert!(err(json!({"points": [[0]], "upload_id": "x"})).contains("exactly one"));
        assert_eq!(
            err(json!({"points": [[0, 0], [1]]})),
            "points[1]: 1 coordinates, expected 2 as in points[0]"
        );
        assert_eq!(
            err(json!({"points": [[0, "a"]]})),
            "points[0][1]: expected a finite number"
        );
        assert_eq!(
            err(json!({"points": [[0]], "max_dim": 9})),
            "max_dim: at most 4 (asked 9)"
        );
        assert_eq!(
            err(json!({"points": [[0]], "modulus": 4})),
            "modulus: expected a prime number up to 65521"
        );
        // A prime the computation cannot take is refused with the request,
        // not by a job that fails later.
        assert_eq!(
            err(json!({"points": [[0]], "modulus": 65537})),
            "modulus: expected a prime number up to 65521"
        );
        assert!(parse(json!({"points": [[0]], "modulus": 65521})).is_ok());
        // Summary parameters are checked with the request, asked for or not.
        assert_eq!(
            err(json!({"points": [[0]], "summaries": ["landscape"], "landscape": {"samples": 0}})),
            "summaries: landscape.samples: 0 samples: must be between 1 and 10000"
        );
        assert_eq!(
            err(
                json!({"points": [[0]], "summaries": [], "amplitude": {"metric": "heat", "samples": 513}})
            ),
            "summaries: amplitude.samples: 513 samples: images take at most 512 per side"
        );
        assert_eq!(
            err(json!({"points": [[0]], "summaries": [], "silhouette": [null, null]})),
            "summaries: silhouette: expected an object"
        );
        assert_eq!(
            err(json!({"points": [[0]], "summaries": [], "dims": [65]})),
            "summaries: dims: dimension 65: at most 64"
        );
        assert_eq!(
            err(json!({"points": [[0]], "summaries": ["nope"]})),
            "summaries: summaries[0]: unknown summary \"nope\" (expected one of landscape, silhouette, betti-curve, persistence-image, entropy, amplitude)"
        );
        assert_eq!(
            err(json!({"points": [[0]], "threshold": -1})),
            "threshold: must be a positive finite number"
        );
        assert_eq!(
            err(json!({"points": [[0]], "nope": 1})),
            "nope: unknown field (summary parameters need \"summaries\")"
        );
        assert_eq!(
            err(json!({"kind": "x", "points": [[0]]})),
            "kind: unknown kind \"x\" (one of vietoris-rips, summaries, distance)"
        );
        assert_eq!(
            err(json!({"distance_matrix": [[0, 1], [2, 0]]})),
            "distance_matrix[1][0] differs from distance_matrix[0][1]: the matrix must be symmetric"
        );
        assert_eq!(
            err(json!({"distance_matrix": [[0, 1]]})),
            "distance_matrix[0]: 2 entries, a full square matrix of 1 rows needs 1"
        );
        let big = TdaConfig {
            max_points: 2,
            ..TdaConfig::default()
        };
        let e =
            Problem::parse(&json!({"points": [[0], [1], [2]]}), "vietoris-rips", &big).unwrap_err();
        assert_eq!(
            e,
            ProblemError::TooLarge("points: 3 rows (at most 2)".into())
        );
    }

    #[test]
    fn the_dimension_key_pattern_agrees_with_the_parser() {
        let re = regex::Regex::new(DIMENSION_KEY_PATTERN).unwrap();
        for k in [
            "0",
            "1",
            "9",
            "10",
            "59",
            "60",
            "64",
            "+3",
            "007",
            "+0064",
            "65",
            "70",
            "99",
            "100",
            "",
            "+",
            "-1",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "a",
            "18446744073709551616",
        ] {
            let parsed = diagrams(&json!({ k: [] })).is_ok();
            assert_eq!(parsed, re.is_match(k), "{k:?}");
        }
    }

    #[test]
    fn diagrams_and_distances() {
        let p = Problem::parse(
            &json!({"kind": "distance", "a": [[0, 1], [0, null]], "b": [[0, 2]], "metric": "wasserstein", "p": 1}),
            "vietoris-rips",
            &TdaConfig::default(),
        )
        .unwrap();
        assert_eq!(
            p,
            Problem::Distance {
                a: vec![Bar::new(0.0, 1.0), Bar::new(0.0, f64::INFINITY)],
                b: vec![Bar::new(0.0, 2.0)],
                metric: "wasserstein".into(),
                p: 1.0
            }
        );
        let e = Problem::parse(
            &json!({"kind": "distance", "a": [[1, 0]], "b": []}),
            "x",
            &TdaConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "a[0]: death before birth");
    }

    #[test]
    fn sizes_and_hashes() {
        assert_eq!(simplices(4, 1), 4.0);
        assert_eq!(simplices(100, 1), 161_700.0);
        assert_eq!(simplices(2, 1), 0.0);
        let a = request_hash(&json!({"points": [[0, 1]], "max_dim": 1}), None);
        let b = request_hash(&json!({"max_dim": 1, "points": [[0, 1]]}), None);
        assert_eq!(a, b, "key order does not matter");
        assert_ne!(
            a,
            request_hash(&json!({"points": [[0, 1]], "max_dim": 2}), None)
        );
        assert_ne!(
            a,
            request_hash(&json!({"points": [[0, 1]], "max_dim": 1}), Some("ab"))
        );
        assert_eq!(a.len(), 64);
    }
}
