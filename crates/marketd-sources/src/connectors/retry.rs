//! Retrying a connector's request and pacing its upstream host.
//!
//! - [`RetryPolicy`]: capped exponential backoff with full jitter (the
//!   crate's [`Backoff`]) for retryable failures (429, 5xx, transport,
//!   timeouts), never retrying sooner than the server's `Retry-After`; an
//!   upstream asking for a wait longer than `max_retry_after` ends the call
//!   (the caller's next poll tries again).
//! - [`HostLimiters`]: one token bucket per upstream host (`host:port`,
//!   default ports filled in), shared through `Arc` by every connector that
//!   calls that host, so ten connectors on one venue share one budget.
//!   It reuses the crate's [`TokenBucket`] rather than `governor`: that
//!   bucket runs on tokio's clock (so paused-time tests are exact), serves
//!   waiters first come first served, and is what the providers use.
//! - [`fetch_with_retry`]: the loop that puts them together around
//!   [`fetch_once`], signing every attempt anew with the clock's reading.

use super::request::{
    FetchError, FetchOutcome, HttpMethod, RequestSpec, ResponseClass, fetch_once,
};
use crate::backoff::Backoff;
use crate::ratelimit::TokenBucket;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delays and number of retries.
    pub backoff: Backoff,
    /// Longest `Retry-After` waited for; a longer one ends the call with
    /// the upstream's answer.
    pub max_retry_after: Duration,
    /// Longest wait for a token of the host's rate limiter, else
    /// [`FetchError::HostRateLimited`].
    pub max_limiter_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(5), 3),
            max_retry_after: Duration::from_secs(60),
            max_limiter_wait: Duration::from_secs(10),
        }
    }
}

/// A host's request budget: `requests` per `per`, bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostRate {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Default for HostRate {
    /// 10 requests a second, bursts of 10.
    fn default() -> Self {
        HostRate {
            requests: 10,
            per: Duration::from_secs(1),
            burst: 10,
        }
    }
}

impl HostRate {
    fn bucket(self) -> TokenBucket {
        TokenBucket::new(self.requests, self.per, self.burst)
    }
}

/// The rate limiters of upstream hosts, one per `host:port`, created on
/// first use with the host's configured rate (else the default). Clones
/// share the same limiters.
#[derive(Debug, Clone, Default)]
pub struct HostLimiters {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    default: HostRate,
    rates: HashMap<String, HostRate>,
    buckets: HashMap<String, Arc<TokenBucket>>,
}

/// The limiter key of `url`: lowercase `host:port` with the scheme's
/// default port filled in; `None` without a host.
pub fn host_key(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    let port = url.port_or_known_default()?;
    Some(format!("{}:{port}", host.to_ascii_lowercase()))
}

impl HostLimiters {
    /// Limiters whose hosts default to `rate`.
    pub fn new(default: HostRate) -> Self {
        HostLimiters {
            inner: Arc::new(Mutex::new(Inner {
                default,
                ..Inner::default()
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the budget of `host_key` (`api.binance.com:443`), replacing its
    /// limiter (callers holding the old one keep it until their next lookup).
    pub fn set_rate(&self, host_key: &str, rate: HostRate) {
        let key = host_key.to_ascii_lowercase();
        let mut inner = self.lock();
        inner.buckets.insert(key.clone(), Arc::new(rate.bucket()));
        inner.rates.insert(key, rate);
    }

    /// The limiter of `url`'s host, shared with every other caller of it.
    pub fn for_url(&self, url: &reqwest::Url) -> Option<Arc<TokenBucket>> {
        host_key(url).map(|k| self.for_host(&k))
    }

    /// The limiter of `host_key`, created on first use.
    pub fn for_host(&self, host_key: &str) -> Arc<TokenBucket> {
        let key = host_key.to_ascii_lowercase();
        let mut inner = self.lock();
        if let Some(b) = inner.buckets.get(&key) {
            return b.clone();
        }
        let rate = inner.rates.get(&key).copied().unwrap_or(inner.default);
        let bucket = Arc::new(rate.bucket());
        inner.buckets.insert(key, bucket.clone());
        bucket
    }

    /// Hosts with a limiter, sorted.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.lock().buckets.keys().cloned().collect();
        hosts.sort();
        hosts
    }
}

/// The final answer of [`fetch_with_retry`] and how many attempts it took.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The last answer: a success, a final failure, or a retryable answer
    /// when retries ran out (or the server asked for too long a wait).
    pub outcome: FetchOutcome,
    /// Requests sent, at least 1.
    pub attempts: u32,
}

/// Whether an answer or error of `method` may be retried. `POST` is not
/// idempotent, so it is retried only on 429 (the server did not process it).
fn retry_wait(
    method: HttpMethod,
    result: &Result<FetchOutcome, FetchError>,
) -> Option<Option<Duration>> {
    match result {
        Ok(o) => match o.class {
            ResponseClass::Retryable { retry_after }
                if method != HttpMethod::Post || o.status.as_u16() == 429 =>
            {
                Some(retry_after)
            }
            _ => None,
        },
        Err(e) if e.is_retryable() && method != HttpMethod::Post => Some(None),
        Err(_) => None,
    }
}

/// Sends `spec` until it gets a final answer: each attempt first takes a
/// token of its host's limiter, is signed with `now()` (nanoseconds since
/// the epoch), and a retryable failure is retried after
/// [`Backoff::delay_after`] (full jitter, never sooner than `Retry-After`),
/// up to `policy.backoff.max_retries` times.
pub async fn fetch_with_retry(
    client: &reqwest::Client,
    spec: &RequestSpec,
    limiters: &HostLimiters,
    policy: &RetryPolicy,
    now: impl Fn() -> i64,
) -> Result<Fetched, FetchError> {
    let url = spec.parsed_url().map_err(|e| {
        FetchError::Spec(super::ValidationErrors(vec![super::FieldError {
            field: "url".into(),
            message: format!("not a valid URL: {e}"),
        }]))
    })?;
    let limiter = limiters.for_url(&url);
    let mut attempt = 0u32;
    loop {
        if let Some(l) = &limiter
            && !l.acquire(policy.max_limiter_wait).await
        {
            return Err(FetchError::HostRateLimited {
                host: host_key(&url).unwrap_or_default(),
            });
        }
        let result = fetch_once(client, spec, now()).await;
        let wait = retry_wait(spec.method, &result);
        let Some(retry_after) = wait else {
            return result.map(|outcome| Fetched {
                outcome,
                attempts: attempt + 1,
            });
        };
        let too_long = retry_after.is_some_and(|w| w > policy.max_retry_after);
        if attempt >= policy.backoff.max_retries || too_long {
            return result.map(|outcome| Fetched {
                outcome,
                attempts: attempt + 1,
            });
        }
        let delay = policy
            .backoff
            .delay_after(attempt, retry_after, &mut rand::rng());
        tracing::debug!(url = %url.path(), attempt = attempt + 1, ?delay, "retrying connector request");
        metrics::counter!("marketd_connector_retries_total").increment(1);
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn hosts_are_keyed_by_host_and_port() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert_eq!(
            host_key(&u("https://API.Binance.com/api/v3")).as_deref(),
            Some("api.binance.com:443")
        );
        assert_eq!(host_key(&u("http://x.test/")).as_deref(), Some("x.test:80"));
        assert_eq!(
            host_key(&u("http://127.0.0.1:8080/")).as_deref(),
            Some("127.0.0.1:8080")
        );
        let limiters = HostLimiters::default();
        let a = limiters.for_url(&u("https://api.binance.com/a")).unwrap();
        let b = limiters
            .clone()
            .for_url(&u("https://API.binance.com:443/b?x=1"))
            .unwrap();
        assert!(
            Arc::ptr_eq(&a, &b),
            "one limiter per host, shared by clones"
        );
        let c = limiters
            .for_url(&u("https://api.binance.com:8443/a"))
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(
            limiters.hosts(),
            ["api.binance.com:443", "api.binance.com:8443"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn connectors_on_one_host_share_its_budget() {
        let limiters = HostLimiters::default();
        limiters.set_rate(
            "venue.test:443",
            HostRate {
                requests: 2,
                per: Duration::from_secs(1),
                burst: 2,
            },
        );
        let url = reqwest::Url::parse("https://venue.test/x").unwrap();
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let l = limiters.clone();
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..2 {
                    assert!(
                        l.for_url(&url)
                            .unwrap()
                            .acquire(Duration::from_secs(10))
                            .await
                    );
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // Six requests at 2/s with a burst of 2: the last waits 2 s.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(1_999) && waited <= Duration::from_millis(2_001),
            "{waited:?}"
        );
        // Another host is untouched.
        let other = limiters.for_host("other.test:443");
        assert!(other.acquire(Duration::ZERO).await);
    }
}
