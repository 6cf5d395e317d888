//! Bars and moving averages must equal an independent recomputation from the
//! stored ticks, and a restart keeps jobs running and ticks stored.

mod common;

use common::{TestApp, eventually};
use marketd_model::Decimal;
use serde_json::json;
use sqlx::Row;
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
    trades: i64,
}

fn dec(s: String) -> Decimal {
    Decimal::from_str(&s)
        .or_else(|_| Decimal::from_scientific(&s))
        .unwrap()
}

#[tokio::test]
async fn bars_and_moving_averages_match_a_recomputation_from_ticks() {
    let app = TestApp::spawn(|c| {
        c.feeds.simulated.ticks_per_second = 40.0;
        c.feeds.simulated.symbols = vec![
            marketd_model::Symbol::parse("AAPL").unwrap(),
            marketd_model::Symbol::parse("BTC-USDT").unwrap(),
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
    let db = app.db_url();
    let _tmp = app.stop().await.expect("tempdir kept");

    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    for symbol in ["AAPL", "BTC-USDT"] {
        // Independent recomputation of 1s bars from ticks in (event time, arrival) order.
        let rows = sqlx::query("SELECT CAST(price AS TEXT) AS p, CAST(size AS TEXT) AS s, ts_event FROM ticks WHERE symbol = ? AND source = 'simulated' ORDER BY ts_event, id")
            .bind(symbol)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(rows.len() > 100, "{symbol}: {} ticks", rows.len());
        let mut expected: BTreeMap<i64, Ohlcv> = BTreeMap::new();
        for r in rows {
            let (p, s, ts) = (
                dec(r.get("p")),
                dec(r.get("s")),
                r.get::<i64, _>("ts_event"),
            );
            let start = ts.div_euclid(SEC) * SEC;
            let b = expected.entry(start).or_insert(Ohlcv {
                open: p,
                high: p,
                low: p,
                close: p,
                volume: Decimal::ZERO,
                trades: 0,
            });
            b.high = b.high.max(p);
            b.low = b.low.min(p);
            b.close = p;
            b.volume += s;
            b.trades += 1;
        }
        let stored = sqlx::query("SELECT start, CAST(open AS TEXT) o, CAST(high AS TEXT) h, CAST(low AS TEXT) l, CAST(close AS TEXT) c, CAST(volume AS TEXT) v, trades, closed FROM bars WHERE symbol = ? AND source = 'simulated' AND interval = '1s' ORDER BY start")
            .bind(symbol)
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(
            stored.len(),
            expected.len(),
            "{symbol}: one bar per second with ticks"
        );
        let mut closed_closes = Vec::new();
        for r in &stored {
            let start: i64 = r.get("start");
            let got = Ohlcv {
                open: dec(r.get("o")),
                high: dec(r.get("h")),
                low: dec(r.get("l")),
                close: dec(r.get("c")),
                volume: dec(r.get("v")),
                trades: r.get("trades"),
            };
            assert_eq!(
                &got,
                expected.get(&start).unwrap(),
                "{symbol} bar at {start}"
            );
            if r.get::<i64, _>("closed") == 1 {
                closed_closes.push((start, got.close));
            }
        }
        assert!(
            closed_closes.len() >= 6,
            "{symbol}: closed bars {}",
            closed_closes.len()
        );
        // The 1m bar (all in one or two minutes) must agree too.
        let minute: Vec<(i64, i64)> = sqlx::query_as("SELECT start, trades FROM bars WHERE symbol = ? AND source = 'simulated' AND interval = '1m' ORDER BY start").bind(symbol).fetch_all(&pool).await.unwrap();
        let total: i64 = expected.values().map(|b| b.trades).sum();
        assert_eq!(
            minute.iter().map(|m| m.1).sum::<i64>(),
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
                let got: Vec<(i64, f64)> = sqlx::query_as("SELECT ts, value FROM indicators WHERE symbol = ? AND source = 'simulated' AND interval = '1s' AND kind = ? AND window = ? ORDER BY ts")
                    .bind(symbol)
                    .bind(kind)
                    .bind(w as i64)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
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
    pool.close().await;
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
    eventually(Duration::from_secs(6), || async {
        let (_, j) = app.get_json(&format!("/api/v1/polling-jobs/{id}")).await;
        (j["run_count"].as_u64().unwrap_or(0) >= 2).then_some(())
    })
    .await;
    app.stop().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("marketd.db").display()))
        .await
        .unwrap();
    let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE symbol = 'IBM'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let runs_before: i64 = sqlx::query_scalar("SELECT run_count FROM polling_jobs WHERE id = ?")
        .bind(&id)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(before >= 2, "ticks stored before the restart: {before}");

    let app = TestApp::spawn_in(dir.clone(), |c| c.feeds.simulated.enabled = false).await;
    let (_, h) = app
        .get_json("/api/v1/prices/history?symbol=IBM&limit=1000")
        .await;
    assert!(
        h["count"].as_i64().unwrap() >= before,
        "stored ticks survive: {h}"
    );
    let job = eventually(Duration::from_secs(6), || async {
        let (_, j) = app.get_json(&format!("/api/v1/polling-jobs/{id}")).await;
        (j["run_count"].as_i64().unwrap_or(0) >= runs_before + 2).then_some(j)
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
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    let stored = eventually(Duration::from_secs(15), || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE source = 'replay'")
                .fetch_one(&pool)
                .await
                .unwrap();
            (n >= good).then_some(n)
        }
    })
    .await;
    assert_eq!(stored, good, "every valid row once");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let rejected: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("marketd_feed_rejected_total") && l.contains("replay"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 4.0, "{metrics}");
    // An exact price made it through unchanged.
    let p: String = sqlx::query_scalar("SELECT CAST(price AS TEXT) FROM ticks WHERE source = 'replay' AND symbol = 'AAPL' ORDER BY ts_event LIMIT 1").fetch_one(&pool).await.unwrap();
    assert_eq!(dec(p), Decimal::from_str("101.01").unwrap());
    pool.close().await;
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
    let db = format!("sqlite://{}", dir.join("marketd.db").display());
    let stored = |want: i64| {
        let db = db.clone();
        async move {
            let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ticks WHERE source = 'replay'")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            (n >= want).then_some(())
        }
    };
    let app = TestApp::spawn_in(dir.clone(), replay(first)).await;
    eventually(Duration::from_secs(15), || stored(40)).await;
    app.stop().await;
    let app = TestApp::spawn_in(dir.clone(), replay(second)).await;
    eventually(Duration::from_secs(15), || stored(81)).await;
    app.stop().await;

    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    for (interval, start) in [("1m", minute), ("1h", minute / (3_600 * SEC) * 3_600 * SEC)] {
        let (open, close, high, low, volume, trades): (String, String, String, String, String, i64) =
            sqlx::query_as(
                "SELECT CAST(open AS TEXT), CAST(close AS TEXT), CAST(high AS TEXT), CAST(low AS TEXT), \
                 CAST(volume AS TEXT), trades FROM bars \
                 WHERE symbol = 'AAPL' AND source = 'replay' AND interval = ? AND start = ?",
            )
            .bind(interval)
            .bind(start)
            .fetch_one(&pool)
            .await
            .unwrap();
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
        assert_eq!(trades, ticks.len() as i64, "{interval}: every tick once");
        assert_eq!(
            dec(open),
            prices[0],
            "{interval} open from before the restart"
        );
        assert_eq!(dec(close), *prices.last().unwrap(), "{interval} close");
        assert_eq!(dec(high), *prices.iter().max().unwrap(), "{interval} high");
        assert_eq!(dec(low), *prices.iter().min().unwrap(), "{interval} low");
        assert_eq!(dec(volume), Decimal::from(sizes), "{interval} volume");
    }
    pool.close().await;
}
