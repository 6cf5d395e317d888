//! The auth layer as other middleware sees it: after `authenticate`, a
//! handler (or a rate limiter layered inside it) finds the caller's
//! `Principal` in the request extensions, with a stable identity string.

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use marketd_api::auth::{AuthConfig, Authenticator, Principal, authenticate};
use marketd_engine::services::access::AccessService;
use marketd_model::{Role, Secret};
use marketd_store::{AnyStore, Store, StoreOptions};
use std::sync::Arc;
use tower::ServiceExt;

async fn who(p: Option<Extension<Principal>>) -> String {
    match p {
        Some(Extension(p)) => format!("{} {}", p.rate_limit_identity(), p.role),
        None => "anonymous".into(),
    }
}

async fn app(cfg: AuthConfig) -> (Router, Arc<AnyStore>) {
    let store = AnyStore::connect("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let store = Arc::new(store);
    let auth = Arc::new(Authenticator::new(&cfg, store.clone()).unwrap());
    let router = Router::new()
        .route("/api/v1/whoami", get(who))
        .route("/api/v1/act", post(who))
        .layer(axum::middleware::from_fn_with_state(auth, authenticate));
    (router, store)
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
    let (record, key) = AccessService::new(store.clone(), Arc::default())
        .create_key("svc", Role::Write, None)
        .await
        .unwrap();
    let (s, body) = call(
        &router,
        "GET",
        "/api/v1/whoami",
        &[("x-api-key", key.expose())],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, format!("key:{} write", record.id));
    let (s, body) = call(&router, "GET", "/api/v1/whoami", &[]).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "anonymous"));
    let (s, _) = call(&router, "POST", "/api/v1/act", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = call(
        &router,
        "POST",
        "/api/v1/act",
        &[("x-api-key", key.expose())],
    )
    .await;
    assert_eq!(
        (s, body),
        (StatusCode::OK, format!("key:{} write", record.id))
    );
    store.revoke_api_key(record.id, 1).await.unwrap();
    let (s, _) = call(
        &router,
        "GET",
        "/api/v1/whoami",
        &[("x-api-key", key.expose())],
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "a revoked key is refused, even on open reads"
    );
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
