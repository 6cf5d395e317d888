//! Replay: plays a CSV file of ticks (`symbol,ts,price,size`) into the
//! pipeline, at real time, faster, or as fast as possible.
//!
//! The header line is optional; `ts` is RFC 3339 or epoch seconds,
//! milliseconds or nanoseconds; blank lines and lines starting with `#` are
//! ignored. A bad row is logged with its line number, counted in
//! `marketd_feed_rejected_total{source="replay"}` and skipped.

use crate::config::ReplayFeedConfig;
use crate::health::{ProviderHealth, Tracker};
use crate::{Error, HistoryRequest, Provider, Result};
use marketd_model::time::{NANOS_PER_SEC, now_ns, parse_ts};
use marketd_model::{Bar, Decimal, Symbol, Tick, TickKind};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "replay";

/// Most ticks in one batch.
const MAX_BATCH: usize = 512;
/// Ticks due within this much of each other go out in one batch.
const BATCH_WINDOW: Duration = Duration::from_millis(1);

/// A rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line number in the file.
    pub line: usize,
    pub message: String,
}

/// What one line of the file is.
#[derive(Debug, PartialEq)]
enum Row {
    Tick(Tick),
    Skip,
}

/// Parses lines in file order (the first data-looking line decides whether
/// there is a header).
#[derive(Debug, Default)]
struct RowParser {
    seen_first: bool,
}

fn field(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
        .trim()
}

impl RowParser {
    fn parse(&mut self, raw: &[u8], now: i64) -> Result<Row, String> {
        let text = std::str::from_utf8(raw).map_err(|_| "not valid UTF-8".to_string())?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(Row::Skip);
        }
        let first = !self.seen_first;
        self.seen_first = true;
        let fields: Vec<&str> = text.split(',').map(field).collect();
        if first
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("symbol"))
        {
            return Ok(Row::Skip);
        }
        let [symbol, ts, price, size] = fields[..] else {
            return Err(format!(
                "expected 4 fields (symbol,ts,price,size), got {}",
                fields.len()
            ));
        };
        let symbol = Symbol::parse(symbol).map_err(|e| e.to_string())?;
        let ts = parse_ts(ts).ok_or_else(|| format!("invalid timestamp {ts:?}"))?;
        let decimal = |what: &str, v: &str| {
            Decimal::from_str(v)
                .or_else(|_| Decimal::from_scientific(v))
                .map_err(|_| format!("invalid {what} {v:?}"))
        };
        let price = decimal("price", price)?;
        let size = decimal("size", size)?;
        let tick = Tick::new(symbol, NAME, TickKind::Trade, price, size, ts, ts);
        tick.validate(now).map_err(|e| e.to_string())?;
        Ok(Row::Tick(tick))
    }
}

/// The ticks of a whole CSV text and its rejected rows (for tools and tests;
/// the feed streams the file instead of loading it).
#[derive(Debug, Default)]
pub struct ParsedCsv {
    pub ticks: Vec<Tick>,
    pub errors: Vec<RowError>,
}

/// Parses a whole CSV text. Never panics; bad rows land in `errors`.
pub fn parse_csv(text: &str) -> ParsedCsv {
    let mut parser = RowParser::default();
    let mut out = ParsedCsv::default();
    let now = now_ns();
    for (i, line) in text.split('\n').enumerate() {
        match parser.parse(line.as_bytes(), now) {
            Ok(Row::Tick(t)) => out.ticks.push(t),
            Ok(Row::Skip) => {}
            Err(message) => out.errors.push(RowError {
                line: i + 1,
                message,
            }),
        }
    }
    out
}

/// Counts of one replay run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Ticks sent.
    pub emitted: u64,
    /// Bad rows skipped (counted in the first pass only).
    pub rejected: u64,
    /// Complete passes over the file.
    pub passes: u64,
}

type Latest = Arc<RwLock<HashMap<Symbol, Tick>>>;

/// Plays a CSV file of ticks. Get its [`ReplayProvider`] with
/// [`ReplayFeed::provider`] before running it.
#[derive(Debug)]
pub struct ReplayFeed {
    path: PathBuf,
    speed: f64,
    loop_forever: bool,
    latest: Latest,
}

impl ReplayFeed {
    /// Checks the configuration (a `path`, a finite `speed` ≥ 0); the file
    /// itself is opened by [`ReplayFeed::run`].
    pub fn new(cfg: &ReplayFeedConfig) -> Result<Self> {
        let path = cfg
            .path
            .clone()
            .ok_or_else(|| Error::Config("replay: path is required".into()))?;
        if !cfg.speed.is_finite() || cfg.speed < 0.0 {
            return Err(Error::Config(format!(
                "replay: speed must be 0 or positive, got {}",
                cfg.speed
            )));
        }
        Ok(ReplayFeed {
            path,
            speed: cfg.speed,
            loop_forever: cfg.loop_forever,
            latest: Latest::default(),
        })
    }

    /// A provider answering `latest` with the last tick of each symbol this
    /// feed has sent so far.
    pub fn provider(&self) -> ReplayProvider {
        ReplayProvider {
            latest: self.latest.clone(),
            tracker: Arc::new(Tracker::new(NAME)),
        }
    }

    /// Plays the file into `tx` until its end (or forever with
    /// `loop_forever`, each pass shifted forward by the file's time span plus
    /// one second), preserving the relative timing of the rows divided by
    /// `speed` (0: no waiting). Rows go out in file order; a row whose time
    /// is before the previous one goes out at once. Returns when done,
    /// cancelled, or when the receiver is dropped; an unreadable file is
    /// `Error::Replay`, as is a looping file without one valid row.
    pub async fn run(
        self,
        tx: mpsc::Sender<Vec<Tick>>,
        cancel: CancellationToken,
    ) -> Result<ReplayStats> {
        let mut stats = ReplayStats::default();
        let mut offset: i64 = 0;
        // (wall-clock origin, event time it stands for), fixed at the first tick.
        let mut schedule: Option<(Instant, i64)> = None;
        let shown = self.path.display().to_string();
        loop {
            let file = tokio::fs::File::open(&self.path)
                .await
                .map_err(|e| Error::Replay(format!("cannot open {shown}: {e}")))?;
            let mut reader = tokio::io::BufReader::new(file);
            let mut parser = RowParser::default();
            let mut buf = Vec::new();
            let mut batch: Vec<Tick> = Vec::new();
            let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
            let mut line = 0usize;
            let mut valid = 0u64;
            let now = now_ns();
            loop {
                buf.clear();
                let n = tokio::select! {
                    _ = cancel.cancelled() => return Ok(stats),
                    r = reader.read_until(b'\n', &mut buf) => r.map_err(|e| Error::Replay(format!("reading {shown}: {e}")))?,
                };
                if n == 0 {
                    break;
                }
                line += 1;
                let mut tick = match parser.parse(&buf, now) {
                    Ok(Row::Skip) => continue,
                    Ok(Row::Tick(t)) => t,
                    Err(message) => {
                        if stats.passes == 0 {
                            tracing::warn!(path = %shown, line, error = %message, "replay: skipping bad row");
                            metrics::counter!("marketd_feed_rejected_total", "source" => NAME)
                                .increment(1);
                            stats.rejected += 1;
                        }
                        continue;
                    }
                };
                valid += 1;
                min_ts = min_ts.min(tick.ts_event);
                max_ts = max_ts.max(tick.ts_event);
                tick.ts_event = tick.ts_event.saturating_add(offset);
                if self.speed > 0.0 {
                    let (origin, first_ts) =
                        *schedule.get_or_insert((Instant::now(), tick.ts_event));
                    let ahead_ns =
                        (tick.ts_event.saturating_sub(first_ts)).max(0) as f64 / self.speed;
                    let due = origin + Duration::from_nanos(ahead_ns.min(u64::MAX as f64) as u64);
                    if due > Instant::now() + BATCH_WINDOW {
                        if !self.flush(&tx, &cancel, &mut batch, &mut stats).await {
                            return Ok(stats);
                        }
                        tokio::select! {
                            _ = cancel.cancelled() => return Ok(stats),
                            _ = tokio::time::sleep_until(due) => {}
                        }
                    }
                }
                batch.push(tick);
                if batch.len() >= MAX_BATCH
                    && !self.flush(&tx, &cancel, &mut batch, &mut stats).await
                {
                    return Ok(stats);
                }
            }
            if !self.flush(&tx, &cancel, &mut batch, &mut stats).await {
                return Ok(stats);
            }
            stats.passes += 1;
            if !self.loop_forever {
                return Ok(stats);
            }
            if valid == 0 {
                return Err(Error::Replay(format!(
                    "{shown} has no valid rows to loop over"
                )));
            }
            offset = offset
                .saturating_add(max_ts.saturating_sub(min_ts))
                .saturating_add(NANOS_PER_SEC);
        }
    }

    /// Sends the batch; false when cancelled or the receiver is gone.
    async fn flush(
        &self,
        tx: &mpsc::Sender<Vec<Tick>>,
        cancel: &CancellationToken,
        batch: &mut Vec<Tick>,
        stats: &mut ReplayStats,
    ) -> bool {
        if batch.is_empty() {
            return true;
        }
        let received = now_ns();
        let mut out = std::mem::take(batch);
        for t in &mut out {
            t.ts_received = received;
        }
        {
            let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
            for t in &out {
                latest.insert(t.symbol.clone(), t.clone());
            }
        }
        let n = out.len() as u64;
        tokio::select! {
            _ = cancel.cancelled() => false,
            sent = tx.send(out) => {
                if sent.is_ok() {
                    stats.emitted += n;
                }
                sent.is_ok()
            }
        }
    }
}

/// `latest` from a replay: the last tick of the symbol the feed has sent so
/// far (kind `Last`), else `SymbolNotFound`. No history.
#[derive(Debug, Clone)]
pub struct ReplayProvider {
    latest: Latest,
    tracker: Arc<Tracker>,
}

impl ReplayProvider {
    fn lookup(&self, symbol: &Symbol) -> Result<Tick> {
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        let mut tick = latest
            .get(symbol)
            .cloned()
            .ok_or_else(|| Error::SymbolNotFound(symbol.to_string()))?;
        tick.kind = TickKind::Last;
        Ok(tick)
    }
}

impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        NAME
    }

    async fn latest(&self, symbol: &Symbol) -> Result<Tick> {
        self.tracker.observe(async { self.lookup(symbol) }).await
    }

    async fn history(&self, _req: &HistoryRequest) -> Result<Vec<Bar>> {
        self.tracker
            .observe(async { Err(Error::Unsupported("history")) })
            .await
    }

    fn health(&self) -> ProviderHealth {
        self.tracker.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const CSV: &str = "\u{feff}symbol,ts,price,size\n\
        AAPL,2024-03-01T14:30:00Z,180.25,100\n\
        # a comment\n\
        \n\
        BTC-USDT,1709303400000,61234.5,0.0125\n\
        AAPL,1709303401,180.30,50\r\n\
        MSFT,not-a-time,400,1\n\
        MSFT,1709303402,abc,1\n\
        MSFT,1709303402,-3,1\n\
        MSFT,1709303402,400,-1\n\
        BAD SYMBOL,1709303402,400,1\n\
        MSFT,1709303402,400\n\
        MSFT,1709303402,400,1,extra\n\
        MSFT,99999999999999999999999,400,1\n\
        \"MSFT\",1709303402000000000,400.5,2\n";

    #[test]
    fn parses_good_rows_and_reports_bad_ones_by_line() {
        let parsed = parse_csv(CSV);
        let got: Vec<(&str, i64, String, String)> = parsed
            .ticks
            .iter()
            .map(|t| {
                (
                    t.symbol.as_str(),
                    t.ts_event / NANOS_PER_SEC,
                    t.price.to_string(),
                    t.size.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("AAPL", 1_709_303_400, "180.25".into(), "100".into()),
                ("BTC-USDT", 1_709_303_400, "61234.5".into(), "0.0125".into()),
                ("AAPL", 1_709_303_401, "180.30".into(), "50".into()),
                ("MSFT", 1_709_303_402, "400.5".into(), "2".into()),
            ]
        );
        let lines: Vec<usize> = parsed.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![7, 8, 9, 10, 11, 12, 13, 14]);
        assert!(
            parsed.errors[0].message.contains("timestamp"),
            "{:?}",
            parsed.errors[0]
        );
        assert!(
            parsed.errors[5].message.contains("4 fields"),
            "{:?}",
            parsed.errors[5]
        );
        assert!(
            parsed
                .ticks
                .iter()
                .all(|t| t.kind == TickKind::Trade && &*t.source == "replay")
        );
    }

    #[test]
    fn header_is_optional_and_only_first() {
        let parsed = parse_csv("AAPL,1709303400,1,1\nsymbol,ts,price,size\n");
        assert_eq!(parsed.ticks.len(), 1);
        assert_eq!(
            parsed.errors.len(),
            1,
            "a header in the middle is a bad row"
        );
        let junk = parse_csv("\u{0}\u{1}garbage,,,\n,,,\n");
        assert!(junk.ticks.is_empty() && junk.errors.len() == 2);
        let mut p = RowParser::default();
        assert!(
            p.parse(&[0xff, 0xfe, b','], 0).is_err(),
            "invalid UTF-8 is a bad row, not a panic"
        );
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    async fn collect(
        cfg: ReplayFeedConfig,
        until: usize,
    ) -> (Vec<Vec<Tick>>, Result<ReplayStats>, ReplayProvider) {
        let feed = ReplayFeed::new(&cfg).unwrap();
        let provider = feed.provider();
        let (tx, mut rx) = mpsc::channel(4);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(feed.run(tx, cancel.clone()));
        let mut batches = Vec::new();
        let mut n = 0;
        while n < until {
            match rx.recv().await {
                Some(b) => {
                    n += b.len();
                    batches.push(b);
                }
                None => break,
            }
        }
        cancel.cancel();
        let stats = task.await.unwrap();
        (batches, stats, provider)
    }

    #[tokio::test]
    async fn as_fast_as_possible_with_latest_and_stats() {
        let f = file(CSV);
        let cfg = ReplayFeedConfig {
            enabled: true,
            path: Some(f.path().into()),
            speed: 0.0,
            loop_forever: false,
        };
        let (batches, stats, provider) = collect(cfg, usize::MAX).await;
        let ticks: Vec<Tick> = batches.into_iter().flatten().collect();
        assert_eq!(ticks.len(), 4);
        let stats = stats.unwrap();
        assert_eq!(
            stats,
            ReplayStats {
                emitted: 4,
                rejected: 8,
                passes: 1
            }
        );
        let aapl = provider
            .latest(&Symbol::parse("AAPL").unwrap())
            .await
            .unwrap();
        assert_eq!(aapl.price.to_string(), "180.30");
        assert_eq!(aapl.kind, TickKind::Last);
        assert!(matches!(
            provider.latest(&Symbol::parse("TSLA").unwrap()).await,
            Err(Error::SymbolNotFound(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn preserves_relative_timing_at_speed() {
        // Ticks 0 s, 0 s, 2 s, 6 s apart; at speed 2 they arrive at 0, 0, 1, 3 s.
        let f = file(
            "AAPL,1709303400,1,1\nMSFT,1709303400,2,1\nAAPL,1709303402,3,1\nAAPL,1709303406,4,1\n",
        );
        let cfg = ReplayFeedConfig {
            enabled: true,
            path: Some(f.path().into()),
            speed: 2.0,
            loop_forever: false,
        };
        let feed = ReplayFeed::new(&cfg).unwrap();
        let (tx, mut rx) = mpsc::channel(4);
        let start = Instant::now();
        let task = tokio::spawn(feed.run(tx, CancellationToken::new()));
        let mut arrivals = Vec::new();
        while let Some(batch) = rx.recv().await {
            arrivals.push((start.elapsed().as_millis(), batch.len()));
        }
        assert_eq!(task.await.unwrap().unwrap().emitted, 4);
        assert_eq!(arrivals.len(), 3, "{arrivals:?}");
        assert_eq!(arrivals[0], (0, 2), "same-time rows go out together");
        assert!((999..=1010).contains(&arrivals[1].0), "{arrivals:?}");
        assert!((2999..=3010).contains(&arrivals[2].0), "{arrivals:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn loops_with_shifted_timestamps_until_cancelled() {
        let f = file("AAPL,1709303400,1,1\nbad,row\nAAPL,1709303401,2,1\n");
        let cfg = ReplayFeedConfig {
            enabled: true,
            path: Some(f.path().into()),
            speed: 0.0,
            loop_forever: true,
        };
        let (batches, stats, _) = collect(cfg, 6).await;
        let ts: Vec<i64> = batches
            .into_iter()
            .flatten()
            .map(|t| t.ts_event / NANOS_PER_SEC - 1_709_303_400)
            .collect();
        assert_eq!(
            &ts[..6],
            &[0, 1, 2, 3, 4, 5],
            "each pass shifted by span + 1 s"
        );
        let stats = stats.unwrap();
        assert_eq!(stats.rejected, 1, "bad rows counted once, not every pass");
        assert!(stats.passes >= 2);
    }

    #[tokio::test]
    async fn config_and_file_errors() {
        assert!(matches!(
            ReplayFeed::new(&ReplayFeedConfig::default()),
            Err(Error::Config(_))
        ));
        let bad_speed = ReplayFeedConfig {
            path: Some("x.csv".into()),
            speed: -1.0,
            ..ReplayFeedConfig::default()
        };
        assert!(matches!(ReplayFeed::new(&bad_speed), Err(Error::Config(_))));
        let missing = ReplayFeedConfig {
            path: Some("/nonexistent/ticks.csv".into()),
            ..ReplayFeedConfig::default()
        };
        let (tx, _rx) = mpsc::channel(1);
        let r = ReplayFeed::new(&missing)
            .unwrap()
            .run(tx, CancellationToken::new())
            .await;
        assert!(matches!(r, Err(Error::Replay(m)) if m.contains("/nonexistent/ticks.csv")));
        let f = file("only,bad\n");
        let looping = ReplayFeedConfig {
            path: Some(f.path().into()),
            speed: 0.0,
            loop_forever: true,
            enabled: true,
        };
        let (tx, _rx) = mpsc::channel(1);
        let r = ReplayFeed::new(&looping)
            .unwrap()
            .run(tx, CancellationToken::new())
            .await;
        assert!(
            matches!(r, Err(Error::Replay(_))),
            "no busy loop over a file without valid rows"
        );
    }
}
