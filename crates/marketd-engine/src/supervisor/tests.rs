//! The supervisor with a unit kind of its own: restarts with backoff, state
//! reporting, commands and shutdown. Time is tokio's paused clock, so the
//! backoff delays are exact and nothing waits in real time.

use super::*;
use marketd_bus::BusOptions;
use marketd_model::{Event, PollingJobCommand};
use std::sync::atomic::{AtomicU32, Ordering};

/// Units whose first runs fail (an error, then a panic) and then run until
/// cancelled; they are announced as polling-job deletes (only the id is read).
struct Flaky {
    ids: Vec<Uuid>,
    failures: u32,
    runs: AtomicU32,
    starts: Mutex<Vec<Instant>>,
}

impl UnitKind for Flaky {
    type Unit = Uuid;
    const NAME: &'static str = "flaky";
    const TOPIC: Topic = Topic::PollingJobs;
    const GROUP: &'static str = "flaky-test";
    const RUNNING_GAUGE: &'static str = "marketd_test_flaky_running";

    fn id(unit: &Uuid) -> Uuid {
        *unit
    }

    async fn load(&self) -> marketd_store::Result<Vec<Uuid>> {
        Ok(self.ids.clone())
    }

    fn command(&self, envelope: &Envelope) -> Option<Command<Uuid>> {
        match &envelope.event {
            Event::PollingJob(PollingJobCommand::Delete { id }) => Some(Command::Stop(*id)),
            _ => None,
        }
    }

    async fn run(self: Arc<Self>, _: Uuid, cancel: CancellationToken) -> UnitResult {
        self.starts.lock().unwrap().push(Instant::now());
        match self.runs.fetch_add(1, Ordering::SeqCst) {
            n if n + 1 == self.failures => panic!("unit panicked on purpose"),
            n if n < self.failures => Err("fetch failed on purpose".into()),
            _ => {
                cancel.cancelled().await;
                Ok(())
            }
        }
    }
}

/// Polls `cond` until it holds; panics after a minute of (paused) time.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_state(sup: &Supervisor<Flaky>, id: Uuid, want: UnitState) {
    eventually("the unit is taken on", || sup.watch(id).is_some()).await;
    let mut rx = sup.watch(id).unwrap();
    tokio::time::timeout(Duration::from_secs(600), rx.wait_for(|s| *s == want))
        .await
        .expect("state reached in time")
        .expect("unit still owned");
}

#[tokio::test(start_paused = true)]
async fn failed_units_restart_with_capped_backoff_and_report_state() {
    let bus = AnyBus::connect("memory://", BusOptions::default())
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let kind = Flaky {
        ids: vec![id],
        failures: 4,
        runs: AtomicU32::new(0),
        starts: Mutex::new(Vec::new()),
    };
    let policy = RestartPolicy {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(4),
        healthy_after: Duration::from_secs(60),
    };
    let cancel = CancellationToken::new();
    let sup = Supervisor::new(kind, bus.clone(), cancel.clone(), policy);
    let commands = bus
        .subscribe(Topic::PollingJobs, Flaky::GROUP)
        .await
        .unwrap();
    let task = tokio::spawn(sup.clone().run(commands));

    // Three errors and a panic, then a run that stays up.
    wait_for_state(&sup, id, UnitState::Running).await;
    eventually("restarted after every failure", || {
        sup.kind().runs.load(Ordering::SeqCst) >= 5
    })
    .await;
    assert_eq!(sup.state(id), Some(UnitState::Running));
    assert_eq!(sup.running_ids(), vec![id]);
    assert_eq!(sup.states(), vec![(id, UnitState::Running)]);
    let starts = sup.kind().starts.lock().unwrap().clone();
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        [1, 2, 4, 4].map(Duration::from_secs),
        "doubling backoff, capped at max"
    );

    // A stop command stops it; the unit is no longer owned.
    let mut state = sup.watch(id).unwrap();
    bus.publish(Event::PollingJob(PollingJobCommand::Delete { id }))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|s| *s == UnitState::Stopped),
    )
    .await
    .expect("stopped by the command")
    .unwrap();
    assert_eq!(sup.running(), 0);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the supervisor ends when cancelled")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_every_unit() {
    let bus = AnyBus::connect("memory://", BusOptions::default())
        .await
        .unwrap();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let kind = Flaky {
        ids: ids.clone(),
        failures: 0,
        runs: AtomicU32::new(0),
        starts: Mutex::new(Vec::new()),
    };
    let cancel = CancellationToken::new();
    let tasks = TaskTracker::new();
    let sup = Supervisor::start(kind, &bus, cancel.clone(), &tasks)
        .await
        .unwrap();
    for &id in &ids {
        wait_for_state(&sup, id, UnitState::Running).await;
    }
    let mut states: Vec<_> = ids.iter().map(|id| sup.watch(*id).unwrap()).collect();
    cancel.cancel();
    tasks.close();
    tokio::time::timeout(Duration::from_secs(30), tasks.wait())
        .await
        .expect("the supervisor ends when cancelled");
    assert_eq!(sup.running(), 0);
    for s in &mut states {
        assert_eq!(*s.borrow_and_update(), UnitState::Stopped);
    }
}

/// Units `(id, version)` that run until cancelled and take a second to wind
/// down; announced as polling-job upserts whose `run_count` stands for the
/// version, and loaded from `stored`.
struct Versioned {
    stored: Mutex<Vec<(Uuid, i64)>>,
    /// The version of each run, in start order.
    runs: Mutex<Vec<i64>>,
    /// Runs alive now, and the most ever alive at once.
    alive: AtomicU32,
    most_alive: AtomicU32,
}

impl UnitKind for Versioned {
    type Unit = (Uuid, i64);
    const NAME: &'static str = "versioned";
    const TOPIC: Topic = Topic::PollingJobs;
    const GROUP: &'static str = "versioned-test";
    const RUNNING_GAUGE: &'static str = "marketd_test_versioned_running";

    fn id(unit: &(Uuid, i64)) -> Uuid {
        unit.0
    }

    fn version(unit: &(Uuid, i64)) -> i64 {
        unit.1
    }

    async fn load(&self) -> marketd_store::Result<Vec<(Uuid, i64)>> {
        Ok(self.stored.lock().unwrap().clone())
    }

    fn command(&self, envelope: &Envelope) -> Option<Command<(Uuid, i64)>> {
        match &envelope.event {
            Event::PollingJob(PollingJobCommand::Upsert { job }) => {
                Some(Command::Start((job.id, job.run_count as i64)))
            }
            _ => None,
        }
    }

    async fn run(self: Arc<Self>, unit: (Uuid, i64), cancel: CancellationToken) -> UnitResult {
        let alive = self.alive.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_alive.fetch_max(alive, Ordering::SeqCst);
        self.runs.lock().unwrap().push(unit.1);
        cancel.cancelled().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.alive.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

fn upsert(id: Uuid, version: i64) -> Event {
    Event::PollingJob(PollingJobCommand::Upsert {
        job: marketd_model::PollingJob {
            id,
            symbol: marketd_model::Symbol::parse("AAPL").unwrap(),
            provider: "simulated".into(),
            interval_ms: 1000,
            status: marketd_model::JobStatus::Active,
            created_at: 0,
            run_count: version as u64,
            error_count: 0,
            last_run_at: None,
            last_error: None,
        },
    })
}

#[tokio::test(start_paused = true)]
async fn a_running_unit_restarts_on_a_newer_version_only() {
    let bus = AnyBus::connect("memory://", BusOptions::default())
        .await
        .unwrap();
    let id = Uuid::now_v7();
    let kind = Versioned {
        stored: Mutex::new(vec![(id, 1)]),
        runs: Mutex::new(Vec::new()),
        alive: AtomicU32::new(0),
        most_alive: AtomicU32::new(0),
    };
    let cancel = CancellationToken::new();
    let sup = Supervisor::new(kind, bus.clone(), cancel.clone(), RestartPolicy::default());
    let commands = bus
        .subscribe(Topic::PollingJobs, Versioned::GROUP)
        .await
        .unwrap();
    let task = tokio::spawn(sup.clone().run(commands));
    let runs = || sup.kind().runs.lock().unwrap().clone();
    eventually("the stored version runs", || runs() == [1]).await;

    // A changed definition (version 2) replaces the running one.
    sup.kind().stored.lock().unwrap()[0].1 = 2;
    bus.publish(upsert(id, 2)).await.unwrap();
    eventually("restarted on version 2", || runs() == [1, 2]).await;
    assert_eq!(sup.running_ids(), vec![id]);

    // The same version again, or an older one, changes nothing (through a
    // reconcile too: the store says 2).
    bus.publish(upsert(id, 2)).await.unwrap();
    bus.publish(upsert(id, 1)).await.unwrap();
    tokio::time::sleep(RECONCILE_EVERY * 2).await;
    assert_eq!(runs(), [1, 2]);
    wait_for_state_of(&sup, id, UnitState::Running).await;

    // A change found in the store (its command lost) is picked up by the
    // next reconcile.
    sup.kind().stored.lock().unwrap()[0].1 = 3;
    eventually("restarted on version 3", || runs() == [1, 2, 3]).await;

    // Each old run ended before the next began.
    assert_eq!(sup.kind().most_alive.load(Ordering::SeqCst), 1);

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("the supervisor ends when cancelled")
        .unwrap();
    assert_eq!(sup.kind().alive.load(Ordering::SeqCst), 0);
}

async fn wait_for_state_of<K: UnitKind>(sup: &Supervisor<K>, id: Uuid, want: UnitState) {
    let mut rx = sup.watch(id).expect("owned");
    tokio::time::timeout(Duration::from_secs(600), rx.wait_for(|s| *s == want))
        .await
        .expect("state reached in time")
        .expect("unit still owned");
}
