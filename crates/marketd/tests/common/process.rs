//! The real `marketd` binary as a child process, for the tests of the
//! outside contract (`process`, `scale_out`): spawned with its standard
//! output and error captured line by line, its address read from its own
//! "ready" log line (so no port is guessed and raced for), stopped with
//! SIGTERM or SIGKILL, and its whole log kept in `CARGO_TARGET_TMPDIR` for a
//! failure's post-mortem.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// `marketd` (the binary of this crate), to add arguments and variables to.
pub fn marketd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_marketd"))
}

/// Runs `marketd <args> --data-dir <dir>` to completion.
pub fn run(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    marketd()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .expect("marketd runs")
}

/// A port nothing listens on right now (for a server that must come back
/// on the same port, such as a restarted Redis).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The lines one output stream of a child has written so far.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A stream read to its end on a thread of its own.
struct Captured {
    lines: Lines,
    reader: Option<JoinHandle<()>>,
}

impl Captured {
    fn new(stream: impl Read + Send + 'static) -> Captured {
        let lines = Lines::default();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().push(line);
            }
        });
        Captured {
            lines,
            reader: Some(reader),
        }
    }

    /// Waits for the end of the stream (the child has exited): after this,
    /// every line it wrote is in `lines`.
    fn finish(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Which output of the child.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One marketd process; killed when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    stdout: Captured,
    stderr: Captured,
}

impl Proc {
    /// Starts `cmd` (see [`marketd`]) with both outputs captured.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start marketd: {e}"));
        let stdout = Captured::new(child.stdout.take().unwrap());
        let stderr = Captured::new(child.stderr.take().unwrap());
        Proc {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// `marketd [--json-logs] <args> --data-dir <dir>` with `env`, logging at
    /// `log` (a `RUST_LOG` filter).
    pub fn marketd(
        name: &str,
        args: &[&str],
        dir: &std::path::Path,
        env: &[(String, String)],
        json_logs: bool,
        log: &str,
    ) -> Proc {
        let mut cmd = marketd();
        if json_logs {
            cmd.arg("--json-logs");
        }
        cmd.args(args)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", log)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Proc::spawn(name, cmd)
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    fn stream(&self, which: Stream) -> &Captured {
        match which {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    /// The lines of `which` written so far.
    pub fn lines(&self, which: Stream) -> Vec<String> {
        self.stream(which).lines.snapshot()
    }

    /// The last 30 lines of the log (standard error).
    pub fn tail(&self) -> String {
        let logs = self.lines(Stream::Stderr);
        logs[logs.len().saturating_sub(30)..].join("\n")
    }

    /// Reads `which` until a line after the first `skip` ones satisfies
    /// `want`, or fails after `timeout` (a deadline, not a measurement) or
    /// when the child exits first. Returns the line's index and text.
    pub async fn wait_line(
        &mut self,
        which: Stream,
        skip: usize,
        what: &str,
        timeout: Duration,
        want: impl Fn(&str) -> bool,
    ) -> (usize, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.lines(which);
            if let Some(i) = (skip..lines.len()).find(|&i| want(&lines[i])) {
                return (i, lines[i].clone());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Exited: what it wrote is complete once the reader ends.
                self.stream_mut(which).finish();
                let lines = self.lines(which);
                if let Some(i) = (skip..lines.len()).find(|&i| want(&lines[i])) {
                    return (i, lines[i].clone());
                }
                panic!(
                    "{}: exited {status} before {what}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{}: no {what} within {timeout:?}:\n{}",
                self.name,
                self.tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stream_mut(&mut self, which: Stream) -> &mut Captured {
        match which {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    /// Waits for the "ready" line the binary logs once its listener is
    /// bound, and returns its base URL (`http://127.0.0.1:<port>`): the
    /// address of the API for `serve` and `api`, of /health and /metrics
    /// for `worker`.
    pub async fn ready(&mut self) -> String {
        let (_, line) = self
            .wait_line(
                Stream::Stderr,
                0,
                "ready line",
                Duration::from_secs(60),
                |l| l.contains("ready") && l.contains("http://"),
            )
            .await;
        let from = line.find("http://").unwrap();
        let rest = &line[from + "http://".len()..];
        let end = rest.find('/').unwrap_or(rest.len());
        format!("http://{}", &rest[..end])
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.finish();
    }

    /// Sends SIGTERM.
    pub fn signal_term(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {}", self.name);
    }

    /// Waits for the exit; fails after `within` (the deadline the contract
    /// promises), killing the child. Every line it wrote is captured after.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.finish();
                return s;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!(
                    "{} did not exit within {within:?}:\n{}",
                    self.name,
                    self.tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status within `within`.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal_term();
        self.wait_exit(within)
    }

    fn finish(&mut self) {
        self.stdout.finish();
        self.stderr.finish();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The whole log, for a failure's post-mortem.
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "{}-{}.log",
            std::process::id(),
            self.name
        ));
        let _ = std::fs::write(&path, self.lines(Stream::Stderr).join("\n"));
    }
}
