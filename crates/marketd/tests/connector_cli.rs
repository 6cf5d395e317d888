//! The connector tools around the API: the preview route (`POST
//! /api/v1/connectors/test`), `marketd replay CAPTURE` and `marketd
//! connectors list|start|stop`. The app runs on port 0, upstreams are local
//! mock servers, the CLI is the real binary.

mod common;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{TestApp, assert_error_shape};
use reqwest::Method;
use serde_json::{Value, json};

/// Serves `router` on a free local port; its `host:port`.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("127.0.0.1:{}", addr.port())
}

const TOKEN: &str = "tok-PREVIEW-SECRET-42";
const HEADER_SECRET: &str = "hdr-PREVIEW-SECRET-77";

fn definition(name: &str, url: &str) -> Value {
    json!({
        "name": name, "kind": "rest", "url": url, "method": "GET",
        "polling_interval_ms": 500,
        "auth": {"type": "bearer", "token": TOKEN},
        "headers": {"X-Custom": HEADER_SECRET},
        "mapping": {"records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
                    "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id", "side": "$.side"}
    })
}

/// A REST upstream: `/v1/trades` wants the bearer token and answers two
/// good trades and one whose price is not a number, echoing the headers it
/// got (as debugging endpoints do: the preview must mask them);
/// `/v1/denied` answers 401; `/v1/big` answers 100 KiB of JSON.
async fn mock_upstream() -> String {
    async fn trades(headers: HeaderMap) -> axum::response::Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if auth != format!("Bearer {TOKEN}") {
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
        let custom = headers
            .get("x-custom")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        axum::Json(json!({
            "echo": {"authorization": auth, "x-custom": custom},
            "data": [
                {"s": "BTC-USDT", "p": "50123.45000001", "q": "0.0015", "t": 1_700_000_000_123_u64, "id": 981, "side": "buy"},
                {"s": "ETH-USDT", "p": 3021.5, "q": "2", "t": 1_700_000_000_456_u64, "id": "982", "side": "SELL"},
                {"s": "BTC-USDT", "p": "n/a", "q": "1", "t": 1_700_000_000_789_u64, "id": 983}
            ]
        }))
        .into_response()
    }
    async fn denied() -> axum::response::Response {
        (StatusCode::UNAUTHORIZED, r#"{"error":"no"}"#).into_response()
    }
    async fn big() -> axum::response::Response {
        let filler = "x".repeat(100 * 1024);
        axum::Json(json!({"data": [], "filler": filler})).into_response()
    }
    let router = axum::Router::new()
        .route("/v1/trades", get(trades))
        .route("/v1/denied", get(denied))
        .route("/v1/big", get(big));
    serve(router).await
}

#[tokio::test]
async fn preview_fetches_once_maps_and_stores_nothing() {
    let app = TestApp::spawn(|_| {}).await;
    let host = mock_upstream().await;
    let def = definition("preview-me", &format!("http://{host}/v1/trades"));

    let (s, p) = app.post_json("/api/v1/connectors/test", &def).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], 200);
    assert_eq!(p["truncated"], false);
    assert!(p["body_error"].is_null(), "{p}");
    assert_eq!(
        (&p["records"], &p["mapped"], &p["rejected"]),
        (&json!(3), &json!(2), &json!(1))
    );
    let ticks = p["ticks"].as_array().unwrap();
    assert_eq!(ticks.len(), 2, "{p}");
    assert_eq!(
        ticks[0],
        json!({"index": 0, "symbol": "BTC-USDT", "price": 50123.45000001, "size": 0.0015,
               "ts_event": 1_700_000_000_123_000_000_i64, "side": "buy", "trade_id": "981"})
    );
    assert_eq!(
        ticks[1],
        json!({"index": 1, "symbol": "ETH-USDT", "price": 3021.5, "size": 2,
               "ts_event": 1_700_000_000_456_000_000_i64, "side": "sell", "trade_id": "982"})
    );
    // Exact decimals: the price's digits as sent, not through f64.
    let text = serde_json::to_string(&p).unwrap();
    assert!(text.contains("\"price\":50123.45000001"), "{text}");
    let errors = p["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{p}");
    assert_eq!(errors[0]["index"], 2);
    assert_eq!(errors[0]["field"], "price");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("n/a"),
        "{p}"
    );
    // The raw answer is there, with the secrets it echoed masked.
    let body = p["body"].as_str().unwrap();
    assert!(body.contains("50123.45000001"), "{body}");
    assert!(body.contains("Bearer ***"), "{body}");
    assert_eq!(p["body_bytes"].as_u64().unwrap() as usize, {
        // The unmasked answer's length: longer than what is shown.
        body.len() + TOKEN.len() + HEADER_SECRET.len() - 6
    });
    assert!(
        !text.contains(TOKEN) && !text.contains(HEADER_SECRET),
        "{text}"
    );

    // Nothing was stored or scheduled: no connector, no tick.
    let (_, list) = app.get_json("/api/v1/connectors").await;
    assert_eq!(list["count"], 0, "{list}");
    let (_, hist) = app
        .get_json("/api/v1/prices/history?symbol=ETH-USDT&source=preview-me")
        .await;
    assert_eq!(hist["count"].as_u64().unwrap_or(0), 0, "{hist}");

    // A non-2xx answer is shown, not mapped.
    let def = definition("preview-me", &format!("http://{host}/v1/denied"));
    let (s, p) = app.post_json("/api/v1/connectors/test", &def).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], 401);
    assert_eq!(p["body"], r#"{"error":"no"}"#);
    assert!(p["body_error"].as_str().unwrap().contains("401"), "{p}");
    assert_eq!(p["records"], 0);

    // A large answer is cut at 64 KiB and says so.
    let def = definition("preview-me", &format!("http://{host}/v1/big"));
    let (s, p) = app.post_json("/api/v1/connectors/test", &def).await;
    assert_eq!(s, 200);
    assert_eq!(p["truncated"], true);
    assert_eq!(p["body"].as_str().unwrap().len(), 64 * 1024);
    assert!(p["body_bytes"].as_u64().unwrap() > 100 * 1024);
    assert_eq!((&p["records"], &p["rejected"]), (&json!(0), &json!(0)));
    app.stop().await;
}

#[tokio::test]
async fn preview_needs_write_a_valid_rest_definition_and_a_reachable_upstream() {
    let app = TestApp::spawn(|_| {}).await;
    let host = mock_upstream().await;
    let def = definition("p", &format!("http://{host}/v1/trades"));

    let (s, b, _) = app
        .call(Method::POST, "/api/v1/connectors/test", None, Some(&def))
        .await;
    assert_eq!(s, 401, "{b}");
    assert_error_shape(&b);
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/connectors/test",
            Some(&app.read_key),
            Some(&def),
        )
        .await;
    assert_eq!(s, 403, "{b}");
    assert_error_shape(&b);

    // Checked as a create is: the field is named.
    let mut bad = def.clone();
    bad["mapping"]["price"] = json!("$.[");
    let (s, b) = app.post_json("/api/v1/connectors/test", &bad).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(assert_error_shape(&b), "VALIDATION_ERROR");
    assert!(
        b["detail"].as_str().unwrap().contains("mapping.price"),
        "{b}"
    );
    let mut bad = def.clone();
    bad["polling_interval_ms"] = json!(50);
    let (s, b) = app.post_json("/api/v1/connectors/test", &bad).await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("polling_interval_ms"),
        "{b}"
    );

    // Websocket connectors have no single answer to preview.
    let ws = json!({"name": "ws", "kind": "websocket", "venue": "binance",
                    "url": "ws://127.0.0.1:9", "symbols": ["BTC-USDT"], "channels": ["trades"]});
    let (s, b) = app.post_json("/api/v1/connectors/test", &ws).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(assert_error_shape(&b), "VALIDATION_ERROR");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("rest connectors only"),
        "{b}"
    );

    // Nothing listens on the upstream's port: 502, no secret in the detail.
    let port = common::process::free_port();
    let mut down = definition("p", &format!("http://127.0.0.1:{port}/v1/trades"));
    down["query"] = json!({"key": "q-SECRET-in-query"});
    let (s, b) = app.post_json("/api/v1/connectors/test", &down).await;
    assert_eq!(s, 502, "{b}");
    assert_eq!(assert_error_shape(&b), "UPSTREAM_ERROR");
    let detail = b["detail"].as_str().unwrap();
    assert!(detail.contains("upstream unreachable"), "{b}");
    for secret in [TOKEN, HEADER_SECRET, "q-SECRET-in-query"] {
        assert!(!b.to_string().contains(secret), "{secret} in {b}");
    }
    app.stop().await;
}
