//! Configuration: defaults embedded here → TOML file (`--config`) →
//! environment (`MARKETD__SECTION__KEY`) → command-line flags. Unknown keys
//! and bad values fail at start with a message naming the key and where it
//! came from. `marketd.example.toml` documents every key.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use marketd_api::auth::AuthConfig;
use marketd_api::{HttpConfig, RateLimitConfig};
use marketd_engine::realtime::RealtimeConfig;
use marketd_engine::{
    AggregatorConfig, EngineConfig, FeedsConfig, PollingConfig, PricesConfig, ServicesConfig,
    WriterConfig,
};
use marketd_model::Secret;
use marketd_sources::ProvidersConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory for the SQLite database (when `storage.url` is empty).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub storage: StorageConfig,
    pub bus: BusConfig,
    pub cache: CacheConfig,
    pub prices: PricesConfig,
    pub providers: ProvidersConfig,
    pub feeds: FeedsConfig,
    pub writer: WriterConfig,
    pub aggregator: AggregatorConfig,
    pub polling: PollingConfig,
    pub rate_limit: RateLimitConfig,
    pub auth: AuthConfig,
    pub encryption: EncryptionConfig,
    pub realtime: RealtimeConfig,
    /// The persistent-homology service (`[tda]`).
    pub tda: marketd_engine::TdaConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            server: ServerConfig::default(),
            http: HttpConfig::default(),
            log: LogConfig::default(),
            storage: StorageConfig::default(),
            bus: BusConfig::default(),
            cache: CacheConfig::default(),
            prices: PricesConfig::default(),
            providers: ProvidersConfig::default(),
            feeds: FeedsConfig::default(),
            writer: WriterConfig::default(),
            aggregator: AggregatorConfig::default(),
            polling: PollingConfig::default(),
            rate_limit: RateLimitConfig::default(),
            auth: AuthConfig::default(),
            encryption: EncryptionConfig::default(),
            realtime: RealtimeConfig::default(),
            tda: marketd_engine::TdaConfig::default(),
        }
    }
}

/// `[encryption]`: the key that seals stored credentials (AES-256-GCM).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// Current key: 32 random bytes in base64 (`marketd keys new-encryption-key`).
    /// Prefer `MARKETD__ENCRYPTION__KEY`. Unset: credentials cannot be stored.
    pub key: Option<Secret>,
    /// Id stored with every value sealed by `key` (change it with the key).
    pub key_id: String,
    /// Older keys, `ID:BASE64`, still able to decrypt until
    /// `marketd keys rotate-encryption` has re-sealed everything.
    pub previous_keys: Vec<Secret>,
    /// `serve` only, when `key` is unset: use the key in
    /// `<data_dir>/encryption.key`, creating it (mode 0600) on first start,
    /// so the embedded platform can store connector secrets out of the box.
    /// `api` and `worker` always need a configured key.
    pub auto_key: bool,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            key: None,
            key_id: "k1".into(),
            previous_keys: Vec::new(),
            auto_key: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP server listens on (`serve`, `api`).
    pub addr: String,
    /// Address of a worker's operations endpoints (`/health/*`, `/metrics`).
    pub admin_addr: String,
    /// Upper bound on graceful shutdown, in milliseconds.
    pub shutdown_timeout_ms: u64,
    /// PEM certificate chain: with `tls_key`, serve HTTPS directly (rustls).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:8080".into(),
            admin_addr: "127.0.0.1:9090".into(),
            shutdown_timeout_ms: 9_000,
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `marketd=debug,info` (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `sqlite://PATH` or `postgres://…`; empty means `sqlite://<data_dir>/marketd.db`.
    pub url: String,
    /// Connection pool size.
    pub max_connections: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            url: String::new(),
            max_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `memory://` (in-process) or `kafka://host:port[,host:port...]`.
    pub url: String,
    /// Messages buffered per consumer group and topic before producers wait (memory).
    pub buffer: usize,
    /// Partitions of the topics marketd creates (Kafka).
    pub partitions: u32,
    /// Prefix of topic names and consumer groups (`marketd.ticks`).
    pub topic_prefix: String,
    /// Replication factor of the topics marketd creates (Kafka).
    pub replication_factor: i32,
    /// How long a silent worker keeps its partitions before the group rebalances, ms (Kafka).
    pub session_timeout_ms: u64,
    /// How producers write envelopes on Kafka: `json` (any consumer reads
    /// it) or `binary` (ticks in marketd's compact layout, docs/events.md).
    /// Consumers read both.
    pub codec: marketd_model::Codec,
}

impl Default for BusConfig {
    fn default() -> Self {
        let d = marketd_bus::BusOptions::default();
        BusConfig {
            url: "memory://".into(),
            buffer: d.buffer,
            partitions: d.partitions,
            topic_prefix: d.topic_prefix,
            replication_factor: d.replication_factor,
            session_timeout_ms: d.session_timeout_ms,
            codec: d.codec,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `memory://` (in-process) or `redis://[:password@]host:port[/db]`
    /// (shared by every instance; also holds the rate limits).
    pub url: String,
    /// How long a latest price is served from the cache, milliseconds.
    pub latest_ttl_ms: u64,
    /// Most entries kept (memory backend; the copy of read prices with Redis).
    pub max_entries: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            url: "memory://".into(),
            latest_ttl_ms: 5_000,
            max_entries: 100_000,
        }
    }
}

/// Overrides from command-line flags (the last layer).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub addr: Option<String>,
    pub admin_addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub json_logs: bool,
}

impl Config {
    /// Layers defaults, file, environment and flags; fails naming the key.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, Box<figment::Error>> {
        Self::figment(file, overrides).extract().map_err(Box::new)
    }

    /// The defaults layered with one TOML document (no environment, no
    /// flags), then [`Config::validate`]d: the file layer of [`Config::load`]
    /// without touching the file system or the process environment. Exists
    /// for fuzzing (`fuzz/fuzz_targets/config.rs`).
    pub fn from_toml_str(toml: &str) -> Result<Config, String> {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(toml))
            .extract()
            .map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn figment(file: Option<&Path>, overrides: &Overrides) -> Figment {
        let mut f = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            f = f.merge(Toml::file_exact(path));
        }
        f = f.merge(Env::prefixed("MARKETD__").split("__"));
        if let Some(addr) = &overrides.addr {
            f = f.merge(Serialized::default("server.addr", addr));
        }
        if let Some(addr) = &overrides.admin_addr {
            f = f.merge(Serialized::default("server.admin_addr", addr));
        }
        if let Some(dir) = &overrides.data_dir {
            f = f.merge(Serialized::default("data_dir", dir));
        }
        if overrides.json_logs {
            f = f.merge(Serialized::default("log.format", "json"));
        }
        f
    }

    /// The storage URL, defaulting to SQLite in the data directory.
    pub fn storage_url(&self) -> String {
        if self.storage.url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("marketd.db").display())
        } else {
            self.storage.url.clone()
        }
    }

    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            writer: self.writer.clone(),
            aggregator: self.aggregator.clone(),
            polling: self.polling.clone(),
            tda_stream: self.tda.stream.clone(),
        }
    }

    /// What the services need: price lookups, polling-job limits, the
    /// computed series and the page size.
    pub fn services(&self) -> ServicesConfig {
        ServicesConfig {
            prices: self.prices.clone(),
            polling: self.polling.clone(),
            aggregator: self.aggregator.clone(),
            max_page: self.http.max_page,
            tda: self.tda.clone(),
            tda_stream: self.tda.stream.clone(),
        }
    }

    /// Checks that serde cannot express: non-empty lists, sane numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.writer.batch_size == 0 {
            return Err("writer.batch_size must be at least 1".into());
        }
        if self.bus.buffer == 0 {
            return Err("bus.buffer must be at least 1".into());
        }
        if self.aggregator.ma_windows.contains(&0) {
            return Err("aggregator.ma_windows must be positive".into());
        }
        if !self.feeds.simulated.ticks_per_second.is_finite()
            || self.feeds.simulated.ticks_per_second <= 0.0
        {
            return Err("feeds.simulated.ticks_per_second must be positive".into());
        }
        if self.polling.min_interval_ms < 100 {
            return Err("polling.min_interval_ms must be at least 100".into());
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err("server.tls_cert and server.tls_key must be set together".into());
        }
        if self.cache.latest_ttl_ms == 0 {
            return Err("cache.latest_ttl_ms must be at least 1".into());
        }
        if self.bus.partitions == 0 {
            return Err("bus.partitions must be at least 1".into());
        }
        if self.bus.replication_factor < 1 {
            return Err("bus.replication_factor must be at least 1".into());
        }
        if self.bus.session_timeout_ms < 1_000 {
            return Err("bus.session_timeout_ms must be at least 1000".into());
        }
        self.rate_limit.validate()?;
        let t = &self.tda;
        if t.max_points < 2 || t.max_coordinates == 0 {
            return Err(
                "tda.max_points (at least 2) and tda.max_coordinates must be positive".into(),
            );
        }
        if !(t.sync_max_simplices.is_finite() && t.sync_max_simplices >= 0.0) {
            return Err("tda.sync_max_simplices must be a non-negative number".into());
        }
        if t.max_attempts == 0 || t.max_upload_bytes == 0 {
            return Err("tda.max_attempts and tda.max_upload_bytes must be at least 1".into());
        }
        self.tda.stream.validate(&self.aggregator.intervals)?;
        if let Some(regime) = &self.feeds.simulated.regime {
            regime.resolve(0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "m.toml",
                "[server]\naddr = \"127.0.0.1:9000\"\n[writer]\nbatch_size = 7\n",
            )?;
            jail.set_env("MARKETD__WRITER__BATCH_SIZE", "9");
            let cfg = Config::load(Some(Path::new("m.toml")), &Overrides::default()).unwrap();
            assert_eq!(cfg.server.addr, "127.0.0.1:9000");
            assert_eq!(cfg.writer.batch_size, 9, "env beats file");
            let cfg = Config::load(
                Some(Path::new("m.toml")),
                &Overrides {
                    addr: Some("127.0.0.1:1".into()),
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(cfg.server.addr, "127.0.0.1:1", "flags beat everything");

            jail.set_env("MARKETD__STORAGE__URLL", "x");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("urll"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn tda_stream_baskets_load_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "m.toml",
                r#"
[tda.stream]
[[tda.stream.baskets]]
name = "crypto4"
symbols = ["BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT"]
interval = "1s"
window = 51
step = 5
[[tda.stream.baskets]]
name = "btc"
symbols = ["BTC-USDT"]
interval = "1m"
window = 61
embedding = { dimension = 3, delay = 2 }
threshold = 4.0
"#,
            )?;
            let cfg = Config::load(Some(Path::new("m.toml")), &Overrides::default()).unwrap();
            cfg.validate()?;
            let b = &cfg.tda.stream.baskets;
            assert_eq!((b[0].points(), b[0].dimension(), b[0].step), (50, 4, 5));
            assert_eq!(
                (
                    b[0].threshold,
                    b[0].hysteresis,
                    b[0].cooldown,
                    b[0].min_history
                ),
                (3.0, 1.5, 10, 20)
            );
            assert_eq!(
                (b[1].points(), b[1].dimension(), b[1].threshold),
                (56, 3, 4.0)
            );

            for (bad, says) in [
                (
                    "symbols = [\"BTC USDT\", \"ETH-USDT\"]\nwindow = 10",
                    "symbols",
                ),
                (
                    "symbols = [\"A\", \"B\"]\nwindow = 2",
                    "window must be at least 3",
                ),
                (
                    "symbols = [\"A\", \"B\"]\nwindow = 10\ninterval = \"5s\"",
                    "interval",
                ),
                (
                    "symbols = [\"A\", \"B\"]\nwindow = 10\nhysteresis = 3.5",
                    "hysteresis",
                ),
                ("symbols = [\"A\"]\nwindow = 10", "embedding"),
                (
                    "symbols = [\"A\", \"B\"]\nwindow = 10\nwindows = 3",
                    "windows",
                ),
            ] {
                jail.create_file(
                    "b.toml",
                    &format!("[[tda.stream.baskets]]\nname = \"x\"\n{bad}\n"),
                )?;
                let err = match Config::load(Some(Path::new("b.toml")), &Overrides::default()) {
                    Err(e) => e.to_string(),
                    Ok(cfg) => cfg.validate().unwrap_err(),
                };
                assert!(err.contains(says), "{bad}: {err}");
            }
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("m.toml", "[writer]\nbatch_size = \"many\"\n")?;
            let err = Config::load(Some(Path::new("m.toml")), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("batch_size"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_bus_codec_is_json_binary_or_refused_by_name() {
        figment::Jail::expect_with(|jail| {
            let cfg = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(cfg.bus.codec, marketd_model::Codec::Json);
            jail.set_env("MARKETD__BUS__CODEC", "binary");
            let cfg = Config::load(None, &Overrides::default()).unwrap();
            assert_eq!(cfg.bus.codec, marketd_model::Codec::Binary);
            jail.set_env("MARKETD__BUS__CODEC", "avro");
            let err = Config::load(None, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.to_lowercase().contains("bus.codec")
                    && err.contains("avro")
                    && err.contains("`json` or `binary`"),
                "{err}"
            );
            Ok(())
        });
    }
}

#[cfg(test)]
// figment's Jail closures return its (large) error type by design.
#[allow(clippy::result_large_err)]
mod example_file {
    use super::*;

    /// docker-compose.yml and the Dockerfile configure marketd through
    /// environment variables: every one must be a key this binary knows.
    #[test]
    fn deployment_files_use_only_known_keys() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut vars: Vec<(String, String)> = Vec::new();
        for file in ["docker-compose.yml", "Dockerfile"] {
            let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
            for line in text.lines() {
                for part in line.split_whitespace() {
                    let part = part.trim_end_matches('\\');
                    if let Some(rest) = part.strip_prefix("MARKETD__") {
                        let (key, value) = rest
                            .split_once(':')
                            .or_else(|| rest.split_once('='))
                            .unwrap_or((rest, ""));
                        let value = line
                            .split_once(':')
                            .filter(|_| file == "docker-compose.yml")
                            .map(|(_, v)| v.trim().trim_matches('"').to_string())
                            .unwrap_or_else(|| value.trim_matches('"').to_string());
                        vars.push((format!("MARKETD__{key}"), value));
                    }
                }
            }
        }
        assert!(vars.len() >= 8, "found only {vars:?}");
        figment::Jail::expect_with(|jail| {
            for (k, v) in &vars {
                jail.set_env(k, v);
            }
            let cfg = Config::load(None, &Overrides::default()).map_err(|e| e.to_string())?;
            cfg.validate()?;
            Ok(())
        });
    }

    fn keys(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = v {
            for (k, v) in t {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                keys(&path, v, out);
                out.push(path);
            }
        }
    }

    #[test]
    fn example_documents_every_key_with_its_default() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../marketd.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let example: toml::Value = toml::from_str(&text).unwrap();
        let defaults = toml::Value::try_from(Config::default()).unwrap();
        let (mut want, mut have) = (Vec::new(), Vec::new());
        keys("", &defaults, &mut want);
        keys("", &example, &mut have);
        for k in &want {
            assert!(have.contains(k), "marketd.example.toml lacks {k}");
        }
        for k in &have {
            assert!(want.contains(k), "marketd.example.toml has unknown key {k}");
        }
        assert_eq!(example, defaults, "the example's values are the defaults");
        // Inside a jail: other tests set MARKETD__ variables in this process
        // while they hold the jail's lock, and loading reads the environment.
        figment::Jail::expect_with(|_| {
            Config::load(Some(Path::new(path)), &Overrides::default()).unwrap();
            Ok(())
        });
    }
}
