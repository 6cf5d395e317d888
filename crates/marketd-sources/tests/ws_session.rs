//! The WebSocket session driver against a local mock server (tokio-tungstenite
//! on 127.0.0.1:0) and a tiny JSON protocol. Each test scripts what the
//! server does per connection; the server records what it received (the
//! subscribe frames of every connection, pings, pongs, attempt times), and
//! the tests wait on conditions with generous deadlines — no test sleeps to
//! synchronise or asserts how long something took beyond lower bounds the
//! code guarantees.

use futures::future::BoxFuture;
use futures::{FutureExt, SinkExt, StreamExt};
use marketd_sources::ws::{
    ConnectLimiters, ConnectRate, Inbound, Keepalive, ReconnectPolicy, SessionEnd, SessionOptions,
    SessionState, SessionStatus, WsError, WsProtocol, WsSession,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- protocol

/// `{"op":"subscribe","topic":T}` per topic; `{"data":S}` is one item `S`,
/// `{"ack":..}` an ack, `{"event":"shutdown"}` a shutdown notice,
/// `{"event":"ratelimit","retry_after":N}` an in-band rate limit, other
/// JSON is ignored, anything else is a decode error.
struct TestProtocol {
    url: Arc<Mutex<String>>,
    topics: Vec<String>,
    keepalive: Keepalive,
    connects: Arc<Mutex<usize>>,
}

impl TestProtocol {
    fn new(url: &str, topics: &[&str]) -> Self {
        TestProtocol {
            url: Arc::new(Mutex::new(url.to_string())),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            keepalive: Keepalive::None,
            connects: Arc::default(),
        }
    }
}

fn sub_frame(topic: &str) -> String {
    format!(r#"{{"op":"subscribe","topic":"{topic}"}}"#)
}

impl WsProtocol for TestProtocol {
    type Item = String;

    fn connect_url(&self) -> String {
        self.url.lock().unwrap().clone()
    }

    fn subscribe_frames(&self) -> Vec<String> {
        self.topics.iter().map(|t| sub_frame(t)).collect()
    }

    fn keepalive(&self) -> Keepalive {
        self.keepalive.clone()
    }

    fn on_connected(&mut self) {
        *self.connects.lock().unwrap() += 1;
    }

    fn on_text(&mut self, text: &str, _received_ns: i64, out: &mut Vec<String>) -> Inbound {
        let v: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Inbound::Error(e.to_string()),
        };
        if let Some(d) = v.get("data").and_then(|d| d.as_str()) {
            out.push(d.to_string());
            return Inbound::Data;
        }
        if v.get("ack").is_some() {
            return Inbound::Ack;
        }
        match v.get("event").and_then(|e| e.as_str()) {
            Some("shutdown") => Inbound::ServerShutdown,
            Some("ratelimit") => Inbound::RateLimited {
                retry_after: v
                    .get("retry_after")
                    .and_then(|r| r.as_u64())
                    .map(Duration::from_secs),
            },
            _ => Inbound::Ignored,
        }
    }
}

fn data(s: &str) -> String {
    format!(r#"{{"data":"{s}"}}"#)
}

// ---------------------------------------------------------------- mock server

#[derive(Debug, Default, Clone)]
struct ConnLog {
    /// Every text frame the client sent on this connection, in order.
    frames: Vec<String>,
    pings: usize,
    pongs: usize,
    /// The client ended the connection (close frame or EOF).
    client_closed: bool,
}

struct Conn {
    ws: WebSocketStream<TcpStream>,
    log: Arc<Mutex<ConnLog>>,
}

impl Conn {
    /// The next message, recorded; `None` once the client is gone.
    async fn recv(&mut self) -> Option<Message> {
        let msg = match self.ws.next().await {
            Some(Ok(m)) => m,
            _ => {
                self.log.lock().unwrap().client_closed = true;
                return None;
            }
        };
        let mut log = self.log.lock().unwrap();
        match &msg {
            Message::Text(t) => log.frames.push(t.to_string()),
            Message::Ping(_) => log.pings += 1,
            Message::Pong(_) => log.pongs += 1,
            Message::Close(_) => log.client_closed = true,
            _ => {}
        }
        Some(msg)
    }

    /// Reads the `n` subscribe frames of a connection.
    async fn subs(&mut self, n: usize) {
        while self.log.lock().unwrap().frames.len() < n {
            if self.recv().await.is_none() {
                return;
            }
        }
    }

    async fn send(&mut self, text: &str) {
        let _ = self.ws.send(Message::text(text)).await;
    }

    /// Reads (and records) until the client goes away.
    async fn hold(mut self) {
        while self.recv().await.is_some() {}
    }
}

type Handler = Arc<dyn Fn(usize, Conn) -> BoxFuture<'static, ()> + Send + Sync>;
/// Per attempt index: `Some((status, retry_after))` refuses the upgrade.
type Refuse = Arc<dyn Fn(usize) -> Option<(u16, Option<u64>)> + Send + Sync>;

struct Mock {
    url: String,
    conns: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>>,
    /// When each TCP connection (upgrade attempt) arrived.
    attempts: Arc<Mutex<Vec<std::time::Instant>>>,
    task: JoinHandle<()>,
}

impl Mock {
    async fn start(handler: Handler) -> Mock {
        Mock::start_refusing(Arc::new(|_| None), handler).await
    }

    async fn start_refusing(refuse: Refuse, handler: Handler) -> Mock {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/ws", listener.local_addr().unwrap());
        let conns: Arc<Mutex<Vec<Arc<Mutex<ConnLog>>>>> = Arc::default();
        let attempts: Arc<Mutex<Vec<std::time::Instant>>> = Arc::default();
        let (c, a) = (conns.clone(), attempts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let attempt = {
                    let mut a = a.lock().unwrap();
                    a.push(std::time::Instant::now());
                    a.len() - 1
                };
                let refusal = refuse(attempt);
                let (c, handler) = (c.clone(), handler.clone());
                tokio::spawn(async move {
                    // The signature is tungstenite's handshake callback, not ours.
                    #[allow(clippy::result_large_err)]
                    let cb = |_req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                        match refusal {
                            None => Ok(resp),
                            Some((status, retry_after)) => {
                                let mut r =
                                    tokio_tungstenite::tungstenite::http::Response::builder()
                                        .status(status);
                                if let Some(s) = retry_after {
                                    r = r.header("Retry-After", s.to_string());
                                }
                                Err(r.body(None).unwrap())
                            }
                        }
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
                        return;
                    };
                    let log = Arc::new(Mutex::new(ConnLog::default()));
                    let idx = {
                        let mut c = c.lock().unwrap();
                        c.push(log.clone());
                        c.len() - 1
                    };
                    handler(idx, Conn { ws, log }).await;
                });
            }
        });
        Mock {
            url,
            conns,
            attempts,
            task,
        }
    }

    fn conn(&self, i: usize) -> ConnLog {
        self.conns.lock().unwrap()[i].lock().unwrap().clone()
    }

    fn n_conns(&self) -> usize {
        self.conns.lock().unwrap().len()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- helpers

fn options() -> SessionOptions {
    SessionOptions {
        connect_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(30),
        reconnect: ReconnectPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(50),
            healthy_after: Duration::from_secs(60),
        },
        jitter_seed: Some(1),
        // Each test has its own gates, so parallel tests do not share a budget.
        limiters: Arc::new(ConnectLimiters::new(ConnectRate {
            per_second: 1000,
            burst: 1000,
        })),
        ..SessionOptions::default()
    }
}

struct Running {
    status: Arc<SessionStatus>,
    rx: mpsc::Receiver<Vec<String>>,
    cancel: CancellationToken,
    task: JoinHandle<Result<SessionEnd, WsError>>,
}

fn spawn(protocol: TestProtocol, options: SessionOptions, capacity: usize) -> Running {
    let session = WsSession::new("mock", protocol, options);
    let status = session.status();
    let (tx, rx) = mpsc::channel(capacity);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(session.run(tx, cancel.clone()));
    Running {
        status,
        rx,
        cancel,
        task,
    }
}

impl Running {
    /// The next item, or a panic naming what was expected.
    async fn next(&mut self, what: &str) -> String {
        loop {
            let batch = tokio::time::timeout(DEADLINE, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "no {what} within {DEADLINE:?}: {:?}",
                        self.status.snapshot()
                    )
                })
                .expect("session ended");
            if let Some(first) = batch.into_iter().next() {
                return first;
            }
        }
    }

    async fn expect(&mut self, item: &str) {
        assert_eq!(self.next(item).await, item);
    }

    async fn stop(self) {
        self.cancel.cancel();
        let end = tokio::time::timeout(DEADLINE, self.task)
            .await
            .expect("session did not stop")
            .unwrap();
        assert_eq!(end, Ok(SessionEnd::Cancelled));
        assert_eq!(self.status.state(), SessionState::Stopped);
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(usize, Conn) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |i, c| f(i, c).boxed())
}

// ---------------------------------------------------------------- scenarios

#[tokio::test]
async fn dropped_connection_reconnects_and_resubscribes_everything() {
    let mock = Mock::start(handler(|i, mut c| async move {
        c.subs(3).await;
        c.send(&data(&format!("d{i}"))).await;
        if i == 0 {
            // Drop the TCP connection without a close frame.
            return;
        }
        c.hold().await;
    }))
    .await;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a", "b", "c"]), options(), 8);
    s.expect("d0").await;
    s.expect("d1").await;
    let expected: Vec<String> = ["a", "b", "c"].iter().map(|t| sub_frame(t)).collect();
    assert_eq!(mock.conn(0).frames, expected);
    assert_eq!(mock.conn(1).frames, expected, "all subscriptions again");
    let st = s.status.snapshot();
    assert_eq!(st.reconnects, 1);
    assert_eq!(st.state, SessionState::Running);
    assert_eq!(st.items, 2);
    assert!(st.connected_since.is_some() && st.last_message_at.is_some());
    assert!(st.last_error.is_some(), "the drop is reported");
    s.stop().await;
}

#[tokio::test]
async fn silent_server_is_replaced_after_the_idle_timeout() {
    let mock = Mock::start(handler(|i, mut c| async move {
        c.subs(1).await;
        c.send(&data(&format!("d{i}"))).await;
        // Then silence: nothing more is sent, whatever the client does.
        c.hold().await;
    }))
    .await;
    let mut opts = options();
    opts.idle_timeout = Duration::from_millis(300);
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), opts, 8);
    s.expect("d0").await;
    s.expect("d1").await;
    assert!(
        mock.conn(0).client_closed,
        "the stale connection was closed"
    );
    assert_eq!(mock.conn(1).frames, vec![sub_frame("a")]);
    let err = s.status.last_error().unwrap();
    assert!(err.contains("no message from the server"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn garbage_and_binary_frames_are_counted_and_the_session_goes_on() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        c.send("this is not json").await;
        let _ =
            c.ws.send(Message::Binary(Bytes::from_static(&[0, 159, 146, 150])))
                .await;
        c.send(r#"{"hello":"world"}"#).await;
        c.send(r#"{"ack":true}"#).await;
        c.send(&data("after")).await;
        c.hold().await;
    }))
    .await;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), options(), 8);
    s.expect("after").await;
    let st = s.status.snapshot();
    assert_eq!(st.decode_errors, 1);
    assert_eq!(st.ignored, 2, "the binary frame and the unknown message");
    assert_eq!(st.messages_received, 5);
    assert_eq!(st.items, 1);
    assert_eq!(st.reconnects, 0);
    assert_eq!(mock.n_conns(), 1);
    assert!(st.last_error.unwrap().starts_with("decode error"));
    s.stop().await;
}

#[tokio::test]
async fn http_429_on_the_upgrade_cools_down_for_retry_after_for_every_session_to_the_host() {
    let mock = Mock::start_refusing(
        Arc::new(|attempt| (attempt == 0).then_some((429, Some(1)))),
        handler(|i, mut c| async move {
            c.subs(1).await;
            c.send(&data(&format!("d{i}"))).await;
            c.hold().await;
        }),
    )
    .await;
    let mut opts = options();
    // Were Retry-After ignored, the wait would be far beyond the deadline.
    opts.default_cooldown = Duration::from_secs(600);
    let mut a = spawn(TestProtocol::new(&mock.url, &["a"]), opts.clone(), 8);
    wait_until("the cool-down", || {
        a.status.state() == SessionState::CoolingDown
    })
    .await;
    let st = a.status.snapshot();
    assert!(st.cooldown_until.is_some());
    assert!(st.last_error.unwrap().contains("HTTP 429"));
    // A second session to the same host, sharing the gates, waits too.
    let mut b = spawn(TestProtocol::new(&mock.url, &["b"]), opts, 8);
    a.next("data after the cool-down").await;
    b.next("data after the cool-down").await;
    let attempts = mock.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3, "one refused, then one per session");
    for later in &attempts[1..] {
        assert!(
            *later - attempts[0] >= Duration::from_millis(1000),
            "an attempt {:?} after the 429",
            *later - attempts[0]
        );
    }
    assert_eq!(a.status.cooldown_until(), None, "cleared once connected");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn server_shutdown_and_polite_close_reconnect_at_once_without_backoff() {
    let mock = Mock::start(handler(|i, mut c| async move {
        c.subs(1).await;
        c.send(&data(&format!("d{i}"))).await;
        match i {
            0 | 2 => c.send(r#"{"event":"shutdown"}"#).await,
            1 => {
                let _ =
                    c.ws.close(Some(CloseFrame {
                        code: CloseCode::Away,
                        reason: "maintenance".into(),
                    }))
                    .await;
            }
            _ => {}
        }
        c.hold().await;
    }))
    .await;
    let mut opts = options();
    // Counted as failures, the 2nd and 3rd reconnects would wait up to an hour.
    opts.reconnect.base = Duration::from_secs(3600);
    opts.reconnect.cap = Duration::from_secs(3600);
    opts.jitter_seed = None;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), opts, 8);
    for i in 0..4 {
        s.expect(&format!("d{i}")).await;
    }
    assert_eq!(s.status.reconnects(), 3);
    for i in 0..4 {
        assert_eq!(mock.conn(i).frames, vec![sub_frame("a")]);
    }
    s.stop().await;
}

#[tokio::test]
async fn the_session_follows_a_server_that_moved_to_another_port() {
    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let first = Mock::start(handler(move |_, mut c| {
        let mut release = release_rx.clone();
        async move {
            c.subs(1).await;
            c.send(&data("old")).await;
            let _ = release.wait_for(|r| *r).await;
            // Dropping the connection: the old server is gone.
        }
    }))
    .await;
    let protocol = TestProtocol::new(&first.url, &["a"]);
    let url = protocol.url.clone();
    let mut s = spawn(protocol, options(), 8);
    s.expect("old").await;

    let second = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        c.send(&data("new")).await;
        c.hold().await;
    }))
    .await;
    assert_ne!(first.url, second.url);
    *url.lock().unwrap() = second.url.clone();
    drop(first); // stops accepting
    release_tx.send(true).unwrap();
    s.expect("new").await;
    assert_eq!(second.conn(0).frames, vec![sub_frame("a")]);
    s.stop().await;
}

#[tokio::test]
async fn text_pings_answered_keep_the_session_up() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        while let Some(m) = c.recv().await {
            if matches!(&m, Message::Text(t) if t.as_str() == "ping") {
                c.send("pong").await;
            }
        }
    }))
    .await;
    let mut p = TestProtocol::new(&mock.url, &["a"]);
    p.keepalive = Keepalive::Text {
        ping: "ping".into(),
        pong: Some("pong".into()),
        every: Duration::from_millis(50),
        pong_timeout: Duration::from_secs(10),
    };
    let s = spawn(p, options(), 8);
    wait_until("five pings", || {
        mock.n_conns() == 1 && mock.conn(0).frames.iter().filter(|f| *f == "ping").count() >= 5
    })
    .await;
    assert_eq!(mock.n_conns(), 1);
    assert_eq!(s.status.reconnects(), 0);
    assert_eq!(s.status.items(), 0, "pongs are not data");
    assert_eq!(s.status.decode_errors(), 0, "the protocol never saw a pong");
    s.stop().await;
}

#[tokio::test]
async fn unanswered_text_pings_reconnect() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        c.hold().await; // never answers
    }))
    .await;
    let mut p = TestProtocol::new(&mock.url, &["a"]);
    p.keepalive = Keepalive::Text {
        ping: "ping".into(),
        pong: Some("pong".into()),
        every: Duration::from_millis(50),
        pong_timeout: Duration::from_millis(200),
    };
    let s = spawn(p, options(), 8);
    wait_until("a second connection", || mock.n_conns() >= 2).await;
    wait_until("the resubscription", || !mock.conn(1).frames.is_empty()).await;
    assert_eq!(mock.conn(1).frames[0], sub_frame("a"));
    let err = s.status.last_error().unwrap();
    assert!(err.contains("no pong"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn server_control_pings_get_a_pong_at_once() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        let _ = c.ws.send(Message::Ping(Bytes::from_static(b"hb"))).await;
        c.hold().await;
    }))
    .await;
    let s = spawn(TestProtocol::new(&mock.url, &["a"]), options(), 8);
    wait_until("the pong", || {
        mock.n_conns() == 1 && mock.conn(0).pongs == 1
    })
    .await;
    assert_eq!(
        s.status.messages_received(),
        1,
        "the ping counts as traffic"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_slows_reading_and_a_gone_one_stops_the_session() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        for i in 0..10_000 {
            if c.ws
                .send(Message::text(data(&i.to_string())))
                .await
                .is_err()
            {
                return;
            }
        }
        c.hold().await;
    }))
    .await;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), options(), 2);
    for i in 0..3 {
        s.expect(&i.to_string()).await;
    }
    // The channel (2) fills again, then the reader blocks on the third batch.
    wait_until("a full channel", || s.status.items() >= 5).await;
    let st = s.status.snapshot();
    assert_eq!(st.items, 5, "delivered: 3 taken + 2 queued");
    assert!(
        st.messages_received <= 6,
        "read ahead of the consumer: {}",
        st.messages_received
    );
    drop(s.rx);
    let end = tokio::time::timeout(DEADLINE, s.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(end, Ok(SessionEnd::ConsumerGone));
    assert_eq!(s.status.state(), SessionState::Stopped);
}

#[tokio::test]
async fn oversized_messages_drop_the_connection_not_the_session() {
    let mock = Mock::start(handler(|i, mut c| async move {
        c.subs(1).await;
        if i == 0 {
            c.send(&data(&"x".repeat(4096))).await;
        } else {
            c.send(&data("small")).await;
        }
        c.hold().await;
    }))
    .await;
    let mut opts = options();
    opts.max_message_size = 1024;
    opts.max_frame_size = 1024;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), opts, 8);
    s.expect("small").await;
    assert_eq!(s.status.reconnects(), 1);
    let err = s.status.last_error().unwrap();
    assert!(err.contains("too long") || err.contains("too big"), "{err}");
    s.stop().await;
}

#[tokio::test]
async fn in_band_rate_limit_cools_down() {
    let mock = Mock::start(handler(|i, mut c| async move {
        c.subs(1).await;
        if i == 0 {
            c.send(r#"{"event":"ratelimit","retry_after":1}"#).await;
        } else {
            c.send(&data("back")).await;
        }
        c.hold().await;
    }))
    .await;
    let mut s = spawn(TestProtocol::new(&mock.url, &["a"]), options(), 8);
    wait_until("the cool-down", || {
        s.status.state() == SessionState::CoolingDown
    })
    .await;
    s.expect("back").await;
    let attempts = mock.attempts.lock().unwrap().clone();
    assert!(attempts[1] - attempts[0] >= Duration::from_secs(1));
    s.stop().await;
}

#[tokio::test]
async fn an_invalid_url_fails_the_session() {
    let s = spawn(
        TestProtocol::new("not a url?token=s3cret", &["a"]),
        options(),
        8,
    );
    let end = tokio::time::timeout(DEADLINE, s.task)
        .await
        .unwrap()
        .unwrap();
    let err = end.unwrap_err();
    assert!(matches!(err, WsError::InvalidUrl { .. }), "{err}");
    assert_eq!(s.status.state(), SessionState::Failed);
    assert!(!s.status.last_error().unwrap().contains("s3cret"));
}

#[tokio::test]
async fn max_consecutive_failures_gives_up() {
    // A port nobody listens on any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut opts = options();
    opts.max_consecutive_failures = Some(3);
    let s = spawn(TestProtocol::new(&format!("ws://{addr}/"), &["a"]), opts, 8);
    let end = tokio::time::timeout(DEADLINE, s.task)
        .await
        .unwrap()
        .unwrap();
    match end {
        Err(WsError::GaveUp { failures, last }) => {
            assert_eq!(failures, 3);
            assert!(matches!(*last, WsError::Connect { .. }), "{last}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.status.state(), SessionState::Failed);
}

#[tokio::test]
async fn control_pings_answered_keep_the_session_up() {
    let mock = Mock::start(handler(|_, mut c| async move {
        c.subs(1).await;
        c.hold().await; // tungstenite answers control pings by itself
    }))
    .await;
    let mut p = TestProtocol::new(&mock.url, &["a"]);
    p.keepalive = Keepalive::Control {
        every: Duration::from_millis(50),
        pong_timeout: Duration::from_secs(10),
    };
    let s = spawn(p, options(), 8);
    wait_until("five control pings", || {
        mock.n_conns() == 1 && mock.conn(0).pings >= 5
    })
    .await;
    assert_eq!(s.status.reconnects(), 0);
    assert!(s.status.messages_received() >= 1, "pongs count as traffic");
    s.stop().await;
}

#[tokio::test]
async fn wss_urls_start_a_tls_handshake() {
    // A bare TCP server: it records the first byte the client sends (a TLS
    // handshake record is 0x16) and hangs up. The certificate check never
    // happens; what is tested is that the rustls path is built and used.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut tcp, &mut first)
            .await
            .unwrap();
        first[0]
    });
    let mut opts = options();
    opts.max_consecutive_failures = Some(1);
    let s = spawn(
        TestProtocol::new(&format!("wss://{addr}/ws"), &["a"]),
        opts,
        8,
    );
    assert_eq!(
        tokio::time::timeout(DEADLINE, server)
            .await
            .unwrap()
            .unwrap(),
        0x16,
        "a TLS ClientHello"
    );
    let end = tokio::time::timeout(DEADLINE, s.task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(end, Err(WsError::GaveUp { .. })), "{end:?}");
}
