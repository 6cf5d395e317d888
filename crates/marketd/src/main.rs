//! `marketd`: the command line. See `marketd --help`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use marketd::config::{Config, Overrides};
use marketd::{Application, ProcessRole, open_store, shutdown_signal, telemetry};
use marketd_engine::services::access::{AccessService, LastAdmin};
use marketd_store::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc instead of glibc's malloc: a request allocates and frees many
/// small objects across worker threads, and glibc spent a quarter of the
/// server's CPU in `malloc`/`free` and their consolidation under load
/// (docs/benchmarks.md, "HTTP hot path").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Manage API keys and the encryption key of stored credentials.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage upstream credentials stored encrypted in the database.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Apply database migrations and exit.
    Migrate(DataArgs),
    /// Play a recorded venue session (the capture format of
    /// shared/fixtures/captures) through the venue normalizers into the
    /// pipeline: stored, aggregated and cached like live ticks.
    Replay(ReplayArgs),
    /// List, start and stop connectors (as the API does, on the configured store).
    #[command(subcommand)]
    Connectors(ConnectorsCommand),
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

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The capture file: `<ws url> <-> <time>` then `<time>: <frame>` lines.
    #[arg(required_unless_present = "connector")]
    capture: Option<PathBuf>,
    /// Replay the raw frames a WebSocket connector archived (`raw_messages`)
    /// instead of a capture file: its id or name.
    #[arg(long, value_name = "ID|NAME", conflicts_with = "capture")]
    connector: Option<String>,
    /// `max` (as fast as the pipeline takes it) or `recorded` (the
    /// recorded spacing between frames).
    #[arg(long, default_value = "max", value_name = "SPEED")]
    speed: marketd_engine::services::replay::ReplaySpeed,
    /// The venue whose normalizer reads the frames (binance,
    /// binance_futures, okx, finnhub); default: from the capture's URL.
    #[arg(long)]
    venue: Option<String>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Subcommand)]
enum ConnectorsCommand {
    /// Every connector: id, name, kind, venue, desired state, status.
    List(DataArgs),
    /// Ask for a connector to run (its worker starts it).
    Start {
        /// The connector's id or name.
        connector: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Ask for a connector to stop.
    Stop {
        /// The connector's id or name.
        connector: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create an API key; the key is printed once, alone on the last line.
    Create {
        /// read, write or admin.
        #[arg(long)]
        role: marketd_model::Role,
        /// Who holds the key.
        #[arg(long)]
        name: String,
        /// Days until the key stops working (1-3650); default: never.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List API keys (never the keys themselves).
    List(DataArgs),
    /// Revoke an API key at once.
    Revoke {
        /// The key's id (see `marketd keys list`).
        id: uuid::Uuid,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Re-encrypt every stored credential with the current encryption.key
    /// (older keys must be listed in encryption.previous_keys).
    RotateEncryption(DataArgs),
    /// Print a new random encryption key (base64) for encryption.key.
    NewEncryptionKey,
}

#[derive(Debug, Subcommand)]
enum CredentialsCommand {
    /// Store a credential, read from the first line of standard input
    /// (e.g. `marketd credentials set providers.finnhub.api_key < token.txt`).
    Set {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// List stored credentials (names and key ids, never values).
    List(DataArgs),
    /// Delete a stored credential.
    Delete {
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
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
                Command::Api(_) => ProcessRole::Api,
                _ => ProcessRole::Serve,
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
            run_role(&cli, overrides, ProcessRole::Worker, runtime()?)
        }
        Command::Tda(args) => {
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            marketd_tda::cli::run(args, &mut out).map_err(|e| anyhow::anyhow!("{e}"))?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Command::Keys(cmd) => {
            if let KeysCommand::NewEncryptionKey = cmd {
                println!("{}", marketd_store::crypto::generate_key().expose());
                return Ok(());
            }
            let data_dir = match cmd {
                KeysCommand::Create { data, .. } | KeysCommand::Revoke { data, .. } => data,
                KeysCommand::List(data) | KeysCommand::RotateEncryption(data) => data,
                KeysCommand::NewEncryptionKey => unreachable!("handled above"),
            };
            let cfg = load_for_data(&cli, data_dir)?;
            runtime()?.block_on(keys(cmd, &cfg))
        }
        Command::Credentials(cmd) => {
            let data_dir = match cmd {
                CredentialsCommand::Set { data, .. } | CredentialsCommand::Delete { data, .. } => {
                    data
                }
                CredentialsCommand::List(data) => data,
            };
            let cfg = load_for_data(&cli, data_dir)?;
            runtime()?.block_on(credentials(cmd, &cfg))
        }
        Command::Replay(args) => {
            let cfg = load_for_data(&cli, &args.data)?;
            runtime()?.block_on(replay(args, &cfg))
        }
        Command::Connectors(cmd) => {
            let data = match cmd {
                ConnectorsCommand::List(data)
                | ConnectorsCommand::Start { data, .. }
                | ConnectorsCommand::Stop { data, .. } => data,
            };
            let cfg = load_for_data(&cli, data)?;
            runtime()?.block_on(marketd::connectors_cli::run(
                match cmd {
                    ConnectorsCommand::List(_) => marketd::connectors_cli::Action::List,
                    ConnectorsCommand::Start { connector, .. } => {
                        marketd::connectors_cli::Action::Start(connector.clone())
                    }
                    ConnectorsCommand::Stop { connector, .. } => {
                        marketd::connectors_cli::Action::Stop(connector.clone())
                    }
                },
                &cfg,
            ))
        }
        Command::Migrate(args) => {
            let cfg = load_for_data(&cli, args)?;
            runtime()?.block_on(async {
                open_store(&cfg).await?;
                println!("migrations applied to {}", cfg.storage_url());
                Ok(())
            })
        }
    }
}

/// Configuration and logging of the commands that only work on the store.
fn load_for_data(cli: &Cli, data: &DataArgs) -> anyhow::Result<Config> {
    let cfg = load(
        cli,
        Overrides {
            data_dir: data.data_dir.clone(),
            ..Overrides::default()
        },
    )?;
    telemetry::init(&cfg.log);
    Ok(cfg)
}

fn run_role(
    cli: &Cli,
    overrides: Overrides,
    role: ProcessRole,
    runtime: tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let cfg = load(cli, overrides)?;
    telemetry::init(&cfg.log);
    runtime.block_on(async {
        let app = Application::build_role(cfg, role).await?;
        if let Some(key) = app.bootstrap_key() {
            // Standard output, not the log: shown this once.
            println!(
                "marketd: no API key existed, so an admin key was created. It is shown only now; keep it safe:"
            );
            println!("{}", key.expose());
        }
        let addr = app.local_addr();
        match role {
            ProcessRole::Worker => {
                tracing::info!(%addr, role = role.name(), "marketd worker ready: health at http://{addr}/health/ready")
            }
            ProcessRole::Serve | ProcessRole::Api => {
                tracing::info!(%addr, role = role.name(), "marketd ready: dashboard at http://{addr}/")
            }
        }
        app.run_until_stopped(shutdown_signal()).await?;
        tracing::info!(role = role.name(), "marketd stopped");
        Ok(())
    })
}

/// The access service over the configured store and encryption keys (the
/// `keys` and `credentials` commands need nothing else).
async fn access(cfg: &Config) -> anyhow::Result<(Arc<marketd_store::AnyStore>, AccessService)> {
    let store = Arc::new(open_store(cfg).await?);
    let access = AccessService::new(store.clone(), Arc::new(marketd::keyring(cfg)?));
    Ok((store, access))
}

async fn keys(cmd: &KeysCommand, cfg: &Config) -> anyhow::Result<()> {
    let (store, access) = access(cfg).await?;
    match cmd {
        KeysCommand::Create {
            role,
            name,
            expires_in_days,
            ..
        } => {
            let (record, key) = access
                .create_key(name, *role, *expires_in_days)
                .await
                .context("creating the key")?;
            println!(
                "created API key {} (name {:?}, role {}); it is shown only now:",
                record.id, record.name, record.role
            );
            println!("{}", key.expose());
        }
        KeysCommand::List(_) => {
            let keys = access.list_keys().await?;
            println!(
                "{:<36}  {:<6}  {:<8}  {:<12}  {:<20}  NAME",
                "ID", "ROLE", "STATE", "PREFIX", "CREATED"
            );
            for k in keys {
                println!(
                    "{:<36}  {:<6}  {:<8}  {:<12}  {:<20}  {}",
                    k.id,
                    k.role,
                    if k.revoked_at.is_some() {
                        "revoked"
                    } else if k.is_active() {
                        "active"
                    } else {
                        "expired"
                    },
                    k.prefix,
                    marketd_model::time::to_rfc3339(k.created_at)
                        .chars()
                        .take(19)
                        .collect::<String>(),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { id, .. } => {
            // The operator at the store may revoke even the last admin key:
            // `keys create` is always there to make another.
            access.revoke_key(*id, LastAdmin::Allow).await?;
            println!("revoked API key {id}");
        }
        KeysCommand::RotateEncryption(_) => {
            let (resealed, total) = access
                .rotate_encryption()
                .await
                .context("rotating the encryption key")?;
            println!(
                "re-encrypted {resealed} of {total} stored credentials with key {:?}",
                access.keyring().current_key_id().unwrap_or_default()
            );
        }
        KeysCommand::NewEncryptionKey => {}
    }
    store.close().await;
    Ok(())
}

async fn credentials(cmd: &CredentialsCommand, cfg: &Config) -> anyhow::Result<()> {
    let (store, access) = access(cfg).await?;
    match cmd {
        CredentialsCommand::Set { name, .. } => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the value from standard input")?;
            let value = marketd_model::Secret::new(line.trim_end_matches(['\r', '\n']));
            access.put_credential(name, &value).await?;
            println!("stored credential {name} (encrypted)");
        }
        CredentialsCommand::List(_) => {
            for c in access.list_credentials().await? {
                println!(
                    "{}  key_id={}  updated={}",
                    c.name,
                    c.sealed.key_id,
                    marketd_model::time::to_rfc3339(c.updated_at)
                );
            }
        }
        CredentialsCommand::Delete { name, .. } => {
            access.delete_credential(name).await?;
            println!("deleted credential {name}");
        }
    }
    store.close().await;
    Ok(())
}

/// `marketd replay`: the summary on standard output, a progress line on
/// standard error while it runs (when that is a terminal).
async fn replay(args: &ReplayArgs, cfg: &Config) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let venue = args
        .venue
        .as_deref()
        .map(marketd_sources::venues::Venue::from_name)
        .transpose()?;
    let source = match (&args.capture, &args.connector) {
        (Some(path), _) => marketd::replay::ReplaySource::Capture(path.clone()),
        (None, Some(c)) => marketd::replay::ReplaySource::Archive(c.clone()),
        (None, None) => anyhow::bail!("name a CAPTURE file or a --connector"),
    };
    let opts = marketd::replay::ReplayOptions {
        source,
        venue,
        speed: args.speed,
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.cancel();
    });
    let tty = std::io::stderr().is_terminal();
    let progress = |p: marketd_engine::services::replay::ReplayProgress| {
        if !tty {
            return;
        }
        // An archive's size is not known in advance: counts only.
        let _ = match (p.bytes * 100).checked_div(p.total_bytes) {
            Some(pct) => write!(
                std::io::stderr(),
                "\r[{:<25}] {pct:>3}%  {} frames  {} ticks",
                "#".repeat(pct / 4),
                p.frames,
                p.ticks
            ),
            None => write!(
                std::io::stderr(),
                "\r{} frames  {} ticks",
                p.frames,
                p.ticks
            ),
        };
    };
    let summary = marketd::replay::replay(cfg, &opts, cancel.clone(), progress).await;
    if tty {
        eprintln!();
    }
    let summary = summary?;
    println!(
        "replayed {} at {} speed{}",
        opts.source,
        match args.speed {
            marketd_engine::services::replay::ReplaySpeed::Max => "max",
            marketd_engine::services::replay::ReplaySpeed::Recorded => "recorded",
        },
        if cancel.is_cancelled() {
            " (interrupted)"
        } else {
            ""
        }
    );
    for line in summary.lines() {
        println!("{line}");
    }
    Ok(())
}
