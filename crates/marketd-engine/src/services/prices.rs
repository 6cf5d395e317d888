//! The latest-price service behind `GET /prices/latest` and the polling
//! jobs: cache-aside (cache → provider → the store's last tick), with single
//! flight so concurrent misses for one key make one upstream call.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use marketd_bus::{AnyBus, Bus};
use marketd_cache::{AnyCache, Cache, CachedPrice, latest_key};
use marketd_model::time::now_ns;
use marketd_model::{Event, PriceRequest, RequestOutcome, Symbol, Tick};
use marketd_sources::{Provider, ProviderRegistry};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// `[prices]`: the latest-price service.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PricesConfig {
    /// Provider used when a request names none.
    pub default_provider: String,
    /// Time a cache miss may spend on the provider (all retries included)
    /// before the last stored tick is served instead, in milliseconds. Keep it
    /// below `http.request_timeout_ms`.
    pub upstream_timeout_ms: u64,
}

impl Default for PricesConfig {
    fn default() -> Self {
        PricesConfig {
            default_provider: "simulated".into(),
            upstream_timeout_ms: 4_000,
        }
    }
}

/// Where a latest price came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceSource {
    Cache,
    Provider,
    Store,
}

impl PriceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceSource::Cache => "cache",
            PriceSource::Provider => "provider",
            PriceSource::Store => "store",
        }
    }
}

/// A latest price with its provenance.
#[derive(Debug, Clone)]
pub struct LatestPrice {
    pub tick: Tick,
    pub source: PriceSource,
    /// `now - ts_event`, milliseconds.
    pub age_ms: i64,
    /// True when the provider failed and the store's last tick was used.
    pub stale: bool,
    pub provider: String,
}

/// Why a latest price could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PriceError {
    /// The request named a provider that is not enabled.
    #[error(transparent)]
    UnknownProvider(#[from] UnknownProvider),
    #[error("symbol {0} not found")]
    SymbolNotFound(Symbol),
    #[error("provider {provider} failed and no stored price exists: {reason}")]
    Upstream { provider: String, reason: String },
}

type Fetch = Shared<BoxFuture<'static, Result<Tick, Arc<marketd_sources::Error>>>>;

/// Fetches, caches and publishes latest prices.
pub struct PriceService {
    providers: Arc<ProviderRegistry>,
    cache: AnyCache,
    store: Arc<AnyStore>,
    bus: AnyBus,
    default_provider: String,
    upstream_timeout: std::time::Duration,
    inflight: Mutex<HashMap<String, Fetch>>,
}

impl std::fmt::Debug for PriceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PriceService")
            .field("default_provider", &self.default_provider)
            .finish_non_exhaustive()
    }
}

impl PriceService {
    pub fn new(
        providers: Arc<ProviderRegistry>,
        cache: AnyCache,
        store: Arc<AnyStore>,
        bus: AnyBus,
        cfg: &PricesConfig,
    ) -> Self {
        PriceService {
            providers,
            cache,
            store,
            bus,
            default_provider: cfg.default_provider.clone(),
            upstream_timeout: std::time::Duration::from_millis(cfg.upstream_timeout_ms.max(1)),
            inflight: Mutex::new(HashMap::new()),
        }
    }

    pub fn default_provider(&self) -> &str {
        &self.default_provider
    }

    pub fn providers(&self) -> &ProviderRegistry {
        &self.providers
    }

    /// Cache, then provider (single flight), then the store's last tick.
    pub async fn latest(
        &self,
        symbol: &Symbol,
        provider: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<LatestPrice, PriceError> {
        let provider = provider.unwrap_or(&self.default_provider).to_string();
        UnknownProvider::check(&self.providers, &provider)?;
        let key = latest_key(&provider, symbol.as_str());
        match self.cache.get_latest(&key).await {
            Ok(Some(hit)) => {
                metrics::counter!("marketd_cache_hits_total").increment(1);
                return Ok(LatestPrice {
                    age_ms: age_ms(&hit.tick),
                    tick: hit.tick,
                    source: PriceSource::Cache,
                    stale: false,
                    provider,
                });
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cache read failed; treating as a miss"),
        }
        metrics::counter!("marketd_cache_misses_total").increment(1);
        let started = std::time::Instant::now();
        // A slow upstream must not eat the request's whole time budget: past
        // `upstream_timeout` the stored tick is served instead.
        let fetched = match tokio::time::timeout(
            self.upstream_timeout,
            self.fetch_shared(&provider, symbol, key),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Arc::new(marketd_sources::Error::Timeout(
                self.upstream_timeout,
            ))),
        };
        let (result, outcome, error) = match fetched {
            Ok(tick) => (
                Ok(LatestPrice {
                    age_ms: age_ms(&tick),
                    tick,
                    source: PriceSource::Provider,
                    stale: false,
                    provider: provider.clone(),
                }),
                RequestOutcome::Provider,
                None,
            ),
            Err(e) if matches!(*e, marketd_sources::Error::SymbolNotFound(_)) => (
                Err(PriceError::SymbolNotFound(symbol.clone())),
                RequestOutcome::Error,
                Some(e.to_string()),
            ),
            Err(e) => match self.stored_fallback(symbol, &provider).await {
                Some(tick) => (
                    Ok(LatestPrice {
                        age_ms: age_ms(&tick),
                        tick,
                        source: PriceSource::Store,
                        stale: true,
                        provider: provider.clone(),
                    }),
                    RequestOutcome::Store,
                    Some(e.to_string()),
                ),
                None => (
                    Err(PriceError::Upstream {
                        provider: provider.clone(),
                        reason: e.to_string(),
                    }),
                    RequestOutcome::Error,
                    Some(e.to_string()),
                ),
            },
        };
        let request = PriceRequest {
            id: Uuid::now_v7(),
            symbol: symbol.clone(),
            provider: provider.as_str().into(),
            requested_at: now_ns(),
            outcome,
            latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            error,
            request_id: request_id.map(str::to_string),
        };
        if let Err(e) = self.bus.publish(Event::PriceRequest(request)).await {
            tracing::warn!(error = %e, "could not log the price request on the bus");
        }
        result
    }

    async fn fetch_shared(
        &self,
        provider: &str,
        symbol: &Symbol,
        key: String,
    ) -> Result<Tick, Arc<marketd_sources::Error>> {
        let fut = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = inflight.get(&key) {
                f.clone()
            } else {
                let providers = self.providers.clone();
                let cache = self.cache.clone();
                let bus = self.bus.clone();
                let provider = provider.to_string();
                let symbol = symbol.clone();
                let f: Fetch = async move {
                    fetch_and_publish(&providers, &cache, &bus, &provider, &symbol)
                        .await
                        .map_err(Arc::new)
                }
                .boxed()
                .shared();
                inflight.insert(key.clone(), f.clone());
                f
            }
        };
        let out = fut.clone().await;
        // Whoever finishes first clears the slot, but only if it still holds
        // this fetch: a newer fetch started after ours completed stays.
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if inflight.get(&key).is_some_and(|f| f.ptr_eq(&fut)) {
            inflight.remove(&key);
        }
        drop(inflight);
        out
    }

    /// Fetches from the provider bypassing the cache (polling jobs), then
    /// caches and publishes the tick.
    pub async fn fetch_fresh(
        &self,
        provider: &str,
        symbol: &Symbol,
    ) -> Result<Tick, marketd_sources::Error> {
        fetch_and_publish(&self.providers, &self.cache, &self.bus, provider, symbol).await
    }

    async fn stored_fallback(&self, symbol: &Symbol, provider: &str) -> Option<Tick> {
        match self.store.latest_tick(symbol, Some(provider)).await {
            Ok(Some(t)) => return Some(t),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "store lookup for stale fallback failed"),
        }
        self.store
            .latest_tick(symbol, None)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "store lookup for stale fallback failed");
                None
            })
    }
}

async fn fetch_and_publish(
    providers: &ProviderRegistry,
    cache: &AnyCache,
    bus: &AnyBus,
    provider: &str,
    symbol: &Symbol,
) -> Result<Tick, marketd_sources::Error> {
    let Some(p) = providers.get(provider) else {
        return Err(marketd_sources::Error::Config(format!(
            "unknown provider {provider}"
        )));
    };
    let tick = p.latest(symbol).await?;
    let key = latest_key(provider, symbol.as_str());
    if let Err(e) = cache
        .put_latest(
            &key,
            CachedPrice {
                tick: tick.clone(),
                cached_at: now_ns(),
            },
        )
        .await
    {
        tracing::warn!(error = %e, "cache write failed");
    }
    metrics::counter!("marketd_ticks_ingested_total", "source" => provider.to_string())
        .increment(1);
    if let Err(e) = bus.publish(Event::Tick(tick.clone())).await {
        tracing::warn!(error = %e, "could not publish fetched tick");
    }
    Ok(tick)
}

/// A provider name that is not enabled, with the names that are (the
/// caller's error detail lists them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown provider {name:?}; available: {}", available.join(", "))]
pub struct UnknownProvider {
    pub name: String,
    pub available: Vec<String>,
}

impl UnknownProvider {
    /// `Ok` when `name` is an enabled provider of `providers`.
    pub fn check(providers: &ProviderRegistry, name: &str) -> Result<(), UnknownProvider> {
        match providers.get(name) {
            Some(_) => Ok(()),
            None => Err(UnknownProvider {
                name: name.to_string(),
                available: providers.names().iter().map(|n| n.to_string()).collect(),
            }),
        }
    }
}

fn age_ms(t: &Tick) -> i64 {
    (now_ns() - t.ts_event).max(0) / 1_000_000
}
