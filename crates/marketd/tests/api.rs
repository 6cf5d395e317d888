//! End-to-end tests of the embedded platform over HTTP: latest prices,
//! history, bars, moving averages, polling jobs, errors, docs and operations.

mod common;

use common::{TestApp, assert_error_shape, eventually, strings, wait_until};
use serde_json::json;
use std::time::Duration;

fn fast_feed(cfg: &mut marketd::config::Config) {
    cfg.feeds.simulated.ticks_per_second = 50.0;
    cfg.writer.flush_interval_ms = 50;
    cfg.aggregator.flush_interval_ms = 200;
}

#[tokio::test]
async fn latest_price_of_a_streamed_symbol_answers_at_once() {
    let app = TestApp::spawn(|_| {}).await;
    let (status, body) = app.get_json("/api/v1/prices/latest?symbol=AAPL").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["symbol"], "AAPL");
    assert_eq!(body["provider"], "simulated");
    assert!(body["price"].as_f64().unwrap() > 0.0);
    assert!(
        ["cache", "provider"].contains(&body["source"].as_str().unwrap()),
        "{body}"
    );
    assert!(body["age_ms"].as_i64().unwrap() >= 0);
    assert_eq!(body["stale"], false);
    // Once the feed has streamed, the answer comes from the cache.
    let body = eventually(Duration::from_secs(5), || async {
        let (_, b) = app.get_json("/api/v1/prices/latest?symbol=MSFT").await;
        (b["source"] == "cache").then_some(b)
    })
    .await;
    assert!(body["age_ms"].as_i64().unwrap() < 5_000);
    app.stop().await;
}

#[tokio::test]
async fn errors_have_one_shape_and_carry_the_request_id() {
    let app = TestApp::spawn(|_| {}).await;
    let r = app
        .get_with(
            "/api/v1/prices/latest?symbol=A%20B",
            &[("X-Request-Id", "test-rid-1")],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["x-request-id"], "test-rid-1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(assert_error_shape(&body), "VALIDATION_ERROR");
    assert_eq!(body["request_id"], "test-rid-1");

    for (path, status, code) in [
        ("/api/v1/prices/latest", 422, "VALIDATION_ERROR"),
        (
            "/api/v1/prices/latest?symbol=AAPL&provider=nope",
            422,
            "VALIDATION_ERROR",
        ),
        ("/api/v1/no-such-route", 404, "NOT_FOUND"),
        (
            "/api/v1/bars?symbol=AAPL&interval=2m",
            422,
            "VALIDATION_ERROR",
        ),
        (
            "/api/v1/prices/history?symbol=AAPL&cursor=garbage",
            422,
            "VALIDATION_ERROR",
        ),
        (
            "/api/v1/prices/history?symbol=AAPL&limit=100000",
            422,
            "VALIDATION_ERROR",
        ),
        (
            "/api/v1/indicators/moving-average?symbol=AAPL&window=7",
            422,
            "VALIDATION_ERROR",
        ),
    ] {
        app.get_error(path, status, code).await;
    }
    let r = app
        .client
        .delete(app.url("/api/v1/prices/latest?symbol=AAPL"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(
        assert_error_shape(&r.json().await.unwrap()),
        "METHOD_NOT_ALLOWED"
    );
    // A generated request id comes back in the header and the body.
    let r = app.get("/api/v1/prices/latest?symbol=%3B").await;
    let header = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["request_id"], header.as_str());
    app.stop().await;
}

#[tokio::test]
async fn history_pages_through_stored_ticks_in_order() {
    let app = TestApp::spawn(fast_feed).await;
    // Wait for enough AAPL ticks, then stop the feed so the set is fixed.
    eventually(Duration::from_secs(15), || async {
        let to = marketd_model::time::now_ns() - 1_000_000_000;
        let (_, b) = app
            .get_json(&format!(
                "/api/v1/prices/history?symbol=AAPL&limit=200&to={to}"
            ))
            .await;
        (b["count"].as_u64().unwrap_or(0) >= 60).then_some(())
    })
    .await;
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let to = marketd_model::time::now_ns() - 1_000_000_000;
    loop {
        let mut path = format!("/api/v1/prices/history?symbol=AAPL&limit=25&to={to}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, b) = app.get_json(&path).await;
        assert_eq!(s, 200, "{b}");
        pages += 1;
        all.extend(b["ticks"].as_array().unwrap().iter().cloned());
        match b["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(pages < 100);
    }
    assert!(pages >= 2, "expected several pages");
    let ts: Vec<i64> = all
        .iter()
        .map(|t| t["ts_event"].as_i64().unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "ascending event time");
    assert!(ts.iter().all(|t| *t < to));
    assert!(
        all.iter()
            .all(|t| t["symbol"] == "AAPL" && t["source"] == "simulated")
    );
    // Every stored tick before `to` exactly once: the pages put together
    // are the whole range listed in one page.
    let (s, whole) = app
        .get_json(&format!(
            "/api/v1/prices/history?symbol=AAPL&limit=10000&to={to}"
        ))
        .await;
    assert_eq!(s, 200, "{whole}");
    assert!(whole["next_cursor"].is_null(), "one page holds them all");
    assert_eq!(whole["ticks"].as_array().unwrap(), &all);
    app.stop().await;
}

#[tokio::test]
async fn polling_jobs_run_on_schedule_and_can_be_deleted() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (s, b) = app.post_json("/api/v1/prices/poll", &json!({"symbols": ["NVDA", "nvda", "SOL-USDT"], "interval": 1, "provider": "simulated"})).await;
    assert_eq!(s, 202, "{b}");
    let ids = strings(&b["job_ids"]);
    assert_eq!(ids.len(), 2, "duplicate symbols make one job");
    let job = eventually(Duration::from_secs(6), || async {
        let (_, j) = app
            .get_json(&format!("/api/v1/polling-jobs/{}", ids[0]))
            .await;
        (j["run_count"].as_u64().unwrap_or(0) >= 3).then_some(j)
    })
    .await;
    assert_eq!(job["status"], "active");
    assert_eq!(job["interval"], 1.0);
    assert!(job["last_run_at"].is_string());
    assert!(job["last_error"].is_null());
    // Each run published a tick that reached the store and the latest-price path.
    let (_, h) = app.get_json("/api/v1/prices/history?symbol=NVDA").await;
    assert!(h["count"].as_u64().unwrap() >= 2, "{h}");
    let (_, list) = app.get_json("/api/v1/polling-jobs").await;
    assert_eq!(list["count"], 2);

    let job = format!("/api/v1/polling-jobs/{}", ids[0]);
    assert_eq!(app.delete(&job).await, 204);
    assert_eq!(app.delete(&job).await, 404);
    let (_, list) = app.get_json("/api/v1/polling-jobs").await;
    assert_eq!(list["count"], 1);
    // A deleted job stops running: it has not run while the other job, on
    // the same 1 s interval, ran twice more.
    let (_, before) = app
        .get_json(&format!("/api/v1/polling-jobs/{}", ids[0]))
        .await;
    let other = format!("/api/v1/polling-jobs/{}", ids[1]);
    let runs = |j: &serde_json::Value| j["run_count"].as_u64().unwrap_or(0);
    let other_before = runs(&app.get_json(&other).await.1);
    wait_until(
        Duration::from_secs(10),
        "two more runs of the other job",
        || async { (runs(&app.get_json(&other).await.1) >= other_before + 2).then_some(()) },
    )
    .await;
    let (_, after) = app
        .get_json(&format!("/api/v1/polling-jobs/{}", ids[0]))
        .await;
    assert_eq!(before["run_count"], after["run_count"]);
    assert_eq!(after["status"], "deleted");
    app.get_error(
        &format!("/api/v1/polling-jobs/{}", uuid::Uuid::now_v7()),
        404,
        "JOB_NOT_FOUND",
    )
    .await;
    app.get_error("/api/v1/polling-jobs/not-a-uuid", 422, "VALIDATION_ERROR")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn polling_requests_are_validated() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let cases = [
        (json!({"symbols": ["AAPL"], "interval": 0.5}), 422),
        (json!({"symbols": ["AAPL"], "interval": -1}), 422),
        (json!({"symbols": [], "interval": 5}), 422),
        (
            json!({"symbols": ["AAPL", "BAD SYMBOL"], "interval": 5}),
            422,
        ),
        (
            json!({"symbols": ["AAPL"], "interval": 5, "provider": "nope"}),
            422,
        ),
        (json!({"symbols": ["AAPL"], "interval": 5, "extra": 1}), 422),
        (json!({"symbols": "AAPL", "interval": 5}), 422),
        (
            json!({"symbols": (0..501).map(|i| format!("S{i}")).collect::<Vec<_>>(), "interval": 5}),
            422,
        ),
    ];
    for (body, want) in cases {
        let (s, b) = app.post_json("/api/v1/prices/poll", &body).await;
        assert_eq!(s, want, "{body} -> {b}");
        assert_eq!(assert_error_shape(&b), "VALIDATION_ERROR");
    }
    let r = app
        .client
        .post(app.url("/api/v1/prices/poll"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(assert_error_shape(&r.json().await.unwrap()), "BAD_REQUEST");
    let (s, b) = app.post_json("/api/v1/prices/poll", &json!({"symbols": (0..500).map(|i| format!("S{i}")).collect::<Vec<_>>(), "interval": 60})).await;
    assert_eq!(s, 202, "500 symbols is the limit, not past it: {b}");
    assert_eq!(b["job_ids"].as_array().unwrap().len(), 500);
    let (_, list) = app.get_json("/api/v1/polling-jobs").await;
    assert_eq!(list["count"], 500);
    app.stop().await;
}

#[tokio::test]
async fn docs_and_operations_routes() {
    let app = TestApp::spawn(|_| {}).await;
    let (s, spec) = app.get_json("/openapi.json").await;
    assert_eq!(s, 200);
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for path in [
        "/api/v1/prices/latest",
        "/api/v1/prices/history",
        "/api/v1/prices/poll",
        "/api/v1/bars",
        "/api/v1/indicators/moving-average",
        "/api/v1/polling-jobs",
        "/api/v1/polling-jobs/{id}",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from OpenAPI"
        );
    }
    assert!(spec["components"]["schemas"].get("ErrorBody").is_some());
    for page in ["/docs/", "/redoc", "/"] {
        let r = app.get(page).await;
        assert_eq!(r.status(), 200, "{page}");
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("src=\"http"),
            "{page} loads a script from outside"
        );
        assert!(
            !html.contains("href=\"http"),
            "{page} loads a stylesheet from outside"
        );
    }
    let r = app.get("/redoc/redoc.standalone.js").await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.unwrap().len() > 100_000);
    let (s, live) = app.get_json("/health/live").await;
    assert_eq!((s, live["status"].as_str()), (200, Some("ok")));
    let (s, ready) = app.get_json("/health/ready").await;
    assert_eq!(s, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    for c in ["store", "bus", "cache"] {
        assert_eq!(ready["checks"][c]["status"], "ok", "{c}");
    }
    assert!(ready["providers"].get("simulated").is_some(), "{ready}");
    let _ = app.get_json("/api/v1/prices/latest?symbol=AAPL").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "marketd_http_requests_total",
        "marketd_http_request_duration_seconds_bucket",
        "marketd_ticks_ingested_total",
        "marketd_bus_buffer_depth",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(metrics.contains("route=\"/api/v1/prices/latest\""));
    app.stop().await;
}

/// Keyed clients are limited per key, anonymous ones per address, each with
/// its own budget; refusals are 429 in the error shape with Retry-After; a
/// route group with its own limits has its own budget.
#[tokio::test]
async fn rate_limits_apply_per_key_and_per_address() {
    let app = TestApp::spawn(|c| {
        c.rate_limit.key_burst = 3;
        c.rate_limit.key_per_second = 0.1;
        c.rate_limit.anonymous_burst = 5;
        c.rate_limit.anonymous_per_second = 0.1;
        c.rate_limit.groups.insert(
            "write".into(),
            marketd_api::ratelimit::GroupLimits {
                anonymous_per_second: 0.1,
                anonymous_burst: 1,
                key_per_second: 0.1,
                key_burst: 1,
            },
        );
    })
    .await;
    let url = app.url("/api/v1/prices/latest?symbol=AAPL");
    let mut keyed = Vec::new();
    for _ in 0..4 {
        keyed.push(app.client.get(&url).send().await.unwrap());
    }
    let statuses: Vec<u16> = keyed.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, vec![200, 200, 200, 429], "key burst of 3");
    assert_eq!(keyed[0].headers()["ratelimit-limit"], "3");
    assert_eq!(keyed[0].headers()["ratelimit-remaining"], "2");
    let refused = keyed.pop().unwrap();
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(common::assert_error_shape(&body), "RATE_LIMITED");

    // The anonymous client (same address) has its own budget of 5.
    for i in 0..6 {
        let r = app.anon.get(&url).send().await.unwrap();
        assert_eq!(
            r.status(),
            if i < 5 { 200 } else { 429 },
            "anonymous request {i}"
        );
    }
    // Writes have their own budget (burst 1 per key), untouched by the reads.
    let poll = serde_json::json!({"symbols": ["IBM"], "interval": 5, "provider": "simulated"});
    let (first, _) = app.post_json("/api/v1/prices/poll", &poll).await;
    assert_eq!(first, 202);
    let (second, _) = app.post_json("/api/v1/prices/poll", &poll).await;
    assert_eq!(second, 429);
    // Operations routes are never limited.
    for _ in 0..10 {
        assert_eq!(
            app.anon
                .get(app.url("/health/live"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    app.stop().await;
}
