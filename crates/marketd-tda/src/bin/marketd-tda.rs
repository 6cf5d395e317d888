//! Stand-alone `marketd-tda` command (same arguments as `marketd tda`).

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "marketd-tda",
    about = "Vietoris-Rips persistent homology (Ripser-compatible)"
)]
struct Cli {
    #[command(flatten)]
    args: marketd_tda::cli::TdaArgs,
}

fn main() {
    let cli = Cli::parse();
    let stdout = std::io::stdout();
    let mut lock = std::io::BufWriter::new(stdout.lock());
    if let Err(e) = marketd_tda::cli::run(&cli.args, &mut lock) {
        drop(lock);
        eprintln!("marketd-tda: {e}");
        std::process::exit(1);
    }
    if let Err(e) = std::io::Write::flush(&mut lock) {
        eprintln!("marketd-tda: {e}");
        std::process::exit(1);
    }
}
