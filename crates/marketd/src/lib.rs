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
use marketd_api::{ApiConfig, AppState, admin_router, router};
use marketd_bus::{AnyBus, BusOptions};
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::{Backends, Engine, Roles};
use marketd_sources::ProviderRegistry;
use marketd_store::{AnyStore, Store, StoreOptions};
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

/// Connects every backend named in the configuration.
pub async fn connect_backends(cfg: &Config) -> anyhow::Result<Backends> {
    let store = open_store(cfg).await?;
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
    let providers = ProviderRegistry::from_config(&cfg.providers).context("providers")?;
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
        let backends = connect_backends(&cfg).await?;
        let engine = Engine::start(
            backends,
            &cfg.engine(),
            &cfg.feeds,
            &cfg.prices,
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
        let state = AppState {
            engine: engine.clone(),
            cfg: Arc::new(ApiConfig {
                max_page: cfg.http.max_page,
                polling: cfg.polling.clone(),
                aggregator: cfg.aggregator.clone(),
                rate_limit: cfg.rate_limit.clone(),
            }),
            metrics: marketd_api::metrics_handle(),
            started: Instant::now(),
        };
        let app = match role {
            Role::Worker => admin_router(state, &cfg.http),
            Role::Serve | Role::Api => router(state, &cfg.http),
        };
        Ok(Application {
            listener,
            app,
            engine,
            shutdown_timeout: Duration::from_millis(cfg.server.shutdown_timeout_ms),
        })
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
        } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let mut stopping = stop_rx.clone();
        let mut server = tokio::spawn(async move { server.await });
        // Wait for the signal (or a fatal server error), then give
        // connections a bounded time to close.
        let finished = tokio::select! {
            _ = stopping.wait_for(|s| *s) => None,
            r = &mut server => Some(r),
        };
        tracing::info!("shutting down: no new connections");
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        let http_grace = shutdown_timeout / 3;
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
