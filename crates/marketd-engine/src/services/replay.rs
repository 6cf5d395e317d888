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
use marketd_model::Tick;
use marketd_sources::venues::capture::{self, CaptureError, Direction};
use marketd_sources::venues::{Frame, Venue};
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

/// Plays `text` (a whole capture) onto `bus`'s `ticks` topic, returning
/// once every tick is acknowledged by the bus (stored when the caller's
/// sinks have drained). `venue` overrides the venue found from each
/// connection's URL. `progress` is called every few thousand frames and
/// at the end. Cancelling stops after the current batch.
pub async fn replay_capture(
    text: &str,
    venue: Option<Venue>,
    speed: ReplaySpeed,
    bus: AnyBus,
    cancel: CancellationToken,
    mut progress: impl FnMut(ReplayProgress),
) -> Result<ReplayStats, ReplayError> {
    let mut stats = ReplayStats::default();
    let mut publisher = TickPublisher::new(bus);
    let mut batch: Vec<Tick> = Vec::with_capacity(MAX_BATCH);
    let mut decoder = None;
    // (recorded time of the first frame, when it was replayed)
    let mut clock: Option<(i64, Instant)> = None;
    let total_bytes = text.len();
    let base = text.as_ptr() as usize;
    let report = |stats: &ReplayStats, bytes: usize| ReplayProgress {
        bytes,
        total_bytes,
        frames: stats.frames,
        ticks: stats.ticks,
    };
    for record in capture::records(text) {
        if cancel.is_cancelled() {
            break;
        }
        let record = record?;
        match record.direction {
            Direction::Connect => {
                let v = venue.or_else(|| venue_of_url(record.url)).ok_or_else(|| {
                    ReplayError::UnknownVenue {
                        line: record.line,
                        url: record.url.to_string(),
                    }
                })?;
                decoder = Some(v.decoder());
                stats.connections += 1;
                continue;
            }
            Direction::Sent | Direction::HttpResponse => {
                stats.skipped_lines += 1;
                continue;
            }
            Direction::Received => {}
        }
        let Some(dec) = decoder.as_mut() else {
            return Err(ReplayError::NoConnection);
        };
        if speed == ReplaySpeed::Recorded {
            let (t0, started) = *clock.get_or_insert((record.ts_ns, Instant::now()));
            let due = started + Duration::from_nanos((record.ts_ns - t0).max(0) as u64);
            if due > Instant::now() {
                // Hand over what is due before waiting for the next frame.
                flush(&mut publisher, &mut batch).await;
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
        }
        stats.frames += 1;
        let before = batch.len();
        match dec.decode(record.text, record.ts_ns, &mut batch) {
            Ok(Frame::Data { .. }) => stats.data_frames += 1,
            Ok(_) => stats.other_frames += 1,
            Err(e) => {
                stats.decode_errors += 1;
                metrics::counter!("marketd_replay_decode_errors_total", "venue" => dec.venue().name())
                    .increment(1);
                tracing::warn!(line = record.line, error = %e, "capture frame not decoded");
            }
        }
        stats.ticks += (batch.len() - before) as u64;
        if batch.len() >= MAX_BATCH {
            flush(&mut publisher, &mut batch).await;
        }
        if stats.frames % 4_096 == 0 {
            let read = record.text.as_ptr() as usize - base + record.text.len();
            progress(report(&stats, read));
        }
    }
    flush(&mut publisher, &mut batch).await;
    publisher.flush().await;
    if stats.connections == 0 {
        return Err(ReplayError::NoConnection);
    }
    progress(report(&stats, total_bytes));
    Ok(stats)
}

async fn flush(publisher: &mut TickPublisher, batch: &mut Vec<Tick>) {
    if !batch.is_empty() {
        publisher
            .publish(std::mem::replace(batch, Vec::with_capacity(MAX_BATCH)))
            .await;
    }
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
