//! OKX v5 public channel: instrument ids, `subscribe` frames, and the
//! decoder for `trades` and `tickers` pushes (`{"arg":{..},"data":[..]}`),
//! event messages (acks, errors, notices, connection-count errors) and the
//! text `pong`. Other channels (`books`, candles, ...) are ignored.
//!
//! All OKX numbers are strings; `ts` is milliseconds since the epoch.

use super::common::{
    Items, Loose, decimal, error_or_limit, json_error, limit_in_text, millis_text_to_nanos,
    require, unrecognized,
};
use super::scan::{Scalar, Scan, once};
use super::{Ack, Channel, DecodeError, Decoder, Frame, Limit, PlanError, Venue, VenueMessage};
use marketd_model::{Decimal, Symbol, Tick, TickKind};
use serde::Deserialize;
use std::borrow::Cow;

const VENUE: &str = "okx";

/// OKX refuses subscribe frames longer than 64 KB; stay well below.
const MAX_FRAME_BYTES: usize = 60 * 1024;

/// `BTC-USDT` → `BTC-USDT`, `BTC-USDT-SWAP` → `BTC-USDT-PERP`,
/// `BTC-USD-220527` and options (`BTC-USD-231229-35000-C`) unchanged.
pub(super) fn canonical(inst_id: &str) -> Result<Symbol, String> {
    let parsed = match inst_id.split('-').collect::<Vec<_>>()[..] {
        [base, quote, "SWAP"] => Symbol::parse(&format!("{base}-{quote}-PERP")),
        [_, _] | [_, _, _] | [_, _, _, _, _] => Symbol::parse(inst_id),
        _ => return Err("not an OKX instrument id (BASE-QUOTE[-SWAP|-YYMMDD])".into()),
    };
    parsed.map_err(|e| e.to_string())
}

/// The `instId` of a canonical symbol: `-PERP` becomes `-SWAP`.
pub(super) fn inst_id(symbol: &Symbol) -> Result<String, String> {
    let s = symbol.as_str();
    match s.split('-').collect::<Vec<_>>()[..] {
        [base, quote, "PERP"] => Ok(format!("{base}-{quote}-SWAP")),
        [_, _] | [_, _, _] | [_, _, _, _, _] => Ok(s.to_string()),
        _ => Err("OKX lists BASE-QUOTE pairs, -PERP swaps, -YYMMDD futures and options".into()),
    }
}

fn channel_name(channel: Channel) -> Result<&'static str, PlanError> {
    match channel {
        Channel::Trades => Ok("trades"),
        Channel::Quotes => Ok("tickers"),
        Channel::AggTrades => Err(PlanError::UnsupportedChannel {
            venue: VENUE,
            channel,
        }),
    }
}

/// `{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},..]}`,
/// split into as many frames as the 64 KB limit needs.
pub(super) fn frames(
    op: &str,
    symbols: &[Symbol],
    channels: &[Channel],
) -> Result<Vec<String>, PlanError> {
    let mut args = Vec::with_capacity(symbols.len() * channels.len());
    for &channel in channels {
        let name = channel_name(channel)?;
        for symbol in symbols {
            let inst = Venue::Okx.venue_symbol(symbol)?;
            args.push(serde_json::json!({ "channel": name, "instId": inst }));
        }
    }
    let mut frames = Vec::new();
    let mut chunk: Vec<serde_json::Value> = Vec::new();
    let mut bytes = 0;
    for arg in args {
        let len = arg.to_string().len() + 1;
        if !chunk.is_empty() && bytes + len > MAX_FRAME_BYTES {
            frames.push(serde_json::json!({ "op": op, "args": chunk }).to_string());
            chunk = Vec::new();
            bytes = 0;
        }
        bytes += len;
        chunk.push(arg);
    }
    frames.push(serde_json::json!({ "op": op, "args": chunk }).to_string());
    Ok(frames)
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct Msg<'a> {
    #[serde(borrow)]
    event: Option<&'a str>,
    #[serde(borrow)]
    arg: Option<Arg<'a>>,
    #[serde(borrow)]
    data: Option<Items<Item<'a>>>,
    #[serde(borrow)]
    code: Option<Loose<'a>>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    /// `channel-conn-count-error` names the channel at top level.
    #[serde(borrow)]
    channel: Option<&'a str>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct Arg<'a> {
    #[serde(borrow)]
    channel: Option<&'a str>,
    #[serde(rename = "instId", borrow)]
    inst_id: Option<&'a str>,
}

/// The union of a `trades` and a `tickers` entry.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
struct Item<'a> {
    #[serde(rename = "instId", borrow)]
    inst_id: Option<&'a str>,
    #[serde(rename = "tradeId", borrow)]
    trade_id: Option<&'a str>,
    #[serde(borrow)]
    px: Option<&'a str>,
    #[serde(borrow)]
    sz: Option<&'a str>,
    #[serde(borrow)]
    ts: Option<&'a str>,
    #[serde(borrow)]
    last: Option<&'a str>,
    #[serde(rename = "bidPx", borrow)]
    bid_px: Option<&'a str>,
    #[serde(rename = "askPx", borrow)]
    ask_px: Option<&'a str>,
}

pub(super) fn decode(
    dec: &mut Decoder,
    frame: &str,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<Frame, DecodeError> {
    // The keepalive answer is bare text, not JSON.
    match frame.trim() {
        "pong" => return Ok(Frame::Pong),
        "ping" => {
            return Ok(Frame::Ping {
                reply: Some("pong"),
            });
        }
        _ => {}
    }
    // Pushes are read without serde; anything unusual goes to serde.
    let m: Msg<'_> = match push_fast(frame) {
        Some(m) => m,
        None => serde_json::from_str(frame).map_err(|e| json_error(VENUE, frame, e))?,
    };
    if let Some(event) = m.event {
        return Ok(event_frame(event, &m));
    }
    let (Some(arg), Some(data)) = (&m.arg, &m.data) else {
        return Err(unrecognized(VENUE, frame));
    };
    let channel = require(VENUE, "push", "arg.channel", arg.channel)?;
    let start = out.len();
    let channel = match channel {
        // `trades-all` (business endpoint) has the same entry shape.
        "trades" | "trades-all" => {
            for item in data.iter() {
                trade(dec, item, ts_received, out)?;
            }
            Channel::Trades
        }
        "tickers" => {
            for item in data.iter() {
                ticker(dec, item, ts_received, out)?;
            }
            Channel::Quotes
        }
        other => {
            return Ok(Frame::Ignored {
                kind: other.to_string(),
            });
        }
    };
    Ok(Frame::Data {
        channel,
        ticks: out.len() - start,
    })
}

fn message(m: &Msg<'_>) -> VenueMessage {
    VenueMessage {
        code: m.code.and_then(Loose::code),
        msg: m.msg.as_deref().unwrap_or_default().to_string(),
    }
}

fn arg_text(m: &Msg<'_>) -> String {
    match &m.arg {
        Some(Arg {
            channel: Some(c),
            inst_id: Some(i),
        }) => format!("{c}:{i}"),
        Some(Arg {
            channel: Some(c), ..
        }) => (*c).to_string(),
        _ => String::new(),
    }
}

/// Classifies `{"event":..}` messages; none of them carries data.
fn event_frame(event: &str, m: &Msg<'_>) -> Frame {
    let ok = matches!(m.code.and_then(Loose::code).as_deref(), None | Some("0"));
    match event {
        "subscribe" if ok => Frame::Ack(Ack::Subscribed(arg_text(m))),
        "unsubscribe" if ok => Frame::Ack(Ack::Unsubscribed(arg_text(m))),
        "login" if ok => Frame::Ack(Ack::Login),
        "subscribe" | "unsubscribe" | "login" | "error" => error_frame(message(m)),
        // 64008: "The connection will soon be closed for a service upgrade".
        "notice" if message(m).code.as_deref() == Some("64008") => {
            Frame::ServerShutdown(message(m))
        }
        "notice" => Frame::Notice(message(m)),
        "channel-conn-count-error" => Frame::Limit {
            limit: Limit::Connections,
            error: VenueMessage {
                code: m.code.and_then(Loose::code),
                msg: format!(
                    "too many connections to channel {}",
                    m.channel.unwrap_or("?")
                ),
            },
        },
        other => Frame::Ignored {
            kind: other.to_string(),
        },
    }
}

fn error_frame(error: VenueMessage) -> Frame {
    // Codes from OKX's WebSocket error table: 60014 requests too frequent,
    // 60020/60025 subscription amount exceeds the limit.
    let limit = match error.code.as_deref() {
        Some("60014") => Some(Limit::Requests),
        Some("60020" | "60025") => Some(Limit::Subscriptions),
        _ => limit_in_text(&error.msg),
    };
    error_or_limit(limit, error)
}

/// A push `{"arg":{..},"data":[{..},..]}` read by [`Scan`] instead of
/// serde, as [`Msg`] would have it; `None` for anything else.
fn push_fast(frame: &str) -> Option<Msg<'_>> {
    /// A field the decoder reads: a string, as serde wants it.
    fn text<'a>(slot: &mut Option<&'a str>, v: Scalar<'a>) -> Option<()> {
        let Scalar::Str(s) = v else { return None };
        once(slot, s)
    }
    let mut sc = Scan::new(frame);
    sc.eat(b'{')?;
    if sc.key()? != "arg" {
        return None;
    }
    sc.eat(b'{')?;
    let mut arg = Arg::default();
    sc.members(|k, v| match k {
        "channel" => text(&mut arg.channel, v),
        "instId" => text(&mut arg.inst_id, v),
        _ => Some(()),
    })?;
    sc.eat(b',')?;
    if sc.key()? != "data" {
        return None;
    }
    sc.eat(b'[')?;
    let mut data = Items::new();
    if !sc.eat_if(b']') {
        loop {
            sc.eat(b'{')?;
            let mut item = Item::default();
            sc.members(|k, v| match k {
                "instId" => text(&mut item.inst_id, v),
                "tradeId" => text(&mut item.trade_id, v),
                "px" => text(&mut item.px, v),
                "sz" => text(&mut item.sz, v),
                "ts" => text(&mut item.ts, v),
                "last" => text(&mut item.last, v),
                "bidPx" => text(&mut item.bid_px, v),
                "askPx" => text(&mut item.ask_px, v),
                _ => Some(()),
            })?;
            data.push(item);
            if !sc.more(b']')? {
                break;
            }
        }
    }
    sc.eat(b'}')?;
    sc.end()?;
    Some(Msg {
        arg: Some(arg),
        data: Some(data),
        ..Msg::default()
    })
}

fn trade(
    dec: &mut Decoder,
    item: &Item<'_>,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<(), DecodeError> {
    let inst = require(VENUE, "trades", "instId", item.inst_id)?;
    let price = decimal(VENUE, "px", require(VENUE, "trades", "px", item.px)?)?;
    let size = decimal(VENUE, "sz", require(VENUE, "trades", "sz", item.sz)?)?;
    // `ts`: trade time, milliseconds since the epoch, as a string.
    let ts_event = millis_text_to_nanos(VENUE, "ts", require(VENUE, "trades", "ts", item.ts)?)?;
    let trade_id = require(VENUE, "trades", "tradeId", item.trade_id)?;
    out.push(Tick {
        trade_id: Some(trade_id.to_string()),
        ..dec.tick(inst, TickKind::Trade, price, size, ts_event, ts_received)?
    });
    Ok(())
}

/// An empty side is sent as `""`.
fn optional_decimal(field: &'static str, v: Option<&str>) -> Result<Option<Decimal>, DecodeError> {
    match v {
        None | Some("") => Ok(None),
        Some(text) => decimal(VENUE, field, text).map(Some),
    }
}

/// A quote tick: the mid of `bidPx`/`askPx`, or `last` when a side is
/// empty; no tick when there is no price at all.
fn ticker(
    dec: &mut Decoder,
    item: &Item<'_>,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<(), DecodeError> {
    let inst = require(VENUE, "tickers", "instId", item.inst_id)?;
    let bid = optional_decimal("bidPx", item.bid_px)?;
    let ask = optional_decimal("askPx", item.ask_px)?;
    let price = match (bid, ask) {
        (Some(b), Some(a)) => super::binance::mid(VENUE, b, a)?,
        _ => match optional_decimal("last", item.last)? {
            Some(last) => last,
            None => return Ok(()),
        },
    };
    // `ts`: when OKX generated the ticker, milliseconds since the epoch.
    let ts_event = millis_text_to_nanos(VENUE, "ts", require(VENUE, "tickers", "ts", item.ts)?)?;
    out.push(Tick {
        bid,
        ask,
        ..dec.tick(
            inst,
            TickKind::Quote,
            price,
            Decimal::ZERO,
            ts_event,
            ts_received,
        )?
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every OKX frame the fixtures hold: the scanner reads it exactly as
    /// serde does, or leaves it to serde.
    #[test]
    fn the_fast_path_agrees_with_serde_on_every_recorded_frame() {
        use crate::venues::capture::{fixture, received_frames};
        let mut frames = received_frames("OKX.ws.1.0");
        for f in [
            "okx_trades.json",
            "okx_tickers.json",
            "okx_control_messages.json",
        ] {
            let text = std::fs::read_to_string(fixture(&format!("formats/{f}"))).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            collect_pushes(&v, &mut frames);
        }
        let mut fast = 0;
        for frame in &frames {
            if let Some(m) = push_fast(frame) {
                let serde: Msg<'_> = serde_json::from_str(frame).expect("serde reads it too");
                assert_eq!(m, serde, "{frame}");
                fast += 1;
            }
        }
        assert!(
            fast > 50,
            "only {fast} of {} frames took the fast path",
            frames.len()
        );
        for frame in [
            r#"{"arg":{"channel":"trades"},"data":[{"px":1}]}"#,
            r#"{"arg":{"channel":"trades"},"data":[{"px":"1","px":"2"}]}"#,
            r#"{"arg":{"channel":"trades"},"data":[{"px":"1\\u0030"}]}"#,
            r#"{"arg":{"channel":"trades"},"data":[1]}"#,
            r#"{"arg":{"channel":"trades"},"data":[{"px":"1"}],"extra":1}"#,
            r#"{"data":[],"arg":{"channel":"trades"}}"#,
            r#"{"event":"subscribe","arg":{"channel":"trades"}}"#,
        ] {
            assert!(push_fast(frame).is_none(), "{frame}");
        }
    }

    fn collect_pushes(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if m.contains_key("arg") => {
                out.push(serde_json::to_string(v).unwrap());
            }
            serde_json::Value::Object(m) => m.values().for_each(|x| collect_pushes(x, out)),
            serde_json::Value::Array(xs) => xs.iter().for_each(|x| collect_pushes(x, out)),
            _ => {}
        }
    }
}
