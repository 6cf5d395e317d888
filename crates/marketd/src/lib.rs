//! The marketd application: configuration, wiring of the backends chosen by
//! URL, the engine and the HTTP server, and graceful shutdown. `main.rs` is
//! only the CLI; tests build an [`Application`] on port 0 the same way.
//!
//! One binary, three roles ([`ProcessRole`]): `serve` runs everything in one
//! process; `api` is a stateless HTTP instance (no consumers, no feeds, no
//! pollers); `worker` runs the consumers, feeds and polling jobs, with only
//! `/health/*` and `/metrics` on its admin port.

pub mod config;
pub mod connectors_cli;
pub mod replay;
pub mod telemetry;

use anyhow::Context;
use config::Config;
use marketd_api::auth::Authenticator;
use marketd_api::{ApiConfig, AppState, Shared, admin_router, router};
use marketd_bus::{AnyBus, BusOptions};
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::services::access::AccessService;
use marketd_engine::{Backends, Engine, Roles, Services};
use marketd_model::Secret;
use marketd_sources::ProviderRegistry;
use marketd_store::crypto::Keyring;
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Connects the configured store and applies migrations.
pub async fn open_store(cfg: &Config) -> anyhow::Result<AnyStore> {
    let url = cfg.storage_url();
    let store = AnyStore::connect(
        &url,
        &StoreOptions {
            max_connections: cfg.storage.max_connections,
        },
    )
    .await
    .with_context(|| format!("storage.url {url:?}"))?;
    store
        .migrate()
        .await
        .with_context(|| format!("migrating {url:?}"))?;
    Ok(store)
}

/// The encryption keys of `[encryption]` (empty when no key is set).
pub fn keyring(cfg: &Config) -> anyhow::Result<Keyring> {
    let e = &cfg.encryption;
    match &e.key {
        Some(key) if !key.is_empty() => {
            Keyring::new(&e.key_id, key, &e.previous_keys).context("invalid [encryption]")
        }
        _ if !e.previous_keys.is_empty() => {
            anyhow::bail!("encryption.previous_keys is set but encryption.key is not")
        }
        _ => Ok(Keyring::empty()),
    }
}

/// The file of the key `serve` makes for itself (`encryption.auto_key`).
pub const EMBEDDED_KEY_FILE: &str = "encryption.key";

/// For `serve` without a configured key: reads `<data_dir>/encryption.key`,
/// or creates it (owner-only) on first start. Logs the path, never the key.
fn embedded_encryption_key(cfg: &mut Config) -> anyhow::Result<()> {
    let e = &cfg.encryption;
    if !e.auto_key || e.key.as_ref().is_some_and(|k| !k.is_empty()) || !e.previous_keys.is_empty() {
        return Ok(());
    }
    let path = cfg.data_dir.join(EMBEDDED_KEY_FILE);
    let key = match std::fs::read_to_string(&path) {
        Ok(text) => Secret::new(text.trim().to_string()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(&cfg.data_dir)
                .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
            let key = marketd_store::crypto::generate_key();
            write_owner_only(&path, key.expose())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "created an encryption key for stored secrets (keep this file private; set encryption.key to use your own)");
            key
        }
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    cfg.encryption.key = Some(key);
    Ok(())
}

/// Creates `path` readable and writable by its owner only.
fn write_owner_only(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Connects every backend named in the configuration.
/// Provider secrets missing from the configuration are read from the
/// encrypted credential store (`marketd credentials set NAME`, or
/// `PUT /api/v1/credentials/NAME`); the configuration wins when both exist.
pub async fn connect_backends(cfg: &Config) -> anyhow::Result<Backends> {
    let store = Arc::new(open_store(cfg).await?);
    let mut providers_cfg = cfg.providers.clone();
    AccessService::new(store.clone(), Arc::new(keyring(cfg)?))
        .fill_provider_credentials(&mut providers_cfg)
        .await?;
    let bus = connect_bus(cfg).await?;
    let cache = AnyCache::connect(
        &cfg.cache.url,
        CacheOptions {
            ttl: Duration::from_millis(cfg.cache.latest_ttl_ms),
            max_entries: cfg.cache.max_entries,
        },
    )
    .await
    .with_context(|| format!("cache.url {:?}", cfg.cache.url))?;
    let providers = ProviderRegistry::from_config(&providers_cfg).context("providers")?;
    if providers.get(&cfg.prices.default_provider).is_none() {
        anyhow::bail!(
            "prices.default_provider {:?} is not an enabled provider (enabled: {})",
            cfg.prices.default_provider,
            providers.names().join(", ")
        );
    }
    Ok(Backends {
        store,
        bus,
        cache,
        providers: Arc::new(providers),
    })
}

/// Connects the configured bus.
pub async fn connect_bus(cfg: &Config) -> anyhow::Result<AnyBus> {
    AnyBus::connect(&cfg.bus.url, bus_options(cfg))
        .await
        .with_context(|| format!("bus.url {:?}", cfg.bus.url))
}

/// The bus settings of `[bus]`.
fn bus_options(cfg: &Config) -> BusOptions {
    BusOptions {
        buffer: cfg.bus.buffer,
        partitions: cfg.bus.partitions,
        topic_prefix: cfg.bus.topic_prefix.clone(),
        replication_factor: cfg.bus.replication_factor,
        session_timeout_ms: cfg.bus.session_timeout_ms,
        codec: cfg.bus.codec,
    }
}

/// What a process runs (not to be confused with `marketd_model::Role`, the
/// access role of an API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// Everything: HTTP API, consumers, feeds, pollers.
    Serve,
    /// HTTP API only (stateless; scale behind a load balancer): no engine.
    Api,
    /// Consumers, feeds and pollers; `/health` and `/metrics` on the admin port.
    Worker,
}

impl ProcessRole {
    /// The engine parts this process runs; `None`: no engine at all.
    fn engine_roles(self) -> Option<Roles> {
        match self {
            ProcessRole::Serve | ProcessRole::Worker => Some(Roles::ALL),
            ProcessRole::Api => None,
        }
    }

    /// Whether the process serves the REST API (and so bootstraps the first
    /// admin key).
    fn serves_api(self) -> bool {
        self != ProcessRole::Worker
    }

    pub fn name(self) -> &'static str {
        match self {
            ProcessRole::Serve => "serve",
            ProcessRole::Api => "api",
            ProcessRole::Worker => "worker",
        }
    }
}

/// A running marketd: HTTP server, services, and the engine unless the
/// process is an `api` instance.
pub struct Application {
    listener: TcpListener,
    app: axum::Router,
    services: Arc<Services>,
    backends: Backends,
    engine: Option<Arc<Engine>>,
    shutdown_timeout: Duration,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    bootstrap_key: Option<Secret>,
    /// Stops the realtime hub and closes its sessions.
    realtime_stop: tokio_util::sync::CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects backends, starts the engine and binds the listener (port 0
    /// picks a free port): everything in one process.
    pub async fn build(cfg: Config) -> anyhow::Result<Application> {
        Self::build_role(cfg, ProcessRole::Serve).await
    }

    /// Like [`Application::build`] for one [`ProcessRole`]: a worker listens
    /// on `server.admin_addr` with the operations routes only; an `api`
    /// instance starts no engine (no consumers, feeds or pollers).
    pub async fn build_role(mut cfg: Config, role: ProcessRole) -> anyhow::Result<Application> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        if role == ProcessRole::Serve {
            embedded_encryption_key(&mut cfg)?;
        }
        // The recorder first, so metrics of the engine's first moments count.
        let metrics = marketd_api::metrics_handle();
        let backends = connect_backends(&cfg).await?;
        let services = Arc::new(Services::new(&backends, &cfg.services(), keyring(&cfg)?));
        let engine = match role.engine_roles() {
            Some(roles) => Some(Arc::new(
                Engine::start(
                    backends.clone(),
                    &cfg.engine(),
                    &cfg.feeds,
                    &services,
                    roles,
                )
                .await
                .context("starting the engine")?,
            )),
            None => None,
        };
        let (addr, key) = match role {
            ProcessRole::Worker => (&cfg.server.admin_addr, "server.admin_addr"),
            ProcessRole::Serve | ProcessRole::Api => (&cfg.server.addr, "server.addr"),
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("{key} {addr:?}: cannot listen"))?;
        let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key).await?),
            _ => None,
        };
        let auth =
            Authenticator::new(&cfg.auth, backends.store.clone()).context("invalid [auth]")?;
        // The first admin key is made by a process that serves the API.
        let bootstrap_key = if cfg.auth.bootstrap_admin_key && role.serves_api() {
            services
                .access
                .bootstrap_admin_key()
                .await
                .context("creating the first admin key")?
                .map(|(record, key)| {
                    tracing::warn!(key_id = %record.id, prefix = %record.prefix, "no API key existed: created an admin key (shown once on standard output)");
                    key
                })
        } else {
            None
        };
        let realtime_stop = tokio_util::sync::CancellationToken::new();
        let realtime = if role.serves_api() {
            marketd_engine::realtime::Hub::start(
                &backends.bus,
                cfg.realtime.clone(),
                realtime_stop.clone(),
            )
            .await
            .context("starting the realtime hub")?
        } else {
            marketd_engine::realtime::Hub::new(cfg.realtime.clone())
        };
        let state = AppState::new(Shared {
            services: services.clone(),
            backends: backends.clone(),
            cfg: Arc::new(ApiConfig {
                rate_limit: cfg.rate_limit.clone(),
            }),
            metrics,
            started: Instant::now(),
            auth: Arc::new(auth),
            realtime,
            revoked: if role.serves_api() {
                marketd_api::realtime::revocations::watch(
                    services.access.clone(),
                    realtime_stop.clone(),
                )
            } else {
                marketd_api::realtime::revocations::none()
            },
        });
        let security = marketd_api::security::SecurityConfig {
            hsts: tls.is_some(),
        };
        let app = match role {
            ProcessRole::Worker => admin_router(state, &cfg.http),
            ProcessRole::Serve | ProcessRole::Api => router(state, &cfg.http, &security),
        };
        Ok(Application {
            listener,
            app,
            services,
            backends,
            engine,
            shutdown_timeout: Duration::from_millis(cfg.server.shutdown_timeout_ms),
            tls,
            bootstrap_key,
            realtime_stop,
        })
    }

    /// The admin key created by this start because the store had none (the
    /// caller shows it once), `None` on every later start.
    pub fn bootstrap_key(&self) -> Option<&Secret> {
        self.bootstrap_key.as_ref()
    }

    /// Whether HTTPS is served.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The router (for in-process tests that call it without a socket).
    pub fn router(&self) -> axum::Router {
        self.app.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// The running engine; `None` in an `api` process.
    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.engine.clone()
    }

    /// The domain operations (what the HTTP handlers and the CLI call).
    pub fn services(&self) -> Arc<Services> {
        self.services.clone()
    }

    /// The connected backends (for tests that arrange rows directly).
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish and drains the engine if any (every received tick written),
    /// all within the shutdown timeout.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Application {
            listener,
            app,
            engine,
            shutdown_timeout,
            tls,
            realtime_stop,
            ..
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let http_grace = shutdown_timeout / 3;
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let mut server = match tls {
            None => {
                let server = axum::serve(listener, service).with_graceful_shutdown(async move {
                    shutdown.await;
                    let _ = stop_tx.send(true);
                });
                tokio::spawn(async move { server.await })
            }
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    shutdown.await;
                    let _ = stop_tx.send(true);
                    stopper.graceful_shutdown(Some(http_grace));
                });
                let listener = listener.into_std().context("TLS listener")?;
                let server = axum_server::from_tcp_rustls(listener, tls).handle(handle);
                tokio::spawn(async move { server.serve(service).await })
            }
        };
        let mut stopping = stop_rx.clone();
        // Wait for the signal (or a fatal server error), then give
        // connections a bounded time to close.
        let finished = tokio::select! {
            _ = stopping.wait_for(|s| *s) => None,
            r = &mut server => Some(r),
        };
        tracing::info!("shutting down: no new connections");
        realtime_stop.cancel();
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        let result = match finished {
            Some(r) => Ok(r),
            None => tokio::time::timeout(http_grace, server).await,
        };
        let mut server_error = None;
        match result {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => server_error = Some(anyhow::anyhow!("HTTP server failed: {e}")),
            Ok(Err(e)) => server_error = Some(anyhow::anyhow!("HTTP server task failed: {e}")),
            Err(_) => tracing::warn!(
                "open connections did not finish within {http_grace:?}; closing them"
            ),
        }
        if let Some(engine) = engine
            && tokio::time::timeout_at(deadline, engine.shutdown())
                .await
                .is_err()
        {
            anyhow::bail!("engine did not drain within {shutdown_timeout:?}");
        }
        if let Some(e) = server_error {
            return Err(e);
        }
        Ok(())
    }
}

/// Loads the PEM certificate chain and private key for HTTPS (rustls with
/// the ring provider).
async fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<axum_server::tls_rustls::RustlsConfig> {
    // Installed once per process; a second call (tests) finds it in place.
    let _ = rustls::crypto::ring::default_provider().install_default();
    axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
        .await
        .with_context(|| {
            format!(
                "server.tls_cert {} / server.tls_key {}: cannot load a PEM certificate and key",
                cert.display(),
                key.display()
            )
        })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `[bus]` key reaches the bus (a key dropped here would be read,
    /// validated and then silently ignored).
    #[test]
    fn every_bus_setting_reaches_the_bus() {
        let mut cfg = Config::default();
        cfg.bus.buffer = 7;
        cfg.bus.partitions = 9;
        cfg.bus.topic_prefix = "p.".into();
        cfg.bus.replication_factor = 3;
        cfg.bus.session_timeout_ms = 4_321;
        cfg.bus.codec = marketd_model::Codec::Binary;
        let o = bus_options(&cfg);
        assert_eq!(
            (o.buffer, o.partitions, o.topic_prefix.as_str()),
            (7, 9, "p.")
        );
        assert_eq!((o.replication_factor, o.session_timeout_ms), (3, 4_321));
        assert_eq!(o.codec, marketd_model::Codec::Binary);
    }
}
