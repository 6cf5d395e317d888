//! Test harness: builds an [`Application`] on port 0 with a temporary data
//! directory and talks to it over HTTP, as a client would.
#![allow(dead_code)]

use marketd::Application;
use marketd::config::Config;
use marketd_model::Role;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: String,
    /// Sends `X-API-Key` with a `write` key on every request, so the
    /// existing tests exercise the keyed path; see `anon` for none.
    pub client: reqwest::Client,
    /// A client without credentials.
    pub anon: reqwest::Client,
    /// Keys created for this test app, by role.
    pub read_key: String,
    pub write_key: String,
    pub admin_key: String,
    /// The admin key printed by a first start (None after a restart).
    pub bootstrap_key: Option<String>,
    /// The app's store (for tests that arrange rows directly).
    pub store: std::sync::Arc<marketd_store::AnyStore>,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn base_config(data_dir: &std::path::Path) -> Config {
    let mut cfg = Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    cfg.server.addr = "127.0.0.1:0".into();
    cfg
}

impl TestApp {
    /// Starts an app on a fresh temporary data directory.
    pub async fn spawn(tweak: impl FnOnce(&mut Config)) -> TestApp {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut app = Self::spawn_in(tmp.path().to_path_buf(), tweak).await;
        app._tmp = Some(tmp);
        app
    }

    /// Starts an app on `data_dir` (kept, for restart tests).
    pub async fn spawn_in(data_dir: PathBuf, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let mut cfg = base_config(&data_dir);
        tweak(&mut cfg);
        let app = Application::build(cfg).await.expect("app builds");
        let bootstrap_key = app.bootstrap_key().map(|k| k.expose().to_string());
        let store = app.backends().store.clone();
        let access = app.services().access.clone();
        let mut keys = Vec::new();
        for role in [Role::Read, Role::Write, Role::Admin] {
            let (_, key) = access
                .create_key(&format!("test-{role}"), role, None)
                .await
                .expect("test key");
            keys.push(key.expose().to_string());
        }
        let scheme = if app.is_tls() { "https" } else { "http" };
        let addr = format!("{scheme}://{}", app.local_addr());
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-api-key",
            reqwest::header::HeaderValue::from_str(&keys[1]).unwrap(),
        );
        TestApp {
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .default_headers(headers)
                .build()
                .unwrap(),
            anon: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            read_key: keys[0].clone(),
            write_key: keys[1].clone(),
            admin_key: keys[2].clone(),
            bootstrap_key,
            store,
            data_dir,
            stop: Some(tx),
            handle: Some(handle),
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.get(path).await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// A request with `key` in `X-API-Key` (none when `None`); returns the
    /// status, JSON body (Null when not JSON) and headers.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let mut req = self.anon.request(method, self.url(path));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (
            status,
            r.json().await.unwrap_or(serde_json::Value::Null),
            headers,
        )
    }

    /// Graceful shutdown; returns once the engine has drained.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(10), h)
                .await
                .expect("shutdown within 10 s")
                .expect("join")
                .expect("clean shutdown");
        }
        self._tmp.take()
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.data_dir.join("marketd.db").display())
    }
}

/// Asserts the error shape of DESIGN.md and returns the error code.
pub fn assert_error_shape(body: &serde_json::Value) -> String {
    for key in ["detail", "error_code", "timestamp", "request_id"] {
        assert!(
            body.get(key)
                .and_then(|v| v.as_str())
                .is_some_and(|s| !s.is_empty()),
            "missing {key} in {body}"
        );
    }
    body["error_code"].as_str().unwrap().to_string()
}

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
