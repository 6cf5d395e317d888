//! The connector tools around the API: the preview route (`POST
//! /api/v1/connectors/test`), `marketd replay CAPTURE` and `marketd
//! connectors list|start|stop`. The app runs on port 0, upstreams are local
//! mock servers, the CLI is the real binary.

mod common;

use common::capture;

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

    // The route is in the OpenAPI document, with its answers and schemes.
    let (_, doc) = app.get_json("/openapi.json").await;
    let op = &doc["paths"]["/api/v1/connectors/test"]["post"];
    for status in ["200", "401", "403", "422", "502"] {
        assert!(op["responses"].get(status).is_some(), "{status}: {op}");
    }
    assert!(op["security"].is_array(), "{op}");
    let preview = &doc["components"]["schemas"]["PreviewView"]["properties"];
    for field in ["status", "body", "truncated", "ticks", "errors"] {
        assert!(preview.get(field).is_some(), "{field}: {preview}");
    }

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

// ---------------------------------------------------------------------------
// marketd replay CAPTURE

/// What a capture holds, counted with serde_json alone (not with the
/// venue decoders under test): received frames by kind.
#[derive(Debug, Default)]
struct Counted {
    frames: u64,
    /// Binance `aggTrade` frames.
    agg_trades: u64,
    /// Binance `bookTicker` frames.
    book_tickers: u64,
    /// Trades in OKX `trades` pushes (one push may hold several).
    okx_trades: u64,
}

fn count_capture(text: &str) -> Counted {
    let mut c = Counted::default();
    for line in text.lines() {
        // Received frames are the lines that start with their time.
        if !line.starts_with(|ch: char| ch.is_ascii_digit()) {
            continue;
        }
        c.frames += 1;
        let (_, frame) = line.split_once(": ").unwrap();
        let Ok(v) = serde_json::from_str::<Value>(frame) else {
            continue;
        };
        let stream = v["stream"].as_str().unwrap_or_default();
        if stream.ends_with("@aggTrade") {
            c.agg_trades += 1;
        } else if stream.ends_with("@bookTicker") {
            c.book_tickers += 1;
        }
        if v["arg"]["channel"] == "trades" && v.get("event").is_none() {
            c.okx_trades += v["data"].as_array().map_or(0, |d| d.len() as u64);
        }
    }
    c
}

/// Stored ticks of `source` by kind, read from the SQLite file directly.
async fn stored_by_kind(db: &std::path::Path, source: &str) -> (u64, u64) {
    use sqlx::Row;
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT kind, COUNT(*) AS n FROM ticks WHERE source = ? GROUP BY kind")
        .bind(source)
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut trades_quotes = (0, 0);
    for r in rows {
        let n = r.get::<i64, _>("n") as u64;
        match r.get::<String, _>("kind").as_str() {
            "trade" => trades_quotes.0 = n,
            "quote" => trades_quotes.1 = n,
            other => panic!("unexpected kind {other}"),
        }
    }
    trades_quotes
}

#[tokio::test]
async fn replay_stores_one_tick_per_trade_frame_and_nothing_twice() {
    let path = capture("BINANCE.ws.1.0");
    let text = std::fs::read_to_string(&path).unwrap();
    let want = count_capture(&text);
    assert!(want.agg_trades > 0 && want.book_tickers > 0, "{want:?}");

    let tmp = tempfile::tempdir().unwrap();
    let cfg = common::base_config(tmp.path());
    let opts = marketd::replay::ReplayOptions {
        source: marketd::replay::ReplaySource::Capture(path.clone()),
        venue: None,
        speed: marketd_engine::services::replay::ReplaySpeed::Max,
    };
    let mut last = None;
    let summary = marketd::replay::replay(
        &cfg,
        &opts,
        tokio_util::sync::CancellationToken::new(),
        |p| last = Some(p),
    )
    .await
    .unwrap();
    let s = &summary.stats;
    assert_eq!(s.frames, want.frames);
    assert_eq!(s.data_frames, want.agg_trades + want.book_tickers);
    assert_eq!(
        s.other_frames + s.decode_errors,
        want.frames - s.data_frames
    );
    assert_eq!(s.decode_errors, 0, "{s:?}");
    assert_eq!(s.ticks, want.agg_trades + want.book_tickers);
    assert_eq!(summary.stored, Some(s.ticks));
    let last = last.expect("progress reported");
    assert_eq!((last.bytes, last.frames), (text.len(), want.frames));

    let db = tmp.path().join("marketd.db");
    assert_eq!(
        stored_by_kind(&db, "binance").await,
        (want.agg_trades, want.book_tickers)
    );

    // The same capture again: the same ticks, stored once.
    let again = marketd::replay::replay(
        &cfg,
        &opts,
        tokio_util::sync::CancellationToken::new(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.stats.ticks, s.ticks);
    assert_eq!(again.stored, Some(0));
    assert_eq!(
        stored_by_kind(&db, "binance").await,
        (want.agg_trades, want.book_tickers)
    );
}

#[test]
fn the_replay_command_plays_an_okx_capture_into_the_store() {
    let path = capture("OKX.ws.1.0");
    let want = count_capture(&std::fs::read_to_string(&path).unwrap());
    assert!(want.okx_trades > 0);
    let tmp = tempfile::tempdir().unwrap();
    let out = common::process::run(&["replay", path.to_str().unwrap()], tmp.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("frames:        {} received", want.frames)),
        "{stdout}"
    );
    assert!(stdout.contains("decode errors: 0"), "{stdout}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (trades, _) = rt.block_on(stored_by_kind(&tmp.path().join("marketd.db"), "okx"));
    assert_eq!(trades, want.okx_trades);

    // A capture from a host without a normalizer is refused, naming it.
    let odd = tmp.path().join("odd.capture");
    std::fs::write(
        &odd,
        "wss://example.com/ws <-> 1633998511.1\n1633998512.0: {}\n",
    )
    .unwrap();
    let out = common::process::run(&["replay", odd.to_str().unwrap()], tmp.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no venue decoder for \"wss://example.com/ws\""),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_replay_command_plays_a_connectors_raw_archive() {
    use marketd_store::prelude::*;
    let path = capture("BINANCE_FUTURES.ws.1.0");
    let text = std::fs::read_to_string(&path).unwrap();
    let want = count_capture(&text);
    assert!(want.agg_trades > 0);
    let tmp = tempfile::tempdir().unwrap();
    let store = marketd::open_store(&common::base_config(tmp.path()))
        .await
        .unwrap();
    let now = marketd_model::time::now_ns();
    let connector = marketd_model::Connector {
        id: uuid::Uuid::now_v7(),
        name: "futures-archive".into(),
        kind: marketd_model::ConnectorKind::Websocket,
        spec: json!({"name": "futures-archive", "kind": "websocket", "venue": "binance_futures",
                     "symbols": ["BTC-USDT-PERP"], "channels": ["agg_trades"]}),
        desired: marketd_model::Desired::Stopped,
        created_at: now,
        updated_at: now,
    };
    store.insert_connector(&connector).await.unwrap();
    // The capture's received frames as the connector would have archived them.
    let frames: Vec<marketd_store::RawMessage> = text
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| {
            let (time, frame) = l.split_once(": ").unwrap();
            let (secs, frac) = time.split_once('.').unwrap_or((time, "0"));
            let nanos: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
            marketd_store::RawMessage {
                connector_id: connector.id,
                received_at: secs.parse::<i64>().unwrap() * 1_000_000_000
                    + nanos.parse::<i64>().unwrap(),
                class: "data".into(),
                frame: frame.to_string(),
            }
        })
        .collect();
    assert_eq!(frames.len() as u64, want.frames);
    store.insert_raw_messages(&frames).await.unwrap();
    store.close().await;

    let dir = tmp.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        common::process::run(&["replay", "--connector", "futures-archive"], &dir)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("frames:        {} received", want.frames)),
        "{stdout}"
    );
    let (trades, quotes) = stored_by_kind(&tmp.path().join("marketd.db"), "binance_futures").await;
    assert_eq!(trades, want.agg_trades, "{stdout}");
    assert!(quotes > 0 && quotes <= want.book_tickers, "{quotes}");
}

// ---------------------------------------------------------------------------
// marketd connectors list|start|stop

#[tokio::test]
async fn connectors_commands_list_start_and_stop_on_the_store() {
    let app = TestApp::spawn(|_| {}).await;
    let def = json!({"name": "cli-binance", "kind": "websocket", "venue": "binance",
                     "url": "ws://127.0.0.1:9", "symbols": ["BTC-USDT"], "channels": ["trades"]});
    let (s, created) = app.post_json("/api/v1/connectors", &def).await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let dir = app.data_dir.clone();
    let run = move |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = common::process::run(&args, &dir);
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "marketd {args:?}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
        })
    };

    let listed = run(vec!["connectors".into(), "list".into()]).await.unwrap();
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cols,
        [
            id.as_str(),
            "cli-binance",
            "websocket",
            "binance",
            "stopped",
            "stopped"
        ],
        "{listed}"
    );

    // By name, then by id; the API sees each change.
    let out = run(vec![
        "connectors".into(),
        "start".into(),
        "cli-binance".into(),
    ])
    .await
    .unwrap();
    assert!(out.contains("desired state: running"), "{out}");
    let (_, got) = app.get_json(&format!("/api/v1/connectors/{id}")).await;
    assert_eq!(got["desired"], "running", "{got}");
    let out = run(vec!["connectors".into(), "stop".into(), id.clone()])
        .await
        .unwrap();
    assert!(out.contains("desired state: stopped"), "{out}");
    let (_, got) = app.get_json(&format!("/api/v1/connectors/{id}")).await;
    assert_eq!(got["desired"], "stopped", "{got}");

    // An unknown connector is an error naming it.
    let dir = app.data_dir.clone();
    let out = tokio::task::spawn_blocking(move || {
        common::process::run(&["connectors", "stop", "no-such-connector"], &dir)
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-connector"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.stop().await;
}
