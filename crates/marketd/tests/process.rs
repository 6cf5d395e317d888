//! The real binary: `marketd serve` starts on the flags of the outside
//! contract, answers at once, and exits 0 on SIGTERM within 10 s with every
//! acknowledged tick stored.

mod common;

use common::process::{Proc, Stream, marketd, run};
use common::{TestApp, metric_sum, metrics, status_of, wait_until};
use std::process::{Output, Stdio};
use std::time::Duration;

/// The promise of the outside contract: exit within 10 s of SIGTERM.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// Standard output of a run that must succeed (its errors in the failure).
fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

// How long start-up takes is a figure for a benchmark, not a pass/fail of
// `cargo test`: here serve must only answer within the generous deadline of
// `Proc::ready`.
#[tokio::test]
async fn serve_starts_fast_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let symbols = ["AAPL", "MSFT"];
    let env: Vec<(String, String)> = [
        ("MARKETD__FEEDS__SIMULATED__TICKS_PER_SECOND", "100".into()),
        (
            "MARKETD__FEEDS__SIMULATED__SYMBOLS",
            format!("[\"{}\"]", symbols.join("\",\"")),
        ),
        ("MARKETD__WRITER__FLUSH_INTERVAL_MS", "1000".into()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .into();
    let mut child = Proc::marketd(
        "serve",
        &["serve", "--addr", "127.0.0.1:0"],
        dir.path(),
        &env,
        true,
        "info",
    );
    let base = child.ready().await;
    let client = reqwest::Client::new();
    let latest = format!("{base}/api/v1/prices/latest?symbol=AAPL");
    assert_eq!(status_of(&client, &latest).await, 200);

    let acknowledged = wait_until(Duration::from_secs(30), "50 ticks ingested", || async {
        let page = metrics(&client, &base).await?;
        let n = metric_sum(
            &page,
            "marketd_ticks_ingested_total",
            "source=\"simulated\"",
        );
        (n > 50.0).then_some(n)
    })
    .await;

    let exit = child.terminate(EXIT_DEADLINE);
    let logs = child.lines(Stream::Stderr);
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
    // the signal were still buffered: they must have been written on the way
    // out. Counted through the API of an app started on the same data.
    let app = TestApp::spawn_in(dir.path().to_path_buf(), |c| {
        c.feeds.simulated.enabled = false;
    })
    .await;
    let mut stored = 0;
    for symbol in symbols {
        stored += app
            .count_stored(&format!("symbol={symbol}&source=simulated"))
            .await;
    }
    app.stop().await;
    assert!(
        stored as f64 >= acknowledged,
        "stored {stored} < acknowledged {acknowledged}"
    );
}

#[test]
fn unknown_config_keys_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = marketd()
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
    let out = marketd()
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
    succeeded(&run(&["migrate"], dir.path()));
    assert!(dir.path().join("marketd.db").exists());
}

#[test]
fn tda_subcommand_prints_ripser_barcodes() {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/tda/examples/random16.lower_distance_matrix"
    );
    let out = marketd()
        .args(["tda", data, "--format", "lower-distance", "--dim", "2"])
        .output()
        .unwrap();
    let text = succeeded(&out);
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
        let out = marketd().args(&args).arg("--help").output().unwrap();
        assert!(
            out.status.success(),
            "marketd {args:?} is not a valid command line: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Starts `serve` on `dir` (any free port, no feed) and returns it with its
/// base URL once it is listening.
async fn serve(dir: &std::path::Path) -> (Proc, String) {
    let env = [(
        "MARKETD__FEEDS__SIMULATED__ENABLED".to_string(),
        "false".to_string(),
    )];
    let mut child = Proc::marketd(
        "serve",
        &["serve", "--addr", "127.0.0.1:0"],
        dir,
        &env,
        false,
        "debug",
    );
    let base = child.ready().await;
    (child, base)
}

/// SIGTERM and the exit (its status is not this helper's concern); after
/// it, every line the server wrote is captured.
fn stop(child: &mut Proc) -> (String, String) {
    child.terminate(EXIT_DEADLINE);
    (
        child.lines(Stream::Stdout).join("\n"),
        child.lines(Stream::Stderr).join("\n"),
    )
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
    let out = run(
        &["keys", "create", "--role", "write", "--name", "ci"],
        dir.path(),
    );
    let stdout = succeeded(&out);
    let key = stdout.lines().last().unwrap().to_string();
    assert!(
        key.starts_with("mkd_") && !key.contains(' '),
        "the key alone on the last line: {stdout}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&key));
    let id = stdout.split_whitespace().nth(3).unwrap().to_string();

    let out = run(&["keys", "list"], dir.path());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains(&id) && list.contains("write") && list.contains("active"),
        "{list}"
    );
    assert!(!list.contains(&key));
    assert!(
        !run(
            &["keys", "create", "--role", "root", "--name", "x"],
            dir.path()
        )
        .status
        .success()
    );
    let out = run(
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
    succeeded(&out);
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
    assert!(!run(&zero, dir.path()).status.success());

    // A key already exists: serve prints none, and the CLI's key works.
    let (mut child, base) = serve(dir.path()).await;
    assert_eq!(poll_status(&base, None).await, 401);
    assert_eq!(poll_status(&base, Some(&key)).await, 202);
    // Revoked by the CLI while the server runs: refused within
    // auth.key_cache_ms (1 s by default; the server caches verified keys).
    let out_r = run(&["keys", "revoke", &id], dir.path());
    succeeded(&out_r);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match poll_status(&base, Some(&key)).await {
            401 => break,
            202 => assert!(
                std::time::Instant::now() < deadline,
                "a key revoked by the CLI is still accepted after 10 s"
            ),
            other => panic!("unexpected status {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (stdout, stderr) = stop(&mut child);
    assert!(
        !stdout.contains("mkd_"),
        "no bootstrap key when one exists: {stdout}"
    );
    assert!(!stderr.contains(&key), "the key is not in the logs");
    assert!(!run(&["keys", "revoke", &id], dir.path()).status.success());
}

#[tokio::test]
async fn serve_prints_the_first_admin_key_once_on_stdout_never_in_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = serve(dir.path()).await;
    let wait = Duration::from_secs(10);
    let (_, first) = child
        .wait_line(Stream::Stdout, 0, "a first line", wait, |_| true)
        .await;
    assert!(first.contains("admin key"), "{first}");
    let (_, key) = child
        .wait_line(Stream::Stdout, 1, "a second line", wait, |_| true)
        .await;
    assert!(key.starts_with("mkd_"), "{key}");
    let r = reqwest::Client::new()
        .get(format!("{base}/api/v1/api-keys"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, logs) = stop(&mut child);
    assert!(!logs.contains(&key), "the bootstrap key is not logged");

    let (mut child, _) = serve(dir.path()).await;
    let (out, _) = stop(&mut child);
    assert!(!out.contains("mkd_"), "printed only once");
}

#[test]
fn credentials_cli_stores_encrypted_values_and_rotates_the_key() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let new_key = || {
        let out = marketd()
            .args(["keys", "new-encryption-key"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (k1, k2) = (new_key(), new_key());
    assert_eq!(k1.len(), 44);
    assert_ne!(k1, k2);
    let plaintext = "fh_cli_secret_value_5521";
    let mut child = marketd()
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
    succeeded(&out);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(plaintext));
    // What is physically in the database file is the point here (the
    // plaintext never reaches the disk), so the file is read directly.
    let db = std::fs::read(dir.path().join("marketd.db")).unwrap();
    let wal = std::fs::read(dir.path().join("marketd.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes
                .windows(plaintext.len())
                .any(|w| w == plaintext.as_bytes())
        );
    }
    let out = run(&["credentials", "list"], dir.path());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains("providers.finnhub.api_key") && list.contains("key_id=k1"),
        "{list}"
    );

    // Without the old key, rotation refuses; with it, every value moves to k2.
    let rotate = |previous: Option<&str>| {
        let mut c = marketd();
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
    succeeded(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 1 of 1"));
    let list = String::from_utf8(run(&["credentials", "list"], dir.path()).stdout).unwrap();
    assert!(list.contains("key_id=k2"), "{list}");
}
