//! The session driver: one loop that connects, subscribes, reads, keeps the
//! connection alive and replaces it when it dies, for any [`WsProtocol`].
//!
//! Every way a feed goes quiet ends in a reconnect: a dropped socket, a Close
//! frame, a server's shutdown notice, a missing pong, or simply no message
//! for `idle_timeout`. Reconnects go through the host's connect gate (spacing
//! and shared cool-downs) and the session's backoff; every connection
//! resubscribes from `subscribe_frames`.

use super::error::WsError;
use super::limiter::HostGate;
use super::options::SessionOptions;
use super::protocol::{Inbound, Keepalive, WsProtocol};
use super::reconnect::ReconnectBackoff;
use super::sink::ItemSink;
use super::status::{Recorder, SessionState, SessionStatus};
use super::tls;
use futures::{SinkExt, StreamExt};
use marketd_model::time::now_ns;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why [`run_session`] returned without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The cancellation token fired.
    Cancelled,
    /// The consumer dropped its receiver.
    ConsumerGone,
}

/// A protocol with its options and status, ready to run.
pub struct WsSession<P: WsProtocol> {
    protocol: P,
    options: SessionOptions,
    status: Arc<SessionStatus>,
}

impl<P: WsProtocol> std::fmt::Debug for WsSession<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSession")
            .field("status", &self.status.name())
            .finish_non_exhaustive()
    }
}

impl<P: WsProtocol> WsSession<P> {
    /// A session named `name` (the venue or connector: the status's name
    /// and the metrics label value).
    pub fn new(name: impl Into<String>, protocol: P, options: SessionOptions) -> Self {
        WsSession {
            protocol,
            options,
            status: Arc::new(SessionStatus::new(name)),
        }
    }

    /// The live status; keep a clone to watch the session while it runs.
    pub fn status(&self) -> Arc<SessionStatus> {
        self.status.clone()
    }

    /// Runs until cancelled, the consumer goes away, or a fatal error.
    pub async fn run<S: ItemSink<P::Item>>(
        self,
        sink: S,
        cancel: CancellationToken,
    ) -> Result<SessionEnd, WsError> {
        run_session(self.protocol, self.options, sink, self.status, cancel).await
    }
}

/// Drives `protocol` until `cancel` fires (`Ok(Cancelled)`), the sink's
/// consumer is gone (`Ok(ConsumerGone)`), or the session cannot go on
/// (`Err`: an invalid URL, or `max_consecutive_failures` reached). `status`
/// is updated throughout; its final state is `stopped` or `failed`.
pub async fn run_session<P, S>(
    mut protocol: P,
    options: SessionOptions,
    mut sink: S,
    status: Arc<SessionStatus>,
    cancel: CancellationToken,
) -> Result<SessionEnd, WsError>
where
    P: WsProtocol,
    S: ItemSink<P::Item>,
{
    let rec = Recorder::new(status, options.label_key);
    let mut backoff = match options.jitter_seed {
        Some(seed) => ReconnectBackoff::seeded(options.reconnect, seed),
        None => ReconnectBackoff::new(options.reconnect),
    };
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(options.max_message_size))
        .max_frame_size(Some(options.max_frame_size));
    // Reused for every message of every connection.
    let mut out: Vec<P::Item> = Vec::new();
    let mut first = true;
    rec.status.set_state(SessionState::Connecting);

    let result = loop {
        let url = protocol.connect_url();
        let (request, host) = match parse_url(&url) {
            Ok(x) => x,
            Err(e) => break Err(e),
        };
        let gate = options.limiters.gate(&host);
        if !wait_for_gate(&gate, &rec, &cancel).await {
            break Ok(SessionEnd::Cancelled);
        }
        if !first {
            rec.status.set_state(SessionState::Reconnecting);
        }

        let connector = if request.uri().scheme_str() == Some("wss") {
            match tls::client_config(options.tls_roots) {
                Ok(cfg) => Connector::Rustls(cfg),
                Err(reason) => break Err(WsError::Connect { host, reason }),
            }
        } else {
            Connector::Plain
        };
        let attempt = timeout(
            options.connect_timeout,
            tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(ws_config),
                true,
                Some(connector),
            ),
        );
        let connected = tokio::select! {
            _ = cancel.cancelled() => break Ok(SessionEnd::Cancelled),
            r = attempt => r,
        };

        let ended = match connected {
            Err(_elapsed) => Ended::Failed(WsError::ConnectTimeout {
                host: host.clone(),
                after: options.connect_timeout,
            }),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                let status = resp.status().as_u16();
                if status == 429 || status == 418 {
                    let cooldown = retry_after(resp.headers())
                        .unwrap_or(options.default_cooldown)
                        .min(options.max_cooldown);
                    Ended::RateLimited(WsError::RateLimited {
                        host: host.clone(),
                        status,
                        cooldown,
                    })
                } else {
                    Ended::Failed(WsError::Upgrade {
                        host: host.clone(),
                        status,
                    })
                }
            }
            Ok(Err(e)) => Ended::Failed(WsError::Connect {
                host: host.clone(),
                reason: e.to_string(),
            }),
            Ok(Ok((mut ws, _response))) => {
                rec.connected(now_ns(), first);
                first = false;
                backoff.connected(Instant::now());
                tracing::info!(session = rec.status.name(), %host, "websocket connected");
                protocol.on_connected();
                let ended = drive(
                    &mut ws,
                    &mut protocol,
                    &mut sink,
                    &rec,
                    &options,
                    &cancel,
                    &mut out,
                )
                .await;
                rec.disconnected(ended.reason());
                // Best effort: say goodbye (or flush the reply to the
                // server's Close); a dead peer must not hold us up.
                let _ = timeout(Duration::from_secs(1), ws.close(None)).await;
                ended
            }
        };
        if ended.is_connect_failure() {
            rec.connect_failed(ended.reason());
        }
        let now = Instant::now();
        let delay = match ended {
            Ended::Cancelled => break Ok(SessionEnd::Cancelled),
            Ended::SinkClosed => break Ok(SessionEnd::ConsumerGone),
            Ended::Polite(why) => {
                tracing::info!(session = rec.status.name(), %host, why, "server closed; reconnecting at once");
                rec.status.set_error(format!("server closed: {why}"));
                backoff.polite_close(now)
            }
            Ended::RateLimited(err) => {
                let cooldown = match &err {
                    WsError::RateLimited { cooldown, .. } | WsError::InBandRateLimit(cooldown) => {
                        *cooldown
                    }
                    _ => options.default_cooldown,
                };
                tracing::warn!(session = rec.status.name(), %host, error = %err, "rate limited");
                gate.cool_down(now + cooldown);
                rec.cooldown(now_ns().saturating_add(duration_ns(cooldown)));
                rec.status.set_error(err.to_string());
                backoff.failed(now);
                if let Some(e) = give_up(&backoff, &options, err) {
                    break Err(e);
                }
                // The gate's cool-down is the wait.
                continue;
            }
            Ended::Failed(err) => {
                let delay = backoff.failed(now);
                tracing::warn!(session = rec.status.name(), %host, error = %err, ?delay, "websocket down; reconnecting");
                rec.status.set_error(err.to_string());
                if let Some(e) = give_up(&backoff, &options, err) {
                    break Err(e);
                }
                delay
            }
        };
        rec.status.set_state(SessionState::Reconnecting);
        if !delay.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => break Ok(SessionEnd::Cancelled),
                () = sleep(delay) => {}
            }
        }
    };

    match &result {
        Ok(_) => rec.status.set_state(SessionState::Stopped),
        Err(e) => {
            rec.status.set_error(e.to_string());
            rec.status.set_state(SessionState::Failed);
            tracing::error!(session = rec.status.name(), error = %e, "websocket session failed");
        }
    }
    rec.status.set_connected_since(0);
    result
}

/// How one connection (or attempt) ended.
enum Ended {
    Cancelled,
    SinkClosed,
    /// The server closed politely or announced a shutdown.
    Polite(String),
    RateLimited(WsError),
    Failed(WsError),
}

impl Ended {
    fn reason(&self) -> &'static str {
        match self {
            Ended::Cancelled => "cancelled",
            Ended::SinkClosed => "consumer_gone",
            Ended::Polite(_) => "server_closed",
            Ended::RateLimited(_) => "rate_limited",
            Ended::Failed(e) => e.kind(),
        }
    }

    fn is_connect_failure(&self) -> bool {
        matches!(
            self,
            Ended::RateLimited(WsError::RateLimited { .. })
                | Ended::Failed(
                    WsError::Connect { .. }
                        | WsError::ConnectTimeout { .. }
                        | WsError::Upgrade { .. }
                )
        )
    }
}

fn give_up(backoff: &ReconnectBackoff, options: &SessionOptions, last: WsError) -> Option<WsError> {
    let max = options.max_consecutive_failures?;
    (backoff.failures() >= max).then(|| WsError::GaveUp {
        failures: backoff.failures(),
        last: Box::new(last),
    })
}

/// Waits out the host's cool-down (state `cooling_down`), then for a
/// connect token. `false` when cancelled.
async fn wait_for_gate(gate: &HostGate, rec: &Recorder, cancel: &CancellationToken) -> bool {
    loop {
        if let Some(until) = gate.cooldown_until() {
            let left = until.saturating_duration_since(Instant::now());
            rec.status.set_state(SessionState::CoolingDown);
            rec.status
                .set_cooldown_until(now_ns().saturating_add(duration_ns(left)));
            tokio::select! {
                _ = cancel.cancelled() => return false,
                () = sleep_until(until) => {}
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return false,
            () = gate.acquire() => {}
        }
        // Another session may have been rate-limited while we queued.
        if gate.cooldown_until().is_none() {
            return true;
        }
    }
}

fn parse_url(url: &str) -> Result<(tungstenite::handshake::client::Request, String), WsError> {
    // Never show the query: it may carry a token.
    let shown = || url.split('?').next().unwrap_or_default().to_string();
    let request = url.into_client_request().map_err(|e| WsError::InvalidUrl {
        url: shown(),
        reason: e.to_string(),
    })?;
    let host = request
        .uri()
        .host()
        .map(str::to_string)
        .ok_or_else(|| WsError::InvalidUrl {
            url: shown(),
            reason: "no host".into(),
        })?;
    Ok((request, host))
}

/// `Retry-After` in seconds (the HTTP-date form is not used by venues on
/// upgrades; it falls back to the default cool-down).
pub(crate) fn retry_after(headers: &tungstenite::http::HeaderMap) -> Option<Duration> {
    let v = headers.get(tungstenite::http::header::RETRY_AFTER)?;
    let secs: u64 = v.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs))
}

fn duration_ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// A Close frame the server sends when it goes away on purpose.
fn is_polite(frame: Option<&CloseFrame>) -> bool {
    frame.is_none_or(|f| {
        matches!(
            f.code,
            CloseCode::Normal | CloseCode::Away | CloseCode::Restart
        )
    })
}

/// The keepalive of one connection: a single timer that fires at the next
/// ping or at the outstanding pong's deadline, whichever is first.
struct Pinger {
    ping: Message,
    pong_text: Option<String>,
    every: Duration,
    pong_timeout: Duration,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
}

impl Pinger {
    fn new(k: Keepalive, now: Instant) -> Option<Self> {
        let (ping, pong_text, every, pong_timeout) = match k {
            Keepalive::None => return None,
            Keepalive::Text {
                ping,
                pong,
                every,
                pong_timeout,
            } => (
                Message::Text(Utf8Bytes::from(ping)),
                pong,
                every,
                pong_timeout,
            ),
            Keepalive::Control {
                every,
                pong_timeout,
            } => (Message::Ping(Default::default()), None, every, pong_timeout),
        };
        Some(Pinger {
            ping,
            pong_text,
            every,
            pong_timeout,
            next_ping: now + every,
            pong_deadline: None,
        })
    }

    fn next_wake(&self) -> Instant {
        match self.pong_deadline {
            Some(d) => d.min(self.next_ping),
            None => self.next_ping,
        }
    }
}

/// Reads one connection until it ends.
async fn drive<P, S>(
    ws: &mut Ws,
    protocol: &mut P,
    sink: &mut S,
    rec: &Recorder,
    options: &SessionOptions,
    cancel: &CancellationToken,
    out: &mut Vec<P::Item>,
) -> Ended
where
    P: WsProtocol,
    S: ItemSink<P::Item>,
{
    for (i, frame) in protocol.subscribe_frames().into_iter().enumerate() {
        if i > 0 && !options.subscribe_interval.is_zero() {
            tokio::select! {
                _ = cancel.cancelled() => return Ended::Cancelled,
                () = sleep(options.subscribe_interval) => {}
            }
        }
        if let Err(e) = ws.send(Message::Text(frame.into())).await {
            return Ended::Failed(WsError::Socket(format!("sending a subscribe frame: {e}")));
        }
    }

    let idle_timeout = options.idle_timeout;
    let start = Instant::now();
    let mut pinger = Pinger::new(protocol.keepalive(), start);
    // One timer per concern, re-armed lazily: the read path only stores an
    // `Instant`, it never touches the timer wheel.
    let mut last_activity = start;
    let idle = sleep_until(start + idle_timeout);
    tokio::pin!(idle);
    let far = start + Duration::from_secs(86_400 * 365);
    let keepalive = sleep_until(pinger.as_ref().map_or(far, Pinger::next_wake));
    tokio::pin!(keepalive);

    loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ended::Cancelled,
            msg = ws.next() => {
                let msg = match msg {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => return socket_error(e),
                    None => return Ended::Failed(WsError::Closed("the connection ended".into())),
                };
                last_activity = Instant::now();
                let received_ns = now_ns();
                rec.message(received_ns);
                let inbound = match &msg {
                    Message::Text(text) => {
                        if let Some(p) = pinger.as_mut()
                            && p.pong_text.as_deref() == Some(text.as_str())
                        {
                            p.pong_deadline = None;
                            continue;
                        }
                        protocol.on_text(text.as_str(), received_ns, out)
                    }
                    Message::Binary(data) => protocol.on_binary(data, received_ns, out),
                    Message::Ping(_) => {
                        // tungstenite queued the pong; push it out now rather
                        // than on the next read, which may be a while.
                        if let Err(e) = ws.flush().await {
                            return socket_error(e);
                        }
                        continue;
                    }
                    Message::Pong(_) => {
                        if let Some(p) = pinger.as_mut() {
                            p.pong_deadline = None;
                        }
                        continue;
                    }
                    Message::Close(frame) => {
                        let frame = frame.as_ref();
                        let why = frame.map_or_else(
                            || "close without a code".to_string(),
                            |f| format!("code {}, {:?}", u16::from(f.code), f.reason.as_str()),
                        );
                        return if is_polite(frame) {
                            Ended::Polite(why)
                        } else {
                            Ended::Failed(WsError::Closed(why))
                        };
                    }
                    Message::Frame(_) => continue,
                };
                let n = out.len();
                if n > 0 {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ended::Cancelled,
                        r = sink.deliver(out) => if r.is_err() { return Ended::SinkClosed },
                    }
                    rec.items(n);
                    // Time spent waiting for a slow consumer is not the
                    // server's silence.
                    last_activity = Instant::now();
                    out.clear();
                }
                match inbound {
                    Inbound::Data | Inbound::Ack => {}
                    Inbound::Pong => {
                        if let Some(p) = pinger.as_mut() {
                            p.pong_deadline = None;
                        }
                    }
                    Inbound::Reply(text) => {
                        if let Err(e) = ws.send(Message::Text(text.into())).await {
                            return socket_error(e);
                        }
                    }
                    Inbound::ServerShutdown => {
                        return Ended::Polite("the server announced a shutdown".into());
                    }
                    Inbound::RateLimited { retry_after } => {
                        let d = retry_after
                            .unwrap_or(options.default_cooldown)
                            .min(options.max_cooldown);
                        return Ended::RateLimited(WsError::InBandRateLimit(d));
                    }
                    Inbound::Error(e) => rec.decode_error(&e),
                    Inbound::Ignored => rec.ignored(),
                }
            }
            () = &mut idle => {
                let deadline = last_activity + idle_timeout;
                if deadline <= Instant::now() {
                    return Ended::Failed(WsError::Idle(idle_timeout));
                }
                idle.as_mut().reset(deadline);
            }
            () = &mut keepalive, if pinger.is_some() => {
                let Some(p) = pinger.as_mut() else { continue };
                let now = Instant::now();
                if p.pong_deadline.is_some_and(|d| d <= now) {
                    return Ended::Failed(WsError::PongTimeout(p.pong_timeout));
                }
                if p.next_ping <= now {
                    if let Err(e) = ws.send(p.ping.clone()).await {
                        return socket_error(e);
                    }
                    p.next_ping = now + p.every;
                    p.pong_deadline.get_or_insert(now + p.pong_timeout);
                }
                keepalive.as_mut().reset(p.next_wake());
            }
        }
    }
}

fn socket_error(e: tungstenite::Error) -> Ended {
    match e {
        // The close handshake completed: the server closed, we answered.
        tungstenite::Error::ConnectionClosed => Ended::Polite("connection closed".into()),
        e => Ended::Failed(WsError::Socket(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::http::{HeaderMap, HeaderValue};

    #[test]
    fn retry_after_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None, "dates fall back to the default");
    }

    #[test]
    fn polite_closes() {
        assert!(is_polite(None));
        for (code, polite) in [
            (CloseCode::Normal, true),
            (CloseCode::Away, true),
            (CloseCode::Restart, true),
            (CloseCode::Again, false),
            (CloseCode::Policy, false),
            (CloseCode::Error, false),
        ] {
            let f = CloseFrame {
                code,
                reason: "".into(),
            };
            assert_eq!(is_polite(Some(&f)), polite, "{code:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_never_shown_with_their_query() {
        let (_, host) = parse_url("wss://Stream.Example:9443/ws?x=1").unwrap();
        assert_eq!(host, "Stream.Example", "the gate registry folds the case");
        let err = parse_url("not a url?token=secret").unwrap_err();
        assert!(matches!(err, WsError::InvalidUrl { .. }));
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
