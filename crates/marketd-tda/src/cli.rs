//! The `marketd tda` command: arguments and runner.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::error::Error;
use crate::input::{Format, parse};
use crate::summaries::{SummarySpec, summarize};
use crate::{Options, compute};

/// Arguments of `marketd tda` (flags spelled as Ripser's where they overlap).
#[derive(clap::Args, Debug, Clone)]
pub struct TdaArgs {
    /// Input file (stdin if absent or `-`).
    pub file: Option<PathBuf>,
    /// Input format.
    #[arg(long, value_enum, default_value = "distance")]
    pub format: Format,
    /// Compute persistent homology up to this dimension.
    #[arg(long, default_value_t = 1)]
    pub dim: usize,
    /// Compute Rips complexes up to this diameter (default: enclosing radius).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Only show persistence pairs with death/birth ratio > this value.
    #[arg(long, default_value_t = 1.0)]
    pub ratio: f32,
    /// Use Z/pZ coefficients (p prime).
    #[arg(long, default_value_t = 2)]
    pub modulus: u32,
    /// Worker threads (0 = all available cores).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print JSON instead of Ripser's text format.
    #[arg(long)]
    pub json: bool,
    /// Also compute representative cocycles of the H1 bars (printed in JSON output).
    #[arg(long)]
    pub cocycles: bool,
    /// Print this summary of the barcode as JSON instead of the barcode (repeatable): landscape,
    /// silhouette, betti-curve, persistence-image, entropy, amplitude (see docs/tda.md).
    #[arg(long = "summary", value_name = "NAME")]
    pub summaries: Vec<String>,
    /// Landscape levels (with `--summary landscape`; default 5).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Grid points of the landscape, silhouette and Betti curve (default 100).
    #[arg(long)]
    pub samples: Option<usize>,
    /// The whole summary request as the API's JSON (`{"summaries": [...], "landscape": {...},
    /// ...}`); `--summary`, `--layers` and `--samples` add to it.
    #[arg(long, value_name = "JSON")]
    pub summary_spec: Option<String>,
}

impl TdaArgs {
    /// The summary request of the flags, if any.
    fn summary_spec(&self) -> Result<Option<SummarySpec>, Error> {
        if self.summaries.is_empty() && self.summary_spec.is_none() {
            return Ok(None);
        }
        let mut spec: SummarySpec = match &self.summary_spec {
            Some(j) => {
                serde_json::from_str(j).map_err(|e| Error::spec("--summary-spec", e.to_string()))?
            }
            None => SummarySpec::default(),
        };
        spec.summaries.extend(self.summaries.iter().cloned());
        if self.layers.is_some() || self.samples.is_some() {
            let l = spec.landscape.get_or_insert_with(Default::default);
            l.layers = self.layers.or(l.layers);
            l.samples = self.samples.or(l.samples);
        }
        if let Some(n) = self.samples {
            spec.silhouette.get_or_insert_with(Default::default).samples = Some(n);
            spec.betti_curve
                .get_or_insert_with(Default::default)
                .samples = Some(n);
        }
        Ok(Some(spec))
    }
}

/// Runs the command, writing Ripser's text (or JSON with `--json`, or the summaries asked for
/// as JSON with `--summary`) to `stdout`.
pub fn run(args: &TdaArgs, stdout: &mut dyn Write) -> Result<(), Error> {
    let mut bytes = Vec::new();
    match &args.file {
        Some(p) if p.as_os_str() != "-" => {
            bytes = std::fs::read(p)?;
        }
        _ => {
            std::io::stdin().read_to_end(&mut bytes)?;
        }
    }
    // a bad summary request fails before the computation
    let spec = args.summary_spec()?;
    let data = parse(&bytes, args.format)?;
    drop(bytes);
    let threads = if args.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        args.threads
    };
    let opts = Options {
        max_dim: args.dim,
        threshold: args.threshold,
        ratio: args.ratio,
        modulus: args.modulus,
        threads,
        cocycles: args.cocycles,
    };
    let out = compute(&data, &opts)?;
    if let Some(spec) = spec {
        let v = serde_json::Value::Object(summarize(&out.barcode, &spec)?);
        writeln!(stdout, "{v}")?;
    } else if args.json {
        let v = serde_json::json!({
            "header": out.header,
            "dims": out.barcode.dims,
            "cocycles": out.cocycles,
        });
        writeln!(stdout, "{v}")?;
    } else {
        let mut s = String::new();
        for h in &out.header {
            s.push_str(h);
            s.push('\n');
        }
        s.push_str(&out.barcode.to_ripser_text());
        stdout.write_all(s.as_bytes())?;
    }
    Ok(())
}
