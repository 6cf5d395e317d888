//! The HTTP plumbing the REST providers share: a client, an optional token
//! bucket, per-attempt timeouts and bounded retries with backoff.

use crate::backoff::Backoff;
use crate::ratelimit::TokenBucket;
use crate::{Error, Result};
use bytes::Bytes;
use std::error::Error as _;
use std::time::Duration;
use tokio::time::Instant;

/// Largest response body read from an upstream.
pub(crate) const MAX_BODY_BYTES: usize = 8 << 20;

/// An upstream's final answer (2xx, or a status that retrying cannot fix).
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Bytes,
}

#[derive(Debug)]
pub(crate) struct HttpCaller {
    pub provider: &'static str,
    pub client: reqwest::Client,
    /// Per-attempt timeout (sending the request and reading the whole body).
    pub timeout: Duration,
    pub backoff: Backoff,
    pub limiter: Option<TokenBucket>,
}

/// A `Retry-After` header in seconds (the HTTP-date form is ignored).
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Transport error text without the URL (which may carry query parameters).
pub(crate) fn transport_error(e: reqwest::Error) -> Error {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    Error::Transport(text)
}

impl HttpCaller {
    pub fn new(
        provider: &'static str,
        timeout: Duration,
        max_retries: u32,
        limiter: Option<TokenBucket>,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "Mozilla/5.0 (compatible; marketd/",
                env!("CARGO_PKG_VERSION"),
                ")"
            ))
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Config(format!("{provider}: cannot build HTTP client: {e}")))?;
        Ok(HttpCaller {
            provider,
            client,
            timeout,
            backoff: Backoff {
                max_retries,
                ..Backoff::default()
            },
            limiter,
        })
    }

    /// Sends the request built by `build` until it gets a final answer.
    ///
    /// - Each attempt first takes a rate-limit token (waiting at most the
    ///   timeout, else [`Error::RateLimited`]), then must complete within the
    ///   per-attempt timeout, else [`Error::Timeout`] (not retried: the caller
    ///   has already waited the whole timeout once).
    /// - 429, 5xx and transport errors are retried up to `max_retries` times
    ///   after [`Backoff::delay`], or after `Retry-After` seconds when the
    ///   upstream sends it (capped at the backoff's maximum).
    /// - The whole call is bounded by `timeout * (max_retries + 1)`: a retry
    ///   whose delay would end past that is not made.
    /// - Any other status is a final answer for the caller to interpret.
    pub async fn get(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Reply> {
        let attempts = self.backoff.max_retries.saturating_add(1);
        let deadline = Instant::now() + self.timeout.saturating_mul(attempts);
        let mut attempt = 0u32;
        loop {
            if let Some(limiter) = &self.limiter {
                let bound = self
                    .timeout
                    .min(deadline.saturating_duration_since(Instant::now()));
                if !limiter.acquire(bound).await {
                    return Err(Error::RateLimited);
                }
            }
            let budget = self
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let exchange = async {
                let mut resp = build(&self.client).send().await.map_err(transport_error)?;
                let status = resp.status().as_u16();
                let wait = retry_after(&resp);
                let mut body = bytes::BytesMut::new();
                while let Some(chunk) = resp.chunk().await.map_err(transport_error)? {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(Error::Malformed(format!(
                            "response body over {MAX_BODY_BYTES} bytes"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok::<_, Error>((status, wait, body.freeze()))
            };
            let (error, hint) = match tokio::time::timeout(budget, exchange).await {
                Err(_) => return Err(Error::Timeout(budget)),
                Ok(Err(e @ Error::Transport(_))) => (e, None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok((429, wait, _))) => (Error::RateLimited, wait),
                Ok(Ok((status @ 500..=599, wait, _))) => (Error::Upstream { status }, wait),
                Ok(Ok((status, _, body))) => return Ok(Reply { status, body }),
            };
            if attempt >= self.backoff.max_retries {
                return Err(error);
            }
            let delay =
                hint.map_or_else(|| self.backoff.delay(attempt), |d| d.min(self.backoff.max));
            if Instant::now() + delay >= deadline {
                return Err(error);
            }
            tracing::debug!(provider = self.provider, attempt = attempt + 1, ?delay, error = %error, "retrying provider request");
            metrics::counter!("marketd_provider_retries_total", "provider" => self.provider)
                .increment(1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Joins a base URL and a path without doubling or dropping slashes, and
/// checks the result parses.
pub(crate) fn join_url(base: &str, path: &str, key: &str) -> Result<reqwest::Url> {
    let text = format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    let url = reqwest::Url::parse(&text)
        .map_err(|e| Error::Config(format!("{key}: invalid URL {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "{key}: URL must be http or https, got {base:?}"
        )));
    }
    Ok(url)
}
