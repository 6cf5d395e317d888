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

/// A client whose socket's receive buffer is 4 KiB (no autotuning).
async fn connect_small(app: &TestApp) -> Client {
    let addr: std::net::SocketAddr = app.addr.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let req = ws_url(app).into_client_request().unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .unwrap();
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

/// The next frame that is not a server ping, within the deadline.
async fn next_not_ping(ws: &mut Client) -> Value {
    let skip_pings = async {
        loop {
            let v = next(ws).await;
            if v["type"] != "ping" {
                return v;
            }
        }
    };
    tokio::time::timeout(DEADLINE, skip_pings)
        .await
        .expect("a frame other than ping within the deadline")
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

#[tokio::test]
async fn a_silent_client_is_closed_after_the_heartbeat_timeout() {
    let app = TestApp::spawn(|c| {
        c.realtime.heartbeat_secs = 1;
        c.realtime.heartbeat_timeout_secs = 2;
    })
    .await;
    let mut ws = connect(&app, None).await;
    assert_eq!(next(&mut ws).await["type"], "connected");
    // Read (pings arrive) but never send: the server hears nothing.
    let mut pings = 0;
    let code = loop {
        let msg = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("closed within the deadline");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["type"], "ping", "{v}");
                pings += 1;
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4000);
    assert!(pings >= 1, "pinged before being closed");
    app.stop().await;
}

/// Reads frames until `done` says so; every frame that is not a ping.
async fn read_until(ws: &mut Client, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut got = Vec::new();
    loop {
        let v = next_not_ping(ws).await;
        let stop = done(&v);
        got.push(v);
        if stop {
            return got;
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_gets_gaps_and_latest_bars_while_another_gets_all() {
    let app = TestApp::spawn(|c| {
        c.realtime.client_queue = 512;
        // Behind, and silent, for the whole test without being closed
        // (4008 and 4000 are for clients that never catch up or answer).
        c.realtime.slow_close_secs = 600;
        c.realtime.heartbeat_timeout_secs = 600;
    })
    .await;
    // The slow client's socket buffers little, so what it does not read
    // piles up at the server soon.
    let (mut slow, mut fast) = (connect_small(&app).await, connect(&app, None).await);
    for ws in [&mut slow, &mut fast] {
        next(ws).await;
        send(
            ws,
            json!({"type": "subscribe", "channel": "ticks", "symbols": ["RTSLO"]}),
        )
        .await;
        next_not_ping(ws).await;
        send(
            ws,
            json!({"type": "subscribe", "channel": "bars", "symbols": ["RTBAR"]}),
        )
        .await;
        next_not_ping(ws).await;
    }
    // Far more than the socket buffers and the queue hold, while `slow`
    // reads nothing; `fast` reads as they come.
    const N: i64 = 20_000;
    const CHUNK: i64 = 200;
    let bars: Vec<Event> = (0..N / CHUNK)
        .map(|n| {
            let Event::Tick(t) = tick("RTBAR", n) else {
                unreachable!("tick() makes ticks")
            };
            // Bars of a symbol without ticks: the aggregator makes none.
            let mut b = marketd_model::Bar::open_with(&t, marketd_model::Interval::H1);
            b.source = "rt-bars".into();
            b.close = Decimal::from(n);
            Event::Bar(b)
        })
        .collect();
    // Published a few at a time, each read by `fast` before the next.
    let mut fast_ticks = Vec::new();
    let mut fast_bars = 0;
    for chunk in 0..(N / CHUNK) {
        publish(&app, "RTSLO", chunk * CHUNK..(chunk + 1) * CHUNK).await;
        app.bus.publish(bars[chunk as usize].clone()).await.unwrap();
        while fast_ticks.len() < ((chunk + 1) * CHUNK) as usize || fast_bars <= chunk {
            let v = next_not_ping(&mut fast).await;
            match (v["type"].as_str(), v["channel"].as_str()) {
                (Some("data_update"), Some("ticks")) => fast_ticks.push(v["seq"].as_u64().unwrap()),
                (Some("data_update"), Some("bars")) => {
                    assert_eq!(v["data"]["close"], json!(fast_bars), "{v}");
                    fast_bars += 1;
                }
                _ => panic!("the fast client got {v}"),
            }
        }
    }
    assert_eq!(
        fast_ticks,
        (1..=N as u64).collect::<Vec<_>>(),
        "all, in order"
    );

    // The slow one now reads: every tick seq is either delivered or inside
    // exactly one gap, in order; the bars conflated to fewer, ending with
    // the latest.
    let got = read_until(&mut slow, |v| {
        v["type"] == "data_update" && v["data"]["close"] == json!(N / CHUNK - 1)
    })
    .await;
    // Ticks after the last bar frame may still be queued: read to N.
    let mut covered = 0u64;
    let mut gaps = 0;
    let mut bar_frames = 0;
    let mut rest = got;
    loop {
        for v in &rest {
            match (v["type"].as_str(), v["channel"].as_str()) {
                (Some("data_update"), Some("ticks")) => {
                    assert_eq!(v["seq"].as_u64().unwrap(), covered + 1, "{v}");
                    covered += 1;
                }
                (Some("gap"), Some("ticks")) => {
                    assert_eq!(v["from"].as_u64().unwrap(), covered + 1, "{v}");
                    assert_eq!(v["reason"], "slow_consumer");
                    covered = v["to"].as_u64().unwrap();
                    gaps += 1;
                }
                (Some("data_update"), Some("bars")) => bar_frames += 1,
                _ => panic!("the slow client got {v}"),
            }
        }
        if covered == N as u64 {
            break;
        }
        rest = vec![next_not_ping(&mut slow).await];
    }
    assert!(gaps >= 1, "the slow client skipped something");
    assert!(bar_frames < N / CHUNK, "bars were conflated: {bar_frames}");
    app.stop().await;
}

#[tokio::test]
async fn a_browser_key_in_the_query_works_and_a_revoked_key_is_closed() {
    let app = TestApp::spawn(|c| c.auth.require_read_key = true).await;
    let (s, created) = app
        .admin(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(&json!({"name": "browser", "role": "read"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let (id, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );

    // A browser cannot set headers on an upgrade: `api_key` in the query.
    let bad = format!("{}?api_key=mk_nope", ws_url(&app));
    match tokio_tungstenite::connect_async(bad.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let url = format!("{}?api_key={key}", ws_url(&app));
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await["type"], "connected");
    // Only on an upgrade: a plain read with the key in the query is refused.
    let plain = app
        .anon
        .get(app.url(&format!("/api/v1/prices/latest?symbol=AAPL&api_key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 401);

    // Revoked: the open connection is closed with 4001 within seconds.
    let (s, body) = app
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/v1/api-keys/{id}"),
            None,
        )
        .await;
    assert!(s == 200 || s == 204, "{s} {body}");
    let code = loop {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("closed within the deadline")
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(Message::Text(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4001);
    app.stop().await;
}

#[tokio::test]
async fn the_defaults_hold_256_connections_of_one_client_and_a_limit_refuses_more() {
    let app = TestApp::spawn(|_| {}).await;
    // Opened as fast as the client can: the request rate limit does not
    // apply to upgrades; each answers its pings' pongs without error.
    let mut conns = Vec::new();
    for _ in 0..256 {
        conns.push(connect(&app, None).await);
    }
    for ws in conns.iter_mut() {
        assert_eq!(next(ws).await["type"], "connected");
    }
    let last = conns.last_mut().unwrap();
    send(last, json!({"type": "pong"})).await;
    assert!(until_pong(last, 256).await.is_empty());
    drop(conns);
    app.stop().await;

    let app = TestApp::spawn(|c| c.realtime.max_connections_per_client = 2).await;
    let (_a, _b) = (connect(&app, None).await, connect(&app, None).await);
    match tokio_tungstenite::connect_async(ws_url(&app).as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            assert_eq!(r.status(), 429);
            let body: Value = serde_json::from_slice(r.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error_code"], "TOO_MANY_CONNECTIONS", "{body}");
        }
        other => panic!("expected 429, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_browser_may_offer_its_key_as_a_subprotocol_and_gets_marketd_v1_back() {
    let app = TestApp::spawn(|c| c.auth.require_read_key = true).await;
    let mut req = ws_url(&app).into_client_request().unwrap();
    let offered = format!("marketd.v1, {}", app.read_key);
    req.headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (mut ws, res) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        res.headers()["sec-websocket-protocol"],
        "marketd.v1",
        "the key is never echoed"
    );
    assert_eq!(next(&mut ws).await["type"], "connected");
    // A key that does not verify is refused.
    let mut bad = ws_url(&app).into_client_request().unwrap();
    bad.headers_mut().insert(
        "sec-websocket-protocol",
        "marketd.v1, mkd_nope".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(bad).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn a_connection_made_with_a_token_closes_when_the_token_expires() {
    const SECRET: &str = "realtime-test-hs256-secret-32-bytes-long";
    let app = TestApp::spawn(|c| {
        c.auth.require_read_key = true;
        c.auth.jwt.enabled = true;
        c.auth.jwt.secret = Some(marketd_model::Secret::new(SECRET));
        c.auth.jwt.issuer = "https://idp.test".into();
        c.auth.jwt.leeway_s = 0;
    })
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice", "role": "read", "exp": now + 3,
                "iss": "https://idp.test", "aud": "marketd"}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let mut req = ws_url(&app).into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(next(&mut ws).await["type"], "connected");
    send(
        &mut ws,
        json!({"type": "subscribe", "channel": "ticks", "symbols": ["AAPL"]}),
    )
    .await;
    assert_eq!(next_not_ping(&mut ws).await["type"], "subscribed");
    // Live until the token's `exp`, then closed with 4002.
    let code = loop {
        match tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("closed within the deadline")
        {
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(Message::Text(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 4002);
    let closed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        closed_at >= (now + 3) as f64 - 0.01,
        "closed before the token expired"
    );
    app.stop().await;
}
