//! Replaying a recorded venue session (`marketd replay CAPTURE`): the
//! frames of a capture in the format of `shared/fixtures/captures`
//! ([`marketd_sources::venues::capture`]) go through the same venue
//! decoders a live WebSocket connector uses and onto the `ticks` topic, so
//! the normal sinks store them, the aggregator makes bars of them and the
//! cache holds the latest. Nothing here starts consumers: the caller runs
//! (or already has) the pipeline on the bus it passes.
//!
//! Decisions:
//! - A tick's `ts_received` is the frame's recorded receive time, not the
//!   replay's clock: a replay is then the same data as the live session,
//!   and replaying a capture twice stores nothing new (trades are keyed by
//!   their trade id, quotes by a hash that includes the times).
//! - Every `<->` line is a new connection, so the decoder starts afresh,
//!   as a live connector's does.
//! - Frames we sent and HTTP bodies are not replayed (they are counted in
//!   [`ReplayStats::skipped_lines`]).
//! - At [`ReplaySpeed::Recorded`] the frames keep their recorded spacing
//!   (measured from the first frame); [`ReplaySpeed::Max`] sends them as
//!   fast as the bus takes them, in batches of up to [`MAX_BATCH`] ticks.

use crate::feeds::TickPublisher;
use marketd_bus::AnyBus;
use marketd_model::{Connector, ConnectorKind, Tick};
use marketd_sources::venues::capture::{self, CaptureError, Direction};
use marketd_sources::venues::{Decoder, Frame, Venue};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most ticks published in one batch at full speed.
pub const MAX_BATCH: usize = 4_096;

/// How fast a capture is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplaySpeed {
    /// As fast as the pipeline takes it.
    #[default]
    Max,
    /// With the recorded spacing between frames.
    Recorded,
}

impl std::str::FromStr for ReplaySpeed {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(ReplaySpeed::Max),
            "recorded" => Ok(ReplaySpeed::Recorded),
            other => Err(format!("unknown speed {other:?}: recorded or max")),
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Frames received on the recorded connections.
    pub frames: u64,
    /// Frames that carried market data.
    pub data_frames: u64,
    /// Frames that were not data: acks, pongs, notices, and message kinds
    /// marketd does not turn into ticks (depth, klines, books).
    pub other_frames: u64,
    /// Frames the venue's decoder refused.
    pub decode_errors: u64,
    /// Ticks decoded and handed to the bus.
    pub ticks: u64,
    /// Recorded connections (`<->` lines).
    pub connections: u64,
    /// Lines that are not received frames (frames we sent, HTTP bodies).
    pub skipped_lines: u64,
}

/// How far a replay has come, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Bytes of the capture read so far.
    pub bytes: usize,
    /// The capture's length.
    pub total_bytes: usize,
    pub frames: u64,
    pub ticks: u64,
}

/// Why a capture cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(
        "capture line {line}: no venue decoder for {url:?} (known hosts: stream.binance.com, fstream.binance.com, ws.okx.com; name the venue to override)"
    )]
    UnknownVenue { line: usize, url: String },
    #[error("the capture has no recorded connection (`<url> <-> <time>` line)")]
    NoConnection,
    #[error("connector {0:?} is not a venue (websocket) connector: it archives no frames")]
    NotAVenueConnector(String),
    #[error("reading the archive: {0}")]
    Store(#[from] marketd_store::Error),
}

/// The venue whose normalizer reads frames from `url`, by its host.
pub fn venue_of_url(url: &str) -> Option<Venue> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_ascii_lowercase();
    match host.as_str() {
        "stream.binance.com" | "data-stream.binance.vision" => Some(Venue::Binance),
        "fstream.binance.com" => Some(Venue::BinanceFutures),
        "ws.okx.com" | "wsaws.okx.com" => Some(Venue::Okx),
        "ws.finnhub.io" => Some(Venue::Finnhub),
        _ => None,
    }
}

/// Where a frame came from, for a log line.
#[derive(Debug, Clone, Copy)]
enum FrameAt {
    /// Line of a capture file.
    Line(usize),
    /// `received_at` of an archived frame.
    Archived(i64),
}

impl std::fmt::Display for FrameAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameAt::Line(n) => write!(f, "line {n}"),
            FrameAt::Archived(ns) => write!(f, "archived frame received at {ns}"),
        }
    }
}

/// Frames decoded and handed to the bus in order, at the chosen speed.
struct Player {
    speed: ReplaySpeed,
    cancel: CancellationToken,
    stats: ReplayStats,
    publisher: TickPublisher,
    batch: Vec<Tick>,
    decoder: Option<Decoder>,
    /// (recorded time of the first frame, when it was replayed)
    clock: Option<(i64, Instant)>,
}

impl Player {
    fn new(speed: ReplaySpeed, bus: AnyBus, cancel: CancellationToken) -> Self {
        Player {
            speed,
            cancel,
            stats: ReplayStats::default(),
            publisher: TickPublisher::new(bus),
            batch: Vec::with_capacity(MAX_BATCH),
            decoder: None,
            clock: None,
        }
    }

    /// A new connection: a fresh decoder, as a live connector's.
    fn connect(&mut self, venue: Venue) {
        self.decoder = Some(venue.decoder());
        self.stats.connections += 1;
    }

    /// Plays one received frame (after [`Player::connect`]); false once
    /// cancelled. `at` names the frame in a log line.
    async fn frame(&mut self, ts_ns: i64, text: &str, at: FrameAt) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        if self.speed == ReplaySpeed::Recorded {
            let (t0, started) = *self.clock.get_or_insert((ts_ns, Instant::now()));
            let due = started + Duration::from_nanos((ts_ns - t0).max(0) as u64);
            if due > Instant::now() {
                // Hand over what is due before waiting for the next frame.
                self.flush().await;
                tokio::select! {
                    _ = self.cancel.cancelled() => return false,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
        }
        let Some(dec) = self.decoder.as_mut() else {
            return true;
        };
        self.stats.frames += 1;
        let before = self.batch.len();
        match dec.decode(text, ts_ns, &mut self.batch) {
            Ok(Frame::Data { .. }) => self.stats.data_frames += 1,
            Ok(_) => self.stats.other_frames += 1,
            Err(e) => {
                self.stats.decode_errors += 1;
                metrics::counter!("marketd_replay_decode_errors_total", "venue" => dec.venue().name())
                    .increment(1);
                tracing::warn!(frame = %at, error = %e, "recorded frame not decoded");
            }
        }
        self.stats.ticks += (self.batch.len() - before) as u64;
        if self.batch.len() >= MAX_BATCH {
            self.flush().await;
        }
        true
    }

    async fn flush(&mut self) {
        if !self.batch.is_empty() {
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(MAX_BATCH));
            self.publisher.publish(batch).await;
        }
    }

    /// Publishes the rest and waits for the bus to acknowledge everything.
    async fn finish(mut self) -> ReplayStats {
        self.flush().await;
        self.publisher.flush().await;
        self.stats
    }
}

/// Plays `text` (a whole capture) onto `bus`'s `ticks` topic, returning
/// once every tick is acknowledged by the bus (stored when the caller's
/// sinks have drained). `venue` overrides the venue found from each
/// connection's URL. `progress` is called every few thousand frames and
/// at the end. Cancelling stops after the current frame.
pub async fn replay_capture(
    text: &str,
    venue: Option<Venue>,
    speed: ReplaySpeed,
    bus: AnyBus,
    cancel: CancellationToken,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<ReplayStats, ReplayError> {
    let mut player = Player::new(speed, bus, cancel);
    let total_bytes = text.len();
    let base = text.as_ptr() as usize;
    let report = |stats: &ReplayStats, bytes: usize| ReplayProgress {
        bytes,
        total_bytes,
        frames: stats.frames,
        ticks: stats.ticks,
    };
    for record in capture::records(text) {
        let record = record?;
        match record.direction {
            Direction::Connect => {
                let v = venue.or_else(|| venue_of_url(record.url)).ok_or_else(|| {
                    ReplayError::UnknownVenue {
                        line: record.line,
                        url: record.url.to_string(),
                    }
                })?;
                player.connect(v);
                continue;
            }
            Direction::Sent | Direction::HttpResponse => {
                player.stats.skipped_lines += 1;
                continue;
            }
            Direction::Received => {}
        }
        if player.decoder.is_none() {
            return Err(ReplayError::NoConnection);
        }
        if !player
            .frame(record.ts_ns, record.text, FrameAt::Line(record.line))
            .await
        {
            break;
        }
        if progress_due(player.stats.frames) {
            let read = record.text.as_ptr() as usize - base + record.text.len();
            progress(report(&player.stats, read));
        }
    }
    let stats = player.finish().await;
    if stats.connections == 0 {
        return Err(ReplayError::NoConnection);
    }
    progress(report(&stats, total_bytes));
    Ok(stats)
}

/// Whether progress is reported after `frames` frames: every 4096 (a power
/// of two, so a mask test on the hot path).
fn progress_due(frames: u64) -> bool {
    frames & 4_095 == 0
}

/// Frames read from the archive per query.
const ARCHIVE_PAGE: u32 = 10_000;

/// Plays the raw frames a WebSocket connector archived (`raw_messages`,
/// oldest first, from `from_ns` on) through its venue's decoder, as
/// [`replay_capture`] does a capture. The archive keeps no connection
/// boundaries, so one decoder reads every frame. `progress` gets
/// `total_bytes` 0 (the archive's size is not known in advance).
pub async fn replay_archive(
    store: &AnyStore,
    connector: &Connector,
    from_ns: i64,
    speed: ReplaySpeed,
    bus: AnyBus,
    cancel: CancellationToken,
    progress: impl FnMut(ReplayProgress),
) -> Result<ReplayStats, ReplayError> {
    let (connector_frames, page) = ((store, connector, from_ns), ARCHIVE_PAGE);
    replay_archive_paged(connector_frames, page, speed, bus, cancel, progress).await
}

/// [`replay_archive`] reading `page` frames per query.
async fn replay_archive_paged(
    (store, connector, from_ns): (&AnyStore, &Connector, i64),
    page_size: u32,
    speed: ReplaySpeed,
    bus: AnyBus,
    cancel: CancellationToken,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<ReplayStats, ReplayError> {
    let venue = match connector.kind {
        ConnectorKind::Websocket => connector.spec["venue"]
            .as_str()
            .and_then(|v| Venue::from_name(v).ok()),
        ConnectorKind::Rest => None,
    }
    .ok_or_else(|| ReplayError::NotAVenueConnector(connector.name.clone()))?;
    let mut player = Player::new(speed, bus, cancel);
    player.connect(venue);
    let mut bytes = 0usize;
    let report = |stats: &ReplayStats, bytes: usize| ReplayProgress {
        bytes,
        total_bytes: 0,
        frames: stats.frames,
        ticks: stats.ticks,
    };
    // Pages restart at the last time seen (`received_at >= from`), skipping
    // the frames of that time already played.
    let (mut from, mut seen_at_from, mut limit) = (from_ns, 0usize, page_size);
    'pages: loop {
        let page = store.raw_messages(connector.id, from, limit).await?;
        let full = page.len() == limit as usize;
        if page.len() <= seen_at_from {
            if full {
                // More frames share one time than a page holds: read more.
                limit = limit.saturating_mul(2);
                continue;
            }
            break;
        }
        for m in &page[seen_at_from..] {
            let at = FrameAt::Archived(m.received_at);
            if !player.frame(m.received_at, &m.frame, at).await {
                break 'pages;
            }
            bytes += m.frame.len();
            if progress_due(player.stats.frames) {
                progress(report(&player.stats, bytes));
            }
        }
        if !full {
            break;
        }
        let last = page.last().map_or(from, |m| m.received_at);
        // Every frame of time `last` so far is in this page (it starts at `from`).
        seen_at_from = page.iter().filter(|m| m.received_at == last).count();
        if last != from {
            limit = page_size;
        }
        from = last;
    }
    let stats = player.finish().await;
    progress(report(&stats, bytes));
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_bus::{Bus, BusOptions, Consumer};
    use marketd_model::{Event, Topic};

    #[test]
    fn venues_follow_from_the_capture_urls() {
        for (url, venue) in [
            (
                "wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade",
                Some(Venue::Binance),
            ),
            (
                "wss://fstream.binance.com/stream",
                Some(Venue::BinanceFutures),
            ),
            ("wss://ws.okx.com:8443/ws/v5/public", Some(Venue::Okx)),
            ("wss://example.com/ws", None),
            ("not a url", None),
        ] {
            assert_eq!(venue_of_url(url), venue, "{url}");
        }
    }

    const CAPTURE: &str = r#"wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade <-> 1633998511.159679
wss://stream.binance.com:9443/stream?streams=btcusdt@aggTrade <- 1633998511.2: {"method":"SUBSCRIBE","params":["btcusdt@aggTrade"],"id":1}
1633998511.3: {"result":null,"id":1}
1633998512.0633569: {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1633998512068,"s":"BTCUSDT","a":7,"p":"56000.10","q":"0.5","f":1,"l":1,"T":1633998512067,"m":true,"M":true}}
1633998512.1: {"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1633998512068,"s":"BTCUSDT"}}
1633998512.2: not json
1633998512.3: {"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1633998512268,"s":"BTCUSDT","a":8,"p":"56000.20","q":"0.25","f":2,"l":2,"T":1633998512267,"m":false,"M":true}}
"#;

    #[tokio::test]
    async fn frames_become_ticks_on_the_bus_with_their_recorded_times() {
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let mut consumer = bus.subscribe(Topic::Ticks, "test").await.unwrap();
        let mut seen = Vec::new();
        let stats = replay_capture(
            CAPTURE,
            None,
            ReplaySpeed::Max,
            bus.clone(),
            CancellationToken::new(),
            |p| seen.push(p),
        )
        .await
        .unwrap();
        assert_eq!(
            stats,
            ReplayStats {
                frames: 5,
                data_frames: 2,
                other_frames: 2,
                decode_errors: 1,
                ticks: 2,
                connections: 1,
                skipped_lines: 1,
            }
        );
        assert_eq!(seen.last().unwrap().bytes, CAPTURE.len());
        let mut batch = Vec::new();
        while batch.len() < 2 {
            consumer.recv_batch(&mut batch, 10).await.unwrap();
        }
        let ticks: Vec<Tick> = batch
            .iter()
            .filter_map(|d| match &d.envelope.event {
                Event::Tick(t) => Some(t.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(ticks.len(), 2);
        assert_eq!(ticks[0].source.as_ref(), "binance");
        assert_eq!(ticks[0].symbol.as_str(), "BTC-USDT");
        assert_eq!(ticks[0].trade_id.as_deref(), Some("7"));
        assert_eq!(ticks[0].price.to_string(), "56000.10");
        assert_eq!(ticks[0].ts_event, 1_633_998_512_067_000_000);
        assert_eq!(ticks[0].ts_received, 1_633_998_512_063_356_900);
        assert_eq!(ticks[1].trade_id.as_deref(), Some("8"));
    }

    /// On a paused clock: at recorded speed the last frame goes out exactly
    /// the recorded span after the first (from 12.0633569 s to 12.3 s).
    #[tokio::test(start_paused = true)]
    async fn recorded_speed_keeps_the_recorded_spacing() {
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let started = Instant::now();
        let stats = replay_capture(
            CAPTURE,
            None,
            ReplaySpeed::Recorded,
            bus,
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(stats.ticks, 2);
        // The ack at 11.3 s comes before the first data frame: it starts the clock.
        assert_eq!(started.elapsed(), Duration::from_nanos(1_000_000_000));
    }

    /// Archived frames come back in order, each once, across pages that
    /// split (and overflow with) frames of one time.
    #[tokio::test]
    async fn an_archive_is_replayed_in_order_each_frame_once() {
        use marketd_model::{Desired, time::now_ns};
        use marketd_store::{RawMessage, StoreOptions};
        let store = AnyStore::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let connector = Connector {
            id: uuid::Uuid::now_v7(),
            name: "archived".into(),
            kind: ConnectorKind::Websocket,
            spec: serde_json::json!({"name": "archived", "kind": "websocket", "venue": "binance",
                                     "symbols": ["BTC-USDT"], "channels": ["agg_trades"]}),
            desired: Desired::Stopped,
            created_at: now_ns(),
            updated_at: now_ns(),
        };
        store.insert_connector(&connector).await.unwrap();
        let t0 = 1_633_998_512_000_000_000_i64;
        // Received-at offsets: three frames share +2 (more than a page of 2).
        let offsets = [0, 1, 2, 2, 2, 3, 4, 4, 5];
        let frames: Vec<RawMessage> = offsets
            .iter()
            .enumerate()
            .map(|(i, off)| {
                let id = i + 1;
                RawMessage {
                    connector_id: connector.id,
                    received_at: t0 + off,
                    class: "data".into(),
                    frame: format!(
                        r#"{{"stream":"btcusdt@aggTrade","data":{{"e":"aggTrade","E":1633998512068,"s":"BTCUSDT","a":{id},"p":"56000.{id}","q":"1","f":1,"l":1,"T":1633998512067,"m":true,"M":true}}}}"#
                    ),
                }
            })
            .collect();
        store.insert_raw_messages(&frames).await.unwrap();
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let mut consumer = bus.subscribe(Topic::Ticks, "test").await.unwrap();
        let stats = replay_archive_paged(
            (&store, &connector, 0),
            2,
            ReplaySpeed::Max,
            bus,
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!((stats.frames, stats.ticks), (9, 9), "{stats:?}");
        let mut got = Vec::new();
        while got.len() < 9 {
            consumer.recv_batch(&mut got, 100).await.unwrap();
        }
        let ids: Vec<String> = got
            .iter()
            .filter_map(|d| match &d.envelope.event {
                Event::Tick(t) => t.trade_id.clone(),
                _ => None,
            })
            .collect();
        let want: Vec<String> = (1..=9).map(|i| i.to_string()).collect();
        assert_eq!(ids, want);

        // From a later time on; a REST connector has no archive to replay.
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let later = replay_archive_paged(
            (&store, &connector, t0 + 4),
            2,
            ReplaySpeed::Max,
            bus.clone(),
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(later.frames, 3);
        let rest = Connector {
            kind: ConnectorKind::Rest,
            ..connector.clone()
        };
        let e = replay_archive(
            &store,
            &rest,
            0,
            ReplaySpeed::Max,
            bus,
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ReplayError::NotAVenueConnector(_)), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_host_needs_a_venue() {
        let bus = AnyBus::connect("memory://", BusOptions::default())
            .await
            .unwrap();
        let text = "wss://example.com/ws <-> 1\n2: {}\n";
        let e = replay_capture(
            text,
            None,
            ReplaySpeed::Max,
            bus,
            CancellationToken::new(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, ReplayError::UnknownVenue { line: 1, .. }),
            "{e}"
        );
    }
}
