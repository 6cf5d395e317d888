//! The Redis backend: latest prices and rate-limit state shared by every API
//! instance.
//!
//! - Latest prices are hashes `marketd:latest:{provider}:{symbol}` with the
//!   tick's event time and the JSON value, written by a script that keeps the
//!   newest event time (two writers racing never move a price backwards) and
//!   expire after the TTL. Each instance keeps a copy of the prices it read,
//!   which Redis keeps current by invalidation messages ([`near`]): a read
//!   of an unchanged price makes no round trip. Reads that go to Redis are
//!   batched like the limiter's checks (below): one pipeline per batch, one
//!   `HGET` and `PTTL` per distinct key, decoded once for every request of
//!   the batch that asked for it.
//! - Rate limits are GCRA states `marketd:rl:{key}` updated by one script on
//!   the server's clock ([`crate::gcra::REDIS_SCRIPT`]). Concurrent checks
//!   of this instance are batched ([`Batcher`]): while [`IN_FLIGHT`]
//!   batches are at the server, the requests that arrive queue and go as
//!   the next batch, one script call deciding each in turn. The script is
//!   atomic on the server's clock, so the limit holds exactly as with one
//!   call per request, across every instance; under load the server runs
//!   one script per batch instead of one per request.
//! - The connection is a `ConnectionManager` speaking RESP3 (for the
//!   invalidation messages; a server without RESP3 gets RESP2 and no copy):
//!   after a Redis restart it reconnects by itself; requests in the meantime
//!   fail fast (bounded connect and response timeouts) and callers treat the
//!   cache as a miss.

mod near;

use crate::{
    Cache, CacheOptions, CachedPrice, Error, Quota, RateDecision, RateLimit, Result, gcra,
};
use marketd_model::Tick;
use near::{NearCache, Pushes};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, ProtocolVersion, Script, Value};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

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
    limiter: Batcher<Check>,
    reads: Batcher<Read>,
    /// The copy of read prices, on a RESP3 connection.
    near: Option<Arc<NearCache>>,
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
        let info = url.into_connection_info().map_err(err("parsing the URL"))?;
        let config = || {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(1))
        };
        // RESP3 for the invalidation messages of the copy.
        let near = NearCache::new(usize::try_from(opts.max_entries).unwrap_or(usize::MAX));
        let resp3 = info.clone().set_redis_settings(
            info.redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3),
        );
        let first = redis::Client::open(resp3)
            .map_err(err("parsing the URL"))?
            .get_connection_manager_with_config(config().set_push_sender(Pushes(near.clone())))
            .await;
        let (conn, near) = match first {
            Ok(conn) => (conn, Some(near)),
            // Unreachable: no second attempt.
            Err(e) if e.is_io_error() || e.is_timeout() => return Err(err("connecting")(e)),
            Err(e) => {
                tracing::warn!(url = %shown, error = %e,
                    "redis refused RESP3: latest prices are read from it on every request");
                let conn = redis::Client::open(info)
                    .map_err(err("parsing the URL"))?
                    .get_connection_manager_with_config(config())
                    .await
                    .map_err(err("connecting"))?;
                (conn, None)
            }
        };
        let tracking = near.is_some();
        let cache = RedisCache {
            limiter: Batcher::start(conn.clone(), shown.clone(), "rate limit", run_checks),
            reads: Batcher::start(
                conn.clone(),
                shown.clone(),
                "reading a latest price",
                move |conn, url, batch| run_reads(conn, url, batch, tracking),
            ),
            near,
            conn,
            url: shown,
            ttl: opts.ttl,
            put_latest: Arc::new(Script::new(PUT_LATEST)),
        };
        cache.ping().await?;
        tracing::info!(url = %cache.url, "redis cache connected");
        Ok(cache)
    }

    fn error(&self, action: &'static str, source: redis::RedisError) -> Error {
        redis_error(&self.url, action, source)
    }
}

impl Cache for RedisCache {
    async fn get_latest(&self, key: &str) -> Result<Option<CachedPrice>> {
        let key = format!("{PREFIX}{key}");
        let ticket = match self.near.as_deref().map(|n| n.get(&key)) {
            Some(Ok(copy)) => return Ok(Some(copy)),
            Some(Err(ticket)) => Some(ticket),
            None => None,
        };
        let read = key.clone();
        let got = self.reads.ask(|reply| Read { key: read, reply }).await?;
        if let (Some(near), Some(ticket), Some(f)) = (self.near.as_deref(), ticket, &got)
            && let Some(ttl) = f.ttl
        {
            near.store(&key, ticket, &f.price, ttl.min(self.ttl));
        }
        Ok(got.map(|f| f.price))
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
        let key = format!("{PREFIX}{key}");
        let written: redis::RedisResult<i64> = self
            .put_latest
            .key(&key)
            .arg(ts.to_string())
            .arg(value)
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await;
        // This instance's own write is seen by its next read, whenever
        // Redis's invalidation arrives (and whether or not the call failed:
        // the write may have happened).
        if let Some(near) = &self.near {
            near.invalidate(&key);
        }
        written.map_err(|e| self.error("writing a latest price", e))?;
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
        let key = format!("{PREFIX}rl:{key}");
        let (interval_us, burst) = (quota.interval_us(), quota.burst.max(1));
        self.limiter
            .ask(|reply| Check {
                key,
                interval_us,
                burst,
                reply,
            })
            .await
    }
}

/// Most requests in one batch.
const MAX_BATCH: usize = 128;
/// Batches at the server at once: the next one fills while these run.
const IN_FLIGHT: usize = 2;

/// A request waiting in a [`Batcher`]: it carries where its answer goes.
trait Waiting: Send + 'static {
    type Answer: Send + 'static;
}

/// One waiting limiter check.
struct Check {
    key: String,
    interval_us: i64,
    burst: u32,
    reply: oneshot::Sender<Result<RateDecision>>,
}

impl Waiting for Check {
    type Answer = RateDecision;
}

/// One waiting read of a latest price.
struct Read {
    key: String,
    reply: oneshot::Sender<Result<Option<Fetched>>>,
}

/// A latest price read from Redis and the key's remaining time there.
#[derive(Clone)]
struct Fetched {
    price: CachedPrice,
    /// `None` when the key has no expiry (not written by marketd).
    ttl: Option<Duration>,
}

impl Waiting for Read {
    type Answer = Option<Fetched>;
}

/// Sends the requests of one kind of this instance to Redis in batches (see
/// the module docs): while [`IN_FLIGHT`] batches are at the server, the
/// requests that arrive queue and go together as the next batch. Its task
/// ends when the last [`RedisCache`] clone is dropped.
struct Batcher<T: Waiting> {
    tx: mpsc::UnboundedSender<T>,
    url: Arc<str>,
    action: &'static str,
}

impl<T: Waiting> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
            url: self.url.clone(),
            action: self.action,
        }
    }
}

impl<T: Waiting> Batcher<T> {
    /// Starts the batching task; `run` sends one batch and answers each of
    /// its requests.
    fn start<F, Fut>(conn: ConnectionManager, url: Arc<str>, action: &'static str, run: F) -> Self
    where
        F: Fn(ConnectionManager, Arc<str>, Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<T>();
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let shown = url.clone();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                // What queued while the previous batches ran goes together.
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let sent = run(conn.clone(), shown.clone(), batch);
                tokio::spawn(async move {
                    sent.await;
                    drop(slot);
                });
            }
        });
        Batcher { tx, url, action }
    }

    /// Queues the request `make` builds around its reply channel, and waits
    /// for its answer.
    async fn ask(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T::Answer>>) -> T,
    ) -> Result<T::Answer> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Redis {
            url: self.url.to_string(),
            action: self.action,
            source: redis::RedisError::from((
                redis::ErrorKind::Io,
                "the batching task has stopped",
            )),
        };
        self.tx.send(make(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn redis_error(url: &str, action: &'static str, source: redis::RedisError) -> Error {
    Error::Redis {
        url: url.to_string(),
        action,
        source,
    }
}

/// One script call for a batch of limiter checks; each check gets its own
/// answer (or the call's error).
async fn run_checks(mut conn: ConnectionManager, url: Arc<str>, batch: Vec<Check>) {
    static SCRIPT: std::sync::LazyLock<Script> =
        std::sync::LazyLock::new(|| Script::new(gcra::REDIS_SCRIPT));
    let mut invocation = SCRIPT.prepare_invoke();
    for p in &batch {
        invocation.key(&p.key).arg(p.interval_us).arg(p.burst);
    }
    let answer: redis::RedisResult<Vec<i64>> = invocation.invoke_async(&mut conn).await;
    let answer = answer.and_then(|v| {
        if v.len() == batch.len() * 3 {
            Ok(v)
        } else {
            Err(redis::RedisError::from((
                redis::ErrorKind::Parse,
                "rate limit script answered the wrong number of values",
            )))
        }
    });
    match answer {
        Ok(values) => {
            for (p, v) in batch.into_iter().zip(values.chunks_exact(3)) {
                let _ = p.reply.send(Ok(RateDecision {
                    allowed: v[0] == 1,
                    remaining: u32::try_from(v[1].max(0)).unwrap_or(u32::MAX),
                    retry_after: Duration::from_micros(u64::try_from(v[2].max(0)).unwrap_or(0)),
                }));
            }
        }
        Err(e) => {
            for p in batch {
                let _ = p
                    .reply
                    .send(Err(redis_error(&url, "rate limit", e.clone())));
            }
        }
    }
}

/// One pipeline for a batch of latest-price reads: one `HGET` and `PTTL` per
/// distinct key, its value decoded once and given to every read of that
/// key. With `tracking`, the pipeline first (re-)enables the invalidation
/// messages on the connection it is sent on, which may be a new one, for
/// these reads only.
async fn run_reads(mut conn: ConnectionManager, url: Arc<str>, batch: Vec<Read>, tracking: bool) {
    let mut keys: Vec<&str> = Vec::new();
    let mut which = Vec::with_capacity(batch.len());
    for r in &batch {
        let i = match keys.iter().position(|k| *k == r.key) {
            Some(i) => i,
            None => {
                keys.push(&r.key);
                keys.len() - 1
            }
        };
        which.push(i);
    }
    let mut pipe = redis::pipe();
    // OPTIN: only the reads marked by `CLIENT CACHING YES` are tracked. By
    // default Redis would also track the keys the limiter's script reads on
    // this connection, and every check anywhere would then push an
    // invalidation of a key the copy never holds.
    if tracking {
        pipe.cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("OPTIN")
            .ignore();
    }
    for k in &keys {
        if tracking {
            pipe.cmd("CLIENT").arg("CACHING").arg("YES").ignore();
        }
        pipe.hget(*k, "v").pttl(*k);
    }
    let answer: redis::RedisResult<Vec<Value>> = pipe.query_async(&mut conn).await;
    let values: Vec<Result<Option<Fetched>>> = match answer {
        Ok(values) if values.len() == 2 * keys.len() => keys
            .iter()
            .zip(values.chunks_exact(2))
            .map(|(key, v)| decode_fetched(&url, key, &v[0], &v[1]))
            .collect(),
        Ok(_) => {
            let e = redis::RedisError::from((
                redis::ErrorKind::Parse,
                "a pipeline of reads answered the wrong number of values",
            ));
            keys.iter()
                .map(|_| Err(redis_error(&url, "reading a latest price", e.clone())))
                .collect()
        }
        Err(e) => keys
            .iter()
            .map(|_| Err(redis_error(&url, "reading a latest price", e.clone())))
            .collect(),
    };
    for (r, i) in batch.into_iter().zip(which) {
        let answer = values[i].clone();
        let _ = r.reply.send(answer);
    }
}

/// A stored latest price and its key's remaining time (`None` when absent).
fn decode_fetched(url: &str, key: &str, value: &Value, pttl: &Value) -> Result<Option<Fetched>> {
    let corrupt = |message: String| Error::Corrupt {
        url: url.to_string(),
        message: format!("{}: {message}", key.strip_prefix(PREFIX).unwrap_or(key)),
    };
    let value = match value {
        Value::Nil => return Ok(None),
        Value::BulkString(b) => b,
        other => return Err(corrupt(format!("expected a string, got {other:?}"))),
    };
    let stored: Stored = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    // -1: no expiry; -2: gone since the HGET (not possible in one pipeline
    // without a write in between, which invalidates the copy anyway).
    let ttl = match pttl {
        Value::Int(ms) if *ms > 0 => Some(Duration::from_millis(*ms as u64)),
        _ => None,
    };
    Ok(Some(Fetched {
        price: CachedPrice {
            tick: stored.tick,
            cached_at: stored.cached_at,
        },
        ttl,
    }))
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
