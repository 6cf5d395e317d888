//! The simulated market, provider and feed.

use super::feed::MAX_BATCH;
use super::walk::to_decimal;
use super::*;
use crate::config::SimulatedFeedConfig;
use crate::{HistoryRequest, Provider};
use marketd_model::time::now_ns;
use marketd_model::{Decimal, Symbol, Tick, TickKind};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

const T0: i64 = 1_700_000_000_000_000_000;
const MS: i64 = 1_000_000;

#[test]
fn same_seed_same_prices_and_symbols_are_independent() {
    let a = SimulatedMarket::new(7);
    let b = SimulatedMarket::new(7);
    let c = SimulatedMarket::new(8);
    let aapl = sym("AAPL");
    let mut pa = Vec::new();
    for i in 0..200 {
        let ta = a.next_tick(&aapl, T0 + i * 100 * MS);
        // b interleaves another symbol: AAPL's path must not change.
        b.next_tick(&sym("BTC-USDT"), T0 + i * 100 * MS);
        let tb = b.next_tick(&aapl, T0 + i * 100 * MS);
        assert_eq!(ta, tb, "tick {i}");
        pa.push(ta.price);
    }
    let pc: Vec<Decimal> = (0..200)
        .map(|i| c.next_tick(&aapl, T0 + i * 100 * MS).price)
        .collect();
    assert_ne!(pa, pc, "another seed gives another path");
    assert_eq!(
        pa[0],
        Decimal::from_str("190.00").unwrap(),
        "first tick at the start price"
    );
    assert!(pa.iter().any(|p| *p != pa[0]), "the price moves");
}

#[test]
fn tick_sizes_follow_the_grid() {
    let m = SimulatedMarket::new(1);
    for (s, price_scale, size_scale) in [
        ("AAPL", 2, 0),
        ("TSLA", 2, 0),
        ("BTC-USDT", 2, 4),
        ("ETH-USDT", 2, 4),
    ] {
        let symbol = sym(s);
        for i in 0..500 {
            let t = m.next_tick(&symbol, T0 + i * 10 * MS);
            assert!(
                t.price.scale() == price_scale,
                "{s} price {} not on a 10^-{price_scale} grid",
                t.price
            );
            assert!(
                t.size.scale() == size_scale,
                "{s} size {} not on a 10^-{size_scale} grid",
                t.size
            );
            assert!(
                t.price > Decimal::ZERO && t.size > Decimal::ZERO,
                "{s}: {t:?}"
            );
            assert_eq!(t.kind, TickKind::Trade);
            assert_eq!(t.sequence, Some(i as u64 + 1));
            t.validate(T0 + 86_400_000 * MS).unwrap();
        }
    }
    // Sub-dollar crypto gets finer steps than 0.01 rather than collapsing.
    let doge = m.next_tick(&sym("DOGE-USDT"), T0);
    assert_eq!(doge.price, Decimal::from_str("0.15000").unwrap());
    assert_eq!(to_decimal(123.456, 2, true).to_string(), "123.46");
    assert_eq!(
        to_decimal(0.00001, 4, true).to_string(),
        "0.0001",
        "never rounds to zero"
    );
}

#[test]
fn unknown_symbols_get_stable_plausible_start_prices() {
    let p1 = SimulatedMarket::start_price(&sym("ZZZZ"));
    assert_eq!(p1, SimulatedMarket::start_price(&sym("ZZZZ")));
    assert_ne!(p1, SimulatedMarket::start_price(&sym("ZZZY")));
    for s in [
        "ZZZZ", "ABCD", "X", "BRK.A2", "FOO-USDT", "FOO-BTC", "^FOO", "ABCUSD=X",
    ] {
        let p = SimulatedMarket::start_price(&sym(s));
        assert!(p > Decimal::ZERO && p < Decimal::from(20_001), "{s}: {p}");
        let a = SimulatedMarket::new(3).next_tick(&sym(s), T0);
        assert_eq!(a.price, p, "{s}");
    }
    assert_eq!(
        SimulatedMarket::start_price(&sym("BTC-USDT")),
        Decimal::from(65_000)
    );
}

#[test]
fn volatility_is_realistic_per_asset_class() {
    // Daily log-return stdev over many simulated days: ~sigma/sqrt(252) for
    // equities (trading day = 6.5 h), ~sigma/sqrt(365) for crypto.
    let m = SimulatedMarket::new(11);
    let day_stdev = |s: &str, day_ns: i64| {
        let symbol = sym(s);
        let mut prev = m.next_tick(&symbol, T0).price;
        let mut rets = Vec::new();
        for d in 1..=2000 {
            let p = m.next_tick(&symbol, T0 + d * day_ns).price;
            rets.push((f64::try_from(p).unwrap() / f64::try_from(prev).unwrap()).ln());
            prev = p;
        }
        let mean = rets.iter().sum::<f64>() / rets.len() as f64;
        (rets.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rets.len() - 1) as f64).sqrt()
    };
    let aapl = day_stdev("AAPL", 23_400 * 1_000 * MS);
    let btc = day_stdev("BTC-USDT", 86_400 * 1_000 * MS);
    assert!(
        (0.25 / 252f64.sqrt() * 0.85..0.25 / 252f64.sqrt() * 1.15).contains(&aapl),
        "AAPL {aapl}"
    );
    assert!(
        (0.55 / 365.25f64.sqrt() * 0.85..0.55 / 365.25f64.sqrt() * 1.15).contains(&btc),
        "BTC {btc}"
    );
}

#[test]
fn generate_is_pure_round_robin_and_deterministic() {
    let m = SimulatedMarket::new(5);
    let symbols = [sym("AAPL"), sym("BTC-USDT"), sym("NEWCO")];
    let a = m.generate(&symbols, T0, MS, 3_000);
    assert_eq!(a.len(), 3_000);
    assert_eq!(a, m.generate(&symbols, T0, MS, 3_000));
    for (i, t) in a.iter().enumerate() {
        assert_eq!(t.symbol, symbols[i % 3]);
        assert_eq!(t.ts_event, T0 + i as i64 * MS);
    }
    // Live state untouched, and live ticks follow the same walk.
    assert_eq!(m.next_tick(&symbols[0], T0), a[0]);
    assert!(m.generate(&[], T0, MS, 10).is_empty());
}

#[tokio::test]
async fn provider_latest_and_history() {
    let p = SimulatedProvider::new(Arc::new(SimulatedMarket::new(1)));
    let t = p.latest(&sym("ANYTHING")).await.unwrap();
    assert_eq!(t.kind, TickKind::Last);
    assert_eq!(&*t.source, "simulated");
    assert!(p.health().last_success_ns.is_some());
    let now = now_ns();
    let req = HistoryRequest {
        symbol: sym("AAPL"),
        interval: marketd_model::Interval::M1,
        from: now - 3_600 * 1_000 * MS,
        to: now + 3_600 * 1_000 * MS,
    };
    let bars = p.history(&req).await.unwrap();
    assert!((60..=61).contains(&bars.len()), "{}", bars.len());
    for w in bars.windows(2) {
        assert_eq!(w[1].start - w[0].start, 60_000 * MS);
    }
    assert!(
        bars.iter()
            .all(|b| b.start >= req.from && b.start <= now && b.low <= b.high)
    );
    assert!(bars.first().unwrap().closed && !bars.last().unwrap().closed);
    let day = HistoryRequest {
        interval: marketd_model::Interval::S1,
        from: 0,
        to: now,
        ..req
    };
    assert_eq!(
        p.history(&day).await.unwrap().len() as i64,
        MAX_HISTORY_BARS
    );
}

#[tokio::test(start_paused = true)]
async fn feed_rate_jitter_batches_and_no_drift() {
    let market = Arc::new(SimulatedMarket::new(9));
    let cfg = SimulatedFeedConfig {
        symbols: vec![sym("AAPL"), sym("BTC-USDT")],
        ticks_per_second: 100.0,
        ..SimulatedFeedConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let feed = tokio::spawn(SimulatedFeed::new(cfg, market).run(tx, cancel.clone()));
    let mut ticks: Vec<Tick> = Vec::new();
    let mut batches = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let batch = rx.recv().await.expect("feed alive");
        assert!(!batch.is_empty() && batch.len() <= MAX_BATCH);
        batches += 1;
        ticks.extend(batch);
    }
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(1), feed)
        .await
        .expect("stops on cancel")
        .unwrap();
    let first = ticks[0].ts_event;
    let span_s = (ticks.last().unwrap().ts_event - first) as f64 / 1e9;
    // Event times keep pace with the (virtual) clock: no drift.
    assert!((span_s - 10.0).abs() < 0.1, "span {span_s}");
    for s in ["AAPL", "BTC-USDT"] {
        let mine: Vec<&Tick> = ticks.iter().filter(|t| t.symbol.as_str() == s).collect();
        // Poisson(1000): 5 standard deviations is ±160.
        assert!((840..=1160).contains(&mine.len()), "{s}: {}", mine.len());
        let gaps: Vec<i64> = mine
            .windows(2)
            .map(|w| w[1].ts_event - w[0].ts_event)
            .collect();
        assert!(gaps.iter().all(|g| *g > 0), "{s}: event times increase");
        let distinct: std::collections::HashSet<_> = gaps.iter().collect();
        assert!(
            distinct.len() > gaps.len() / 2,
            "{s}: inter-arrival times are jittered"
        );
    }
    assert!(batches < ticks.len(), "ticks are batched");
    assert!(batches > 100, "but in small batches: {batches}");
}

#[tokio::test(start_paused = true)]
async fn feed_stops_when_receiver_dropped() {
    let (tx, rx) = mpsc::channel(1);
    let feed = tokio::spawn(
        SimulatedFeed::new(
            SimulatedFeedConfig::default(),
            Arc::new(SimulatedMarket::new(1)),
        )
        .run(tx, CancellationToken::new()),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(1), feed)
        .await
        .expect("stops when the receiver is gone")
        .unwrap();
}

/// Log returns of `symbols` over `n` one-second steps from `from` (s after T0).
fn second_returns(m: &SimulatedMarket, symbols: &[Symbol], from: i64, n: i64) -> Vec<Vec<f64>> {
    let price = |s: &Symbol, t: i64| -> f64 {
        marketd_model::rust_decimal_to_f64(m.next_tick(s, T0 + t * 1_000 * MS).price)
    };
    let mut last: Vec<f64> = symbols.iter().map(|s| price(s, from)).collect();
    (from + 1..from + 1 + n)
        .map(|t| {
            symbols
                .iter()
                .zip(last.iter_mut())
                .map(|(s, l)| {
                    let p = price(s, t);
                    let r = (p / *l).ln();
                    *l = p;
                    r
                })
                .collect()
        })
        .collect()
}

fn stats(r: &[Vec<f64>]) -> (f64, f64) {
    let n = r.len() as f64;
    let col = |i: usize| r.iter().map(move |x| x[i]);
    let mean = |i: usize| col(i).sum::<f64>() / n;
    let (m0, m1) = (mean(0), mean(1));
    let var = |i: usize, m: f64| col(i).map(|x| (x - m).powi(2)).sum::<f64>() / n;
    let cov = r.iter().map(|x| (x[0] - m0) * (x[1] - m1)).sum::<f64>() / n;
    let (v0, v1) = (var(0, m0), var(1, m1));
    (v0.sqrt(), cov / (v0 * v1).sqrt())
}

#[test]
fn a_regime_change_raises_volatility_and_correlation_of_its_symbols_only() {
    let symbols = [sym("BTC-USDT"), sym("ETH-USDT"), sym("SOL-USDT")];
    let plain = SimulatedMarket::new(5);
    let changed = SimulatedMarket::new(5);
    changed.set_regime(Some(Regime {
        at_ns: T0 + 2_000 * 1_000 * MS,
        symbols: symbols[..2].to_vec(),
        volatility_factor: 3.0,
        correlation: 0.8,
    }));
    let before = second_returns(&changed, &symbols, 0, 1_999);
    assert_eq!(
        before,
        second_returns(&plain, &symbols, 0, 1_999),
        "nothing changes before `at`"
    );
    let after = second_returns(&changed, &symbols, 1_999, 2_000);
    let (vol_before, corr_before) = stats(&before);
    let (vol_after, corr_after) = stats(&after);
    assert!(corr_before.abs() < 0.1, "independent before: {corr_before}");
    assert!(
        (0.7..0.9).contains(&corr_after),
        "correlated after: {corr_after}"
    );
    let ratio = vol_after / vol_before;
    assert!((2.6..3.4).contains(&ratio), "volatility x3: {ratio}");
    // SOL is not in the regime: it moves as it did.
    let untouched: Vec<f64> = after.iter().map(|r| r[2]).collect();
    let plain_after: Vec<f64> = second_returns(&plain, &symbols, 1_999, 2_000)
        .iter()
        .map(|r| r[2])
        .collect();
    assert_eq!(untouched, plain_after);
}
