//! The venue decoders against every message of the recorded wire formats in
//! `shared/fixtures/formats` and against the recorded captures, whose tick
//! counts and decimals are computed here independently by walking the JSON.

use marketd_model::{Decimal, Symbol, Tick, TickKind};
use marketd_sources::venues::capture::{self, Direction};
use marketd_sources::venues::{
    Ack, Channel, DecodeError, Frame, Keepalive, Limit, PlanError, Venue,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

const RECEIVED: i64 = 1_700_000_000_123_456_789;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn format(name: &str) -> Value {
    let path = fixtures().join("formats").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn capture_text(name: &str) -> String {
    let path = fixtures().join("captures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("capture {}: {e}", path.display()))
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn ms(ms: i64) -> i64 {
    ms * 1_000_000
}

/// Decodes one frame, expecting data with `n` ticks of `channel`.
fn data(venue: Venue, frame: &str, channel: Channel, n: usize) -> Vec<Tick> {
    let mut out = Vec::new();
    let got = venue.decoder().decode(frame, RECEIVED, &mut out);
    assert_eq!(got.unwrap(), Frame::Data { channel, ticks: n }, "{frame}");
    assert_eq!(out.len(), n);
    out
}

/// Decodes a frame that must not produce ticks.
fn control(venue: Venue, frame: &str) -> Frame {
    let mut out = Vec::new();
    let got = venue
        .decoder()
        .decode(frame, RECEIVED, &mut out)
        .unwrap_or_else(|e| panic!("{frame}: {e}"));
    assert!(out.is_empty(), "control frame produced ticks: {frame}");
    got
}

struct Expect<'a> {
    symbol: &'a str,
    venue_symbol: &'a str,
    kind: TickKind,
    price: &'a str,
    size: &'a str,
    trade_id: Option<&'a str>,
    ts_event: i64,
}

fn check(tick: &Tick, source: &str, e: Expect<'_>) {
    assert_eq!(tick.symbol, sym(e.symbol));
    assert_eq!(&*tick.source, source);
    assert_eq!(tick.venue_symbol.as_deref(), Some(e.venue_symbol));
    assert_eq!(tick.kind, e.kind);
    assert_eq!(tick.price.to_string(), e.price, "price text (scale kept)");
    assert_eq!(tick.size.to_string(), e.size, "size text (scale kept)");
    assert_eq!(tick.trade_id.as_deref(), e.trade_id);
    assert_eq!(tick.ts_event, e.ts_event);
    assert_eq!(tick.ts_received, RECEIVED);
}

fn wrap(stream: &str, data: &Value) -> String {
    json!({ "stream": stream, "data": data }).to_string()
}

// ---------------------------------------------------------------- Binance

#[test]
fn binance_trade_current_and_legacy_raw_and_combined() {
    let f = format("binance_trade.json");
    let current = &f["message"];
    for frame in [current.to_string(), wrap("bnbbtc@trade", current)] {
        let ticks = data(Venue::Binance, &frame, Channel::Trades, 1);
        check(
            &ticks[0],
            "binance",
            Expect {
                symbol: "BNB-BTC",
                venue_symbol: "BNBBTC",
                kind: TickKind::Trade,
                price: "0.001",
                size: "100",
                trade_id: Some("12345"),
                ts_event: ms(1_672_515_782_136),
            },
        );
        assert!(ticks[0].bid.is_none() && ticks[0].ask.is_none());
    }
    // Pre-2024-06 shape: `b`/`a` are order ids (numbers) and must not be
    // mistaken for a bookTicker's prices.
    let legacy = &f["legacy_example_with_b_a_fields"]["message"];
    for frame in [legacy.to_string(), wrap("ethusdt@trade", legacy)] {
        let ticks = data(Venue::Binance, &frame, Channel::Trades, 1);
        check(
            &ticks[0],
            "binance",
            Expect {
                symbol: "ETH-USDT",
                venue_symbol: "ETHUSDT",
                kind: TickKind::Trade,
                price: "10000.19",
                size: "0.239000",
                trade_id: Some("1000000000"),
                // `T` (trade time), not `E` (event time).
                ts_event: ms(1_749_354_825_200),
            },
        );
    }
}

#[test]
fn binance_agg_trade_raw_and_combined() {
    let f = format("binance_aggTrade.json");
    let m = &f["message"];
    for frame in [m.to_string(), wrap("bnbbtc@aggTrade", m)] {
        let ticks = data(Venue::Binance, &frame, Channel::AggTrades, 1);
        check(
            &ticks[0],
            "binance",
            Expect {
                symbol: "BNB-BTC",
                venue_symbol: "BNBBTC",
                kind: TickKind::Trade,
                price: "0.001",
                size: "100",
                trade_id: Some("12345"),
                ts_event: ms(1_672_515_782_136),
            },
        );
    }
}

#[test]
fn binance_book_ticker_spot_and_futures() {
    let f = format("binance_bookTicker.json");
    let spot = &f["message"];
    for frame in [spot.to_string(), wrap("bnbusdt@bookTicker", spot)] {
        let t = &data(Venue::Binance, &frame, Channel::Quotes, 1)[0];
        check(
            t,
            "binance",
            Expect {
                symbol: "BNB-USDT",
                venue_symbol: "BNBUSDT",
                kind: TickKind::Quote,
                price: "25.358550000",
                size: "0",
                trade_id: None,
                // Spot bookTicker has no time: the receive time stands in.
                ts_event: RECEIVED,
            },
        );
        assert_eq!(t.bid.unwrap().to_string(), "25.35190000");
        assert_eq!(t.ask.unwrap().to_string(), "25.36520000");
        assert_eq!(t.sequence, Some(400_900_217));
    }
    let fut = &f["futures_example"]["message"];
    for frame in [fut.to_string(), wrap("btcusdt@bookTicker", fut)] {
        let t = &data(Venue::BinanceFutures, &frame, Channel::Quotes, 1)[0];
        check(
            t,
            "binance_futures",
            Expect {
                symbol: "BTC-USDT-PERP",
                venue_symbol: "BTCUSDT",
                kind: TickKind::Quote,
                price: "16858.950",
                size: "0",
                trade_id: None,
                ts_event: ms(1_671_621_244_670),
            },
        );
        assert_eq!(t.bid, Some(dec("16858.90")));
        assert_eq!(t.ask, Some(dec("16859.00")));
        assert_eq!(t.sequence, Some(2_286_618_712_950));
    }
}

#[test]
fn binance_combined_stream_captured_messages() {
    let f = format("binance_combined_stream.json");
    let msgs = f["captured_messages"].as_array().unwrap();
    let agg = data(Venue::Binance, &msgs[0].to_string(), Channel::AggTrades, 1);
    check(
        &agg[0],
        "binance",
        Expect {
            symbol: "NKN-USDT",
            venue_symbol: "NKNUSDT",
            kind: TickKind::Trade,
            price: "0.35280000",
            size: "58.00000000",
            trade_id: Some("15683430"),
            ts_event: ms(1_633_998_523_963),
        },
    );
    let q = &data(Venue::Binance, &msgs[1].to_string(), Channel::Quotes, 1)[0];
    assert_eq!(q.symbol, sym("NKN-USDT"));
    assert_eq!(q.bid, Some(dec("0.35210000")));
    assert_eq!(q.ask, Some(dec("0.35260000")));
    assert_eq!(q.price, dec("0.35235"));
    assert_eq!(q.sequence, Some(499_869_768));
    assert_eq!(
        control(Venue::Binance, &msgs[2].to_string()),
        Frame::Ignored {
            kind: "depthUpdate".into()
        }
    );
    assert_eq!(
        control(Venue::Binance, &msgs[3].to_string()),
        Frame::Ignored {
            kind: "kline".into()
        }
    );
}

#[test]
fn binance_control_messages() {
    let f = format("binance_combined_stream.json");
    let shutdown = &f["server_shutdown_combined"]["message"];
    for (venue, frame) in [
        (Venue::Binance, shutdown.to_string()),
        (Venue::BinanceFutures, shutdown["data"].to_string()),
    ] {
        let Frame::ServerShutdown(m) = control(venue, &frame) else {
            panic!("{frame} is a serverShutdown")
        };
        assert!(m.msg.contains("1770123456789"), "{m}");
    }
    let live = &f["live_subscribe"];
    assert_eq!(
        control(Venue::Binance, &live["response"].to_string()),
        Frame::Ack(Ack::Response {
            id: 1,
            result: "null".into()
        })
    );
    assert_eq!(
        control(Venue::Binance, &live["list_response"].to_string()),
        Frame::Ack(Ack::Response {
            id: 3,
            result: r#"["btcusdt@aggTrade"]"#.into()
        })
    );
    for (i, e) in live["error_examples"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let Frame::Error(m) = control(Venue::Binance, &e.to_string()) else {
            panic!("{e} is an error")
        };
        assert_eq!(m.code.as_deref(), Some(["2", "3"][i]));
        assert_eq!(m.msg, e["msg"].as_str().unwrap());
    }
    // The nested error shape and the limits.
    let Frame::Error(m) = control(
        Venue::Binance,
        r#"{"error":{"code":2,"msg":"Invalid request: unknown variant"},"id":7}"#,
    ) else {
        panic!("nested error")
    };
    assert_eq!(m.code.as_deref(), Some("2"));
    assert_eq!(
        control(
            Venue::BinanceFutures,
            r#"{"code":-1003,"msg":"Too much request weight used"}"#
        ),
        Frame::Limit {
            limit: Limit::Requests,
            error: marketd_sources::venues::VenueMessage {
                code: Some("-1003".into()),
                msg: "Too much request weight used".into()
            }
        }
    );
    assert!(matches!(
        control(
            Venue::Binance,
            r#"{"code":1,"msg":"Too many connections from this IP"}"#
        ),
        Frame::Limit {
            limit: Limit::Connections,
            ..
        }
    ));
    // Other events are classified by name, stream-only payloads by stream.
    assert_eq!(
        control(
            Venue::BinanceFutures,
            r#"{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1.0","r":"0.1","T":2}"#
        ),
        Frame::Ignored {
            kind: "markPriceUpdate".into()
        }
    );
    assert_eq!(
        control(
            Venue::Binance,
            r#"{"stream":"btcusdt@depth5","data":{"lastUpdateId":1,"bids":[],"asks":[]}}"#
        ),
        Frame::Ignored {
            kind: "depth5".into()
        }
    );
}

#[test]
fn binance_plans_and_frames() {
    let syms = [sym("NKN-USDT"), sym("BLZ-ETH")];
    let plan = Venue::Binance
        .plan(
            Venue::Binance.default_ws_url(),
            &syms,
            &[Channel::AggTrades, Channel::Quotes],
        )
        .unwrap();
    assert_eq!(
        plan.url,
        "wss://stream.binance.com:9443/stream?streams=nknusdt@aggTrade/nknusdt@bookTicker/blzeth@aggTrade/blzeth@bookTicker"
    );
    assert!(plan.frames.is_empty());
    // The connect URL of the recorded futures session, for its trade streams.
    let header = capture_text("BINANCE_FUTURES.ws.1.0");
    let recorded = header.lines().next().unwrap();
    let perps: Vec<Symbol> = ["SUSHI", "AKRO", "KEEP", "CTK"]
        .iter()
        .map(|b| sym(&format!("{b}-USDT-PERP")))
        .collect();
    let plan = Venue::BinanceFutures
        .plan("wss://fstream.binance.com/", &perps, &[Channel::AggTrades])
        .unwrap();
    assert!(
        recorded.starts_with(&plan.url),
        "{} vs {recorded}",
        plan.url
    );
    // SUBSCRIBE on an open connection, as in the docs' example.
    let frames = Venue::Binance
        .subscribe_frames(&[sym("BTC-USDT")], &[Channel::AggTrades], 1)
        .unwrap();
    let f = format("binance_combined_stream.json");
    let mut expected = f["live_subscribe"]["request"].clone();
    expected["params"] = json!(["btcusdt@aggTrade"]);
    assert_eq!(serde_json::from_str::<Value>(&frames[0]).unwrap(), expected);
    let unsub = Venue::Binance
        .unsubscribe_frames(&[sym("BTC-USDT")], &[Channel::Trades], 312)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&unsub[0]).unwrap(),
        json!({"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 312})
    );
    // Derivatives and spot never mix.
    assert!(matches!(
        Venue::Binance.plan(
            Venue::Binance.default_ws_url(),
            &[sym("BTC-USDT-PERP")],
            &[Channel::Trades]
        ),
        Err(PlanError::Symbol { .. })
    ));
    assert!(matches!(
        Venue::BinanceFutures.venue_symbol(&sym("BTC-USDT")),
        Err(PlanError::Symbol { .. })
    ));
    assert_eq!(
        Venue::BinanceFutures
            .venue_symbol(&sym("BTC-USDT-240628"))
            .unwrap(),
        "btcusdt_240628"
    );
    let many: Vec<Symbol> = (0..201).map(|i| sym(&format!("X{i}-USDT-PERP"))).collect();
    assert_eq!(
        Venue::BinanceFutures.plan("wss://fstream.binance.com", &many, &[Channel::Trades]),
        Err(PlanError::TooManyStreams {
            venue: "binance_futures",
            max: 200,
            asked: 201
        })
    );
}

// -------------------------------------------------------------------- OKX

#[test]
fn okx_trades() {
    let f = format("okx_trades.json");
    let pushes = f["push_captured"].as_array().unwrap();
    let t = &data(Venue::Okx, &pushes[0].to_string(), Channel::Trades, 1)[0];
    check(
        t,
        "okx",
        Expect {
            symbol: "BTC-USD-220527",
            venue_symbol: "BTC-USD-220527",
            kind: TickKind::Trade,
            price: "30218.8",
            size: "1",
            trade_id: Some("7849"),
            ts_event: ms(1_652_459_199_958),
        },
    );
    let t = &data(Venue::Okx, &pushes[1].to_string(), Channel::Trades, 1)[0];
    check(
        t,
        "okx",
        Expect {
            symbol: "UNI-USD-PERP",
            venue_symbol: "UNI-USD-SWAP",
            kind: TickKind::Trade,
            price: "5.123",
            size: "100",
            trade_id: Some("12883020"),
            ts_event: ms(1_652_459_215_150),
        },
    );
    let t = &data(
        Venue::Okx,
        &f["push_nautilus_fixture_ws_trades_json"].to_string(),
        Channel::Trades,
        1,
    )[0];
    check(
        t,
        "okx",
        Expect {
            symbol: "BTC-USD",
            venue_symbol: "BTC-USD",
            kind: TickKind::Trade,
            price: "42219.9",
            size: "0.12060306",
            trade_id: Some("130639474"),
            ts_event: ms(1_630_048_897_897),
        },
    );
    let t = &data(
        Venue::Okx,
        &f["push_barter_docs_example_option"].to_string(),
        Channel::Trades,
        1,
    )[0];
    check(
        t,
        "okx",
        Expect {
            symbol: "BTC-USD-231229-35000-C",
            venue_symbol: "BTC-USD-231229-35000-C",
            kind: TickKind::Trade,
            price: "0.1525",
            size: "21",
            trade_id: Some("4"),
            ts_event: ms(1_681_473_269_025),
        },
    );
    // Several trades in one push, in order.
    let two = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[
        {"instId":"BTC-USDT","tradeId":"1","px":"1.5","sz":"2","side":"buy","ts":"1"},
        {"instId":"BTC-USDT","tradeId":"2","px":"1.6","sz":"3","side":"sell","ts":"2"}]}"#;
    let ticks = data(Venue::Okx, two, Channel::Trades, 2);
    assert_eq!(ticks[1].trade_id.as_deref(), Some("2"));
    assert_eq!(ticks[1].ts_event, ms(2));
}

#[test]
fn okx_tickers() {
    let f = format("okx_tickers.json");
    let pushes = f["push_captured"].as_array().unwrap();
    let cases = [
        (
            &pushes[0],
            "BTC-USD-220527",
            "BTC-USD-220527",
            "30210.4",
            "30220.1",
            "30215.25",
            1_652_459_223_003,
        ),
        (
            &pushes[1],
            "UNI-USD-PERP",
            "UNI-USD-SWAP",
            "5.134",
            "5.142",
            "5.138",
            1_652_459_223_143,
        ),
        (
            &f["push_nautilus_fixture_ws_tickers_json"],
            "BTC-USDT",
            "BTC-USDT",
            "8888.88",
            "9999.99",
            "9444.435",
            1_597_026_383_085,
        ),
    ];
    for (push, symbol, venue_symbol, bid, ask, mid, ts) in cases {
        let t = &data(Venue::Okx, &push.to_string(), Channel::Quotes, 1)[0];
        assert_eq!(t.symbol, sym(symbol));
        assert_eq!(t.venue_symbol.as_deref(), Some(venue_symbol));
        assert_eq!(t.kind, TickKind::Quote);
        assert_eq!(t.bid.unwrap().to_string(), bid);
        assert_eq!(t.ask.unwrap().to_string(), ask);
        assert_eq!(t.price, dec(mid));
        assert_eq!(t.size, Decimal::ZERO);
        assert_eq!(t.ts_event, ms(ts));
        assert_eq!(t.trade_id, None);
    }
    // One side empty: the last price; nothing at all: no tick.
    let one_sided = r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"10.5","bidPx":"","askPx":"11","ts":"5"}]}"#;
    let t = &data(Venue::Okx, one_sided, Channel::Quotes, 1)[0];
    assert_eq!(
        (t.price, t.bid, t.ask),
        (dec("10.5"), None, Some(dec("11")))
    );
    let empty = r#"{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","last":"","bidPx":"","askPx":"","ts":"5"}]}"#;
    data(Venue::Okx, empty, Channel::Quotes, 0);
}

#[test]
fn okx_control_messages() {
    let f = format("okx_control_messages.json");
    let sub = Frame::Ack(Ack::Subscribed("trades:BTC-USDT".into()));
    assert_eq!(
        control(Venue::Okx, &f["subscribe_ack_captured_2022"].to_string()),
        sub
    );
    assert_eq!(
        control(
            Venue::Okx,
            &f["subscribe_ack_current_shape_from_nautilus_mock"].to_string()
        ),
        sub
    );
    let Frame::Error(e) = control(
        Venue::Okx,
        &f["subscribe_failure_from_nautilus_mock"].to_string(),
    ) else {
        panic!("a failed subscription is an error")
    };
    assert_eq!(
        (e.code.as_deref(), e.msg.as_str()),
        (Some("60019"), "Subscription failed")
    );
    assert_eq!(
        control(
            Venue::Okx,
            &f["unsubscribe_ack_from_nautilus_mock"].to_string()
        ),
        Frame::Ack(Ack::Unsubscribed("trades:BTC-USDT".into()))
    );
    let Frame::Error(e) = control(Venue::Okx, &f["error"].to_string()) else {
        panic!("error event")
    };
    assert_eq!(e.code.as_deref(), Some("60012"));
    assert!(
        e.msg.starts_with("Invalid request: {\"op\": \"subscribe\""),
        "{e}"
    );
    assert_eq!(
        control(Venue::Okx, f["ping_client_to_server"].as_str().unwrap()),
        Frame::Ping {
            reply: Some("pong")
        }
    );
    assert_eq!(
        control(Venue::Okx, f["pong_server_to_client"].as_str().unwrap()),
        Frame::Pong
    );
    assert_eq!(
        control(Venue::Okx, &f["login_ack_from_nautilus_mock"].to_string()),
        Frame::Ack(Ack::Login)
    );
    // Limits, the service-upgrade notice, and channels we do not read.
    assert!(matches!(
        control(
            Venue::Okx,
            r#"{"event":"error","code":"60014","msg":"Requests too frequent."}"#
        ),
        Frame::Limit {
            limit: Limit::Requests,
            ..
        }
    ));
    assert!(matches!(
        control(
            Venue::Okx,
            r#"{"event":"error","code":"60020","msg":"APIKey subscription amount exceeds the limit 100."}"#
        ),
        Frame::Limit {
            limit: Limit::Subscriptions,
            ..
        }
    ));
    assert!(matches!(
        control(
            Venue::Okx,
            r#"{"event":"channel-conn-count-error","channel":"orders","connCount":"30","connId":"a"}"#
        ),
        Frame::Limit {
            limit: Limit::Connections,
            ..
        }
    ));
    assert!(matches!(
        control(
            Venue::Okx,
            r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a"}"#
        ),
        Frame::ServerShutdown(_)
    ));
    assert_eq!(
        control(
            Venue::Okx,
            r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["1","2","0","1"]],"bids":[],"ts":"1","checksum":5}]}"#
        ),
        Frame::Ignored {
            kind: "books".into()
        }
    );
    assert_eq!(
        control(
            Venue::Okx,
            r#"{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1597026383085","8533.02","8553.74","8527.17","8548.26","45247","529.5858061"]]}"#
        ),
        Frame::Ignored {
            kind: "candle1m".into()
        }
    );
}

#[test]
fn okx_plans_match_the_recorded_session() {
    let text = capture_text("OKX.ws.1.0");
    let sent: Vec<_> = capture::parse(&text)
        .unwrap()
        .into_iter()
        .filter(|r| r.direction == Direction::Sent)
        .collect();
    let syms = [sym("BTC-USD-220527"), sym("UNI-USD-PERP"), sym("BTC-USDT")];
    let plan = Venue::Okx
        .plan(
            Venue::Okx.default_ws_url(),
            &syms,
            &[Channel::Quotes, Channel::Trades],
        )
        .unwrap();
    assert_eq!(plan.url, sent[1].url);
    assert_eq!(plan.frames.len(), 1);
    let ours: Value = serde_json::from_str(&plan.frames[0]).unwrap();
    let recorded: Value = serde_json::from_str(sent[1].text).unwrap();
    assert_eq!(ours, recorded);
    let f = format("okx_trades.json");
    let frames = Venue::Okx
        .subscribe_frames(&syms, &[Channel::Trades], 0)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&frames[0]).unwrap(),
        f["subscribe_request_captured"]
    );
    assert_eq!(
        Venue::Okx.plan(Venue::Okx.default_ws_url(), &syms, &[Channel::AggTrades]),
        Err(PlanError::UnsupportedChannel {
            venue: "okx",
            channel: Channel::AggTrades
        })
    );
    // Many instruments: split below OKX's 64 KB frame limit, none lost.
    let many: Vec<Symbol> = (0..3000).map(|i| sym(&format!("C{i}-USDT-PERP"))).collect();
    let frames = Venue::Okx
        .subscribe_frames(&many, &[Channel::Trades], 0)
        .unwrap();
    assert!(frames.len() > 1 && frames.iter().all(|f| f.len() < 64 * 1024));
    let args: usize = frames
        .iter()
        .map(|f| {
            serde_json::from_str::<Value>(f).unwrap()["args"]
                .as_array()
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(args, 3000);
}

// ---------------------------------------------------------------- Finnhub

#[test]
fn finnhub_trades_and_control() {
    let f = format("finnhub_ws_trade.json");
    for key in [
        "trade_message_docs_sample",
        "trade_message_with_conditions_field",
    ] {
        let t = &data(Venue::Finnhub, &f[key].to_string(), Channel::Trades, 1)[0];
        check(
            t,
            "finnhub",
            Expect {
                symbol: "BTC-USDT",
                venue_symbol: "BINANCE:BTCUSDT",
                kind: TickKind::Trade,
                price: "7296.89",
                size: "0.011467",
                trade_id: None,
                ts_event: ms(1_575_526_691_134),
            },
        );
    }
    assert_eq!(
        control(Venue::Finnhub, &f["ping_message"].to_string()),
        Frame::Ping { reply: None }
    );
    let Frame::Limit { limit, error } = control(Venue::Finnhub, &f["error_message"].to_string())
    else {
        panic!("too many symbols is a limit")
    };
    assert_eq!(limit, Limit::Subscriptions);
    assert_eq!(error.msg, "Subscribing to too many symbols");
    // The raw number text is kept exactly, several trades per message, and
    // a price update without volume is a `last` tick.
    let frame = r#"{"data":[{"p":261.7400,"s":"AAPL","t":1575526691134,"v":100},{"p":1.1e2,"s":"OANDA:EUR_USD","t":1575526691135,"v":0}],"type":"trade"}"#;
    let ticks = data(Venue::Finnhub, frame, Channel::Trades, 2);
    assert_eq!(ticks[0].price.to_string(), "261.7400");
    assert_eq!(
        (ticks[0].symbol.as_str(), ticks[0].kind),
        ("AAPL", TickKind::Trade)
    );
    assert_eq!(ticks[1].price, dec("110"));
    assert_eq!(
        (ticks[1].symbol.as_str(), ticks[1].kind),
        ("EUR-USD", TickKind::Last)
    );
    assert_eq!(
        control(
            Venue::Finnhub,
            r#"{"type":"news","data":[{"headline":"x"}]}"#
        ),
        Frame::Ignored {
            kind: "news".into()
        }
    );
}

#[test]
fn finnhub_subscribe_frames() {
    let f = format("finnhub_ws_trade.json");
    let plan = Venue::Finnhub
        .plan(
            Venue::Finnhub.default_ws_url(),
            &[sym("AAPL"), sym("BTC-USDT")],
            &[Channel::Trades],
        )
        .unwrap();
    assert_eq!(plan.url, "wss://ws.finnhub.io");
    let frames: Vec<Value> = plan
        .frames
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
    assert_eq!(
        frames,
        [
            f["subscribe_request"].clone(),
            f["subscribe_request_crypto"].clone()
        ]
    );
    let unsub = Venue::Finnhub
        .unsubscribe_frames(&[sym("AAPL")], &[Channel::Trades], 0)
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&unsub[0]).unwrap(),
        f["unsubscribe_request"]
    );
    assert!(
        Venue::Finnhub
            .plan("wss://ws.finnhub.io", &[sym("AAPL")], &[Channel::Quotes])
            .is_err()
    );
}

// ------------------------------------------------------ registry, symbols

#[test]
fn registry_urls_and_keepalive() {
    for v in Venue::ALL {
        assert_eq!(Venue::from_name(v.name()).unwrap(), v);
        assert_eq!(v.to_string().parse::<Venue>().unwrap(), v);
    }
    assert_eq!(
        Venue::from_name("kraken"),
        Err(PlanError::UnknownVenue("kraken".into()))
    );
    assert_eq!(
        Venue::Binance.default_ws_url(),
        "wss://stream.binance.com:9443"
    );
    assert_eq!(
        Venue::BinanceFutures.default_ws_url(),
        "wss://fstream.binance.com"
    );
    assert_eq!(
        Venue::Okx.default_ws_url(),
        "wss://ws.okx.com:8443/ws/v5/public"
    );
    assert_eq!(Venue::Finnhub.default_ws_url(), "wss://ws.finnhub.io");
    assert_eq!(Venue::Binance.default_rest_url(), "https://api.binance.com");
    assert_eq!(
        Venue::BinanceFutures.default_rest_url(),
        "https://fapi.binance.com"
    );
    assert_eq!(Venue::Okx.default_rest_url(), "https://www.okx.com");
    assert_eq!(Venue::Binance.keepalive(), Keepalive::ControlFrames);
    assert!(matches!(
        Venue::Okx.keepalive(),
        Keepalive::ClientTextPing { ping: "ping", pong: "pong", idle } if idle.as_secs() < 30
    ));
    assert_eq!(Venue::Finnhub.keepalive(), Keepalive::ServerHeartbeat);
    for c in Channel::ALL {
        assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
    }
    assert_eq!(
        ["trades", "agg_trades", "quotes"].map(|s| Channel::from_name(s).unwrap()),
        Channel::ALL
    );
    assert!(
        Venue::Okx
            .plan(
                "https://www.okx.com",
                &[sym("BTC-USDT")],
                &[Channel::Trades]
            )
            .is_err()
    );
    assert_eq!(
        Venue::Okx.plan("wss://x", &[], &[Channel::Trades]),
        Err(PlanError::Empty("symbol"))
    );
}

#[test]
fn derivatives_never_collide_with_spot() {
    let canon = |v: Venue, s: &str| v.canonical_symbol(s).unwrap().to_string();
    assert_eq!(canon(Venue::Binance, "BTCUSDT"), "BTC-USDT");
    assert_eq!(canon(Venue::BinanceFutures, "BTCUSDT"), "BTC-USDT-PERP");
    assert_eq!(
        canon(Venue::BinanceFutures, "BTCUSDT_240628"),
        "BTC-USDT-240628"
    );
    assert_eq!(
        canon(Venue::BinanceFutures, "1000SHIBUSDT"),
        "1000SHIB-USDT-PERP"
    );
    assert_eq!(canon(Venue::Okx, "BTC-USDT"), "BTC-USDT");
    assert_eq!(canon(Venue::Okx, "BTC-USDT-SWAP"), "BTC-USDT-PERP");
    assert_eq!(canon(Venue::Okx, "BTC-USD-220527"), "BTC-USD-220527");
    assert_eq!(canon(Venue::Finnhub, "BINANCE:BTCUSDT"), "BTC-USDT");
    assert_eq!(canon(Venue::Finnhub, "AAPL"), "AAPL");
    assert!(Venue::Binance.canonical_symbol("BTC-USDT-SWAP").is_err());
    assert!(
        Venue::BinanceFutures
            .canonical_symbol("BTCUSDT_JUNK")
            .is_err()
    );
    // And back, for subscriptions.
    let back = |v: Venue, s: &str| v.venue_symbol(&sym(s)).unwrap();
    assert_eq!(back(Venue::Binance, "BTC-USDT"), "btcusdt");
    assert_eq!(back(Venue::BinanceFutures, "BTC-USDT-PERP"), "btcusdt");
    assert_eq!(back(Venue::Okx, "BTC-USDT"), "BTC-USDT");
    assert_eq!(back(Venue::Okx, "BTC-USDT-PERP"), "BTC-USDT-SWAP");
    assert_eq!(back(Venue::Okx, "BTC-USD-220527"), "BTC-USD-220527");
    assert_eq!(back(Venue::Finnhub, "BTC-USDT"), "BINANCE:BTCUSDT");
    assert_eq!(back(Venue::Finnhub, "AAPL"), "AAPL");
    assert!(Venue::Finnhub.venue_symbol(&sym("BTC-USDT-PERP")).is_err());
}

// ---------------------------------------------------------------- garbage

/// Every fixture message of every venue, as frames.
fn all_fixture_frames() -> Vec<(Venue, String)> {
    let b = format("binance_combined_stream.json");
    let mut frames = vec![
        (
            Venue::Binance,
            format("binance_trade.json")["message"].to_string(),
        ),
        (
            Venue::Binance,
            format("binance_aggTrade.json")["message"].to_string(),
        ),
        (
            Venue::Binance,
            format("binance_bookTicker.json")["message"].to_string(),
        ),
        (
            Venue::Okx,
            format("okx_trades.json")["push_captured"][0].to_string(),
        ),
        (
            Venue::Okx,
            format("okx_tickers.json")["push_captured"][0].to_string(),
        ),
        (
            Venue::Okx,
            format("okx_control_messages.json")["error"].to_string(),
        ),
        (
            Venue::Finnhub,
            format("finnhub_ws_trade.json")["trade_message_docs_sample"].to_string(),
        ),
        (
            Venue::Finnhub,
            format("finnhub_ws_trade.json")["error_message"].to_string(),
        ),
        (Venue::Binance, b["live_subscribe"]["response"].to_string()),
    ];
    for m in b["captured_messages"].as_array().unwrap() {
        frames.push((Venue::Binance, m.to_string()));
    }
    frames
}

#[test]
fn garbage_and_truncated_frames_are_errors_not_panics() {
    for v in Venue::ALL {
        let mut d = v.decoder();
        let mut out = Vec::new();
        for junk in [
            "",
            "   ",
            "{",
            "}",
            "null",
            "42",
            "[1,2,3]",
            "not json at all",
            "\u{0}\u{1}\u{2}\u{fffd}\u{7f}binary",
            "{}",
            r#"{"foo":1}"#,
        ] {
            let e = d.decode(junk, RECEIVED, &mut out).unwrap_err();
            assert!(e.to_string().starts_with(v.name()), "{e}");
        }
        assert!(out.is_empty());
    }
    // Every strict prefix of every fixture message.
    for (venue, frame) in all_fixture_frames() {
        let mut d = venue.decoder();
        let mut out = Vec::new();
        d.decode(&frame, RECEIVED, &mut out).unwrap();
        let before = out.len();
        for (i, _) in frame.char_indices().skip(1) {
            assert!(
                d.decode(&frame[..i], RECEIVED, &mut out).is_err(),
                "{venue}: prefix {:?} accepted",
                &frame[..i]
            );
        }
        assert_eq!(out.len(), before, "a failed frame appended ticks");
    }
}

#[test]
fn bad_fields_are_named() {
    let mut out = Vec::new();
    let mut d = Venue::Binance.decoder();
    let e = d
        .decode(
            r#"{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1.0"}}"#,
            RECEIVED,
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::MissingField { field: "q", .. }),
        "{e}"
    );
    let e = d
        .decode(
            r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"abc","q":"1","T":1}"#,
            RECEIVED,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(e, DecodeError::BadField { field: "p", .. }), "{e}");
    assert!(e.to_string().contains("\"abc\""), "{e}");
    let e = d
        .decode(
            r#"{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":18446744073709551615}"#,
            RECEIVED,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(e, DecodeError::BadField { field: "T", .. }), "{e}");
    let e = d
        .decode(
            r#"{"e":"aggTrade","s":"BTC/USDT!","a":1,"p":"1","q":"1","T":1}"#,
            RECEIVED,
            &mut out,
        )
        .unwrap_err();
    assert!(matches!(e, DecodeError::Symbol { .. }), "{e}");
    let e = d
        .decode(r#"{"u":1,"s":"BTCUSDT","b":"79228162514264337593543950335","B":"1","a":"79228162514264337593543950335","A":"1"}"#, RECEIVED, &mut out)
        .unwrap_err();
    assert!(matches!(e, DecodeError::BadField { .. }), "{e}");
    // A bad entry fails the whole push: nothing of it is appended.
    let mut okx = Venue::Okx.decoder();
    let e = okx
        .decode(
            r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1","px":"1","sz":"1","ts":"1"},{"instId":"BTC-USDT","tradeId":"2","px":"1","sz":"1","ts":"x"}]}"#,
            RECEIVED,
            &mut out,
        )
        .unwrap_err();
    assert!(
        matches!(e, DecodeError::BadField { field: "ts", .. }),
        "{e}"
    );
    assert!(out.is_empty());
}

// --------------------------------------------------------------- captures

/// What the decoder made of a capture, per channel, plus the frames it
/// classified as ignored.
#[derive(Debug, Default)]
struct Tally {
    ticks: BTreeMap<&'static str, Vec<Tick>>,
    ignored: BTreeMap<String, usize>,
    acks: usize,
}

fn decode_capture(venue: Venue, name: &str) -> (String, Tally) {
    let text = capture_text(name);
    let mut tally = Tally::default();
    let mut d = venue.decoder();
    let mut out = Vec::new();
    for rec in capture::parse(&text).unwrap() {
        if rec.direction != Direction::Received {
            continue;
        }
        match d
            .decode(rec.text, rec.ts_ns, &mut out)
            .unwrap_or_else(|e| panic!("{name}:{}: {e}", rec.line))
        {
            Frame::Data { channel, ticks } => {
                assert_eq!(ticks, out.len());
                assert!(out.iter().all(|t| t.ts_received == rec.ts_ns));
                tally
                    .ticks
                    .entry(channel.as_str())
                    .or_default()
                    .append(&mut out);
            }
            Frame::Ignored { kind } => *tally.ignored.entry(kind).or_default() += 1,
            Frame::Ack(_) => tally.acks += 1,
            other => panic!("{name}:{}: unexpected {other:?}", rec.line),
        }
    }
    (text, tally)
}

/// The received payloads of a capture as JSON values, read independently of
/// the capture module (split at the first `: ` of lines starting with a digit).
fn received_values(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .map(|l| serde_json::from_str(l.split_once(": ").unwrap().1).unwrap())
        .collect()
}

/// Expected ticks of a Binance capture: (stream suffix, symbol, fields).
fn binance_expected(text: &str, suffix: &str) -> Vec<Value> {
    received_values(text)
        .into_iter()
        .filter(|v| v["stream"].as_str().unwrap().ends_with(suffix))
        .map(|v| v["data"].clone())
        .collect()
}

fn check_binance_capture(venue: Venue, name: &str, aggs: usize, quotes: usize) {
    let (text, tally) = decode_capture(venue, name);
    let agg = binance_expected(&text, "@aggTrade");
    let book = binance_expected(&text, "@bookTicker");
    assert_eq!(
        (agg.len(), book.len()),
        (aggs, quotes),
        "{name} independent counts"
    );
    let got_agg = &tally.ticks["agg_trades"];
    let got_book = &tally.ticks["quotes"];
    assert_eq!(got_agg.len(), agg.len(), "{name} aggTrade ticks");
    assert_eq!(got_book.len(), book.len(), "{name} bookTicker ticks");
    assert!(!tally.ticks.contains_key("trades"));
    for (t, v) in got_agg.iter().zip(&agg) {
        assert_eq!(t.kind, TickKind::Trade);
        assert_eq!(t.price.to_string(), v["p"].as_str().unwrap());
        assert_eq!(t.size.to_string(), v["q"].as_str().unwrap());
        assert_eq!(t.trade_id, Some(v["a"].as_u64().unwrap().to_string()));
        assert_eq!(t.ts_event, ms(v["T"].as_i64().unwrap()));
        assert_eq!(t.venue_symbol.as_deref(), v["s"].as_str());
    }
    for (t, v) in got_book.iter().zip(&book) {
        assert_eq!(t.kind, TickKind::Quote);
        assert_eq!(t.bid.unwrap().to_string(), v["b"].as_str().unwrap());
        assert_eq!(t.ask.unwrap().to_string(), v["a"].as_str().unwrap());
        assert_eq!(t.sequence, v["u"].as_u64());
        if let Some(ts) = v["T"].as_i64() {
            assert_eq!(t.ts_event, ms(ts));
        }
    }
    // Everything else was classified, not decoded as data.
    let depth = binance_expected(&text, "@100ms").len();
    let kline = binance_expected(&text, "@kline_1m").len();
    assert_eq!(tally.ignored.get("depthUpdate"), Some(&depth));
    assert_eq!(tally.ignored.get("kline"), Some(&kline));
    assert_eq!(tally.acks, 0);
}

#[test]
fn binance_spot_capture() {
    check_binance_capture(Venue::Binance, "BINANCE.ws.1.0", 2, 84);
    let (_, tally) = decode_capture(Venue::Binance, "BINANCE.ws.1.0");
    let first = &tally.ticks["agg_trades"][0];
    assert_eq!(first.symbol, sym("NKN-USDT"));
    assert_eq!(first.price.to_string(), "0.35280000");
}

#[test]
fn binance_futures_capture() {
    check_binance_capture(Venue::BinanceFutures, "BINANCE_FUTURES.ws.1.0", 91, 613);
    let (_, tally) = decode_capture(Venue::BinanceFutures, "BINANCE_FUTURES.ws.1.0");
    let symbols: std::collections::BTreeSet<_> = tally.ticks["quotes"]
        .iter()
        .map(|t| t.symbol.to_string())
        .collect();
    assert_eq!(
        symbols.into_iter().collect::<Vec<_>>(),
        [
            "AKRO-USDT-PERP",
            "CTK-USDT-PERP",
            "KEEP-USDT-PERP",
            "SUSHI-USDT-PERP"
        ]
    );
}

#[test]
fn okx_capture() {
    let (text, tally) = decode_capture(Venue::Okx, "OKX.ws.1.0");
    let values = received_values(&text);
    let entries = |channel: &str| -> Vec<Value> {
        values
            .iter()
            .filter(|v| v.get("event").is_none() && v["arg"]["channel"] == channel)
            .flat_map(|v| v["data"].as_array().unwrap().clone())
            .collect()
    };
    let trades = entries("trades");
    let tickers = entries("tickers");
    let books = values
        .iter()
        .filter(|v| v.get("event").is_none() && v["arg"]["channel"] == "books")
        .count();
    let acks = values.iter().filter(|v| v["event"] == "subscribe").count();
    assert_eq!(tally.ticks["trades"].len(), trades.len());
    assert_eq!(tally.ticks["quotes"].len(), tickers.len());
    assert_eq!(tally.ignored.get("books"), Some(&books));
    assert_eq!(tally.acks, acks);
    for (t, v) in tally.ticks["trades"].iter().zip(&trades) {
        assert_eq!(t.price.to_string(), v["px"].as_str().unwrap());
        assert_eq!(t.size.to_string(), v["sz"].as_str().unwrap());
        assert_eq!(t.trade_id.as_deref(), v["tradeId"].as_str());
        assert_eq!(t.ts_event, ms(v["ts"].as_str().unwrap().parse().unwrap()));
    }
    for (t, v) in tally.ticks["quotes"].iter().zip(&tickers) {
        assert_eq!(t.bid.unwrap().to_string(), v["bidPx"].as_str().unwrap());
        assert_eq!(t.ask.unwrap().to_string(), v["askPx"].as_str().unwrap());
        assert_eq!(t.venue_symbol.as_deref(), v["instId"].as_str());
    }
    eprintln!(
        "OKX.ws.1.0: {} trades, {} tickers, {} books, {} acks",
        trades.len(),
        tickers.len(),
        books,
        acks
    );
}

#[test]
fn http_capture_records() {
    let text = capture_text("BINANCE.http.0.0");
    let recs = capture::parse(&text).unwrap();
    assert_eq!(
        recs.len(),
        text.lines().filter(|l| !l.trim().is_empty()).count()
    );
    assert!(recs.iter().all(|r| r.direction == Direction::HttpResponse));
    assert_eq!(
        recs[0].url,
        "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"
    );
    assert_eq!(recs[0].ts_ns, 1_633_998_512_320_639_000);
    let body: Value = serde_json::from_str(recs[0].text).unwrap();
    assert_eq!(body["lastUpdateId"], 499_869_752);
}
