//! Generic REST connectors end to end against a local mock venue
//! (127.0.0.1, port 0) that checks every kind of upstream auth the way the
//! venue would: it recomputes the Binance and OKX signatures from the
//! request it received, with its own HMAC code and the same secret, and
//! answers 401 on any mismatch. It also scripts 429 (`Retry-After: 1`) and
//! 500 answers to exercise the retries.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use marketd_model::{Decimal, Secret, Symbol, TickKind};
use marketd_sources::Backoff;
use marketd_sources::connectors::{
    ExtractContext, FieldMapping, HostLimiters, HttpMethod, KeyLocation, RequestSpec,
    ResponseClass, RetryPolicy, UpstreamAuth, fetch_once, fetch_with_retry,
};
use sha2::Sha256;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINANCE_KEY: &str = "binance-key";
const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const OKX_KEY: &str = "okx-key";
const OKX_SECRET: &str = "22582BD0CFF14C41EDBF1AB98506286D";
const OKX_PASSPHRASE: &str = "okx-pass";

/// The records every authenticated route answers: prices as strings and as
/// numbers, one bad record (no price) among them.
const TRADES: &str = r#"{"code":"0","data":[
  {"s":"ETH/USDT","p":"3021.123456789012345","q":"0.00010","t":1700000000123,"id":"t-1","side":"buy"},
  {"s":"ETH/USDT","p":3021.5,"q":2,"t":"1700000000124","id":17,"side":"SELL"},
  {"s":"ETH/USDT","q":"1","t":1700000000125,"id":"t-3"}
]}"#;

#[derive(Default)]
struct Venue {
    /// When each hit of the scripted routes arrived, by route.
    hits: Mutex<Vec<(String, Instant)>>,
}

impl Venue {
    fn hit(&self, route: &str) -> usize {
        let mut hits = self.hits.lock().unwrap();
        hits.push((route.to_string(), Instant::now()));
        hits.iter().filter(|(r, _)| r == route).count()
    }

    fn times(&self, route: &str) -> Vec<Instant> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _)| r == route)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn hmac_sha256(key: &str, data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn unauthorized(why: &str) -> Response {
    (StatusCode::UNAUTHORIZED, why.to_string()).into_response()
}

fn trades() -> Response {
    ([("content-type", "application/json")], TRADES).into_response()
}

/// Binance: the signature is the last query parameter, over everything
/// before it concatenated with the body; the key is in `X-MBX-APIKEY`.
fn check_binance(query: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), &'static str> {
    if header(headers, "x-mbx-apikey") != BINANCE_KEY {
        return Err("bad api key");
    }
    let (signed, sig) = query
        .rsplit_once("&signature=")
        .ok_or("no signature parameter")?;
    if !signed.split('&').any(|p| p.starts_with("timestamp=")) {
        return Err("no timestamp");
    }
    let mut payload = signed.as_bytes().to_vec();
    payload.extend_from_slice(body);
    let expected: String = hmac_sha256(BINANCE_SECRET, &payload)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if sig != expected {
        return Err("signature mismatch");
    }
    Ok(())
}

/// OKX: base64(HMAC-SHA256(secret, timestamp + METHOD + path?query + body)).
fn check_okx(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    if header(headers, "ok-access-key") != OKX_KEY
        || header(headers, "ok-access-passphrase") != OKX_PASSPHRASE
    {
        return Err("bad key or passphrase");
    }
    let ts = header(headers, "ok-access-timestamp");
    // 2020-12-08T09:08:57.715Z: 24 characters, milliseconds, UTC.
    if ts.len() != 24 || !ts.ends_with('Z') || ts.as_bytes()[19] != b'.' {
        return Err("bad timestamp");
    }
    let mut prehash = format!("{ts}{method}{path_and_query}").into_bytes();
    prehash.extend_from_slice(body);
    let expected =
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(OKX_SECRET, &prehash));
    if header(headers, "ok-access-sign") != expected {
        return Err("signature mismatch");
    }
    Ok(())
}

async fn handle(
    State(venue): State<Arc<Venue>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
    let path_and_query = uri.path_and_query().map_or(path, |p| p.as_str());
    let verdict = match path {
        "/binance/trades" => check_binance(query, &headers, &body),
        "/okx/trades" => check_okx(&method, path_and_query, &headers, &body),
        "/key/header" => (header(&headers, "x-api-key") == "hk")
            .then_some(())
            .ok_or("bad key"),
        "/key/query" => query
            .split('&')
            .any(|p| p == "apikey=q%26k")
            .then_some(())
            .ok_or("bad key"),
        "/bearer" => (header(&headers, "authorization") == "Bearer tok")
            .then_some(())
            .ok_or("bad token"),
        // RFC 7617: Aladdin / open sesame.
        "/basic" => (header(&headers, "authorization") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
            .then_some(())
            .ok_or("bad credentials"),
        "/public" => Ok(()),
        "/throttled" => {
            if venue.hit("/throttled") == 1 {
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "slow down",
                )
                    .into_response();
            }
            Ok(())
        }
        "/flaky" => {
            if venue.hit("/flaky") == 1 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response();
            }
            Ok(())
        }
        "/down" => {
            venue.hit("/down");
            return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response();
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    match verdict {
        Ok(()) => trades(),
        Err(why) => unauthorized(why),
    }
}

async fn start() -> (SocketAddr, Arc<Venue>) {
    let venue = Arc::new(Venue::default());
    let app = Router::new()
        .fallback(any(handle))
        .with_state(venue.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, venue)
}

fn spec(addr: SocketAddr, path: &str, auth: UpstreamAuth) -> RequestSpec {
    let mut s = RequestSpec::get(format!("http://{addr}{path}"));
    s.auth = auth;
    s.query.insert("symbol".into(), "ETHUSDT".into());
    s.query.insert("limit".into(), "3".into());
    s.validate().unwrap();
    s
}

fn now() -> i64 {
    marketd_model::time::now_ns()
}

fn mapping() -> FieldMapping {
    serde_json::from_value(serde_json::json!({
        "records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
        "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id", "side": "$.side"
    }))
    .unwrap()
}

fn binance() -> UpstreamAuth {
    UpstreamAuth::HmacBinance {
        api_key: Secret::new(BINANCE_KEY),
        secret: Secret::new(BINANCE_SECRET),
        recv_window: Some(5000),
    }
}

fn okx() -> UpstreamAuth {
    UpstreamAuth::HmacOkx {
        api_key: Secret::new(OKX_KEY),
        secret: Secret::new(OKX_SECRET),
        passphrase: Secret::new(OKX_PASSPHRASE),
    }
}

#[tokio::test]
async fn every_auth_kind_is_accepted_by_a_verifying_venue() {
    let (addr, _venue) = start().await;
    let client = reqwest::Client::new();
    let cases = [
        ("/binance/trades", binance()),
        ("/okx/trades", okx()),
        (
            "/key/header",
            UpstreamAuth::ApiKey {
                name: "X-Api-Key".into(),
                value: Secret::new("hk"),
                location: KeyLocation::Header,
            },
        ),
        (
            "/key/query",
            UpstreamAuth::ApiKey {
                name: "apikey".into(),
                value: Secret::new("q&k"),
                location: KeyLocation::Query,
            },
        ),
        (
            "/bearer",
            UpstreamAuth::Bearer {
                token: Secret::new("tok"),
            },
        ),
        (
            "/basic",
            UpstreamAuth::Basic {
                username: "Aladdin".into(),
                password: Secret::new("open sesame"),
            },
        ),
        ("/public", UpstreamAuth::None),
    ];
    for (path, auth) in cases {
        let kind = auth.kind();
        let out = fetch_once(&client, &spec(addr, path, auth), now())
            .await
            .unwrap();
        assert_eq!(
            (out.status.as_u16(), out.class),
            (200, ResponseClass::Success),
            "{kind}: {}",
            String::from_utf8_lossy(&out.body)
        );
        assert_eq!(out.body, TRADES.as_bytes(), "{kind}: raw body kept");
        assert_eq!(out.headers["content-type"], "application/json");
    }
}

#[tokio::test]
async fn signed_posts_with_a_body_verify_too() {
    let (addr, _venue) = start().await;
    let client = reqwest::Client::new();
    for (path, auth) in [("/okx/trades", okx()), ("/binance/trades", binance())] {
        let mut s = spec(addr, path, auth);
        s.method = HttpMethod::Post;
        s.body = Some(serde_json::json!({"instId": "ETH-USDT", "sz": "1.5"}));
        let out = fetch_once(&client, &s, now()).await.unwrap();
        assert_eq!(
            out.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&out.body)
        );
    }
}

#[tokio::test]
async fn wrong_secrets_are_rejected_and_not_retried() {
    let (addr, _venue) = start().await;
    let client = reqwest::Client::new();
    let wrong_binance = UpstreamAuth::HmacBinance {
        api_key: Secret::new(BINANCE_KEY),
        secret: Secret::new("not the secret"),
        recv_window: None,
    };
    let wrong_okx = UpstreamAuth::HmacOkx {
        api_key: Secret::new(OKX_KEY),
        secret: Secret::new("not the secret"),
        passphrase: Secret::new(OKX_PASSPHRASE),
    };
    for (path, auth) in [
        ("/binance/trades", wrong_binance),
        ("/okx/trades", wrong_okx),
    ] {
        let fetched = fetch_with_retry(
            &client,
            &spec(addr, path, auth),
            &HostLimiters::default(),
            &RetryPolicy::default(),
            now,
        )
        .await
        .unwrap();
        assert_eq!(fetched.outcome.status, 401, "{path}");
        assert_eq!(fetched.outcome.body, "signature mismatch", "{path}");
        assert_eq!(fetched.outcome.class, ResponseClass::Failed);
        assert_eq!(fetched.attempts, 1, "{path}: a 401 is final");
    }
}

#[tokio::test]
async fn spec_auth_and_mapping_give_exact_ticks() {
    let (addr, _venue) = start().await;
    let client = reqwest::Client::new();
    let fetched = fetch_with_retry(
        &client,
        &spec(addr, "/binance/trades", binance()),
        &HostLimiters::default(),
        &RetryPolicy::default(),
        now,
    )
    .await
    .unwrap();
    assert!(fetched.outcome.is_success());
    let mapping = mapping().compile().unwrap();
    let ctx = ExtractContext {
        source: "my-binance".into(),
        symbol: None,
        received_ns: 1_700_000_001_000_000_000,
    };
    let body: serde_json::Value = serde_json::from_slice(&fetched.outcome.body).unwrap();
    let (trades, errors) = mapping.extract_trades(&body, &ctx);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0].index, errors[0].field, errors[0].message.as_str()),
        (2, "price", "missing")
    );
    assert_eq!(trades.len(), 2);
    let t = &trades[0].tick;
    assert_eq!(t.symbol, Symbol::parse("ETH-USDT").unwrap());
    assert_eq!(t.venue_symbol.as_deref(), Some("ETH/USDT"));
    assert_eq!(&*t.source, "my-binance");
    assert_eq!(t.kind, TickKind::Trade);
    assert_eq!(t.price.to_string(), "3021.123456789012345");
    assert_eq!(t.size.to_string(), "0.00010");
    assert_eq!(t.ts_event, 1_700_000_000_123_000_000);
    assert_eq!(t.ts_received, 1_700_000_001_000_000_000);
    assert_eq!(t.trade_id.as_deref(), Some("t-1"));
    let t = &trades[1].tick;
    assert_eq!(t.price, "3021.5".parse::<Decimal>().unwrap());
    assert_eq!(t.size, Decimal::from(2));
    assert_eq!(t.ts_event, 1_700_000_000_124_000_000);
    assert_eq!(t.trade_id.as_deref(), Some("17"));
    assert_eq!(
        trades.iter().map(|t| t.side).collect::<Vec<_>>(),
        [
            Some(marketd_sources::connectors::Side::Buy),
            Some(marketd_sources::connectors::Side::Sell)
        ]
    );
    // The same from the raw bytes, and validation passes on every tick.
    let (ticks, errors) = mapping.extract_bytes(&fetched.outcome.body, &ctx).unwrap();
    assert_eq!((ticks.len(), errors.len()), (2, 1));
    for t in &ticks {
        t.validate(ctx.received_ns).unwrap();
    }
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_retry_after() {
    let (addr, venue) = start().await;
    let client = reqwest::Client::new();
    // Backoff alone would retry within a millisecond: only Retry-After can hold it back.
    let policy = RetryPolicy {
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(1), 3),
        ..RetryPolicy::default()
    };
    let fetched = fetch_with_retry(
        &client,
        &spec(addr, "/throttled", UpstreamAuth::None),
        &HostLimiters::default(),
        &policy,
        now,
    )
    .await
    .unwrap();
    assert!(fetched.outcome.is_success());
    assert_eq!(fetched.attempts, 2);
    let times = venue.times("/throttled");
    assert_eq!(times.len(), 2);
    // The venue's own clock: the retry arrived at least the second it asked for after the 429.
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
}

#[tokio::test]
async fn a_500_is_retried_then_succeeds_and_exhaustion_returns_the_last_answer() {
    let (addr, venue) = start().await;
    let client = reqwest::Client::new();
    let policy = RetryPolicy {
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 2),
        ..RetryPolicy::default()
    };
    let limiters = HostLimiters::default();
    let fetched = fetch_with_retry(
        &client,
        &spec(addr, "/flaky", UpstreamAuth::None),
        &limiters,
        &policy,
        now,
    )
    .await
    .unwrap();
    assert!(fetched.outcome.is_success());
    assert_eq!((fetched.attempts, venue.times("/flaky").len()), (2, 2));

    let fetched = fetch_with_retry(
        &client,
        &spec(addr, "/down", UpstreamAuth::None),
        &limiters,
        &policy,
        now,
    )
    .await
    .unwrap();
    assert_eq!(fetched.outcome.status, 503);
    assert_eq!(
        fetched.outcome.class,
        ResponseClass::Retryable { retry_after: None }
    );
    assert_eq!((fetched.attempts, venue.times("/down").len()), (3, 3));

    // A POST is not idempotent: a 5xx is handed back at once.
    let mut post = spec(addr, "/down", UpstreamAuth::None);
    post.method = HttpMethod::Post;
    let fetched = fetch_with_retry(&client, &post, &limiters, &policy, now)
        .await
        .unwrap();
    assert_eq!(fetched.attempts, 1);
    // Every call went through the one limiter of the mock's host.
    assert_eq!(limiters.hosts(), [format!("127.0.0.1:{}", addr.port())]);
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = reqwest::Client::new();
    let err = fetch_once(&client, &spec(addr, "/x", UpstreamAuth::None), now())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        !err.to_string().contains("symbol=ETHUSDT"),
        "no URL in errors: {err}"
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_policy_allows_ends_the_call() {
    let (addr, venue) = start().await;
    let client = reqwest::Client::new();
    let policy = RetryPolicy {
        max_retry_after: Duration::from_millis(500),
        ..RetryPolicy::default()
    };
    let fetched = fetch_with_retry(
        &client,
        &spec(addr, "/throttled", UpstreamAuth::None),
        &HostLimiters::default(),
        &policy,
        now,
    )
    .await
    .unwrap();
    assert_eq!(fetched.outcome.status, 429);
    assert_eq!(
        fetched.outcome.class,
        ResponseClass::Retryable {
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert_eq!((fetched.attempts, venue.times("/throttled").len()), (1, 1));
}
