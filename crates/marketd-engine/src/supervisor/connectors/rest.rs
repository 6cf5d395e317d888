//! A REST connector's run: one request (with its retries) per slot of a
//! fixed grid, the answer mapped to ticks, the ticks published on `ticks`,
//! the answer and what came of it stored in `connector_data`.

use super::Shared;
use super::status::StatusReporter;
use crate::feeds::TickPublisher;
use crate::services::connectors::RestDefinition;
use marketd_model::time::now_ns;
use marketd_model::{ConnectorState, Tick};
use marketd_sources::connectors::{ExtractContext, fetch_with_retry};
use marketd_store::NewConnectorRecord;
use marketd_store::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Polls until cancelled. Upstream failures are retried by the request's
/// policy and then counted in the status; the grid goes on.
pub(super) async fn run(
    shared: &Shared,
    id: Uuid,
    source: Arc<str>,
    def: RestDefinition,
    status: &mut StatusReporter,
    cancel: CancellationToken,
) -> super::UnitResult {
    let mapping = def.mapping.compile()?;
    let period = Duration::from_millis(def.request.interval_ms.max(1));
    let mut grid = tokio::time::interval_at(Instant::now(), period);
    grid.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut publisher = TickPublisher::new(shared.bus.clone());
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = grid.tick() => {}
        }
        let fetched = tokio::select! {
            _ = cancel.cancelled() => break,
            r = fetch_with_retry(&shared.http, &def.request, &shared.limiters, &shared.retry, now_ns) => r,
        };
        let received = now_ns();
        let outcome = match fetched {
            Ok(f) if f.outcome.is_success() => f.outcome,
            Ok(f) => {
                let error = format!("upstream answered {}", f.outcome.status);
                record_failure(shared, id, status, &error, Some(&f.outcome.body), received).await;
                continue;
            }
            Err(e) => {
                record_failure(shared, id, status, &e.to_string(), None, received).await;
                continue;
            }
        };
        let ctx = ExtractContext {
            source: source.clone(),
            symbol: def.symbol.clone(),
            received_ns: received,
        };
        let raw = String::from_utf8_lossy(&outcome.body).into_owned();
        let (ticks, errors) = match serde_json::from_slice::<serde_json::Value>(&outcome.body) {
            Ok(body) => mapping.extract(&body, &ctx),
            Err(e) => {
                let error = format!("the answer is not JSON: {e}");
                record_failure(shared, id, status, &error, Some(&outcome.body), received).await;
                continue;
            }
        };
        let error = (!errors.is_empty()).then(|| {
            let first: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
            format!("{} record(s) rejected: {}", errors.len(), first.join("; "))
        });
        if let Some(e) = &error {
            tracing::warn!(connector = %id, error = %e, "records rejected");
            metrics::counter!("marketd_connector_rejected_total", "kind" => "rest")
                .increment(errors.len() as u64);
        }
        store_record(shared, id, received, &ticks, raw, error.clone()).await;
        let n = ticks.len() as u64;
        publisher.publish(ticks).await;
        status.set_state(ConnectorState::Running).await;
        status
            .update(|s| {
                s.messages_received += 1;
                s.ticks += n;
                s.errors += errors.len() as u64;
                s.last_message_at = Some(received);
                if let Some(e) = error {
                    s.last_error = Some(e);
                }
            })
            .await;
    }
    publisher.flush().await;
    Ok(())
}

async fn store_record(
    shared: &Shared,
    id: Uuid,
    received_at: i64,
    ticks: &[Tick],
    raw: String,
    error: Option<String>,
) {
    let data = serde_json::to_string(ticks).unwrap_or_else(|_| "null".into());
    let record = NewConnectorRecord {
        connector_id: id,
        received_at,
        data,
        raw,
        error,
    };
    if let Err(e) = shared.store.insert_connector_records(&[record]).await {
        tracing::warn!(connector = %id, error = %e, "could not store the connector's record");
    }
}

/// A poll that produced nothing: kept (with the answer, if any) and
/// counted; the connector shows `reconnecting` until a poll succeeds.
async fn record_failure(
    shared: &Shared,
    id: Uuid,
    status: &mut StatusReporter,
    error: &str,
    body: Option<&[u8]>,
    received: i64,
) {
    tracing::warn!(connector = %id, error = %error, "poll failed");
    metrics::counter!("marketd_connector_poll_failures_total").increment(1);
    let raw = body
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    store_record(shared, id, received, &[], raw, Some(error.to_string())).await;
    let was_running = status.status().state == ConnectorState::Running;
    status.set_state(ConnectorState::Reconnecting).await;
    status
        .update(|s| {
            s.errors += 1;
            if was_running {
                s.reconnects += 1;
            }
            s.last_error = Some(error.to_string());
        })
        .await;
}
