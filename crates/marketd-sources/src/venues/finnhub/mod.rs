//! Finnhub's trade stream (`wss://ws.finnhub.io?token=..`; the token is
//! the connector's business): symbol spelling, `subscribe` frames, and the
//! decoder for `trade` messages, the `ping` heartbeat and `error` messages.
//!
//! Prices and volumes are JSON numbers; they are read from the number's own
//! text (never through `f64`). `t` is milliseconds since the epoch. Finnhub
//! gives no trade id, and sends `v = 0` for a price update that is not a
//! trade: that becomes a `last` tick of size 0.

use super::common::{
    Items, decimal_from_number, error_or_limit, json_error, limit_in_text, millis_to_nanos,
    require, unrecognized,
};
use super::{Channel, DecodeError, Decoder, Frame, PlanError, VenueMessage};
use marketd_model::{Symbol, Tick, TickKind};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

const VENUE: &str = "finnhub";

/// Crypto pairs are subscribed on this exchange's book at Finnhub.
const CRYPTO_EXCHANGE: &str = "BINANCE";

/// `BINANCE:BTCUSDT` → `BTC-USDT`, `OANDA:EUR_USD` → `EUR-USD`, `AAPL` → `AAPL`.
pub(super) fn canonical(raw: &str) -> Result<Symbol, String> {
    if raw.contains(':') {
        Symbol::from_crypto_venue(raw).map_err(|e| e.to_string())
    } else {
        Symbol::parse(raw).map_err(|e| e.to_string())
    }
}

/// Pairs as `BINANCE:BTCUSDT`, equities as their ticker.
pub(super) fn venue_symbol(symbol: &Symbol) -> Result<String, String> {
    let s = symbol.as_str();
    match s.split('-').collect::<Vec<_>>()[..] {
        [_] => Ok(s.to_string()),
        [base, quote] => Ok(format!("{CRYPTO_EXCHANGE}:{base}{quote}")),
        _ => Err("Finnhub streams equities and spot pairs, not derivatives".into()),
    }
}

/// One `{"type":"subscribe","symbol":".."}` per symbol.
pub(super) fn frames(op: &str, symbols: &[Symbol]) -> Result<Vec<String>, PlanError> {
    symbols
        .iter()
        .map(|s| {
            let venue_symbol = super::Venue::Finnhub.venue_symbol(s)?;
            Ok(serde_json::json!({ "type": op, "symbol": venue_symbol }).to_string())
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct Msg<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    data: Option<Items<Item<'a>>>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Item<'a> {
    #[serde(borrow)]
    s: Option<&'a str>,
    #[serde(borrow)]
    p: Option<&'a RawValue>,
    #[serde(borrow)]
    v: Option<&'a RawValue>,
    t: Option<i64>,
}

pub(super) fn decode(
    dec: &mut Decoder,
    frame: &str,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<Frame, DecodeError> {
    let m: Msg<'_> = serde_json::from_str(frame).map_err(|e| json_error(VENUE, frame, e))?;
    let Some(kind) = m.kind else {
        return Err(unrecognized(VENUE, frame));
    };
    match kind {
        "trade" => {
            let start = out.len();
            for item in m.data.iter().flat_map(Items::iter) {
                trade(dec, item, ts_received, out)?;
            }
            Ok(Frame::Data {
                channel: Channel::Trades,
                ticks: out.len() - start,
            })
        }
        "ping" => Ok(Frame::Ping { reply: None }),
        "error" => {
            let error = VenueMessage {
                code: None,
                msg: m.msg.as_deref().unwrap_or_default().to_string(),
            };
            Ok(error_or_limit(limit_in_text(&error.msg), error))
        }
        other => Ok(Frame::Ignored {
            kind: other.to_string(),
        }),
    }
}

fn trade(
    dec: &mut Decoder,
    item: &Item<'_>,
    ts_received: i64,
    out: &mut Vec<Tick>,
) -> Result<(), DecodeError> {
    let s = require(VENUE, "trade", "s", item.s)?;
    let price = decimal_from_number(VENUE, "p", require(VENUE, "trade", "p", item.p)?.get())?;
    let size = decimal_from_number(VENUE, "v", require(VENUE, "trade", "v", item.v)?.get())?;
    // `t`: trade time, milliseconds since the epoch.
    let ts_event = millis_to_nanos(VENUE, "t", require(VENUE, "trade", "t", item.t)?)?;
    // A price update without volume is the last price, not a trade.
    let kind = if size.is_zero() {
        TickKind::Last
    } else {
        TickKind::Trade
    };
    out.push(dec.tick(s, kind, price, size, ts_event, ts_received)?);
    Ok(())
}
