//! A mock exchange for the WebSocket connector tests: a real WebSocket
//! server (tokio-tungstenite on `127.0.0.1`, port 0) speaking
//!
//! - Binance: combined streams (`/stream?streams=a/b`, frames wrapped as
//!   `{"stream":..,"data":..}`) and raw streams (`/ws`, payloads bare), live
//!   `{"method":"SUBSCRIBE","params":[..],"id":N}` answered
//!   `{"result":null,"id":N}`, WebSocket pings from the server;
//! - OKX v5 public: `{"op":"subscribe","args":[{channel,instId}..]}` answered
//!   with one `{"event":"subscribe","arg":{..}}` per argument, text `ping`
//!   answered `pong`.
//!
//! It serves a list of data frames (a capture's, or made up), each tagged
//! with the subscription it belongs to, only to connections subscribed to
//! it, in order, across connections: the mock remembers what was sent (a
//! frame of a subscription nobody has made yet waits for one), and every
//! connection after the first starts by sending the last
//! `replay_on_reconnect` frames again (as a venue replaying recent trades
//! does), so duplicates reach the client.
//!
//! Each connection follows the next [`Step`] of the script (then
//! [`Step::default`], serve everything and stay): refuse the upgrade (429 +
//! `Retry-After`), or serve some frames and then stay, drop the socket, go
//! silent, send garbage, or announce a Binance `serverShutdown`. The mock
//! records every connection attempt (time, path, refusal) and every
//! subscription it received; [`VenueMock::restart`] closes the listener and
//! every connection and binds the same port again after a pause.

use futures::{SinkExt, StreamExt};
use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http;
use tokio_util::sync::CancellationToken;

/// The protocol the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Binance,
    Okx,
}

/// A frame the mock can serve: the subscription it belongs to (Binance: the
/// stream name, `btcusdt@trade`; OKX: `channel:instId`, `trades:BTC-USDT`)
/// and its text as a combined stream (Binance) or push (OKX) sends it.
#[derive(Debug, Clone)]
pub struct DataFrame {
    pub key: String,
    pub text: String,
}

impl DataFrame {
    /// A Binance combined-stream frame; its key is its `stream`.
    pub fn binance(text: &str) -> DataFrame {
        let v: serde_json::Value = serde_json::from_str(text).expect("a JSON frame");
        let key = v["stream"].as_str().expect("a combined-stream frame");
        DataFrame {
            key: key.to_string(),
            text: text.to_string(),
        }
    }

    /// An OKX push; its key is `arg.channel:arg.instId`.
    pub fn okx(text: &str) -> DataFrame {
        let v: serde_json::Value = serde_json::from_str(text).expect("a JSON frame");
        DataFrame {
            key: okx_key(&v["arg"]),
            text: text.to_string(),
        }
    }
}

fn okx_key(arg: &serde_json::Value) -> String {
    format!(
        "{}:{}",
        arg["channel"].as_str().unwrap_or_default(),
        arg["instId"].as_str().unwrap_or_default()
    )
}

/// What one connection does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Answer the HTTP upgrade with `status` (and `Retry-After: <secs>`).
    Refuse {
        status: u16,
        retry_after: Option<u64>,
    },
    /// Once subscribed: replay the last frames sent before (not on the first
    /// connection), send `new` new frames of the subscription (every one
    /// left when `None`), then do `then`.
    Serve { new: Option<usize>, then: Then },
}

impl Default for Step {
    /// Serve everything, then stay.
    fn default() -> Self {
        Step::Serve {
            new: None,
            then: Then::Stay,
        }
    }
}

/// How a served connection goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Stay open: answer subscriptions and text pings, send WebSocket pings
    /// every `ping_every`, until the client leaves.
    Stay,
    /// Close the TCP connection at once, without a Close frame.
    Drop,
    /// Stay open and say nothing more: no data, acks, pongs or pings.
    Silent,
    /// Send [`GARBAGE_TEXT`] and [`GARBAGE_BINARY`], then every frame left,
    /// then stay.
    Garbage,
    /// Send Binance's `serverShutdown` event, then stay.
    ServerShutdown,
}

/// Text frames that are no message of either venue (each one a decode error).
pub const GARBAGE_TEXT: [&str; 3] = [
    "}{ not json",
    r#"{"unexpected":"shape"}"#,
    "\u{1F4A5} definitely not a market data frame",
];
/// Binary frames (neither venue sends binary on these endpoints).
pub const GARBAGE_BINARY: [&[u8]; 2] = [&[0xde, 0xad, 0xbe, 0xef], b"\x00\x01\x02"];

/// One connection attempt the mock saw.
#[derive(Debug, Clone)]
pub struct Connection {
    /// When the TCP connection was accepted.
    pub at: Instant,
    /// The request's path and query (`None` when the handshake failed
    /// before a request was read).
    pub path: Option<String>,
    /// The status the upgrade was refused with.
    pub refused: Option<u16>,
    /// Every subscription received: combined streams of the URL, Binance
    /// `SUBSCRIBE` params, OKX `subscribe` args (`channel:instId`).
    pub subscriptions: BTreeSet<String>,
    /// The subscribe requests received, as sent.
    pub requests: Vec<String>,
    /// Data frames sent (replayed ones included).
    pub frames_sent: usize,
    /// When the connection ended (either side).
    pub ended: Option<Instant>,
}

#[derive(Debug)]
struct State {
    script: VecDeque<Step>,
    connections: Vec<Connection>,
    /// Whether each frame has been sent.
    served: Vec<bool>,
    /// Indices of every frame sent, in order (replays not repeated).
    sent: Vec<usize>,
    /// The serving generation (cancelled by `restart` and on drop).
    generation: CancellationToken,
}

#[derive(Debug)]
struct Shared {
    dialect: Dialect,
    frames: Vec<DataFrame>,
    replay_on_reconnect: usize,
    ping_every: Option<Duration>,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The mock exchange; dropping it stops it.
#[derive(Debug)]
pub struct VenueMock {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Drop for VenueMock {
    fn drop(&mut self) {
        self.shared.state().generation.cancel();
    }
}

impl VenueMock {
    /// A mock of `dialect` serving `frames`, replaying the last
    /// `replay_on_reconnect` of them on each reconnection, WebSocket-pinging
    /// every `ping_every` while it stays (a venue's heartbeat; `None`:
    /// never), following `script` connection by connection.
    pub async fn start(
        dialect: Dialect,
        frames: Vec<DataFrame>,
        replay_on_reconnect: usize,
        ping_every: Option<Duration>,
        script: Vec<Step>,
    ) -> VenueMock {
        let generation = CancellationToken::new();
        let n = frames.len();
        let shared = Arc::new(Shared {
            dialect,
            frames,
            replay_on_reconnect,
            ping_every,
            state: Mutex::new(State {
                script: script.into(),
                connections: Vec::new(),
                served: vec![false; n],
                sent: Vec::new(),
                generation: generation.clone(),
            }),
        });
        let addr = listen(shared.clone(), "127.0.0.1:0".parse().unwrap(), generation)
            .expect("the mock binds a local port");
        VenueMock { shared, addr }
    }

    /// `ws://127.0.0.1:PORT`, the connector's `url`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Every connection attempt so far, oldest first.
    pub fn connections(&self) -> Vec<Connection> {
        self.shared.state().connections.clone()
    }

    /// How many frames have been sent (each counted once).
    pub fn frames_served(&self) -> usize {
        self.shared.state().sent.len()
    }

    /// Whether every frame has been sent.
    pub fn all_served(&self) -> bool {
        self.frames_served() == self.shared.frames.len()
    }

    /// Closes the listener and every connection, waits `down_for`, and
    /// listens on the same port again (a server restart).
    pub async fn restart(&self, down_for: Duration) {
        let next = CancellationToken::new();
        let old = std::mem::replace(&mut self.shared.state().generation, next.clone());
        old.cancel();
        // The scripted outage, not a wait for a condition.
        tokio::time::sleep(down_for).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match listen(self.shared.clone(), self.addr, next.clone()) {
                Ok(_) => return,
                // The old listener's task may not have closed it yet.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "rebinding the mock's port");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebinding {}: {e}", self.addr),
            }
        }
    }
}

/// Binds `addr` (port reuse on, so a restart gets the same port) and
/// accepts connections until `generation` is cancelled.
fn listen(
    shared: Arc<Shared>,
    addr: SocketAddr,
    generation: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(128)?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = generation.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((tcp, _)) = accepted else { continue };
            tokio::spawn(connection(shared.clone(), tcp, generation.clone()));
        }
    });
    Ok(bound)
}

fn refusal(status: u16, retry_after: Option<u64>) -> ErrorResponse {
    let mut resp = http::Response::new(Some("rate limited by the mock".to_string()));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("an HTTP status");
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert("retry-after", http::HeaderValue::from(secs));
    }
    resp
}

/// One connection, from the TCP accept to its end (or the end of its
/// generation: a server restart closes it).
async fn connection(shared: Arc<Shared>, tcp: TcpStream, generation: CancellationToken) {
    let (index, step) = {
        let mut st = shared.state();
        let step = st.script.pop_front().unwrap_or_default();
        st.connections.push(Connection {
            at: Instant::now(),
            path: None,
            refused: None,
            subscriptions: BTreeSet::new(),
            requests: Vec::new(),
            frames_sent: 0,
            ended: None,
        });
        (st.connections.len() - 1, step)
    };
    tokio::select! {
        _ = generation.cancelled() => {}
        () = serve_connection(shared.clone(), index, step, tcp) => {}
    }
    shared.state().connections[index].ended = Some(Instant::now());
}

async fn serve_connection(shared: Arc<Shared>, index: usize, step: Step, tcp: TcpStream) {
    let mut path = None;
    let refuse = match &step {
        Step::Refuse {
            status,
            retry_after,
        } => Some((*status, *retry_after)),
        Step::Serve { .. } => None,
    };
    // The callback's signature is tungstenite's (`Callback`): its error is
    // the HTTP response to send, large or not.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| {
        path = Some(req.uri().to_string());
        match refuse {
            Some((status, retry_after)) => Err(refusal(status, retry_after)),
            None => Ok(resp),
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
    {
        let mut st = shared.state();
        let c = &mut st.connections[index];
        c.path = path.clone();
        c.refused = refuse.map(|(status, _)| status);
    }
    let Ok(ws) = handshake else {
        return;
    };
    let Step::Serve { new, then } = step else {
        return;
    };
    let mut conn = Conn {
        shared: shared.clone(),
        index,
        ws,
        raw: false,
    };
    conn.run(path.as_deref().unwrap_or("/"), new, then).await;
}

/// A served connection.
struct Conn {
    shared: Arc<Shared>,
    index: usize,
    ws: WebSocketStream<TcpStream>,
    /// Binance `/ws`: payloads are sent without the combined wrapper.
    raw: bool,
}

/// What the client's message asked for.
enum Asked {
    Nothing,
    Subscribed,
    Closed,
}

impl Conn {
    fn subscriptions(&self) -> BTreeSet<String> {
        self.shared.state().connections[self.index]
            .subscriptions
            .clone()
    }

    async fn run(&mut self, path: &str, new: Option<usize>, then: Then) {
        let url_streams = self.url_streams(path);
        if !url_streams.is_empty() {
            self.shared.state().connections[self.index]
                .subscriptions
                .extend(url_streams);
        } else {
            // Nothing to serve before the first subscription.
            loop {
                match self.read().await {
                    Asked::Subscribed => break,
                    Asked::Nothing => {}
                    Asked::Closed => return,
                }
            }
        }
        if self.replay().await.is_err() || self.serve(new).await.is_err() {
            return;
        }
        match then {
            Then::Stay => self.stay().await,
            Then::Drop => {
                // FIN after the data (no Close frame): the client reads what
                // was sent, then finds the connection gone.
                let _ = self.ws.get_mut().shutdown().await;
            }
            Then::Silent => {
                // Read (and drop) whatever comes, answer nothing.
                while let Some(Ok(_)) = self.ws.next().await {}
            }
            Then::Garbage => {
                for text in GARBAGE_TEXT {
                    if self.ws.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
                for data in GARBAGE_BINARY {
                    if self.ws.send(Message::binary(data.to_vec())).await.is_err() {
                        return;
                    }
                }
                if self.serve(None).await.is_err() {
                    return;
                }
                self.stay().await;
            }
            Then::ServerShutdown => {
                let event = serde_json::json!({"e": "serverShutdown", "E": now_ms()});
                let text = if self.raw {
                    event
                } else {
                    serde_json::json!({"stream": "!serverShutdown", "data": event})
                };
                if self.ws.send(Message::text(text.to_string())).await.is_err() {
                    return;
                }
                self.stay().await;
            }
        }
    }

    /// The streams of a Binance combined-stream URL; marks `/ws` raw.
    fn url_streams(&mut self, path: &str) -> Vec<String> {
        if self.shared.dialect != Dialect::Binance {
            return Vec::new();
        }
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        self.raw = route.trim_end_matches('/').ends_with("/ws");
        query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("streams="))
            .flat_map(|s| s.split('/'))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// On a reconnection (an earlier connection sent data), sends the last
    /// `replay_on_reconnect` frames sent before again, those of this
    /// connection's subscriptions.
    async fn replay(&mut self) -> Result<(), ()> {
        let subs = self.subscriptions();
        let replay: Vec<usize> = {
            let st = self.shared.state();
            let first = st.connections[..self.index]
                .iter()
                .all(|c| c.frames_sent == 0);
            if first {
                Vec::new()
            } else {
                let from = st
                    .sent
                    .len()
                    .saturating_sub(self.shared.replay_on_reconnect);
                st.sent[from..].to_vec()
            }
        };
        for i in replay {
            if subs.contains(&self.shared.frames[i].key) {
                self.send_frame(i).await?;
            }
        }
        Ok(())
    }

    /// Sends `new` frames of this connection's subscriptions not sent yet
    /// (every one left when `None`).
    async fn serve(&mut self, new: Option<usize>) -> Result<(), ()> {
        let subs = self.subscriptions();
        let mut left = new.unwrap_or(usize::MAX);
        while left > 0 {
            // Take the next frame under the lock, so two connections never
            // send the same new frame.
            let next = {
                let mut st = self.shared.state();
                let Some(i) = st.next_unserved(&self.shared.frames, &subs) else {
                    break;
                };
                st.served[i] = true;
                st.sent.push(i);
                i
            };
            self.send_frame(next).await?;
            left -= 1;
        }
        Ok(())
    }

    async fn send_frame(&mut self, i: usize) -> Result<(), ()> {
        let frame = &self.shared.frames[i];
        let text = if self.raw {
            let v: serde_json::Value = serde_json::from_str(&frame.text).map_err(|_| ())?;
            v["data"].to_string()
        } else {
            frame.text.clone()
        };
        self.ws.send(Message::text(text)).await.map_err(|_| ())?;
        self.shared.state().connections[self.index].frames_sent += 1;
        Ok(())
    }

    /// Answers requests and pings until the client leaves; new frames for
    /// a subscription made meanwhile are served.
    async fn stay(&mut self) {
        let far = Duration::from_secs(86_400);
        let every = self.shared.ping_every.unwrap_or(far);
        let mut ping = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            tokio::select! {
                asked = self.read() => match asked {
                    Asked::Closed => return,
                    Asked::Subscribed => if self.serve(None).await.is_err() { return },
                    Asked::Nothing => {}
                },
                _ = ping.tick(), if self.shared.ping_every.is_some() => {
                    if self.ws.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// Reads one message and answers it.
    async fn read(&mut self) -> Asked {
        let msg = match self.ws.next().await {
            Some(Ok(m)) => m,
            _ => return Asked::Closed,
        };
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Close(_) => return Asked::Closed,
            _ => return Asked::Nothing,
        };
        let (replies, subscribed) = self.request(&text);
        for r in replies {
            if self.ws.send(Message::text(r)).await.is_err() {
                return Asked::Closed;
            }
        }
        if subscribed {
            Asked::Subscribed
        } else {
            Asked::Nothing
        }
    }

    /// Records a client message; the answers, and whether it subscribed.
    fn request(&mut self, text: &str) -> (Vec<String>, bool) {
        if self.shared.dialect == Dialect::Okx && text == "ping" {
            return (vec!["pong".into()], false);
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
            return (Vec::new(), false);
        };
        let mut st = self.shared.state();
        let conn = &mut st.connections[self.index];
        match self.shared.dialect {
            Dialect::Binance if v["method"] == "SUBSCRIBE" => {
                conn.requests.push(text.to_string());
                let params = v["params"].as_array().cloned().unwrap_or_default();
                conn.subscriptions
                    .extend(params.iter().filter_map(|p| p.as_str().map(str::to_string)));
                let ack = serde_json::json!({"result": null, "id": v["id"]});
                (vec![ack.to_string()], true)
            }
            Dialect::Okx if v["op"] == "subscribe" => {
                conn.requests.push(text.to_string());
                let args = v["args"].as_array().cloned().unwrap_or_default();
                conn.subscriptions.extend(args.iter().map(okx_key));
                let acks = args
                    .iter()
                    .map(|a| serde_json::json!({"event": "subscribe", "arg": a}).to_string())
                    .collect();
                (acks, true)
            }
            _ => (Vec::new(), false),
        }
    }
}

impl State {
    /// The first frame of `subs` not sent yet.
    fn next_unserved(&self, frames: &[DataFrame], subs: &BTreeSet<String>) -> Option<usize> {
        (0..frames.len()).find(|&i| !self.served[i] && subs.contains(&frames[i].key))
    }
}

fn now_ms() -> i64 {
    marketd_model::time::now_ns() / 1_000_000
}
