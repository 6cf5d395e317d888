//! Connectors as a domain operation: a definition is checked, its secrets
//! are sealed in the credential store (`connectors.<id>.secrets`) and
//! replaced by [`REDACTED`] in what is stored and shown, the connector is
//! stored, and every change is announced on the `connectors` topic, where
//! the worker that owns the connector's partition starts or stops it.
//!
//! Secrets are every value under `auth` except its non-secret fields
//! ([`PUBLIC_AUTH_FIELDS`]) and every custom header value. A definition sent
//! back with [`REDACTED`] in a secret's place (a GET edited and PUT back)
//! keeps the sealed value.

use crate::services::access::{AccessError, AccessService, validate_key_name};
use marketd_bus::{AnyBus, Bus};
use marketd_model::time::now_ns;
use marketd_model::{
    Connector, ConnectorCommand, ConnectorKind, ConnectorRecord, ConnectorState, ConnectorStatus,
    Desired, Event, Secret, Symbol,
};
use marketd_sources::connectors::{FieldMapping, RequestSpec};
use marketd_sources::venues::{Channel, ConnectPlan, Venue};
use marketd_store::AnyStore;
use marketd_store::prelude::*;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// What a secret reads as wherever it is shown.
pub const REDACTED: &str = "***";

/// Fields of `auth` that are not secret (shown as given).
pub const PUBLIC_AUTH_FIELDS: &[&str] = &["type", "name", "in", "username", "recv_window"];

/// The venues with a built-in normalizer, for messages.
fn venue_names() -> String {
    Venue::ALL.map(Venue::name).join(", ")
}

/// The channels a venue connector can subscribe to, for messages.
fn channel_names() -> String {
    Channel::ALL.map(Channel::as_str).join(", ")
}

/// Shortest and longest polling interval of a REST connector, ms.
pub const POLLING_INTERVAL_MS: (u64, u64) = (100, 60_000);

/// Why a connector operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The definition is malformed; the message names the field and is safe
    /// to show to the caller.
    #[error("{0}")]
    Validation(String),
    #[error("connector {0} not found")]
    NotFound(Uuid),
    #[error("a connector named {0:?} already exists")]
    NameTaken(String),
    /// The connector is stored but the command could not be published: it
    /// starts or stops when its owner next reconciles with the store.
    #[error(
        "the connector was saved but could not be scheduled now; it follows on the next reconcile"
    )]
    Unavailable(#[source] marketd_bus::Error),
    /// A preview's upstream could not be reached (connect, timeout, an
    /// oversized body); the message holds no secret.
    #[error("{0}")]
    Upstream(String),
    /// The connector's sealed secrets opened but are not what this service
    /// stored (a JSON object): damage on the server's side, not the caller's.
    #[error("stored secrets of connector {0} are not a JSON object")]
    CorruptSecrets(Uuid),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Store(marketd_store::Error),
}

impl From<marketd_store::Error> for ConnectorError {
    fn from(e: marketd_store::Error) -> Self {
        match e {
            marketd_store::Error::Conflict(name) => ConnectorError::NameTaken(name),
            e => ConnectorError::Store(e),
        }
    }
}

fn invalid(msg: impl Into<String>) -> ConnectorError {
    ConnectorError::Validation(msg.into())
}

/// A page of a connector's collected records.
#[derive(Debug, Clone)]
pub struct RecordPage {
    pub records: Vec<ConnectorRecord>,
    /// Pass back as the cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A connector with its secrets opened, as its runner needs it.
#[derive(Debug, Clone)]
pub struct OpenedConnector {
    pub connector: Connector,
    /// The full definition, secrets in place.
    pub spec: Secret,
}

/// Creates, changes, starts, stops, reads and deletes connectors.
#[derive(Debug, Clone)]
pub struct ConnectorService {
    store: Arc<AnyStore>,
    bus: AnyBus,
    access: AccessService,
    max_page: u32,
}

impl ConnectorService {
    pub fn new(store: Arc<AnyStore>, bus: AnyBus, access: AccessService, max_page: u32) -> Self {
        ConnectorService {
            store,
            bus,
            access,
            max_page,
        }
    }

    /// Checks `definition`, seals its secrets and stores it, stopped.
    pub async fn create(&self, definition: Value) -> Result<Connector, ConnectorError> {
        let mut spec = check(definition)?;
        let id = Uuid::now_v7();
        let secrets = split_secrets(&mut spec, None)?;
        let name = spec_name(&spec)?;
        let now = now_ns();
        let connector = Connector {
            id,
            name,
            kind: spec_kind(&spec)?,
            spec,
            desired: Desired::Stopped,
            created_at: now,
            updated_at: now,
        };
        // A taken name is refused by the store's unique index (NameTaken).
        self.seal(id, &secrets).await?;
        if let Err(e) = self.store.insert_connector(&connector).await {
            // Leave no orphaned secret behind a refused insert.
            let _ = self
                .access
                .remove_credential(&Connector::credential_name(id))
                .await;
            return Err(e.into());
        }
        self.store
            .put_connector_status(&ConnectorStatus::initial(id, ConnectorState::Stopped, now))
            .await?;
        tracing::info!(connector = %id, name = %connector.name, kind = connector.kind.as_str(), "connector created");
        Ok(connector)
    }

    /// Every connector, oldest first.
    pub async fn list(&self) -> Result<Vec<Connector>, ConnectorError> {
        Ok(self.store.connectors().await?)
    }

    pub async fn get(&self, id: Uuid) -> Result<Connector, ConnectorError> {
        self.store
            .connector(id)
            .await?
            .ok_or(ConnectorError::NotFound(id))
    }

    /// Replaces the definition (kind included); a running connector restarts
    /// with it.
    pub async fn update(&self, id: Uuid, definition: Value) -> Result<Connector, ConnectorError> {
        let old = self.get(id).await?;
        let mut spec = check(definition)?;
        let previous = self.open_secrets(id).await?;
        let secrets = split_secrets(&mut spec, Some(&previous))?;
        let connector = Connector {
            name: spec_name(&spec)?,
            kind: spec_kind(&spec)?,
            spec,
            updated_at: now_ns().max(old.updated_at + 1),
            ..old
        };
        self.seal(id, &secrets).await?;
        if !self.store.update_connector(&connector).await? {
            return Err(ConnectorError::NotFound(id));
        }
        self.announce(&connector).await?;
        Ok(connector)
    }

    /// Asks the owner to run (or stop) the connector.
    pub async fn set_desired(
        &self,
        id: Uuid,
        desired: Desired,
    ) -> Result<Connector, ConnectorError> {
        let old = self.get(id).await?;
        if old.desired == desired {
            // Already so: announced again (a lost command is repaired) with
            // the same version, so a running connector is not restarted.
            self.announce(&old).await?;
            return Ok(old);
        }
        let connector = Connector {
            desired,
            updated_at: now_ns().max(old.updated_at + 1),
            ..old
        };
        if !self.store.update_connector(&connector).await? {
            return Err(ConnectorError::NotFound(id));
        }
        tracing::info!(connector = %id, desired = desired.as_str(), "connector {}", if desired == Desired::Running { "started" } else { "stopped" });
        self.announce(&connector).await?;
        Ok(connector)
    }

    /// Deletes the connector, its status, records and sealed secrets, and
    /// announces the stop.
    pub async fn delete(&self, id: Uuid) -> Result<(), ConnectorError> {
        if !self.store.delete_connector(id).await? {
            return Err(ConnectorError::NotFound(id));
        }
        match self
            .access
            .remove_credential(&Connector::credential_name(id))
            .await
        {
            Ok(()) | Err(AccessError::CredentialNotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self
            .bus
            .publish(Event::Connector(ConnectorCommand::Delete { id }))
            .await
        {
            tracing::warn!(connector = %id, error = %e, "connector deleted in the store but the stop command was not published");
        }
        tracing::info!(connector = %id, "connector deleted");
        Ok(())
    }

    /// The connector's latest status (stopped when it has never run).
    pub async fn status(&self, id: Uuid) -> Result<ConnectorStatus, ConnectorError> {
        let c = self.get(id).await?;
        Ok(self
            .store
            .connector_status(id)
            .await?
            .unwrap_or_else(|| ConnectorStatus::initial(id, ConnectorState::Stopped, c.created_at)))
    }

    /// Collected records after `cursor`, oldest first.
    pub async fn records(
        &self,
        id: Uuid,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<RecordPage, ConnectorError> {
        self.get(id).await?;
        let after = cursor
            .map(|c| {
                record_cursor(c)
                    .ok_or_else(|| invalid(format!("cursor: not a cursor of this list: {c:?}")))
            })
            .transpose()?;
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > self.max_page {
            return Err(invalid(format!("limit must be 1 to {}", self.max_page)));
        }
        let records = self.store.connector_records(id, after, limit).await?;
        let next_cursor = (records.len() == limit as usize)
            .then(|| records.last().map(|r| r.seq.to_string()))
            .flatten();
        Ok(RecordPage {
            records,
            next_cursor,
        })
    }

    /// The connector with its secrets in place, for its runner.
    pub async fn open(&self, connector: Connector) -> Result<OpenedConnector, ConnectorError> {
        let secrets = self.open_secrets(connector.id).await?;
        let mut spec = connector.spec.clone();
        merge_secrets(&mut spec, &secrets);
        Ok(OpenedConnector {
            spec: Secret::new(spec.to_string()),
            connector,
        })
    }

    async fn announce(&self, connector: &Connector) -> Result<(), ConnectorError> {
        self.bus
            .publish(Event::Connector(ConnectorCommand::Upsert {
                connector: connector.clone(),
            }))
            .await
            .map_err(ConnectorError::Unavailable)?;
        Ok(())
    }

    async fn seal(&self, id: Uuid, secrets: &Map<String, Value>) -> Result<(), ConnectorError> {
        let name = Connector::credential_name(id);
        if secrets.is_empty() {
            return match self.access.remove_credential(&name).await {
                Ok(()) | Err(AccessError::CredentialNotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        let text = Value::Object(secrets.clone()).to_string();
        self.access
            .seal_credential(&name, &Secret::new(text))
            .await?;
        Ok(())
    }

    async fn open_secrets(&self, id: Uuid) -> Result<Map<String, Value>, ConnectorError> {
        let name = Connector::credential_name(id);
        let Some(secret) = self.access.open_credential(&name).await? else {
            return Ok(Map::new());
        };
        match serde_json::from_str(secret.expose()) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(ConnectorError::CorruptSecrets(id)),
        }
    }
}

/// What a cursor of a connector's records looks like: the decimal `seq`
/// of the last record of the previous page.
pub const RECORD_CURSOR_PATTERN: &str = "^[0-9]{1,19}$";

/// The `seq` a cursor names ([`RECORD_CURSOR_PATTERN`]; past the largest
/// `seq` there is, the end of the list).
fn record_cursor(c: &str) -> Option<i64> {
    if c.is_empty() || c.len() > 19 || !c.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    c.parse::<u64>()
        .ok()
        .map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// Checks a definition; returns it as an object.
pub fn check(definition: Value) -> Result<Value, ConnectorError> {
    let Value::Object(obj) = &definition else {
        return Err(invalid("the connector must be a JSON object"));
    };
    let name = str_field(obj, "name")?.ok_or_else(|| invalid("name is required"))?;
    if validate_key_name(name).is_err() {
        return Err(invalid("name must be 1 to 64 printable characters"));
    }
    if let Some(h) = obj.get("headers") {
        let Value::Object(h) = h else {
            return Err(invalid(
                "headers must be an object of header names to string values",
            ));
        };
        for (k, v) in h {
            if k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
            {
                return Err(invalid(format!("headers: invalid header name {k:?}")));
            }
            if !v.is_string() {
                return Err(invalid(format!("headers.{k} must be a string")));
            }
        }
    }
    if let Some(auth) = obj.get("auth") {
        check_auth(auth)?;
    }
    let kind =
        str_field(obj, "kind")?.ok_or_else(|| invalid("kind is required: rest or websocket"))?;
    match ConnectorKind::parse(kind) {
        Some(ConnectorKind::Websocket) => {
            check_websocket(obj)?;
            ws_definition(&definition)?;
        }
        Some(ConnectorKind::Rest) => {
            check_rest(obj)?;
            rest_definition(&definition)?;
        }
        None => {
            return Err(invalid(format!(
                "kind: unknown kind {kind:?}; expected rest or websocket"
            )));
        }
    }
    Ok(definition)
}

fn str_field<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ConnectorError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(format!("{key} must be a string"))),
    }
}

fn check_url(field: &str, url: &str, schemes: &[&str]) -> Result<(), ConnectorError> {
    let parsed =
        url::Url::parse(url).map_err(|e| invalid(format!("{field}: invalid URL {url:?}: {e}")))?;
    if !schemes.contains(&parsed.scheme()) || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "{field}: {url:?} must be a {} URL with a host",
            schemes.join(" or ")
        )));
    }
    Ok(())
}

fn check_websocket(obj: &Map<String, Value>) -> Result<(), ConnectorError> {
    let venue = str_field(obj, "venue")?.ok_or_else(|| {
        invalid(format!(
            "venue is required for a websocket connector: one of {}",
            venue_names()
        ))
    })?;
    if Venue::from_name(venue).is_err() {
        return Err(invalid(format!(
            "venue: unknown venue {venue:?}; known: {}",
            venue_names()
        )));
    }
    if let Some(url) = str_field(obj, "url")? {
        check_url("url", url, &["ws", "wss"])?;
    }
    if let Some(url) = str_field(obj, "rest_url")? {
        check_url("rest_url", url, &["http", "https"])?;
    }
    let symbols = string_list(obj, "symbols")?;
    if symbols.is_empty() {
        return Err(invalid("symbols: at least one symbol is required"));
    }
    for s in &symbols {
        Symbol::parse(s).map_err(|e| invalid(format!("symbols: {e}")))?;
    }
    let channels = string_list(obj, "channels")?;
    if channels.is_empty() {
        return Err(invalid(format!(
            "channels: at least one of {} is required",
            channel_names()
        )));
    }
    for c in &channels {
        if Channel::from_name(c).is_none() {
            return Err(invalid(format!(
                "channels: unknown channel {c:?}; known: {}",
                channel_names()
            )));
        }
    }
    Ok(())
}

fn string_list(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, ConnectorError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(xs)) => xs
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(format!("{key} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(invalid(format!("{key} must be a list of strings"))),
    }
}

fn check_rest(obj: &Map<String, Value>) -> Result<(), ConnectorError> {
    let url =
        str_field(obj, "url")?.ok_or_else(|| invalid("url is required for a rest connector"))?;
    check_url("url", url, &["http", "https"])?;
    let method = str_field(obj, "method")?.unwrap_or("GET");
    if !["GET", "POST", "PUT", "DELETE"].contains(&method) {
        return Err(invalid(format!(
            "method: {method:?} is not one of GET, POST, PUT, DELETE"
        )));
    }
    let interval = match obj.get("polling_interval_ms") {
        None | Some(Value::Null) => {
            return Err(invalid(
                "polling_interval_ms is required for a rest connector",
            ));
        }
        Some(v) => v
            .as_u64()
            .ok_or_else(|| invalid("polling_interval_ms must be a whole number"))?,
    };
    let (lo, hi) = POLLING_INTERVAL_MS;
    if !(lo..=hi).contains(&interval) {
        return Err(invalid(format!(
            "polling_interval_ms must be {lo} to {hi}, got {interval}"
        )));
    }
    match obj.get("mapping") {
        Some(Value::Object(m)) => {
            for field in ["records", "price"] {
                if !m.get(field).is_some_and(Value::is_string) {
                    return Err(invalid(format!("mapping.{field} is required (a JSONPath)")));
                }
            }
        }
        _ => return Err(invalid("mapping is required for a rest connector")),
    }
    Ok(())
}

/// What a WebSocket connector's runner needs, typed from its definition.
#[derive(Debug, Clone)]
pub struct WsDefinition {
    pub venue: Venue,
    /// The URL to connect to and the frames that subscribe.
    pub plan: ConnectPlan,
    /// Silence after which the connection is replaced.
    pub idle_timeout: Duration,
    /// The venue numbers trades consecutively per symbol and only one id
    /// sequence is subscribed (Binance `trades` or `agg_trades`, not both),
    /// so repeats are dropped and skipped ranges counted as gaps.
    pub sequential_ids: bool,
    /// Keep every received frame in `raw_messages` for this long (the
    /// definition's `archive.retention_hours`); `None`: no archive.
    pub archive: Option<Duration>,
    /// The channel whose ids are checked (`trades` or `agg_trades`) when
    /// [`WsDefinition::sequential_ids`].
    pub id_channel: Option<Channel>,
    /// The venue's REST base, for backfilling gaps: `rest_url`, else the
    /// venue's public one when `url` is its public stream too (a connector
    /// pointed at another stream, a mock or a proxy, gets no default: its
    /// gaps are counted, not fetched from the real venue).
    pub rest_url: Option<url::Url>,
}

/// Longest raw-frame retention a connector may ask for (a year).
pub const MAX_ARCHIVE_HOURS: u64 = 24 * 366;

/// Shortest and longest `idle_timeout_ms` of a WebSocket connector.
pub const IDLE_TIMEOUT_MS: (u64, u64) = (1_000, 600_000);

/// Reads a WebSocket definition: the venue, its URL (`url` replaces the
/// venue's base; default the venue's public endpoint), the subscription
/// plan, the Finnhub token (`auth` `api_key` in the query) and the REST
/// base used for backfill (`rest_url`).
pub fn ws_definition(def: &Value) -> Result<WsDefinition, ConnectorError> {
    let name = def["venue"].as_str().unwrap_or_default();
    let venue = Venue::from_name(name).map_err(|e| invalid(format!("venue: {e}")))?;
    let base = def["url"].as_str().unwrap_or(venue.default_ws_url());
    let symbols = def["symbols"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            Symbol::parse(s.as_str().unwrap_or_default())
                .map_err(|e| invalid(format!("symbols: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let channels = def["channels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let c = c.as_str().unwrap_or_default();
            Channel::from_name(c).ok_or_else(|| {
                invalid(format!(
                    "channels: unknown channel {c:?}; known: {}",
                    channel_names()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut plan = venue
        .plan(base, &symbols, &channels)
        .map_err(|e| invalid(format!("cannot subscribe: {e}")))?;
    match def.get("auth").filter(|a| !a.is_null()) {
        None => {}
        Some(a) if a["type"] == "none" => {}
        Some(a) if a["type"] == "api_key" && a["in"] == "query" => {
            let (key, value) = (a["name"].as_str(), a["value"].as_str());
            let (Some(key), Some(value)) = (key, value) else {
                return Err(invalid("auth: api_key needs name and value"));
            };
            let mut url = url::Url::parse(&plan.url).map_err(|e| invalid(format!("url: {e}")))?;
            url.query_pairs_mut().append_pair(key, value);
            plan.url = url.into();
        }
        Some(_) => {
            return Err(invalid(
                "auth: a websocket connector takes only type api_key with in: query (Finnhub's token)",
            ));
        }
    }
    let idle_ms = match def.get("idle_timeout_ms").filter(|v| !v.is_null()) {
        None => 60_000,
        Some(v) => v
            .as_u64()
            .filter(|ms| (IDLE_TIMEOUT_MS.0..=IDLE_TIMEOUT_MS.1).contains(ms))
            .ok_or_else(|| invalid("idle_timeout_ms must be 1000 to 600000"))?,
    };
    let archive = match def.get("archive").filter(|v| !v.is_null()) {
        None => None,
        Some(a) => {
            let hours = a
                .get("retention_hours")
                .and_then(Value::as_u64)
                .filter(|h| (1..=MAX_ARCHIVE_HOURS).contains(h))
                .ok_or_else(|| {
                    invalid(format!(
                        "archive.retention_hours must be 1 to {MAX_ARCHIVE_HOURS}"
                    ))
                })?;
            Some(Duration::from_secs(hours * 3600))
        }
    };
    let binance = matches!(venue, Venue::Binance | Venue::BinanceFutures);
    let sequences: Vec<Channel> = channels
        .iter()
        .copied()
        .filter(|c| matches!(c, Channel::Trades | Channel::AggTrades))
        .collect();
    let sequential_ids = binance && sequences.len() == 1;
    let rest_url = match def.get("rest_url").filter(|v| !v.is_null()) {
        Some(v) => {
            let text = v
                .as_str()
                .ok_or_else(|| invalid("rest_url must be a string"))?;
            check_url("rest_url", text, &["http", "https"])?;
            Some(
                url::Url::parse(text)
                    .map_err(|e| invalid(format!("rest_url: invalid URL {text:?}: {e}")))?,
            )
        }
        None if base.trim_end_matches('/') == venue.default_ws_url() => Some(
            url::Url::parse(venue.default_rest_url())
                .map_err(|e| invalid(format!("rest_url: {e}")))?,
        ),
        None => None,
    };
    Ok(WsDefinition {
        venue,
        plan,
        idle_timeout: Duration::from_millis(idle_ms),
        sequential_ids,
        id_channel: sequences.first().copied().filter(|_| sequential_ids),
        rest_url,
        archive,
    })
}

/// What a REST connector's runner needs, typed from its definition.
#[derive(Debug, Clone)]
pub struct RestDefinition {
    pub request: RequestSpec,
    pub mapping: FieldMapping,
    /// The symbol of every record when the mapping has no `symbol`.
    pub symbol: Option<Symbol>,
}

/// Reads a REST definition into its request (the connector's
/// `polling_interval_ms` as the request's interval), mapping and fixed
/// symbol, checking each (the mapping compiles, the request validates).
pub fn rest_definition(def: &Value) -> Result<RestDefinition, ConnectorError> {
    let mut request = Map::new();
    for (from, to) in [
        ("method", "method"),
        ("url", "url"),
        ("headers", "headers"),
        ("query", "query"),
        ("body", "body"),
        ("auth", "auth"),
        ("polling_interval_ms", "interval_ms"),
        ("timeout_ms", "timeout_ms"),
    ] {
        if let Some(v) = def.get(from).filter(|v| !v.is_null()) {
            request.insert(to.to_string(), v.clone());
        }
    }
    let request: RequestSpec = serde_json::from_value(Value::Object(request))
        .map_err(|e| invalid(format!("invalid rest connector: {e}")))?;
    if let Err(errors) = request.validate() {
        let text: Vec<String> = errors
            .0
            .iter()
            .map(|e| {
                let field = if e.field == "interval_ms" {
                    "polling_interval_ms"
                } else {
                    &e.field
                };
                format!("{field}: {}", e.message)
            })
            .collect();
        return Err(invalid(text.join("; ")));
    }
    let mapping: FieldMapping = serde_json::from_value(def["mapping"].clone())
        .map_err(|e| invalid(format!("mapping: {e}")))?;
    mapping.compile().map_err(|e| invalid(e.to_string()))?;
    let symbol = match def.get("symbol") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Symbol::parse(s).map_err(|e| invalid(format!("symbol: {e}")))?)
        }
        Some(_) => return Err(invalid("symbol must be a string")),
    };
    Ok(RestDefinition {
        request,
        mapping,
        symbol,
    })
}

fn check_auth(auth: &Value) -> Result<(), ConnectorError> {
    let Value::Object(a) = auth else {
        return Err(invalid("auth must be an object with a type"));
    };
    let kind = str_field(a, "type")?.ok_or_else(|| invalid("auth.type is required"))?;
    let required: &[&str] = match kind {
        "none" => &[],
        "api_key" => &["name", "value"],
        "bearer" => &["token"],
        "basic" => &["username", "password"],
        "hmac_binance" => &["api_key", "secret"],
        "hmac_okx" => &["api_key", "secret", "passphrase"],
        other => {
            return Err(invalid(format!(
                "auth.type: unknown {other:?}; expected none, api_key, bearer, basic, hmac_binance or hmac_okx"
            )));
        }
    };
    for field in required {
        let given = a.get(*field).and_then(Value::as_str);
        if given.is_none_or(str::is_empty) {
            return Err(invalid(format!(
                "auth.{field} is required for auth type {kind}"
            )));
        }
    }
    Ok(())
}

fn spec_name(spec: &Value) -> Result<String, ConnectorError> {
    spec["name"]
        .as_str()
        .map(|s| s.trim().to_string())
        .ok_or_else(|| invalid("name is required"))
}

fn spec_kind(spec: &Value) -> Result<ConnectorKind, ConnectorError> {
    spec["kind"]
        .as_str()
        .and_then(ConnectorKind::parse)
        .ok_or_else(|| invalid("kind is required: rest or websocket"))
}

/// The secret paths of a definition: `auth.<field>` and `headers.<name>`.
fn secret_slots(spec: &mut Value) -> Vec<(String, &mut Value)> {
    let mut out = Vec::new();
    let Value::Object(obj) = spec else {
        return out;
    };
    for (section, value) in obj.iter_mut() {
        let Value::Object(fields) = value else {
            continue;
        };
        match section.as_str() {
            "auth" => out.extend(
                fields
                    .iter_mut()
                    .filter(|(k, _)| !PUBLIC_AUTH_FIELDS.contains(&k.as_str()))
                    .map(|(k, v)| (format!("auth.{k}"), v)),
            ),
            "headers" => out.extend(fields.iter_mut().map(|(k, v)| (format!("headers.{k}"), v))),
            _ => {}
        }
    }
    out
}

/// Takes the secrets out of `spec` (leaving [`REDACTED`]) and returns them
/// by path. A [`REDACTED`] value keeps the one in `previous`.
fn split_secrets(
    spec: &mut Value,
    previous: Option<&Map<String, Value>>,
) -> Result<Map<String, Value>, ConnectorError> {
    let mut secrets = Map::new();
    for (path, slot) in secret_slots(spec) {
        let value = std::mem::replace(slot, Value::String(REDACTED.into()));
        if value.as_str() == Some(REDACTED) {
            match previous.and_then(|p| p.get(&path)) {
                Some(v) => {
                    secrets.insert(path, v.clone());
                }
                None => {
                    return Err(invalid(format!(
                        "{path}: {REDACTED} stands for a stored secret, and there is none"
                    )));
                }
            }
        } else {
            secrets.insert(path, value);
        }
    }
    Ok(secrets)
}

/// Puts the secrets back in their places.
fn merge_secrets(spec: &mut Value, secrets: &Map<String, Value>) {
    for (path, slot) in secret_slots(spec) {
        if let Some(v) = secrets.get(&path) {
            *slot = v.clone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rest(auth: Value) -> Value {
        json!({"name": "n", "kind": "rest", "url": "https://api.example.com/v1/trades",
               "method": "GET", "polling_interval_ms": 500, "auth": auth,
               "headers": {"X-Custom": "h-secret"},
               "mapping": {"records": "$.data[*]", "symbol": "$.s", "price": "$.p", "ts": "$.t", "ts_unit": "ms"}})
    }

    #[test]
    fn short_secrets_are_masked_as_tokens_long_ones_anywhere() {
        let secrets = vec!["a-long-secret".to_string(), "s".to_string()];
        // A long secret is masked even inside a word.
        assert_eq!(mask_secrets("xa-long-secretx", &secrets), "x***x");
        // A one-letter secret leaves words alone and masks the token.
        assert_eq!(
            mask_secrets("upstream said: key=s&sig=s, token s.", &secrets),
            "upstream said: key=***&sig=***, token ***."
        );
        assert_eq!(mask_secrets("s", &secrets), "***");
        assert_eq!(mask_secrets("?key%3Ds%26", &secrets), "?key%3D***%26");
        assert_eq!(mask_secrets("ss sss", &secrets), "ss sss");
        // Multi-byte text around a short secret.
        assert_eq!(mask_secrets("é s é", &secrets), "é *** é");
        // Basic auth's encoding is a secret of its own and masked whole.
        let basic = preview_secrets(&rest(
            json!({"type": "basic", "username": "u", "password": "p"}),
        ));
        assert_eq!(basic, ["h-secret", "dTpw", "p"]);
        assert_eq!(
            mask_secrets(
                "Basic dTpw; password p; X-Custom: h-secret; upstream",
                &basic
            ),
            "Basic ***; password ***; X-Custom: ***; upstream"
        );
    }

    #[test]
    fn secrets_are_split_out_and_merged_back() {
        let mut spec = check(rest(
            json!({"type": "hmac_okx", "api_key": "k", "secret": "s", "passphrase": "p"}),
        ))
        .unwrap();
        let original = spec.clone();
        let secrets = split_secrets(&mut spec, None).unwrap();
        let shown = spec.to_string();
        for s in ["\"k\"", "\"s\"", "\"p\"", "h-secret"] {
            assert!(!shown.contains(s), "{s} leaked into {shown}");
        }
        assert_eq!(spec["auth"]["type"], "hmac_okx");
        assert_eq!(spec["auth"]["secret"], REDACTED);
        assert_eq!(secrets.len(), 4);
        let mut back = spec.clone();
        merge_secrets(&mut back, &secrets);
        assert_eq!(back, original);
        // Sent back redacted, the stored values stay; a new value replaces.
        let mut again = spec.clone();
        again["auth"]["secret"] = json!("s2");
        let kept = split_secrets(&mut again, Some(&secrets)).unwrap();
        assert_eq!(kept["auth.secret"], "s2");
        assert_eq!(kept["auth.api_key"], "k");
        // Redacted with nothing stored is refused.
        let mut fresh = spec.clone();
        assert!(matches!(
            split_secrets(&mut fresh, None),
            Err(ConnectorError::Validation(_))
        ));
    }

    #[test]
    fn the_raw_archive_is_optional_with_a_bounded_retention() {
        let ws = json!({"name": "b", "kind": "websocket", "venue": "binance", "url": "ws://127.0.0.1:9",
                        "symbols": ["BTC-USDT"], "channels": ["trades"]});
        assert_eq!(ws_definition(&ws).unwrap().archive, None);
        let mut kept = ws.clone();
        kept["archive"] = json!({"retention_hours": 48});
        assert_eq!(
            ws_definition(&kept).unwrap().archive,
            Some(Duration::from_secs(48 * 3600))
        );
        for bad in [
            json!({}),
            json!({"retention_hours": 0}),
            json!({"retention_hours": "1"}),
            json!({"retention_hours": 9000}),
        ] {
            let mut v = ws.clone();
            v["archive"] = bad;
            let e = check(v).unwrap_err().to_string();
            assert!(
                e.contains("archive.retention_hours must be 1 to 8784"),
                "{e}"
            );
        }
    }

    #[test]
    fn websocket_definitions_take_a_rest_url_for_backfill() {
        let ws = |extra: Value| {
            let mut v = json!({"name": "b", "kind": "websocket", "venue": "binance",
                               "symbols": ["BTC-USDT"], "channels": ["agg_trades", "quotes"]});
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        let rest = |d: &WsDefinition| d.rest_url.as_ref().map(url::Url::as_str).map(str::to_owned);

        // The public stream: the public REST base.
        let d = ws_definition(&check(ws(json!({}))).unwrap()).unwrap();
        assert_eq!(rest(&d).as_deref(), Some("https://api.binance.com/"));
        assert!(d.sequential_ids);
        assert_eq!(d.id_channel, Some(Channel::AggTrades));
        let d = ws_definition(&ws(json!({"url": "wss://stream.binance.com:9443/"}))).unwrap();
        assert_eq!(rest(&d).as_deref(), Some("https://api.binance.com/"));
        let mut futures = ws(json!({"venue": "binance_futures", "channels": ["trades"]}));
        futures["symbols"] = json!(["BTC-USDT-PERP"]);
        let d = ws_definition(&futures).unwrap();
        assert_eq!(rest(&d).as_deref(), Some("https://fapi.binance.com/"));
        assert_eq!(d.id_channel, Some(Channel::Trades));

        // Another stream (a mock): no default, so no call to the real venue.
        let d = ws_definition(&ws(json!({"url": "ws://127.0.0.1:9"}))).unwrap();
        assert_eq!(d.rest_url, None);
        // Unless one is given.
        let def = check(ws(
            json!({"url": "ws://127.0.0.1:9", "rest_url": "http://127.0.0.1:10/binance"}),
        ))
        .unwrap();
        let d = ws_definition(&def).unwrap();
        assert_eq!(rest(&d).as_deref(), Some("http://127.0.0.1:10/binance"));

        // Both id sequences subscribed: nothing is checked, so nothing to fill.
        let d = ws_definition(&ws(json!({"channels": ["trades", "agg_trades"]}))).unwrap();
        assert!(!d.sequential_ids);
        assert_eq!(d.id_channel, None);

        for (bad, want) in [
            (
                json!("ftp://api.binance.com"),
                r#"rest_url: "ftp://api.binance.com" must be a http or https URL with a host"#,
            ),
            (
                json!("wss://api.binance.com"),
                r#"rest_url: "wss://api.binance.com" must be a http or https URL with a host"#,
            ),
            (json!("not a url"), r#"rest_url: invalid URL "not a url""#),
            (json!(42), "rest_url must be a string"),
        ] {
            let def = ws(json!({ "rest_url": bad }));
            for result in [
                check(def.clone()).map(|_| ()),
                ws_definition(&def).map(|_| ()),
            ] {
                match result {
                    Err(ConnectorError::Validation(msg)) => {
                        assert!(msg.starts_with(want), "{bad}: {msg:?} is not {want:?}")
                    }
                    other => panic!("{bad}: expected a validation error, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn record_cursors_are_the_digits_of_a_seq() {
        let re = regex::Regex::new(RECORD_CURSOR_PATTERN).unwrap();
        for (c, seq) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("0000000000000000042", Some(42)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9999999999999999999", Some(i64::MAX)),
            ("", None),
            ("-1", None),
            ("+1", None),
            ("1.0", None),
            ("00000000000000000001", None),
            (" 1", None),
        ] {
            assert_eq!(record_cursor(c), seq, "{c:?}");
            assert_eq!(re.is_match(c), seq.is_some(), "{c:?}");
        }
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let ws = json!({"name": "b", "kind": "websocket", "venue": "binance", "url": "ws://127.0.0.1:9",
                        "symbols": ["BTC-USDT"], "channels": ["trades"]});
        check(ws.clone()).unwrap();
        check(rest(json!({"type": "bearer", "token": "t"}))).unwrap();
        let cases = [
            (json!({"kind": "rest"}), "name is required"),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["symbol"] = json!(5);
                    v
                },
                "symbol must be a string",
            ),
            (
                rest(json!({"type": "bearer", "token": "a\nb"})),
                "auth.token: auth.token is not a valid HTTP header value",
            ),
            (json!({"name": "x", "kind": "ftp"}), "kind: unknown"),
            (
                {
                    let mut v = ws.clone();
                    v["venue"] = json!("kraken");
                    v
                },
                "venue: unknown venue",
            ),
            (
                {
                    let mut v = ws.clone();
                    v["url"] = json!("http://x");
                    v
                },
                "must be a ws or wss URL",
            ),
            (
                {
                    let mut v = ws.clone();
                    v["symbols"] = json!([]);
                    v
                },
                "symbols: at least one",
            ),
            (
                {
                    let mut v = ws.clone();
                    v["symbols"] = json!(["A B"]);
                    v
                },
                "symbols:",
            ),
            (
                {
                    let mut v = ws.clone();
                    v["channels"] = json!(["depth"]);
                    v
                },
                "channels: unknown channel",
            ),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["polling_interval_ms"] = json!(50);
                    v
                },
                "polling_interval_ms must be 100 to 60000",
            ),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["polling_interval_ms"] = json!(60_001);
                    v
                },
                "polling_interval_ms must be 100 to 60000",
            ),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["method"] = json!("PATCH");
                    v
                },
                "method:",
            ),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["url"] = json!("not a url");
                    v
                },
                "url: invalid URL",
            ),
            (
                {
                    let mut v = rest(json!({"type": "none"}));
                    v["mapping"] = json!({"records": "$.x"});
                    v
                },
                "mapping.price is required",
            ),
            (rest(json!({"type": "bearer"})), "auth.token is required"),
            (rest(json!({"type": "oauth"})), "auth.type: unknown"),
        ];
        for (def, want) in cases {
            match check(def.clone()) {
                Err(ConnectorError::Validation(msg)) => {
                    assert!(msg.contains(want), "{def}: {msg:?} lacks {want:?}")
                }
                other => panic!("{def}: expected a validation error, got {other:?}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Preview (`POST /api/v1/connectors/test`, kept apart from the definition
// parsing above): a REST definition is checked like a create, its request
// sent once, and its mapping applied to the answer, so a user can build a
// mapping without guessing. Nothing is stored, published or scheduled.

/// The part of the upstream's body a preview shows, bytes (the mapping
/// always reads the whole body).
pub const PREVIEW_BODY_CAP: usize = 64 * 1024;

/// Most ticks (and most record errors) a preview lists; the counts beside
/// them are complete.
pub const PREVIEW_MAX_ITEMS: usize = 1_000;

/// What one record of a preview became.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PreviewTick {
    /// Position of the record among those `mapping.records` selected.
    pub index: usize,
    pub symbol: Symbol,
    #[serde(with = "marketd_model::decimal_number")]
    pub price: marketd_model::Decimal,
    #[serde(with = "marketd_model::decimal_number")]
    pub size: marketd_model::Decimal,
    /// ns since the epoch, UTC (the receive time when the mapping has no `ts`).
    pub ts_event: i64,
    pub side: Option<marketd_sources::connectors::Side>,
    pub trade_id: Option<String>,
}

/// A record the mapping could not read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PreviewRecordError {
    pub index: usize,
    /// The mapping field that failed (`price`, `ts`, …).
    pub field: &'static str,
    pub message: String,
}

/// One fetch of a REST connector and what its mapping made of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    /// The upstream's HTTP status.
    pub status: u16,
    /// The body as text (lossy UTF-8), secrets of the definition masked,
    /// cut to [`PREVIEW_BODY_CAP`] bytes at a character boundary.
    pub body: String,
    /// The body's full length, bytes.
    pub body_bytes: usize,
    /// Whether `body` is cut.
    pub truncated: bool,
    /// Why the mapping was not applied: the answer is not a 2xx (the
    /// runner would count it as a failed poll) or not JSON.
    pub body_error: Option<String>,
    /// Records `mapping.records` selected.
    pub records: usize,
    /// Records that mapped (`ticks` lists the first [`PREVIEW_MAX_ITEMS`]).
    pub mapped: usize,
    /// Records that did not (`errors` lists the first [`PREVIEW_MAX_ITEMS`]).
    pub rejected: usize,
    pub ticks: Vec<PreviewTick>,
    pub errors: Vec<PreviewRecordError>,
}

/// One HTTP client for every preview of the process (its connection pool).
fn preview_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .user_agent(concat!("marketd/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

impl ConnectorService {
    /// [`preview`] with the process's shared client.
    pub async fn preview(&self, definition: Value) -> Result<Preview, ConnectorError> {
        preview(preview_client(), definition).await
    }
}

/// Checks `definition` as [`ConnectorService::create`] does, sends its
/// request once (no retries, no host limiter: a person is waiting on one
/// answer) and maps the answer as the runner would.
///
/// A websocket definition is refused ([`ConnectorError::Validation`]): a
/// stream has no single answer to show, and the venues' normalizers are
/// typed, not user-mapped. An upstream that cannot be reached is
/// [`ConnectorError::Upstream`]; every answer, 4xx and 5xx included, is a
/// preview. The definition's secrets are masked in everything returned.
pub async fn preview(
    client: &reqwest::Client,
    definition: Value,
) -> Result<Preview, ConnectorError> {
    let spec = check(definition)?;
    if spec_kind(&spec)? != ConnectorKind::Rest {
        return Err(invalid(
            "kind: a preview fetches once, so it is for rest connectors only; \
             a websocket connector's venue decoder is fixed (start it and read its status)",
        ));
    }
    let def = rest_definition(&spec)?;
    let mapping = def.mapping.compile().map_err(|e| invalid(e.to_string()))?;
    let secrets = preview_secrets(&spec);
    let mask = |text: &str| mask_secrets(text, &secrets);
    let outcome = marketd_sources::connectors::fetch_once(client, &def.request, now_ns())
        .await
        .map_err(|e| match e {
            marketd_sources::connectors::FetchError::Spec(v) => invalid(mask(&v.to_string())),
            marketd_sources::connectors::FetchError::Auth(a) => {
                invalid(mask(&format!("auth: {a}")))
            }
            other => ConnectorError::Upstream(mask(&format!("upstream unreachable: {other}"))),
        })?;
    let received = now_ns();
    let text = mask(&String::from_utf8_lossy(&outcome.body));
    let mut cut = text.len().min(PREVIEW_BODY_CAP);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut preview = Preview {
        status: outcome.status.as_u16(),
        body: text[..cut].to_string(),
        body_bytes: outcome.body.len(),
        truncated: cut < text.len(),
        body_error: None,
        records: 0,
        mapped: 0,
        rejected: 0,
        ticks: Vec::new(),
        errors: Vec::new(),
    };
    if !outcome.is_success() {
        preview.body_error = Some(format!(
            "upstream answered {}; the mapping is applied to 2xx answers only",
            outcome.status
        ));
        return Ok(preview);
    }
    let body: Value = match serde_json::from_slice(&outcome.body) {
        Ok(v) => v,
        Err(e) => {
            preview.body_error = Some(format!("the answer is not JSON: {e}"));
            return Ok(preview);
        }
    };
    let source: Arc<str> = spec_name(&spec)?.into();
    let ctx = marketd_sources::connectors::ExtractContext {
        source,
        symbol: def.symbol.clone(),
        received_ns: received,
    };
    let (trades, errors) = mapping.extract_trades(&body, &ctx);
    preview.mapped = trades.len();
    preview.rejected = errors.len();
    preview.records = trades.len() + errors.len();
    preview.ticks = trades
        .into_iter()
        .take(PREVIEW_MAX_ITEMS)
        .map(|t| PreviewTick {
            index: t.index,
            symbol: t.tick.symbol,
            price: t.tick.price,
            size: t.tick.size,
            ts_event: t.tick.ts_event,
            side: t.side,
            trade_id: t.tick.trade_id,
        })
        .collect();
    preview.errors = errors
        .into_iter()
        .take(PREVIEW_MAX_ITEMS)
        .map(|e| PreviewRecordError {
            index: e.index,
            field: e.field,
            message: mask(&e.message),
        })
        .collect();
    Ok(preview)
}

/// The secret texts of a definition as they could come back in an answer:
/// each secret value, and Basic auth's encoded credentials.
fn preview_secrets(spec: &Value) -> Vec<String> {
    let mut spec = spec.clone();
    let mut out: Vec<String> = secret_slots(&mut spec)
        .into_iter()
        .filter_map(|(_, v)| v.as_str().map(str::to_string))
        .filter(|s| !s.is_empty() && s != REDACTED)
        .collect();
    let auth = &spec["auth"];
    if auth["type"] == "basic" {
        use base64::Engine as _;
        let user = auth["username"].as_str().unwrap_or_default();
        let pass = auth["password"].as_str().unwrap_or_default();
        out.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")));
    }
    // Longest first, so a secret containing another is masked whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// Secrets at least this long are masked wherever they appear. A shorter one
/// is masked only where it stands as a token of its own: a one-letter secret
/// masked inside every word would garble the whole answer ("upstream" shown
/// as "up***tream") while hiding nothing a reader could not guess anyway.
const MASK_ANYWHERE_LEN: usize = 8;

fn mask_secrets(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_string();
    for s in secrets {
        if !text.contains(s.as_str()) {
            continue;
        }
        if s.chars().count() >= MASK_ANYWHERE_LEN {
            text = text.replace(s.as_str(), REDACTED);
            continue;
        }
        let mut masked = String::with_capacity(text.len());
        let mut copied = 0;
        for (at, _) in text.match_indices(s.as_str()) {
            if !stands_alone(&text, at, at + s.len()) {
                continue;
            }
            masked.push_str(&text[copied..at]);
            masked.push_str(REDACTED);
            copied = at + s.len();
        }
        masked.push_str(&text[copied..]);
        text = masked;
    }
    text
}

/// Whether `text[start..end]` has no letter or digit right before or after
/// it. A percent-escape just before it (`key%3Ds`) is a boundary too: the
/// escape's last hex digit is not part of the secret's word.
fn stands_alone(text: &str, start: usize, end: usize) -> bool {
    let before = &text[..start];
    let escaped = before.len() >= 3
        && before.is_char_boundary(before.len() - 3)
        && before[before.len() - 3..].starts_with('%')
        && before[before.len() - 2..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit());
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    (escaped || !word(before.chars().next_back())) && !word(text[end..].chars().next())
}
