//! TEMPORARY (removed when the tda-summaries branch merges): the interface
//! the service is written against, so that it builds meanwhile.
#![allow(missing_docs, clippy::new_without_default)]
use crate::{Computation, Data, Error, Options};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Control {
    canceled: AtomicBool,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Queued,
    Distances,
    Dimension(usize),
    Cocycles,
    Done,
}
impl Stage {
    pub fn as_str(&self) -> String {
        match self {
            Stage::Queued => "queued".into(),
            Stage::Distances => "distances".into(),
            Stage::Dimension(d) => format!("h{d}"),
            Stage::Cocycles => "cocycles".into(),
            Stage::Done => "done".into(),
        }
    }
}
impl Control {
    pub fn new() -> Self {
        Control::default()
    }
    pub fn cancel(&self) {
        self.canceled.store(true, Ordering::Relaxed);
    }
    pub fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Relaxed)
    }
    pub fn progress(&self) -> (Stage, f64) {
        (Stage::Queued, 0.0)
    }
}
pub fn compute_controlled(
    data: &Data,
    opts: &Options,
    control: &Control,
) -> Result<Computation, Error> {
    if control.is_canceled() {
        return Err(Error::Canceled);
    }
    crate::compute(data, opts)
}
pub mod summaries {
    use crate::{Bar, Barcode, Error};
    #[derive(Debug, Clone, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SummarySpec {
        pub summaries: Vec<String>,
        pub landscape: Option<serde_json::Value>,
    }
    pub fn summarize(
        _b: &Barcode,
        _s: &SummarySpec,
    ) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
        Err(Error::Invalid("summaries are not available yet".into()))
    }
    #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
    pub enum DistanceKind {
        Bottleneck,
        Wasserstein,
    }
    pub fn distance(a: &[Bar], b: &[Bar], kind: DistanceKind, p: f64) -> Result<f64, Error> {
        Ok(match kind {
            DistanceKind::Bottleneck => crate::summaries::bottleneck(a, b),
            DistanceKind::Wasserstein => crate::summaries::wasserstein(a, b, p),
        })
    }
}
