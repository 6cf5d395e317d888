//! What marketd's test suites and benchmarks share, so that every suite
//! treats a missing service, a database of its own and a wait the same way:
//!
//! - [`service`]: the URL of an external service (PostgreSQL, Kafka, Redis)
//!   from its variable; a suite without it is skipped with a notice, or
//!   fails under `MARKETD_REQUIRE_SERVICES=1` (what `scripts/test` and CI
//!   set, since they provision every service);
//! - [`FreshDatabase`]: an empty PostgreSQL database per test or run;
//! - [`bench_runtime`]: the runtime benchmarks measure on;
//! - [`wait_until`] / [`poll_until`]: wait on a condition with a deadline,
//!   never a sleep standing in for the condition.
//!
//! Dev-only: no production crate depends on it.

use sqlx::Connection;
use std::future::Future;
use std::time::Duration;

/// The value of the service variable `var` (e.g. `MARKETD_TEST_REDIS_URL`),
/// or `None` after saying that `suite` is skipped for want of it. Under
/// `MARKETD_REQUIRE_SERVICES=1` a missing service fails the test instead.
pub fn service(var: &str, suite: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
        _ => {
            missing(&format!("{var} is not set"), suite);
            None
        }
    }
}

/// Says that `suite` is skipped because `what` is missing, or fails under
/// `MARKETD_REQUIRE_SERVICES=1` (scripts/test provides every service).
pub fn missing(what: &str, suite: &str) {
    if std::env::var("MARKETD_REQUIRE_SERVICES").as_deref() == Ok("1") {
        panic!("{suite}: {what} and MARKETD_REQUIRE_SERVICES=1 (run scripts/test)");
    }
    eprintln!("skipping {suite}: {what}");
}

/// Polls `f` every 50 ms until it returns Some, or gives up with `None`
/// once `timeout` has passed (for a caller that says more on failure).
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `f` to return Some, polling it every 50 ms, and fails naming
/// `what` once `timeout` has passed. The timeout is a deadline on an event
/// the code promises, never a measurement: keep it generous (the machine
/// may be loaded), and wait on this instead of sleeping.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll_until(timeout, f).await {
        Some(v) => v,
        None => panic!("{what}: not within {timeout:?}"),
    }
}

/// An empty database of its own on a PostgreSQL server, for one test or
/// one benchmark run; [`FreshDatabase::drop`] removes it.
#[derive(Debug, Clone)]
pub struct FreshDatabase {
    server: String,
    /// The database's name (`{prefix}_{uuid}`).
    pub name: String,
    /// The server's URL naming the new database (query kept).
    pub url: String,
}

impl FreshDatabase {
    /// Creates `{prefix}_{uuid}` through the server at `server` (any
    /// database URL of it; its credentials must allow `CREATE DATABASE`).
    pub async fn create(server: &str, prefix: &str) -> FreshDatabase {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(server)
            .await
            .unwrap_or_else(|e| panic!("connect to the PostgreSQL server {server}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        admin.close().await.ok();
        FreshDatabase {
            server: server.to_string(),
            url: with_database(server, &name),
            name,
        }
    }

    /// Drops the database, closing whatever is still connected to it.
    pub async fn drop(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.server).await {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let _ = sqlx::query(&sql).execute(&mut admin).await;
            admin.close().await.ok();
        }
    }
}

/// `url` naming database `db` instead of its own (query kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("URL with a scheme");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// The runtime benchmarks measure on: multi-threaded with two workers
/// whatever the machine has, so that figures from different machines
/// compare.
pub fn bench_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_swaps_the_path_and_keeps_the_query() {
        assert_eq!(
            with_database(
                "postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable",
                "x_1"
            ),
            "postgres://u:p@127.0.0.1:5432/x_1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h:1", "d"), "postgres://h:1/d");
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_gives_up_at_the_deadline_and_returns_the_first_value() {
        let mut calls = 0;
        let none: Option<()> = poll_until(Duration::from_secs(1), || {
            calls += 1;
            async { None }
        })
        .await;
        assert_eq!(none, None);
        // 50 ms apart over one second: the first call, then 20 more.
        assert_eq!(calls, 21);
        let mut n = 0;
        let got = poll_until(Duration::from_secs(1), || {
            n += 1;
            let v = (n == 3).then_some(n);
            async move { v }
        })
        .await;
        assert_eq!(got, Some(3));
    }
}
