//! Which API keys may no longer hold a realtime connection: one reader per
//! instance lists the keys every [`EVERY`] and publishes the ids that are
//! revoked or expired; each session holding such a key closes (code 4001).
//! One query per instance, whatever the number of connections.

use marketd_engine::services::access::AccessService;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the keys are read: a revoked key's connections close within
/// about this long.
pub const EVERY: Duration = Duration::from_secs(2);

/// The ids of keys that are no longer active.
pub type Revoked = watch::Receiver<Arc<HashSet<String>>>;

/// Nothing is ever revoked (a process that serves no realtime API).
pub fn none() -> Revoked {
    watch::channel(Arc::new(HashSet::new())).1
}

/// Starts the reader; it ends with `cancel`.
pub fn watch(access: AccessService, cancel: CancellationToken) -> Revoked {
    let (tx, rx) = watch::channel(Arc::new(HashSet::new()));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = every.tick() => {}
            }
            match access.list_keys().await {
                Ok(keys) => {
                    let now = marketd_model::time::now_ns();
                    let gone: HashSet<String> = keys
                        .iter()
                        .filter(|k| !k.is_active_at(now))
                        .map(|k| k.id.to_string())
                        .collect();
                    tx.send_if_modified(|cur| {
                        let changed = **cur != gone;
                        if changed {
                            *cur = Arc::new(gone);
                        }
                        changed
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading API keys for realtime revocation failed")
                }
            }
        }
    });
    rx
}
