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

/// CPU seconds used so far by this process and by every process whose
/// command name matches each service.
fn cpu_now() -> Vec<(&'static str, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let mut out = vec![("marketd", 0.0), ("postgres", 0.0), ("broker", 0.0)];
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split after ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let cpu = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after comm.
        let secs = (cpu(11) + cpu(12)) / tick;
        let slot = if pid == me {
            0
        } else if comm == "postgres" {
            1
        } else if comm == "tansu" || comm == "java" {
            2
        } else {
            continue;
        };
        out[slot].1 += secs;
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
