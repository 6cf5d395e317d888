//! Binance's market-stream JSON as borrowed serde structs.
//!
//! One struct, [`Msg`], covers every shape in one pass: the combined-stream
//! wrapper `{"stream":..,"data":{..}}`, a raw `/ws` payload, request answers
//! `{"result":..,"id":..}` and errors `{"code":..,"msg":..}` /
//! `{"error":{..},"id":..}`. The payload fields are the union of `trade`,
//! `aggTrade` and `bookTicker` (spot and USD-M); fields whose type differs
//! between kinds are [`Loose`]. Unknown fields (`k` of klines, `pu` of
//! futures depth, ...) are skipped by serde.

use crate::venues::common::{Loose, raw_present};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A frame (`D` = `Msg<IgnoredAny>` for the wrapper's `data`) or a payload
/// (`D` = `IgnoredAny`, its `data` never used).
#[derive(Debug, Deserialize)]
#[serde(bound(deserialize = "'de: 'a, D: Deserialize<'de>"))]
pub(super) struct Msg<'a, D> {
    #[serde(borrow)]
    pub stream: Option<&'a str>,
    pub data: Option<D>,
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

impl<D> Msg<'_, D> {
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
