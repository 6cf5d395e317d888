//! The latest-price path against local mock upstreams speaking the real wire
//! formats (`shared/fixtures/formats`): provider answers, cache hits, unknown
//! symbols, single flight, stale fallback to the store and 502.

mod common;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{TestApp, wait_until};
use marketd_model::Secret;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn fixture(name: &str) -> serde_json::Value {
    let path = format!(
        "{}/../../../shared/fixtures/formats/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .unwrap()
}

#[derive(Default)]
struct Mock {
    hits: Mutex<HashMap<String, usize>>,
    tokens: Mutex<Vec<String>>,
    failing: AtomicBool,
    total: AtomicUsize,
}

async fn finnhub_quote(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let symbol = q.get("symbol").cloned().unwrap_or_default();
    *m.hits.lock().unwrap().entry(symbol.clone()).or_default() += 1;
    m.total.fetch_add(1, Ordering::SeqCst);
    if let Some(t) = headers.get("x-finnhub-token") {
        m.tokens
            .lock()
            .unwrap()
            .push(t.to_str().unwrap().to_string());
    }
    if m.failing.load(Ordering::SeqCst) || symbol == "DOWN" {
        return (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response();
    }
    match symbol.as_str() {
        "HANG" => {
            // Longer than any deadline of the tests: only a timeout ends it.
            tokio::time::sleep(Duration::from_secs(60)).await;
            axum::Json(fixture("finnhub_quote.json")["response_docs_sample"].clone()).into_response()
        }
        "ZZZZ" => axum::Json(serde_json::json!({"c": 0, "d": null, "dp": null, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0})).into_response(),
        "SLOW1" => {
            tokio::time::sleep(Duration::from_millis(150)).await;
            axum::Json(fixture("finnhub_quote.json")["response_with_change_fields_seen_in_a_public_rust_test"].clone()).into_response()
        }
        _ => axum::Json(fixture("finnhub_quote.json")["response_docs_sample"].clone()).into_response(),
    }
}

async fn yahoo_chart(Path(symbol): Path<String>) -> impl IntoResponse {
    let f = fixture("yahoo_chart_v8.json");
    if symbol == "NOPE" {
        let e = &f["error_example"];
        let body = e.get("body").cloned().unwrap_or_else(|| e.clone());
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    axum::Json(f["daily_bars_example"]["body"].clone()).into_response()
}

async fn start_mock() -> (String, Arc<Mock>) {
    let mock = Arc::new(Mock::default());
    let app = axum::Router::new()
        .route("/api/v1/quote", get(finnhub_quote))
        .route("/v8/finance/chart/{symbol}", get(yahoo_chart))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), mock)
}

/// GET /api/v1/prices/latest of `symbol` from `provider`.
async fn latest(app: &TestApp, symbol: &str, provider: &str) -> (u16, serde_json::Value) {
    let path = format!("/api/v1/prices/latest?symbol={symbol}&provider={provider}");
    app.get_json(&path).await
}

/// Rows of the price-request log matching `filter` (`Some` once there are
/// any). The log has no read route: the rows in the database are what
/// "every miss is logged" means, so they are counted there.
async fn logged(app: &TestApp, filter: &str) -> Option<i64> {
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM price_requests WHERE {filter}"
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (n > 0).then_some(n)
}

async fn app_with_mock(ttl_ms: u64) -> (TestApp, Arc<Mock>) {
    let (base, mock) = start_mock().await;
    let app = TestApp::spawn(move |c| {
        c.feeds.simulated.enabled = false;
        c.cache.latest_ttl_ms = ttl_ms;
        c.writer.flush_interval_ms = 20;
        c.providers.finnhub.enabled = true;
        c.providers.finnhub.base_url = format!("{base}/api/v1");
        c.providers.finnhub.api_key = Some(Secret::new("test-token-123"));
        c.providers.finnhub.max_retries = 1;
        // Far above prices.upstream_timeout_ms, so that a cut at 400 ms can
        // only be the latter's.
        c.providers.finnhub.timeout_ms = 30_000;
        c.prices.upstream_timeout_ms = 400;
        c.providers.finnhub.rate_limit_per_minute = 6_000;
        c.providers.yahoo.enabled = true;
        c.providers.yahoo.base_url = base.clone();
        c.providers.yahoo.max_retries = 0;
    })
    .await;
    (app, mock)
}

#[tokio::test]
async fn provider_then_cache_and_every_miss_is_logged() {
    let (app, mock) = app_with_mock(60_000).await;
    let (s, b) = latest(&app, "aapl", "finnhub").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (
            b["source"].as_str(),
            b["symbol"].as_str(),
            b["provider"].as_str()
        ),
        (Some("provider"), Some("AAPL"), Some("finnhub"))
    );
    assert_eq!(b["price"], serde_json::json!(261.74));
    assert_eq!(b["ts_event"], 1_582_641_000_000_000_000_i64);
    assert_eq!(b["stale"], false);
    let (_, b) = latest(&app, "AAPL", "finnhub").await;
    assert_eq!(b["source"], "cache");
    assert_eq!(
        mock.hits.lock().unwrap()["AAPL"],
        1,
        "the second request is a cache hit"
    );
    assert!(
        mock.tokens
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == "test-token-123")
    );

    // The fetched price was published as a tick and stored.
    let ticks = wait_until(
        Duration::from_secs(10),
        "the fetched tick stored",
        || async {
            let n = app.count_stored("symbol=AAPL&source=finnhub").await;
            (n >= 1).then_some(n)
        },
    )
    .await;
    assert_eq!(ticks, 1);
    // The miss was logged on price-requests and stored.
    let requests = wait_until(Duration::from_secs(10), "the miss logged", || {
        logged(
            &app,
            "symbol = 'AAPL' AND provider = 'finnhub' AND outcome = 'provider'",
        )
    })
    .await;
    assert_eq!(requests, 1);

    let (s, b) = latest(&app, "AAPL", "yahoo").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["source"].as_str(), b["price"].as_f64()),
        (Some("provider"), Some(244.87))
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_symbols_are_404_not_a_zero_price() {
    let (app, _mock) = app_with_mock(60_000).await;
    for path in [
        "/api/v1/prices/latest?symbol=ZZZZ&provider=finnhub",
        "/api/v1/prices/latest?symbol=NOPE&provider=yahoo",
    ] {
        app.get_error(path, 404, "SYMBOL_NOT_FOUND").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn concurrent_misses_make_one_upstream_call() {
    let (app, mock) = app_with_mock(60_000).await;
    let requests = (0..20).map(|_| latest(&app, "SLOW1", "finnhub"));
    let answers = futures::future::join_all(requests).await;
    for (s, b) in &answers {
        assert_eq!(*s, 200, "{b}");
        assert_eq!(b["price"], serde_json::json!(261.74));
    }
    assert_eq!(mock.hits.lock().unwrap()["SLOW1"], 1, "single flight");
    app.stop().await;
}

#[tokio::test]
async fn provider_failure_falls_back_to_the_stored_tick_or_502() {
    let (app, mock) = app_with_mock(100).await;
    let (s, b) = latest(&app, "MSFT", "finnhub").await;
    assert_eq!((s, b["source"].as_str()), (200, Some("provider")), "{b}");
    // Let the writer store the tick...
    wait_until(
        Duration::from_secs(10),
        "the fetched tick stored",
        || async { (app.count_stored("symbol=MSFT").await == 1).then_some(()) },
    )
    .await;
    // ...and the cache entry expire: the upstream now fails, so the first
    // answer that is not the cached one comes from the store.
    mock.failing.store(true, Ordering::SeqCst);
    let (s, b) = wait_until(
        Duration::from_secs(10),
        "the cache entry expired",
        || async {
            let (s, b) = latest(&app, "MSFT", "finnhub").await;
            (b["source"] != "cache").then_some((s, b))
        },
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        (b["source"].as_str(), b["stale"].as_bool()),
        (Some("store"), Some(true))
    );
    assert_eq!(b["price"], serde_json::json!(261.74));
    // Nothing stored for this one: 502 in the error shape, no internals leaked.
    let b = app
        .get_error(
            "/api/v1/prices/latest?symbol=DOWN&provider=finnhub",
            502,
            "UPSTREAM_ERROR",
        )
        .await;
    assert!(!b["detail"].as_str().unwrap().contains("exploded"));
    // A hanging upstream is cut at prices.upstream_timeout_ms (400 ms here),
    // not by the provider's own 30 s timeout: the answer comes within a
    // deadline far below the latter (a deadline, not a measurement).
    let answer = tokio::time::timeout(
        Duration::from_secs(8),
        app.get_error(
            "/api/v1/prices/latest?symbol=HANG&provider=finnhub",
            502,
            "UPSTREAM_ERROR",
        ),
    )
    .await;
    assert!(answer.is_ok(), "a hanging upstream was not cut");
    // Both misses were logged with their outcome.
    let stale = "symbol = 'MSFT' AND outcome = 'store'";
    let failed = "symbol = 'DOWN' AND outcome = 'error' AND error IS NOT NULL";
    wait_until(Duration::from_secs(10), "both misses logged", || async {
        (logged(&app, stale).await == Some(1) && logged(&app, failed).await == Some(1))
            .then_some(())
    })
    .await;
    app.stop().await;
}
