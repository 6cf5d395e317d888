//! The shared fast state of marketd: the latest-price cache (cache-aside
//! under `GET /prices/latest`) and the rate limiter of the API. [`Cache`] and
//! [`RateLimit`] are what the engine and the API see; [`AnyCache`] holds the
//! backend chosen by URL: `memory://` (in-process: TTL, bounded size) or
//! `redis://host:port[/db]` when several API instances must share prices and
//! limits.
//!
//! The limiter is GCRA (the generic cell rate algorithm, as redis-cell and
//! most API gateways use): per key one number, the theoretical arrival time
//! of the next request. On Redis it runs as one Lua script on the server's
//! clock, so the limit holds across every API instance and no instance's
//! clock skew matters.

use marketd_model::Tick;
use std::future::Future;
use std::time::Duration;

mod gcra;
mod memory;
mod redis;

pub use memory::MemoryCache;
pub use redis::RedisCache;

// Clone: one failed batch answers every request in it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("unsupported cache URL {0:?}: expected memory:// or redis://host:port[/db]")]
    UnsupportedUrl(String),
    #[error("redis at {url}: {action}: {source}")]
    Redis {
        /// The URL without its password.
        url: String,
        action: &'static str,
        #[source]
        source: ::redis::RedisError,
    },
    #[error("redis at {url}: malformed cached value: {message}")]
    Corrupt { url: String, message: String },
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
    /// Upper bound on cached entries (memory backend; with Redis, on the
    /// instance's copy of the prices it read).
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

/// How many requests a client may make: `per_second` on average, up to
/// `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    pub per_second: f64,
    pub burst: u32,
}

impl Quota {
    /// Time between requests at the sustained rate, in microseconds (at least 1).
    pub(crate) fn interval_us(&self) -> i64 {
        if self.per_second <= 0.0 {
            return i64::MAX / 4;
        }
        ((1_000_000.0 / self.per_second).round() as i64).max(1)
    }
}

/// A rate limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u32,
    /// When refused: how long until the next request would be allowed.
    pub retry_after: Duration,
}

/// A rate limiter shared by every instance that uses the same backend.
pub trait RateLimit: Send + Sync {
    /// Counts one request of `key` against `quota`.
    fn check(&self, key: &str, quota: Quota) -> impl Future<Output = Result<RateDecision>> + Send;
}

/// The configured cache backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AnyCache {
    Memory(MemoryCache),
    Redis(RedisCache),
}

impl AnyCache {
    /// `memory://` or `redis://[:password@]host:port[/db]`. Fails, naming the
    /// URL (without its password), when Redis does not answer.
    pub async fn connect(url: &str, opts: CacheOptions) -> Result<AnyCache> {
        match url.split("://").next().unwrap_or_default() {
            "memory" => Ok(AnyCache::Memory(MemoryCache::new(opts))),
            "redis" | "rediss" => Ok(AnyCache::Redis(RedisCache::connect(url, opts).await?)),
            _ => Err(Error::UnsupportedUrl(url.to_string())),
        }
    }
}

impl RateLimit for AnyCache {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision> {
        match self {
            AnyCache::Memory(c) => c.check(key, quota).await,
            AnyCache::Redis(c) => c.check(key, quota).await,
        }
    }
}

impl Cache for AnyCache {
    async fn get_latest(&self, key: &str) -> Result<Option<CachedPrice>> {
        match self {
            AnyCache::Memory(c) => c.get_latest(key).await,
            AnyCache::Redis(c) => c.get_latest(key).await,
        }
    }
    async fn put_latest(&self, key: &str, price: CachedPrice) -> Result<()> {
        match self {
            AnyCache::Memory(c) => c.put_latest(key, price).await,
            AnyCache::Redis(c) => c.put_latest(key, price).await,
        }
    }
    async fn ping(&self) -> Result<()> {
        match self {
            AnyCache::Memory(c) => c.ping().await,
            AnyCache::Redis(c) => c.ping().await,
        }
    }
    fn backend_name(&self) -> &'static str {
        match self {
            AnyCache::Memory(c) => c.backend_name(),
            AnyCache::Redis(c) => c.backend_name(),
        }
    }
}
