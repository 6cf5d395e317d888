//! Backend-generic behaviour of [`Store`]: every body below is a plain
//! `async fn` taking the store (or its URL, for the reopening tests), so a
//! runner for another backend (PostgreSQL) only has to call the same bodies
//! with its own fresh database; see `sqlite_runner` and `postgres_runner` at
//! the end.

use marketd_model::{
    ApiKey, Bar, Connector, ConnectorKind, ConnectorState, ConnectorStatus, Decimal, Desired,
    Indicator, Interval, JobStatus, MaKind, PollingJob, PriceRequest, RequestOutcome, Role, Secret,
    StoredCredential, Symbol, TdaSignal, Tick, TickKind,
};
use marketd_store::crypto::{Keyring, generate_key};
use marketd_store::prelude::*;
use marketd_store::{
    AnyStore, BarQuery, BarRange, Error, IndicatorQuery, NewConnectorRecord, RawMessage,
    SignalQuery, StoreOptions, TickQuery,
};
use std::future::Future;
use std::str::FromStr;
use uuid::Uuid;

/// 2023-11-14T22:13:20Z in ns.
const T0: i64 = 1_700_000_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn tick(symbol: &str, source: &str, ts: i64, price: &str) -> Tick {
    Tick::new(
        sym(symbol),
        source,
        TickKind::Trade,
        dec(price),
        dec("1"),
        ts,
        ts + 1_000,
    )
}

fn history(symbol: &str, limit: u32) -> TickQuery {
    TickQuery {
        symbol: sym(symbol),
        source: None,
        from: None,
        to: None,
        limit,
        cursor: None,
    }
}

fn bar(source: &str, start: i64, close: &str) -> Bar {
    Bar {
        symbol: sym("AAPL"),
        source: source.into(),
        interval: Interval::M1,
        start,
        open: dec("100"),
        high: dec("110"),
        low: dec("90"),
        close: dec(close),
        volume: dec("12.5"),
        trades: 3,
        notional: Some(dec("1250.125")),
        // 1250.125 / 12.5, as `with_vwap` computes it on every read.
        vwap: Some(dec("100.01")),
        first_ts: start + 1,
        last_ts: start + 2,
        closed: false,
    }
}

fn bar_query(limit: u32) -> BarQuery {
    BarQuery {
        symbol: sym("AAPL"),
        source: None,
        interval: Interval::M1,
        from: None,
        to: None,
        limit,
    }
}

fn indicator(ts: i64, value: f64) -> Indicator {
    Indicator {
        symbol: sym("AAPL"),
        source: "sim".into(),
        interval: Interval::M1,
        kind: MaKind::Sma,
        window: 20,
        ts,
        value,
    }
}

fn indicator_query(limit: u32) -> IndicatorQuery {
    IndicatorQuery {
        symbol: sym("AAPL"),
        source: None,
        interval: Interval::M1,
        kind: MaKind::Sma,
        window: 20,
        from: None,
        to: None,
        limit,
    }
}

fn job(symbol: &str, created_at: i64) -> PollingJob {
    PollingJob {
        id: Uuid::now_v7(),
        symbol: sym(symbol),
        provider: "simulated".into(),
        interval_ms: 1_000,
        status: JobStatus::Active,
        created_at,
        run_count: 0,
        error_count: 0,
        last_run_at: None,
        last_error: None,
    }
}

// ---------------------------------------------------------------------------
// Bodies

pub async fn idempotent_inserts(store: &AnyStore) {
    let batch: Vec<Tick> = (0..50)
        .map(|i| tick("AAPL", "sim", T0 + i * SEC, "100.5"))
        .collect();
    assert_eq!(store.insert_ticks(&batch).await.unwrap(), 50);
    assert_eq!(
        store.insert_ticks(&batch).await.unwrap(),
        0,
        "same batch twice must insert nothing"
    );
    assert_eq!(store.count_ticks(None).await.unwrap(), 50);

    // Same trade id, different price: the venue's id is the identity.
    let mut a = tick("BTC-USDT", "binance", T0, "65000.1");
    a.trade_id = Some("777".into());
    let mut b = tick("BTC-USDT", "binance", T0 + SEC, "65001.2");
    b.trade_id = Some("777".into());
    assert_eq!(
        store.insert_ticks(std::slice::from_ref(&a)).await.unwrap(),
        1
    );
    assert_eq!(
        store.insert_ticks(std::slice::from_ref(&b)).await.unwrap(),
        0
    );
    let stored = store
        .latest_tick(&sym("BTC-USDT"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.price, dec("65000.1"), "the first copy stays");
    // The same trade id on another venue is another trade.
    let mut c = b.clone();
    c.source = "okx".into();
    assert_eq!(store.insert_ticks(&[c]).await.unwrap(), 1);

    // Without a trade id the identity is a hash of (source, symbol, ts, price, size):
    // the same values written with another scale are the same tick ...
    let h1 = tick("ETH-USDT", "sim", T0, "3000.50");
    let h2 = tick("ETH-USDT", "sim", T0, "3000.5");
    assert_eq!(
        store.insert_ticks(&[h1.clone(), h2]).await.unwrap(),
        1,
        "duplicates inside one batch too"
    );
    // ... while any other time or price is a new one.
    let h3 = tick("ETH-USDT", "sim", T0 + 1, "3000.5");
    let h4 = tick("ETH-USDT", "sim", T0, "3000.51");
    assert_eq!(store.insert_ticks(&[h1, h3, h4]).await.unwrap(), 2);
    assert_eq!(store.count_ticks(Some(&sym("ETH-USDT"))).await.unwrap(), 3);
    assert_eq!(store.count_ticks(Some(&sym("BTC-USDT"))).await.unwrap(), 2);
    assert_eq!(store.insert_ticks(&[]).await.unwrap(), 0);
}

pub async fn large_batches_are_chunked(store: &AnyStore) {
    // More rows than one statement may bind, and not a multiple of any chunk.
    let batch: Vec<Tick> = (0..5_003)
        .map(|i| tick("AAPL", "sim", T0 + i, "1.25"))
        .collect();
    assert_eq!(store.insert_ticks(&batch).await.unwrap(), 5_003);
    let mut again = batch[4_000..].to_vec();
    again.push(tick("AAPL", "sim", T0 - 1, "1.25"));
    assert_eq!(store.insert_ticks(&again).await.unwrap(), 1);
    assert_eq!(store.count_ticks(Some(&sym("AAPL"))).await.unwrap(), 5_004);
}

/// All ticks of `symbol`, oldest first (several history pages).
async fn all_ticks(store: &AnyStore, symbol: &str) -> Vec<Tick> {
    let mut q = history(symbol, 1_000);
    let mut out = Vec::new();
    loop {
        let page = store.tick_history(&q).await.unwrap();
        out.extend(page.ticks);
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

/// A batch that overlaps ticks already stored (a redelivery after a crash
/// between the write and the commit, or a replay) stores only its new
/// ticks, each once, whichever way the backend writes batches (PostgreSQL
/// copies a batch whole and falls back to an idempotent insert when any
/// row is already there); so does a batch holding a tick twice. Every field
/// survives either way, text that needs escaping included.
pub async fn overlapping_batches_store_each_tick_once(store: &AnyStore) {
    let fancy = |i: i64| {
        let mut t = tick("BTC-USDT", "venue\\x", T0 + i * SEC, &format!("65000.{i}"));
        if i % 3 == 0 {
            t.trade_id = Some(format!("id\t{i}\\n\n"));
            t.sequence = Some(u64::MAX - i as u64);
        } else {
            t.bid = Some(dec("64999.999999999"));
            t.ask = Some(dec("65000.000000001"));
        }
        t.kind = if i % 2 == 0 {
            TickKind::Trade
        } else {
            TickKind::Quote
        };
        t.venue_symbol = Some("btc\r\nusdt\\N".into());
        t
    };
    let first: Vec<Tick> = (0..60).map(fancy).collect();
    assert_eq!(store.insert_ticks(&first).await.unwrap(), 60);
    assert_eq!(
        all_ticks(store, "BTC-USDT").await,
        first,
        "every field as written"
    );

    // Redelivery overlapping the stored tail, with new ticks after it; the
    // overlapping trade ids come back with another price (the first copy
    // stays), and one new tick appears twice.
    let mut second: Vec<Tick> = (40..100).map(fancy).collect();
    for t in second.iter_mut().filter(|t| t.trade_id.is_some()) {
        if t.ts_event < T0 + 60 * SEC {
            t.price = dec("1");
        }
    }
    second.push(fancy(99));
    assert_eq!(
        store.insert_ticks(&second).await.unwrap(),
        40,
        "only the 40 ticks not stored yet"
    );
    let expected: Vec<Tick> = (0..100).map(fancy).collect();
    assert_eq!(
        all_ticks(store, "BTC-USDT").await,
        expected,
        "each tick once"
    );

    // The same batch again stores nothing; a batch of only new ticks after
    // a fallback stores all of them.
    assert_eq!(store.insert_ticks(&second).await.unwrap(), 0);
    let third: Vec<Tick> = (100..130).map(fancy).collect();
    assert_eq!(store.insert_ticks(&third).await.unwrap(), 30);
    assert_eq!(store.count_ticks(None).await.unwrap(), 130);
}

pub async fn exact_decimals_round_trip(store: &AnyStore) {
    let prices = [
        "0.00012345",
        "65432.10",
        "123456789.123456789",
        "0.1",
        "0.0000001",
        "99999.99999999999",
        "123456789012345.6",
        "100000000000000000000",
        "0.0000000000000000000000000001",
        "7",
    ];
    let mut batch = Vec::new();
    for (i, p) in prices.iter().enumerate() {
        let mut t = tick("XYZ", "sim", T0 + i as i64, p);
        t.size = dec("0.123456789012345678");
        t.bid = Some(dec(p) - dec("0.000000001"));
        t.ask = Some(dec("0.0000000001") + dec(p));
        t.sequence = Some(u64::MAX - i as u64);
        t.venue_symbol = Some("xyz".into());
        t.kind = TickKind::Quote;
        batch.push(t);
    }
    assert_eq!(
        store.insert_ticks(&batch).await.unwrap(),
        prices.len() as u64
    );
    let page = store.tick_history(&history("XYZ", 100)).await.unwrap();
    assert_eq!(page.ticks.len(), prices.len());
    for (got, want) in page.ticks.iter().zip(&batch) {
        assert_eq!(got.price, want.price, "price {}", want.price);
        assert_eq!(got.size, want.size);
        assert_eq!(got.bid, want.bid);
        assert_eq!(got.ask, want.ask);
        // Equal as values; compare the normalized text too so no digit is lost.
        assert_eq!(
            got.price.normalize().to_string(),
            want.price.normalize().to_string()
        );
        assert_eq!(got, want, "every field survives");
    }

    let mut b = bar("sim", 0, "123456789.123456789");
    b.volume = dec("98765.4321098765432");
    // A notional with more digits than a REAL holds survives exactly, and
    // the VWAP read back is the one computed from it.
    b.notional = Some(dec("12194330612.1234567890123456"));
    let b = b.with_vwap();
    assert_eq!(b.vwap, Some(dec("123467.597433859895")));
    store.upsert_bars(std::slice::from_ref(&b)).await.unwrap();
    assert_eq!(store.bars(&bar_query(10)).await.unwrap(), vec![b]);
}

/// The latest tick of `symbol` (from `source`, if given).
async fn latest(store: &AnyStore, symbol: &str, source: Option<&str>) -> Option<Tick> {
    store.latest_tick(&sym(symbol), source).await.unwrap()
}

pub async fn latest_tick_by_event_time_and_source(store: &AnyStore) {
    assert!(latest(store, "AAPL", None).await.is_none());
    // Inserted out of order: the latest is by ts_event, not by arrival.
    let ticks = [
        tick("AAPL", "finnhub", T0 + 5 * SEC, "105"),
        tick("AAPL", "yahoo", T0 + 9 * SEC, "109"),
        tick("AAPL", "finnhub", T0 + 7 * SEC, "107"),
        tick("AAPL", "yahoo", T0 + SEC, "101"),
        tick("MSFT", "yahoo", T0 + 20 * SEC, "400"),
    ];
    store.insert_ticks(&ticks).await.unwrap();
    let t = latest(store, "AAPL", None).await.unwrap();
    assert_eq!((t.price, &*t.source), (dec("109"), "yahoo"));
    let t = latest(store, "AAPL", Some("finnhub")).await.unwrap();
    assert_eq!((t.price, t.ts_event), (dec("107"), T0 + 7 * SEC));
    assert!(latest(store, "AAPL", Some("binance")).await.is_none());
    assert!(latest(store, "TSLA", None).await.is_none());
}

pub async fn history_pages_with_cursor(store: &AnyStore) {
    // 25 ticks, several sharing a timestamp (ties broken by insertion id),
    // inserted in shuffled order, plus noise of other symbols and sources.
    let mut batch = Vec::new();
    for i in 0..25i64 {
        let ts = T0 + (i / 3) * SEC;
        let mut t = tick("AAPL", "sim", ts, &format!("{}.25", 100 + i));
        t.trade_id = Some(format!("t{i}"));
        batch.push(t);
        batch.push(tick("MSFT", "sim", ts, "1"));
    }
    batch.reverse();
    store.insert_ticks(&batch).await.unwrap();
    store
        .insert_ticks(&[tick("AAPL", "other", T0, "1")])
        .await
        .unwrap();

    let mut q = history("AAPL", 10);
    q.source = Some("sim".into());
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = store.tick_history(&q).await.unwrap();
        pages += 1;
        assert!(page.ticks.len() <= 10);
        seen.extend(page.ticks);
        match page.next_cursor {
            Some(c) => {
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "URL-safe cursor {c}"
                );
                q.cursor = Some(c);
            }
            None => break,
        }
        assert!(pages < 10, "paging does not terminate");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "every row exactly once");
    let mut ids: Vec<&str> = seen
        .iter()
        .map(|t| t.trade_id.as_deref().unwrap())
        .collect();
    assert!(
        seen.windows(2).all(|w| w[0].ts_event <= w[1].ts_event),
        "ascending by event time"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 25);
    // Ties keep insertion order across page boundaries: batch was reversed,
    // so within one timestamp the higher trade number was inserted first.
    assert_eq!(seen[0].trade_id.as_deref(), Some("t2"));
    assert_eq!(seen[2].trade_id.as_deref(), Some("t0"));

    // An exact multiple of the page size ends without a dangling cursor.
    let mut q = history("AAPL", 13);
    q.source = Some("sim".into());
    q.to = Some(T0 + 4 * SEC); // 12 rows, ts groups 0..=3
    let page = store.tick_history(&q).await.unwrap();
    assert_eq!(page.ticks.len(), 12);
    assert!(page.next_cursor.is_none());

    // All sources.
    let page = store.tick_history(&history("AAPL", 100)).await.unwrap();
    assert_eq!(page.ticks.len(), 26);
}

pub async fn history_range_bounds(store: &AnyStore) {
    let batch: Vec<Tick> = (0..10)
        .map(|i| tick("AAPL", "sim", T0 + i * SEC, "1"))
        .collect();
    store.insert_ticks(&batch).await.unwrap();
    let mut q = history("AAPL", 100);
    q.from = Some(T0 + 2 * SEC);
    q.to = Some(T0 + 5 * SEC);
    let page = store.tick_history(&q).await.unwrap();
    let ts: Vec<i64> = page.ticks.iter().map(|t| (t.ts_event - T0) / SEC).collect();
    assert_eq!(ts, vec![2, 3, 4], "from inclusive, to exclusive");
    assert!(page.next_cursor.is_none());

    q.from = Some(T0 + 8 * SEC);
    q.to = None;
    assert_eq!(store.tick_history(&q).await.unwrap().ticks.len(), 2);
    q.from = None;
    q.to = Some(T0);
    assert!(store.tick_history(&q).await.unwrap().ticks.is_empty());

    // Bounds and cursor combine.
    let mut q = history("AAPL", 2);
    q.from = Some(T0 + 3 * SEC);
    q.to = Some(T0 + 8 * SEC);
    let p1 = store.tick_history(&q).await.unwrap();
    q.cursor = p1.next_cursor;
    let p2 = store.tick_history(&q).await.unwrap();
    q.cursor = p2.next_cursor;
    let p3 = store.tick_history(&q).await.unwrap();
    let all: Vec<i64> = [p1.ticks, p2.ticks, p3.ticks]
        .concat()
        .iter()
        .map(|t| (t.ts_event - T0) / SEC)
        .collect();
    assert_eq!(all, vec![3, 4, 5, 6, 7]);
    assert!(p3.next_cursor.is_none());
}

pub async fn invalid_cursor_is_rejected(store: &AnyStore) {
    for bad in [
        "",
        "not-a-cursor",
        "zzzz",
        "0000",
        "%%%",
        "00000000000000000000000000000000000",
    ] {
        let mut q = history("AAPL", 10);
        q.cursor = Some(bad.into());
        let err = store.tick_history(&q).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCursor), "{bad:?} gave {err}");
    }
}

/// The minutes after `T0` at which the bars `q` reads start.
async fn bar_minutes(store: &AnyStore, q: &BarQuery) -> Vec<i64> {
    let m = Interval::M1.nanos();
    store
        .bars(q)
        .await
        .unwrap()
        .iter()
        .map(|b| (b.start - T0) / m)
        .collect()
}

pub async fn bars_upsert_and_window(store: &AnyStore) {
    let m = Interval::M1.nanos();
    let bars: Vec<Bar> = (0..10)
        .map(|i| bar("sim", T0 + i * m, &format!("{}", 100 + i)))
        .collect();
    store.upsert_bars(&bars).await.unwrap();
    // Replace: the bar of minute 9 closes and changes.
    let mut last = bar("sim", T0 + 9 * m, "200.5");
    last.closed = true;
    last.trades = 99;
    store
        .upsert_bars(std::slice::from_ref(&last))
        .await
        .unwrap();
    // Another source and another interval must not leak in.
    store.upsert_bars(&[bar("other", T0, "1")]).await.unwrap();
    let mut h = bar("sim", T0, "1");
    h.interval = Interval::H1;
    store.upsert_bars(&[h]).await.unwrap();

    // Newest N, ascending.
    let mut q = bar_query(3);
    q.source = Some("sim".into());
    let got = store.bars(&q).await.unwrap();
    let starts: Vec<i64> = got.iter().map(|b| (b.start - T0) / m).collect();
    assert_eq!(starts, vec![7, 8, 9]);
    assert_eq!(got[2], last, "upsert replaced the whole bar");

    // From/to: ascending from `from`, `to` exclusive, limit applies.
    q.from = Some(T0 + 2 * m);
    q.to = Some(T0 + 6 * m);
    q.limit = 100;
    let starts = bar_minutes(store, &q).await;
    assert_eq!(starts, vec![2, 3, 4, 5]);
    q.limit = 2;
    let starts = bar_minutes(store, &q).await;
    assert_eq!(starts, vec![2, 3]);
    // `to` alone: newest before it.
    q.from = None;
    q.to = Some(T0 + 5 * m);
    let starts = bar_minutes(store, &q).await;
    assert_eq!(starts, vec![3, 4]);

    // All sources.
    assert_eq!(store.bars(&bar_query(100)).await.unwrap().len(), 11);
    let mut q = bar_query(100);
    q.interval = Interval::H1;
    assert_eq!(store.bars(&q).await.unwrap().len(), 1);
}

async fn hour_starts(store: &AnyStore, m: i64) -> Vec<i64> {
    let mut q = bar_query(100);
    q.interval = Interval::H1;
    let got = store.bars(&q).await.unwrap();
    got.iter().map(|b| (b.start - T0) / (60 * m)).collect()
}

/// `prune_bars`: only the bars of the one series inside its ranges (each
/// interval from its `from` on) that are not kept go, with the averages at
/// their starts; other sources, other intervals and earlier bars stay.
pub async fn bars_prune_deletes_what_is_not_kept(store: &AnyStore) {
    let m = Interval::M1.nanos();
    let bars: Vec<Bar> = (0..6)
        .map(|i| bar("sim", T0 + i * m, &format!("{}", 100 + i)))
        .collect();
    store.upsert_bars(&bars).await.unwrap();
    store
        .upsert_bars(&[bar("other", T0 + 4 * m, "1")])
        .await
        .unwrap();
    let hours: Vec<Bar> = (0..3)
        .map(|i| {
            let mut h = bar("sim", T0 + i * 60 * m, "1");
            h.interval = Interval::H1;
            h
        })
        .collect();
    store.upsert_bars(&hours).await.unwrap();
    let xs: Vec<Indicator> = (0..6).map(|i| indicator(T0 + i * m, i as f64)).collect();
    store.upsert_indicators(&xs).await.unwrap();
    let range = |interval, from, keep: &[i64]| BarRange {
        interval,
        from,
        keep: keep.to_vec(),
    };
    // Two intervals in one call, each with its own range and kept starts.
    let aapl = sym("AAPL");
    let ranges = [
        range(Interval::M1, T0 + 2 * m, &[T0 + 3 * m, T0 + 5 * m]),
        range(Interval::H1, T0 + 60 * m, &[T0 + 120 * m]),
    ];
    let deleted = store.prune_bars(&aapl, "sim", &ranges).await.unwrap();
    assert_eq!(deleted, 3);
    let mut q = bar_query(100);
    q.source = Some("sim".into());
    assert_eq!(bar_minutes(store, &q).await, vec![0, 1, 3, 5]);
    q.source = Some("other".into());
    assert_eq!(bar_minutes(store, &q).await, vec![4]);
    assert_eq!(hour_starts(store, m).await, vec![0, 2]);
    let ts: Vec<i64> = store
        .indicators(&indicator_query(100))
        .await
        .unwrap()
        .iter()
        .map(|x| (x.ts - T0) / m)
        .collect();
    assert_eq!(ts, vec![0, 1, 3, 5]);

    // Nothing kept: everything from `from` on goes; a second call finds none.
    let deleted = store
        .prune_bars(&aapl, "sim", &[range(Interval::M1, T0 + 3 * m, &[])])
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    let mut q = bar_query(100);
    q.source = Some("sim".into());
    assert_eq!(bar_minutes(store, &q).await, vec![0, 1]);
    let again = [range(Interval::M1, T0, &[T0, T0 + m])];
    assert_eq!(store.prune_bars(&aapl, "sim", &again).await.unwrap(), 0);
    assert_eq!(store.prune_bars(&aapl, "sim", &[]).await.unwrap(), 0);
    assert_eq!(hour_starts(store, m).await, vec![0, 2]);
}

/// `latest_bars`: the newest bar of one interval per (symbol, source), by
/// symbol then source, other intervals left out, the limit applied.
pub async fn latest_bars_one_per_symbol_and_source(store: &AnyStore) {
    let m = Interval::M1.nanos();
    let mut bars = Vec::new();
    for (symbol, source, minutes) in [("MSFT", "sim", 3), ("AAPL", "sim", 5), ("AAPL", "other", 2)]
    {
        for i in 0..minutes {
            let mut b = bar(source, T0 + i * m, &format!("{}", 100 + i));
            b.symbol = sym(symbol);
            bars.push(b);
        }
    }
    let mut h = bar("sim", T0 + 60 * m, "7");
    h.interval = Interval::H1;
    bars.push(h);
    store.upsert_bars(&bars).await.unwrap();
    let got = store.latest_bars(Interval::M1, 100).await.unwrap();
    let seen: Vec<(String, String, i64)> = got
        .iter()
        .map(|b| {
            (
                b.symbol.to_string(),
                b.source.to_string(),
                (b.start - T0) / m,
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("AAPL".into(), "other".into(), 1),
            ("AAPL".into(), "sim".into(), 4),
            ("MSFT".into(), "sim".into(), 2),
        ]
    );
    assert_eq!(got[1].close, dec("104"));
    assert_eq!(store.latest_bars(Interval::M1, 2).await.unwrap().len(), 2);
    assert_eq!(store.latest_bars(Interval::H1, 10).await.unwrap().len(), 1);
    assert!(
        store
            .latest_bars(Interval::D1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn indicators_upsert_and_window(store: &AnyStore) {
    let m = Interval::M1.nanos();
    let xs: Vec<Indicator> = (0..10)
        .map(|i| indicator(T0 + i * m, 100.0 + i as f64))
        .collect();
    store.upsert_indicators(&xs).await.unwrap();
    store
        .upsert_indicators(&[indicator(T0 + 9 * m, 1234.5678)])
        .await
        .unwrap();
    let mut ema = indicator(T0, 1.0);
    ema.kind = MaKind::Ema;
    let mut w50 = indicator(T0, 2.0);
    w50.window = 50;
    store.upsert_indicators(&[ema, w50]).await.unwrap();

    let got = store.indicators(&indicator_query(4)).await.unwrap();
    let ts: Vec<i64> = got.iter().map(|x| (x.ts - T0) / m).collect();
    assert_eq!(ts, vec![6, 7, 8, 9]);
    assert_eq!(got[3].value, 1234.5678, "upsert replaced the value");
    assert_eq!(got[0], xs[6]);

    let mut q = indicator_query(3);
    q.from = Some(T0 + m);
    let ts: Vec<i64> = store
        .indicators(&q)
        .await
        .unwrap()
        .iter()
        .map(|x| (x.ts - T0) / m)
        .collect();
    assert_eq!(ts, vec![1, 2, 3]);
    q.source = Some("nope".into());
    assert!(store.indicators(&q).await.unwrap().is_empty());
    let mut q = indicator_query(100);
    q.kind = MaKind::Ema;
    assert_eq!(store.indicators(&q).await.unwrap().len(), 1);
}

pub async fn price_requests_newest_first(store: &AnyStore) {
    let mk = |symbol: &str, at: i64, outcome| PriceRequest {
        id: Uuid::now_v7(),
        symbol: sym(symbol),
        provider: "finnhub".into(),
        requested_at: at,
        outcome,
        latency_us: 1_234,
        error: (outcome == RequestOutcome::Error).then(|| "upstream timeout".to_string()),
        request_id: Some(format!("req-{at}")),
    };
    let xs = vec![
        mk("AAPL", T0 + 2, RequestOutcome::Provider),
        mk("AAPL", T0 + 5, RequestOutcome::Error),
        mk("MSFT", T0 + 3, RequestOutcome::Store),
        mk("AAPL", T0 + 1, RequestOutcome::Store),
    ];
    store.insert_price_requests(&xs).await.unwrap();
    store.insert_price_requests(&xs[..1]).await.unwrap(); // redelivery is harmless
    let got = store.price_requests(Some(&sym("AAPL")), 10).await.unwrap();
    assert_eq!(got, vec![xs[1].clone(), xs[0].clone(), xs[3].clone()]);
    let got = store.price_requests(None, 2).await.unwrap();
    assert_eq!(got, vec![xs[1].clone(), xs[2].clone()]);
}

/// The ids of the jobs not deleted, as the store lists them.
async fn active_job_ids(store: &AnyStore) -> Vec<Uuid> {
    store
        .polling_jobs(false)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect()
}

pub async fn polling_jobs_lifecycle(store: &AnyStore) {
    let a = job("AAPL", T0 + 2);
    let b = job("MSFT", T0 + 1);
    store.upsert_polling_job(&a).await.unwrap();
    store.upsert_polling_job(&b).await.unwrap();
    assert_eq!(store.polling_job(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.polling_job(Uuid::now_v7()).await.unwrap(), None);
    let ids = active_job_ids(store).await;
    assert_eq!(ids, vec![b.id, a.id], "ordered by creation time");

    store.record_job_run(a.id, T0 + 10, None).await.unwrap();
    store
        .record_job_run(a.id, T0 + 20, Some("HTTP 503"))
        .await
        .unwrap();
    store.record_job_run(a.id, T0 + 30, None).await.unwrap();
    store
        .record_job_run(a.id, T0 + 40, Some("timeout"))
        .await
        .unwrap();
    let got = store.polling_job(a.id).await.unwrap().unwrap();
    assert_eq!((got.run_count, got.error_count), (4, 2));
    assert_eq!(got.last_run_at, Some(T0 + 40));
    assert_eq!(got.last_error.as_deref(), Some("timeout"));
    store.record_job_run(a.id, T0 + 50, None).await.unwrap();
    let got = store.polling_job(a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.run_count, got.error_count, got.last_error),
        (5, 2, None)
    );

    // Re-upserting the original (say, a replayed command) changes the
    // definition but does not erase the recorded runs.
    let mut again = a.clone();
    again.interval_ms = 5_000;
    store.upsert_polling_job(&again).await.unwrap();
    let got = store.polling_job(a.id).await.unwrap().unwrap();
    assert_eq!(
        (got.interval_ms, got.run_count, got.last_run_at),
        (5_000, 5, Some(T0 + 50))
    );

    assert!(store.delete_polling_job(a.id).await.unwrap());
    assert!(
        !store.delete_polling_job(a.id).await.unwrap(),
        "deleting twice"
    );
    assert!(!store.delete_polling_job(Uuid::now_v7()).await.unwrap());
    assert_eq!(
        store.polling_job(a.id).await.unwrap().unwrap().status,
        JobStatus::Deleted
    );
    let active = active_job_ids(store).await;
    assert_eq!(active, vec![b.id]);
    assert_eq!(store.polling_jobs(true).await.unwrap().len(), 2);
}

pub async fn migrate_twice_is_harmless(store: &AnyStore) {
    store
        .insert_ticks(&[tick("AAPL", "sim", T0, "1")])
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.count_ticks(None).await.unwrap(), 1);
}

/// Reopening the same database (by URL) finds everything written before.
pub async fn data_survives_reopening(url: &str) {
    let opts = StoreOptions::default();
    let job = job("AAPL", T0);
    {
        let store = AnyStore::connect(url, &opts).await.unwrap();
        store.migrate().await.unwrap();
        store
            .insert_ticks(&[tick("AAPL", "sim", T0, "123456789.123456789")])
            .await
            .unwrap();
        store.upsert_bars(&[bar("sim", T0, "1")]).await.unwrap();
        store.upsert_polling_job(&job).await.unwrap();
        store.close().await;
    }
    let store = AnyStore::connect(url, &opts).await.unwrap();
    store.migrate().await.unwrap();
    let t = store
        .latest_tick(&sym("AAPL"), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.price, dec("123456789.123456789"));
    assert_eq!(store.bars(&bar_query(10)).await.unwrap().len(), 1);
    assert_eq!(store.polling_job(job.id).await.unwrap(), Some(job));
    store.close().await;
}

// ---------------------------------------------------------------------------
// SQLite runner: a fresh temp-file database per test.

/// The suite's bodies, listed once: every backend's runner instantiates the
/// same list, so a new body cannot be forgotten by one backend.
fn api_key(name: &str, role: Role, created_at: i64) -> ApiKey {
    ApiKey {
        id: Uuid::now_v7(),
        name: name.into(),
        role,
        prefix: format!("mkd_{name}"),
        created_at,
        revoked_at: None,
        expires_at: None,
    }
}

async fn api_keys_lifecycle(store: &AnyStore) {
    assert!(store.api_keys().await.unwrap().is_empty());
    let first = api_key("boot", Role::Admin, T0);
    assert!(
        store
            .insert_first_api_key(&first, &"a".repeat(64))
            .await
            .unwrap()
    );
    let second = api_key("late", Role::Admin, T0 + 1);
    assert!(
        !store
            .insert_first_api_key(&second, &"b".repeat(64))
            .await
            .unwrap(),
        "a first key only once"
    );
    let reader = ApiKey {
        expires_at: Some(T0 + 3_600 * SEC),
        ..api_key("reader", Role::Read, T0 + 2)
    };
    store
        .insert_api_key(&reader, &"c".repeat(64))
        .await
        .unwrap();
    let dup = api_key("dup", Role::Write, T0 + 3);
    let err = store
        .insert_api_key(&dup, &"c".repeat(64))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    assert_eq!(
        store.api_key_by_hash(&"c".repeat(64)).await.unwrap(),
        Some(reader.clone())
    );
    assert_eq!(store.api_key_by_hash(&"d".repeat(64)).await.unwrap(), None);
    let all = store.api_keys().await.unwrap();
    assert_eq!(all, vec![first.clone(), reader.clone()], "oldest first");

    assert!(store.revoke_api_key(reader.id, T0 + 10).await.unwrap());
    assert!(
        !store.revoke_api_key(reader.id, T0 + 11).await.unwrap(),
        "only once"
    );
    assert!(!store.revoke_api_key(Uuid::now_v7(), T0).await.unwrap());
    let got = store
        .api_key_by_hash(&"c".repeat(64))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.revoked_at, Some(T0 + 10));
    assert!(!got.is_active());
    assert_eq!(
        store.api_keys().await.unwrap().len(),
        2,
        "revoked keys stay listed"
    );
}

async fn credentials_are_stored_sealed(store: &AnyStore) {
    let ring = Keyring::new("k1", &generate_key(), &[]).unwrap();
    let plain = Secret::new("sk_live_do_not_print_4242");
    let sealed = ring.seal("providers.finnhub.api_key", &plain).unwrap();
    let c = StoredCredential {
        name: "providers.finnhub.api_key".into(),
        sealed: sealed.clone(),
        created_at: T0,
        updated_at: T0,
    };
    store.put_credential(&c).await.unwrap();
    let got = store
        .credential("providers.finnhub.api_key")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, c);
    assert_eq!(
        ring.open(&got.name, &got.sealed).unwrap(),
        plain,
        "round-trips through the database"
    );
    assert!(
        !got.sealed
            .ciphertext
            .windows(plain.expose().len())
            .any(|w| w == plain.expose().as_bytes()),
        "the database holds no plaintext"
    );

    // Replacing keeps created_at.
    let replaced = StoredCredential {
        sealed: ring.seal(&c.name, &Secret::new("other")).unwrap(),
        created_at: T0 + 5,
        updated_at: T0 + 5,
        ..c.clone()
    };
    store.put_credential(&replaced).await.unwrap();
    let got = store.credential(&c.name).await.unwrap().unwrap();
    assert_eq!((got.created_at, got.updated_at), (T0, T0 + 5));
    assert_eq!(ring.open(&got.name, &got.sealed).unwrap().expose(), "other");

    let other = StoredCredential {
        name: "connectors.a.token".into(),
        sealed: ring.seal("connectors.a.token", &plain).unwrap(),
        created_at: T0,
        updated_at: T0,
    };
    store.put_credential(&other).await.unwrap();
    let names: Vec<String> = store
        .credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(
        names,
        vec!["connectors.a.token", "providers.finnhub.api_key"]
    );
    assert!(store.delete_credential("connectors.a.token").await.unwrap());
    assert!(!store.delete_credential("connectors.a.token").await.unwrap());
    assert_eq!(store.credential("connectors.a.token").await.unwrap(), None);
}

fn connector(name: &str, created_at: i64) -> Connector {
    Connector {
        id: Uuid::now_v7(),
        name: name.to_string(),
        kind: ConnectorKind::Websocket,
        spec: serde_json::json!({"venue": "binance", "symbols": ["BTC-USDT"], "channels": ["trades"]}),
        desired: Desired::Stopped,
        created_at,
        updated_at: created_at,
    }
}

async fn connectors_lifecycle(store: &AnyStore) {
    let a = connector("binance-btc", T0);
    let b = connector("okx-eth", T0 + 1);
    store.insert_connector(&b).await.unwrap();
    store.insert_connector(&a).await.unwrap();
    // Names are unique.
    let mut dup = connector("binance-btc", T0 + 2);
    let err = store.insert_connector(&dup).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(ref what) if what == "binance-btc"),
        "{err}"
    );
    assert_eq!(
        store.connectors().await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(store.connector(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.connector(dup.id).await.unwrap(), None);

    // Updates replace the definition and the desired state; renaming onto a
    // taken name is a conflict; an unknown id changes nothing.
    let mut a2 = a.clone();
    a2.desired = Desired::Running;
    a2.spec = serde_json::json!({"venue": "binance", "symbols": ["BTC-USDT", "ETH-USDT"]});
    a2.updated_at = T0 + 10;
    assert!(store.update_connector(&a2).await.unwrap());
    assert_eq!(store.connector(a.id).await.unwrap(), Some(a2.clone()));
    let mut renamed = b.clone();
    renamed.name = "binance-btc".into();
    assert!(matches!(
        store.update_connector(&renamed).await.unwrap_err(),
        Error::Conflict(_)
    ));
    dup.name = "nobody".into();
    assert!(!store.update_connector(&dup).await.unwrap());

    // Status: newest wins, an older copy is ignored.
    let mut st = ConnectorStatus::initial(a.id, ConnectorState::Connecting, T0 + 20);
    store.put_connector_status(&st).await.unwrap();
    st.state = ConnectorState::Running;
    st.messages_received = 42;
    st.ticks = 40;
    st.gaps = 2;
    st.backfilled = 7;
    st.last_message_at = Some(T0 + 29);
    st.updated_at = T0 + 30;
    store.put_connector_status(&st).await.unwrap();
    let stale = ConnectorStatus::initial(a.id, ConnectorState::Reconnecting, T0 + 25);
    store.put_connector_status(&stale).await.unwrap();
    assert_eq!(
        store.connector_status(a.id).await.unwrap(),
        Some(st.clone())
    );
    assert_eq!(store.connector_status(b.id).await.unwrap(), None);

    // Records page by seq, per connector.
    let recs: Vec<NewConnectorRecord> = (0..5)
        .map(|i| NewConnectorRecord {
            connector_id: if i == 2 { b.id } else { a.id },
            received_at: T0 + i,
            data: format!("[{{\"n\":{i}}}]"),
            raw: format!("raw {i}"),
            error: (i == 3).then(|| "bad record 0".to_string()),
        })
        .collect();
    assert_eq!(store.insert_connector_records(&recs).await.unwrap(), 5);
    let page = store.connector_records(a.id, None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>(),
        ["raw 0", "raw 1"]
    );
    assert_eq!(page[0].data, serde_json::json!([{"n": 0}]));
    let rest = store
        .connector_records(a.id, Some(page[1].seq), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.raw.as_str()).collect::<Vec<_>>(),
        ["raw 3", "raw 4"]
    );
    assert_eq!(rest[0].error.as_deref(), Some("bad record 0"));
    assert!(rest[0].seq > page[1].seq);

    // Raw frames: archived, read from a time, pruned by age.
    let raws: Vec<RawMessage> = (0..4)
        .map(|i| RawMessage {
            connector_id: a.id,
            received_at: T0 + i * 1_000,
            class: if i == 1 { "rejected" } else { "data" }.into(),
            frame: format!("{{\"i\":{i}}}"),
        })
        .collect();
    assert_eq!(store.insert_raw_messages(&raws).await.unwrap(), 4);
    assert_eq!(
        store.raw_messages(a.id, T0 + 1_000, 10).await.unwrap(),
        raws[1..].to_vec()
    );
    // Pruning is per connector: another's frames of the same age stay.
    let other = RawMessage {
        connector_id: b.id,
        ..raws[0].clone()
    };
    assert_eq!(
        store
            .insert_raw_messages(std::slice::from_ref(&other))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.prune_raw_messages(a.id, T0 + 2_000).await.unwrap(), 2);
    assert_eq!(store.raw_messages(b.id, 0, 10).await.unwrap(), [other]);
    assert_eq!(
        store.raw_messages(a.id, 0, 10).await.unwrap(),
        raws[2..].to_vec()
    );

    // Deleting takes the status, records and frames with it.
    assert!(store.delete_connector(a.id).await.unwrap());
    assert!(!store.delete_connector(a.id).await.unwrap());
    assert_eq!(store.connector(a.id).await.unwrap(), None);
    assert_eq!(store.connector_status(a.id).await.unwrap(), None);
    assert!(
        store
            .connector_records(a.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.raw_messages(a.id, 0, 10).await.unwrap().is_empty());
    assert_eq!(
        store.connector_records(b.id, None, 10).await.unwrap().len(),
        1
    );
    assert_eq!(store.connectors().await.unwrap(), vec![b]);
}

/// Opens `url`, checks it is the `backend` expected, and migrates it.
fn tda_job(id: Uuid, submitted_at: i64) -> marketd_model::TdaJob {
    marketd_model::TdaJob {
        id,
        kind: "vietoris-rips".into(),
        status: marketd_model::TdaJobStatus::Queued,
        progress: 0.0,
        stage: "queued".into(),
        attempts: 0,
        max_attempts: 3,
        upload_id: None,
        submitted_at,
        started_at: None,
        finished_at: None,
        updated_at: submitted_at,
        expires_at: None,
        error: None,
        cancel_requested: false,
    }
}

async fn uploads_and_tda_jobs_lifecycle(store: &AnyStore) {
    use marketd_model::{TdaJobStatus, Upload, UploadFormat};
    use marketd_store::{NewTdaJob, TdaResult};
    // Uploads: bytes kept exactly, newest first, deleted.
    let body: Vec<u8> = (0..=255u8).chain(b"0,1\n2,3\n".iter().copied()).collect();
    let up = Upload {
        id: Uuid::now_v7(),
        format: UploadFormat::PointCloud,
        name: Some("cloud.csv".into()),
        size: body.len() as u64,
        sha256: "ab".repeat(32),
        points: 2,
        dimension: 2,
        created_at: T0,
    };
    store.insert_upload(&up, &body).await.unwrap();
    let later = Upload {
        id: Uuid::now_v7(),
        name: None,
        created_at: T0 + SEC,
        ..up.clone()
    };
    store.insert_upload(&later, b"1 2").await.unwrap();
    assert_eq!(store.upload(up.id).await.unwrap().as_ref(), Some(&up));
    assert_eq!(store.upload_body(up.id).await.unwrap(), Some(body));
    let ids: Vec<Uuid> = store
        .uploads(10)
        .await
        .unwrap()
        .iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(ids, vec![later.id, up.id]);
    assert!(store.delete_upload(later.id).await.unwrap());
    assert!(!store.delete_upload(later.id).await.unwrap());
    assert_eq!(store.upload(later.id).await.unwrap(), None);

    // Jobs: submitted with an idempotency key, which a second one cannot take.
    let a = tda_job(Uuid::now_v7(), T0);
    let mut with_upload = tda_job(Uuid::now_v7(), T0 + SEC);
    with_upload.upload_id = Some(up.id);
    store
        .insert_tda_job(&NewTdaJob {
            job: &a,
            request: r#"{"points":[[0,0]]}"#,
            request_hash: "h1",
            idempotency_key: Some("key-1"),
        })
        .await
        .unwrap();
    let dup = store
        .insert_tda_job(&NewTdaJob {
            job: &with_upload,
            request: "{}",
            request_hash: "h2",
            idempotency_key: Some("key-1"),
        })
        .await
        .unwrap_err();
    assert!(matches!(dup, Error::Conflict(_)), "{dup:?}");
    store
        .insert_tda_job(&NewTdaJob {
            job: &with_upload,
            request: "{}",
            request_hash: "h2",
            idempotency_key: None,
        })
        .await
        .unwrap();
    let keyed = store.tda_job_by_key("key-1").await.unwrap().unwrap();
    assert_eq!(
        (keyed.job.clone(), keyed.request_hash.as_str()),
        (a.clone(), "h1")
    );
    assert_eq!(store.tda_job_by_key("key-2").await.unwrap(), None);
    assert_eq!(
        store.tda_job_request(a.id).await.unwrap().as_deref(),
        Some(r#"{"points":[[0,0]]}"#)
    );
    assert_eq!(
        store
            .tda_job(with_upload.id)
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        Some(up.id)
    );
    let unfinished: Vec<Uuid> = store
        .unfinished_tda_jobs()
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(unfinished, vec![a.id, with_upload.id]);

    // Running with progress, then succeeded with a result that expires.
    let mut run = a.clone();
    run.status = TdaJobStatus::Running;
    run.attempts = 1;
    run.progress = 0.25;
    run.stage = "h1".into();
    run.started_at = Some(T0 + 2 * SEC);
    run.updated_at = T0 + 2 * SEC;
    assert!(store.update_tda_job(&run).await.unwrap());
    assert_eq!(store.tda_job(a.id).await.unwrap().unwrap(), run);
    assert!(matches!(
        store.tda_job_result(a.id, T0).await.unwrap(),
        Some(TdaResult::NotReady(_))
    ));
    let mut done = run.clone();
    done.status = TdaJobStatus::Succeeded;
    done.progress = 1.0;
    done.stage = "done".into();
    done.finished_at = Some(T0 + 3 * SEC);
    done.expires_at = Some(T0 + 100 * SEC);
    assert!(
        store
            .finish_tda_job(&done, r#"{"diagrams":{}}"#)
            .await
            .unwrap()
    );
    // A finished job moves no more: a late progress write changes nothing.
    assert!(!store.update_tda_job(&run).await.unwrap());
    match store.tda_job_result(a.id, T0 + 50 * SEC).await.unwrap() {
        Some(TdaResult::Ready(j, r)) => {
            assert_eq!(j, done);
            assert_eq!(r, r#"{"diagrams":{}}"#);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        store.tda_job_result(a.id, T0 + 200 * SEC).await.unwrap(),
        Some(TdaResult::Expired(_))
    ));
    assert_eq!(store.prune_tda_results(T0 + 50 * SEC).await.unwrap(), 0);
    assert_eq!(store.prune_tda_results(T0 + 200 * SEC).await.unwrap(), 1);
    assert!(matches!(
        store.tda_job_result(a.id, T0 + 50 * SEC).await.unwrap(),
        Some(TdaResult::Expired(_))
    ));
    assert_eq!(
        store.tda_job_result(Uuid::now_v7(), T0).await.unwrap(),
        None
    );

    // Cancel: a queued job at once, a running one flagged, a finished one not.
    let c = store
        .cancel_tda_job(with_upload.id, T0 + 4 * SEC)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, TdaJobStatus::Canceled);
    assert_eq!(c.finished_at, Some(T0 + 4 * SEC));
    let r = tda_job(Uuid::now_v7(), T0 + 5 * SEC);
    store
        .insert_tda_job(&NewTdaJob {
            job: &r,
            request: "{}",
            request_hash: "h3",
            idempotency_key: None,
        })
        .await
        .unwrap();
    let mut running = r.clone();
    running.status = TdaJobStatus::Running;
    assert!(store.update_tda_job(&running).await.unwrap());
    let flagged = store
        .cancel_tda_job(r.id, T0 + 6 * SEC)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (flagged.status, flagged.cancel_requested),
        (TdaJobStatus::Running, true)
    );
    // Progress writes keep the flag.
    assert!(store.update_tda_job(&running).await.unwrap());
    assert!(store.tda_job(r.id).await.unwrap().unwrap().cancel_requested);
    let unchanged = store
        .cancel_tda_job(a.id, T0 + 7 * SEC)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.status, TdaJobStatus::Succeeded);
    assert_eq!(
        store.cancel_tda_job(Uuid::now_v7(), T0).await.unwrap(),
        None
    );

    let canceled: Vec<Uuid> = store
        .tda_jobs(Some(TdaJobStatus::Canceled), 10)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(canceled, vec![with_upload.id]);
    assert_eq!(store.tda_jobs(None, 10).await.unwrap().len(), 3);
    assert_eq!(store.tda_jobs(None, 1).await.unwrap()[0].id, r.id);
}

fn signal(basket: &str, window_end: i64, l1: f64) -> TdaSignal {
    TdaSignal {
        basket: basket.into(),
        window_start: window_end - 50 * SEC,
        window_end,
        points: 50,
        h1_bars: 3,
        landscape_l1: l1,
        landscape_l2: 0.25,
        entropy: 1.0986,
        wasserstein: None,
        volatility: 0.0125,
        zscore: Some(-0.5),
        alarm: false,
        alarm_raised: false,
        emitted_at: window_end + 7,
    }
}

fn signal_query(basket: &str, from: Option<i64>, limit: u32) -> SignalQuery {
    SignalQuery {
        basket: basket.into(),
        from,
        to: None,
        limit,
    }
}

/// One row per (basket, window_end): a recomputed window replaces itself;
/// reads are ascending, newest `limit` without `from`.
async fn tda_signals_upsert_and_window(store: &AnyStore) {
    for k in 0..5 {
        store
            .upsert_tda_signal(&signal("calm", T0 + k * SEC, k as f64))
            .await
            .unwrap();
    }
    store
        .upsert_tda_signal(&signal("other", T0, 9.0))
        .await
        .unwrap();
    let mut again = signal("calm", T0 + 2 * SEC, 2.5);
    again.wasserstein = Some(0.125);
    again.zscore = None;
    again.alarm = true;
    again.alarm_raised = true;
    store.upsert_tda_signal(&again).await.unwrap();

    let all = store
        .tda_signals(&signal_query("calm", Some(0), 100))
        .await
        .unwrap();
    let ends: Vec<i64> = all.iter().map(|s| (s.window_end - T0) / SEC).collect();
    assert_eq!(ends, [0, 1, 2, 3, 4]);
    assert_eq!(
        all[2], again,
        "the upsert replaced the window, every field round-trips"
    );
    assert_eq!(all[0], signal("calm", T0, 0.0));

    let newest = store
        .tda_signals(&signal_query("calm", None, 2))
        .await
        .unwrap();
    let ends: Vec<i64> = newest.iter().map(|s| (s.window_end - T0) / SEC).collect();
    assert_eq!(ends, [3, 4], "newest two, ascending");

    let mut q = signal_query("calm", Some(T0 + SEC), 100);
    q.to = Some(T0 + 3 * SEC);
    let ends: Vec<i64> = store
        .tda_signals(&q)
        .await
        .unwrap()
        .iter()
        .map(|s| (s.window_end - T0) / SEC)
        .collect();
    assert_eq!(ends, [1, 2], "[from, to)");
    assert_eq!(
        store
            .tda_signals(&signal_query("other", None, 10))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .tda_signals(&signal_query("none", None, 10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn open_migrated(url: &str, backend: &str) -> AnyStore {
    let store = AnyStore::connect(url, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.backend_name(), backend);
    store.migrate().await.unwrap();
    store
}

/// A suite body, as a runner calls it.
type Body = for<'a> fn(&'a AnyStore) -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Declares one `#[tokio::test]` per suite body, each calling the runner
/// `run(test_name, body)` of the module it is expanded in.
macro_rules! suite_tests {
    () => {
        suite_tests!(
            idempotent_inserts,
            large_batches_are_chunked,
            overlapping_batches_store_each_tick_once,
            exact_decimals_round_trip,
            latest_tick_by_event_time_and_source,
            history_pages_with_cursor,
            history_range_bounds,
            invalid_cursor_is_rejected,
            bars_upsert_and_window,
            bars_prune_deletes_what_is_not_kept,
            indicators_upsert_and_window,
            price_requests_newest_first,
            polling_jobs_lifecycle,
            migrate_twice_is_harmless,
            api_keys_lifecycle,
            credentials_are_stored_sealed,
            connectors_lifecycle,
            uploads_and_tda_jobs_lifecycle,
            tda_signals_upsert_and_window,
            latest_bars_one_per_symbol_and_source,
        );
    };
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            run(stringify!($name), |store| Box::pin(super::$name(store))).await;
        }
    )*};
}

mod sqlite_runner {
    use super::*;

    /// Runs `body` on a fresh database file.
    async fn run(_test: &str, body: Body) {
        let dir = tempfile::tempdir().unwrap();
        // A nested path: connect must create the parent directories.
        let url = format!("sqlite://{}/nested/dir/test.db", dir.path().display());
        let store = open_migrated(&url, "sqlite").await;
        body(&store).await;
        store.close().await;
    }

    suite_tests!();

    #[tokio::test]
    async fn data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/reopen.db", dir.path().display());
        super::data_survives_reopening(&url).await;
        assert!(dir.path().join("reopen.db").exists());
    }

    #[tokio::test]
    async fn in_memory_database_works() {
        let store = AnyStore::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        super::idempotent_inserts(&store).await;
    }

    #[tokio::test]
    async fn bad_urls_name_only_the_scheme() {
        let err = AnyStore::connect("mysql://user:hunter2@localhost/x", &StoreOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedUrl(u) if u.contains("mysql")),
            "{err}"
        );
        assert!(
            !err.to_string().contains("hunter2"),
            "credentials leaked: {err}"
        );
        for bad in ["sqlite://", "sqlite:", "data.db", "memory://"] {
            let res = AnyStore::connect(bad, &StoreOptions::default()).await;
            assert!(matches!(res, Err(Error::UnsupportedUrl(_))), "{bad}");
        }
    }

    #[tokio::test]
    async fn relative_paths_resolve_from_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let rel = format!(
            "{up}{}",
            dir.path()
                .strip_prefix("/")
                .unwrap()
                .join("rel/x.db")
                .display()
        );
        let store = AnyStore::connect(&format!("sqlite://{rel}"), &StoreOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        store.close().await;
        assert!(dir.path().join("rel/x.db").is_file());
    }

    #[test]
    fn options_deserialize_with_defaults() {
        let o: StoreOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(o, StoreOptions::default());
        assert!(o.max_connections >= 1);
        let o: StoreOptions = serde_json::from_str(r#"{"max_connections": 3}"#).unwrap();
        assert_eq!(o.max_connections, 3);
        assert!(serde_json::from_str::<StoreOptions>(r#"{"max_conns": 3}"#).is_err());
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL runner: a fresh database per test, created through the server
// named by MARKETD_TEST_POSTGRES_URL (scripts/test starts a private one).
// Unset: every test prints a skip notice and passes, unless
// MARKETD_REQUIRE_SERVICES=1, where it fails.

mod postgres_runner {
    use super::*;
    use marketd_testkit::FreshDatabase;
    use sqlx::Connection;

    const URL_VAR: &str = "MARKETD_TEST_POSTGRES_URL";

    /// The server's URL, or `None` (after a notice) when the suite is skipped.
    fn server_url(test: &str) -> Option<String> {
        marketd_testkit::service(URL_VAR, &format!("postgres test {test}"))
    }

    async fn fresh(server: &str) -> (FreshDatabase, AnyStore) {
        let db = FreshDatabase::create(server, "marketd_test").await;
        let store = open_migrated(&db.url, "postgres").await;
        (db, store)
    }

    /// Runs `body` on a fresh database (skipped without a server).
    async fn run(test: &str, body: Body) {
        let Some(server) = server_url(test) else {
            return;
        };
        let (db, store) = fresh(&server).await;
        body(&store).await;
        store.close().await;
        db.drop().await;
    }

    /// A `#[tokio::test]` needing the server, whose URL it binds to
    /// `$server` (skipped, through [`server_url`], without one).
    macro_rules! server_test {
        ($(#[$doc:meta])* async fn $name:ident($server:ident) $body:block) => {
            $(#[$doc])*
            #[tokio::test]
            async fn $name() {
                let Some($server) = server_url(stringify!($name)) else {
                    return;
                };
                $body
            }
        };
    }

    suite_tests!();

    server_test! {
        async fn data_survives_reopening(server) {
            let db = FreshDatabase::create(&server, "marketd_test").await;
            super::data_survives_reopening(&db.url).await;
            db.drop().await;
        }
    }

    server_test! {
        /// `postgresql://` is the same backend; databases are isolated.
        async fn postgresql_scheme_and_isolated_databases(server) {
            let (db_a, a) = fresh(&server).await;
            let db_b = FreshDatabase::create(&server, "marketd_test").await;
            let url_b = db_b.url.replacen("postgres://", "postgresql://", 1);
            let b = AnyStore::connect(&url_b, &StoreOptions { max_connections: 2 })
                .await
                .unwrap();
            assert_eq!(b.backend_name(), "postgres");
            b.migrate().await.unwrap();
            a.insert_ticks(&[tick("AAPL", "sim", T0, "1")])
                .await
                .unwrap();
            assert_eq!(a.count_ticks(None).await.unwrap(), 1);
            assert_eq!(b.count_ticks(None).await.unwrap(), 0);
            a.close().await;
            b.close().await;
            db_a.drop().await;
            db_b.drop().await;
        }
    }

    server_test! {
        /// The schema as PostgreSQL users see it: one index per tick (the identity
        /// index that also serves queries), the query plan of a history read
        /// using it, and the `*_at` views giving event times as `timestamptz`.
        async fn tick_index_and_timestamptz_views(server) {
            let (db, store) = fresh(&server).await;
            let ns = T0 + 123_456_789;
            store
                .insert_ticks(&[tick("AAPL", "sim", ns, "1.5")])
                .await
                .unwrap();
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE tablename = 'ticks' ORDER BY 1",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert_eq!(indexes, ["ticks_identity", "ticks_trade_identity"]);
            sqlx::query("SET enable_seqscan = off")
                .execute(&mut conn)
                .await
                .unwrap();
            let plan: Vec<String> = sqlx::query_scalar(
                "EXPLAIN SELECT * FROM ticks WHERE symbol = 'AAPL' AND source = 'sim' \
                 AND ts_event >= 0 ORDER BY ts_event DESC, id DESC LIMIT 10",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(
                plan.iter().any(|l| l.contains("ticks_identity")),
                "history read does not use the identity index: {plan:#?}"
            );
            let (time, exact): (String, i64) = sqlx::query_as(
                "SELECT to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), ts_event \
                 FROM ticks_at",
            )
            .fetch_one(&mut conn)
            .await
            .unwrap();
            assert_eq!(time, "2023-11-14 22:13:20.123456");
            assert_eq!(exact, ns, "the nanoseconds stay exact in the table");
            let bars: i64 = sqlx::query_scalar("SELECT count(*) FROM bars_at")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(bars, 0);
            conn.close().await.ok();
            store.close().await;
            db.drop().await;
        }
    }

    /// Needs no server: a refused connection's error hides the password.
    #[tokio::test]
    async fn connect_errors_hide_the_password() {
        for url in [
            "postgres://marketd:hunter2@127.0.0.1:1/x",
            "postgresql://marketd:hunter2@127.0.0.1:1/x?sslmode=disable",
        ] {
            let err = AnyStore::connect(url, &StoreOptions::default())
                .await
                .unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "credentials leaked: {shown}");
            assert!(matches!(err, Error::Connect { .. }), "{shown}");
        }
    }
}
