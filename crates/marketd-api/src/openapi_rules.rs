//! What the server validates, written into the OpenAPI document it serves,
//! so that a request valid by the document is accepted and one invalid by
//! it is refused (schemathesis' `positive_data_acceptance` and
//! `negative_data_rejection`, gated by `scripts/proof.d/api`).
//!
//! Every pattern and bound here is the one the code that checks uses: the
//! regular expressions are constants beside their parsers (each tested
//! against its parser), the limits come from this server's configuration
//! ([`ServedRules::of`]), so the document changes with `[http] max_page`,
//! `[polling]`, `[aggregator]`, `[tda]` and the enabled providers.
//!
//! What JSON Schema cannot say is listed in docs/proof.md ("api"): rules
//! across fields or parameters (`from` before `to`; points of one
//! dimension; a symmetric distance matrix with a zero diagonal; a bar's
//! death not before its birth; streams per venue connection), grammars
//! that are not regular (URLs as WHATWG parses them, JSONPath), values
//! that depend on stored state (an `upload_id` that exists, `***` standing
//! for a stored secret), a prime modulus, and an upload's body in its
//! format. The descriptions say them.

use marketd_engine::Services;
use marketd_engine::services::access::{
    CREDENTIAL_NAME_PATTERN, MAX_CREDENTIAL_CHARS, MAX_KEY_DAYS, MAX_NAME_CHARS, NAME_PATTERN,
};
use marketd_engine::services::connectors::{
    IDLE_TIMEOUT_MS, MAX_ARCHIVE_HOURS, POLLING_INTERVAL_MS, RECORD_CURSOR_PATTERN,
};
use marketd_engine::tda::TdaConfig;
use marketd_engine::tda::problem::DIMENSION_KEY_PATTERN;
use marketd_engine::{AggregatorConfig, PollingConfig};
use marketd_model::time::EPOCH_BOUND_PATTERN;
use marketd_model::{Interval, SYMBOL_MAX_CHARS, TdaJobStatus, UploadFormat};
use marketd_sources::connectors::{MAX_TIMEOUT, MIN_TIMEOUT};
use marketd_sources::venues::{Channel, Venue};
use marketd_store::ticks::TICK_CURSOR_PATTERN;
use marketd_tda::summaries::{MAX_DIMENSION, MAX_LAYERS, MAX_PIXELS, MAX_SAMPLES, SUMMARIES};
use serde_json::{Map, Value, json};

/// The characters `str::trim` removes, as a class body (as in
/// `marketd_model::SYMBOL_PATTERN`).
const WS: &str = marketd_model::white_space_class!();
/// A symbol character that may start or end it, and one that may stand
/// anywhere inside a part (between separators).
const SYM_EDGE: &str = "[A-Za-z0-9=^]";
const SYM_PART: &str = "[A-Za-z0-9=^.]";
/// A separator (`/` and `_` read as `-`).
const SYM_SEP: &str = "[-/_]";

/// What a venue lists, as a regular expression over the symbol as a client
/// writes it (see `Venue::venue_symbol`): Binance spot `BASE-QUOTE` of
/// letters and digits, Binance USD-M futures `BASE-QUOTE-PERP` or
/// `BASE-QUOTE-YYMMDD`, OKX two, three or five parts, Finnhub one or two.
pub fn venue_symbol_pattern(venue: Venue) -> String {
    let (e, p, s) = (SYM_EDGE, SYM_PART, SYM_SEP);
    let alnum = "[A-Za-z0-9]+";
    let body = match venue {
        Venue::Binance => format!("{alnum}{s}{alnum}"),
        Venue::BinanceFutures => {
            format!("{alnum}{s}{alnum}{s}(?:[Pp][Ee][Rr][Pp]|[0-9]{{6}})")
        }
        Venue::Okx => format!("{e}{p}*(?:(?:{s}{p}+)?|(?:{s}{p}+){{3}}){s}{p}*{e}"),
        Venue::Finnhub => format!("(?:{e}(?:{p}*{e})?|{e}{p}*{s}{p}*{e})"),
    };
    format!("^[{WS}]*{body}[{WS}]*$")
}

/// What a header value may hold (`http::HeaderValue::from_str`): no
/// control character but tab.
const HEADER_VALUE_PATTERN: &str = r"^[^\u0000-\u0008\u000A-\u001F\u007F]*$";
/// A header name (`http::HeaderName::from_bytes`): RFC 9110 token
/// characters, at most 65535.
const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
const MAX_HEADER_NAME: usize = 65_535;
/// A custom header name of a connector's `headers`.
const CONNECTOR_HEADER_NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// A `source=` filter: 1-64 visible ASCII characters.
const SOURCE_PATTERN: &str = "^[!-~]{1,64}$";
/// A moving-average kind, any case.
const MA_KIND_PATTERN: &str = "^(?:[Ss][Mm][Aa]|[Ee][Mm][Aa])$";

/// The limits of this server that the document states.
#[derive(Debug, Clone)]
pub struct ServedRules {
    max_page: u32,
    /// Enabled providers, and whether the default one is among them.
    providers: Vec<String>,
    default_provider_enabled: bool,
    aggregator: AggregatorConfig,
    polling: PollingConfig,
    tda: TdaConfig,
}

impl ServedRules {
    /// The rules of the server whose services these are.
    pub fn of(services: &Services) -> Self {
        let registry = services.prices.providers();
        let providers: Vec<String> = registry.names().iter().map(|n| n.to_string()).collect();
        ServedRules {
            max_page: services.series.max_page(),
            default_provider_enabled: providers
                .iter()
                .any(|p| p == services.prices.default_provider()),
            providers,
            aggregator: services.series.aggregator().clone(),
            polling: services.polling.limits().clone(),
            tda: services.tda.config().clone(),
        }
    }

    /// Writes the rules into `doc`, the document as JSON.
    pub fn apply(&self, doc: &mut Value) {
        self.parameters(doc);
        self.bodies(doc);
    }

    fn parameters(&self, doc: &mut Value) {
        let symbol = json!({"$ref": "#/components/schemas/Symbol"});
        let time = json!({
            "description": "An integer number of seconds, milliseconds, microseconds or nanoseconds since the epoch (told apart by magnitude), or an RFC 3339 date-time; bounds beyond what nanoseconds in 64 bits hold are clamped. `from` must be before `to`.",
            "anyOf": [
                {"type": "string", "pattern": EPOCH_BOUND_PATTERN},
                {"type": "string", "format": "date-time"},
            ],
        });
        let source = json!({"type": "string", "pattern": SOURCE_PATTERN});
        let page = limit(self.max_page);
        let all_intervals: Vec<&str> = Interval::ALL.iter().map(|i| i.as_str()).collect();
        let series = |doc: &mut Value, path: &str| {
            param(doc, path, "get", "symbol", symbol.clone(), Some(true));
            param(doc, path, "get", "source", source.clone(), None);
            param(doc, path, "get", "from", time.clone(), None);
            param(doc, path, "get", "to", time.clone(), None);
            param(doc, path, "get", "limit", page.clone(), None);
        };
        let provider = json!({"type": "string", "enum": self.providers});
        param(
            doc,
            "/api/v1/prices/latest",
            "get",
            "symbol",
            symbol.clone(),
            Some(true),
        );
        param(
            doc,
            "/api/v1/prices/latest",
            "get",
            "provider",
            provider,
            Some(!self.default_provider_enabled),
        );

        series(doc, "/api/v1/prices/history");
        param(
            doc,
            "/api/v1/prices/history",
            "get",
            "cursor",
            json!({"type": "string", "pattern": TICK_CURSOR_PATTERN}),
            None,
        );

        series(doc, "/api/v1/bars");
        param(
            doc,
            "/api/v1/bars",
            "get",
            "interval",
            json!({"type": "string", "enum": all_intervals}),
            None,
        );

        let ma = "/api/v1/indicators/moving-average";
        series(doc, ma);
        let agg = &self.aggregator;
        param(
            doc,
            ma,
            "get",
            "window",
            json!({"type": "integer", "enum": agg.ma_windows}),
            // Without it, 20 or the first window configured.
            Some(agg.ma_windows.is_empty()),
        );
        param(
            doc,
            ma,
            "get",
            "kind",
            json!({"type": "string", "pattern": MA_KIND_PATTERN}),
            None,
        );
        let ma_intervals: Vec<&str> = agg.ma_intervals.iter().map(|i| i.as_str()).collect();
        param(
            doc,
            ma,
            "get",
            "interval",
            json!({"type": "string", "enum": ma_intervals}),
            // Without it, `1s`.
            Some(!agg.ma_intervals.contains(&Interval::S1)),
        );

        let data = "/api/v1/connectors/{id}/data";
        param(
            doc,
            data,
            "get",
            "cursor",
            json!({"type": "string", "pattern": RECORD_CURSOR_PATTERN}),
            None,
        );
        param(doc, data, "get", "limit", page.clone(), None);

        let statuses: Vec<&str> = TdaJobStatus::ALL.iter().map(|s| s.as_str()).collect();
        let lists = limit(crate::routes::tda::MAX_PAGE);
        param(
            doc,
            "/api/v1/jobs",
            "get",
            "status",
            json!({"type": "string", "enum": statuses}),
            None,
        );
        param(doc, "/api/v1/jobs", "get", "limit", lists.clone(), None);
        param(doc, "/api/v1/uploads", "get", "limit", lists, None);
        let mut formats: Vec<&str> = UploadFormat::ALL.iter().map(|f| f.as_str()).collect();
        formats.push("distance");
        param(
            doc,
            "/api/v1/uploads",
            "post",
            "format",
            json!({"type": "string", "enum": formats}),
            // Required with a raw body (a multipart body may carry it).
            Some(true),
        );
        param(
            doc,
            "/api/v1/jobs",
            "post",
            "Idempotency-Key",
            json!({"type": "string", "pattern": crate::routes::tda::IDEMPOTENCY_KEY_PATTERN}),
            None,
        );

        let signals = "/api/v1/tda/signals";
        param(
            doc,
            signals,
            "get",
            "basket",
            json!({"type": "string", "minLength": 1}),
            Some(true),
        );
        param(doc, signals, "get", "from", time.clone(), None);
        param(doc, signals, "get", "to", time, None);
        param(doc, signals, "get", "limit", page, None);

        let credential = json!({"type": "string", "pattern": CREDENTIAL_NAME_PATTERN});
        for method in ["put", "delete"] {
            param(
                doc,
                "/api/v1/credentials/{name}",
                method,
                "name",
                credential.clone(),
                Some(true),
            );
        }
    }

    fn bodies(&self, doc: &mut Value) {
        let name = json!({
            "type": "string",
            "maxLength": MAX_NAME_CHARS,
            "pattern": NAME_PATTERN,
            "description": "1 to 64 characters, no control character, not only whitespace",
        });
        let providers: Vec<Value> = self.providers.iter().map(|p| json!(p)).collect();
        let (lo, hi) = self.polling.interval_bounds_s();
        let mut provider_values = providers.clone();
        if self.default_provider_enabled {
            provider_values.push(Value::Null);
        }
        let mut poll_required = vec!["symbols", "interval"];
        if !self.default_provider_enabled {
            poll_required.push("provider");
        }
        let schemas = [
            (
                "CreateKey",
                json!({
                    "type": "object",
                    "description": "Body of `POST /api-keys`.",
                    "additionalProperties": false,
                    "required": ["name", "role"],
                    "properties": {
                        "name": name.clone(),
                        "role": {"$ref": "#/components/schemas/Role"},
                        "expires_in_days": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": MAX_KEY_DAYS,
                            "description": "Days until the key stops working; absent or null: it never expires.",
                        },
                    },
                }),
            ),
            (
                "PutCredential",
                json!({
                    "type": "object",
                    "description": "Body of `PUT /credentials/{name}`.",
                    "additionalProperties": false,
                    "required": ["value"],
                    "properties": {"value": {
                        "type": "string",
                        "format": "password",
                        "minLength": 1,
                        "maxLength": MAX_CREDENTIAL_CHARS,
                        "description": "The secret value. Never returned.",
                    }},
                }),
            ),
            (
                "PollRequest",
                json!({
                    "type": "object",
                    "description": "Body of `POST /prices/poll`.",
                    "additionalProperties": false,
                    "required": poll_required,
                    "properties": {
                        "symbols": {
                            "type": "array",
                            "minItems": 1,
                            "maxItems": self.polling.max_symbols,
                            "items": {"$ref": "#/components/schemas/Symbol"},
                            "description": "Symbols to poll; one job per distinct symbol.",
                        },
                        "interval": {
                            "type": "number",
                            "minimum": lo,
                            "maximum": hi,
                            "description": "Seconds between runs.",
                        },
                        "provider": {
                            "enum": provider_values,
                            "description": "Provider to poll (absent or null: the configured default provider).",
                        },
                    },
                }),
            ),
        ];
        for (component, schema) in schemas {
            set_schema(doc, component, schema);
        }
        self.tda_bodies(doc);
        connector_bodies(doc, &name);
    }

    fn tda_bodies(&self, doc: &mut Value) {
        let cfg = &self.tda;
        set_schema(doc, "TdaDiagram", diagram_schema());
        let summary_props = summary_properties();
        let summary_fields: Vec<&str> = summary_props
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "summaries")
            .collect();
        let dependent: Map<String, Value> = summary_fields
            .iter()
            .map(|k| (k.to_string(), json!(["summaries"])))
            .collect();

        let mut vr_props = Map::new();
        vr_props.insert("kind".into(), json!({"const": "vietoris-rips"}));
        vr_props.insert(
            "points".into(),
            json!({
                "type": "array",
                "minItems": 1,
                "maxItems": cfg.max_points,
                "description": "Rows of coordinates, every row as long as the first.",
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": cfg.max_coordinates,
                    "items": {"type": "number"},
                },
            }),
        );
        vr_props.insert(
            "distance_matrix".into(),
            json!({
                "type": "array",
                "minItems": 1,
                "maxItems": cfg.max_points,
                "description": "A full square matrix: symmetric, zeros on the diagonal.",
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": cfg.max_points,
                    "items": {"type": "number", "minimum": 0},
                },
            }),
        );
        vr_props.insert(
            "upload_id".into(),
            json!({"type": "string", "format": "uuid", "description": "An upload that exists (else 422 `UPLOAD_NOT_FOUND`)."}),
        );
        vr_props.insert(
            "max_dim".into(),
            json!({"type": "integer", "minimum": 0, "maximum": cfg.max_dim}),
        );
        vr_props.insert(
            "threshold".into(),
            json!({"type": ["number", "null"], "exclusiveMinimum": 0}),
        );
        vr_props.insert(
            "modulus".into(),
            json!({
                "type": "integer",
                "minimum": 2,
                "maximum": marketd_tda::MAX_MODULUS,
                "description": "A prime.",
            }),
        );
        vr_props.extend(summary_props.clone());
        let vr = |kind_required: bool| {
            let mut required = vec![];
            if kind_required {
                required.push("kind");
            }
            json!({
                "type": "object",
                "description": "A Vietoris–Rips request: exactly one of `points`, `distance_matrix` or `upload_id`; `max_dim` (1), `threshold` (none: the enclosing radius), `modulus` (2, a prime); optionally `summaries` with their parameters (see docs/tda.md).",
                "additionalProperties": false,
                "required": required,
                "properties": vr_props.clone(),
                "oneOf": [
                    {"required": ["points"]},
                    {"required": ["distance_matrix"]},
                    {"required": ["upload_id"]},
                ],
                "dependentRequired": dependent.clone(),
            })
        };
        let mut summaries_props = Map::new();
        summaries_props.insert("kind".into(), json!({"const": "summaries"}));
        summaries_props.insert(
            "diagrams".into(),
            json!({
                "type": "object",
                "description": "Bars per homology dimension.",
                "propertyNames": {"pattern": DIMENSION_KEY_PATTERN},
                "additionalProperties": {"$ref": "#/components/schemas/TdaDiagram"},
            }),
        );
        summaries_props.extend(summary_props);
        let summaries = |kind_required: bool| {
            let mut required = vec!["diagrams", "summaries"];
            if kind_required {
                required.push("kind");
            }
            json!({
                "type": "object",
                "description": "Summaries of given persistence diagrams (see docs/tda.md).",
                "additionalProperties": false,
                "required": required,
                "properties": summaries_props.clone(),
            })
        };
        let distance = |kind_required: bool| {
            let mut required = vec!["a", "b"];
            if kind_required {
                required.push("kind");
            }
            json!({
                "type": "object",
                "description": "Bottleneck or p-Wasserstein distance between diagrams `a` and `b`.",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "kind": {"const": "distance"},
                    "a": {"$ref": "#/components/schemas/TdaDiagram"},
                    "b": {"$ref": "#/components/schemas/TdaDiagram"},
                    "metric": {"enum": ["bottleneck", "wasserstein"]},
                    "p": {"type": "number", "minimum": 1},
                },
            })
        };
        set_schema(doc, "VietorisRipsRequest", vr(false));
        set_schema(doc, "SummariesRequest", summaries(false));
        set_schema(doc, "DistanceRequest", distance(false));
        set_schema(
            doc,
            "JobRequest",
            json!({
                "description": "A job: its `kind` and the kind's request fields (as the synchronous endpoints take them).",
                "oneOf": [vr(true), summaries(true), distance(true)],
            }),
        );
    }
}

/// `[[birth, death_or_null], ...]`.
fn diagram_schema() -> Value {
    json!({
        "type": "array",
        "maxItems": 1_000_000,
        "description": "Bars `[birth, death]`, death null for an infinite bar and never before birth.",
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "prefixItems": [{"type": "number"}, {"type": ["number", "null"]}],
        },
    })
}

/// The summary fields of a request (`marketd_tda::summaries::SummarySpec`
/// and its checks).
fn summary_properties() -> Map<String, Value> {
    let samples = json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SAMPLES});
    let layers = json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LAYERS});
    let positive = json!({"type": ["number", "null"], "exclusiveMinimum": 0});
    let params = |props: Value| json!({"type": ["object", "null"], "additionalProperties": false, "properties": props});
    let image_metrics = ["heat", "persistence_image", "persistence-image"];
    let mut amplitude = params(json!({
        "metric": {"enum": ["bottleneck", "wasserstein", "betti", "landscape", "silhouette",
                            "heat", "persistence_image", "persistence-image", null]},
        "p": {"type": ["number", "null"], "minimum": 1},
        "samples": samples,
        "layers": layers,
        "sigma": positive,
        "power": positive,
    }));
    amplitude["if"] = json!({
        "type": "object",
        "required": ["metric"],
        "properties": {"metric": {"enum": image_metrics}},
    });
    amplitude["then"] = json!({"properties": {"samples": {"maximum": MAX_PIXELS}}});
    let map = json!({
        "summaries": {"type": "array", "items": {"enum": SUMMARIES}},
        "landscape": params(json!({"layers": layers, "samples": samples})),
        "silhouette": params(json!({"power": positive, "samples": samples})),
        "betti_curve": params(json!({"samples": samples})),
        "persistence_image": params(json!({
            "sigma": positive,
            "pixels": {
                "type": ["array", "null"],
                "minItems": 2,
                "maxItems": 2,
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_PIXELS},
            },
            "weight": {"enum": ["one", "persistence", null]},
            "weight_power": positive,
            "convention": {"enum": ["giotto", "persim", null]},
        })),
        "entropy": params(json!({
            "base": {"enum": ["2", "e", null]},
            "normalize": {"type": ["boolean", "null"]},
        })),
        "amplitude": amplitude,
        "dims": {
            "type": ["array", "null"],
            "maxItems": 64,
            "items": {"type": "integer", "minimum": 0, "maximum": MAX_DIMENSION},
        },
    });
    match map {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `ConnectorDefinition` (either kind) and `RestConnectorDefinition` (what
/// a preview takes), from the checks of
/// `marketd_engine::services::connectors`.
fn connector_bodies(doc: &mut Value, name: &Value) {
    let nonempty = json!({"type": "string", "minLength": 1});
    let header_secret = json!({"type": "string", "minLength": 1, "pattern": HEADER_VALUE_PATTERN});
    let auth_of = |kind: &str, props: Value| {
        let mut props = props;
        props["type"] = json!({"const": kind});
        let required: Vec<&String> = props
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        json!({"type": "object", "required": required, "properties": props})
    };
    let closed = |mut v: Value| {
        v["additionalProperties"] = json!(false);
        v
    };
    let mut api_key = closed(auth_of(
        "api_key",
        json!({"name": nonempty, "value": nonempty, "in": {"enum": ["header", "query"]}}),
    ));
    api_key["if"] = json!({"properties": {"in": {"const": "header"}}});
    api_key["then"] = json!({"properties": {
        "name": {"maxLength": MAX_HEADER_NAME, "pattern": HEADER_NAME_PATTERN},
        "value": {"pattern": HEADER_VALUE_PATTERN},
    }});
    let mut hmac_binance = closed(auth_of(
        "hmac_binance",
        json!({"api_key": header_secret, "secret": nonempty}),
    ));
    hmac_binance["properties"]["recv_window"] =
        json!({"type": ["integer", "null"], "minimum": 0, "maximum": u64::MAX});
    let rest_auth = json!({
        "description": "Upstream authentication; its secret fields are sealed and read as `***` (sending `***` back keeps the stored value).",
        "oneOf": [
            auth_of("none", json!({})),
            api_key,
            closed(auth_of("bearer", json!({"token": header_secret}))),
            closed(auth_of("basic", json!({"username": nonempty, "password": nonempty}))),
            hmac_binance,
            closed(auth_of("hmac_okx", json!({
                "api_key": header_secret, "secret": nonempty, "passphrase": header_secret,
            }))),
        ],
    });
    let ws_auth = json!({
        "description": "Finnhub's token: `{\"type\": \"api_key\", \"in\": \"query\", \"name\": \"token\", \"value\": ...}`.",
        "oneOf": [
            auth_of("none", json!({})),
            auth_of("api_key", json!({"name": nonempty, "value": nonempty, "in": {"const": "query"}})),
        ],
    });
    let headers = |values: Value| {
        json!({
            "type": "object",
            "description": "Custom headers; their values are secrets (read as `***`).",
            "propertyNames": {"pattern": CONNECTOR_HEADER_NAME_PATTERN},
            "additionalProperties": values,
        })
    };
    let (interval_lo, interval_hi) = POLLING_INTERVAL_MS;
    let path = |what: &str| json!({"type": "string", "description": format!("A JSONPath (RFC 9535) {what}")});
    let path_or_null = |what: &str| {
        let mut p = path(what);
        p["type"] = json!(["string", "null"]);
        p
    };
    let rest = json!({
        "type": "object",
        "description": "A REST connector: `url` polled every `polling_interval_ms`, records picked out by `mapping` (see docs/connectors.md). `body` only with POST, PUT or DELETE.",
        "required": ["name", "kind", "url", "polling_interval_ms", "mapping"],
        "properties": {
            "name": name,
            "kind": {"const": "rest"},
            "url": {"type": "string", "description": "An http or https URL with a host, without credentials or fragment."},
            "method": {"enum": ["GET", "POST", "PUT", "DELETE", null]},
            "headers": headers(json!({"type": "string", "pattern": HEADER_VALUE_PATTERN})),
            "query": {
                "type": ["object", "null"],
                "propertyNames": {"minLength": 1},
                "additionalProperties": {"type": "string"},
            },
            "body": {"description": "Sent as JSON."},
            "auth": rest_auth,
            "polling_interval_ms": {"type": "integer", "minimum": interval_lo, "maximum": interval_hi},
            "timeout_ms": {
                "type": ["integer", "null"],
                "minimum": MIN_TIMEOUT.as_millis() as u64,
                "maximum": MAX_TIMEOUT.as_millis() as u64,
            },
            "mapping": {
                "type": "object",
                "additionalProperties": false,
                "required": ["records", "price"],
                "properties": {
                    "records": path("of the records in the answer"),
                    "price": path("in a record"),
                    "symbol": path_or_null("in a record"),
                    "size": path_or_null("in a record"),
                    "ts": path_or_null("in a record"),
                    "ts_unit": {"enum": ["s", "ms", "us", "ns", "rfc3339"]},
                    "trade_id": path_or_null("in a record"),
                    "side": path_or_null("in a record"),
                },
            },
            "symbol": {"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/Symbol"}]},
        },
        "if": {"required": ["method"], "properties": {"method": {"enum": ["POST", "PUT", "DELETE"]}}},
        "else": {"properties": {"body": {"type": "null"}}},
    });
    let venues: Vec<&str> = Venue::ALL.iter().map(|v| v.name()).collect();
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    let per_venue: Vec<Value> = Venue::ALL
        .iter()
        .map(|&v| {
            let chans: Vec<&str> = v.channels().iter().map(|c| c.as_str()).collect();
            json!({
                "if": {"properties": {"venue": {"const": v.name()}}},
                "then": {"properties": {
                    "channels": {"items": {"enum": chans}},
                    "symbols": {"items": {"pattern": venue_symbol_pattern(v)}},
                }},
            })
        })
        .collect();
    let websocket = json!({
        "type": "object",
        "description": "A venue's WebSocket stream (see docs/connectors.md); symbols times channels within the venue's streams per connection.",
        "required": ["name", "kind", "venue", "symbols", "channels"],
        "properties": {
            "name": name,
            "kind": {"const": "websocket"},
            "venue": {"enum": venues},
            "url": {"type": ["string", "null"], "description": "A ws or wss URL with a host (default: the venue's)."},
            "rest_url": {"type": ["string", "null"], "description": "An http or https URL with a host, for backfill."},
            "symbols": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "maxLength": SYMBOL_MAX_CHARS},
            },
            "channels": {"type": "array", "minItems": 1, "items": {"enum": channels}},
            "idle_timeout_ms": {
                "type": ["integer", "null"],
                "minimum": IDLE_TIMEOUT_MS.0,
                "maximum": IDLE_TIMEOUT_MS.1,
            },
            "archive": {
                "type": ["object", "null"],
                "required": ["retention_hours"],
                "properties": {"retention_hours": {
                    "type": "integer", "minimum": 1, "maximum": MAX_ARCHIVE_HOURS,
                }},
            },
            "headers": headers(json!({"type": "string"})),
            "auth": ws_auth,
        },
        "allOf": per_venue,
    });
    set_schema(doc, "RestConnector", rest);
    set_schema(doc, "WebsocketConnector", websocket);
    set_schema(
        doc,
        "ConnectorDefinition",
        json!({
            "description": "A connector definition: `kind` `rest` or `websocket` (see docs/connectors.md).",
            "oneOf": [
                {"$ref": "#/components/schemas/RestConnector"},
                {"$ref": "#/components/schemas/WebsocketConnector"},
            ],
        }),
    );
    set_schema(
        doc,
        "RestConnectorDefinition",
        json!({"$ref": "#/components/schemas/RestConnector"}),
    );
}

/// `1` to `max`.
fn limit(max: u32) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": max})
}

/// Replaces the schema of parameter `name` of `method path` (and, when
/// given, whether it is required), keeping its description.
fn param(
    doc: &mut Value,
    path: &str,
    method: &str,
    name: &str,
    schema: Value,
    required: Option<bool>,
) {
    let Some(p) = doc["paths"][path][method]["parameters"]
        .as_array_mut()
        .and_then(|params| params.iter_mut().find(|p| p["name"] == name))
    else {
        // A rule for a parameter the document lacks is a mistake here.
        if cfg!(debug_assertions) {
            panic!("{method} {path} has no parameter {name}");
        }
        return;
    };
    p["schema"] = schema;
    if let Some(r) = required {
        p["required"] = json!(r);
    }
}

/// Sets component schema `name`, keeping a description the code gave it
/// when the new one has none.
fn set_schema(doc: &mut Value, name: &str, mut schema: Value) {
    let schemas = &mut doc["components"]["schemas"];
    if schema.get("description").is_none()
        && let Some(d) = schemas
            .get(name)
            .and_then(|s| s.get("description"))
            .cloned()
        && let Some(o) = schema.as_object_mut()
    {
        o.insert("description".into(), d);
    }
    schemas[name] = schema;
}

#[cfg(test)]
mod tests {
    use super::*;
    use marketd_model::Symbol;
    use proptest::prelude::*;

    /// Whether `venue` lists `raw` as the server reads it: a symbol the
    /// venue can subscribe to.
    fn venue_lists(venue: Venue, raw: &str) -> bool {
        Symbol::parse(raw).is_ok_and(|s| venue.venue_symbol(&s).is_ok())
    }

    fn pattern_lists(venue: Venue, raw: &str) -> bool {
        regex::Regex::new(&venue_symbol_pattern(venue))
            .unwrap()
            .is_match(raw)
            && raw.chars().count() <= SYMBOL_MAX_CHARS
    }

    #[test]
    fn venue_symbol_patterns_agree_with_the_venues_on_examples() {
        let examples = [
            "BTC-USDT",
            "btc/usdt",
            " eth_usdt ",
            "BTC-USDT-PERP",
            "btc-usdt-perp",
            "BTC-USDT-240628",
            "BTC-USDT-24062",
            "AAPL",
            "BRK.B",
            "^GSPC",
            "A-B-C",
            "A-B-C-D",
            "A-B-C-D-E",
            "A.B-C",
            "A-.B",
            "A-.-B",
            "BTC-USD-240628-60000-C",
            "A-B-C-D-E-F",
            "ES=F",
            "X",
        ];
        for venue in Venue::ALL {
            for raw in examples {
                assert_eq!(
                    pattern_lists(venue, raw),
                    venue_lists(venue, raw),
                    "{} {raw:?}",
                    venue.name()
                );
            }
        }
        assert!(pattern_lists(Venue::Binance, "btc/usdt"));
        assert!(pattern_lists(Venue::BinanceFutures, "BTC-USDT-240628"));
        assert!(pattern_lists(Venue::Okx, "BTC-USD-240628-60000-C"));
        assert!(pattern_lists(Venue::Finnhub, "AAPL"));
        assert!(!pattern_lists(Venue::Binance, "AAPL"));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn venue_symbol_patterns_agree_with_the_venues(
            raw in "[ ]?[A-Za-z0-9.^=]{1,6}(?:[-/_][A-Za-z0-9.^=]{0,6}){0,5}[ ]?",
            venue in proptest::sample::select(Venue::ALL.to_vec()),
        ) {
            prop_assert_eq!(pattern_lists(venue, &raw), venue_lists(venue, &raw), "{} {:?}", venue.name(), raw);
        }
    }

    #[test]
    fn query_and_header_patterns_agree_with_their_checks() {
        let kind = regex::Regex::new(MA_KIND_PATTERN).unwrap();
        for k in ["sma", "EMA", "sMa", "wma", "", " sma", "smaa"] {
            assert_eq!(
                kind.is_match(k),
                k.parse::<marketd_model::MaKind>().is_ok(),
                "{k:?}"
            );
        }
        let source = regex::Regex::new(SOURCE_PATTERN).unwrap();
        for (s, ok) in [
            ("binance", true),
            ("!~", true),
            ("", false),
            ("a b", false),
            ("é", false),
        ] {
            assert_eq!(source.is_match(s), ok, "{s:?}");
        }
        assert!(source.is_match(&"x".repeat(64)) && !source.is_match(&"x".repeat(65)));
        // As sent: HTTP drops spaces and tabs around a header value; the
        // handler then takes 1 to 255 visible ASCII characters.
        let key = regex::Regex::new(crate::routes::tda::IDEMPOTENCY_KEY_PATTERN).unwrap();
        let handler = |sent: &str| {
            let k = sent.trim_matches([' ', '\t']);
            !k.is_empty()
                && k.len() <= 255
                && k.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        };
        for sent in [
            "a",
            " a\t",
            "a b",
            "a\tb",
            "",
            " ",
            "\t",
            "é",
            "a\u{7f}",
            &"k".repeat(255),
            &"k".repeat(256),
            &format!(" {} ", "k".repeat(255)),
        ] {
            assert_eq!(key.is_match(sent), handler(sent), "{sent:?}");
        }
    }

    #[test]
    fn header_patterns_agree_with_the_http_types() {
        let value = regex::Regex::new(HEADER_VALUE_PATTERN).unwrap();
        for v in [
            "", "abc", "a\tb", "é", "a b", "a\nb", "a\u{7f}", "\u{0}", "a\u{1f}", "\u{80}",
        ] {
            assert_eq!(
                value.is_match(v),
                http::HeaderValue::from_str(v).is_ok(),
                "{v:?}"
            );
        }
        let name = regex::Regex::new(HEADER_NAME_PATTERN).unwrap();
        for n in [
            "X-Key",
            "x_key",
            "a.b",
            "!#$%&'*+-.^_`|~",
            "",
            "a b",
            "a:b",
            "é",
            "a\"b",
        ] {
            assert_eq!(
                name.is_match(n),
                http::HeaderName::from_bytes(n.as_bytes()).is_ok(),
                "{n:?}"
            );
        }
    }
}
