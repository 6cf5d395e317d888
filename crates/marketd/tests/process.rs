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
