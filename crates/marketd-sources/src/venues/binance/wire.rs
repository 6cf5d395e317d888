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
use crate::venues::scan::{Scalar, Scan, once};
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
#[derive(Debug, Default, PartialEq, Deserialize)]
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

/// The combined-stream frame `{"stream":..,"data":{..}}` read by [`Scan`]
/// instead of serde: what [`Combined`] gives, in one pass, for the frames
/// the stream sends by the thousand. `None` for anything else (serde then
/// reads it, with its errors).
pub(super) fn combined_fast(frame: &str) -> Option<(&str, Payload<'_>)> {
    let mut sc = Scan::new(frame);
    sc.eat(b'{')?;
    if sc.key()? != "stream" {
        return None;
    }
    let stream = sc.str()?;
    sc.eat(b',')?;
    if sc.key()? != "data" {
        return None;
    }
    sc.eat(b'{')?;
    let mut p = Payload::default();
    sc.members(|k, v| {
        let loose = match v {
            Scalar::Str(s) => Loose::Str(s),
            Scalar::Int(n) => Loose::Int(n),
            Scalar::Bool => Loose::Other,
        };
        let slot = match k {
            "e" => {
                let Scalar::Str(e) = v else { return None };
                return once(&mut p.e, e);
            }
            "E" => &mut p.event_time,
            "T" => &mut p.trade_time,
            "s" => &mut p.s,
            "t" => &mut p.t,
            "p" => &mut p.p,
            "q" => &mut p.q,
            "a" => &mut p.a,
            "b" => &mut p.b,
            "A" => &mut p.ask_qty,
            "B" => &mut p.bid_qty,
            "u" => &mut p.u,
            // Fields the decoder does not read (`m`, `M`, `f`, `l`, ...).
            _ => return Some(()),
        };
        once(slot, loose)
    })?;
    sc.eat(b'}')?;
    sc.end()?;
    Some((stream, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Binance frame the fixtures hold: the scanner reads it exactly
    /// as serde does, or leaves it to serde.
    #[test]
    fn the_fast_path_agrees_with_serde_on_every_recorded_frame() {
        use crate::venues::capture::{fixture, received_frames};
        let mut frames = received_frames("BINANCE.ws.1.0");
        frames.extend(received_frames("BINANCE_FUTURES.ws.1.0"));
        for f in [
            "binance_trade.json",
            "binance_aggTrade.json",
            "binance_bookTicker.json",
            "binance_combined_stream.json",
        ] {
            let v: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(fixture(&format!("formats/{f}"))).unwrap(),
            )
            .unwrap();
            collect_objects(&v, &mut frames);
        }
        let mut fast = 0;
        for frame in &frames {
            if let Some((stream, p)) = combined_fast(frame) {
                let c: Combined<'_> = serde_json::from_str(frame).expect("serde reads it too");
                assert_eq!((stream, &p), (c.stream, &c.data), "{frame}");
                fast += 1;
            }
        }
        assert!(
            fast > 100,
            "only {fast} of {} frames took the fast path",
            frames.len()
        );
        // Variations serde answers differently from the plain shape.
        for frame in [
            r#"{"stream":"a@trade","data":{"e":"trade","s":"X","s":"Y"}}"#,
            r#"{"stream":"a@trade","data":{"e":"trade","p":"1\u0030"}}"#,
            r#"{"stream":"a@trade","data":{"e":"trade","p":null}}"#,
            r#"{"stream":"a@trade","data":{"e":"trade","T":1.5}}"#,
            r#"{"stream":"a@trade","data":{"e":1}}"#,
            r#"{"stream":"a@trade","data":{"e":"trade"},"x":1}"#,
            r#"{"data":{"e":"trade"},"stream":"a@trade"}"#,
        ] {
            assert!(combined_fast(frame).is_none(), "{frame}");
        }
    }

    /// Every JSON object in a fixture that is a combined-stream frame, as text.
    fn collect_objects(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if m.contains_key("stream") && m.contains_key("data") => {
                out.push(serde_json::to_string(v).unwrap());
            }
            serde_json::Value::Object(m) => m.values().for_each(|x| collect_objects(x, out)),
            serde_json::Value::Array(xs) => xs.iter().for_each(|x| collect_objects(x, out)),
            _ => {}
        }
    }
}
