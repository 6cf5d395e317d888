//! Backends restarting under a running marketd: PostgreSQL and Redis are
//! stopped and started again during ingest. Readiness turns red, then green
//! again without restarting marketd; requests that do not need the missing
//! backend keep working; every tick of the replayed stream ends up stored.
//!
//! The test runs its own PostgreSQL and Redis (it must restart them), from the
//! system's packages (scripts/test installs them). Without them it is skipped,
//! unless `MARKETD_REQUIRE_SERVICES=1`, where it fails.

mod common;

use common::process::free_port;
use common::{TestApp, missing, wait_until};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUITE: &str = "restarts";
const SYMBOLS: [&str; 3] = ["AAPL", "MSFT", "NVDA"];

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A private PostgreSQL the test can stop and start.
struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl Postgres {
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_postgres {
            // initdb and postgres refuse to run as root.
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn init() -> Option<Postgres> {
        let bin = pg_bin()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("marketd-restart-pg")
            .tempdir()
            .ok()?;
        if as_postgres {
            Command::new("chown")
                .args(["postgres:", dir.path().to_str()?])
                .status()
                .ok()?;
        }
        let pg = Postgres {
            bin,
            dir,
            port: free_port(),
            as_postgres,
        };
        let ok = pg
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(pg.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?
            .success();
        ok.then_some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn start(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl start failed");
    }

    fn stop(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl stop failed");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private Redis the test can stop and start on the same port.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start(port: u16) -> Option<Redis> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Redis {
            port,
            child: Some(child),
        })
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `ready` with the names of the failing checks. Probes carry no key (a
/// key is checked against the store, which is what goes away here).
async fn readiness(app: &TestApp) -> (u16, Vec<String>) {
    let r = app.anon.get(app.url("/health/ready")).send().await.unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    let failing = body["checks"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, c)| c["status"] != "ok")
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    (status, failing)
}

async fn wait_readiness(app: &TestApp, want: u16, why: &str) -> Vec<String> {
    wait_until(
        Duration::from_secs(30),
        &format!("{why}: readiness {want}"),
        || async {
            let (status, failing) = readiness(app).await;
            (status == want).then_some(failing)
        },
    )
    .await
}

/// Every stored replayed tick, read through the history API.
async fn stored(app: &TestApp) -> Vec<marketd_model::Tick> {
    let mut all = Vec::new();
    for symbol in SYMBOLS {
        all.extend(
            app.all_ticks(&format!("symbol={symbol}&source=replay"))
                .await,
        );
    }
    all
}

fn write_csv(path: &Path, n: usize) {
    let start = 1_700_000_000_000_i64;
    let mut text = String::from("symbol,ts,price,size\n");
    for i in 0..n {
        let sym = SYMBOLS[i % 3];
        text.push_str(&format!(
            "{sym},{},{}.{:02},1\n",
            start + i as i64 * 4,
            100 + i % 50,
            i % 100
        ));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_redis_restarts_turn_readiness_red_then_green_and_lose_nothing() {
    let Some(pg) = Postgres::init() else {
        return missing("PostgreSQL (initdb/pg_ctl) missing", SUITE);
    };
    pg.start();
    let Some(mut redis) = Redis::start(free_port()) else {
        return missing("redis-server missing", SUITE);
    };

    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("stream.csv");
    // 3,000 ticks, 4 ms apart: 12 s of stream at real time.
    let n = 3_000;
    write_csv(&csv, n);
    let (pg_url, redis_url) = (pg.url(), redis.url());
    let app = TestApp::spawn_in(dir.path().join("data"), move |c| {
        c.storage.url = pg_url;
        c.cache.url = redis_url;
        c.feeds.simulated.enabled = false;
        c.feeds.replay.enabled = true;
        c.feeds.replay.path = Some(csv);
        c.feeds.replay.speed = 1.0;
        c.writer.flush_interval_ms = 100;
    })
    .await;
    assert_eq!(
        wait_readiness(&app, 200, "start").await,
        Vec::<String>::new()
    );
    // Ingest is under way: ticks reach PostgreSQL...
    wait_until(Duration::from_secs(30), "ticks stored", || async {
        (app.count_stored("symbol=AAPL&source=replay").await >= 150).then_some(())
    })
    .await;

    // ...when it goes away mid-stream.
    pg.stop();
    let failing = wait_readiness(&app, 503, "PostgreSQL stopped").await;
    assert_eq!(failing, vec!["store".to_string()]);
    // The outage lasts ~2 s of stream. Its length is the behaviour under
    // test and there is no state to poll for (ingest is held back while the
    // store is gone), so this one stays a timed outage.
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.start();
    wait_readiness(&app, 200, "PostgreSQL back").await;

    // Redis goes away: readiness names the cache, stored data is still served.
    redis.stop();
    let failing = wait_readiness(&app, 503, "Redis stopped").await;
    assert_eq!(failing, vec!["cache".to_string()]);
    let (status, body) = app
        .get_json("/api/v1/prices/history?symbol=AAPL&limit=5")
        .await;
    assert_eq!(status, 200, "history does not need Redis: {body}");
    assert_eq!(body["ticks"].as_array().map(Vec::len), Some(5), "{body}");
    let (status, _) = app.get_json("/health/live").await;
    assert_eq!(status, 200);
    let port = redis.port;
    drop(redis);
    let _redis = Redis::start(port).expect("Redis restarts on its port");
    wait_readiness(&app, 200, "Redis back").await;

    // The whole stream lands, each tick once.
    let ticks = wait_until(
        Duration::from_secs(60),
        "the whole stream stored",
        || async {
            let ticks = stored(&app).await;
            (ticks.len() >= n).then_some(ticks)
        },
    )
    .await;
    assert_eq!(ticks.len(), n, "every replayed tick stored exactly once");
    let distinct: BTreeSet<(String, i64)> = ticks
        .iter()
        .map(|t| (t.symbol.to_string(), t.ts_event))
        .collect();
    assert_eq!(distinct.len(), n);
    app.stop().await;
}
