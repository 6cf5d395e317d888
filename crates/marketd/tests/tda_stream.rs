//! Streaming TDA signals end to end: a configured basket, closed bars on
//! the bus, the signals read back over `GET /api/v1/tda/signals` and a
//! realtime `tda-signals` subscription.

mod common;

use common::{TestApp, metric_sum, wait_until};
use futures::{SinkExt, StreamExt};
use marketd_bus::Bus;
use marketd_engine::tda_stream::BasketConfig;
use marketd_model::{Bar, Decimal, Event, Interval, Symbol, TdaSignal};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const SEC: i64 = 1_000_000_000;
const T0: i64 = 1_700_000_000 * SEC;
const DEADLINE: Duration = Duration::from_secs(30);

fn symbols() -> Vec<Symbol> {
    ["TDAA", "TDAB", "TDAC", "TDAD"]
        .into_iter()
        .map(|s| Symbol::parse(s).unwrap())
        .collect()
}

/// A closed 1 s bar of symbol `i` at second `t`: a deterministic wiggle
/// (a different frequency per symbol) so the windows have H1.
fn bar(i: usize, t: i64) -> Bar {
    let x = 100.0 * (1.0 + 0.01 * ((t as f64) * (0.7 + 0.3 * i as f64)).sin());
    let close = Decimal::from_f64_retain(x).unwrap().round_dp(4);
    Bar {
        symbol: symbols()[i].clone(),
        source: "tda-test".into(),
        interval: Interval::S1,
        start: T0 + t * SEC,
        open: close,
        high: close,
        low: close,
        close,
        volume: Decimal::ONE,
        trades: 1,
        notional: None,
        vwap: None,
        first_ts: T0 + t * SEC,
        last_ts: T0 + t * SEC,
        closed: true,
    }
}

#[derive(serde::Deserialize)]
struct SignalsPage {
    basket: String,
    interval: Interval,
    count: usize,
    signals: Vec<TdaSignal>,
}

#[tokio::test]
async fn a_basket_emits_signals_over_rest_and_realtime() {
    let app = TestApp::spawn(|c| {
        c.feeds.simulated.enabled = false;
        c.tda.stream.baskets = vec![BasketConfig {
            step: 5,
            min_history: 3,
            source: Some("tda-test".into()),
            ..BasketConfig::new("CRYPTO4", symbols(), Interval::S1, 11)
        }];
    })
    .await;

    let url = app.url("/api/v1/realtime").replacen("http", "ws", 1);
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    let sub = json!({"type": "subscribe", "channel": "tda-signals", "symbols": ["CRYPTO4"]});
    ws.send(Message::Text(sub.to_string().into()))
        .await
        .unwrap();
    let mut next = async || -> Value {
        loop {
            let msg = tokio::time::timeout(DEADLINE, ws.next())
                .await
                .expect("a frame within the deadline")
                .expect("open")
                .unwrap();
            if let Message::Close(c) = &msg {
                panic!("closed by the server: {c:?}");
            }
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] != "ping" && v["type"] != "connected" {
                    return v;
                }
            }
        }
    };
    assert_eq!(next().await["type"], "subscribed");

    // One minute of closed bars, and a bar of another source and an open
    // bar that the basket must ignore.
    let mut events = Vec::new();
    for t in 0..60 {
        for i in 0..4 {
            events.push(Event::Bar(bar(i, t)));
        }
    }
    let mut open = bar(0, 60);
    open.closed = false;
    events.push(Event::Bar(open));
    let mut other = bar(1, 61);
    other.source = "elsewhere".into();
    events.push(Event::Bar(other));
    app.bus.publish_batch(events).await.unwrap();

    // Windows of 11 bars end on multiples of 5 s: 10, 15, ..., 55.
    let expect: Vec<i64> = (2..=11).map(|k| k * 5).collect();
    let page: SignalsPage = wait_until(DEADLINE, "ten windows stored", || {
        let app = &app;
        async move {
            let page: SignalsPage = app.get_as("/api/v1/tda/signals?basket=CRYPTO4").await;
            (page.count == 10).then_some(page)
        }
    })
    .await;
    assert_eq!(page.basket, "CRYPTO4");
    assert_eq!(page.interval, Interval::S1);
    let ends: Vec<i64> = page
        .signals
        .iter()
        .map(|s| (s.window_end - T0) / SEC)
        .collect();
    assert_eq!(ends, expect);
    for (k, s) in page.signals.iter().enumerate() {
        assert_eq!(s.window_start, s.window_end - 10 * SEC);
        assert_eq!(s.points, 10);
        assert!(s.landscape_l1 >= 0.0 && s.landscape_l2 >= 0.0 && s.volatility > 0.0);
        assert_eq!(
            s.wasserstein.is_some(),
            k > 0,
            "distance to the previous window"
        );
        assert_eq!(s.zscore.is_some(), k >= 3, "min_history 3");
        assert!(s.emitted_at > 0);
    }

    // The same windows on the realtime channel, in order.
    let mut live = Vec::new();
    while live.len() < expect.len() {
        let v = next().await;
        assert_eq!(v["type"], "data_update", "{v}");
        assert_eq!(v["channel"], "tda-signals");
        assert_eq!(v["symbol"], "CRYPTO4");
        live.push((v["data"]["window_end"].as_i64().unwrap() - T0) / SEC);
    }
    assert_eq!(live, expect);

    // A range, the basket list, errors in the error shape, metrics.
    let from = T0 + 20 * SEC;
    let to = T0 + 35 * SEC;
    let page: SignalsPage = app
        .get_as(&format!(
            "/api/v1/tda/signals?basket=CRYPTO4&from={from}&to={to}"
        ))
        .await;
    let ends: Vec<i64> = page
        .signals
        .iter()
        .map(|s| (s.window_end - T0) / SEC)
        .collect();
    assert_eq!(ends, [20, 25, 30]);
    let (status, baskets) = app.get_json("/api/v1/tda/baskets").await;
    assert_eq!(status, 200);
    assert_eq!(baskets["baskets"][0]["name"], "CRYPTO4");
    assert_eq!(baskets["baskets"][0]["points"], 10);
    assert_eq!(baskets["baskets"][0]["dimension"], 4);
    assert_eq!(
        baskets["baskets"][0]["last_signal"]["window_end"],
        json!(T0 + 55 * SEC)
    );
    let body = app
        .get_error("/api/v1/tda/signals", 422, "VALIDATION_ERROR")
        .await;
    assert!(
        body["detail"].as_str().unwrap().contains("basket"),
        "{body}"
    );
    app.get_error("/api/v1/tda/signals?basket=NOPE", 404, "BASKET_NOT_FOUND")
        .await;
    app.get_error(
        "/api/v1/tda/signals?basket=CRYPTO4&limit=0",
        422,
        "VALIDATION_ERROR",
    )
    .await;

    // Bars that arrive while the basket follows `bars` are computed as they
    // close (live, with an emit lag); redelivered ones change nothing.
    let mut events = Vec::new();
    for t in 50..71 {
        for i in 0..4 {
            events.push(Event::Bar(bar(i, t)));
        }
    }
    app.bus.publish_batch(events).await.unwrap();
    let page: SignalsPage = wait_until(DEADLINE, "three more windows", || {
        let app = &app;
        async move {
            let page: SignalsPage = app.get_as("/api/v1/tda/signals?basket=CRYPTO4").await;
            (page.count >= 13).then_some(page)
        }
    })
    .await;
    let ends: Vec<i64> = page
        .signals
        .iter()
        .map(|s| (s.window_end - T0) / SEC)
        .collect();
    assert_eq!(ends, (2..=14).map(|k| k * 5).collect::<Vec<_>>());
    for _ in 0..3 {
        let v = next().await;
        assert_eq!(v["type"], "data_update", "{v}");
    }
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metric_sum(
            &text,
            "marketd_tda_stream_windows_total",
            "basket=\"CRYPTO4\""
        ) >= 13.0
    );
    assert!(
        text.contains(
            "marketd_tda_computation_seconds_bucket{algorithm=\"vietoris-rips\",dim=\"1\""
        )
    );
    assert!(text.contains("marketd_tda_stream_emit_lag_seconds"));
    app.stop().await;
}

#[tokio::test]
async fn bad_basket_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::base_config(dir.path());
    cfg.tda.stream.baskets = vec![BasketConfig::new("B", symbols(), Interval::S1, 2)];
    let err = marketd::Application::build(cfg)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("tda.stream.baskets[B].window"), "{err}");
    let mut cfg = common::base_config(dir.path());
    cfg.tda.stream.baskets = vec![BasketConfig::new(
        "B",
        symbols()[..1].to_vec(),
        Interval::S1,
        20,
    )];
    let err = marketd::Application::build(cfg)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("embedding"), "{err}");
}
