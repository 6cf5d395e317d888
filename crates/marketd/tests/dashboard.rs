//! The web dashboard as the server delivers it: the embedded app on every
//! page path under a strict CSP, its assets compressed and cacheable, and
//! the two routes it needs beyond the rest of the API (`/api/v1/symbols`,
//! `/api/v1/session`). What the page does in a browser is tested by
//! `web/tests/browser.mjs` (headless Chromium, run by `scripts/test`).

mod common;

use common::{TestApp, assert_error_shape, eventually, logs::logs};
use std::io::Read as _;
use std::time::Duration;

/// `GET path` without the harness's default key, with `key` if given.
async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = app.anon.get(app.url(path));
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    req.send().await.unwrap()
}

fn feed(c: &mut marketd::config::Config) {
    logs();
    c.feeds.simulated.ticks_per_second = 50.0;
    c.feeds.simulated.symbols = ["AAPL", "BTC-USDT"]
        .map(|s| marketd_model::Symbol::parse(s).unwrap())
        .to_vec();
    c.writer.flush_interval_ms = 50;
    c.aggregator.flush_interval_ms = 200;
}

/// The path of the entry script `index.html` names.
fn entry_script(html: &str) -> String {
    let tag = "<script type=\"module\" crossorigin src=\"";
    let at = html.find(tag).expect("entry script") + tag.len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

#[tokio::test]
async fn every_page_path_serves_the_app_and_its_assets_under_a_strict_csp() {
    let app = TestApp::spawn(feed).await;
    let r = get(&app, "/", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    for part in [
        "script-src 'self';",
        "style-src 'self';",
        "connect-src 'self';",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{part} not in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let index = r.text().await.unwrap();
    assert!(index.contains("<div id=\"app\"></div>"), "{index}");

    // The app's own routes answer the same page; others are not the app's.
    for path in [
        "/symbols/AAPL",
        "/symbols/BTC-USDT",
        "/connectors",
        "/connectors/new",
        "/jobs",
        "/tda",
        "/signals",
        "/operations",
    ] {
        let r = get(&app, path, None).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.unwrap(), index, "{path}");
    }
    let r = get(&app, "/nothing-here", None).await;
    assert_eq!(r.status(), 404);

    // A reload with the ETag costs a 304 and no body.
    let r = app
        .anon
        .get(app.url("/"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.unwrap().is_empty());

    // The entry script: immutable, gzip when accepted, identical once inflated.
    let script = entry_script(&index);
    assert!(
        script.starts_with("/assets/") && script.ends_with(".js"),
        "{script}"
    );
    let plain = get(&app, &script, None).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    let gz = app
        .anon
        .get(app.url(&script))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let gz = gz.bytes().await.unwrap();
    assert!(
        gz.len() * 2 < plain.len(),
        "{} vs {}",
        gz.len(),
        plain.len()
    );
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated, plain);

    let r = get(&app, "/assets/missing-0000.js", None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(assert_error_shape(&r.json().await.unwrap()), "NOT_FOUND");
    app.stop().await;
}

#[tokio::test]
async fn symbols_lists_every_symbol_with_its_session_bar() {
    let app = TestApp::spawn(feed).await;
    let (status, listed) = eventually(Duration::from_secs(20), || async {
        let (s, body) = app.get_json("/api/v1/symbols").await;
        (body["count"] == 2).then_some((s, body))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed["interval"], "1d");
    let names: Vec<&str> = listed["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["AAPL", "BTC-USDT"]);
    for s in listed["symbols"].as_array().unwrap() {
        let symbol = s["symbol"].as_str().unwrap();
        assert_eq!(s["source"], "simulated");
        // The session is the symbol's newest day bar as /bars has it (read
        // after, so it may have moved on: same bucket, same open).
        let (_, bars) = app
            .get_json(&format!("/api/v1/bars?symbol={symbol}&interval=1d&limit=1"))
            .await;
        let bar = &bars["bars"][0];
        assert_eq!(s["session_start"], bar["start"], "{symbol}");
        assert_eq!(s["open"], bar["open"], "{symbol}");
        let (price, open) = (s["price"].as_f64().unwrap(), s["open"].as_f64().unwrap());
        let change = s["change"].as_f64().unwrap();
        assert!((price - open - change).abs() < 1e-9, "{s}");
        let pct = s["change_pct"].as_f64().unwrap();
        assert!((pct - change / open * 100.0).abs() < 1e-9, "{s}");
        assert!(s["high"].as_f64().unwrap() >= price && s["low"].as_f64().unwrap() <= price);
        assert!(s["ts_event"].as_i64().unwrap() >= s["session_start"].as_i64().unwrap());
        assert!(s["age_ms"].as_i64().unwrap() >= 0);
    }
    app.stop().await;
}

#[tokio::test]
async fn session_says_who_the_caller_is_and_whether_reads_need_a_key() {
    let app = TestApp::spawn(feed).await;
    let (s, anon) = {
        let r = get(&app, "/api/v1/session", None).await;
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    };
    assert_eq!(s, 200);
    assert_eq!(anon["authenticated"], false);
    assert!(anon["role"].is_null());
    assert_eq!(anon["read_requires_key"], false);
    for (key, role) in [
        (&app.read_key, "read"),
        (&app.write_key, "write"),
        (&app.admin_key, "admin"),
    ] {
        let r = get(&app, "/api/v1/session", Some(key)).await;
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["authenticated"], true);
        assert_eq!(body["role"], role);
        let principal = body["principal"].as_str().unwrap();
        assert!(
            principal.starts_with("key:") && !principal.contains(key.as_str()),
            "{principal}"
        );
    }
    let r = get(&app, "/api/v1/session", Some("mkd_not_a_key")).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        assert_error_shape(&r.json().await.unwrap()),
        "INVALID_API_KEY"
    );
    app.stop().await;

    let app = TestApp::spawn(|c| {
        feed(c);
        c.auth.require_read_key = true;
    })
    .await;
    let r = get(&app, "/api/v1/session", None).await;
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["read_requires_key"], true);
    assert_eq!(body["authenticated"], false);
    // The page itself stays open (it shows the sign-in box); the data does not.
    assert_eq!(get(&app, "/", None).await.status(), 200);
    assert_eq!(get(&app, "/api/v1/symbols", None).await.status(), 401);
    app.stop().await;
}
