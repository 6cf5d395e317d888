//! One supervisor for long-running units of work: polling jobs, connectors
//! and persistent-homology jobs.
//!
//! A *kind* of unit is a [`UnitKind`]: where its units are stored, the bus
//! topic on which changes are announced (keyed by unit id), how a command
//! reads and how one unit runs. Each kind is one file beside this one
//! (`polling.rs`, `connectors/`); the [`Supervisor`] does the rest for
//! every kind:
//!
//! - Ownership follows the bus: a supervisor runs exactly the units whose id
//!   falls in the partitions of the kind's topic assigned to its consumer.
//!   With Kafka, the workers of one consumer group split the partitions, so
//!   each unit runs on one worker at a time, and when a worker dies or joins
//!   the next rebalance moves its units (the new owner reloads them from the
//!   store). The memory bus has one partition: every unit runs in the one
//!   process. The running set is reconciled with the store on every
//!   rebalance and every [`RECONCILE_EVERY`], which repairs anything a lost
//!   command or a failed store read left behind.
//! - Units start and stop at run time as commands arrive. A unit whose
//!   definition changed (a command or the store carries a newer
//!   [`UnitKind::version`] than the running one) is restarted with it: the
//!   old run ends first, then the new one starts.
//! - A unit whose run fails (returns an error or panics) is logged, counted
//!   (`marketd_supervisor_unit_failures_total{kind}`) and restarted after a
//!   capped exponential backoff ([`RestartPolicy`]), reset once a run has
//!   stayed up long enough. Each unit's [`UnitState`] is readable.

pub mod connectors;
pub mod polling;
pub mod tda_jobs;

use marketd_bus::{AnyBus, AnyConsumer, Assignment, Bus, Consumer};
use marketd_model::{Envelope, Topic};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// How often a supervisor re-reads the active units it owns from the store.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(15);

/// What a unit's run ends with: an error is a failure, restarted later.
pub type UnitResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// What a command on a kind's topic asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Command<U> {
    /// Run this unit (if this process owns it); a running unit restarts
    /// only when this one is a newer [`UnitKind::version`].
    Start(U),
    /// Stop the unit with this id, wherever it runs.
    Stop(Uuid),
}

/// A kind of long-running unit.
pub trait UnitKind: Send + Sync + 'static {
    /// One unit, as stored and as carried by a command.
    type Unit: Clone + Send + Sync + 'static;
    /// The kind's name: logs and the `kind` label of the supervisor metrics.
    const NAME: &'static str;
    /// The topic its commands arrive on, keyed by unit id.
    const TOPIC: Topic;
    /// The consumer group of its supervisors.
    const GROUP: &'static str;
    /// Gauge of the units this process runs.
    const RUNNING_GAUGE: &'static str;

    fn id(unit: &Self::Unit) -> Uuid;

    /// The version of a unit's definition, growing with each change (e.g.
    /// its `updated_at`). A unit seen again (a command, the store) with a
    /// newer version than the running one is restarted with it; an equal or
    /// older one (a redelivered or stale command) changes nothing. The
    /// default, one version forever, never restarts a running unit.
    fn version(unit: &Self::Unit) -> i64 {
        let _ = unit;
        0
    }

    /// Every unit that should be running (somewhere) now.
    fn load(&self) -> impl Future<Output = marketd_store::Result<Vec<Self::Unit>>> + Send;

    /// The command `envelope` carries; `None` when it is not one of this kind.
    fn command(&self, envelope: &Envelope) -> Option<Command<Self::Unit>>;

    /// Runs `unit` until `cancel` fires. Returning early with an error (or
    /// panicking) is a failure; returning `Ok` early means the unit is done.
    fn run(
        self: Arc<Self>,
        unit: Self::Unit,
        cancel: CancellationToken,
    ) -> impl Future<Output = UnitResult> + Send;
}

/// Where a unit is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitState {
    /// Taken on; its run is about to start.
    Starting,
    Running,
    /// Its last run failed; it starts again after a delay.
    BackingOff,
    /// Stopped or done.
    Stopped,
}

/// Restarts after failures: `initial`, doubled after each failure up to
/// `max`, and back to `initial` after a run that lasted `healthy_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

/// A unit this process owns.
struct Owned {
    /// The [`UnitKind::version`] it runs.
    version: i64,
    cancel: CancellationToken,
    handle: JoinHandle<()>,
    state: watch::Receiver<UnitState>,
}

/// Runs the units of one kind that this process owns.
pub struct Supervisor<K: UnitKind> {
    kind: Arc<K>,
    bus: AnyBus,
    policy: RestartPolicy,
    units: Mutex<HashMap<Uuid, Owned>>,
    cancel: CancellationToken,
}

impl<K: UnitKind> std::fmt::Debug for Supervisor<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("kind", &K::NAME)
            .field("units", &self.running())
            .finish_non_exhaustive()
    }
}

impl<K: UnitKind> Supervisor<K> {
    /// A supervisor that stops every unit when `cancel` fires. Drive it with
    /// [`Supervisor::run`], or use [`Supervisor::start`].
    pub fn new(
        kind: K,
        bus: AnyBus,
        cancel: CancellationToken,
        policy: RestartPolicy,
    ) -> Arc<Self> {
        Arc::new(Supervisor {
            kind: Arc::new(kind),
            bus,
            policy,
            units: Mutex::new(HashMap::new()),
            cancel,
        })
    }

    /// Subscribes to the kind's topic and spawns the supervisor on `tasks`.
    pub async fn start(
        kind: K,
        bus: &AnyBus,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> marketd_bus::Result<Arc<Self>> {
        let supervisor = Self::new(kind, bus.clone(), cancel, RestartPolicy::default());
        let commands = bus.subscribe(K::TOPIC, K::GROUP).await?;
        tasks.spawn(supervisor.clone().run(commands));
        Ok(supervisor)
    }

    /// The kind this supervisor runs.
    pub fn kind(&self) -> &Arc<K> {
        &self.kind
    }

    fn units(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Owned>> {
        self.units.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Number of units this process owns (whatever their state).
    pub fn running(&self) -> usize {
        self.units().len()
    }

    /// Ids of the units this process owns.
    pub fn running_ids(&self) -> Vec<Uuid> {
        self.units().keys().copied().collect()
    }

    /// The state of every unit this process owns.
    pub fn states(&self) -> Vec<(Uuid, UnitState)> {
        self.units()
            .iter()
            .map(|(id, u)| (*id, *u.state.borrow()))
            .collect()
    }

    /// The state of one unit; `None` when this process does not own it.
    pub fn state(&self, id: Uuid) -> Option<UnitState> {
        self.units().get(&id).map(|u| *u.state.borrow())
    }

    /// Follows the state of one unit this process owns.
    pub fn watch(&self, id: Uuid) -> Option<watch::Receiver<UnitState>> {
        self.units().get(&id).map(|u| u.state.clone())
    }

    fn owns(&self, assignment: &Assignment, id: Uuid) -> bool {
        assignment.contains(self.bus.partition_for(K::TOPIC, &id.to_string()))
    }

    fn count(&self) {
        metrics::gauge!(K::RUNNING_GAUGE).set(self.running() as f64);
    }

    /// Makes the owned set equal to the stored units this process owns under
    /// `assignment`.
    async fn reconcile(&self, assignment: &Assignment) {
        let units = match self.kind.load().await {
            Ok(units) => units,
            Err(e) => {
                // Keep what runs; the next reconcile retries.
                tracing::error!(kind = K::NAME, error = %e, "could not load units");
                return;
            }
        };
        let owned: HashMap<Uuid, K::Unit> = units
            .into_iter()
            .map(|u| (K::id(&u), u))
            .filter(|(id, _)| self.owns(assignment, *id))
            .collect();
        let stale: Vec<Uuid> = self
            .running_ids()
            .into_iter()
            .filter(|id| !owned.contains_key(id))
            .collect();
        let (before, stopped) = (self.running(), stale.len());
        for id in stale {
            self.stop_unit(id);
        }
        for unit in owned.into_values() {
            self.start_unit(unit);
        }
        let now = self.running();
        if stopped > 0 || now != before - stopped {
            tracing::info!(
                kind = K::NAME,
                partitions = ?assignment.partitions,
                running = now,
                stopped,
                "units reconciled"
            );
        }
        self.count();
    }

    /// Runs the units this process owns, follows the command topic and the
    /// consumer's partition assignment until the topic closes or the
    /// supervisor is cancelled; then stops every unit and waits for them.
    pub async fn run(self: Arc<Self>, mut commands: AnyConsumer) {
        let mut assignment_rx = commands.assignment();
        let mut assignment = assignment_rx.borrow_and_update().clone();
        let mut follow_assignment = true;
        self.reconcile(&assignment).await;
        let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
        reconcile.set_missed_tick_behavior(MissedTickBehavior::Delay);
        reconcile.tick().await;
        loop {
            let next = tokio::select! {
                _ = self.cancel.cancelled() => break,
                changed = assignment_rx.changed(), if follow_assignment => {
                    match changed {
                        Ok(()) => {
                            assignment = assignment_rx.borrow_and_update().clone();
                            self.reconcile(&assignment).await;
                        }
                        Err(_) => follow_assignment = false,
                    }
                    continue;
                }
                _ = reconcile.tick() => {
                    self.reconcile(&assignment).await;
                    continue;
                }
                d = commands.recv() => d,
            };
            match next {
                Ok(Some(d)) => {
                    match self.kind.command(&d.envelope) {
                        Some(Command::Start(unit)) if self.owns(&assignment, K::id(&unit)) => {
                            self.start_unit(unit)
                        }
                        Some(Command::Start(unit)) => self.stop_unit(K::id(&unit)),
                        Some(Command::Stop(id)) => self.stop_unit(id),
                        None => {}
                    }
                    self.count();
                    let _ = commands.commit(std::slice::from_ref(&d)).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(kind = K::NAME, error = %e, "command stream failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        self.stop_all().await;
    }

    /// Runs `unit` unless it already runs at this version or a newer one;
    /// an older running version is stopped and replaced.
    fn start_unit(&self, unit: K::Unit) {
        let mut units = self.units();
        let id = K::id(&unit);
        let version = K::version(&unit);
        let previous = match units.remove(&id) {
            Some(running) if running.version >= version => {
                units.insert(id, running);
                return;
            }
            Some(running) => {
                tracing::info!(
                    kind = K::NAME,
                    unit = %id,
                    from = running.version,
                    to = version,
                    "unit changed; restarting it"
                );
                running.cancel.cancel();
                Some(running.handle)
            }
            None => None,
        };
        let cancel = self.cancel.child_token();
        let (tx, state) = watch::channel(UnitState::Starting);
        let handle = tokio::spawn(supervise(
            self.kind.clone(),
            self.policy,
            unit,
            cancel.clone(),
            tx,
            previous,
        ));
        units.insert(
            id,
            Owned {
                version,
                cancel,
                handle,
                state,
            },
        );
    }

    fn stop_unit(&self, id: Uuid) {
        if let Some(unit) = self.units().remove(&id) {
            unit.cancel.cancel();
        }
    }

    async fn stop_all(&self) {
        let units: Vec<Owned> = self.units().drain().map(|(_, u)| u).collect();
        for unit in units {
            unit.cancel.cancel();
            let _ = unit.handle.await;
        }
        self.count();
    }
}

/// Runs one unit until `cancel`, restarting it after failures. When it
/// replaces a `previous` run of the same unit (an older version), that run
/// ends first, so the two never run (or report) at once.
async fn supervise<K: UnitKind>(
    kind: Arc<K>,
    policy: RestartPolicy,
    unit: K::Unit,
    cancel: CancellationToken,
    state: watch::Sender<UnitState>,
    previous: Option<JoinHandle<()>>,
) {
    if let Some(previous) = previous {
        let _ = previous.await;
        if cancel.is_cancelled() {
            state.send_replace(UnitState::Stopped);
            return;
        }
    }
    let id = K::id(&unit);
    let mut delay = policy.initial;
    loop {
        state.send_replace(UnitState::Running);
        let started = Instant::now();
        // A task of its own, so that a panic is a failure like any other.
        let outcome = tokio::spawn(kind.clone().run(unit.clone(), cancel.clone())).await;
        if cancel.is_cancelled() {
            break;
        }
        let error = match outcome {
            Ok(Ok(())) => {
                tracing::debug!(kind = K::NAME, unit = %id, "unit done");
                break;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) if e.is_panic() => panic_message(e.into_panic()),
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= policy.healthy_after {
            delay = policy.initial;
        }
        metrics::counter!("marketd_supervisor_unit_failures_total", "kind" => K::NAME).increment(1);
        tracing::error!(
            kind = K::NAME,
            unit = %id,
            error = %error,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "unit failed; restarting after a delay"
        );
        state.send_replace(UnitState::BackingOff);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(policy.max);
        metrics::counter!("marketd_supervisor_unit_restarts_total", "kind" => K::NAME).increment(1);
        state.send_replace(UnitState::Starting);
    }
    state.send_replace(UnitState::Stopped);
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    format!("panicked: {}", text.as_deref().unwrap_or("(no message)"))
}

#[cfg(test)]
mod tests;
