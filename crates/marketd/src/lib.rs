//! The marketd application: configuration, wiring of the backends chosen by
//! URL, the engine and the HTTP server, and graceful shutdown. `main.rs` is
//! only the CLI; tests build an [`Application`] on port 0 the same way.
//!
//! One binary, three roles ([`Role`]): `serve` runs everything in one
//! process; `api` is a stateless HTTP instance (no consumers, no feeds, no
//! pollers); `worker` runs the consumers, feeds and polling jobs, with only
//! `/health/*` and `/metrics` on its admin port.

pub mod config;
pub mod telemetry;

use anyhow::Context;
use config::Config;
use marketd_api::auth::Authenticator;
use marketd_api::{ApiConfig, AppState, admin_router, router};
use marketd_bus::{AnyBus, BusOptions};
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::{Backends, Engine, Roles};
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

/// Upstream credentials missing from the configuration are read from the
/// encrypted credential store (`marketd credentials set NAME`, or
/// `PUT /api/v1/credentials/NAME`); the configuration wins when both exist.
pub const STORED_PROVIDER_CREDENTIALS: &[&str] = &["providers.finnhub.api_key"];

async fn fill_stored_credentials(
    store: &AnyStore,
    keyring: &Keyring,
    providers: &mut marketd_sources::ProvidersConfig,
) -> anyhow::Result<()> {
    if providers.finnhub.api_key.is_none() && providers.finnhub.enabled {
        let name = STORED_PROVIDER_CREDENTIALS[0];
        if let Some(c) = store.credential(name).await? {
            let value = keyring
                .open(name, &c.sealed)
                .with_context(|| format!("stored credential {name}"))?;
            tracing::info!(
                credential = name,
                key_id = %c.sealed.key_id,
                "using the stored (encrypted) credential"
            );
            providers.finnhub.api_key = Some(value);
        }
    }
    Ok(())
}

/// Seals `value` with the current key and stores it under `name`.
pub async fn store_credential(
    store: &AnyStore,
    keyring: &Keyring,
    name: &str,
    value: &Secret,
) -> anyhow::Result<()> {
    marketd_api::routes::credentials::validate_credential_name(name).map_err(anyhow::Error::msg)?;
    if value.is_empty() {
        anyhow::bail!("the value is empty");
    }
    let sealed = keyring.seal(name, value)?;
    let now = marketd_model::time::now_ns();
    let created_at = store.credential(name).await?.map_or(now, |c| c.created_at);
    store
        .put_credential(&marketd_model::StoredCredential {
            name: name.to_string(),
            sealed,
            created_at,
            updated_at: now,
        })
        .await?;
    Ok(())
}

/// Re-seals every stored credential not sealed with the current key.
/// Returns (re-sealed, total). Fails before writing anything when a value
/// cannot be opened (its key is missing from `encryption.previous_keys`).
pub async fn rotate_encryption(
    store: &AnyStore,
    keyring: &Keyring,
) -> anyhow::Result<(usize, usize)> {
    if !keyring.is_configured() {
        anyhow::bail!("encryption.key is not set: nothing to rotate to");
    }
    let all = store.credentials().await?;
    let mut resealed = Vec::new();
    for c in all.iter().filter(|c| keyring.needs_reseal(&c.sealed)) {
        let plain = keyring
            .open(&c.name, &c.sealed)
            .with_context(|| format!("credential {}", c.name))?;
        let sealed = keyring.seal(&c.name, &plain)?;
        resealed.push(marketd_model::StoredCredential {
            sealed,
            updated_at: marketd_model::time::now_ns(),
            ..c.clone()
        });
    }
    for c in &resealed {
        store.put_credential(c).await?;
    }
    Ok((resealed.len(), all.len()))
}

/// Connects every backend named in the configuration.
pub async fn connect_backends(cfg: &Config) -> anyhow::Result<Backends> {
    let store = open_store(cfg).await?;
    let mut providers_cfg = cfg.providers.clone();
    fill_stored_credentials(&store, &keyring(cfg)?, &mut providers_cfg).await?;
    let bus = AnyBus::connect(
        &cfg.bus.url,
        BusOptions {
            buffer: cfg.bus.buffer,
            partitions: cfg.bus.partitions,
            topic_prefix: cfg.bus.topic_prefix.clone(),
            replication_factor: cfg.bus.replication_factor,
            session_timeout_ms: cfg.bus.session_timeout_ms,
        },
    )
    .await
    .with_context(|| format!("bus.url {:?}", cfg.bus.url))?;
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
        store: Arc::new(store),
        bus,
        cache,
        providers: Arc::new(providers),
    })
}

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: HTTP API, consumers, feeds, pollers.
    Serve,
    /// HTTP API only (stateless; scale behind a load balancer).
    Api,
    /// Consumers, feeds and pollers; `/health` and `/metrics` on the admin port.
    Worker,
}

impl Role {
    fn engine_roles(self) -> Roles {
        match self {
            Role::Serve | Role::Worker => Roles::ALL,
            Role::Api => Roles {
                consumers: false,
                producers: false,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
}

/// A running marketd: HTTP server plus engine.
pub struct Application {
    listener: TcpListener,
    app: axum::Router,
    engine: Arc<Engine>,
    shutdown_timeout: Duration,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    bootstrap_key: Option<Secret>,
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
        Self::build_role(cfg, Role::Serve).await
    }

    /// Like [`Application::build`] for one [`Role`]: a worker listens on
    /// `server.admin_addr` with the operations routes only.
    pub async fn build_role(cfg: Config, role: Role) -> anyhow::Result<Application> {
        cfg.validate().map_err(anyhow::Error::msg)?;
        // The recorder first, so metrics of the engine's first moments count.
        let metrics = marketd_api::metrics_handle();
        let backends = connect_backends(&cfg).await?;
        let prices = Arc::new(marketd_engine::PriceService::new(
            backends.providers.clone(),
            backends.cache.clone(),
            backends.store.clone(),
            backends.bus.clone(),
            &cfg.prices,
        ));
        let engine = Engine::start(
            backends,
            &cfg.engine(),
            &cfg.feeds,
            prices,
            role.engine_roles(),
        )
        .await
        .context("starting the engine")?;
        let engine = Arc::new(engine);
        let (addr, key) = match role {
            Role::Worker => (&cfg.server.admin_addr, "server.admin_addr"),
            Role::Serve | Role::Api => (&cfg.server.addr, "server.addr"),
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("{key} {addr:?}: cannot listen"))?;
        let tls = match (&cfg.server.tls_cert, &cfg.server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_config(cert, key).await?),
            _ => None,
        };
        let store = engine.backends.store.clone();
        let auth = Authenticator::new(&cfg.auth, store.clone()).context("invalid [auth]")?;
        // The first admin key is made by a process that serves the API.
        let bootstrap_key = if cfg.auth.bootstrap_admin_key && role != Role::Worker {
            marketd_api::auth::bootstrap_admin_key(&store)
                .await
                .context("creating the first admin key")?
                .map(|(record, key)| {
                    tracing::warn!(key_id = %record.id, prefix = %record.prefix, "no API key existed: created an admin key (shown once on standard output)");
                    key
                })
        } else {
            None
        };
        let state = AppState {
            engine: engine.clone(),
            cfg: Arc::new(ApiConfig {
                max_page: cfg.http.max_page,
                polling: cfg.polling.clone(),
                aggregator: cfg.aggregator.clone(),
                rate_limit: cfg.rate_limit.clone(),
            }),
            metrics,
            started: Instant::now(),
            auth: Arc::new(auth),
            keyring: Arc::new(keyring(&cfg)?),
        };
        let security = marketd_api::security::SecurityConfig {
            hsts: tls.is_some(),
        };
        let app = match role {
            Role::Worker => admin_router(state, &cfg.http),
            Role::Serve | Role::Api => router(state, &cfg.http, &security),
        };
        Ok(Application {
            listener,
            app,
            engine,
            shutdown_timeout: Duration::from_millis(cfg.server.shutdown_timeout_ms),
            tls,
            bootstrap_key,
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

    pub fn engine(&self) -> Arc<Engine> {
        self.engine.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish and drains the engine (every received tick written),
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
        if tokio::time::timeout_at(deadline, engine.shutdown())
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
