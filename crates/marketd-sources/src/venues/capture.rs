//! Recorded feeds in the capture format of `shared/fixtures/captures`
//! (cryptofeed's `sample_data`), one frame a line:
//!
//! ```text
//! <ws url> <-> <connect unix time>          the connection opened
//! <ws url> <- <unix time>: <frame>          a frame we sent
//! <unix time>: <frame>                      a frame received on the connection
//! <http url> -> <unix time>: <body>         an HTTP response body
//! ```
//!
//! Read by `marketd replay CAPTURE` and by the mock exchange servers of the
//! tests, which replay the frames in order. Records borrow from the text;
//! times are kept both as the `f64` seconds of the file and as exact
//! nanoseconds (parsed from the digits, not through `f64`).

use thiserror::Error;

/// What a line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A WebSocket connection opened (`text` is empty).
    Connect,
    /// A frame we sent on the connection.
    Sent,
    /// A frame the server sent on the connection.
    Received,
    /// The body of an HTTP response from `url`.
    HttpResponse,
}

/// One line of a capture.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record<'a> {
    /// 1-based line number in the file.
    pub line: usize,
    pub direction: Direction,
    /// The connection's URL (received frames inherit it from the last
    /// `Connect` line) or the HTTP request's URL.
    pub url: &'a str,
    /// Unix time in seconds, as written.
    pub unix_time: f64,
    /// The same time in nanoseconds since the epoch.
    pub ts_ns: i64,
    /// The frame or body text.
    pub text: &'a str,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("capture line {line}: {reason}")]
pub struct CaptureError {
    pub line: usize,
    pub reason: String,
}

/// The records of a capture, in order; blank lines are skipped.
pub fn records(text: &str) -> Records<'_> {
    Records {
        lines: text.lines().enumerate(),
        url: None,
    }
}

/// `shared/fixtures/<path>`, found above this crate (the repository may
/// sit a level deeper, in a worktree). For tests.
#[cfg(test)]
pub(crate) fn fixture(path: &str) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/fixtures").join(path))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("shared/fixtures/{path} not found above {here:?}"))
}

/// The frames a server sent in the capture `shared/fixtures/captures/<name>`
/// (for tests that read recorded traffic).
#[cfg(test)]
pub(crate) fn received_frames(name: &str) -> Vec<String> {
    let path = fixture(&format!("captures/{name}"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .filter(|r| r.direction == Direction::Received)
        .map(|r| r.text.to_string())
        .collect()
}

/// All records of a capture, or the first error.
pub fn parse(text: &str) -> Result<Vec<Record<'_>>, CaptureError> {
    records(text).collect()
}

/// Iterator over a capture's records (see [`records`]).
#[derive(Debug, Clone)]
pub struct Records<'a> {
    lines: std::iter::Enumerate<std::str::Lines<'a>>,
    url: Option<&'a str>,
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Record<'a>, CaptureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (i, raw) = self.lines.next()?;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            return Some(self.record(i + 1, line));
        }
    }
}

impl<'a> Records<'a> {
    fn record(&mut self, n: usize, line: &'a str) -> Result<Record<'a>, CaptureError> {
        let err = |reason: String| CaptureError { line: n, reason };
        // A received WebSocket frame starts with its time; every other line
        // with a URL, which has no spaces.
        if line.starts_with(|c: char| c.is_ascii_digit()) {
            let url = self
                .url
                .ok_or_else(|| err("received frame before the connect line".into()))?;
            let (unix_time, ts_ns, text) = timed(line).map_err(err)?;
            return Ok(Record {
                line: n,
                direction: Direction::Received,
                url,
                unix_time,
                ts_ns,
                text,
            });
        }
        let (url, rest) = line.split_once(' ').ok_or_else(|| {
            err("expected `<url> <-> <time>`, `<url> <- ..` or `<url> -> ..`".into())
        })?;
        if let Some(time) = rest.strip_prefix("<-> ") {
            let (unix_time, ts_ns) = parse_time(time.trim()).map_err(err)?;
            self.url = Some(url);
            return Ok(Record {
                line: n,
                direction: Direction::Connect,
                url,
                unix_time,
                ts_ns,
                text: "",
            });
        }
        let (direction, rest) = if let Some(rest) = rest.strip_prefix("<- ") {
            (Direction::Sent, rest)
        } else if let Some(rest) = rest.strip_prefix("-> ") {
            (Direction::HttpResponse, rest)
        } else {
            return Err(err(format!(
                "unknown direction after the URL: {:?}",
                rest.get(..3).unwrap_or(rest)
            )));
        };
        let (unix_time, ts_ns, text) = timed(rest).map_err(err)?;
        Ok(Record {
            line: n,
            direction,
            url,
            unix_time,
            ts_ns,
            text,
        })
    }
}

/// `<time>: <text>`.
fn timed(s: &str) -> Result<(f64, i64, &str), String> {
    let (time, text) = s
        .split_once(": ")
        .ok_or_else(|| "expected `<unix time>: <frame>`".to_string())?;
    let (unix_time, ts_ns) = parse_time(time)?;
    Ok((unix_time, ts_ns, text))
}

/// `1633998512.0633569` as seconds and as exact nanoseconds (digits beyond
/// the ninth are dropped).
pub fn parse_time(s: &str) -> Result<(f64, i64), String> {
    let bad = || format!("{s:?} is not a unix time in seconds");
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let mut nanos: i64 = 0;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    let ts_ns = secs
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or_else(bad)?;
    let unix_time: f64 = s.parse().map_err(|_| bad())?;
    Ok((unix_time, ts_ns))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "wss://x.test/ws <-> 1652459224.5300605
wss://x.test/ws <- 1652459225.2987883: {\"op\":\"subscribe\"}

1652459225.5: {\"event\":\"subscribe\"}\r
1652459226: pong
https://x.test/api?a=1 -> 1633998512.320639: {\"lastUpdateId\":1}
";

    #[test]
    fn every_kind_of_line() {
        let recs = parse(SAMPLE).unwrap();
        let dirs: Vec<_> = recs.iter().map(|r| r.direction).collect();
        assert_eq!(
            dirs,
            [
                Direction::Connect,
                Direction::Sent,
                Direction::Received,
                Direction::Received,
                Direction::HttpResponse
            ]
        );
        assert_eq!(recs[0].ts_ns, 1_652_459_224_530_060_500);
        assert_eq!(recs[1].text, "{\"op\":\"subscribe\"}");
        assert_eq!(recs[2].url, "wss://x.test/ws");
        assert_eq!(recs[2].line, 4);
        assert_eq!(recs[2].text, "{\"event\":\"subscribe\"}");
        assert_eq!(recs[3].ts_ns, 1_652_459_226_000_000_000);
        assert_eq!(recs[3].text, "pong");
        assert_eq!(recs[4].url, "https://x.test/api?a=1");
        assert!((recs[4].unix_time - 1_633_998_512.320_639).abs() < 1e-6);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("1.5: {}").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("before the connect"), "{e}");
        let e = parse("wss://a <-> x1").unwrap_err();
        assert!(e.to_string().contains("not a unix time"), "{e}");
        assert!(parse("wss://a <=> 1").is_err());
        assert!(parse("wss://a <-> 1\n2 no colon").is_err());
        assert!(parse_time("99999999999999999999").is_err());
    }
}
