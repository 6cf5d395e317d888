//! Bars and moving averages must equal an independent recomputation from the
//! stored ticks, and a restart keeps jobs running and ticks stored.

mod common;

use common::{TestApp, eventually, metric_sum, wait_until};
use marketd::config::Config;
use marketd_model::{Bar, Decimal, Symbol};
use serde_json::json;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

const SEC: i64 = 1_000_000_000;

#[derive(Debug, PartialEq)]
struct Ohlcv {
    open: Decimal,
    high: Decimal,
    low: Decimal,
    close: Decimal,
    volume: Decimal,
    trades: u64,
    notional: Option<Decimal>,
    vwap: Option<Decimal>,
}

impl From<&Bar> for Ohlcv {
    fn from(b: &Bar) -> Self {
        Ohlcv {
            open: b.open,
            high: b.high,
            low: b.low,
            close: b.close,
            volume: b.volume,
            trades: b.trades,
            notional: b.notional,
            vwap: b.vwap,
        }
    }
}

#[derive(serde::Deserialize)]
struct BarsPage {
    bars: Vec<Bar>,
}

#[derive(serde::Deserialize)]
struct MaPage {
    values: Vec<MaPoint>,
}

#[derive(serde::Deserialize)]
struct MaPoint {
    ts: i64,
    value: f64,
}

/// The stored bars of `symbol` from `source` at `interval`, by start.
async fn bars(app: &TestApp, symbol: &str, source: &str, interval: &str) -> Vec<Bar> {
    let page: BarsPage = app
        .get_as(&format!(
            "/api/v1/bars?symbol={symbol}&source={source}&interval={interval}&limit=10000"
        ))
        .await;
    let mut bars = page.bars;
    bars.sort_by_key(|b| b.start);
    bars
}

/// An app on `dir` that only answers (no feed), to read what an earlier
/// run stored through the API.
async fn reader(dir: std::path::PathBuf, tweak: impl FnOnce(&mut Config)) -> TestApp {
    TestApp::spawn_in(dir, |c| {
        c.feeds.simulated.enabled = false;
        tweak(c);
    })
    .await
}

#[tokio::test]
async fn bars_and_moving_averages_match_a_recomputation_from_ticks() {
    let app = TestApp::spawn(|c| {
        c.feeds.simulated.ticks_per_second = 40.0;
        c.feeds.simulated.symbols = vec![
            Symbol::parse("AAPL").unwrap(),
            Symbol::parse("BTC-USDT").unwrap(),
        ];
        c.writer.flush_interval_ms = 50;
        c.aggregator.flush_interval_ms = 200;
        c.aggregator.ma_windows = vec![3, 5];
    })
    .await;
    // ~8 s of 1s bars, then a graceful stop flushes everything.
    eventually(Duration::from_secs(20), || async {
        let (_, b) = app
            .get_json("/api/v1/indicators/moving-average?symbol=AAPL&window=5&kind=ema&interval=1s")
            .await;
        (b["count"].as_u64().unwrap_or(0) >= 3).then_some(())
    })
    .await;
    let (_, api_bars) = app
        .get_json("/api/v1/bars?symbol=AAPL&interval=1s&limit=1000")
        .await;
    assert!(api_bars["count"].as_u64().unwrap() >= 7);
    let dir = app.data_dir.clone();
    let _tmp = app.stop().await.expect("tempdir kept");
    // What the stopped app stored, read through the API of another.
    let app = reader(dir, |c| c.aggregator.ma_windows = vec![3, 5]).await;

    for symbol in ["AAPL", "BTC-USDT"] {
        // Independent recomputation of 1s bars from ticks in (event time, arrival) order.
        let ticks = app
            .all_ticks(&format!("symbol={symbol}&source=simulated"))
            .await;
        assert!(ticks.len() > 100, "{symbol}: {} ticks", ticks.len());
        let mut expected: BTreeMap<i64, Ohlcv> = BTreeMap::new();
        for t in &ticks {
            let (p, s) = (t.price, t.size);
            let start = t.ts_event.div_euclid(SEC) * SEC;
            let b = expected.entry(start).or_insert(Ohlcv {
                open: p,
                high: p,
                low: p,
                close: p,
                volume: Decimal::ZERO,
                trades: 0,
                notional: Some(Decimal::ZERO),
                vwap: None,
            });
            b.high = b.high.max(p);
            b.low = b.low.min(p);
            b.close = p;
            b.volume += s;
            b.trades += 1;
            b.notional = b.notional.map(|n| n + p * s);
        }
        // VWAP as documented: the exact notional over the volume, to 12 places.
        for b in expected.values_mut() {
            b.vwap = b
                .notional
                .filter(|_| !b.volume.is_zero())
                .map(|n| (n / b.volume).round_dp(Bar::VWAP_DECIMALS).normalize());
        }
        let stored = bars(&app, symbol, "simulated", "1s").await;
        assert_eq!(
            stored.len(),
            expected.len(),
            "{symbol}: one bar per second with ticks"
        );
        let mut closed_closes = Vec::new();
        for bar in &stored {
            let got = Ohlcv::from(bar);
            assert_eq!(
                &got,
                expected.get(&bar.start).unwrap(),
                "{symbol} bar at {}",
                bar.start
            );
            if bar.closed {
                closed_closes.push((bar.start, got.close));
            }
        }
        assert!(
            closed_closes.len() >= 6,
            "{symbol}: closed bars {}",
            closed_closes.len()
        );
        // The 1m bar (all in one or two minutes) must agree too.
        let minute = bars(&app, symbol, "simulated", "1m").await;
        let total: u64 = expected.values().map(|b| b.trades).sum();
        assert_eq!(
            minute.iter().map(|m| m.trades).sum::<u64>(),
            total,
            "{symbol}: 1m bars hold every tick"
        );

        // Independent SMA/EMA over closed 1s bar closes.
        let closes: Vec<f64> = closed_closes
            .iter()
            .map(|(_, c)| c.to_string().parse().unwrap())
            .collect();
        for w in [3usize, 5] {
            let mut ema: Option<f64> = None;
            let mut want = Vec::new();
            for i in 0..closes.len() {
                if i + 1 < w {
                    continue;
                }
                let sma = closes[i + 1 - w..=i].iter().sum::<f64>() / w as f64;
                let alpha = 2.0 / (w as f64 + 1.0);
                let e = match ema {
                    None => sma,
                    Some(prev) => alpha * closes[i] + (1.0 - alpha) * prev,
                };
                ema = Some(e);
                want.push((closed_closes[i].0, sma, e));
            }
            for (kind, idx) in [("sma", 1), ("ema", 2)] {
                let page: MaPage = app
                    .get_as(&format!(
                        "/api/v1/indicators/moving-average?symbol={symbol}&source=simulated\
                         &interval=1s&kind={kind}&window={w}&limit=10000"
                    ))
                    .await;
                let mut got: Vec<(i64, f64)> =
                    page.values.iter().map(|v| (v.ts, v.value)).collect();
                got.sort_by_key(|g| g.0);
                assert_eq!(got.len(), want.len(), "{symbol} {kind}{w}");
                for (g, e) in got.iter().zip(&want) {
                    let expect = if idx == 1 { e.1 } else { e.2 };
                    assert_eq!(g.0, e.0);
                    assert!(
                        (g.1 - expect).abs() <= 1e-9 * expect.abs(),
                        "{symbol} {kind}{w} at {}: {} vs {expect}",
                        g.0,
                        g.1
                    );
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn polling_jobs_and_ticks_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let app = TestApp::spawn_in(dir.clone(), |c| c.feeds.simulated.enabled = false).await;
    let (s, b) = app
        .post_json(
            "/api/v1/prices/poll",
            &json!({"symbols": ["IBM"], "interval": 1}),
        )
        .await;
    assert_eq!(s, 202, "{b}");
    let id = b["job_ids"][0].as_str().unwrap().to_string();
    let job_path = format!("/api/v1/polling-jobs/{id}");
    let runs = |j: &serde_json::Value| j["run_count"].as_i64().unwrap_or(0);
    let runs_before = eventually(Duration::from_secs(6), || async {
        let (_, j) = app.get_json(&job_path).await;
        (runs(&j) >= 2).then_some(runs(&j))
    })
    .await;
    // Each run's tick reaches the store.
    let before = wait_until(Duration::from_secs(10), "two ticks stored", || async {
        let n = app.count_stored("symbol=IBM").await as i64;
        (n >= 2).then_some(n)
    })
    .await;
    app.stop().await;
    assert!(before >= 2, "ticks stored before the restart: {before}");

    let restarted = marketd_model::time::now_ns();
    let app = TestApp::spawn_in(dir.clone(), |c| c.feeds.simulated.enabled = false).await;
    let (_, h) = app
        .get_json("/api/v1/prices/history?symbol=IBM&limit=1000")
        .await;
    assert!(
        h["count"].as_i64().unwrap() >= before,
        "stored ticks survive: {h}"
    );
    // The job resumes: it runs after the restart, then again, its count
    // going on from before the restart.
    let ran_after_restart = |j: &serde_json::Value| {
        j["last_run_at"]
            .as_str()
            .and_then(marketd_model::time::parse_ts)
            .is_some_and(|ns| ns > restarted)
    };
    let first = eventually(Duration::from_secs(6), || async {
        let (_, j) = app.get_json(&job_path).await;
        ran_after_restart(&j).then_some(runs(&j))
    })
    .await;
    let job = eventually(Duration::from_secs(6), || async {
        let (_, j) = app.get_json(&job_path).await;
        (runs(&j) > first && runs(&j) >= runs_before + 2).then_some(j)
    })
    .await;
    assert_eq!(job["status"], "active");
    // The resumed job keeps storing ticks.
    eventually(Duration::from_secs(3), || async {
        let (_, h) = app
            .get_json("/api/v1/prices/history?symbol=IBM&limit=1000")
            .await;
        (h["count"].as_i64().unwrap_or(0) >= before + 2).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_csv_lands_exactly_once_and_bad_rows_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("ticks.csv");
    let base = marketd_model::time::now_ns() / SEC * SEC - 600 * SEC;
    let mut text = String::from("symbol,ts,price,size\n");
    let mut good = 0;
    for i in 0..3_000i64 {
        let symbol = if i % 3 == 0 { "BTC-USDT" } else { "AAPL" };
        text.push_str(&format!(
            "{symbol},{},{}.{:02},{}\n",
            base + i * 37_000_000,
            100 + i % 7,
            i % 100,
            1 + i % 5
        ));
        good += 1;
    }
    // Rejected rows: bad price, negative size, bad symbol, bad timestamp.
    text.push_str("AAPL,2026-01-01T00:00:00Z,abc,1\nAAPL,2026-01-01T00:00:00Z,1.5,-2\nBAD SYM,2026-01-01T00:00:00Z,1,1\nAAPL,yesterday,1,1\n");
    std::fs::write(&csv, text).unwrap();
    let app = TestApp::spawn(move |c| {
        c.feeds.simulated.enabled = false;
        c.feeds.replay.enabled = true;
        c.feeds.replay.path = Some(csv.clone());
        c.feeds.replay.speed = 0.0;
        c.writer.flush_interval_ms = 20;
    })
    .await;
    let stored = wait_until(
        Duration::from_secs(15),
        "every valid row stored",
        || async {
            let mut n = 0;
            for symbol in ["AAPL", "BTC-USDT"] {
                n += app
                    .count_stored(&format!("symbol={symbol}&source=replay"))
                    .await as i64;
            }
            (n >= good).then_some(n)
        },
    )
    .await;
    assert_eq!(stored, good, "every valid row once");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let rejected = metric_sum(&metrics, "marketd_feed_rejected_total", "replay");
    assert_eq!(rejected, 4.0, "{metrics}");
    // An exact price made it through unchanged.
    let first = &app.all_ticks("symbol=AAPL&source=replay").await[0];
    assert_eq!(first.price, Decimal::from_str("101.01").unwrap());
    app.stop().await;
}

/// A restart in the middle of a bar continues it: the 1m and 1h bars built
/// from ticks replayed before and after a restart hold every tick once (the
/// aggregator seeds its series from the store when it first sees them).
#[tokio::test]
async fn open_bars_continue_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // A minute 20 minutes ago; 40 ticks before the restart, 40 after, then
    // one in the next minute, which closes the 1m bar.
    let minute = (marketd_model::time::now_ns() / (60 * SEC) - 20) * 60 * SEC;
    let price = |i: i64| format!("{}.{:02}", 100 + (i * 7) % 11, i % 100);
    let write = |name: &str, range: std::ops::Range<i64>, extra: bool| {
        let mut text = String::from("symbol,ts,price,size\n");
        for i in range {
            text.push_str(&format!(
                "AAPL,{},{},{}\n",
                minute + i * 500_000_000,
                price(i),
                1 + i % 3
            ));
        }
        if extra {
            text.push_str(&format!("AAPL,{},{},1\n", minute + 61 * SEC, price(99)));
        }
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let first = write("a.csv", 0..40, false);
    let second = write("b.csv", 40..80, true);
    let replay = |path: std::path::PathBuf| {
        move |c: &mut marketd::config::Config| {
            c.feeds.simulated.enabled = false;
            c.feeds.replay.enabled = true;
            c.feeds.replay.path = Some(path);
            c.feeds.replay.speed = 0.0;
            c.writer.flush_interval_ms = 20;
        }
    };
    let app = TestApp::spawn_in(dir.clone(), replay(first)).await;
    stored(&app, 40).await;
    app.stop().await;
    let app = TestApp::spawn_in(dir.clone(), replay(second)).await;
    stored(&app, 81).await;
    app.stop().await;

    let app = reader(dir, |_| {}).await;
    for (interval, start) in [("1m", minute), ("1h", minute / (3_600 * SEC) * 3_600 * SEC)] {
        let all = bars(&app, "AAPL", "replay", interval).await;
        let bar = all
            .iter()
            .find(|b| b.start == start)
            .unwrap_or_else(|| panic!("no {interval} bar at {start}: {all:?}"));
        let ticks: Vec<i64> = if interval == "1m" {
            (0..80).collect()
        } else {
            (0..80).chain([99]).collect()
        };
        let prices: Vec<Decimal> = ticks
            .iter()
            .map(|&i| Decimal::from_str(&price(i)).unwrap())
            .collect();
        let sizes: i64 = ticks
            .iter()
            .map(|&i| if i == 99 { 1 } else { 1 + i % 3 })
            .sum();
        assert_eq!(
            bar.trades,
            ticks.len() as u64,
            "{interval}: every tick once"
        );
        assert_eq!(
            bar.open, prices[0],
            "{interval} open from before the restart"
        );
        assert_eq!(bar.close, *prices.last().unwrap(), "{interval} close");
        assert_eq!(bar.high, *prices.iter().max().unwrap(), "{interval} high");
        assert_eq!(bar.low, *prices.iter().min().unwrap(), "{interval} low");
        assert_eq!(bar.volume, Decimal::from(sizes), "{interval} volume");
        // The notional carried over the restart too: Σ price × size of all.
        let notional: Decimal = ticks
            .iter()
            .zip(&prices)
            .map(|(&i, p)| p * Decimal::from(if i == 99 { 1 } else { 1 + i % 3 }))
            .sum();
        assert_eq!(bar.notional, Some(notional), "{interval} notional");
        assert_eq!(
            bar.vwap,
            Some((notional / Decimal::from(sizes)).round_dp(12).normalize()),
            "{interval} vwap"
        );
    }
    app.stop().await;
}

/// Waits until `app` has stored `want` replayed ticks.
async fn stored(app: &TestApp, want: usize) {
    wait_until(Duration::from_secs(15), "replayed ticks stored", || async {
        (app.count_stored("symbol=AAPL&source=replay").await >= want).then_some(())
    })
    .await;
}
