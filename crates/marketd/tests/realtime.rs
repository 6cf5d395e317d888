//! `/api/v1/realtime` end to end: the app on port 0, a real WebSocket
//! client (tokio-tungstenite), messages published on the app's bus as a
//! feed would.

mod common;

use common::{TestApp, assert_error_shape};
use futures::{SinkExt, StreamExt};
use marketd_bus::Bus;
use marketd_model::{Decimal, Event, Symbol, Tick, TickKind};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const DEADLINE: Duration = Duration::from_secs(20);

fn ws_url(app: &TestApp) -> String {
    app.url("/api/v1/realtime").replacen("http", "ws", 1)
}

async fn connect(app: &TestApp, key: Option<&str>) -> Client {
    let mut req = ws_url(app).into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut().insert("x-api-key", k.parse().unwrap());
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws
}

/// The next text frame as JSON (server pings included), within the deadline.
async fn next(ws: &mut Client) -> Value {
    loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a frame within the deadline")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// The next frame that is not a server ping.
async fn next_not_ping(ws: &mut Client) -> Value {
    loop {
        let v = next(ws).await;
        if v["type"] != "ping" {
            return v;
        }
    }
}

async fn send(ws: &mut Client, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

fn tick(symbol: &str, n: i64) -> Event {
    Event::Tick(Tick::new(
        Symbol::parse(symbol).unwrap(),
        "rt-test",
        TickKind::Trade,
        Decimal::new(100_000 + n, 3),
        Decimal::ONE,
        1_800_000_000_000_000_000 + n,
        1_800_000_000_000_000_000 + n,
    ))
}

/// Publishes ticks `ns` of `symbol` on the app's bus.
async fn publish(app: &TestApp, symbol: &str, ns: std::ops::Range<i64>) {
    app.bus
        .publish_batch(ns.map(|n| tick(symbol, n)).collect())
        .await
        .unwrap();
}

/// Sends a ping and returns every frame before its pong.
async fn until_pong(ws: &mut Client, id: i64) -> Vec<Value> {
    send(ws, json!({"type": "ping", "id": id})).await;
    let mut before = Vec::new();
    loop {
        let v = next_not_ping(ws).await;
        if v["type"] == "pong" && v["id"] == id {
            return before;
        }
        before.push(v);
    }
}

#[tokio::test]
async fn subscribers_get_their_symbols_until_they_unsubscribe() {
    let app = TestApp::spawn(|_| {}).await;
    let mut ws = connect(&app, None).await;
    let hello = next(&mut ws).await;
    assert_eq!(hello["type"], "connected", "{hello}");
    assert!(hello["connection_id"].as_u64().is_some());
    assert!(hello["heartbeat_interval_ms"].as_u64().unwrap() > 0);

    send(
        &mut ws,
        json!({"type": "subscribe", "channel": "ticks", "symbols": ["RTAAA"]}),
    )
    .await;
    let ok = next_not_ping(&mut ws).await;
    assert_eq!(ok["type"], "subscribed", "{ok}");
    assert_eq!(ok["channel"], "ticks");
    assert_eq!(ok["symbols"], json!(["RTAAA"]));

    publish(&app, "RTBBB", 0..3).await;
    publish(&app, "RTAAA", 0..3).await;
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(next_not_ping(&mut ws).await);
    }
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v["type"], "data_update", "{v}");
        assert_eq!(v["channel"], "ticks");
        assert_eq!(v["symbol"], "RTAAA", "only the subscribed symbol");
        assert_eq!(v["seq"], i as u64 + 1);
        // The exact decimal, as the REST API writes it.
        assert_eq!(
            v["data"]["price"].to_string(),
            ["100", "100.001", "100.002"][i]
        );
        assert_eq!(
            v["data"]["ts_event"],
            json!(1_800_000_000_000_000_000_i64 + i as i64)
        );
        assert_eq!(v["data"]["source"], "rt-test");
    }

    send(
        &mut ws,
        json!({"type": "unsubscribe", "channel": "ticks", "symbols": ["RTAAA"]}),
    )
    .await;
    let bye = next_not_ping(&mut ws).await;
    assert_eq!(bye["type"], "unsubscribed", "{bye}");
    publish(&app, "RTAAA", 3..6).await;
    // The ticks went to the hub before the ping did: none reached us.
    let before = until_pong(&mut ws, 1).await;
    assert!(before.is_empty(), "after unsubscribe: {before:?}");
    app.stop().await;
}

#[tokio::test]
async fn bad_messages_get_error_frames_and_the_connection_stays() {
    let app = TestApp::spawn(|_| {}).await;
    let mut ws = connect(&app, None).await;
    assert_eq!(next(&mut ws).await["type"], "connected");
    for (frame, code) in [
        (Message::Text("{oops".into()), "MALFORMED_MESSAGE"),
        (
            Message::Text(r#"{"type":"dance"}"#.into()),
            "UNKNOWN_MESSAGE",
        ),
        (
            Message::Text(r#"{"type":"subscribe","channel":"ticks"}"#.into()),
            "INVALID_MESSAGE",
        ),
        (
            Message::Text(r#"{"type":"subscribe","channel":"news","symbols":["A"]}"#.into()),
            "UNKNOWN_CHANNEL",
        ),
        (
            Message::Text(r#"{"type":"subscribe","channel":"ticks","symbols":[]}"#.into()),
            "INVALID_SUBSCRIPTION",
        ),
        (Message::Binary(vec![1, 2, 3].into()), "MALFORMED_MESSAGE"),
    ] {
        ws.send(frame).await.unwrap();
        let e = next_not_ping(&mut ws).await;
        assert_eq!(e["type"], "error", "{e}");
        assert_eq!(e["error_code"], code, "{e}");
        assert!(!e["detail"].as_str().unwrap().is_empty());
    }
    assert!(until_pong(&mut ws, 9).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_client_resuming_with_since_gets_exactly_what_it_missed() {
    let app = TestApp::spawn(|_| {}).await;
    let mut first = connect(&app, None).await;
    next(&mut first).await;
    send(
        &mut first,
        json!({"type": "subscribe", "channel": "ticks", "symbols": ["RTCCC"]}),
    )
    .await;
    assert_eq!(next_not_ping(&mut first).await["type"], "subscribed");
    publish(&app, "RTCCC", 0..3).await;
    let mut last = 0;
    while last < 3 {
        last = next_not_ping(&mut first).await["seq"].as_u64().unwrap();
    }
    drop(first);

    // Missed while away.
    publish(&app, "RTCCC", 3..6).await;
    let mut again = connect(&app, None).await;
    next(&mut again).await;
    // Whether the hub has numbered 4..=6 yet or not, each comes once:
    // replayed from the history, or live after the subscribe.
    send(
        &mut again,
        json!({"type": "subscribe", "channel": "ticks", "symbols": ["RTCCC"], "since": {"RTCCC": last}}),
    )
    .await;
    assert_eq!(next_not_ping(&mut again).await["type"], "subscribed");
    publish(&app, "RTCCC", 6..7).await;
    let mut seqs = Vec::new();
    let mut prices = Vec::new();
    while seqs.len() < 4 {
        let v = next_not_ping(&mut again).await;
        assert_eq!(v["type"], "data_update", "{v}");
        seqs.push(v["seq"].as_u64().unwrap());
        prices.push(v["data"]["price"].clone());
    }
    assert_eq!(seqs, [4, 5, 6, 7], "the missed three, then live, once each");
    assert_eq!(prices[0], json!(100.003));
    app.stop().await;
}

#[tokio::test]
async fn reads_that_need_a_key_need_it_for_realtime_too() {
    let app = TestApp::spawn(|c| c.auth.require_read_key = true).await;
    let url = ws_url(&app);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let mut ws = connect(&app, Some(&app.read_key)).await;
    assert_eq!(next(&mut ws).await["type"], "connected");

    // Not an upgrade: the error shape.
    let r = app
        .client
        .get(app.url("/api/v1/realtime"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    let body: Value = r.json().await.unwrap();
    assert_error_shape(&body);
    assert_eq!(body["error_code"], "WEBSOCKET_REQUIRED");
    app.stop().await;
}
