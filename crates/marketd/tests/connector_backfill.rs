//! Trade-id gaps of a WebSocket connector filled from the venue's REST
//! history: a mock Binance stream skips aggregate trades 6..8, a mock
//! Binance REST API has them, and every trade ends up stored once; without
//! a `rest_url` the gap is counted and left. Every assertion through the API
//! (and the bus, for the connector-status event).

mod common;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::{TestApp, metric_sum, wait_until};
use marketd_bus::{Bus, Consumer};
use marketd_model::{Decimal, Event, Topic};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// What the stream sends: ids 1..5, then 9..12.
const STREAMED: [u64; 9] = [1, 2, 3, 4, 5, 9, 10, 11, 12];

fn price(id: u64) -> String {
    format!("{}.{id:02}5", 60_000 + id)
}

fn qty(id: u64) -> String {
    format!("0.{id:02}7")
}

fn time_ms(id: u64) -> u64 {
    1_767_225_600_000 + id * 250
}

/// Serves `router` on a free local port; its `host:port`.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("127.0.0.1:{}", addr.port())
}

#[derive(Clone, Default)]
struct MockStream {
    connections: Arc<AtomicU64>,
    queries: Arc<Mutex<Vec<String>>>,
}

/// Binance's combined stream: the first connection sends the trades and
/// stays open; later ones (none expected) send nothing.
async fn stream(
    State(mock): State<MockStream>,
    uri: Uri,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    mock.queries
        .lock()
        .unwrap()
        .push(uri.query().unwrap_or_default().to_string());
    ws.on_upgrade(move |mut socket: WebSocket| async move {
        if mock.connections.fetch_add(1, Ordering::SeqCst) == 0 {
            for id in STREAMED {
                let frame = json!({"stream": "btcusdt@aggTrade", "data": {
                    "e": "aggTrade", "E": time_ms(id) + 3, "s": "BTCUSDT", "a": id,
                    "p": price(id), "q": qty(id), "f": id * 10, "l": id * 10 + 1,
                    "T": time_ms(id), "m": id % 2 == 0, "M": true}});
                if socket
                    .send(Message::Text(frame.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        while let Some(Ok(_)) = socket.recv().await {}
    })
}

#[derive(Clone, Default)]
struct MockRest {
    requests: Arc<Mutex<Vec<String>>>,
}

/// `GET /api/v3/aggTrades`: a 429 first (retried after `Retry-After`), then
/// five trades from `fromId` on whatever the `limit` (ids 9 and 10 overlap
/// the stream's).
async fn agg_trades(
    State(mock): State<MockRest>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let n = {
        let mut requests = mock.requests.lock().unwrap();
        requests.push(uri.query().unwrap_or_default().to_string());
        requests.len()
    };
    if n == 1 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("Retry-After", "0")],
            r#"{"code":-1003,"msg":"Too many requests."}"#,
        )
            .into_response();
    }
    let from: u64 = q["fromId"].parse().unwrap();
    let items: Vec<Value> = (from..from + 5)
        .map(|id| {
            json!({"a": id, "p": price(id), "q": qty(id), "f": id * 10, "l": id * 10 + 1,
                   "T": time_ms(id), "m": id % 2 == 0, "M": true})
        })
        .collect();
    axum::Json(items).into_response()
}

/// The stored BTC-USDT trades of `binance` by id, once `want` are stored.
async fn stored_ids(app: &TestApp, want: usize) -> Vec<marketd_model::Tick> {
    let query = "symbol=BTC-USDT&source=binance";
    wait_until(DEADLINE, "the trades stored", || async {
        let ticks = app.all_ticks(query).await;
        (ticks.len() >= want).then_some(ticks)
    })
    .await
}

fn ids_of(ticks: &[marketd_model::Tick]) -> Vec<u64> {
    let mut ids: Vec<u64> = ticks
        .iter()
        .map(|t| t.trade_id.as_deref().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn a_gap_in_the_stream_is_backfilled_from_rest_and_every_trade_stored_once() {
    let app = TestApp::spawn(|_| {}).await;
    let mut statuses = app
        .bus
        .subscribe(Topic::ConnectorStatus, "backfill-test")
        .await
        .unwrap();
    let ws = MockStream::default();
    let ws_host = serve(
        axum::Router::new()
            .route("/stream", get(stream))
            .with_state(ws.clone()),
    )
    .await;
    let rest = MockRest::default();
    let rest_host = serve(
        axum::Router::new()
            .route("/api/v3/aggTrades", get(agg_trades))
            .with_state(rest.clone()),
    )
    .await;
    let def = json!({"name": "binance-agg", "kind": "websocket", "venue": "binance",
                     "url": format!("ws://{ws_host}"), "rest_url": format!("http://{rest_host}"),
                     "symbols": ["BTC-USDT"], "channels": ["agg_trades"]});
    let id = app.start_connector(&def).await;

    let status = wait_until(DEADLINE, "the gap backfilled in the status", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["backfilled"].as_u64() >= Some(3)).then_some(s)
    })
    .await;
    assert_eq!(status["backfilled"], 3, "{status}");
    assert!(status["gaps"].as_u64().unwrap() >= 1, "{status}");

    // Ids 1..12, each once, exactly as the venue sent them.
    let ticks = stored_ids(&app, 12).await;
    assert_eq!(ids_of(&ticks), (1..=12).collect::<Vec<u64>>(), "each once");
    for t in &ticks {
        let n: u64 = t.trade_id.as_deref().unwrap().parse().unwrap();
        assert_eq!(
            t.price,
            Decimal::from_str_exact(&price(n)).unwrap(),
            "{t:?}"
        );
        assert_eq!(t.price.to_string(), price(n));
        assert_eq!(t.size.to_string(), qty(n));
        assert_eq!(t.ts_event, time_ms(n) as i64 * 1_000_000);
        assert_eq!(t.source.as_ref(), "binance");
        assert_eq!(t.venue_symbol.as_deref(), Some("BTCUSDT"));
    }

    // The stream was subscribed as asked; the history asked from the first
    // missing id for the three missing, once more after the 429.
    assert_eq!(*ws.queries.lock().unwrap(), ["streams=btcusdt@aggTrade"]);
    assert_eq!(
        *rest.requests.lock().unwrap(),
        [
            "symbol=BTCUSDT&fromId=6&limit=3",
            "symbol=BTCUSDT&fromId=6&limit=3"
        ]
    );

    // The gap went out on `connector-status`.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut batch = Vec::new();
    loop {
        batch.clear();
        tokio::time::timeout_at(deadline, statuses.recv_batch(&mut batch, 100))
            .await
            .expect("a connector-status event with the gap")
            .unwrap();
        if batch
            .iter()
            .any(|d| matches!(&d.envelope.event, Event::ConnectorStatus(s) if s.gaps >= 1))
        {
            break;
        }
    }

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric_sum(&metrics, "marketd_connector_backfilled_trades_total", "") >= 3.0,
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_custom_stream_without_rest_url_counts_the_gap_and_does_not_backfill() {
    let app = TestApp::spawn(|_| {}).await;
    let ws = MockStream::default();
    let ws_host = serve(
        axum::Router::new()
            .route("/stream", get(stream))
            .with_state(ws.clone()),
    )
    .await;
    let def = json!({"name": "binance-agg", "kind": "websocket", "venue": "binance",
                     "url": format!("ws://{ws_host}"),
                     "symbols": ["BTC-USDT"], "channels": ["agg_trades"]});
    let id = app.start_connector(&def).await;

    let status = wait_until(DEADLINE, "the gap in the status", || async {
        let (_, s) = app
            .get_json(&format!("/api/v1/connectors/{id}/status"))
            .await;
        (s["gaps"].as_u64() >= Some(1) && s["ticks"].as_u64() >= Some(9)).then_some(s)
    })
    .await;
    assert_eq!(status["gaps"], 1, "{status}");
    assert_eq!(status["backfilled"], 0, "{status}");
    let ticks = stored_ids(&app, STREAMED.len()).await;
    assert_eq!(ids_of(&ticks), STREAMED, "the streamed trades only");

    // The status schema has the field; older statuses may lack it.
    let (_, doc) = app.get_json("/openapi.json").await;
    let schema = &doc["components"]["schemas"]["ConnectorStatus"];
    assert_eq!(
        schema["properties"]["backfilled"]["type"], "integer",
        "{schema}"
    );
    assert!(
        !schema["required"]
            .as_array()
            .unwrap()
            .contains(&json!("backfilled")),
        "{schema}"
    );
    app.stop().await;
}
