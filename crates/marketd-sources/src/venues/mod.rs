//! Exchange WebSocket feeds as pure code: what to connect to, what to send,
//! and how to turn every text frame the venue sends into [`Tick`]s or a
//! classified control message. Nothing here does network I/O; the connector
//! runtime (elsewhere) owns the socket and drives these types:
//!
//! ```text
//! let venue = Venue::from_name("okx")?;
//! let plan = venue.plan(venue.default_ws_url(), &symbols, &[Channel::Trades])?;
//! connect(plan.url); send each of plan.frames;
//! let mut decoder = venue.decoder();           // one per connection
//! for each text frame: match decoder.decode(text, now_ns, &mut ticks)? {
//!     Frame::Data { .. } => publish(ticks.drain(..)),
//!     Frame::Ping { reply: Some(r) } => send(r),
//!     Frame::ServerShutdown(_) => reconnect soon,
//!     Frame::Limit { .. } => back off, Frame::Error(e) => log, ...
//! }
//! keep the connection alive as venue.keepalive() says.
//! ```
//!
//! [`Venue`] is a `Copy` enum (enum dispatch, no trait objects): static facts
//! (URLs, keepalive style, supported channels), symbol mapping in both
//! directions and subscription planning. [`Decoder`] is the per-connection
//! state (a cache of canonical symbols, so the hot path does not rebuild a
//! `Symbol` per message). Each venue's wire format lives in its own folder
//! as serde structs with borrowed fields, parsed in one pass; decimals are
//! parsed from the venue's text, never through `f64`.
//!
//! # Symbols
//! Spot pairs are `BASE-QUOTE` (`BTC-USDT`). Derivatives never collide with
//! spot (cryptofeed's convention for perpetuals): perpetual swaps are
//! `BASE-QUOTE-PERP` (OKX `BTC-USDT-SWAP`, Binance USD-M `BTCUSDT`), dated
//! futures keep the expiry as `YYMMDD` (`BTC-USD-220527`, OKX's spelling;
//! Binance USD-M `BTCUSDT_240628` becomes `BTC-USDT-240628`), OKX options
//! keep their instrument id (`BTC-USD-231229-35000-C`). The venue's own
//! spelling is kept in `Tick::venue_symbol`.
//!
//! # Ticks
//! - trades and aggregated trades: `kind = trade`, `price`/`size` of the
//!   trade, `trade_id` when the venue gives one, `ts_event` the trade time;
//! - quotes (Binance `bookTicker`, OKX `tickers`): `kind = quote`, `price` =
//!   the mid of best bid and ask (as `TickKind::Quote` documents; OKX's
//!   `last` when one side is empty), `bid`/`ask` set, `size = 0`: the model
//!   has one size field, the aggregator adds it to bar volume, and resting
//!   best-level sizes are not traded volume. `sequence` is the venue's book
//!   update id where it has one (Binance `u`).
//! - The aggressor side (Binance `m`, OKX `side`) is not kept: `Tick` has no
//!   side field yet.

pub mod binance;
pub mod capture;
mod common;
pub mod finnhub;
pub mod okx;
mod scan;
mod session;

pub use session::VenueSession;

use marketd_model::{Decimal, Symbol, Tick, TickKind};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A kind of market-data stream a feed can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Every trade (Binance `@trade`, OKX `trades`, Finnhub trades).
    Trades,
    /// Trades aggregated per taker order and price (Binance `@aggTrade`).
    AggTrades,
    /// Best bid and offer (Binance `@bookTicker`, OKX `tickers`).
    Quotes,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Trades, Channel::AggTrades, Channel::Quotes];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Trades => "trades",
            Channel::AggTrades => "agg_trades",
            Channel::Quotes => "quotes",
        }
    }

    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        Channel::from_name(s).ok_or_else(|| PlanError::UnknownChannel(s.to_string()))
    }
}

/// The exchange feeds marketd can read, by the name used in config and as
/// `Tick::source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Venue {
    /// Binance spot market streams.
    Binance,
    /// Binance USD-M futures market streams (perpetuals and quarterlies).
    BinanceFutures,
    /// OKX v5 public channel.
    Okx,
    /// Finnhub's trade stream (equities, forex and crypto via `EXCHANGE:PAIR`).
    Finnhub,
}

/// How a connection is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keepalive {
    /// The server sends WebSocket ping control frames and the WebSocket
    /// library answers them with pongs; nothing to send in text (Binance:
    /// a ping every 20 s (spot) or 3 min (futures), disconnect without pong).
    ControlFrames,
    /// The client sends the text frame `ping` whenever nothing has been
    /// received for `idle` and expects `pong` back within `idle` (OKX drops
    /// connections silent for 30 s).
    ClientTextPing {
        ping: &'static str,
        pong: &'static str,
        idle: Duration,
    },
    /// The server sends a heartbeat message ([`Frame::Ping`] without a
    /// reply); the client sends nothing (Finnhub `{"type":"ping"}`).
    ServerHeartbeat,
}

/// What to connect to and which text frames to send once connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectPlan {
    pub url: String,
    pub frames: Vec<String>,
}

/// What a decoded frame was. Only `Data` appends ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Market data of `channel`; `ticks` ticks were appended to the output
    /// (0 is possible, e.g. an OKX ticker with an empty book).
    Data { channel: Channel, ticks: usize },
    /// A known message kind marketd does not turn into ticks (depth, kline,
    /// books, news, ...), or a kind the venue added that we do not know;
    /// the venue's own name for it.
    Ignored { kind: String },
    /// The venue confirmed a request.
    Ack(Ack),
    /// The answer to our text ping.
    Pong,
    /// The server pinged in text: send `reply` if there is one (a heartbeat
    /// needs none).
    Ping { reply: Option<&'static str> },
    /// The venue announced it will close this connection (Binance
    /// `serverShutdown`, OKX notice 64008): reconnect now, without backoff.
    ServerShutdown(VenueMessage),
    /// The venue refused us for a limit; back off before retrying.
    Limit { limit: Limit, error: VenueMessage },
    /// Any other error the venue reported.
    Error(VenueMessage),
    /// An informational notice that needs no action.
    Notice(VenueMessage),
}

/// A confirmed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// A subscription is live (`channel:instrument` as the venue names it).
    Subscribed(String),
    Unsubscribed(String),
    Login,
    /// Binance answers requests by id only (`{"result":null,"id":1}`);
    /// `result` is the JSON text of the result (`null`, or the stream list).
    Response {
        id: u64,
        result: String,
    },
}

/// Which limit a venue says we hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Too many connections (per IP, key or channel): open fewer.
    Connections,
    /// Too many requests or messages per unit of time: slow down.
    Requests,
    /// Too many subscriptions on a connection or key: split or drop some.
    Subscriptions,
}

/// An error or notice as the venue worded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueMessage {
    pub code: Option<String>,
    pub msg: String,
}

impl fmt::Display for VenueMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "[{code}] {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

/// Why a frame could not be decoded. Never a panic: every venue frame is
/// untrusted input.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("{venue}: empty frame")]
    Empty { venue: &'static str },
    #[error(
        "{venue}: frame is not a JSON message of this venue ({source}); frame starts {snippet:?}"
    )]
    Json {
        venue: &'static str,
        #[source]
        source: serde_json::Error,
        snippet: String,
    },
    #[error("{venue}: unrecognised message (no event, stream or type); frame starts {snippet:?}")]
    Unrecognized {
        venue: &'static str,
        snippet: String,
    },
    #[error("{venue}: {kind} message without field `{field}`")]
    MissingField {
        venue: &'static str,
        kind: &'static str,
        field: &'static str,
    },
    #[error("{venue}: field `{field}` = {value:?} is not {expected}")]
    BadField {
        venue: &'static str,
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{venue}: symbol {value:?}: {reason}")]
    Symbol {
        venue: &'static str,
        value: String,
        reason: String,
    },
}

/// Why a subscription could not be planned or a symbol not mapped.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("unknown venue {0:?} (known: binance, binance_futures, okx, finnhub)")]
    UnknownVenue(String),
    #[error("unknown channel {0:?} (known: trades, agg_trades, quotes)")]
    UnknownChannel(String),
    #[error("nothing to subscribe: {0} list is empty")]
    Empty(&'static str),
    #[error("{venue} has no {channel} channel")]
    UnsupportedChannel {
        venue: &'static str,
        channel: Channel,
    },
    #[error("{venue} cannot list symbol {symbol:?}: {reason}")]
    Symbol {
        venue: &'static str,
        symbol: String,
        reason: String,
    },
    #[error("{venue} allows at most {max} streams per connection, asked for {asked}")]
    TooManyStreams {
        venue: &'static str,
        max: usize,
        asked: usize,
    },
    #[error("base URL {0:?} is not a ws:// or wss:// URL")]
    BaseUrl(String),
}

impl Venue {
    pub const ALL: [Venue; 4] = [
        Venue::Binance,
        Venue::BinanceFutures,
        Venue::Okx,
        Venue::Finnhub,
    ];

    /// The name in config and `Tick::source`.
    pub fn name(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::BinanceFutures => "binance_futures",
            Venue::Okx => "okx",
            Venue::Finnhub => "finnhub",
        }
    }

    pub fn from_name(name: &str) -> Result<Venue, PlanError> {
        Venue::ALL
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| PlanError::UnknownVenue(name.to_string()))
    }

    /// The public WebSocket endpoint (without path for Binance: [`Venue::plan`]
    /// adds `/stream?streams=...`; Finnhub's `?token=` is the connector's).
    pub fn default_ws_url(self) -> &'static str {
        match self {
            Venue::Binance => "wss://stream.binance.com:9443",
            Venue::BinanceFutures => "wss://fstream.binance.com",
            Venue::Okx => "wss://ws.okx.com:8443/ws/v5/public",
            Venue::Finnhub => "wss://ws.finnhub.io",
        }
    }

    /// The REST base of the same venue (instrument lists, snapshots).
    pub fn default_rest_url(self) -> &'static str {
        match self {
            Venue::Binance => "https://api.binance.com",
            Venue::BinanceFutures => "https://fapi.binance.com",
            Venue::Okx => "https://www.okx.com",
            Venue::Finnhub => "https://finnhub.io/api/v1",
        }
    }

    pub fn keepalive(self) -> Keepalive {
        match self {
            Venue::Binance | Venue::BinanceFutures => Keepalive::ControlFrames,
            Venue::Okx => Keepalive::ClientTextPing {
                ping: "ping",
                pong: "pong",
                // OKX closes after 30 s without traffic; ping well before.
                idle: Duration::from_secs(25),
            },
            Venue::Finnhub => Keepalive::ServerHeartbeat,
        }
    }

    /// How long the venue keeps one connection open before closing it
    /// (Binance: 24 h); reconnect before that.
    pub fn max_connection_age(self) -> Option<Duration> {
        match self {
            Venue::Binance | Venue::BinanceFutures => Some(Duration::from_secs(24 * 3600)),
            Venue::Okx | Venue::Finnhub => None,
        }
    }

    /// The channels the venue has.
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Venue::Binance | Venue::BinanceFutures => &Channel::ALL,
            // OKX `trades` already aggregates fills of one taker order
            // (it carries `count`), so there is no separate aggregated channel.
            Venue::Okx => &[Channel::Trades, Channel::Quotes],
            Venue::Finnhub => &[Channel::Trades],
        }
    }

    /// The canonical symbol of the venue's spelling (see the module docs).
    pub fn canonical_symbol(self, venue_symbol: &str) -> Result<Symbol, PlanError> {
        let r = match self {
            Venue::Binance => binance::canonical_spot(venue_symbol),
            Venue::BinanceFutures => binance::canonical_usdm(venue_symbol),
            Venue::Okx => okx::canonical(venue_symbol),
            Venue::Finnhub => finnhub::canonical(venue_symbol),
        };
        r.map_err(|reason| PlanError::Symbol {
            venue: self.name(),
            symbol: venue_symbol.to_string(),
            reason,
        })
    }

    /// The venue's spelling of a canonical symbol, as used in subscriptions
    /// (Binance: the lower-case stream prefix `btcusdt`; OKX: the `instId`;
    /// Finnhub: `BINANCE:BTCUSDT` for pairs, the ticker for equities).
    pub fn venue_symbol(self, symbol: &Symbol) -> Result<String, PlanError> {
        let r = match self {
            Venue::Binance => binance::spot_stream_symbol(symbol),
            Venue::BinanceFutures => binance::usdm_stream_symbol(symbol),
            Venue::Okx => okx::inst_id(symbol),
            Venue::Finnhub => finnhub::venue_symbol(symbol),
        };
        r.map_err(|reason| PlanError::Symbol {
            venue: self.name(),
            symbol: symbol.to_string(),
            reason,
        })
    }

    /// The URL to connect to under `base_url` and the frames to send after
    /// connecting, to receive `channels` of `symbols`.
    pub fn plan(
        self,
        base_url: &str,
        symbols: &[Symbol],
        channels: &[Channel],
    ) -> Result<ConnectPlan, PlanError> {
        let base = check_base(base_url)?;
        self.check(symbols, channels)?;
        match self {
            Venue::Binance | Venue::BinanceFutures => binance::plan(self, base, symbols, channels),
            Venue::Okx => Ok(ConnectPlan {
                url: base.to_string(),
                frames: okx::frames("subscribe", symbols, channels)?,
            }),
            Venue::Finnhub => Ok(ConnectPlan {
                url: base.to_string(),
                frames: finnhub::frames("subscribe", symbols)?,
            }),
        }
    }

    /// Frames that add subscriptions on an open connection (Binance: on a
    /// `{base}/ws` or combined connection; `id` identifies the request in
    /// the venue's [`Ack::Response`]; other venues ignore `id`).
    pub fn subscribe_frames(
        self,
        symbols: &[Symbol],
        channels: &[Channel],
        id: u64,
    ) -> Result<Vec<String>, PlanError> {
        self.request_frames(true, symbols, channels, id)
    }

    /// Frames that drop subscriptions on an open connection.
    pub fn unsubscribe_frames(
        self,
        symbols: &[Symbol],
        channels: &[Channel],
        id: u64,
    ) -> Result<Vec<String>, PlanError> {
        self.request_frames(false, symbols, channels, id)
    }

    fn request_frames(
        self,
        subscribe: bool,
        symbols: &[Symbol],
        channels: &[Channel],
        id: u64,
    ) -> Result<Vec<String>, PlanError> {
        self.check(symbols, channels)?;
        match self {
            Venue::Binance | Venue::BinanceFutures => {
                let method = if subscribe {
                    "SUBSCRIBE"
                } else {
                    "UNSUBSCRIBE"
                };
                let streams = binance::stream_names(self, symbols, channels)?;
                Ok(vec![binance::request_frame(method, &streams, id)])
            }
            Venue::Okx => okx::frames(
                if subscribe {
                    "subscribe"
                } else {
                    "unsubscribe"
                },
                symbols,
                channels,
            ),
            Venue::Finnhub => finnhub::frames(
                if subscribe {
                    "subscribe"
                } else {
                    "unsubscribe"
                },
                symbols,
            ),
        }
    }

    fn check(self, symbols: &[Symbol], channels: &[Channel]) -> Result<(), PlanError> {
        if symbols.is_empty() {
            return Err(PlanError::Empty("symbol"));
        }
        if channels.is_empty() {
            return Err(PlanError::Empty("channel"));
        }
        if let Some(&channel) = channels.iter().find(|c| !self.channels().contains(c)) {
            return Err(PlanError::UnsupportedChannel {
                venue: self.name(),
                channel,
            });
        }
        Ok(())
    }

    /// A decoder for one connection to this venue.
    pub fn decoder(self) -> Decoder {
        Decoder {
            venue: self,
            source: Arc::from(self.name()),
            symbols: HashMap::default(),
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Venue {
    type Err = PlanError;
    fn from_str(s: &str) -> Result<Self, PlanError> {
        Venue::from_name(s)
    }
}

fn check_base(base_url: &str) -> Result<&str, PlanError> {
    let base = base_url.trim().trim_end_matches('/');
    if !(base.starts_with("ws://") || base.starts_with("wss://"))
        || base.contains(char::is_whitespace)
    {
        return Err(PlanError::BaseUrl(base_url.to_string()));
    }
    Ok(base)
}

/// Symbols cached per decoder; a feed that invents symbols without end must
/// not grow it without bound, so it is cleared when full.
const SYMBOL_CACHE_MAX: usize = 4096;

/// FNV-1a for the symbol cache: keys are short venue symbols from one
/// venue, and SipHash's flooding resistance costs more than the whole
/// lookup; the cache is bounded ([`SYMBOL_CACHE_MAX`]) either way.
#[derive(Debug, Clone, Copy)]
struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Decodes the text frames of one connection to one venue. Keeps a cache of
/// canonical symbols by venue spelling, hence `&mut self`.
#[derive(Debug, Clone)]
pub struct Decoder {
    venue: Venue,
    source: Arc<str>,
    symbols: HashMap<Box<str>, Symbol, BuildHasherDefault<FnvHasher>>,
}

impl Decoder {
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// Decodes one text frame received at `ts_received_ns` (ns since the
    /// epoch, UTC). Ticks of a data frame are appended to `out`; on error
    /// nothing is appended (a frame is decoded whole or not at all).
    pub fn decode(
        &mut self,
        frame: &str,
        ts_received_ns: i64,
        out: &mut Vec<Tick>,
    ) -> Result<Frame, DecodeError> {
        let start = out.len();
        let venue = self.venue.name();
        if frame.trim().is_empty() {
            return Err(DecodeError::Empty { venue });
        }
        let r = match self.venue {
            Venue::Binance | Venue::BinanceFutures => {
                binance::decode(self, frame, ts_received_ns, out)
            }
            Venue::Okx => okx::decode(self, frame, ts_received_ns, out),
            Venue::Finnhub => finnhub::decode(self, frame, ts_received_ns, out),
        };
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    /// A tick of `venue_symbol` (kept as the venue spells it) with the fields
    /// every venue sets; callers add `bid`/`ask`, `trade_id` and `sequence`
    /// where their message has them.
    fn tick(
        &mut self,
        venue_symbol: &str,
        kind: TickKind,
        price: Decimal,
        size: Decimal,
        ts_event: i64,
        ts_received: i64,
    ) -> Result<Tick, DecodeError> {
        Ok(Tick {
            symbol: self.symbol(venue_symbol)?,
            source: self.source.clone(),
            kind,
            price,
            size,
            bid: None,
            ask: None,
            trade_id: None,
            sequence: None,
            venue_symbol: Some(venue_symbol.to_string()),
            ts_event,
            ts_received,
        })
    }

    /// The canonical symbol of `venue_symbol`, from the cache when seen before.
    fn symbol(&mut self, venue_symbol: &str) -> Result<Symbol, DecodeError> {
        if let Some(s) = self.symbols.get(venue_symbol) {
            return Ok(s.clone());
        }
        let sym = self
            .venue
            .canonical_symbol(venue_symbol)
            .map_err(|e| DecodeError::Symbol {
                venue: self.venue.name(),
                value: venue_symbol.to_string(),
                reason: match e {
                    PlanError::Symbol { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        if self.symbols.len() >= SYMBOL_CACHE_MAX {
            self.symbols.clear();
        }
        self.symbols.insert(venue_symbol.into(), sym.clone());
        Ok(sym)
    }
}
