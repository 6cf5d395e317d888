//! Binance spot (`binance`) and USD-M futures (`binance_futures`) market
//! streams: symbol spelling, combined-stream URLs and `SUBSCRIBE` frames,
//! and the decoder for `trade`, `aggTrade` and `bookTicker` (raw `/ws`
//! payloads and the combined `{stream,data}` wrapper), request answers,
//! errors and `serverShutdown`. Depth, kline and other events are
//! classified and ignored.
//!
//! Timestamps are milliseconds: the plans never ask for
//! `timeUnit=MICROSECOND`.

pub mod history;
mod wire;

use super::common::{
    Loose, decimal, error_or_limit, id_text, json_error, limit_in_text, millis_to_nanos, require,
    unrecognized,
};
use super::{
    Ack, Channel, ConnectPlan, DecodeError, Decoder, Frame, PlanError, Venue, VenueMessage,
};
use marketd_model::{Decimal, Symbol, Tick, TickKind};
use wire::{Combined, Msg, Payload};

pub use history::{HistoryClient, HistoryError, Page};

/// Streams one connection may carry (spot docs: 1024; USD-M docs: 200).
const MAX_STREAMS_SPOT: usize = 1024;
const MAX_STREAMS_USDM: usize = 200;

fn all_alnum(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `BTCUSDT` → `BTC-USDT`.
pub(super) fn canonical_spot(raw: &str) -> Result<Symbol, String> {
    if !all_alnum(raw) {
        return Err("a Binance spot symbol is letters and digits (BTCUSDT)".into());
    }
    Symbol::from_crypto_venue(raw).map_err(|e| e.to_string())
}

/// `BTCUSDT` → `BTC-USDT-PERP`, `BTCUSDT_240628` → `BTC-USDT-240628`.
pub(super) fn canonical_usdm(raw: &str) -> Result<Symbol, String> {
    let (pair, suffix) = match raw.split_once('_') {
        Some((pair, suffix)) => (pair, suffix),
        None => (raw, "PERP"),
    };
    if !all_alnum(pair) {
        return Err("a Binance futures symbol is BTCUSDT or BTCUSDT_YYMMDD".into());
    }
    let suffix = if suffix.eq_ignore_ascii_case("PERP") {
        "PERP"
    } else if is_expiry(suffix) {
        suffix
    } else {
        return Err(format!("unknown contract suffix {suffix:?}"));
    };
    let spot = Symbol::from_crypto_venue(pair).map_err(|e| e.to_string())?;
    Symbol::parse(&format!("{spot}-{suffix}")).map_err(|e| e.to_string())
}

/// A dated contract's expiry as `YYMMDD`.
pub(super) fn is_expiry(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `BTC-USDT` → `btcusdt`.
pub(super) fn spot_stream_symbol(symbol: &Symbol) -> Result<String, String> {
    match symbol.as_str().split('-').collect::<Vec<_>>()[..] {
        [base, quote] if all_alnum(base) && all_alnum(quote) => {
            Ok(format!("{base}{quote}").to_ascii_lowercase())
        }
        _ => {
            Err("binance (spot) lists BASE-QUOTE pairs; derivatives are on binance_futures".into())
        }
    }
}

/// `BTC-USDT-PERP` → `btcusdt`, `BTC-USDT-240628` → `btcusdt_240628`.
pub(super) fn usdm_stream_symbol(symbol: &Symbol) -> Result<String, String> {
    match symbol.as_str().split('-').collect::<Vec<_>>()[..] {
        [base, quote, "PERP"] if all_alnum(base) && all_alnum(quote) => {
            Ok(format!("{base}{quote}").to_ascii_lowercase())
        }
        [base, quote, expiry] if all_alnum(base) && all_alnum(quote) && is_expiry(expiry) => {
            Ok(format!("{base}{quote}_{expiry}").to_ascii_lowercase())
        }
        _ => Err(
            "binance_futures lists perpetuals BASE-QUOTE-PERP and dated futures BASE-QUOTE-YYMMDD"
                .into(),
        ),
    }
}

fn stream_suffix(channel: Channel) -> &'static str {
    match channel {
        Channel::Trades => "trade",
        Channel::AggTrades => "aggTrade",
        Channel::Quotes => "bookTicker",
    }
}

/// `btcusdt@trade`, ... for every symbol and channel.
pub(super) fn stream_names(
    venue: Venue,
    symbols: &[Symbol],
    channels: &[Channel],
) -> Result<Vec<String>, PlanError> {
    let mut streams = Vec::with_capacity(symbols.len() * channels.len());
    for symbol in symbols {
        let s = venue.venue_symbol(symbol)?;
        for &channel in channels {
            streams.push(format!("{s}@{}", stream_suffix(channel)));
        }
    }
    let max = match venue {
        Venue::BinanceFutures => MAX_STREAMS_USDM,
        _ => MAX_STREAMS_SPOT,
    };
    if streams.len() > max {
        return Err(PlanError::TooManyStreams {
            venue: venue.name(),
            max,
            asked: streams.len(),
        });
    }
    Ok(streams)
}

/// A combined-stream connection: every stream in the URL, nothing to send.
pub(super) fn plan(
    venue: Venue,
    base: &str,
    symbols: &[Symbol],
    channels: &[Channel],
) -> Result<ConnectPlan, PlanError> {
    let streams = stream_names(venue, symbols, channels)?;
    // Accept a base given with the path of either endpoint.
    let root = base
        .strip_suffix("/stream")
        .or_else(|| base.strip_suffix("/ws"))
        .unwrap_or(base);
    Ok(ConnectPlan {
        url: format!("{root}/stream?streams={}", streams.join("/")),
        frames: Vec::new(),
    })
}

/// `{"method":"SUBSCRIBE","params":[...],"id":N}`.
pub(super) fn request_frame(method: &str, streams: &[String], id: u64) -> String {
    serde_json::json!({ "method": method, "params": streams, "id": id }).to_string()
}

pub(super) fn decode(
    dec: &mut Decoder,
    frame: &str,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<Frame, DecodeError> {
    let venue = dec.venue.name();
    if frame.starts_with("{\"stream\":") {
        // The stream's own frames, read without serde; what the scanner
        // leaves (anything unusual) goes to serde.
        if let Some((stream, data)) = wire::combined_fast(frame) {
            return event(dec, &data, Some(stream), frame, ts_received, out);
        }
        // A frame that does not fit the fast shape gets the general parse,
        // which also gives the error message.
        if let Ok(c) = serde_json::from_str::<Combined<'_>>(frame) {
            return event(dec, &c.data, Some(c.stream), frame, ts_received, out);
        }
    }
    let m: Msg<'_> = serde_json::from_str(frame).map_err(|e| json_error(venue, frame, e))?;
    if let Some(data) = &m.data {
        return event(dec, data, m.stream, frame, ts_received, out);
    }
    if let Some(error) = error_of(&m) {
        return Ok(error);
    }
    if let Some(result) = m.result {
        return Ok(Frame::Ack(Ack::Response {
            id: m.id.and_then(Loose::as_u64).unwrap_or(0),
            result: result.get().to_string(),
        }));
    }
    event(dec, &m.payload, m.stream, frame, ts_received, out)
}

/// `{"code":2,"msg":".."}` or `{"error":{"code":..,"msg":..},"id":..}`.
fn error_of(m: &Msg<'_>) -> Option<Frame> {
    let (code, msg) = match &m.error {
        Some(body) => (body.code, body.msg.as_deref()),
        None if m.payload.e.is_none() && (m.code.is_some() || m.msg.is_some()) => {
            (m.code, m.msg.as_deref())
        }
        None => return None,
    };
    let error = VenueMessage {
        code: code.and_then(Loose::code),
        msg: msg.unwrap_or_default().to_string(),
    };
    // -1003 is Binance's TOO_MANY_REQUESTS; the stream servers otherwise
    // word limits only in the text.
    let limit = if error.code.as_deref() == Some("-1003") {
        Some(super::Limit::Requests)
    } else {
        limit_in_text(&error.msg)
    };
    Some(error_or_limit(limit, error))
}

/// A payload: what its event type (or, for spot `bookTicker`, its stream
/// name or its fields) says it is.
fn event(
    dec: &mut Decoder,
    ev: &Payload<'_>,
    stream: Option<&str>,
    frame: &str,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<Frame, DecodeError> {
    let venue = dec.venue.name();
    let kind = match ev.e {
        Some(e) => e,
        None => match stream.and_then(|s| s.split('@').nth(1)) {
            Some("bookTicker") => "bookTicker",
            Some(other) if !ev.looks_like_book_ticker() => {
                return Ok(Frame::Ignored {
                    kind: other.to_string(),
                });
            }
            _ if ev.looks_like_book_ticker() => "bookTicker",
            _ => {
                return Err(unrecognized(venue, frame));
            }
        },
    };
    match kind {
        "trade" => {
            let id = require(venue, "trade", "t", ev.t.and_then(Loose::as_u64))?;
            trade(dec, ev, id, ts_received, out)?;
            Ok(Frame::Data {
                channel: Channel::Trades,
                ticks: 1,
            })
        }
        "aggTrade" => {
            let id = require(venue, "aggTrade", "a", ev.a.and_then(Loose::as_u64))?;
            trade(dec, ev, id, ts_received, out)?;
            Ok(Frame::Data {
                channel: Channel::AggTrades,
                ticks: 1,
            })
        }
        "bookTicker" => {
            book_ticker(dec, ev, ts_received, out)?;
            Ok(Frame::Data {
                channel: Channel::Quotes,
                ticks: 1,
            })
        }
        "serverShutdown" => Ok(Frame::ServerShutdown(VenueMessage {
            code: None,
            msg: match ev.event_time.and_then(Loose::as_u64) {
                Some(at) => format!("serverShutdown at {at} ms"),
                None => "serverShutdown".to_string(),
            },
        })),
        other => Ok(Frame::Ignored {
            kind: other.to_string(),
        }),
    }
}

fn str_field<'a>(
    venue: &'static str,
    kind: &'static str,
    field: &'static str,
    v: Option<Loose<'a>>,
) -> Result<&'a str, DecodeError> {
    require(venue, kind, field, v.and_then(Loose::as_str))
}

fn trade(
    dec: &mut Decoder,
    ev: &Payload<'_>,
    id: u64,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<(), DecodeError> {
    let venue = dec.venue.name();
    let kind = "trade";
    let s = str_field(venue, kind, "s", ev.s)?;
    let price = decimal(venue, "p", str_field(venue, kind, "p", ev.p)?)?;
    let size = decimal(venue, "q", str_field(venue, kind, "q", ev.q)?)?;
    // `T`: trade time, milliseconds since the epoch.
    let t_ms = require(venue, kind, "T", ev.trade_time.and_then(Loose::as_u64))?;
    let ts_event = millis_to_nanos(venue, "T", clamp_ms(t_ms))?;
    out.push(Tick {
        trade_id: Some(id_text(id)),
        ..dec.tick(s, TickKind::Trade, price, size, ts_event, ts_received)?
    });
    Ok(())
}

fn book_ticker(
    dec: &mut Decoder,
    ev: &Payload<'_>,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<(), DecodeError> {
    let venue = dec.venue.name();
    let kind = "bookTicker";
    let s = str_field(venue, kind, "s", ev.s)?;
    let bid = decimal(venue, "b", str_field(venue, kind, "b", ev.b)?)?;
    let ask = decimal(venue, "a", str_field(venue, kind, "a", ev.a)?)?;
    // Futures stamp the quote with `T` (transaction time, ms), then `E`
    // (event time, ms); spot bookTicker carries no time: our receive time.
    let ts_event = match ev
        .trade_time
        .and_then(Loose::as_u64)
        .map(|t| ("T", t))
        .or_else(|| ev.event_time.and_then(Loose::as_u64).map(|e| ("E", e)))
    {
        Some((field, ms)) => millis_to_nanos(venue, field, clamp_ms(ms))?,
        None => ts_received,
    };
    // The symbol is resolved (and refused) before the mid is computed.
    let quote = dec.tick(
        s,
        TickKind::Quote,
        Decimal::ZERO,
        Decimal::ZERO,
        ts_event,
        ts_received,
    )?;
    out.push(Tick {
        price: mid(venue, bid, ask)?,
        bid: Some(bid),
        ask: Some(ask),
        sequence: ev.u.and_then(Loose::as_u64),
        ..quote
    });
    Ok(())
}

/// The exact mid: halving adds one decimal place, never rounds. Checked,
/// as absurd prices must give an error, not an overflow panic.
pub(super) fn mid(venue: &'static str, bid: Decimal, ask: Decimal) -> Result<Decimal, DecodeError> {
    bid.checked_add(ask)
        .and_then(|sum| sum.checked_mul(Decimal::new(5, 1)))
        .ok_or_else(|| DecodeError::BadField {
            venue,
            field: "b",
            value: format!("{bid} / {ask}"),
            expected: "a bid and ask whose mid is representable",
        })
}

/// A u64 timestamp as i64; values beyond i64 saturate so that the checked
/// conversion to nanoseconds reports them.
fn clamp_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}
