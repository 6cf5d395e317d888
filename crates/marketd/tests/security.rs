//! Security rules end to end: keys and roles on every write route, admin key
//! management and immediate revocation (across instances), the bootstrap
//! admin key, JWT (HS256, RS256; expired, forged, wrong issuer/audience),
//! body and nesting limits, encrypted credentials (at rest, rotation, use by
//! a provider), security headers, CORS, the circuit breaker in readiness
//! and metrics, and no secret in the logs of the run.

mod common;

use common::logs::logs;
use common::{TestApp, assert_error_shape, eventually};
use marketd_model::Secret;
use reqwest::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn quiet(cfg: &mut marketd::config::Config) {
    logs();
    cfg.feeds.simulated.ticks_per_second = 20.0;
}

fn poll_body() -> serde_json::Value {
    json!({"symbols": ["AAPL"], "interval": 60, "provider": "simulated"})
}

/// POST /api/v1/api-keys (an admin's) with `body`: status and body.
async fn post_key(app: &TestApp, body: serde_json::Value) -> (u16, serde_json::Value) {
    app.admin(Method::POST, "/api/v1/api-keys", Some(&body))
        .await
}

/// POST /api/v1/prices/poll (a write) with `key`: status and body.
async fn poll_as(app: &TestApp, key: Option<&str>) -> (u16, serde_json::Value) {
    let (s, b, _) = app
        .call(Method::POST, "/api/v1/prices/poll", key, Some(&poll_body()))
        .await;
    (s, b)
}

// ---------------------------------------------------------------------------
// Keys and roles

#[tokio::test]
async fn every_write_route_needs_a_write_key() {
    let app = TestApp::spawn(quiet).await;
    let (s, b) = poll_as(&app, Some(&app.write_key)).await;
    assert_eq!(s, 202, "{b}");
    let job = b["job_ids"][0].as_str().unwrap().to_string();

    let routes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (
            Method::POST,
            "/api/v1/prices/poll".into(),
            Some(poll_body()),
        ),
        (Method::DELETE, format!("/api/v1/polling-jobs/{job}"), None),
    ];
    for (method, path, body) in &routes {
        let (s, b, h) = app.call(method.clone(), path, None, body.as_ref()).await;
        assert_eq!(s, 401, "{method} {path} without a key: {b}");
        assert_eq!(assert_error_shape(&b), "UNAUTHORIZED");
        assert!(h.contains_key("www-authenticate"));

        let (s, b, _) = app
            .call(
                method.clone(),
                path,
                Some("mkd_notarealkeyatall"),
                body.as_ref(),
            )
            .await;
        assert_eq!(s, 401, "{method} {path} with an unknown key: {b}");
        assert_eq!(assert_error_shape(&b), "INVALID_API_KEY");

        let (s, b, _) = app
            .call(method.clone(), path, Some(&app.read_key), body.as_ref())
            .await;
        assert_eq!(s, 403, "{method} {path} with a read key: {b}");
        assert_eq!(assert_error_shape(&b), "FORBIDDEN");
    }
    for (method, path, body) in &routes {
        let (s, b, _) = app
            .call(method.clone(), path, Some(&app.write_key), body.as_ref())
            .await;
        assert!(
            (200..300).contains(&s),
            "{method} {path} with a write key: {s} {b}"
        );
    }
    // An admin key may write too.
    let (s, _) = app
        .admin(Method::POST, "/api/v1/prices/poll", Some(&poll_body()))
        .await;
    assert_eq!(s, 202);

    // Admin routes: write is not enough.
    let admin_routes: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (Method::GET, "/api/v1/api-keys", None),
        (
            Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "x", "role": "read"})),
        ),
        (
            Method::DELETE,
            "/api/v1/api-keys/0190b1a0-0000-7000-8000-000000000000",
            None,
        ),
        (Method::GET, "/api/v1/credentials", None),
        (
            Method::PUT,
            "/api/v1/credentials/a.b",
            Some(json!({"value": "v"})),
        ),
        (Method::DELETE, "/api/v1/credentials/a.b", None),
    ];
    for (method, path, body) in &admin_routes {
        let (s, b, _) = app.call(method.clone(), path, None, body.as_ref()).await;
        assert_eq!(s, 401, "{method} {path}: {b}");
        assert_error_shape(&b);
        for key in [&app.read_key, &app.write_key] {
            let (s, b, _) = app
                .call(method.clone(), path, Some(key), body.as_ref())
                .await;
            assert_eq!(s, 403, "{method} {path}: {b}");
            assert_error_shape(&b);
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn reads_are_open_by_default_and_keyed_by_config() {
    let app = TestApp::spawn(quiet).await;
    let (s, _, _) = app
        .call(Method::GET, "/api/v1/polling-jobs", None, None)
        .await;
    assert_eq!(s, 200, "reads are open by default");
    app.stop().await;

    let app = TestApp::spawn(|c| {
        quiet(c);
        c.auth.require_read_key = true;
    })
    .await;
    let (s, b, _) = app
        .call(Method::GET, "/api/v1/polling-jobs", None, None)
        .await;
    assert_eq!(s, 401, "{b}");
    assert_error_shape(&b);
    for key in [&app.read_key, &app.write_key, &app.admin_key] {
        let (s, _, _) = app
            .call(Method::GET, "/api/v1/polling-jobs", Some(key), None)
            .await;
        assert_eq!(s, 200);
    }
    let (s, _, _) = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(s, 200, "operations routes stay open");
    app.stop().await;
}

#[tokio::test]
async fn admins_manage_keys_and_revocation_holds_on_every_instance() {
    // Instance a trusts a verified key for the default auth.key_cache_ms
    // (1 s); b reads the store on every request (key_cache_ms = 0).
    let a = TestApp::spawn(quiet).await;
    // A second instance on the same database.
    let b = TestApp::spawn_in(a.data_dir.clone(), |c| {
        quiet(c);
        c.feeds.simulated.enabled = false;
        c.auth.key_cache_ms = 0;
    })
    .await;
    assert!(b.bootstrap_key.is_none(), "the first instance made it");

    let (s, created) = post_key(&a, json!({"name": "ci", "role": "write"})).await;
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("mkd_") && key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["role"], "write");
    assert!(created.get("key_hash").is_none() && created.get("hash").is_none());

    let (s, list) = a.admin(Method::GET, "/api/v1/api-keys", None).await;
    assert_eq!(s, 200);
    let text = list.to_string();
    assert!(!text.contains(&key), "a listing never shows a key");
    assert!(
        !text.contains(&marketd_engine::services::access::hash_key(&key)),
        "nor its hash"
    );
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id.as_str())
    );

    // The new key works on both instances...
    for app in [&a, &b] {
        let (s, _) = poll_as(app, Some(&key)).await;
        assert_eq!(s, 202);
    }
    // ...until revoked on one of them: refused at once there and on every
    // instance without a key cache, within auth.key_cache_ms on the others.
    let (s, _) = b
        .admin(Method::DELETE, &format!("/api/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, body) = poll_as(&b, Some(&key)).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(assert_error_shape(&body), "INVALID_API_KEY");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (s, body) = poll_as(&a, Some(&key)).await;
        if s == 401 {
            assert_eq!(assert_error_shape(&body), "INVALID_API_KEY");
            break;
        }
        assert_eq!(s, 202, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "a key revoked on another instance is still accepted after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Revoked through a itself: refused at once by a (it forgets its cache).
    let (s, second) = post_key(&a, json!({"name": "ci2", "role": "write"})).await;
    assert_eq!(s, 201, "{second}");
    let (key2, id2) = (
        second["key"].as_str().unwrap().to_string(),
        second["id"].as_str().unwrap().to_string(),
    );
    assert_eq!(poll_as(&a, Some(&key2)).await.0, 202);
    let (s, _) = a
        .admin(Method::DELETE, &format!("/api/v1/api-keys/{id2}"), None)
        .await;
    assert_eq!(s, 204);
    for app in [&a, &b] {
        let (s, body) = poll_as(app, Some(&key2)).await;
        assert_eq!(s, 401, "{body}");
    }
    let (s, body) = a
        .admin(Method::DELETE, &format!("/api/v1/api-keys/{id}"), None)
        .await;
    assert_eq!(s, 404, "{body}");

    // Expiring keys: shown with their end; past it, refused.
    let (s, expiring) = post_key(
        &a,
        json!({"name": "temp", "role": "write", "expires_in_days": 7}),
    )
    .await;
    assert_eq!(s, 201, "{expiring}");
    assert!(
        expiring["expires_at"]
            .as_str()
            .is_some_and(|t| t.starts_with('2'))
    );
    let (mut old, old_key) =
        marketd_engine::services::access::new_api_key("old", marketd_model::Role::Write);
    old.expires_at = Some(marketd_model::time::now_ns() - 1);
    use marketd_store::prelude::*;
    a.store
        .insert_api_key(
            &old,
            &marketd_engine::services::access::hash_key(old_key.expose()),
        )
        .await
        .unwrap();
    let (s, body) = poll_as(&a, Some(old_key.expose())).await;
    assert_eq!(s, 401, "an expired key: {body}");

    // Bad input.
    for bad in [
        json!({"name": "", "role": "read"}),
        json!({"name": "x", "role": "root"}),
        json!({"name": "x", "role": "read", "expires_in_days": 0}),
        json!({"name": "x", "role": "read", "expires_in_days": 100000}),
    ] {
        let (s, body) = a.admin(Method::POST, "/api/v1/api-keys", Some(&bad)).await;
        assert_eq!(s, 422, "{body}");
        assert_error_shape(&body);
    }

    // The last active admin key cannot be revoked.
    let (_, list) = a.admin(Method::GET, "/api/v1/api-keys", None).await;
    let admins: Vec<String> = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["role"] == "admin" && k["active"] == true)
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert!(admins.len() >= 2, "{list}");
    let mine = list["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| a.admin_key.starts_with(k["prefix"].as_str().unwrap()) && k["role"] == "admin")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for id in admins.iter().filter(|i| **i != mine) {
        let (s, _) = a
            .admin(Method::DELETE, &format!("/api/v1/api-keys/{id}"), None)
            .await;
        assert_eq!(s, 204);
    }
    let (s, body) = a
        .admin(Method::DELETE, &format!("/api/v1/api-keys/{mine}"), None)
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(assert_error_shape(&body), "LAST_ADMIN_KEY");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn the_first_start_creates_one_admin_key_and_later_starts_none() {
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::spawn_in(dir.path().to_path_buf(), quiet).await;
    let boot = app
        .bootstrap_key
        .clone()
        .expect("first start makes an admin key");
    let (s, list, _) = app
        .call(Method::GET, "/api/v1/api-keys", Some(&boot), None)
        .await;
    assert_eq!(s, 200, "the bootstrap key is an admin key");
    assert!(
        list["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["name"] == "bootstrap")
    );
    app.stop().await;
    let again = TestApp::spawn_in(dir.path().to_path_buf(), quiet).await;
    assert!(again.bootstrap_key.is_none(), "never again");
    again.stop().await;

    let off = TestApp::spawn(|c| {
        quiet(c);
        c.auth.bootstrap_admin_key = false;
    })
    .await;
    assert!(off.bootstrap_key.is_none());
    off.stop().await;
}

// ---------------------------------------------------------------------------
// JWT

const HS_SECRET: &str = "test-hs256-secret-of-at-least-32-bytes!!";

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(role: &str, exp: u64, iss: &str, aud: &str) -> serde_json::Value {
    json!({"sub": "alice", "role": role, "exp": exp, "iss": iss, "aud": aud, "iat": now_s()})
}

fn hs256(c: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        c,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An HS256 token of the test identity provider for `role`, expiring at
/// `exp` (seconds).
fn idp_token(role: &str, exp: u64) -> String {
    hs256(&claims(role, exp, "https://idp.test", "marketd"), HS_SECRET)
}

/// `claims` signed with the RS256 private `key`.
fn rs256(claims: &serde_json::Value, key: &jsonwebtoken::EncodingKey) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn bearer(app: &TestApp, token: &str) -> (u16, serde_json::Value) {
    let r = app
        .anon
        .post(app.url("/api/v1/prices/poll"))
        .bearer_auth(token)
        .json(&poll_body())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn hs256_tokens_are_checked_for_signature_issuer_audience_and_expiry() {
    let app = TestApp::spawn(|c| {
        quiet(c);
        c.auth.jwt.enabled = true;
        c.auth.jwt.secret = Some(Secret::new(HS_SECRET));
        c.auth.jwt.issuer = "https://idp.test".into();
    })
    .await;
    let later = now_s() + 600;
    let (s, b) = bearer(&app, &idp_token("write", later)).await;
    assert_eq!(s, 202, "{b}");
    let (s, b) = bearer(&app, &idp_token("read", later)).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(assert_error_shape(&b), "FORBIDDEN");

    let refused = [
        ("expired", idp_token("admin", now_s() - 3600)),
        (
            "forged",
            hs256(
                &claims("admin", later, "https://idp.test", "marketd"),
                "another-secret-that-is-32-bytes-long!!",
            ),
        ),
        (
            "wrong issuer",
            hs256(
                &claims("admin", later, "https://evil.test", "marketd"),
                HS_SECRET,
            ),
        ),
        (
            "wrong audience",
            hs256(
                &claims("admin", later, "https://idp.test", "other"),
                HS_SECRET,
            ),
        ),
        ("garbage", "not.a.jwt".to_string()),
    ];
    for (why, token) in &refused {
        let (s, b) = bearer(&app, token).await;
        assert_eq!(s, 401, "{why}: {b}");
        assert_eq!(assert_error_shape(&b), "INVALID_TOKEN", "{why}");
    }
    // alg=none: the header says none, the signature is empty.
    let good = idp_token("admin", later);
    let payload = good.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let none_header =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let (s, b) = bearer(&app, &format!("{none_header}.{payload}.")).await;
    assert_eq!(s, 401, "alg none: {b}");
    // No known role: authenticated but not authorized.
    let (s, b) = bearer(&app, &idp_token("superuser", later)).await;
    assert_eq!(s, 403, "{b}");
    // Basic auth is not a scheme we accept.
    let r = app
        .anon
        .post(app.url("/api/v1/prices/poll"))
        .basic_auth("u", Some("p"))
        .json(&poll_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn rs256_tokens_and_algorithm_confusion() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let app = TestApp::spawn(|c| {
        quiet(c);
        c.auth.jwt.enabled = true;
        c.auth.jwt.algorithm = "RS256".into();
        c.auth.jwt.public_key_path = Some(format!("{fixtures}/jwt_rs256_public.pem").into());
        c.auth.jwt.issuer = "idp".into();
        c.auth.jwt.role_claim = "roles".into();
    })
    .await;
    let private = std::fs::read(format!("{fixtures}/jwt_rs256_private.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&private).unwrap();
    let c = json!({"sub": "svc", "roles": ["read", "write"], "exp": now_s() + 600, "iss": "idp", "aud": "marketd"});
    let token = rs256(&c, &key);
    let (s, b) = bearer(&app, &token).await;
    assert_eq!(s, 202, "{b}");
    // The public key used as an HMAC secret must not pass.
    let public = std::fs::read_to_string(format!("{fixtures}/jwt_rs256_public.pem")).unwrap();
    let (s, b) = bearer(&app, &hs256(&c, &public)).await;
    assert_eq!(s, 401, "{b}");
    let c = json!({"sub": "svc", "roles": ["write"], "exp": now_s() - 600, "iss": "idp", "aud": "marketd"});
    let expired = rs256(&c, &key);
    let (s, _) = bearer(&app, &expired).await;
    assert_eq!(s, 401);
    app.stop().await;
}

#[tokio::test]
async fn bad_jwt_configuration_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for tweak in [
        |c: &mut marketd::config::Config| {
            c.auth.jwt.enabled = true;
            c.auth.jwt.issuer = "i".into();
            c.auth.jwt.secret = Some(Secret::new("short"));
        },
        |c: &mut marketd::config::Config| {
            c.auth.jwt.enabled = true;
            c.auth.jwt.secret = Some(Secret::new(HS_SECRET));
        },
        |c: &mut marketd::config::Config| {
            c.auth.jwt.enabled = true;
            c.auth.jwt.issuer = "i".into();
            c.auth.jwt.algorithm = "none".into();
        },
    ] {
        let mut cfg = common::base_config(dir.path());
        tweak(&mut cfg);
        let err = marketd::Application::build(cfg).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("auth.jwt"), "{text}");
        assert!(!text.contains("short"), "the secret is not echoed: {text}");
    }
}

// ---------------------------------------------------------------------------
// Input limits and browser hardening

#[tokio::test]
async fn oversized_deep_and_mistyped_bodies_are_refused_in_the_error_shape() {
    let app = TestApp::spawn(|c| {
        quiet(c);
        c.http.max_body_bytes = 1024;
    })
    .await;
    let big = json!({"symbols": vec!["AAPL"; 400], "interval": 60});
    let (s, b, _) = app
        .call(
            Method::POST,
            "/api/v1/prices/poll",
            Some(&app.write_key),
            Some(&big),
        )
        .await;
    assert_eq!(s, 413, "{b}");
    assert_eq!(assert_error_shape(&b), "PAYLOAD_TOO_LARGE");

    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    let r = app
        .client
        .post(app.url("/api/v1/prices/poll"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_eq!(assert_error_shape(&b), "JSON_TOO_DEEP");

    let r = app
        .client
        .post(app.url("/api/v1/prices/poll"))
        .header("content-type", "text/plain")
        .body(poll_body().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let b: serde_json::Value = r.json().await.unwrap();
    assert_error_shape(&b);

    // Filters are bounded too.
    let (s, b) = app
        .get_json(&format!(
            "/api/v1/prices/history?symbol=AAPL&source={}",
            "s".repeat(65)
        ))
        .await;
    assert_eq!(s, 422, "{b}");
    assert_error_shape(&b);

    // Details quoting the input are bounded.
    let long = "A".repeat(5000);
    let (s, b) = app
        .get_json(&format!("/api/v1/prices/history?symbol=AAPL&from={long}"))
        .await;
    assert_eq!(s, 422);
    assert!(
        b["detail"].as_str().unwrap().len() <= 520,
        "{}",
        b["detail"]
    );
    app.stop().await;
}

#[tokio::test]
async fn security_headers_on_dashboard_docs_and_api_and_cors_by_config() {
    let app = TestApp::spawn(|c| {
        quiet(c);
        c.http.cors_allowed_origins = vec!["https://ok.example".into()];
    })
    .await;
    for path in [
        "/",
        "/docs/",
        "/redoc",
        "/api/v1/polling-jobs",
        "/api/v1/nope",
    ] {
        let r = app.anon.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        let csp = h
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "no HSTS over plain HTTP"
        );
        if path == "/" {
            assert!(
                csp.contains("script-src 'self';")
                    && !csp.contains("unsafe-inline")
                    && !csp.contains("unsafe-eval"),
                "{csp}"
            );
        }
        if path.starts_with("/api") {
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
        }
    }
    let pre = |origin: &'static str| {
        app.anon
            .request(Method::OPTIONS, app.url("/api/v1/prices/poll"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key,content-type")
            .send()
    };
    let r = pre("https://ok.example").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ok.example"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-api-key"), "{allowed}");
    let r = pre("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // The OpenAPI document declares the schemes and which routes need them.
    let (_, doc) = app.get_json("/openapi.json").await;
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "X-API-Key", "{schemes}");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert!(doc["paths"]["/api/v1/prices/poll"]["post"]["security"].is_array());
    assert!(doc["paths"]["/api/v1/api-keys"]["post"]["security"].is_array());
    app.stop().await;

    let app = TestApp::spawn(quiet).await;
    let r = app
        .get_with("/api/v1/polling-jobs", &[("origin", "https://ok.example")])
        .await;
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "no CORS by default"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Encrypted credentials

fn with_encryption(key: &Secret) -> impl FnOnce(&mut marketd::config::Config) {
    let key = key.clone();
    move |c| {
        quiet(c);
        c.encryption.key = Some(key);
    }
}

#[tokio::test]
async fn credentials_are_encrypted_at_rest_never_returned_and_rotate() {
    let plaintext = "fh_live_PLAINTEXT_7c1e9b2d";
    let key1 = marketd_store::crypto::generate_key();
    let app = TestApp::spawn(with_encryption(&key1)).await;
    let name = "providers.finnhub.api_key";
    let (s, b) = app
        .admin(
            Method::PUT,
            &format!("/api/v1/credentials/{name}"),
            Some(&json!({"value": plaintext})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["key_id"], "k1");
    assert!(!b.to_string().contains(plaintext));
    let (s, list) = app.admin(Method::GET, "/api/v1/credentials", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 1);
    assert!(!list.to_string().contains(plaintext));
    for bad in ["UPPER", "has space", "../etc", ""] {
        let (s, _) = app
            .admin(
                Method::PUT,
                &format!("/api/v1/credentials/{bad}"),
                Some(&json!({"value": "x"})),
            )
            .await;
        assert!(s == 422 || s == 404 || s == 405, "{bad:?}: {s}");
    }

    // In the database: ciphertext, not the plaintext; it round-trips. What
    // is physically stored is the point here, so the database is read.
    let pool = sqlx::SqlitePool::connect(&app.db_url()).await.unwrap();
    let (key_id, nonce, ct): (String, Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT key_id, nonce, ciphertext FROM credentials WHERE name = ?")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((key_id.as_str(), nonce.len()), ("k1", 12));
    assert!(
        !ct.windows(plaintext.len())
            .any(|w| w == plaintext.as_bytes())
    );
    let raw = std::fs::read(app.data_dir.join("marketd.db")).unwrap();
    let wal = std::fs::read(app.data_dir.join("marketd.db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(
            !bytes
                .windows(plaintext.len())
                .any(|w| w == plaintext.as_bytes()),
            "plaintext in the database file"
        );
    }
    let ring1 = marketd_store::crypto::Keyring::new("k1", &key1, &[]).unwrap();
    let sealed = marketd_model::SealedSecret {
        key_id,
        nonce,
        ciphertext: ct,
    };
    assert_eq!(ring1.open(name, &sealed).unwrap().expose(), plaintext);
    pool.close().await;
    let data_dir = app.data_dir.clone();
    let bearer_secret_keys = [
        app.read_key.clone(),
        app.write_key.clone(),
        app.admin_key.clone(),
    ];
    let _tmp = app.stop().await;

    // Rotation: k2 current, k1 previous; every value re-sealed with k2.
    let key2 = marketd_store::crypto::generate_key();
    let ring2 = marketd_store::crypto::Keyring::new(
        "k2",
        &key2,
        &[Secret::new(format!("k1:{}", key1.expose()))],
    )
    .unwrap();
    let store = marketd::open_store(&common::base_config(&data_dir))
        .await
        .unwrap();
    let access = marketd_engine::services::access::AccessService::new(
        Arc::new(store.clone()),
        Arc::new(ring2.clone()),
    );
    assert_eq!(access.rotate_encryption().await.unwrap(), (1, 1));
    assert_eq!(
        access.rotate_encryption().await.unwrap(),
        (0, 1),
        "idempotent"
    );
    use marketd_store::prelude::*;
    let c = store.credential(name).await.unwrap().unwrap();
    assert_eq!(c.sealed.key_id, "k2");
    let only2 = marketd_store::crypto::Keyring::new("k2", &key2, &[]).unwrap();
    assert_eq!(only2.open(name, &c.sealed).unwrap().expose(), plaintext);
    assert!(
        ring1.open(name, &c.sealed).is_err(),
        "the old key alone no longer opens it"
    );
    store.close().await;

    // A provider enabled without a key in the configuration uses the stored one.
    let (mock_url, seen) = finnhub_mock().await;
    let app = TestApp::spawn_in(data_dir.clone(), |c| {
        with_encryption(&key2)(c);
        c.encryption.key_id = "k2".into();
        c.providers.finnhub.enabled = true;
        c.providers.finnhub.base_url = mock_url;
    })
    .await;
    let (s, b) = app
        .get_json("/api/v1/prices/latest?symbol=MSFT&provider=finnhub")
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(seen.lock().unwrap().as_slice(), [plaintext.to_string()]);
    // Failed credentials (a bogus key, a token without JWT enabled) are logged
    // as failures, not echoed.
    let (s, _) = poll_as(&app, Some("mkd_bogus_but_secret_looking_0001")).await;
    assert_eq!(s, 401);
    let (s, m) = (
        app.get("/metrics").await.status(),
        app.get("/metrics").await.text().await.unwrap(),
    );
    assert_eq!(s, 200);
    assert!(
        m.contains("marketd_auth_failures_total"),
        "auth failures are counted"
    );
    assert!(
        !m.contains(plaintext) && !m.contains(&app.write_key),
        "no secret in metrics"
    );
    let (_, ready) = app.get_json("/health/ready").await;
    assert!(!ready.to_string().contains(plaintext));
    let mut secrets = vec![
        plaintext.to_string(),
        key1.expose().to_string(),
        key2.expose().to_string(),
        "mkd_bogus_but_secret_looking_0001".to_string(),
    ];
    secrets.extend(bearer_secret_keys);
    secrets.extend([
        app.read_key.clone(),
        app.write_key.clone(),
        app.admin_key.clone(),
    ]);
    app.stop().await;
    assert_no_secret_in_logs(&secrets);
}

/// A Finnhub stand-in: answers every quote and records the token header.
async fn finnhub_mock() -> (String, Arc<Mutex<Vec<String>>>) {
    use axum::http::HeaderMap;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    let app = axum::Router::new().route(
        "/api/v1/quote",
        axum::routing::get(move |h: HeaderMap| {
            let rec = rec.clone();
            async move {
                if let Some(t) = h.get("x-finnhub-token") {
                    rec.lock().unwrap().push(t.to_str().unwrap().to_string());
                }
                axum::Json(json!({"c": 412.5, "t": 1_700_000_000}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/api/v1"), seen)
}

fn assert_no_secret_in_logs(secrets: &[String]) {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(
        text.len() > 1000,
        "the logs were captured ({} bytes)",
        text.len()
    );
    for s in secrets {
        assert!(!s.is_empty());
        assert!(
            !text.contains(s.as_str()),
            "a secret ({}…) appears in the logs",
            &s[..4]
        );
    }
}

#[tokio::test]
async fn no_secret_of_keys_tokens_or_credentials_reaches_the_logs() {
    let enc = marketd_store::crypto::generate_key();
    let app = TestApp::spawn(move |c| {
        with_encryption(&enc)(c);
        c.auth.jwt.enabled = true;
        c.auth.jwt.secret = Some(Secret::new(HS_SECRET));
        c.auth.jwt.issuer = "idp".into();
    })
    .await;
    let (s, created) = post_key(&app, json!({"name": "logs", "role": "write"})).await;
    assert_eq!(s, 201);
    let key = created["key"].as_str().unwrap().to_string();
    let (s, _) = poll_as(&app, Some(&key)).await;
    assert_eq!(s, 202);
    let credential = "connector_token_SHOULD_NOT_LEAK_93af";
    let (s, _) = app
        .admin(
            Method::PUT,
            "/api/v1/credentials/connectors.demo.token",
            Some(&json!({"value": credential})),
        )
        .await;
    assert_eq!(s, 200);
    let token = hs256(&claims("write", now_s() + 60, "idp", "marketd"), HS_SECRET);
    let (s, _) = bearer(&app, &token).await;
    assert_eq!(s, 202);
    let forged = hs256(
        &claims("admin", now_s() + 60, "idp", "marketd"),
        "forged-secret-forged-secret-forged-secret",
    );
    let (s, _) = bearer(&app, &forged).await;
    assert_eq!(s, 401);
    let (s, _) = app
        .admin(
            Method::DELETE,
            &format!("/api/v1/api-keys/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, _) = poll_as(&app, Some(&key)).await;
    assert_eq!(s, 401);
    let secrets = vec![
        key,
        credential.to_string(),
        token,
        forged,
        HS_SECRET.to_string(),
        app.admin_key.clone(),
        app.write_key.clone(),
        app.read_key.clone(),
    ];
    app.stop().await;
    assert_no_secret_in_logs(&secrets);
    // Changes are logged with the caller's identity (never its secret).
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).to_string();
    assert!(
        text.lines()
            .any(|l| l.contains("POST") && l.contains("caller=") && l.contains("key:")),
        "no audit line with the caller"
    );
}

#[tokio::test]
async fn credentials_need_an_encryption_key() {
    // `serve` makes a key of its own unless told not to.
    let app = TestApp::spawn(|c| {
        quiet(c);
        c.encryption.auto_key = false;
    })
    .await;
    let (s, b) = app
        .admin(
            Method::PUT,
            "/api/v1/credentials/a.b",
            Some(&json!({"value": "v"})),
        )
        .await;
    assert_eq!(s, 503, "{b}");
    assert_eq!(assert_error_shape(&b), "ENCRYPTION_NOT_CONFIGURED");
    app.stop().await;
}

// ---------------------------------------------------------------------------
// Circuit breaker

#[tokio::test]
async fn an_open_circuit_shows_in_readiness_and_metrics() {
    let failing = axum::Router::new().route(
        "/api/v1/quote",
        axum::routing::get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, failing).await });
    let app = TestApp::spawn(move |c| {
        quiet(c);
        c.providers.finnhub.enabled = true;
        c.providers.finnhub.api_key = Some(Secret::new("k"));
        c.providers.finnhub.base_url = format!("http://{addr}/api/v1");
        c.providers.finnhub.max_retries = 0;
        c.providers.circuit_breaker.failure_threshold = 2;
        c.providers.circuit_breaker.cooldown_ms = 60_000;
    })
    .await;
    for sym in ["NVDA", "AMD", "INTC"] {
        let (s, b) = app
            .get_json(&format!(
                "/api/v1/prices/latest?symbol={sym}&provider=finnhub"
            ))
            .await;
        assert_eq!(s, 502, "{b}");
        assert_error_shape(&b);
    }
    let ready = eventually(Duration::from_secs(5), || async {
        let (_, r) = app.get_json("/health/ready").await;
        (r["providers"]["finnhub"]["circuit"] == "open").then_some(r)
    })
    .await;
    assert_eq!(ready["providers"]["simulated"]["circuit"], "closed");
    let m = app.get("/metrics").await.text().await.unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("marketd_provider_circuit_state{provider=\"finnhub\"} 1")),
        "circuit gauge missing"
    );
    assert!(
        m.contains("outcome=\"circuit_open\""),
        "refused calls are counted"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------
// TLS

#[tokio::test]
async fn https_is_served_with_a_configured_certificate() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();

    let mut cfg = common::base_config(&dir.path().join("data"));
    cfg.server.tls_cert = Some(cert_path.clone());
    cfg.server.tls_key = Some(key_path.clone());
    cfg.feeds.simulated.enabled = false;
    let app = marketd::Application::build(cfg).await.unwrap();
    assert!(app.is_tls());
    let port = app.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let client = localhost_client(port, Some(&cert.cert.pem()));
    let r = client
        .get(format!("https://localhost:{port}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age="),
        "HSTS over HTTPS"
    );
    let r = client
        .get(format!("https://localhost:{port}/api/v1/prices/poll"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405, "the API is behind TLS too");

    // An untrusting client fails the handshake; plain HTTP gets no answer.
    let strict = localhost_client(port, None);
    assert!(
        strict
            .get(format!("https://localhost:{port}/health/live"))
            .send()
            .await
            .is_err()
    );
    let r = strict
        .get(format!("http://127.0.0.1:{port}/health/live"))
        .send()
        .await;
    assert!(r.is_err() || !r.unwrap().status().is_success());

    let _ = tx.send(());
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();

    // Half a TLS configuration, or a bad file, fails at start.
    let mut cfg = common::base_config(&dir.path().join("data2"));
    cfg.server.tls_cert = Some(cert_path);
    assert!(marketd::Application::build(cfg.clone()).await.is_err());
    cfg.server.tls_key = Some(dir.path().join("missing.pem"));
    let err = marketd::Application::build(cfg).await.unwrap_err();
    assert!(format!("{err:#}").contains("server.tls_cert"), "{err:#}");
}

/// A client that reaches the server on `port` as `https://localhost`, trusting only the
/// PEM certificate `trust` (none: the system's roots, which do not hold a test's own CA).
fn localhost_client(port: u16, trust: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .timeout(Duration::from_secs(10));
    if let Some(pem) = trust {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}
