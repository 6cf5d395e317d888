//! The auth layer as other middleware sees it: after `authenticate`, a
//! handler (or a rate limiter layered inside it) finds the caller's
//! `Principal` in the request extensions, with a stable identity string; what
//! a route needs is declared beside it in a `Routes` table, and whatever the
//! table does not declare fails closed.

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::http::{Request, StatusCode};
use marketd_api::auth::{Access, AuthConfig, Authenticator, Principal, authenticate};
use marketd_api::route_table::{Routes, declare};
use marketd_engine::services::access::AccessService;
use marketd_model::{ApiKey, Role, Secret};
use marketd_store::prelude::*;
use marketd_store::{AnyStore, StoreOptions};
use std::sync::Arc;
use tower::ServiceExt;

async fn who(p: Option<Extension<Principal>>) -> String {
    match p {
        Some(Extension(p)) => format!("{} {}", p.rate_limit_identity(), p.role),
        None => "anonymous".into(),
    }
}

/// A router with declared routes, and `/api/v1/plain` added past the table
/// (undeclared: the policy's fail-closed defaults apply to it).
async fn app(cfg: AuthConfig) -> (Router, Arc<AnyStore>) {
    let (router, store, _) = app_with_auth(cfg).await;
    (router, store)
}

/// [`app`], and its authenticator.
async fn app_with_auth(cfg: AuthConfig) -> (Router, Arc<AnyStore>, Arc<Authenticator>) {
    let store = AnyStore::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let auth = Arc::new(Authenticator::new(&cfg, store.clone()).unwrap());
    let (routes, table) = Routes::new()
        .get("/api/v1/whoami", Access::Read, who)
        .post("/api/v1/act", Access::Write, who)
        .get("/api/v1/keys", Access::Admin, who)
        .get("/status", Access::Open, who)
        .into_parts();
    let router = routes
        .route("/api/v1/plain", axum::routing::any(who))
        .layer(axum::middleware::from_fn_with_state(
            auth.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(table, declare));
    (router, store, auth)
}

/// A fresh key with the `write` role, named `name`.
async fn write_key(store: &Arc<AnyStore>, name: &str) -> (ApiKey, Secret) {
    AccessService::new(store.clone(), Arc::default())
        .create_key(name, Role::Write, None)
        .await
        .unwrap()
}

async fn call(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn handlers_see_the_principal_of_a_key() {
    let (router, store) = app(AuthConfig::default()).await;
    let (record, key) = write_key(&store, "svc").await;
    let keyed: &[(&str, &str)] = &[("x-api-key", key.expose())];
    let me = format!("key:{} write", record.id);
    let me = me.as_str();
    for (method, path, headers, status, body) in [
        ("GET", "/api/v1/whoami", keyed, StatusCode::OK, me),
        ("GET", "/api/v1/whoami", &[], StatusCode::OK, "anonymous"),
        ("POST", "/api/v1/act", keyed, StatusCode::OK, me),
        ("GET", "/api/v1/plain", keyed, StatusCode::OK, me),
    ] {
        let (s, b) = call(&router, method, path, headers).await;
        assert_eq!((s, b.as_str()), (status, body), "{method} {path}");
    }
    let (s, _) = call(&router, "POST", "/api/v1/act", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// A router with `key_cache_ms`, a write key it has just accepted (so a
/// cache holds it), and the key then revoked in the store behind the
/// server's back (another instance, the `keys` command).
async fn accepted_then_revoked(key_cache_ms: u64) -> (Router, Secret, Arc<Authenticator>) {
    let cfg = AuthConfig {
        key_cache_ms,
        ..AuthConfig::default()
    };
    let (router, store, auth) = app_with_auth(cfg).await;
    let (record, key) = write_key(&store, "svc").await;
    let keyed: &[(&str, &str)] = &[("x-api-key", key.expose())];
    let (s, _) = call(&router, "GET", "/api/v1/whoami", keyed).await;
    assert_eq!(s, StatusCode::OK);
    store.revoke_api_key(record.id, 1).await.unwrap();
    (router, key, auth)
}

/// With `key_cache_ms = 0` a key revoked in the store is refused on the
/// next request; with a cache, once the cache has forgotten it (at once
/// after `forget_keys`, which the revoke route calls; else within the TTL).
#[tokio::test]
async fn a_revoked_key_is_refused_at_once_or_within_the_cache_ttl() {
    let whoami = |router: Router, key: Secret| async move {
        call(
            &router,
            "GET",
            "/api/v1/whoami",
            &[("x-api-key", key.expose())],
        )
        .await
        .0
    };
    let (router, key, _) = accepted_then_revoked(0).await;
    let s = whoami(router, key).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "refused at once, even on open reads"
    );

    let (router, key, auth) = accepted_then_revoked(1000).await;
    auth.forget_keys();
    assert_eq!(whoami(router, key).await, StatusCode::UNAUTHORIZED);

    // Cached for 300 ms: refused once the entry is gone, well before the
    // deadline.
    let (router, key, _) = accepted_then_revoked(300).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let s = whoami(router.clone(), key.clone()).await;
        if s == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(
            tokio::time::Instant::now() < deadline,
            "a key revoked in the store is still accepted after 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A key cache longer than a minute is refused at start.
#[tokio::test]
async fn a_key_cache_over_a_minute_is_refused() {
    let store = Arc::new(
        AnyStore::connect("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap(),
    );
    let cfg = AuthConfig {
        key_cache_ms: 60_001,
        ..AuthConfig::default()
    };
    let err = Authenticator::new(&cfg, store).unwrap_err().to_string();
    assert!(err.contains("auth.key_cache_ms"), "{err}");
}

/// Anonymous callers against declared and undeclared routes: the
/// declaration decides, and what it does not cover needs `write` for any
/// unsafe method.
#[tokio::test]
async fn access_follows_the_declarations_and_fails_closed() {
    let (router, store) = app(AuthConfig::default()).await;
    let (_, write_key) = write_key(&store, "w").await;
    let unauthorized = StatusCode::UNAUTHORIZED;
    for (method, path, status) in [
        ("GET", "/status", StatusCode::OK),
        ("GET", "/api/v1/plain", StatusCode::OK),
        ("GET", "/api/v1/keys", unauthorized),
        ("DELETE", "/api/v1/keys", unauthorized),
        ("GET", "/api/v1/keysx", StatusCode::NOT_FOUND),
        ("GET", "/api/v1/act", StatusCode::METHOD_NOT_ALLOWED),
        ("PATCH", "/api/v1/whoami", unauthorized),
        ("POST", "/status", unauthorized),
        ("POST", "/api/v1/plain", unauthorized),
        ("POST", "//api/v1/act", unauthorized),
        ("PUT", "/nowhere", unauthorized),
    ] {
        let (s, _) = call(&router, method, path, &[]).await;
        assert_eq!(s, status, "{method} {path}");
    }
    let (s, _) = call(
        &router,
        "GET",
        "/api/v1/keys",
        &[("x-api-key", write_key.expose())],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "write is not admin");
}

#[tokio::test]
async fn handlers_see_the_principal_of_a_token() {
    let secret = "0123456789abcdef0123456789abcdef";
    let mut cfg = AuthConfig::default();
    cfg.jwt.enabled = true;
    cfg.jwt.secret = Some(Secret::new(secret));
    cfg.jwt.issuer = "idp".into();
    let (router, _) = app(cfg).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 60;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "bob", "iss": "idp", "aud": "marketd", "exp": exp, "role": "admin"}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    let auth = format!("Bearer {token}");
    let (s, body) = call(&router, "POST", "/api/v1/act", &[("authorization", &auth)]).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "jwt:idp:bob admin"));
}
