//! Computing a checked [`Problem`] on a blocking thread, cancellable and
//! observable ([`Control`]), into the JSON the API answers.

use super::ProblemError;
use super::problem::Problem;
use marketd_tda::{Bar, Barcode, Data};
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub use marketd_tda::{Control, Stage};

/// Checks the summary part of a request (names and parameters) without
/// computing anything.
pub fn check_summaries(spec: &Map<String, Value>) -> Result<(), ProblemError> {
    summary_spec(spec)?
        .validate()
        .map_err(|e| ProblemError::Invalid(format!("summaries: {e}")))
}

fn summary_spec(
    spec: &Map<String, Value>,
) -> Result<marketd_tda::summaries::SummarySpec, ProblemError> {
    // serde reads a struct from an array too (`"landscape": [5, 100]`):
    // the parameters are objects, as documented.
    for (k, v) in spec {
        if k != "summaries" && k != "dims" && !(v.is_object() || v.is_null()) {
            return Err(ProblemError::Invalid(format!(
                "summaries: {k}: expected an object"
            )));
        }
    }
    serde_json::from_value(Value::Object(spec.clone()))
        .map_err(|e| ProblemError::Invalid(format!("summaries: {e}")))
}

/// `{"0": [[birth, death_or_null], ...], ...}`.
pub fn diagrams_json(barcode: &Barcode) -> Value {
    let mut m = Map::new();
    for (k, bars) in barcode.dims.iter().enumerate() {
        m.insert(k.to_string(), bars_json(bars));
    }
    Value::Object(m)
}

fn bars_json(bars: &[Bar]) -> Value {
    Value::Array(
        bars.iter()
            .map(|b| {
                json!([
                    b.birth,
                    if b.death.is_finite() {
                        json!(b.death)
                    } else {
                        Value::Null
                    }
                ])
            })
            .collect(),
    )
}

fn summarize(
    barcode: &Barcode,
    spec: &Map<String, Value>,
) -> Result<Map<String, Value>, ProblemError> {
    let spec = summary_spec(spec)?;
    marketd_tda::summaries::summarize(barcode, &spec)
        .map_err(|e| ProblemError::Invalid(format!("summaries: {e}")))
}

/// Runs `problem` (its input already loaded into `data` for a Vietoris–Rips
/// problem) to its answer. Blocking: call it on a blocking thread.
pub fn compute(
    problem: &Problem,
    data: Option<&Data>,
    control: &Control,
) -> Result<Value, ProblemError> {
    match problem {
        Problem::VietorisRips {
            options, summaries, ..
        } => {
            let data = data.ok_or_else(|| ProblemError::Failed("no input".into()))?;
            let out =
                marketd_tda::compute_controlled(data, options, control).map_err(|e| match e {
                    marketd_tda::Error::Canceled => ProblemError::Canceled,
                    marketd_tda::Error::TooLarge(m) => ProblemError::TooLarge(m),
                    marketd_tda::Error::Invalid(m) => ProblemError::Invalid(m),
                    other => ProblemError::Failed(other.to_string()),
                })?;
            let mut answer = Map::new();
            answer.insert("diagrams".into(), diagrams_json(&out.barcode));
            if let Some(spec) = summaries {
                answer.extend(summarize(&out.barcode, spec)?);
            }
            answer.insert("points".into(), json!(data.len()));
            answer.insert("max_dim".into(), json!(options.max_dim));
            Ok(Value::Object(answer))
        }
        Problem::Summaries {
            diagrams,
            summaries,
        } => {
            let barcode = Barcode {
                dims: diagrams.clone(),
            };
            Ok(Value::Object(summarize(&barcode, summaries)?))
        }
        Problem::Distance { a, b, metric, p } => {
            let kind = match metric.as_str() {
                "wasserstein" => marketd_tda::summaries::DistanceKind::Wasserstein,
                _ => marketd_tda::summaries::DistanceKind::Bottleneck,
            };
            let d = marketd_tda::summaries::distance(a, b, kind, *p)
                .map_err(|e| ProblemError::Invalid(e.to_string()))?;
            // Diagrams with different numbers of infinite bars are
            // infinitely far apart: JSON has no infinity, so `null` and a flag.
            Ok(
                json!({"distance": d.is_finite().then_some(d), "infinite": !d.is_finite(), "metric": metric, "p": p}),
            )
        }
    }
}

/// A problem and its data shared with a blocking thread.
pub struct Job {
    pub problem: Problem,
    pub data: Option<Data>,
    pub control: Arc<Control>,
}

impl Job {
    /// Runs on tokio's blocking pool.
    pub async fn run(self) -> Result<Value, ProblemError> {
        tokio::task::spawn_blocking(move || {
            compute(&self.problem, self.data.as_ref(), &self.control)
        })
        .await
        .map_err(|e| ProblemError::Failed(format!("the computation panicked: {e}")))?
    }
}
