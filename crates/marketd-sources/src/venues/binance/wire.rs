//! Binance's market-stream JSON as borrowed serde structs.
//!
//! [`Combined`] reads the combined-stream wrapper `{"stream":..,"data":{..}}`
//! (the hot path); [`Msg`] every other shape: a raw `/ws` payload, request
//! answers `{"result":..,"id":..}` and errors `{"code":..,"msg":..}` /
//! `{"error":{..},"id":..}`. [`Payload`] is the union of `trade`,
//! `aggTrade` and `bookTicker` (spot and USD-M); fields whose type differs
//! between kinds are [`Loose`]. Unknown fields (`k` of klines, `pu` of
//! futures depth, ...) are skipped by serde.

use crate::venues::common::{Loose, raw_present};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The hot path: a combined-stream frame, `{"stream":..,"data":{..}}`
/// (Binance always writes `stream` first). Only two fields, so nothing
/// large is built or moved.
#[derive(Debug, Deserialize)]
pub(super) struct Combined<'a> {
    #[serde(borrow)]
    pub stream: &'a str,
    #[serde(borrow)]
    pub data: Payload<'a>,
}

/// Any frame: a combined-stream frame in another key order, a raw `/ws`
/// payload (flattened: serde buffers its fields, slower but off the
/// combined-stream path), a request answer or an error.
#[derive(Debug, Deserialize)]
pub(super) struct Msg<'a> {
    #[serde(borrow)]
    pub stream: Option<&'a str>,
    #[serde(borrow)]
    pub data: Option<Payload<'a>>,
    #[serde(borrow, default, deserialize_with = "raw_present")]
    pub result: Option<&'a RawValue>,
    #[serde(borrow)]
    pub id: Option<Loose<'a>>,
    #[serde(borrow)]
    pub code: Option<Loose<'a>>,
    #[serde(borrow)]
    pub msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub error: Option<ErrorBody<'a>>,
    #[serde(borrow, flatten)]
    pub payload: Payload<'a>,
}

/// The union of the `trade`, `aggTrade` and `bookTicker` payloads.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Payload<'a> {
    /// Event type (`trade`, `aggTrade`, `bookTicker` on futures, `depthUpdate`, ...).
    #[serde(borrow)]
    pub e: Option<&'a str>,
    /// Event time, ms.
    #[serde(rename = "E", borrow)]
    pub event_time: Option<Loose<'a>>,
    /// Trade time (trade, aggTrade) or transaction time (futures bookTicker), ms.
    #[serde(rename = "T", borrow)]
    pub trade_time: Option<Loose<'a>>,
    #[serde(borrow)]
    pub s: Option<Loose<'a>>,
    /// Trade id (`trade`).
    #[serde(borrow)]
    pub t: Option<Loose<'a>>,
    #[serde(borrow)]
    pub p: Option<Loose<'a>>,
    #[serde(borrow)]
    pub q: Option<Loose<'a>>,
    /// Ask price (bookTicker), aggregate trade id (aggTrade), seller order id (legacy trade).
    #[serde(borrow)]
    pub a: Option<Loose<'a>>,
    /// Bid price (bookTicker), buyer order id (legacy trade).
    #[serde(borrow)]
    pub b: Option<Loose<'a>>,
    #[serde(rename = "A", borrow)]
    pub ask_qty: Option<Loose<'a>>,
    #[serde(rename = "B", borrow)]
    pub bid_qty: Option<Loose<'a>>,
    /// Order book update id (bookTicker).
    #[serde(borrow)]
    pub u: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ErrorBody<'a> {
    #[serde(borrow)]
    pub code: Option<Loose<'a>>,
    #[serde(borrow)]
    pub msg: Option<Cow<'a, str>>,
}

impl Payload<'_> {
    /// Spot `bookTicker` has no event type: it is recognised by its fields.
    pub(super) fn looks_like_book_ticker(&self) -> bool {
        let is_str = |f: &Option<Loose<'_>>| matches!(f, Some(Loose::Str(_)));
        self.u.is_some()
            && is_str(&self.s)
            && is_str(&self.b)
            && is_str(&self.a)
            && is_str(&self.bid_qty)
            && is_str(&self.ask_qty)
    }
}
