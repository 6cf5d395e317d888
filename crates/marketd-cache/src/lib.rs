//! The latest-price cache of marketd (cache-aside under `GET /prices/latest`).
//! [`Cache`] is what the engine sees; [`AnyCache`] holds the backend chosen by
//! URL: `memory://` (in-process, TTL, bounded size) now, `redis://` when
//! several API instances must share it.

use marketd_model::Tick;
use std::future::Future;
use std::time::Duration;

mod memory;

pub use memory::MemoryCache;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported cache URL {0:?}: expected memory://")]
    UnsupportedUrl(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A cached latest price and when it entered the cache (ns since epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct CachedPrice {
    pub tick: Tick,
    pub cached_at: i64,
}

/// Cache settings.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// How long a latest price is served from the cache.
    pub ttl: Duration,
    /// Upper bound on cached entries (memory backend).
    pub max_entries: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            ttl: Duration::from_secs(5),
            max_entries: 100_000,
        }
    }
}

/// The cache key of a latest price: `latest:{provider}:{symbol}`.
pub fn latest_key(provider: &str, symbol: &str) -> String {
    let mut k = String::with_capacity(8 + provider.len() + symbol.len());
    k.push_str("latest:");
    k.push_str(provider);
    k.push(':');
    k.push_str(symbol);
    k
}

/// What every cache backend provides.
pub trait Cache: Send + Sync {
    fn get_latest(&self, key: &str) -> impl Future<Output = Result<Option<CachedPrice>>> + Send;
    /// Stores `price` unless the cache already holds a tick with a later event time.
    fn put_latest(&self, key: &str, price: CachedPrice) -> impl Future<Output = Result<()>> + Send;
    fn ping(&self) -> impl Future<Output = Result<()>> + Send;
    fn backend_name(&self) -> &'static str;
}

/// The configured cache backend.
#[derive(Debug, Clone)]
pub enum AnyCache {
    Memory(MemoryCache),
}

impl AnyCache {
    pub async fn connect(url: &str, opts: CacheOptions) -> Result<AnyCache> {
        match url.split("://").next().unwrap_or_default() {
            "memory" => Ok(AnyCache::Memory(MemoryCache::new(opts))),
            _ => Err(Error::UnsupportedUrl(url.to_string())),
        }
    }
}

impl Cache for AnyCache {
    async fn get_latest(&self, key: &str) -> Result<Option<CachedPrice>> {
        match self {
            AnyCache::Memory(c) => c.get_latest(key).await,
        }
    }
    async fn put_latest(&self, key: &str, price: CachedPrice) -> Result<()> {
        match self {
            AnyCache::Memory(c) => c.put_latest(key, price).await,
        }
    }
    async fn ping(&self) -> Result<()> {
        match self {
            AnyCache::Memory(c) => c.ping().await,
        }
    }
    fn backend_name(&self) -> &'static str {
        match self {
            AnyCache::Memory(c) => c.backend_name(),
        }
    }
}
