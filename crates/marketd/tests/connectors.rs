//! Connectors end to end: the app on port 0, upstreams as local mock
//! servers speaking the venues' formats (`shared/fixtures/formats`), every
//! assertion through the API.

mod common;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use common::{TestApp, assert_error_shape, wait_until};
use marketd_bus::{Bus, Consumer};
use marketd_model::{Event, Topic};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    (marketd_model::time::now_ns() / 1_000_000) as u64
}

/// Serves `router` on a free local port; its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("127.0.0.1:{}", addr.port())
}

fn rest_definition(name: &str, url: &str, token: &str) -> Value {
    json!({
        "name": name, "kind": "rest", "url": url, "method": "GET",
        "polling_interval_ms": 200,
        "auth": {"type": "bearer", "token": token},
        "headers": {"X-Custom": "hdr-SECRET-456"},
        "mapping": {"records": "$.data[*]", "symbol": "$.s", "price": "$.p", "size": "$.q",
                    "ts": "$.t", "ts_unit": "ms", "trade_id": "$.id"}
    })
}

#[tokio::test]
async fn connectors_are_validated_stored_without_secrets_and_deleted() {
    let app = TestApp::spawn(|_| {}).await;
    let def = rest_definition(
        "mock-rest",
        "http://127.0.0.1:9/v1/trades",
        "tok-SECRET-123",
    );
    let (status, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["desired"], "stopped");
    assert_eq!(created["name"], "mock-rest");
    assert_eq!(created["auth"]["type"], "bearer");
    assert_eq!(created["auth"]["token"], "***");
    assert_eq!(created["headers"]["X-Custom"], "***");
    assert!(!created.to_string().contains("SECRET"), "{created}");

    let (_, list) = app.get_json("/api/v1/connectors").await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["connectors"][0]["id"], id.as_str());
    assert!(!list.to_string().contains("SECRET"));
    let (_, status_body) = app
        .get_json(&format!("/api/v1/connectors/{id}/status"))
        .await;
    assert_eq!(status_body["state"], "stopped");
    assert_eq!(status_body["messages_received"], 0);

    // Names are unique; every bad field is a 422 naming it.
    let (s, b) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 409, "{b}");
    assert_eq!(assert_error_shape(&b), "CONNECTOR_NAME_TAKEN");
    let bad = |f: &dyn Fn(&mut Value)| {
        let mut d = rest_definition("other", "http://127.0.0.1:9/x", "t");
        f(&mut d);
        d
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            bad(&|d| d["polling_interval_ms"] = json!(50)),
            "polling_interval_ms",
        ),
        (
            bad(&|d| d["polling_interval_ms"] = json!(60_001)),
            "polling_interval_ms",
        ),
        (bad(&|d| d["url"] = json!("ftp://x")), "url"),
        (
            bad(&|d| d["mapping"]["price"] = json!("$.[")),
            "mapping.price",
        ),
        (
            bad(&|d| d["auth"] = json!({"type": "bearer"})),
            "auth.token",
        ),
        (bad(&|d| d["kind"] = json!("carrier-pigeon")), "kind"),
        (
            json!({"name": "ws", "kind": "websocket", "venue": "kraken", "symbols": ["BTC-USDT"], "channels": ["trades"]}),
            "venue",
        ),
        (
            json!({"name": "ws", "kind": "websocket", "venue": "okx", "symbols": ["BTC-USDT"], "channels": ["agg_trades"]}),
            "agg_trades",
        ),
    ];
    for (d, field) in cases {
        let (s, b) = app.post_json("/api/v1/connectors", &d).await;
        assert_eq!(s, 422, "{d}: {b}");
        assert_eq!(assert_error_shape(&b), "VALIDATION_ERROR");
        assert!(
            b["detail"].as_str().unwrap().contains(field),
            "{field}: {b}"
        );
    }

    // Sent back with `***`, the stored secret stays; the definition changes.
    let mut edited = created.clone();
    edited["polling_interval_ms"] = json!(1000);
    let (s, updated, _) = app
        .call(
            Method::PUT,
            &format!("/api/v1/connectors/{id}"),
            Some(&app.write_key),
            Some(&edited),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    assert_eq!(updated["polling_interval_ms"], 1000);
    assert_eq!(updated["auth"]["token"], "***");

    // Reads are open to `read`; changes need `write`.
    let (s, _, _) = app
        .call(
            Method::POST,
            "/api/v1/connectors",
            Some(&app.read_key),
            Some(&def),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/connectors/{id}/start"),
            None,
            None,
        )
        .await;
    assert_eq!(s, 401);

    assert_eq!(app.delete(&format!("/api/v1/connectors/{id}")).await, 204);
    let b = app
        .get_error(
            &format!("/api/v1/connectors/{id}"),
            404,
            "CONNECTOR_NOT_FOUND",
        )
        .await;
    assert!(b["detail"].as_str().unwrap().contains(&id));
    app.stop().await;
}

/// A REST API that wants `Authorization: Bearer <token>` and answers three
/// new trades per call, in the shape of the mapping above.
async fn mock_rest(token: &'static str) -> String {
    let next = Arc::new((AtomicU64::new(1), format!("Bearer {token}")));
    async fn trades(
        State(state): State<Arc<(AtomicU64, String)>>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        let (next, want) = &*state;
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad token").into_response();
        }
        let first = next.fetch_add(3, Ordering::SeqCst);
        let t = now_ms();
        let data: Vec<Value> = (first..first + 3)
            .map(|id| json!({"s": "ETH-USDT", "p": format!("3021.{id:04}"), "q": "0.00010", "t": t, "id": id}))
            .collect();
        axum::Json(json!({"data": data})).into_response()
    }
    let router = axum::Router::new()
        .route("/v1/trades", get(trades))
        .with_state(next);
    serve(router).await
}

#[tokio::test]
async fn a_rest_connector_polls_maps_stores_and_stops() {
    let app = TestApp::spawn(|_| {}).await;
    let host = mock_rest("tok-1").await;
    let def = rest_definition("mockex", &format!("http://{host}/v1/trades"), "tok-1");
    let (s, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (s, started) = app
        .post_json(&format!("/api/v1/connectors/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{started}");
    assert_eq!(started["desired"], "running");

    // Ticks with the connector's name as their source, decimals exact.
    let history = "/api/v1/prices/history?symbol=ETH-USDT&source=mockex";
    let ticks = wait_until(
        DEADLINE,
        "three polls' ticks from the REST connector",
        || async {
            let (_, page) = app.get_json(history).await;
            (page["count"].as_u64().unwrap_or(0) >= 9).then_some(page)
        },
    )
    .await;
    let first = &ticks["ticks"][0];
    assert_eq!(first["source"], "mockex");
    assert_eq!(first["trade_id"], "1");
    assert_eq!(first["price"], json!(3021.0001));
    let ids: Vec<&str> = ticks["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trade_id"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "a tick twice: {ids:?}");

    // The raw answers are kept beside what they became.
    let (_, data) = app
        .get_json(&format!("/api/v1/connectors/{id}/data?limit=2"))
        .await;
    assert_eq!(data["count"], 2, "{data}");
    let rec = &data["records"][0];
    assert!(rec["raw"].as_str().unwrap().contains("3021.0001"), "{rec}");
    assert_eq!(rec["data"].as_array().unwrap().len(), 3);
    let cursor = data["next_cursor"].as_str().unwrap();
    let (_, more) = app
        .get_json(&format!(
            "/api/v1/connectors/{id}/data?cursor={cursor}&limit=2"
        ))
        .await;
    let after = more["records"][0]["seq"].as_i64().expect("a third record");
    assert!(
        after > data["records"][1]["seq"].as_i64().unwrap(),
        "{more}"
    );

    let status = wait_until(DEADLINE, "status running with messages", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["state"] == "running" && s["messages_received"].as_u64() >= Some(2)).then_some(s)
    })
    .await;
    assert!(status["ticks"].as_u64().unwrap() >= 6, "{status}");
    assert!(status["last_message_at"].is_i64(), "{status}");

    let (s, stopped) = app
        .post_json(&format!("/api/v1/connectors/{id}/stop"), &json!({}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(stopped["desired"], "stopped");
    wait_until(DEADLINE, "status stopped", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["state"] == "stopped").then_some(())
    })
    .await;
    app.stop().await;
}

/// A Binance combined stream: each connection gets ten new trades and one
/// repeated from the connection before, then is dropped by the server.
#[derive(Clone, Default)]
struct MockBinance {
    connections: Arc<AtomicU64>,
}

fn binance_trade(id: u64, t: u64) -> String {
    json!({"stream": "btcusdt@trade", "data": {"e": "trade", "E": t, "s": "BTCUSDT", "t": id,
           "p": format!("50000.{id:02}"), "q": "0.001", "T": t, "m": true, "M": true}})
    .to_string()
}

async fn binance_stream(
    State(mock): State<MockBinance>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.on_upgrade(move |socket: WebSocket| async move {
        let mut socket = socket;
        let n = mock.connections.fetch_add(1, Ordering::SeqCst);
        let t = now_ms();
        let first = n * 10;
        let mut ids: Vec<u64> = (first..first + 10).collect();
        if n > 0 {
            ids.insert(0, first - 1);
        }
        for id in ids {
            if socket
                .send(Message::Text(binance_trade(id, t).into()))
                .await
                .is_err()
            {
                return;
            }
        }
        if n == 0 {
            // The first connection is dropped; the client reconnects.
            return;
        }
        // Later ones stay open until the client leaves.
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

#[tokio::test]
async fn a_binance_connector_reconnects_and_stores_each_trade_once() {
    let app = TestApp::spawn(|_| {}).await;
    let mock = MockBinance::default();
    let router = axum::Router::new()
        .route("/stream", get(binance_stream))
        .with_state(mock.clone());
    let host = serve(router).await;
    let def = json!({"name": "binance-btc", "kind": "websocket", "venue": "binance",
                     "url": format!("ws://{host}"), "symbols": ["BTC-USDT"], "channels": ["trades"]});
    let (s, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let (s, _) = app
        .post_json(&format!("/api/v1/connectors/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200);

    // Ten trades per connection, the repeated one stored once.
    let history = "/api/v1/prices/history?symbol=BTC-USDT&source=binance";
    let page = wait_until(DEADLINE, "twenty trades over two connections", || async {
        let (_, page) = app.get_json(history).await;
        (page["count"].as_u64().unwrap_or(0) >= 20).then_some(page)
    })
    .await;
    let ids: Vec<u64> = page["ticks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trade_id"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..20).collect::<Vec<u64>>(), "each trade once");
    let t = &page["ticks"][0];
    assert_eq!(t["venue_symbol"], "BTCUSDT");
    assert_eq!(t["kind"], "trade");

    let status = wait_until(DEADLINE, "a reconnect in the status", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["state"] == "running" && s["reconnects"].as_u64() >= Some(1)).then_some(s)
    })
    .await;
    assert!(
        status["messages_received"].as_u64().unwrap() >= 21,
        "{status}"
    );
    assert!(mock.connections.load(Ordering::SeqCst) >= 2);
    app.stop().await;
}

/// Sends `frames` on each connection, then stays until the client leaves.
async fn scripted_stream(
    State(frames): State<Arc<Vec<String>>>,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        for f in frames.iter() {
            if socket.send(Message::Text(f.clone().into())).await.is_err() {
                return;
            }
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

#[tokio::test]
async fn a_connector_with_an_archive_keeps_every_frame_classed_in_order() {
    use marketd_store::prelude::*;
    let app = TestApp::spawn(|_| {}).await;
    let t = now_ms();
    let frames = vec![
        binance_trade(1, t),
        "{not json".to_string(),
        binance_trade(2, t),
        json!({"result": null, "id": 7}).to_string(),
        binance_trade(3, t),
    ];
    let router = axum::Router::new()
        .route("/stream", get(scripted_stream))
        .with_state(Arc::new(frames.clone()));
    let host = serve(router).await;
    let def = json!({"name": "archived", "kind": "websocket", "venue": "binance",
                     "url": format!("ws://{host}"), "symbols": ["BTC-USDT"], "channels": ["trades"],
                     "archive": {"retention_hours": 24}});
    let (s, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["archive"]["retention_hours"], 24);
    let id = created["id"].as_str().unwrap().to_string();
    let uuid: uuid::Uuid = id.parse().unwrap();
    let (s, _) = app
        .post_json(&format!("/api/v1/connectors/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200);

    // The frames are archived as they arrive, while the connector runs.
    let archived = wait_until(DEADLINE, "the five frames archived", || async {
        let xs = app.store.raw_messages(uuid, 0, 100).await.unwrap();
        (xs.len() >= frames.len()).then_some(xs)
    })
    .await;
    let got: Vec<(&str, &str)> = archived
        .iter()
        .map(|m| (m.class.as_str(), m.frame.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = ["data", "rejected", "data", "control", "data"]
        .into_iter()
        .zip(frames.iter().map(String::as_str))
        .collect();
    assert_eq!(got, want);
    assert!(
        archived
            .windows(2)
            .all(|w| w[0].received_at <= w[1].received_at)
    );
    assert!(archived.iter().all(|m| m.connector_id == uuid));
    // The status is copied from the session periodically.
    wait_until(DEADLINE, "the rejected frame counted", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["errors"] == 1 && s["messages_received"] == 5).then_some(())
    })
    .await;

    // Without `archive`, nothing is kept.
    let mut plain = def.clone();
    plain["name"] = json!("plain");
    plain.as_object_mut().unwrap().remove("archive");
    let (_, created) = app.post_json("/api/v1/connectors", &plain).await;
    let plain_id = created["id"].as_str().unwrap().to_string();
    app.post_json(&format!("/api/v1/connectors/{plain_id}/start"), &json!({}))
        .await;
    wait_until(DEADLINE, "the plain connector's three trades", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{plain_id}/status"))
            .await;
        (s["messages_received"].as_u64() >= Some(5)).then_some(())
    })
    .await;
    let none = app
        .store
        .raw_messages(plain_id.parse().unwrap(), 0, 100)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");
    app.stop().await;
}

#[tokio::test]
async fn connector_secrets_reach_no_answer_log_metric_or_bus_message() {
    let logs = common::logs::logs();
    let app = TestApp::spawn(|_| {}).await;
    let mut commands = app
        .bus
        .subscribe(Topic::Connectors, "secrets-audit")
        .await
        .unwrap();
    let mut statuses = app
        .bus
        .subscribe(Topic::ConnectorStatus, "secrets-audit")
        .await
        .unwrap();
    let host = mock_rest("tok-SECRET-789").await;
    let def = rest_definition(
        "audited",
        &format!("http://{host}/v1/trades"),
        "tok-SECRET-789",
    );
    let mut answers = Vec::new();
    let (s, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    answers.push(created);
    let (_, started) = app
        .post_json(&format!("/api/v1/connectors/{id}/start"), &json!({}))
        .await;
    answers.push(started);
    // The secret works upstream (the mock checks it): ticks arrive.
    wait_until(DEADLINE, "ticks through the secret's auth", || async {
        let (_, page) = app
            .get_json("/api/v1/prices/history?symbol=ETH-USDT&source=audited")
            .await;
        (page["count"].as_u64().unwrap_or(0) >= 3).then_some(())
    })
    .await;
    for path in ["", "/status", "/data"] {
        answers.push(
            app.get_json(&format!("/api/v1/connectors/{id}{path}"))
                .await
                .1,
        );
    }
    answers.push(app.get_json("/api/v1/connectors").await.1);
    let (_, stopped) = app
        .post_json(&format!("/api/v1/connectors/{id}/stop"), &json!({}))
        .await;
    answers.push(stopped);

    // On the bus: the create's status, the start and stop commands, and the
    // running connector's statuses until it stopped.
    let mut seen = Vec::new();
    let mut batch = Vec::new();
    let mut commands_seen = 0;
    while commands_seen < 2 {
        batch.clear();
        tokio::time::timeout(DEADLINE, commands.recv_batch(&mut batch, 100))
            .await
            .expect("the start and stop commands")
            .unwrap();
        commands_seen += batch.len();
        seen.extend(
            batch
                .iter()
                .map(|d| serde_json::to_string(&d.envelope).unwrap()),
        );
    }
    loop {
        batch.clear();
        tokio::time::timeout(DEADLINE, statuses.recv_batch(&mut batch, 100))
            .await
            .expect("statuses until stopped")
            .unwrap();
        seen.extend(
            batch
                .iter()
                .map(|d| serde_json::to_string(&d.envelope).unwrap()),
        );
        let stopped = batch.iter().any(|d| {
            matches!(&d.envelope.event, Event::ConnectorStatus(s) if s.state == marketd_model::ConnectorState::Stopped && s.messages_received > 0)
        });
        if stopped {
            break;
        }
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();

    for (what, text) in [
        ("answers", serde_json::to_string(&answers).unwrap()),
        ("bus messages", seen.join("\n")),
        ("metrics", metrics),
        ("logs", logs.text()),
    ] {
        for secret in ["tok-SECRET-789", "hdr-SECRET-456", "SECRET"] {
            assert!(!text.contains(secret), "{secret} in the {what}");
        }
    }
    assert!(
        logs.text().contains("connector running"),
        "the run was logged"
    );
    app.stop().await;
}
