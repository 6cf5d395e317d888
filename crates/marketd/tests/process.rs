//! The real binary: `marketd serve` starts on the flags of the outside
//! contract, answers at once, and exits 0 on SIGTERM within 10 s with every
//! acknowledged tick stored.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ingested(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("marketd_ticks_ingested_total") && l.contains("source=\"simulated\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn serve_starts_fast_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args([
            "--json-logs",
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MARKETD__FEEDS__SIMULATED__TICKS_PER_SECOND", "100")
        .env("MARKETD__WRITER__FLUSH_INTERVAL_MS", "1000")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(r) = client
            .get(format!("{base}/api/v1/prices/latest?symbol=AAPL"))
            .send()
            .await
        {
            assert_eq!(r.status(), 200);
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "serve did not answer");
    let startup = started.elapsed();
    assert!(
        startup < Duration::from_secs(3),
        "serve took {startup:?} to answer"
    );

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let acknowledged = ingested(&metrics);
    assert!(
        acknowledged > 50.0,
        "ticks ingested before the signal: {acknowledged}"
    );

    let stop = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(10),
            "did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let logs: Vec<String> = rx.try_iter().collect();
    assert!(
        exit.success(),
        "exit status {exit:?}; logs:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("all received events written")),
        "logs:\n{}",
        logs.join("\n")
    );
    for line in &logs {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("--json-logs wrote a non-JSON line ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
    }

    // The writer flushes every second here, so ticks acknowledged just before
    // the signal were still buffered: they must have been written on the way out.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("marketd.db").display()
    ))
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE source = 'simulated'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        stored as f64 >= acknowledged,
        "stored {stored} < acknowledged {acknowledged}"
    );
    pool.close().await;
}

#[test]
fn unknown_config_keys_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("MARKETD__WRITER__BATCH_SIZ", "10")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("batch_siz"), "{err}");

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[bus]\nbuffer = \"lots\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .arg("--config")
        .arg(&cfg)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("buffer"), "{err}");
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("marketd.db").exists());
}

#[test]
fn tda_subcommand_prints_ripser_barcodes() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/tda/examples/random16.lower_distance_matrix"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args(["tda", data, "--format", "lower-distance", "--dim", "2"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // Ripser's own output for this case has H0=16 H1=14 H2=6 (expected/INDEX.md).
    let mut counts = Vec::new();
    for line in text.lines() {
        if line.starts_with("persistence intervals in dim") {
            counts.push(0);
        } else if line.starts_with(" [") {
            *counts.last_mut().unwrap() += 1;
        }
    }
    assert_eq!(counts, vec![16, 14, 6], "{text}");
}

/// The commands of docker-compose.yml and the Dockerfile's CMD are accepted
/// by this binary's command line (flags kept in step with the deployment).
#[test]
fn deployment_commands_parse() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut commands: Vec<Vec<String>> = Vec::new();
    for (file, marker) in [("docker-compose.yml", "command:"), ("Dockerfile", "CMD ")] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix(marker)
                && let Some(list) = rest.trim().strip_prefix('[')
                && !line.contains("redis-server")
            {
                let args: Vec<String> = list
                    .trim_end_matches(']')
                    .split(',')
                    .map(|a| a.trim().trim_matches('"').to_string())
                    .filter(|a| !a.is_empty())
                    .collect();
                commands.push(args);
            }
        }
    }
    assert!(commands.len() >= 5, "{commands:?}");
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "marketd {args:?} is not a valid command line: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn marketd(args: &[&str], dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

fn lines_of(r: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// Starts `serve` on `dir`; returns the child, its base URL and its stdout
/// and stderr lines once it answers.
async fn serve(
    dir: &std::path::Path,
) -> (
    std::process::Child,
    String,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Receiver<String>,
) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "debug")
        .env("MARKETD__FEEDS__SIMULATED__ENABLED", "false")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if reqwest::get(format!("{base}/health/live")).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, base, out, err)
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn drain(rx: &std::sync::mpsc::Receiver<String>) -> String {
    let mut all = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(300)) {
        all.push_str(&l);
        all.push('\n');
    }
    all
}

async fn poll_status(base: &str, key: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/v1/prices/poll"))
        .json(&serde_json::json!({"symbols": ["AAPL"], "interval": 60}));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn keys_cli_creates_lists_and_revokes_against_the_store_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = marketd(
        &["keys", "create", "--role", "write", "--name", "ci"],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let key = stdout.lines().last().unwrap().to_string();
    assert!(
        key.starts_with("mkd_") && !key.contains(' '),
        "the key alone on the last line: {stdout}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&key));
    let id = stdout.split_whitespace().nth(3).unwrap().to_string();

    let out = marketd(&["keys", "list"], dir.path());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains(&id) && list.contains("write") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&key));
    assert!(
        !marketd(
            &["keys", "create", "--role", "root", "--name", "x"],
            dir.path()
        )
        .status
        .success()
    );
    let out = marketd(
        &[
            "keys",
            "create",
            "--role",
            "read",
            "--name",
            "temp",
            "--expires-in-days",
            "30",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zero = [
        "keys",
        "create",
        "--role",
        "read",
        "--name",
        "x",
        "--expires-in-days",
        "0",
    ];
    assert!(!marketd(&zero, dir.path()).status.success());

    // A key already exists: serve prints none, and the CLI's key works.
    let (child, base, out, err) = serve(dir.path()).await;
    assert_eq!(poll_status(&base, None).await, 401);
    assert_eq!(poll_status(&base, Some(&key)).await, 202);
    // Revoked by the CLI while the server runs: refused at once.
    let out_r = marketd(&["keys", "revoke", &id], dir.path());
    assert!(
        out_r.status.success(),
        "{}",
        String::from_utf8_lossy(&out_r.stderr)
    );
    assert_eq!(poll_status(&base, Some(&key)).await, 401);
    stop(child);
    let (stdout, stderr) = (drain(&out), drain(&err));
    assert!(
        !stdout.contains("mkd_"),
        "no bootstrap key when one exists: {stdout}"
    );
    assert!(!stderr.contains(&key), "the key is not in the logs");
    assert!(
        !marketd(&["keys", "revoke", &id], dir.path())
            .status
            .success()
    );
}

#[tokio::test]
async fn serve_prints_the_first_admin_key_once_on_stdout_never_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (child, base, out, err) = serve(dir.path()).await;
    let first = out.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(first.contains("admin key"), "{first}");
    let key = out.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(key.starts_with("mkd_"), "{key}");
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/api-keys"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop(child);
    assert!(
        !drain(&err).contains(&key),
        "the bootstrap key is not logged"
    );

    let (child, _, out, _) = serve(dir.path()).await;
    stop(child);
    assert!(!drain(&out).contains("mkd_"), "printed only once");
}

#[test]
fn credentials_cli_stores_encrypted_values_and_rotates_the_key() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let new_key = || {
        let out = Command::new(env!("CARGO_BIN_EXE_marketd"))
            .args(["keys", "new-encryption-key"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (k1, k2) = (new_key(), new_key());
    assert_eq!(k1.len(), 44);
    assert_ne!(k1, k2);
    let plaintext = "fh_cli_secret_value_5521";
    let mut child = Command::new(env!("CARGO_BIN_EXE_marketd"))
        .args([
            "credentials",
            "set",
            "providers.finnhub.api_key",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("MARKETD__ENCRYPTION__KEY", &k1)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{plaintext}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(plaintext));
    let db = std::fs::read(dir.path().join("marketd.db")).unwrap();
    let wal = std::fs::read(dir.path().join("marketd.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(plaintext.len())
                .any(|w| w == plaintext.as_bytes())
        );
    }
    let out = marketd(&["credentials", "list"], dir.path());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("providers.finnhub.api_key") && list.contains("key_id=k1"),
        "{list}"
    );

    // Without the old key, rotation refuses; with it, every value moves to k2.
    let rotate = |previous: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_marketd"));
        c.args(["keys", "rotate-encryption", "--data-dir"])
            .arg(dir.path())
            .env("MARKETD__ENCRYPTION__KEY", &k2)
            .env("MARKETD__ENCRYPTION__KEY_ID", "k2");
        if let Some(p) = previous {
            c.env(
                "MARKETD__ENCRYPTION__PREVIOUS_KEYS",
                format!("[\"k1:{p}\"]"),
            );
        }
        c.output().unwrap()
    };
    let out = rotate(None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("k1") && !err.contains(&k2), "{err}");
    let out = rotate(Some(&k1));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 1 of 1"));
    let list = String::from_utf8(marketd(&["credentials", "list"], dir.path()).stdout).unwrap();
    assert!(list.contains("key_id=k2"), "{list}");
}
