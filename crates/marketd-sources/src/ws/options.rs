//! The knobs of a session. The defaults suit a public exchange feed: a
//! connect timeout of 10 s, an idle timeout of 60 s (venues send data,
//! heartbeats or pings more often than that), reconnects backing off to 30 s
//! and reset after a healthy minute, the process-wide per-host connect gates.

use super::limiter::ConnectLimiters;
use super::reconnect::ReconnectPolicy;
use std::sync::Arc;
use std::time::Duration;

/// Which certificate roots `wss://` trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRoots {
    /// Mozilla's roots compiled in (`webpki-roots`), as `reqwest` does here:
    /// the same on every machine, nothing read from the OS.
    #[default]
    Webpki,
    /// The operating system's store (`rustls-native-certs`), for networks
    /// with a TLS-inspecting proxy whose CA is installed on the host.
    Native,
    /// Both.
    WebpkiAndNative,
}

/// How a session connects, reads and reconnects.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The metrics label key: `"venue"` for exchange feeds, `"connector"`
    /// for connectors. The value is the status's name.
    pub label_key: &'static str,
    /// DNS, TCP, TLS and the HTTP upgrade together.
    pub connect_timeout: Duration,
    /// No message of any kind (data, pong, control frame) for this long:
    /// the connection is presumed dead and replaced.
    pub idle_timeout: Duration,
    pub reconnect: ReconnectPolicy,
    /// Seed of the reconnect jitter (reproducible runs); random when `None`.
    pub jitter_seed: Option<u64>,
    /// Cool-down after a 429/418 (or in-band rate limit) without `Retry-After`.
    pub default_cooldown: Duration,
    /// Upper bound of a cool-down, whatever `Retry-After` says.
    pub max_cooldown: Duration,
    /// Largest message accepted (larger: the connection is dropped).
    pub max_message_size: usize,
    /// Largest single frame accepted.
    pub max_frame_size: usize,
    /// Pause between two subscribe frames (venues limit inbound messages per
    /// second, e.g. Binance 5/s); zero sends them back to back.
    pub subscribe_interval: Duration,
    /// Stop (state `failed`) after this many consecutive failures; `None`
    /// retries forever, which is what a supervised feed wants.
    pub max_consecutive_failures: Option<u32>,
    pub tls_roots: TlsRoots,
    /// The per-host connect gates this session shares.
    pub limiters: Arc<ConnectLimiters>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            label_key: "venue",
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            reconnect: ReconnectPolicy::default(),
            jitter_seed: None,
            default_cooldown: Duration::from_secs(60),
            max_cooldown: Duration::from_secs(3600),
            max_message_size: 16 << 20,
            max_frame_size: 4 << 20,
            subscribe_interval: Duration::ZERO,
            max_consecutive_failures: None,
            tls_roots: TlsRoots::default(),
            limiters: ConnectLimiters::global(),
        }
    }
}
