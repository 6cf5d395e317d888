//! The history client against a local mock of Binance's REST API (axum on
//! port 0): paging, decoding as the stream does, retries and refusals.

use super::*;
use crate::backoff::Backoff;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use marketd_model::Decimal;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// An answer given instead of trades: status, `Retry-After`, body.
type Failure = (u16, Option<&'static str>, &'static str);

/// Trades `1..=last_id` exist; answers `limit + extra` of them from `fromId`
/// (a venue answering more than asked), after the queued failures.
#[derive(Clone, Default)]
struct Mock {
    requests: Arc<Mutex<Vec<String>>>,
    failures: Arc<Mutex<VecDeque<Failure>>>,
    last_id: u64,
    extra: u64,
}

fn price(id: u64) -> String {
    format!("{}.{id:08}", 50_000 + id)
}

fn time_ms(id: u64) -> u64 {
    1_700_000_000_000 + id
}

async fn answer(
    State(m): State<Mock>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    m.requests.lock().unwrap().push(uri.to_string());
    if let Some((status, retry_after, body)) = m.failures.lock().unwrap().pop_front() {
        let status = StatusCode::from_u16(status).unwrap();
        return match retry_after {
            Some(wait) => (status, [("Retry-After", wait)], body).into_response(),
            None => (status, body).into_response(),
        };
    }
    let from: u64 = q["fromId"].parse().unwrap();
    let limit: u64 = q["limit"].parse().unwrap();
    let agg = uri.path().ends_with("aggTrades");
    let items: Vec<serde_json::Value> = (from..from + limit + m.extra)
        .filter(|id| *id <= m.last_id)
        .map(|id| {
            if agg {
                serde_json::json!({"a": id, "p": price(id), "q": "0.00100000", "f": id * 3,
                                   "l": id * 3 + 2, "T": time_ms(id), "m": true, "M": true})
            } else {
                serde_json::json!({"id": id, "price": price(id), "qty": "0.00100000",
                                   "quoteQty": "50.00000000", "time": time_ms(id),
                                   "isBuyerMaker": false, "isBestMatch": true})
            }
        })
        .collect();
    axum::Json(items).into_response()
}

/// Serves `mock`; its base URL.
async fn serve(mock: Mock) -> reqwest::Url {
    let router = axum::Router::new()
        .fallback(axum::routing::get(answer))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    reqwest::Url::parse(&format!("http://{addr}")).unwrap()
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5), 3),
        ..RetryPolicy::default()
    }
}

fn client(venue: Venue, base: reqwest::Url) -> HistoryClient {
    HistoryClient::new(reqwest::Client::new(), venue, base)
        .unwrap()
        .with_policy(fast_policy())
}

fn ids(ticks: &[Tick]) -> Vec<u64> {
    ticks
        .iter()
        .map(|t| t.trade_id.as_deref().unwrap().parse().unwrap())
        .collect()
}

fn btc() -> Symbol {
    Symbol::parse("BTC-USDT").unwrap()
}

/// What the stream's decoder makes of `frame`.
fn streamed(venue: Venue, frame: &str, ts_received: i64) -> Tick {
    let mut out = Vec::new();
    venue
        .decoder()
        .decode(frame, ts_received, &mut out)
        .unwrap();
    assert_eq!(out.len(), 1);
    out.pop().unwrap()
}

#[tokio::test]
async fn agg_trades_are_paged_by_from_id_and_decoded_as_the_stream_does() {
    let mock = Mock {
        last_id: 2_600,
        ..Mock::default()
    };
    let base = serve(mock.clone()).await;
    let limiters = HostLimiters::default();
    let c = client(Venue::Binance, base.clone()).with_limiters(limiters.clone());
    let ticks = c
        .fetch_range(Channel::AggTrades, &btc(), 5, 2_300)
        .await
        .unwrap();
    assert_eq!(ids(&ticks), (5..=2_300).collect::<Vec<u64>>());
    assert_eq!(
        *mock.requests.lock().unwrap(),
        [
            "/api/v3/aggTrades?symbol=BTCUSDT&fromId=5&limit=1000",
            "/api/v3/aggTrades?symbol=BTCUSDT&fromId=1005&limit=1000",
            "/api/v3/aggTrades?symbol=BTCUSDT&fromId=2005&limit=296",
        ]
    );
    // The host's limiter is the shared one.
    assert_eq!(limiters.hosts(), [host_key(&base).unwrap()]);

    let t = &ticks[1];
    assert_eq!(t.trade_id.as_deref(), Some("6"));
    assert_eq!(t.source.as_ref(), "binance");
    assert_eq!(t.symbol, btc());
    assert_eq!(t.venue_symbol.as_deref(), Some("BTCUSDT"));
    assert_eq!(t.kind, TickKind::Trade);
    assert_eq!(t.price, Decimal::from_str_exact("50006.00000006").unwrap());
    assert_eq!(t.price.to_string(), "50006.00000006");
    assert_eq!(t.size.to_string(), "0.00100000");
    assert_eq!(t.ts_event, 1_700_000_000_006_000_000);
    // The very tick the stream gives for the same trade.
    let frame = format!(
        r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":{t},"s":"BTCUSDT","a":6,"p":"{p}","q":"0.00100000","f":18,"l":20,"T":{t},"m":true,"M":true}}}}"#,
        t = time_ms(6),
        p = price(6)
    );
    assert_eq!(*t, streamed(Venue::Binance, &frame, t.ts_received));
}

#[tokio::test]
async fn futures_historical_trades_keep_only_the_range_asked() {
    // The venue answers more than asked: ids past the range are the
    // stream's, not the backfill's.
    let mock = Mock {
        last_id: 100,
        extra: 5,
        ..Mock::default()
    };
    let c = client(Venue::BinanceFutures, serve(mock.clone()).await);
    let perp = Symbol::parse("BTC-USDT-PERP").unwrap();
    let ticks = c.fetch_range(Channel::Trades, &perp, 10, 12).await.unwrap();
    assert_eq!(ids(&ticks), [10, 11, 12]);
    assert_eq!(
        *mock.requests.lock().unwrap(),
        ["/fapi/v1/historicalTrades?symbol=BTCUSDT&fromId=10&limit=3"]
    );
    let t = &ticks[0];
    assert_eq!(t.source.as_ref(), "binance_futures");
    assert_eq!(t.symbol, perp);
    let frame = format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{t},"T":{t},"s":"BTCUSDT","t":10,"p":"{p}","q":"0.00100000","X":"MARKET","m":false}}}}"#,
        t = time_ms(10),
        p = price(10)
    );
    assert_eq!(*t, streamed(Venue::BinanceFutures, &frame, t.ts_received));
}

#[tokio::test]
async fn paging_stops_when_the_venue_has_nothing_more() {
    let mock = Mock {
        last_id: 7,
        ..Mock::default()
    };
    let c = client(Venue::Binance, serve(mock.clone()).await).with_page_limit(2);
    let ticks = c.fetch_range(Channel::Trades, &btc(), 5, 20).await.unwrap();
    assert_eq!(ids(&ticks), [5, 6, 7]);
    assert_eq!(
        *mock.requests.lock().unwrap(),
        [
            "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=5&limit=2",
            "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=7&limit=2",
            "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=8&limit=2",
        ]
    );
}

#[tokio::test]
async fn rate_limits_bans_and_server_errors_are_retried_no_sooner_than_retry_after() {
    let mock = Mock {
        last_id: 10,
        ..Mock::default()
    };
    mock.failures.lock().unwrap().extend([
        (
            429,
            Some("1"),
            r#"{"code":-1003,"msg":"Too many requests."}"#,
        ),
        (
            418,
            Some("0"),
            r#"{"code":-1003,"msg":"Way too many requests; IP banned."}"#,
        ),
        (503, None, "unavailable"),
    ]);
    let c = client(Venue::Binance, serve(mock.clone()).await);
    let start = Instant::now();
    let ticks = c
        .fetch_range(Channel::AggTrades, &btc(), 6, 8)
        .await
        .unwrap();
    assert_eq!(ids(&ticks), [6, 7, 8]);
    assert_eq!(mock.requests.lock().unwrap().len(), 4);
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "the 429's Retry-After: 1 was honoured"
    );
}

#[tokio::test]
async fn final_answers_and_exhausted_retries_are_errors_with_the_venue_message() {
    let mock = Mock {
        last_id: 10,
        ..Mock::default()
    };
    mock.failures.lock().unwrap().push_back((
        400,
        None,
        r#"{"code":-1121,"msg":"Invalid symbol."}"#,
    ));
    let c = client(Venue::Binance, serve(mock.clone()).await);
    let e = c.page(Channel::AggTrades, &btc(), 1, 3).await.unwrap_err();
    assert!(
        matches!(&e, HistoryError::Status { status: 400, body, .. } if body.contains("Invalid symbol.")),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        r#"/api/v3/aggTrades?symbol=BTCUSDT&fromId=1&limit=3 answered 400: {"code":-1121,"msg":"Invalid symbol."}"#
    );
    assert_eq!(
        mock.requests.lock().unwrap().len(),
        1,
        "a 400 is not retried"
    );

    mock.requests.lock().unwrap().clear();
    mock.failures
        .lock()
        .unwrap()
        .extend([(503, None, "down"); 4]);
    let e = c.page(Channel::AggTrades, &btc(), 1, 3).await.unwrap_err();
    assert!(
        matches!(e, HistoryError::Status { status: 503, .. }),
        "{e:?}"
    );
    assert_eq!(mock.requests.lock().unwrap().len(), 4, "1 try + 3 retries");

    mock.requests.lock().unwrap().clear();
    mock.failures
        .lock()
        .unwrap()
        .push_back((418, Some("3600"), "banned"));
    let e = c.page(Channel::AggTrades, &btc(), 1, 3).await.unwrap_err();
    assert!(
        matches!(e, HistoryError::WaitTooLong { status: 418, wait, .. } if wait == Duration::from_secs(3600)),
        "{e:?}"
    );
    assert_eq!(mock.requests.lock().unwrap().len(), 1);

    mock.failures
        .lock()
        .unwrap()
        .push_back((200, None, r#"{"not":"a list"}"#));
    let e = c.page(Channel::AggTrades, &btc(), 1, 3).await.unwrap_err();
    assert!(matches!(e, HistoryError::Json { .. }), "{e:?}");
}

#[test]
fn urls_endpoints_and_refusals() {
    let base = |s: &str| reqwest::Url::parse(s).unwrap();
    let http = reqwest::Client::new;
    let c = HistoryClient::new(http(), Venue::Binance, base("https://api.binance.com")).unwrap();
    assert_eq!(
        c.page_url(Channel::AggTrades, &btc(), 6, 3)
            .unwrap()
            .as_str(),
        "https://api.binance.com/api/v3/aggTrades?symbol=BTCUSDT&fromId=6&limit=3"
    );
    // A base with a path is a prefix (a proxy).
    let c = HistoryClient::new(
        http(),
        Venue::BinanceFutures,
        base("http://127.0.0.1:8080/binance/"),
    )
    .unwrap();
    let dated = Symbol::parse("BTC-USDT-240628").unwrap();
    assert_eq!(
        c.page_url(Channel::AggTrades, &dated, 1, 1000)
            .unwrap()
            .as_str(),
        "http://127.0.0.1:8080/binance/fapi/v1/aggTrades?symbol=BTCUSDT_240628&fromId=1&limit=1000"
    );
    assert!(matches!(
        c.endpoint(Channel::Quotes),
        Err(HistoryError::Unsupported {
            channel: Channel::Quotes,
            ..
        })
    ));
    assert!(matches!(
        c.page_url(Channel::Trades, &btc(), 1, 1),
        Err(HistoryError::Symbol(_))
    ));
    let e = HistoryClient::new(http(), Venue::Okx, base("https://www.okx.com")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "okx has no REST history of trades that marketd reads"
    );
    assert!(matches!(
        HistoryClient::new(http(), Venue::Binance, base("ftp://x.test/")),
        Err(HistoryError::BadBase { .. })
    ));
}
