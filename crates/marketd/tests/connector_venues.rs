//! WebSocket connectors against a mock exchange (`common::venue_mock`, a
//! real WebSocket server speaking Binance's and OKX's protocols), the app on
//! port 0, every assertion through the API:
//!
//! - recorded sessions (`shared/fixtures/captures`) replayed frame by frame:
//!   each trade stored once, with the wire's exact decimals and the trade's
//!   own time, each distinct quote once;
//! - the ways a feed breaks (a dropped socket, silence past the idle
//!   timeout, garbage text and binary frames, a 429 with `Retry-After`, a
//!   `serverShutdown` notice, a server restart): afterwards every
//!   subscription is back on the newest connection, the status counts what
//!   happened, the reconnect delays stay within the documented backoff, and
//!   the trades the mock replays after a reconnect are not stored twice;
//! - a definition changed (`PUT`) while the connector runs takes effect.
//!
//! Expected values come from the capture files read here with serde_json,
//! not from the app's capture parser or decoders.

mod common;

use common::capture;

use common::venue_mock::{
    Connection, DataFrame, Dialect, GARBAGE_BINARY, GARBAGE_TEXT, Step, Then, VenueMock,
};
use common::{TestApp, wait_until};
use marketd_model::Decimal;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::Duration;

/// How long a promised event may take (a deadline, never a measurement).
const DEADLINE: Duration = Duration::from_secs(20);
/// The cap of the reconnect backoff (docs/connectors.md), and the slack
/// allowed on top of any documented delay on a loaded machine.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
const SLACK: Duration = Duration::from_secs(5);
/// Frames the mock sends again at the start of each reconnection.
const REPLAYED: usize = 3;

// ---------------------------------------------------------------------------
// What a capture holds, read with serde_json alone

/// The frames a capture received (`<unix time>: <frame>` lines), as text.
fn received_frames(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(capture(name)).expect("capture readable");
    text.lines()
        .filter_map(|line| {
            let (time, body) = line.split_once(": ")?;
            time.parse::<f64>().ok()?;
            Some(body.to_string())
        })
        .collect()
}

/// A wire decimal as the API writes it: the exact digits, without the
/// fraction's trailing zeros (docs/events.md; `0.35280000` is `0.3528`,
/// `58.00000000` is `58`).
fn api_decimal(wire: &str) -> String {
    if wire.contains('.') {
        wire.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        wire.to_string()
    }
}

/// The exact mid of a bid and an ask, as the API writes it.
fn mid(bid: &str, ask: &str) -> String {
    let (b, a) = (
        Decimal::from_str(bid).unwrap(),
        Decimal::from_str(ask).unwrap(),
    );
    ((b + a) * Decimal::new(5, 1)).normalize().to_string()
}

/// A trade as the API must show it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Trade {
    id: u64,
    price: String,
    size: String,
    ts_event: i64,
    venue_symbol: String,
}

/// A quote as the API must show it; `ts_event` is `None` when the venue
/// sends no time (Binance spot `bookTicker`: the receive time is used).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Quote {
    ts_event: Option<i64>,
    price: String,
    bid: Option<String>,
    ask: Option<String>,
}

/// What one symbol's frames say must be stored.
#[derive(Debug, Default)]
struct Expected {
    trades: Vec<Trade>,
    quotes: Vec<Quote>,
}

impl Expected {
    /// Quotes are stored once per identity (source, symbol, time, price,
    /// size); without a venue time each one is its own.
    fn distinct_quotes(&self) -> usize {
        let timed: BTreeSet<(i64, &str)> = self
            .quotes
            .iter()
            .filter_map(|q| Some((q.ts_event?, q.price.as_str())))
            .collect();
        timed.len() + self.quotes.iter().filter(|q| q.ts_event.is_none()).count()
    }
}

/// A venue's part of a capture: the frames of the chosen symbols and
/// channels (for the mock), what they must become, and the subscriptions
/// that ask for them.
#[derive(Debug)]
struct Feed {
    venue: &'static str,
    dialect: Dialect,
    symbols: Vec<&'static str>,
    channels: Vec<&'static str>,
    frames: Vec<DataFrame>,
    /// Ticks each frame decodes into, in frame order.
    ticks_per_frame: Vec<usize>,
    expected: BTreeMap<&'static str, Expected>,
    subscriptions: BTreeSet<String>,
}

fn ms_to_ns(ms: i64) -> i64 {
    ms * 1_000_000
}

/// Reads `capture`'s frames of `symbols` (canonical, venue spelling) and
/// `channels` for `venue`.
fn feed(
    capture: &str,
    venue: &'static str,
    symbols: &[(&'static str, &'static str)],
    channels: &[&'static str],
) -> Feed {
    let dialect = if venue == "okx" {
        Dialect::Okx
    } else {
        Dialect::Binance
    };
    let canonical: BTreeMap<&str, &'static str> = symbols.iter().map(|(c, w)| (*w, *c)).collect();
    let mut f = Feed {
        venue,
        dialect,
        symbols: symbols.iter().map(|(c, _)| *c).collect(),
        channels: channels.to_vec(),
        frames: Vec::new(),
        ticks_per_frame: Vec::new(),
        expected: symbols
            .iter()
            .map(|(c, _)| (*c, Expected::default()))
            .collect(),
        subscriptions: BTreeSet::new(),
    };
    for (_, wire) in symbols {
        for channel in channels {
            f.subscriptions.insert(match dialect {
                Dialect::Binance => format!(
                    "{}@{}",
                    wire.to_ascii_lowercase(),
                    match *channel {
                        "trades" => "trade",
                        "agg_trades" => "aggTrade",
                        _ => "bookTicker",
                    }
                ),
                Dialect::Okx => format!(
                    "{}:{wire}",
                    if *channel == "trades" {
                        "trades"
                    } else {
                        "tickers"
                    }
                ),
            });
        }
    }
    for text in received_frames(capture) {
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let taken = match dialect {
            Dialect::Binance => binance_frame(&v, &canonical, channels, &mut f.expected),
            Dialect::Okx => okx_frame(&v, &canonical, channels, &mut f.expected),
        };
        if let Some(ticks) = taken {
            f.frames.push(match dialect {
                Dialect::Binance => DataFrame::binance(&text),
                Dialect::Okx => DataFrame::okx(&text),
            });
            f.ticks_per_frame.push(ticks);
        }
    }
    f
}

/// Takes a Binance combined-stream frame of the feed; its tick count.
fn binance_frame(
    v: &Value,
    canonical: &BTreeMap<&str, &'static str>,
    channels: &[&str],
    expected: &mut BTreeMap<&'static str, Expected>,
) -> Option<usize> {
    let stream = v["stream"].as_str()?;
    let d = &v["data"];
    let channel = match stream.split_once('@')?.1 {
        "trade" => "trades",
        "aggTrade" => "agg_trades",
        "bookTicker" => "quotes",
        _ => return None,
    };
    let wire = d["s"].as_str()?;
    let symbol = *canonical.get(wire)?;
    if !channels.contains(&channel) {
        return None;
    }
    let e = expected.get_mut(symbol)?;
    let text = |k: &str| d[k].as_str().unwrap().to_string();
    if channel == "quotes" {
        let (b, a) = (text("b"), text("a"));
        e.quotes.push(Quote {
            // Futures stamp the quote (`T`, else `E`); spot does not.
            ts_event: d["T"].as_i64().or(d["E"].as_i64()).map(ms_to_ns),
            price: mid(&b, &a),
            bid: Some(api_decimal(&b)),
            ask: Some(api_decimal(&a)),
        });
    } else {
        let id = if channel == "trades" {
            &d["t"]
        } else {
            &d["a"]
        };
        e.trades.push(Trade {
            id: id.as_u64().unwrap(),
            price: api_decimal(&text("p")),
            size: api_decimal(&text("q")),
            ts_event: ms_to_ns(d["T"].as_i64().unwrap()),
            venue_symbol: wire.to_string(),
        });
    }
    Some(1)
}

/// Takes an OKX push of the feed; its tick count.
fn okx_frame(
    v: &Value,
    canonical: &BTreeMap<&str, &'static str>,
    channels: &[&str],
    expected: &mut BTreeMap<&'static str, Expected>,
) -> Option<usize> {
    let items = v["data"].as_array()?;
    let channel = match v["arg"]["channel"].as_str()? {
        "trades" => "trades",
        "tickers" => "quotes",
        _ => return None,
    };
    let symbol = *canonical.get(v["arg"]["instId"].as_str()?)?;
    if !channels.contains(&channel) {
        return None;
    }
    let e = expected.get_mut(symbol)?;
    for item in items {
        let text = |k: &str| item[k].as_str().unwrap().to_string();
        let ts_event = ms_to_ns(text("ts").parse().unwrap());
        if channel == "trades" {
            e.trades.push(Trade {
                id: text("tradeId").parse().unwrap(),
                price: api_decimal(&text("px")),
                size: api_decimal(&text("sz")),
                ts_event,
                venue_symbol: text("instId"),
            });
        } else {
            let side = |k: &str| Some(text(k)).filter(|s| !s.is_empty());
            let (bid, ask) = (side("bidPx"), side("askPx"));
            let price = match (&bid, &ask) {
                (Some(b), Some(a)) => mid(b, a),
                _ => api_decimal(&text("last")),
            };
            e.quotes.push(Quote {
                ts_event: Some(ts_event),
                price,
                bid: bid.as_deref().map(api_decimal),
                ask: ask.as_deref().map(api_decimal),
            });
        }
    }
    Some(items.len())
}

/// Binance USD-M aggregated trades of two perpetuals (78 consecutive ids).
fn futures_trades() -> Feed {
    feed(
        "BINANCE_FUTURES.ws.1.0",
        "binance_futures",
        &[
            ("SUSHI-USDT-PERP", "SUSHIUSDT"),
            ("CTK-USDT-PERP", "CTKUSDT"),
        ],
        &["agg_trades"],
    )
}

/// OKX trades of a spot pair and a dated future (73 trades).
fn okx_trades() -> Feed {
    feed(
        "OKX.ws.1.0",
        "okx",
        &[
            ("BTC-USDT", "BTC-USDT"),
            ("BTC-USD-220527", "BTC-USD-220527"),
        ],
        &["trades"],
    )
}

// ---------------------------------------------------------------------------
// The app's side

/// A stored tick with its decimals as the API wrote them.
#[derive(Debug, serde::Deserialize)]
struct Stored {
    kind: String,
    price: Box<RawValue>,
    size: Box<RawValue>,
    bid: Option<Box<RawValue>>,
    ask: Option<Box<RawValue>>,
    trade_id: Option<String>,
    venue_symbol: Option<String>,
    ts_event: i64,
    ts_received: i64,
}

#[derive(Debug, serde::Deserialize)]
struct Page {
    ticks: Vec<Stored>,
    next_cursor: Option<String>,
}

/// Every tick stored for `symbol` from `source`, following the cursor.
async fn stored(app: &TestApp, symbol: &str, source: &str) -> Vec<Stored> {
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let page: Page = app
            .get_as(&format!(
                "/api/v1/prices/history?symbol={symbol}&source={source}&limit=10000{cursor}"
            ))
            .await;
        all.extend(page.ticks);
        match page.next_cursor {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return all,
        }
    }
}

fn trades_of(ticks: &[Stored]) -> Vec<Trade> {
    let mut trades: Vec<Trade> = ticks
        .iter()
        .filter(|t| t.kind == "trade")
        .map(|t| Trade {
            id: t.trade_id.as_deref().expect("a trade id").parse().unwrap(),
            price: t.price.get().to_string(),
            size: t.size.get().to_string(),
            ts_event: t.ts_event,
            venue_symbol: t.venue_symbol.clone().unwrap_or_default(),
        })
        .collect();
    trades.sort();
    trades
}

/// Waits until every expected trade of every symbol is stored, then checks
/// that exactly those are: each once, its price and size the wire's digits,
/// its time the trade's own.
async fn assert_trades_stored(app: &TestApp, feed: &Feed) {
    for (symbol, expected) in &feed.expected {
        let want = expected.trades.len();
        let ticks = wait_until(
            DEADLINE,
            &format!("{want} {symbol} trades stored"),
            || async {
                let ticks = stored(app, symbol, feed.venue).await;
                (trades_of(&ticks).len() >= want).then_some(ticks)
            },
        )
        .await;
        let mut want_trades = expected.trades.clone();
        want_trades.sort();
        assert_eq!(
            trades_of(&ticks),
            want_trades,
            "{symbol}: the stored trades"
        );
    }
}

fn definition(name: &str, feed: &Feed, url: &str) -> Value {
    json!({"name": name, "kind": "websocket", "venue": feed.venue, "url": url,
           "symbols": feed.symbols, "channels": feed.channels})
}

async fn status(app: &TestApp, id: &str) -> Value {
    let (s, body) = app
        .get_json(&format!("/api/v1/connectors/{id}/status"))
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// Waits for a status that `ready` accepts.
async fn status_when(app: &TestApp, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    wait_until(DEADLINE, what, || async {
        let s = status(app, id).await;
        ready(&s).then_some(s)
    })
    .await
}

fn u(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

// ---------------------------------------------------------------------------
// Capture replay

/// Replays `feed` through a connector and checks what was subscribed, stored
/// and counted.
async fn replay(feed: Feed) {
    let app = TestApp::spawn(|_| {}).await;
    let mock = VenueMock::start(feed.dialect, feed.frames.clone(), 0, None, Vec::new()).await;
    let before = marketd_model::time::now_ns();
    let id = app
        .start_connector(&definition("capture", &feed, &mock.url()))
        .await;

    // The connector asked for exactly the feed's subscriptions, on one
    // connection that the mock served in full.
    wait_until(DEADLINE, "every capture frame sent", || async {
        mock.all_served().then_some(())
    })
    .await;
    let conns = mock.connections();
    assert_eq!(conns.len(), 1, "{conns:?}");
    assert_eq!(conns[0].subscriptions, feed.subscriptions);
    if feed.dialect == Dialect::Binance {
        let path = conns[0].path.as_deref().unwrap();
        assert!(path.starts_with("/stream?streams="), "{path}");
    }

    assert_trades_stored(&app, &feed).await;
    for (symbol, expected) in &feed.expected {
        let want = expected.distinct_quotes();
        let ticks = wait_until(
            DEADLINE,
            &format!("{want} {symbol} quotes stored"),
            || async {
                let ticks = stored(&app, symbol, feed.venue).await;
                let quotes = ticks.iter().filter(|t| t.kind == "quote").count();
                (quotes >= want).then_some(ticks)
            },
        )
        .await;
        let quotes: Vec<&Stored> = ticks.iter().filter(|t| t.kind == "quote").collect();
        assert_eq!(quotes.len(), want, "{symbol}: each distinct quote once");
        for q in quotes {
            let got = Quote {
                ts_event: Some(q.ts_event),
                price: q.price.get().to_string(),
                bid: q.bid.as_ref().map(|b| b.get().to_string()),
                ask: q.ask.as_ref().map(|a| a.get().to_string()),
            };
            assert_eq!(q.size.get(), "0", "{symbol}: a quote has no traded size");
            let known = expected.quotes.iter().any(|e| match e.ts_event {
                Some(_) => *e == got,
                None => {
                    q.ts_event == q.ts_received
                        && (&e.price, &e.bid, &e.ask) == (&got.price, &got.bid, &got.ask)
                }
            });
            assert!(known, "{symbol}: {got:?} is no quote of the capture");
        }
    }

    // Every frame counted; nothing rejected, lost or reconnected.
    let sent = conns[0].frames_sent;
    assert_eq!(sent, feed.frames.len());
    let acks = match feed.dialect {
        Dialect::Binance => 0,
        Dialect::Okx => feed.subscriptions.len(),
    };
    let ticks: usize = feed.ticks_per_frame.iter().sum();
    let s = status_when(&app, &id, "every frame in the status", |s| {
        u(s, "messages_received") >= (sent + acks) as u64 && u(s, "ticks") >= ticks as u64
    })
    .await;
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(u(&s, "messages_received"), (sent + acks) as u64, "{s}");
    assert_eq!(u(&s, "ticks"), ticks as u64, "{s}");
    assert_eq!(
        (u(&s, "errors"), u(&s, "reconnects"), u(&s, "gaps")),
        (0, 0, 0),
        "{s}"
    );
    let last = s["last_message_at"].as_i64().expect("a last message time");
    assert!(
        last >= before && last <= marketd_model::time::now_ns(),
        "{s}"
    );
    app.stop().await;
}

#[tokio::test]
async fn binance_spot_capture_stores_each_agg_trade_and_quote_once() {
    let feed = feed(
        "BINANCE.ws.1.0",
        "binance",
        &[
            ("NKN-USDT", "NKNUSDT"),
            ("BLZ-ETH", "BLZETH"),
            ("LRC-BTC", "LRCBTC"),
            ("RUNE-EUR", "RUNEEUR"),
        ],
        &["agg_trades", "quotes"],
    );
    // What the file holds (counted above with serde_json): 2 aggregated
    // trades and 84 book tickers of these four pairs.
    let trades: usize = feed.expected.values().map(|e| e.trades.len()).sum();
    let quotes: usize = feed.expected.values().map(|e| e.quotes.len()).sum();
    assert_eq!((trades, quotes), (2, 84));
    replay(feed).await;
}

#[tokio::test]
async fn binance_futures_capture_stores_each_agg_trade_and_quote_once() {
    let feed = feed(
        "BINANCE_FUTURES.ws.1.0",
        "binance_futures",
        &[
            ("SUSHI-USDT-PERP", "SUSHIUSDT"),
            ("AKRO-USDT-PERP", "AKROUSDT"),
            ("KEEP-USDT-PERP", "KEEPUSDT"),
            ("CTK-USDT-PERP", "CTKUSDT"),
        ],
        &["agg_trades", "quotes"],
    );
    let trades: usize = feed.expected.values().map(|e| e.trades.len()).sum();
    let quotes: usize = feed.expected.values().map(|e| e.quotes.len()).sum();
    let distinct: usize = feed.expected.values().map(Expected::distinct_quotes).sum();
    // 91 aggregated trades; 613 book tickers of which 17 repeat an earlier
    // one's time and mid (only the sizes at the best levels changed).
    assert_eq!((trades, quotes, distinct), (91, 613, 596));
    replay(feed).await;
}

#[tokio::test]
async fn okx_capture_stores_each_trade_and_quote_once() {
    let feed = feed(
        "OKX.ws.1.0",
        "okx",
        &[
            ("BTC-USDT", "BTC-USDT"),
            ("BTC-USD-220527", "BTC-USD-220527"),
            ("UNI-USD-PERP", "UNI-USD-SWAP"),
        ],
        &["trades", "quotes"],
    );
    let trades: usize = feed.expected.values().map(|e| e.trades.len()).sum();
    let quotes: usize = feed.expected.values().map(|e| e.quotes.len()).sum();
    assert_eq!((trades, quotes), (74, 28));
    replay(feed).await;
}

// ---------------------------------------------------------------------------
// Reconnects

/// A feed served through an outage.
struct Outage {
    feed: Feed,
    script: Vec<Step>,
    /// The connector's `idle_timeout_ms` (default when `None`).
    idle_timeout_ms: Option<u64>,
    /// The mock's WebSocket pings while a connection stays.
    ping_every: Option<Duration>,
    /// `127.0.0.1`, or `localhost` for a connect gate of its own (a
    /// cool-down of one host holds back every connector to it).
    host: &'static str,
}

/// What an outage left behind.
struct Aftermath {
    app: TestApp,
    mock: VenueMock,
    /// The successful connections (upgrades that were not refused).
    served: Vec<Connection>,
    status: Value,
}

impl Outage {
    fn new(feed: Feed, script: Vec<Step>) -> Self {
        Outage {
            feed,
            script,
            idle_timeout_ms: None,
            ping_every: None,
            host: "127.0.0.1",
        }
    }

    /// Starts the mock and the connector; `during` runs while the feed is
    /// being served (e.g. restarts the mock).
    async fn run<F, Fut>(self, during: F) -> Aftermath
    where
        F: FnOnce(TestApp, VenueMock, String) -> Fut,
        Fut: std::future::Future<Output = (TestApp, VenueMock)>,
    {
        let feed = self.feed;
        for n in &feed.ticks_per_frame {
            assert_eq!(*n, 1, "these scenarios use one trade per frame");
        }
        let app = TestApp::spawn(|_| {}).await;
        let mock = VenueMock::start(
            feed.dialect,
            feed.frames.clone(),
            REPLAYED,
            self.ping_every,
            self.script,
        )
        .await;
        let before = marketd_model::time::now_ns();
        let url = mock.url().replace("127.0.0.1", self.host);
        let mut def = definition("outage", &feed, &url);
        if let Some(ms) = self.idle_timeout_ms {
            def["idle_timeout_ms"] = json!(ms);
        }
        let id = app.start_connector(&def).await;
        let (app, mock) = during(app, mock, id.clone()).await;

        // Every trade stored once, though the mock sent the last ones again
        // on each reconnection.
        wait_until(DEADLINE, "every frame sent", || async {
            mock.all_served().then_some(())
        })
        .await;
        assert_trades_stored(&app, &feed).await;

        // Every connection subscribed to everything, the newest included.
        let served: Vec<Connection> = mock
            .connections()
            .into_iter()
            .filter(|c| c.path.is_some() && c.refused.is_none())
            .collect();
        for c in &served {
            assert_eq!(c.subscriptions, feed.subscriptions, "{c:?}");
        }
        let sent: usize = served.iter().map(|c| c.frames_sent).sum();
        assert_eq!(
            sent - feed.frames.len(),
            REPLAYED * (served.len() - 1),
            "each reconnection got the last trades again: {served:?}"
        );

        // The status counts each reconnection and each frame decoded
        // (replays included), no gap, and runs again.
        let reconnects = (served.len() - 1) as u64;
        let status = status_when(&app, &id, "the reconnections in the status", |s| {
            s["state"] == "running"
                && u(s, "reconnects") >= reconnects
                && u(s, "ticks") >= sent as u64
        })
        .await;
        assert_eq!(u(&status, "reconnects"), reconnects, "{status}");
        assert_eq!(u(&status, "ticks"), sent as u64, "{status}");
        assert_eq!(u(&status, "gaps"), 0, "{status}");
        assert!(u(&status, "messages_received") >= sent as u64, "{status}");
        let last = status["last_message_at"]
            .as_i64()
            .expect("a last message time");
        assert!(
            last >= before && last <= marketd_model::time::now_ns(),
            "{status}"
        );

        // No attempt waited longer than the backoff's cap after the one
        // before it ended.
        let all = mock.connections();
        for w in all.windows(2) {
            let after = w[1].at - w[0].ended.unwrap_or(w[0].at);
            assert!(
                after <= BACKOFF_CAP + SLACK,
                "{after:?} between attempts: {all:?}"
            );
        }
        Aftermath {
            app,
            mock,
            served,
            status,
        }
    }
}

/// The wait between the end of connection `i` and the next attempt.
fn wait_after(conns: &[Connection], i: usize) -> Duration {
    conns[i + 1].at - conns[i].ended.expect("ended")
}

async fn nothing_during(app: TestApp, mock: VenueMock, _id: String) -> (TestApp, VenueMock) {
    (app, mock)
}

#[tokio::test]
async fn a_dropped_connection_is_replaced_at_once_and_resubscribed() {
    let drop_after = |n| Step::Serve {
        new: Some(n),
        then: Then::Drop,
    };
    let outage = Outage::new(futures_trades(), vec![drop_after(20), drop_after(20)]);
    let done = outage.run(nothing_during).await;
    assert_eq!(done.served.len(), 3);
    assert_eq!(u(&done.status, "errors"), 0, "{}", done.status);
    // The first retry is immediate (the host's connect gate aside).
    let conns = done.mock.connections();
    assert!(wait_after(&conns, 0) <= SLACK, "first retry: {conns:?}");
    done.app.stop().await;
}

#[tokio::test]
async fn a_silent_connection_is_replaced_after_the_idle_timeout() {
    let mut outage = Outage::new(
        okx_trades(),
        vec![Step::Serve {
            new: Some(25),
            then: Then::Silent,
        }],
    );
    // The shortest idle timeout a definition takes; the mock pings the
    // connections that stay, as a venue's heartbeat would.
    outage.idle_timeout_ms = Some(1000);
    outage.ping_every = Some(Duration::from_millis(200));
    let done = outage.run(nothing_during).await;
    assert_eq!(done.served.len(), 2);
    let silent = &done.served[0];
    assert!(
        silent.ended.unwrap() - silent.at >= Duration::from_secs(1),
        "replaced only after a second of silence: {silent:?}"
    );
    let last_error = done.status["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("no message from the server for 1s"),
        "{}",
        done.status
    );
    done.app.stop().await;
}

/// Garbage text and binary frames in the middle of the data: each counted
/// in `errors`, the connection kept, the data after them stored.
async fn garbage(feed: Feed) {
    let venue = feed.venue;
    let outage = Outage::new(
        feed,
        vec![Step::Serve {
            new: Some(20),
            then: Then::Garbage,
        }],
    );
    let done = outage.run(nothing_during).await;
    assert_eq!(done.served.len(), 1, "the connection was kept");
    // The status that counted every later frame counted the garbage too.
    let s = &done.status;
    let garbage = (GARBAGE_TEXT.len() + GARBAGE_BINARY.len()) as u64;
    assert_eq!(u(s, "errors"), garbage, "{s}");
    assert_eq!(s["state"], "running", "{s}");
    // The last garbage frame was binary, which these venues never send.
    let last_error = s["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains(&format!("{venue}: unexpected binary message (3 bytes)")),
        "{s}"
    );
    done.app.stop().await;
}

#[tokio::test]
async fn binance_garbage_frames_are_counted_and_the_connection_kept() {
    garbage(futures_trades()).await;
}

#[tokio::test]
async fn okx_garbage_frames_are_counted_and_the_connection_kept() {
    garbage(okx_trades()).await;
}

#[tokio::test]
async fn a_429_on_connect_cools_down_for_its_retry_after() {
    let refuse = Step::Refuse {
        status: 429,
        retry_after: Some(1),
    };
    let mut outage = Outage::new(futures_trades(), vec![refuse.clone(), refuse]);
    outage.host = "localhost";
    let second = 1_000_000_000;
    let before = marketd_model::time::now_ns();
    let done = outage
        .run(|app, mock, id| async move {
            // While held back, the status says so and until when: a second
            // after a refusal, which came after `before` and before now.
            let s = status_when(&app, &id, "cooling down", |s| s["state"] == "cooling_down").await;
            let until = s["cooldown_until"].as_i64().expect("cooldown_until");
            let now = marketd_model::time::now_ns();
            assert!(until >= before + second && until <= now + second, "{s}");
            (app, mock)
        })
        .await;
    let conns = done.mock.connections();
    assert_eq!(
        conns.iter().map(|c| c.refused).collect::<Vec<_>>(),
        [Some(429), Some(429), None],
        "{conns:?}"
    );
    // No attempt before the Retry-After had passed.
    for w in conns.windows(2) {
        assert!(w[1].at - w[0].at >= Duration::from_secs(1), "{conns:?}");
    }
    // The refusals were not connections: the first one made is no reconnect.
    assert_eq!(u(&done.status, "reconnects"), 0);
    assert!(done.status["cooldown_until"].is_null(), "{}", done.status);
    done.app.stop().await;
}

#[tokio::test]
async fn binance_server_shutdown_reconnects_at_once() {
    let outage = Outage::new(
        futures_trades(),
        vec![Step::Serve {
            new: Some(30),
            then: Then::ServerShutdown,
        }],
    );
    let done = outage.run(nothing_during).await;
    assert_eq!(done.served.len(), 2);
    let conns = done.mock.connections();
    assert!(
        wait_after(&conns, 0) <= SLACK,
        "reconnected at once: {conns:?}"
    );
    let last_error = done.status["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("the server announced a shutdown"),
        "{}",
        done.status
    );
    assert_eq!(u(&done.status, "errors"), 0, "{}", done.status);
    done.app.stop().await;
}

#[tokio::test]
async fn a_restarted_server_is_reconnected_and_resubscribed() {
    let down_for = Duration::from_millis(1500);
    let outage = Outage::new(
        okx_trades(),
        vec![Step::Serve {
            new: Some(30),
            then: Then::Stay,
        }],
    );
    let done = outage
        .run(|app, mock, _id| async move {
            // Once the first connection's trades are in, the server goes
            // away (listener and connections) and comes back on its port.
            wait_until(DEADLINE, "the first 30 trades stored", || async {
                let n = stored(&app, "BTC-USDT", "okx").await.len()
                    + stored(&app, "BTC-USD-220527", "okx").await.len();
                (n >= 30).then_some(())
            })
            .await;
            mock.restart(down_for).await;
            (app, mock)
        })
        .await;
    assert_eq!(done.served.len(), 2);
    let conns = done.mock.connections();
    let waited = wait_after(&conns, 0);
    assert!(
        waited <= down_for + BACKOFF_CAP + SLACK,
        "{waited:?}: {conns:?}"
    );
    assert_eq!(u(&done.status, "errors"), 0, "{}", done.status);
    done.app.stop().await;
}

// ---------------------------------------------------------------------------
// A changed definition

#[tokio::test]
async fn a_running_connector_restarts_with_its_changed_definition() {
    let feed = futures_trades();
    let app = TestApp::spawn(|_| {}).await;
    let mock = VenueMock::start(
        feed.dialect,
        feed.frames.clone(),
        REPLAYED,
        None,
        Vec::new(),
    )
    .await;
    let mut def = definition("changing", &feed, &mock.url());
    def["symbols"] = json!(["SUSHI-USDT-PERP"]);
    let id = app.start_connector(&def).await;
    let sushi = feed.expected["SUSHI-USDT-PERP"].trades.len();
    wait_until(DEADLINE, "SUSHI's trades stored", || async {
        let n = stored(&app, "SUSHI-USDT-PERP", "binance_futures")
            .await
            .len();
        (n >= sushi).then_some(())
    })
    .await;
    assert_eq!(
        mock.connections()[0].subscriptions,
        BTreeSet::from(["sushiusdt@aggTrade".to_string()])
    );

    // A start sent to the running connector changes nothing: no restart
    // (the two connections counted below are the first and the PUT's).
    let (s, again) = app
        .post_json(&format!("/api/v1/connectors/{id}/start"), &json!({}))
        .await;
    assert_eq!(s, 200, "{again}");

    // The running connector takes the new symbol list at once.
    def["symbols"] = json!(["SUSHI-USDT-PERP", "CTK-USDT-PERP"]);
    let (s, updated, _) = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/connectors/{id}"),
            Some(&app.write_key),
            Some(&def),
        )
        .await;
    assert_eq!(s, 200, "{updated}");
    let newest = wait_until(DEADLINE, "a connection with the new symbols", || async {
        let conns = mock.connections();
        let last = conns.last().cloned()?;
        (last.subscriptions == feed.subscriptions).then_some(conns)
    })
    .await;
    assert_eq!(newest.len(), 2, "{newest:?}");
    assert!(newest[0].ended.is_some(), "the old connection was closed");
    assert_trades_stored(&app, &feed).await;
    let s = status_when(&app, &id, "running again", |s| s["state"] == "running").await;
    assert_eq!(u(&s, "errors"), 0, "{s}");
    app.stop().await;
}

// ---------------------------------------------------------------------------
// The mock itself: Binance's raw endpoint with a live SUBSCRIBE

#[tokio::test]
async fn the_mock_answers_a_live_binance_subscribe_on_the_raw_endpoint() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let feed = futures_trades();
    let mock = VenueMock::start(Dialect::Binance, feed.frames.clone(), 0, None, Vec::new()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{}/ws", mock.url()))
        .await
        .expect("connects");
    let subscribe = json!({"method": "SUBSCRIBE", "params": ["ctkusdt@aggTrade"], "id": 7});
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let mut texts = Vec::new();
    while texts.len() < 3 {
        match tokio::time::timeout(DEADLINE, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => texts.push(t.to_string()),
            Ok(Some(Ok(_))) => {}
            other => panic!("no answer: {other:?}"),
        }
    }
    assert_eq!(
        serde_json::from_str::<Value>(&texts[0]).unwrap(),
        json!({"result": null, "id": 7})
    );
    // Bare payloads of the subscribed stream, in the capture's order.
    let first = &feed.expected["CTK-USDT-PERP"].trades[0];
    let payload: Value = serde_json::from_str(&texts[1]).unwrap();
    assert_eq!(payload["e"], "aggTrade");
    assert_eq!(payload["s"], "CTKUSDT");
    assert_eq!(payload["a"], first.id);
    let conns = mock.connections();
    assert_eq!(conns[0].path.as_deref(), Some("/ws"));
    assert_eq!(
        conns[0].subscriptions,
        BTreeSet::from(["ctkusdt@aggTrade".to_string()])
    );
    assert_eq!(conns[0].requests, [subscribe.to_string()]);
}
