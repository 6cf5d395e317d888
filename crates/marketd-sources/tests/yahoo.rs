//! Yahoo provider against a local mock replaying the recorded chart bodies.

mod support;

use marketd_model::time::NANOS_PER_SEC;
use marketd_model::{Decimal, Interval, Symbol, TickKind};
use marketd_sources::{Backoff, Error, HistoryRequest, Provider, YahooConfig, YahooProvider};
use std::str::FromStr;
use std::time::Duration;
use support::{Mock, Reply, fixture};

fn body(example: &str) -> String {
    fixture("yahoo_chart_v8.json")[example]["body"].to_string()
}

fn provider(mock: &Mock) -> YahooProvider {
    let cfg = YahooConfig {
        enabled: true,
        base_url: mock.url(""),
        timeout_ms: 300,
        max_retries: 2,
    };
    YahooProvider::new(&cfg).unwrap().with_backoff(Backoff::new(
        Duration::from_millis(5),
        Duration::from_millis(40),
        2,
    ))
}

fn aapl() -> Symbol {
    Symbol::parse("AAPL").unwrap()
}

fn query_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn daily_request() -> HistoryRequest {
    HistoryRequest {
        symbol: aapl(),
        interval: Interval::D1,
        from: 1_577_836_800 * NANOS_PER_SEC,
        to: 1_578_009_600 * NANOS_PER_SEC,
    }
}

#[tokio::test]
async fn latest_from_the_chart_meta() {
    let mock = Mock::start(vec![Reply::json(200, body("daily_bars_example"))]).await;
    let p = provider(&mock);
    let tick = p.latest(&aapl()).await.unwrap();
    assert_eq!(tick.price, Decimal::from_str("244.87").unwrap());
    assert_eq!(tick.ts_event, 1_739_998_801 * NANOS_PER_SEC);
    assert_eq!(tick.kind, TickKind::Last);
    assert_eq!(&*tick.source, "yahoo");
    let seen = &mock.seen()[0];
    assert_eq!(seen.path, "/v8/finance/chart/AAPL");
    let q = query_pairs(&seen.query);
    assert!(
        q.contains(&("range".into(), "1d".into())) && q.contains(&("interval".into(), "1m".into())),
        "{q:?}"
    );
    assert!(p.health().last_success_ns.is_some());
}

#[tokio::test]
async fn daily_history_with_periods() {
    let mock = Mock::start(vec![Reply::json(200, body("daily_bars_example"))]).await;
    let bars = provider(&mock).history(&daily_request()).await.unwrap();
    assert_eq!(bars.len(), 1);
    let b = &bars[0];
    assert_eq!(
        (b.open.to_string(), b.close.to_string()),
        ("74.06".to_string(), "75.0875".to_string())
    );
    assert_eq!(b.volume, Decimal::from(135_480_400));
    assert_eq!(b.interval, Interval::D1);
    assert!(b.closed);
    let q = query_pairs(&mock.seen()[0].query);
    for (k, v) in [
        ("interval", "1d"),
        ("period1", "1577836800"),
        ("period2", "1578009600"),
    ] {
        assert!(
            q.contains(&(k.into(), v.into())),
            "{k}={v} missing in {q:?}"
        );
    }
}

#[tokio::test]
async fn hourly_is_60m_and_empty_windows_give_no_bars() {
    let mock = Mock::start(vec![Reply::json(
        200,
        body("empty_window_example_weekend_1m"),
    )])
    .await;
    let p = provider(&mock);
    let req = HistoryRequest {
        interval: Interval::H1,
        ..daily_request()
    };
    assert!(p.history(&req).await.unwrap().is_empty());
    assert!(query_pairs(&mock.seen()[0].query).contains(&("interval".into(), "60m".into())));
}

#[tokio::test]
async fn one_second_bars_are_unsupported_without_a_request() {
    let mock = Mock::start(vec![Reply::json(200, body("daily_bars_example"))]).await;
    let req = HistoryRequest {
        interval: Interval::S1,
        ..daily_request()
    };
    assert!(matches!(
        provider(&mock).history(&req).await,
        Err(Error::Unsupported(_))
    ));
    assert_eq!(mock.hits(), 0);
}

#[tokio::test]
async fn not_found_body_is_unknown_symbol() {
    let mock = Mock::start(vec![Reply::json(404, body("error_example"))]).await;
    let p = provider(&mock);
    let err = p.latest(&Symbol::parse("NOPE").unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, Error::SymbolNotFound(s) if s == "NOPE"),
        "{err:?}"
    );
    assert!(matches!(
        p.history(&daily_request()).await,
        Err(Error::SymbolNotFound(_))
    ));
    assert_eq!(mock.hits(), 2, "not retried");

    // A 404 that is not Yahoo's answer (wrong base URL) is an upstream error.
    let mock = Mock::start(vec![Reply::json(404, "<html>Not Found</html>")]).await;
    assert!(matches!(
        provider(&mock).latest(&aapl()).await,
        Err(Error::Upstream { status: 404 })
    ));
}

#[tokio::test]
async fn rate_limited_then_success() {
    let mock = Mock::start(vec![
        Reply::json(429, "Too Many Requests").header("retry-after", 30),
        Reply::json(200, body("daily_bars_example")),
    ])
    .await;
    // Uncapped, the 30 s Retry-After would end past the whole call's bound
    // (3 x 300 ms) and no retry would be made: the success shows the cap.
    assert_eq!(
        provider(&mock)
            .latest(&aapl())
            .await
            .unwrap()
            .price
            .to_string(),
        "244.87"
    );
    assert_eq!(mock.hits(), 2);
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let mock = Mock::start(vec![Reply::json(502, "bad gateway")]).await;
    let p = provider(&mock);
    assert!(matches!(
        p.latest(&aapl()).await,
        Err(Error::Upstream { status: 502 })
    ));
    assert_eq!(mock.hits(), 3);
    assert!(matches!(
        p.history(&daily_request()).await,
        Err(Error::Upstream { status: 502 })
    ));
    assert_eq!(mock.hits(), 6);
    assert_eq!(p.health().consecutive_failures, 2);
}

#[tokio::test]
async fn malformed_json() {
    let mock = Mock::start(vec![Reply::json(200, r#"{"chart":{"result":[{"meta":"#)]).await;
    assert!(matches!(
        provider(&mock).latest(&aapl()).await,
        Err(Error::Malformed(_))
    ));
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn slow_upstream_times_out() {
    let mock = Mock::start(vec![
        Reply::json(200, body("daily_bars_example")).delayed(Duration::from_secs(3)),
    ])
    .await;
    // Cut at the configured 300 ms budget, long before the 3 s reply.
    let err = provider(&mock).history(&daily_request()).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(budget) if budget == Duration::from_millis(300)),
        "{err:?}"
    );
}

#[tokio::test]
async fn index_symbols_are_path_encoded() {
    let mock = Mock::start(vec![Reply::json(200, body("daily_bars_example"))]).await;
    provider(&mock)
        .latest(&Symbol::parse("^GSPC").unwrap())
        .await
        .unwrap();
    assert_eq!(mock.seen()[0].path, "/v8/finance/chart/%5EGSPC");
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let huge = format!(
        r#"{{"chart":{{"result":null,"error":null,"pad":"{}"}}}}"#,
        "x".repeat(9 << 20)
    );
    let mock = Mock::start(vec![Reply::json(200, huge)]).await;
    let err = provider(&mock).latest(&aapl()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Malformed(m) if m.contains("body over")),
        "{err:?}"
    );
    assert_eq!(mock.hits(), 1);
}
