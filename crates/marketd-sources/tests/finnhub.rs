//! Finnhub provider against a local mock speaking the recorded wire format.

mod support;

use marketd_model::{Decimal, Secret, Symbol, TickKind};
use marketd_sources::{
    Backoff, Error, FinnhubConfig, FinnhubProvider, Provider, ProviderRegistry, ProvidersConfig,
};
use std::str::FromStr;
use std::time::Duration;
use support::{Mock, Reply, closed_port, fixture};

const TOKEN: &str = "fh-test-token-91c2";
const UNKNOWN: &str = r#"{"c":0,"d":null,"dp":null,"h":0,"l":0,"o":0,"pc":0,"t":0}"#;

fn docs_sample() -> String {
    fixture("finnhub_quote.json")["response_docs_sample"].to_string()
}

fn cfg(base_url: String) -> FinnhubConfig {
    FinnhubConfig {
        enabled: true,
        base_url,
        api_key: Some(Secret::new(TOKEN)),
        rate_limit_per_minute: 6_000,
        timeout_ms: 300,
        max_retries: 2,
    }
}

fn provider(mock: &Mock) -> FinnhubProvider {
    FinnhubProvider::new(&cfg(mock.url("/api/v1")))
        .unwrap()
        .with_backoff(Backoff::new(
            Duration::from_millis(5),
            Duration::from_millis(40),
            2,
        ))
}

fn aapl() -> Symbol {
    Symbol::parse("AAPL").unwrap()
}

#[tokio::test]
async fn success_normalizes_and_sends_the_token_in_the_header_only() {
    let mock = Mock::start(vec![Reply::json(200, docs_sample())]).await;
    let p = provider(&mock);
    let tick = p.latest(&aapl()).await.unwrap();
    assert_eq!(tick.price, Decimal::from_str("261.74").unwrap());
    assert_eq!(tick.ts_event, 1_582_641_000_000_000_000);
    assert_eq!(tick.kind, TickKind::Last);
    assert_eq!(&*tick.source, "finnhub");
    assert_eq!(mock.hits(), 1);
    let seen = &mock.seen()[0];
    assert_eq!(seen.path, "/api/v1/quote");
    assert_eq!(seen.query, "symbol=AAPL");
    assert_eq!(seen.headers.get("x-finnhub-token").unwrap(), TOKEN);
    assert!(!seen.query.contains(TOKEN), "token must not be in the URL");
    let h = p.health();
    assert!(h.healthy && h.last_success_ns.is_some() && h.consecutive_failures == 0);
}

#[tokio::test]
async fn the_change_fields_shape_is_accepted() {
    let body =
        fixture("finnhub_quote.json")["response_with_change_fields_seen_in_a_public_rust_test"]
            .to_string();
    let mock = Mock::start(vec![Reply::json(200, body)]).await;
    let tick = provider(&mock).latest(&aapl()).await.unwrap();
    assert_eq!(tick.price.to_string(), "261.74");
    assert_eq!(tick.ts_event, 1_783_526_400_000_000_000);
}

#[tokio::test]
async fn zeros_mean_unknown_symbol() {
    let mock = Mock::start(vec![Reply::json(200, UNKNOWN)]).await;
    let p = provider(&mock);
    let err = p.latest(&Symbol::parse("NOPE").unwrap()).await.unwrap_err();
    assert!(
        matches!(&err, Error::SymbolNotFound(s) if s == "NOPE"),
        "{err:?}"
    );
    assert_eq!(mock.hits(), 1, "not retried");
    assert!(
        p.health().healthy,
        "an answer about an unknown symbol is not a provider failure"
    );
}

#[tokio::test]
async fn rate_limited_then_success_is_retried_honouring_retry_after() {
    // Retry-After: 60 s, capped by the backoff's 40 ms maximum. Uncapped,
    // the retry would end past the whole call's bound (3 x 300 ms) and would
    // not be made: the success on the third attempt shows the cap, with no
    // clock read.
    let mock = Mock::start(vec![
        Reply::json(429, r#"{"error":"API limit reached"}"#).header("retry-after", 60),
        Reply::json(429, r#"{"error":"API limit reached"}"#),
        Reply::json(200, docs_sample()),
    ])
    .await;
    let tick = provider(&mock).latest(&aapl()).await.unwrap();
    assert_eq!(tick.price.to_string(), "261.74");
    assert_eq!(mock.hits(), 3);
    assert!(
        mock.seen()
            .iter()
            .all(|s| s.headers.get("x-finnhub-token").is_some_and(|v| v == TOKEN))
    );
}

#[tokio::test]
async fn server_errors_exhaust_the_retries() {
    let mock = Mock::start(vec![Reply::json(503, "{}")]).await;
    let p = provider(&mock);
    let err = p.latest(&aapl()).await.unwrap_err();
    assert!(matches!(err, Error::Upstream { status: 503 }), "{err:?}");
    assert_eq!(mock.hits(), 3, "1 attempt + max_retries (2)");
    let h = p.health();
    assert_eq!(h.consecutive_failures, 1);
    assert_eq!(h.last_error.as_deref(), Some("provider answered HTTP 503"));

    let mock = Mock::start(vec![Reply::json(429, "{}")]).await;
    let p = FinnhubProvider::new(&FinnhubConfig {
        max_retries: 0,
        ..cfg(mock.url("/api/v1"))
    })
    .unwrap();
    assert!(matches!(p.latest(&aapl()).await, Err(Error::RateLimited)));
    assert_eq!(mock.hits(), 1, "max_retries = 0: one attempt");
}

#[tokio::test]
async fn auth_failures_are_not_retried_and_never_show_the_token() {
    for status in [401u16, 403] {
        let mock = Mock::start(vec![Reply::json(status, r#"{"error":"Invalid API key"}"#)]).await;
        let p = provider(&mock);
        let err = p.latest(&aapl()).await.unwrap_err();
        assert!(
            matches!(err, Error::Upstream { status: s } if s == status),
            "{err:?}"
        );
        assert_eq!(mock.hits(), 1);
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{p:?}"),
            format!("{:?}", p.health()),
        ] {
            assert!(!text.contains(TOKEN), "token leaked: {text}");
        }
    }
}

#[tokio::test]
async fn malformed_json_is_malformed_and_not_retried() {
    let mock = Mock::start(vec![Reply::json(200, r#"{"c": 261.74, "t": "#)]).await;
    let err = provider(&mock).latest(&aapl()).await.unwrap_err();
    assert!(matches!(err, Error::Malformed(_)), "{err:?}");
    assert_eq!(mock.hits(), 1);
}

#[tokio::test]
async fn slow_upstream_times_out_within_the_timeout() {
    let mock = Mock::start(vec![
        Reply::json(200, docs_sample()).delayed(Duration::from_secs(3)),
    ])
    .await;
    let p = provider(&mock);
    // The attempt is cut at its budget, the configured 300 ms, long before
    // the 3 s reply (how long that takes on the clock is a benchmark's
    // figure, not this test's).
    let err = p.latest(&aapl()).await.unwrap_err();
    assert!(
        matches!(err, Error::Timeout(budget) if budget == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(mock.hits(), 1, "a timed-out attempt is not repeated");
}

#[tokio::test]
async fn unreachable_upstream_is_a_transport_error_after_retries() {
    let addr = closed_port().await;
    let p = FinnhubProvider::new(&cfg(format!("http://{addr}/api/v1")))
        .unwrap()
        .with_backoff(Backoff::new(
            Duration::from_millis(1),
            Duration::from_millis(5),
            2,
        ));
    let err = p.latest(&aapl()).await.unwrap_err();
    assert!(matches!(&err, Error::Transport(_)), "{err:?}");
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn client_side_rate_limit_waits_bounded_by_the_timeout() {
    let mock = Mock::start(vec![Reply::json(200, docs_sample())]).await;
    // 6 per minute: a burst of 1, then one every 10 s; the 300 ms timeout
    // bounds the wait, so the second call is refused locally at once.
    let p = FinnhubProvider::new(&FinnhubConfig {
        rate_limit_per_minute: 6,
        ..cfg(mock.url("/api/v1"))
    })
    .unwrap();
    p.latest(&aapl()).await.unwrap();
    // Refused without waiting: on tokio's paused clock (the limiter's
    // clock), which only moves when something waits, no time passes. The
    // refused call makes no request, so the paused clock meets no I/O.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    assert!(matches!(p.latest(&aapl()).await, Err(Error::RateLimited)));
    assert_eq!(started.elapsed(), Duration::ZERO, "refused at once");
    tokio::time::resume();
    assert_eq!(mock.hits(), 1, "the upstream never saw the over-limit call");

    // 600 per minute: burst of 30 then one per 100 ms. Every wait for a
    // token (at most 100 ms) is within the 300 ms bound, so none of 35 calls
    // in a row is refused. The pacing itself is measured on a paused clock
    // in the limiter's own tests (`ratelimit::tests`).
    let mock = Mock::start(vec![Reply::json(200, docs_sample())]).await;
    let p = FinnhubProvider::new(&FinnhubConfig {
        rate_limit_per_minute: 600,
        ..cfg(mock.url("/api/v1"))
    })
    .unwrap();
    for _ in 0..35 {
        p.latest(&aapl()).await.unwrap();
    }
    assert_eq!(mock.hits(), 35);
}

#[tokio::test]
async fn through_the_registry() {
    let mock = Mock::start(vec![Reply::json(200, docs_sample())]).await;
    let providers = ProvidersConfig {
        finnhub: cfg(mock.url("/api/v1/")),
        ..ProvidersConfig::default()
    };
    let reg = ProviderRegistry::from_config(&providers).unwrap();
    let p = reg.get("finnhub").unwrap();
    assert_eq!(p.latest(&aapl()).await.unwrap().price.to_string(), "261.74");
    assert_eq!(mock.seen()[0].path, "/api/v1/quote");
    assert!(matches!(
        p.history(&marketd_sources::HistoryRequest {
            symbol: aapl(),
            interval: marketd_model::Interval::D1,
            from: 0,
            to: 1,
        })
        .await,
        Err(Error::Unsupported(_))
    ));
    assert_eq!(mock.hits(), 1);
}
