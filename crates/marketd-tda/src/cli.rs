//! The `marketd tda` command: arguments and runner.

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::error::Error;
use crate::input::{Format, parse};
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
}

/// Runs the command, writing Ripser's text (or JSON with `--json`) to `stdout`.
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
    if args.json {
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
