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
