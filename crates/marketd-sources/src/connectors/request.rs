//! The request side of a generic REST connector: what to send upstream
//! ([`RequestSpec`]: method, URL, headers, query, JSON body, auth, polling
//! interval, timeout), its validation with field-named errors, building the
//! signed [`reqwest::Request`], and one exchange ([`fetch_once`]) that
//! returns the raw answer (kept for the `connector_data` archive) classified
//! as success, retryable (429, 5xx, with `Retry-After`) or final failure.

use super::auth::{AuthError, UpstreamAuth};
use crate::http::{MAX_BODY_BYTES, transport_error};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};
use thiserror::Error;

/// Why a URL does not parse (`url::ParseError`, reached through reqwest).
pub type UrlParseError = <reqwest::Url as std::str::FromStr>::Err;

/// Shortest polling interval of a connector.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest polling interval of a connector.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Shortest per-request timeout.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest per-request timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// The HTTP methods a connector may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Post,
    Put,
    Delete,
}

impl HttpMethod {
    pub fn as_reqwest(self) -> reqwest::Method {
        match self {
            HttpMethod::Get => reqwest::Method::GET,
            HttpMethod::Post => reqwest::Method::POST,
            HttpMethod::Put => reqwest::Method::PUT,
            HttpMethod::Delete => reqwest::Method::DELETE,
        }
    }
}

fn default_interval_ms() -> u64 {
    1_000
}

fn default_timeout_ms() -> u64 {
    10_000
}

/// What a REST connector sends upstream on every poll.
///
/// Headers and query parameters are kept sorted by name (one value each);
/// credentials belong in `auth`, whose secrets are redacted on output, not
/// in `headers` or `query`, which are printed as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default)]
    pub method: HttpMethod,
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Sent as `application/json` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub auth: UpstreamAuth,
    /// Polling interval, 100 ms to 60 s.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// Per-request timeout (sending and reading the whole answer), 100 ms to 60 s.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl RequestSpec {
    /// A `GET` of `url` without auth, polled every second with a 10 s timeout.
    pub fn get(url: impl Into<String>) -> Self {
        RequestSpec {
            method: HttpMethod::Get,
            url: url.into(),
            headers: BTreeMap::new(),
            query: BTreeMap::new(),
            body: None,
            auth: UpstreamAuth::None,
            interval_ms: default_interval_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }

    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The parsed URL (no further checks; see [`RequestSpec::validate`]).
    pub fn parsed_url(&self) -> Result<reqwest::Url, UrlParseError> {
        reqwest::Url::parse(&self.url)
    }

    /// Every problem of the spec, each naming its field (`url`,
    /// `headers.X-Foo`, `interval_ms`, `auth.secret`, …).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = Vec::new();
        let mut bad = |field: String, message: String| errors.push(FieldError { field, message });
        match self.parsed_url() {
            Err(e) => bad("url".into(), format!("not a valid URL: {e}")),
            Ok(u) => {
                if !matches!(u.scheme(), "http" | "https") {
                    bad(
                        "url".into(),
                        format!("scheme must be http or https, got {:?}", u.scheme()),
                    );
                }
                if u.host_str().is_none_or(str::is_empty) {
                    bad("url".into(), "must have a host".into());
                }
                if !u.username().is_empty() || u.password().is_some() {
                    bad("url".into(), "must not carry credentials; use auth".into());
                }
                if u.fragment().is_some() {
                    bad("url".into(), "must not have a fragment".into());
                }
            }
        }
        for (name, value) in &self.headers {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                bad(format!("headers.{name}"), "not a valid header name".into());
            }
            if HeaderValue::from_str(value).is_err() {
                bad(format!("headers.{name}"), "not a valid header value".into());
            }
        }
        for name in self.query.keys() {
            if name.is_empty() {
                bad("query".into(), "parameter names must not be empty".into());
            }
        }
        if self.body.is_some() && self.method == HttpMethod::Get {
            bad("body".into(), "a GET request has no body".into());
        }
        let interval = self.interval();
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
            bad(
                "interval_ms".into(),
                format!("must be between 100 and 60000, got {}", self.interval_ms),
            );
        }
        if !(MIN_TIMEOUT..=MAX_TIMEOUT).contains(&self.timeout()) {
            bad(
                "timeout_ms".into(),
                format!("must be between 100 and 60000, got {}", self.timeout_ms),
            );
        }
        if let Err(e) = self.auth.validate() {
            let field = match &e {
                AuthError::Empty { field } | AuthError::InvalidHeaderValue { field } => {
                    format!("auth.{field}")
                }
                _ => "auth.name".into(),
            };
            bad(field, e.to_string());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// The request of this spec, authenticated as of `now_ns`. Query
    /// parameters are appended to any the URL already has; the auth is
    /// applied last, to the request exactly as it will be sent.
    pub fn build(
        &self,
        client: &reqwest::Client,
        now_ns: i64,
    ) -> Result<reqwest::Request, FetchError> {
        let mut url = self.parsed_url().map_err(|e| {
            FetchError::Spec(ValidationErrors::one(
                "url",
                format!("not a valid URL: {e}"),
            ))
        })?;
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in &self.query {
                pairs.append_pair(k, v);
            }
        }
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FetchError::Spec(ValidationErrors::one(
                    format!("headers.{name}"),
                    "not a valid header name",
                ))
            })?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                FetchError::Spec(ValidationErrors::one(
                    format!("headers.{name}"),
                    "not a valid header value",
                ))
            })?;
            headers.insert(n, v);
        }
        let mut builder = client
            .request(self.method.as_reqwest(), url)
            .headers(headers)
            .timeout(self.timeout());
        if let Some(body) = &self.body {
            builder = builder.json(body);
        }
        let mut req = builder.build().map_err(transport)?;
        self.auth.apply(&mut req, now_ns)?;
        Ok(req)
    }
}

/// One invalid field of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every invalid field of a spec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// Whether `field` is among the invalid ones.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid connector request: ")?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

/// Why an exchange produced no answer at all.
#[derive(Debug, Error)]
pub enum FetchError {
    #[error(transparent)]
    Spec(#[from] ValidationErrors),
    #[error("cannot authenticate the request: {0}")]
    Auth(#[from] AuthError),
    /// Connecting, sending or reading failed (the URL is left out: its
    /// query may carry a key).
    #[error("transport error: {0}")]
    Transport(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("response body over {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    #[error("rate limit of upstream host {host} would delay the request past its bound")]
    HostRateLimited { host: String },
}

impl FetchError {
    /// Whether trying again may succeed (transport failures and timeouts).
    pub fn is_retryable(&self) -> bool {
        matches!(self, FetchError::Transport(_) | FetchError::Timeout(_))
    }
}

fn transport(e: reqwest::Error) -> FetchError {
    if e.is_timeout() {
        return FetchError::Timeout(Duration::ZERO);
    }
    match transport_error(e) {
        crate::Error::Transport(text) => FetchError::Transport(text),
        other => FetchError::Transport(other.to_string()),
    }
}

/// What an answer means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseClass {
    /// 2xx.
    Success,
    /// 429 or 5xx: try again, no sooner than `retry_after` when the server said.
    Retryable { retry_after: Option<Duration> },
    /// Anything else (4xx, 3xx not followed): retrying the same request will not help.
    Failed,
}

/// One upstream answer, raw.
#[derive(Debug, Clone)]
pub struct FetchOutcome {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub class: ResponseClass,
}

impl FetchOutcome {
    pub fn is_success(&self) -> bool {
        self.class == ResponseClass::Success
    }
}

/// Classifies a status; `retry_after` is the parsed `Retry-After` header.
pub fn classify(status: reqwest::StatusCode, retry_after: Option<Duration>) -> ResponseClass {
    match status.as_u16() {
        200..=299 => ResponseClass::Success,
        429 | 500..=599 => ResponseClass::Retryable { retry_after },
        _ => ResponseClass::Failed,
    }
}

/// Parses a `Retry-After` value: delay-seconds, or an HTTP date (any of
/// the three forms of RFC 9110) counted from `now`; a date in the past is
/// zero. `None` for anything else.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `now_ns` as a `SystemTime`.
pub(crate) fn system_time(now_ns: i64) -> SystemTime {
    if now_ns >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(now_ns.unsigned_abs())
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(now_ns.unsigned_abs())
    }
}

/// Sends `spec` once, signed as of `now_ns`, and reads the whole answer
/// (at most [`MAX_BODY_BYTES`]) within the spec's timeout. Every answer
/// is an `Ok`, classified; only a missing answer is an error.
pub async fn fetch_once(
    client: &reqwest::Client,
    spec: &RequestSpec,
    now_ns: i64,
) -> Result<FetchOutcome, FetchError> {
    let req = spec.build(client, now_ns)?;
    let timeout = spec.timeout();
    let exchange = async {
        let mut resp = client.execute(req).await.map_err(transport)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = bytes::BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::BodyTooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, headers, body.freeze()))
    };
    let (status, headers, body) = match tokio::time::timeout(timeout, exchange).await {
        Err(_) | Ok(Err(FetchError::Timeout(_))) => return Err(FetchError::Timeout(timeout)),
        Ok(r) => r?,
    };
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, system_time(now_ns)));
    Ok(FetchOutcome {
        status,
        class: classify(status, retry_after),
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::Secret;

    fn spec() -> RequestSpec {
        RequestSpec::get("https://api.example.test/v1/trades")
    }

    #[test]
    fn validation_names_every_bad_field() {
        assert_eq!(spec().validate(), Ok(()));
        let mut s = spec();
        s.url = "ftp://x.test/a".into();
        s.headers.insert("Bad Header".into(), "v".into());
        s.headers.insert("X-Ok".into(), "line\nbreak".into());
        s.interval_ms = 50;
        s.timeout_ms = 60_001;
        s.method = HttpMethod::Get;
        s.body = Some(serde_json::json!({}));
        s.auth = UpstreamAuth::Bearer {
            token: Secret::new(""),
        };
        let e = s.validate().unwrap_err();
        for f in [
            "url",
            "headers.Bad Header",
            "headers.X-Ok",
            "interval_ms",
            "timeout_ms",
            "body",
            "auth.token",
        ] {
            assert!(e.has(f), "{f} missing from {e}");
        }
        assert!(
            e.to_string()
                .starts_with("invalid connector request: url: scheme must be http or https"),
            "{e}"
        );

        for (url, msg) in [
            ("not a url", "not a valid URL"),
            ("http://user:pw@x.test/", "must not carry credentials"),
            ("https://x.test/a#frag", "fragment"),
            ("unix:/run/sock", "scheme"),
        ] {
            let mut s = spec();
            s.url = url.into();
            let e = s.validate().unwrap_err();
            assert!(
                e.0[0].field == "url" && e.0[0].message.contains(msg),
                "{url}: {e}"
            );
        }
        let mut s = spec();
        s.interval_ms = 100;
        s.timeout_ms = 60_000;
        assert_eq!(s.validate(), Ok(()));
        s.interval_ms = 60_001;
        assert!(s.validate().unwrap_err().has("interval_ms"));
    }

    #[test]
    fn builds_query_headers_body_then_auth() {
        let mut s = spec();
        s.url = "https://api.example.test/v1/trades?fixed=1".into();
        s.method = HttpMethod::Post;
        s.query.insert("symbol".into(), "BTC USDT".into());
        s.headers.insert("X-Trace".into(), "abc".into());
        s.body = Some(serde_json::json!({"limit": 5}));
        s.auth = UpstreamAuth::ApiKey {
            name: "key".into(),
            value: Secret::new("k"),
            location: crate::connectors::KeyLocation::Query,
        };
        let req = s.build(&reqwest::Client::new(), 0).unwrap();
        assert_eq!(req.method(), reqwest::Method::POST);
        assert_eq!(req.url().query(), Some("fixed=1&symbol=BTC+USDT&key=k"));
        assert_eq!(req.headers()["x-trace"], "abc");
        assert_eq!(req.headers()["content-type"], "application/json");
        assert_eq!(req.body().unwrap().as_bytes(), Some(&br#"{"limit":5}"#[..]));
        assert_eq!(req.timeout(), Some(&Duration::from_secs(10)));
    }

    #[test]
    fn json_shape() {
        let s: RequestSpec = serde_json::from_value(serde_json::json!({
            "method": "POST", "url": "https://x.test/", "headers": {"A": "b"},
            "query": {"q": "1"}, "body": {"x": 1},
            "auth": {"type": "bearer", "token": "T0K"},
            "interval_ms": 250, "timeout_ms": 2000
        }))
        .unwrap();
        assert_eq!(
            (s.method, s.interval(), s.timeout()),
            (
                HttpMethod::Post,
                Duration::from_millis(250),
                Duration::from_secs(2)
            )
        );
        let out = serde_json::to_string(&s).unwrap();
        assert!(
            !out.contains("T0K") && out.contains(r#""token":"***""#),
            "{out}"
        );
        let d: RequestSpec =
            serde_json::from_value(serde_json::json!({"url": "https://x.test/"})).unwrap();
        assert_eq!(d, RequestSpec::get("https://x.test/"));
    }

    #[test]
    fn retry_after_in_seconds_or_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wednesday, 21-Oct-15 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed Oct 21 07:29:00 2015", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Tue, 20 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            system_time(-1_000_000_000),
            SystemTime::UNIX_EPOCH - Duration::from_secs(1)
        );
    }

    #[test]
    fn classification() {
        use reqwest::StatusCode as S;
        let ra = Some(Duration::from_secs(1));
        assert_eq!(classify(S::OK, ra), ResponseClass::Success);
        assert_eq!(
            classify(S::TOO_MANY_REQUESTS, ra),
            ResponseClass::Retryable { retry_after: ra }
        );
        assert_eq!(
            classify(S::SERVICE_UNAVAILABLE, None),
            ResponseClass::Retryable { retry_after: None }
        );
        assert_eq!(classify(S::UNAUTHORIZED, ra), ResponseClass::Failed);
        assert_eq!(classify(S::NOT_FOUND, None), ResponseClass::Failed);
    }
}
