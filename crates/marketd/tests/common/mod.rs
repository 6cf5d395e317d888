//! Test harness: builds an [`Application`] on port 0 with a temporary data
//! directory and talks to it over HTTP, as a client would.
#![allow(dead_code)]

pub mod logs;
pub mod venue_mock;

use marketd::Application;
use marketd::config::Config;
use marketd_model::Role;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

// Each test binary compiles this module and uses some of it.
#[allow(unused_imports)]
pub use marketd_testkit::{missing, poll_until, service, wait_until};

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
    /// The app's bus (for tests that read what was published).
    pub bus: marketd_bus::AnyBus,
    pub data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

/// `shared/fixtures/captures/<name>`, found above this crate (the
/// repository may sit a level deeper, in a worktree).
pub fn capture(name: &str) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .map(|a| a.join("shared/fixtures/captures").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("shared/fixtures/captures/{name} not found above {here:?}"))
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
        let bus = app.backends().bus.clone();
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
            bus,
            data_dir,
            stop: Some(tx),
            handle: Some(handle),
            _tmp: None,
        }
    }

    /// Creates a connector from `definition` and starts it; its id.
    pub async fn start_connector(&self, definition: &serde_json::Value) -> String {
        let (s, created) = self.post_json("/api/v1/connectors", definition).await;
        assert_eq!(s, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (s, started) = self
            .post_json(
                &format!("/api/v1/connectors/{id}/start"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(s, 200, "{started}");
        assert_eq!(started["desired"], "running");
        id
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

    /// A keyed GET with extra `(name, value)` headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await.expect("request")
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

/// The first field of the error shape of DESIGN.md that `body` lacks (or
/// has empty), if any.
pub fn error_shape_gap(body: &serde_json::Value) -> Option<&'static str> {
    ["detail", "error_code", "timestamp", "request_id"]
        .into_iter()
        .find(|key| {
            body.get(*key)
                .and_then(|v| v.as_str())
                .is_none_or(str::is_empty)
        })
}

/// Asserts the error shape of DESIGN.md and returns the error code.
pub fn assert_error_shape(body: &serde_json::Value) -> String {
    if let Some(key) = error_shape_gap(body) {
        panic!("missing {key} in {body}");
    }
    body["error_code"].as_str().unwrap().to_string()
}

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_until(timeout, "condition", f).await
}

/// The sum of the samples of counter `name` whose labels contain `label`,
/// in a Prometheus text page.
pub fn metric_sum(page: &str, name: &str, label: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The status of a GET of `url`.
pub async fn status_of(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

/// The strings of a JSON array (such as the `job_ids` of an accepted poll).
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    let items = v.as_array().unwrap_or_else(|| panic!("not an array: {v}"));
    items
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

/// The `/metrics` page of the server at `base`; `None` while it does not
/// answer.
pub async fn metrics(client: &reqwest::Client, base: &str) -> Option<String> {
    let r = client.get(format!("{base}/metrics")).send().await.ok()?;
    r.text().await.ok()
}

/// One page of `/api/v1/prices/history`, typed (prices stay exact decimals).
#[derive(serde::Deserialize)]
struct HistoryPage {
    ticks: Vec<marketd_model::Tick>,
    next_cursor: Option<String>,
}

impl TestApp {
    /// GET `path` as the write client, decoded from the body's text as `T`
    /// (so decimals keep every digit); panics on a status other than 200.
    pub async fn get_as<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let r = self.get(path).await;
        let status = r.status();
        let text = r.text().await.expect("body");
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Every stored tick that `/api/v1/prices/history?<query>` lists (e.g.
    /// `symbol=AAPL&source=replay`), in event-time order, following
    /// `next_cursor` to the last page.
    pub async fn all_ticks(&self, query: &str) -> Vec<marketd_model::Tick> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/prices/history?{query}&limit=10000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page: HistoryPage = self.get_as(&path).await;
            all.extend(page.ticks);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return all,
            }
        }
    }

    /// How many stored ticks `/api/v1/prices/history?<query>` lists.
    pub async fn count_stored(&self, query: &str) -> usize {
        self.all_ticks(query).await.len()
    }

    /// GET `path` must fail with `status` and `code` in the error shape of
    /// DESIGN.md; returns the body.
    pub async fn get_error(&self, path: &str, status: u16, code: &str) -> serde_json::Value {
        let (s, b) = self.get_json(path).await;
        assert_eq!(
            (s, assert_error_shape(&b).as_str()),
            (status, code),
            "{path}: {b}"
        );
        b
    }

    /// DELETE `path` as the write client; the status.
    pub async fn delete(&self, path: &str) -> u16 {
        let r = self.client.delete(self.url(path)).send().await;
        r.expect("request").status().as_u16()
    }

    /// A request with the admin key: status and JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let (s, b, _) = self.call(method, path, Some(&self.admin_key), body).await;
        (s, b)
    }
}

pub mod process;
