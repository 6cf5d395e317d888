//! The Redis backend: latest prices and rate-limit state shared by every API
//! instance.
//!
//! - Latest prices are hashes `marketd:latest:{provider}:{symbol}` with the
//!   tick's event time and the JSON value, written by a script that keeps the
//!   newest event time (two writers racing never move a price backwards) and
//!   expire after the TTL.
//! - Rate limits are GCRA states `marketd:rl:{key}` updated by one script on
//!   the server's clock ([`crate::gcra::REDIS_SCRIPT`]).
//! - The connection is a `ConnectionManager`: after a Redis restart it
//!   reconnects by itself; requests in the meantime fail fast (bounded
//!   connect and response timeouts) and callers treat the cache as a miss.

use crate::{
    Cache, CacheOptions, CachedPrice, Error, Quota, RateDecision, RateLimit, Result, gcra,
};
use marketd_model::Tick;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

const PREFIX: &str = "marketd:";

/// Stores the value unless the cached event time is later. Event times are
/// nanoseconds (19 digits), beyond Lua's exact doubles, so they are compared
/// as decimal strings.
const PUT_LATEST: &str = r#"
local function later(a, b)
  local na, nb = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if na ~= nb then return nb end
  if na then return tonumber(a) > tonumber(b) end
  if #a ~= #b then return #a > #b end
  return a > b
end
local cur = redis.call('HGET', KEYS[1], 'ts')
if cur and later(cur, ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"#;

#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    /// The URL without its password, for messages.
    url: Arc<str>,
    ttl: Duration,
    put_latest: Arc<Script>,
    limit: Arc<Script>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RedisCache {{ url: {:?}, .. }}", self.url)
    }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let userinfo = &url[s + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{}{}:***{}", &url[..s + 3], user, &url[at..])
            } else {
                url.to_string()
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    cached_at: i64,
    tick: Tick,
}

impl RedisCache {
    pub async fn connect(url: &str, opts: CacheOptions) -> Result<RedisCache> {
        let shown: Arc<str> = redact(url).into();
        let err = |action: &'static str| {
            let shown = shown.clone();
            move |source| Error::Redis {
                url: shown.to_string(),
                action,
                source,
            }
        };
        let client = redis::Client::open(url).map_err(err("parsing the URL"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(config)
            .await
            .map_err(err("connecting"))?;
        let cache = RedisCache {
            conn,
            url: shown,
            ttl: opts.ttl,
            put_latest: Arc::new(Script::new(PUT_LATEST)),
            limit: Arc::new(Script::new(gcra::REDIS_SCRIPT)),
        };
        cache.ping().await?;
        tracing::info!(url = %cache.url, "redis cache connected");
        Ok(cache)
    }

    fn error(&self, action: &'static str, source: redis::RedisError) -> Error {
        Error::Redis {
            url: self.url.to_string(),
            action,
            source,
        }
    }
}

impl Cache for RedisCache {
    async fn get_latest(&self, key: &str) -> Result<Option<CachedPrice>> {
        let mut conn = self.conn.clone();
        let value: Option<String> = conn
            .hget(format!("{PREFIX}{key}"), "v")
            .await
            .map_err(|e| self.error("reading a latest price", e))?;
        let Some(value) = value else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_str(&value).map_err(|e| Error::Corrupt {
            url: self.url.to_string(),
            message: format!("{key}: {e}"),
        })?;
        Ok(Some(CachedPrice {
            tick: stored.tick,
            cached_at: stored.cached_at,
        }))
    }

    async fn put_latest(&self, key: &str, price: CachedPrice) -> Result<()> {
        let ts = price.tick.ts_event;
        let value = serde_json::to_string(&Stored {
            cached_at: price.cached_at,
            tick: price.tick,
        })
        .map_err(|e| Error::Corrupt {
            url: self.url.to_string(),
            message: format!("{key}: {e}"),
        })?;
        let ttl_ms = u64::try_from(self.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut conn = self.conn.clone();
        let _: i64 = self
            .put_latest
            .key(format!("{PREFIX}{key}"))
            .arg(ts.to_string())
            .arg(value)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("writing a latest price", e))?;
        Ok(())
    }

    async fn ping(&self) -> Result<()> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("ping", e))?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

impl RateLimit for RedisCache {
    async fn check(&self, key: &str, quota: Quota) -> Result<RateDecision> {
        let mut conn = self.conn.clone();
        let (allowed, remaining, retry_us): (i64, i64, i64) = self
            .limit
            .key(format!("{PREFIX}rl:{key}"))
            .arg(quota.interval_us())
            .arg(quota.burst.max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.error("rate limit", e))?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining.max(0)).unwrap_or(u32::MAX),
            retry_after: Duration::from_micros(u64::try_from(retry_us.max(0)).unwrap_or(0)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://user:s3cret@host:6379/0"),
            "redis://user:***@host:6379/0"
        );
        assert_eq!(redact("redis://:s3cret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }
}
