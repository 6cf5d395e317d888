//! `marketd`: the command line. See `marketd --help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use marketd::config::{Config, Overrides};
use marketd::{Application, Role, open_store, shutdown_signal, telemetry};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "marketd",
    version,
    about = "Market-data platform: ingest, normalize, store, derive and serve prices"
)]
struct Cli {
    /// TOML configuration file (see marketd.example.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long, global = true)]
    json_logs: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything in one process: HTTP API, feeds, pollers, consumers.
    Serve(ServeArgs),
    /// Run a stateless HTTP API instance (no consumers, feeds or pollers).
    Api(ServeArgs),
    /// Run consumers, feeds and polling jobs; only /health and /metrics on
    /// the admin address.
    Worker(WorkerArgs),
    /// Apply database migrations and exit.
    Migrate(DataArgs),
    /// Vietoris-Rips persistence barcodes of a point cloud or distance matrix
    /// (Ripser-compatible input formats and output).
    Tda(marketd_tda::cli::TdaArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Listen address (overrides server.addr).
    #[arg(long, value_name = "HOST:PORT")]
    addr: Option<String>,
    /// Data directory (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct WorkerArgs {
    /// Address of /health/* and /metrics (overrides server.admin_addr).
    #[arg(long, value_name = "HOST:PORT")]
    admin_addr: Option<String>,
    /// Data directory (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DataArgs {
    /// Data directory (overrides data_dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn load(cli: &Cli, overrides: Overrides) -> anyhow::Result<Config> {
    let overrides = Overrides {
        json_logs: cli.json_logs,
        ..overrides
    };
    let cfg = Config::load(cli.config.as_deref(), &overrides)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    cfg.validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    Ok(cfg)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Only the async commands need a runtime (`tda` is plain threads).
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")
    };
    match &cli.command {
        Command::Serve(args) | Command::Api(args) => {
            let role = match &cli.command {
                Command::Api(_) => Role::Api,
                _ => Role::Serve,
            };
            let overrides = Overrides {
                addr: args.addr.clone(),
                data_dir: args.data_dir.clone(),
                ..Overrides::default()
            };
            run_role(&cli, overrides, role, runtime()?)
        }
        Command::Worker(args) => {
            let overrides = Overrides {
                admin_addr: args.admin_addr.clone(),
                data_dir: args.data_dir.clone(),
                ..Overrides::default()
            };
            run_role(&cli, overrides, Role::Worker, runtime()?)
        }
        Command::Tda(args) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            marketd_tda::cli::run(args, &mut out).map_err(|e| anyhow::anyhow!("{e}"))?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Command::Migrate(args) => {
            let overrides = Overrides {
                data_dir: args.data_dir.clone(),
                ..Overrides::default()
            };
            let cfg = load(&cli, overrides)?;
            telemetry::init(&cfg.log);
            runtime()?.block_on(async {
                open_store(&cfg).await?;
                println!("migrations applied to {}", cfg.storage_url());
                Ok(())
            })
        }
    }
}

fn run_role(
    cli: &Cli,
    overrides: Overrides,
    role: Role,
    runtime: tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let cfg = load(cli, overrides)?;
    telemetry::init(&cfg.log);
    runtime.block_on(async {
        let app = Application::build_role(cfg, role).await?;
        let addr = app.local_addr();
        match role {
            Role::Worker => {
                tracing::info!(%addr, role = role.name(), "marketd worker ready: health at http://{addr}/health/ready")
            }
            Role::Serve | Role::Api => {
                tracing::info!(%addr, role = role.name(), "marketd ready: dashboard at http://{addr}/")
            }
        }
        app.run_until_stopped(shutdown_signal()).await?;
        tracing::info!(role = role.name(), "marketd stopped");
        Ok(())
    })
}
