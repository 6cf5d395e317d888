//! Set-up shared by the engine's benchmarks (each bench is its own binary and
//! includes this module): the simulated ticks and an engine running only its
//! consumers (writer, aggregator, cache updater) on given backends.
// Each bench binary compiles this module and uses only part of it.
#![allow(dead_code)]

use marketd_bus::AnyBus;
use marketd_cache::{AnyCache, CacheOptions};
use marketd_engine::{
    Backends, Engine, EngineConfig, FeedsConfig, PollingConfig, PricesConfig, Roles, Services,
    ServicesConfig,
};
use marketd_model::{Symbol, Tick};
use marketd_sources::{ProviderRegistry, ProvidersConfig, SimulatedMarket};
use marketd_store::AnyStore;
use marketd_store::crypto::Keyring;
use std::sync::Arc;

/// The seven symbols every bench trades.
pub const SYMBOLS: [&str; 7] = [
    "AAPL", "MSFT", "GOOGL", "AMZN", "TSLA", "BTC-USDT", "ETH-USDT",
];

/// `n` simulated ticks over [`SYMBOLS`], 1 ms apart, starting `start` ns
/// after the epoch (distinct starts give distinct ticks: none is a duplicate).
pub fn ticks(n: usize, start: i64) -> Vec<Tick> {
    let symbols: Vec<Symbol> = SYMBOLS.iter().map(|s| Symbol::parse(s).unwrap()).collect();
    SimulatedMarket::new(42).generate(&symbols, start, 1_000_000, n)
}

/// One hour ago, in ns: event times the pipeline accepts.
pub fn an_hour_ago() -> i64 {
    marketd_model::time::now_ns() - 3_600 * 1_000_000_000
}

/// Backends for a bench: the given store and bus, an in-process cache.
pub async fn backends(store: Arc<AnyStore>, bus: AnyBus) -> Backends {
    Backends {
        store,
        bus,
        cache: AnyCache::connect("memory://", CacheOptions::default())
            .await
            .unwrap(),
        providers: Arc::new(ProviderRegistry::from_config(&ProvidersConfig::default()).unwrap()),
    }
}

/// The engine's consumers only (no feeds, no pollers): writer, aggregator
/// (1s..1d bars, SMA/EMA 5/20/50) and cache updater.
pub async fn start_consumers(backends: &Backends) -> Engine {
    start_engine(backends, &services(backends), false).await
}

/// CPU time spent by this process and by the services of a scaled-out run
/// (PostgreSQL's processes, the Kafka broker, Redis), read from /proc: on a
/// shared machine, CPU per tick says more than wall time, and tells where
/// the time goes.
pub struct CpuClock {
    start: Vec<(&'static str, f64)>,
}

/// The service processes to account to, when known: the postmaster of the
/// bench's PostgreSQL (its backends and helpers are its children) and the
/// broker. Without them every process named `postgres` or `tansu` counts,
/// which on a machine shared with other PostgreSQL instances overstates.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServicePids {
    pub postmaster: Option<u32>,
    pub broker: Option<u32>,
}

static SERVICE_PIDS: std::sync::OnceLock<ServicePids> = std::sync::OnceLock::new();

/// Pins the accounting to these processes (once, before any [`CpuClock`]).
pub fn set_service_pids(pids: ServicePids) {
    let _ = SERVICE_PIDS.set(pids);
}

/// The postmaster of the server `conn` is connected to: the parent of its
/// backend. None when the server is not on this machine.
pub async fn postmaster_of(conn: &mut sqlx::PgConnection) -> Option<u32> {
    let (backend,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .ok()?;
    let status = std::fs::read_to_string(format!("/proc/{backend}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// One `/proc/PID/stat`: command name, parent, and the CPU seconds of the
/// process itself and of its children already reaped.
struct Stat {
    comm: String,
    ppid: u32,
    own: f64,
    reaped: f64,
}

fn stat_of(path: &std::path::Path) -> Option<Stat> {
    let tick = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(path.join("stat")).ok()?;
    // `pid (comm) state ...`: comm may hold spaces, so split after ')'.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 4 (ppid), 14-17 (utime, stime, cutime, cstime) of stat are
    // 1, 11-14 after comm.
    Some(Stat {
        comm: stat[open + 1..close].to_string(),
        ppid: num(1) as u32,
        own: (num(11) + num(12)) / tick,
        reaped: (num(13) + num(14)) / tick,
    })
}

/// CPU seconds used so far by this process, by the bench's PostgreSQL (the
/// postmaster, its live children, and the children it reaped: backends of
/// closed connections) and by the broker.
fn cpu_now() -> Vec<(&'static str, f64)> {
    let pins = SERVICE_PIDS.get().copied().unwrap_or_default();
    let mut out = vec![("marketd", 0.0), ("postgres", 0.0), ("broker", 0.0)];
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(stat) = stat_of(&entry.path()) else {
            continue;
        };
        let broker = match pins.broker {
            Some(b) => pid == b,
            None => stat.comm == "tansu" || stat.comm == "java",
        };
        let postgres = match pins.postmaster {
            Some(pm) if pid == pm => {
                out[1].1 += stat.reaped;
                true
            }
            Some(pm) => stat.ppid == pm,
            None => stat.comm == "postgres",
        };
        let slot = if pid == me {
            0
        } else if postgres {
            1
        } else if broker {
            2
        } else {
            continue;
        };
        out[slot].1 += stat.own;
    }
    out
}

impl CpuClock {
    pub fn start() -> CpuClock {
        CpuClock { start: cpu_now() }
    }

    /// CPU microseconds per item since `start`, per component and in all.
    pub fn per_item(&self, n: usize) -> String {
        let now = cpu_now();
        let mut total = 0.0;
        let mut parts = Vec::new();
        for ((name, a), (_, b)) in self.start.iter().zip(now) {
            let us = (b - a) * 1e6 / n as f64;
            total += us;
            if us > 0.0 {
                parts.push(format!("{name} {us:.1}"));
            }
        }
        format!("{total:.1} us ({})", parts.join(", "))
    }
}

/// The services of a bench process (no encryption key: connectors without
/// secrets only).
pub fn services(backends: &Backends) -> Services {
    Services::new(
        backends,
        &ServicesConfig {
            prices: PricesConfig::default(),
            polling: PollingConfig::default(),
            aggregator: EngineConfig::default().aggregator,
            max_page: 10_000,
            tda: marketd_engine::TdaConfig::default(),
            tda_stream: Default::default(),
        },
        Keyring::empty(),
    )
}

/// The engine's consumers and, with `producers`, its supervisors (polling
/// jobs, connectors); the simulated feed stays off.
pub async fn start_engine(backends: &Backends, services: &Services, producers: bool) -> Engine {
    let mut feeds = FeedsConfig::default();
    feeds.simulated.enabled = false;
    Engine::start(
        backends.clone(),
        &EngineConfig::default(),
        &feeds,
        services,
        Roles {
            consumers: true,
            producers,
        },
    )
    .await
    .unwrap()
}
