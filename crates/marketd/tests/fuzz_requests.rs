//! Property tests of the request parsers (query strings, JSON bodies, path
//! parameters, credentials) against a running app: whatever arrives, no
//! panic and no 5xx, and every rejection is a 4xx in the error shape.

mod common;

use common::TestApp;
use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestCaseError, TestRunner};

fn check(status: u16, body: &str, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: {status} {body}");
    if status >= 400 {
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|_| TestCaseError::fail(format!("{what}: not JSON: {body}")))?;
        if let Some(k) = common::error_shape_gap(&v) {
            prop_assert!(false, "{what}: no {k} in {body}");
        }
    }
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[A-Za-z0-9./_=^-]{0,40}",
        "-?[0-9]{0,25}",
        Just(String::new()),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
    ]
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(PtConfig {
        cases,
        failure_persistence: None,
        ..PtConfig::default()
    })
}

#[test]
fn request_parsers_never_fail_open_or_panic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(TestApp::spawn(|c| {
        c.feeds.simulated.enabled = false;
        c.http.max_body_bytes = 4096;
    }));

    // Query strings of every read route.
    let routes = [
        "/api/v1/prices/latest",
        "/api/v1/prices/history",
        "/api/v1/bars",
        "/api/v1/indicators/moving-average",
    ];
    let keys = [
        "symbol", "provider", "from", "to", "limit", "cursor", "interval", "window", "kind",
        "source",
    ];
    let strategy = (
        0..routes.len(),
        proptest::collection::vec((0..keys.len(), text()), 0..6),
    );
    runner(400)
        .run(&strategy, |(r, params)| {
            let pairs: Vec<(&str, String)> =
                params.iter().map(|(k, v)| (keys[*k], v.clone())).collect();
            let (status, body) = rt.block_on(async {
                let resp = app
                    .anon
                    .get(app.url(routes[r]))
                    .query(&pairs)
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
            check(status, &body, &format!("GET {} {pairs:?}", routes[r]))
        })
        .unwrap();

    // Bodies of the write route: arbitrary bytes and near-JSON.
    let json_like = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..600),
        ".{0,200}".prop_map(String::into_bytes),
        (
            proptest::collection::vec(text(), 0..5),
            any::<f64>(),
            proptest::option::of(text())
        )
            .prop_map(|(symbols, interval, provider)| {
                serde_json::json!({"symbols": symbols, "interval": interval, "provider": provider})
                    .to_string()
                    .into_bytes()
            }),
        (1usize..80).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        (4000usize..6000).prop_map(|n| format!(
            "{{\"symbols\":[\"{}\"],\"interval\":5}}",
            "A".repeat(n)
        )
        .into_bytes()),
    ];
    runner(300)
        .run(&json_like, |body| {
            let (status, text) = rt.block_on(async {
                let resp = app
                    .client
                    .post(app.url("/api/v1/prices/poll"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            });
            prop_assert!(
                [202, 400, 413, 415, 422].contains(&status),
                "{status} for {:?}",
                String::from_utf8_lossy(&body)
            );
            check(status, &text, "POST /prices/poll")
        })
        .unwrap();

    // Path parameters and credentials.
    runner(200)
        .run(&(".{0,60}", ".{0,80}"), |(id, key)| {
            let (status, text, auth_status) = rt.block_on(async {
                let path = format!("/api/v1/polling-jobs/{}", url_escape(&id));
                let resp = app.anon.get(app.url(&path)).send().await.unwrap();
                let s = resp.status().as_u16();
                let t = resp.text().await.unwrap();
                let mut req = app.anon.delete(app.url("/api/v1/polling-jobs/x"));
                if let Ok(v) = reqwest::header::HeaderValue::from_str(&key) {
                    req = req.header("x-api-key", v);
                }
                let a = req.send().await.unwrap().status().as_u16();
                (s, t, a)
            });
            check(status, &text, &format!("GET polling-jobs/{id:?}"))?;
            prop_assert_eq!(auth_status, 401, "a random key never authorizes a write");
            Ok(())
        })
        .unwrap();
    rt.block_on(app.stop());
}

fn url_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
