//! The OpenAPI document against the server's answers: the requests
//! schemathesis (`scripts/proof.d/api`) found answered outside the spec,
//! replayed, each answer checked against the operation's declared statuses
//! and, for errors, the error shape.

mod common;

use common::{TestApp, error_shape_gap};
use reqwest::Method;
use serde_json::{Value, json};

/// The statuses `spec` declares for `method` on the templated `path`.
fn declared(spec: &Value, method: &str, path: &str) -> Vec<String> {
    let op = &spec["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the spec");
    op["responses"]
        .as_object()
        .map(|r| r.keys().cloned().collect())
        .unwrap_or_default()
}

/// Sends a request and asserts its status is declared for the operation
/// and, when it is an error, that the body has the error shape.
#[allow(clippy::too_many_arguments)]
async fn assert_answer_declared(
    app: &TestApp,
    spec: &Value,
    method: Method,
    template: &str,
    path: &str,
    content_type: Option<&str>,
    body: Option<&'static str>,
    expected: u16,
) {
    let mut req = app
        .anon
        .request(method.clone(), app.url(path))
        .header("x-api-key", &app.admin_key);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, expected, "{method} {path}: {text}");
    let statuses = declared(spec, method.as_str(), template);
    assert!(
        statuses.contains(&status.to_string()),
        "{method} {path} answered {status}, the spec declares only {statuses:?}: {text}"
    );
    if status >= 400 {
        let v: Value = serde_json::from_str(&text).expect("error body is JSON");
        assert_eq!(error_shape_gap(&v), None, "{text}");
    }
}

/// Every parameter the spec places in the path names a `{placeholder}` of
/// that path. GET /api/v1/jobs, GET and POST /api/v1/uploads declared their
/// query parameters (`status`, `limit`, `format`, `name`) as required path
/// parameters, so clients generated from the spec could not call them.
#[tokio::test]
async fn path_parameters_are_placeholders_of_their_path() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let mut wrong = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" && !path.contains(&format!("{{{name}}}")) {
                    wrong.push(format!("{method} {path}: {name}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "query parameters declared in the path: {wrong:?}"
    );
    for (path, name) in [
        ("/api/v1/jobs", "limit"),
        ("/api/v1/jobs", "status"),
        ("/api/v1/uploads", "limit"),
    ] {
        let params = spec["paths"][path]["get"]["parameters"].as_array().unwrap();
        let p = params.iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(p["in"], "query", "GET {path} {name}");
        assert_eq!(p["required"], false, "GET {path} {name}");
    }
    let params = spec["paths"]["/api/v1/uploads"]["post"]["parameters"]
        .as_array()
        .unwrap();
    let format = params.iter().find(|p| p["name"] == "format").unwrap();
    assert_eq!(format["in"], "query");
    app.stop().await;
}

/// The answers of the layers shared by every route (extractors, body
/// limit, authentication) are declared on the operations they reach:
/// schemathesis' reproducers, each answered with a status the spec left out.
#[tokio::test]
async fn shared_layer_errors_are_declared_per_operation() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let uuid = "e3e70682-c209-1cac-a29f-6fbed82c07cd";
    // An id that is not a UUID: 422 from the path extractor.
    assert_answer_declared(
        &app,
        &spec,
        Method::DELETE,
        "/api/v1/api-keys/{id}",
        "/api/v1/api-keys/null%2Cnull",
        None,
        None,
        422,
    )
    .await;
    for action in ["start", "stop"] {
        let template = format!("/api/v1/connectors/{{id}}/{action}");
        let path = format!("/api/v1/connectors/null%2Cnull/{action}");
        assert_answer_declared(&app, &spec, Method::POST, &template, &path, None, None, 422).await;
    }
    // A credential name outside the allowed alphabet: 422.
    assert_answer_declared(
        &app,
        &spec,
        Method::DELETE,
        "/api/v1/credentials/{name}",
        "/api/v1/credentials/%C3%88Sk",
        None,
        None,
        422,
    )
    .await;
    // A JSON route called without a body or content type: 415.
    for path in [
        "/api/v1/tda/distance",
        "/api/v1/tda/summaries",
        "/api/v1/tda/vietoris-rips",
    ] {
        assert_answer_declared(&app, &spec, Method::POST, path, path, None, None, 415).await;
    }
    let connector = format!("/api/v1/connectors/{uuid}");
    assert_answer_declared(
        &app,
        &spec,
        Method::PUT,
        "/api/v1/connectors/{id}",
        &connector,
        None,
        None,
        415,
    )
    .await;
    // Malformed JSON: 400.
    assert_answer_declared(
        &app,
        &spec,
        Method::PUT,
        "/api/v1/connectors/{id}",
        &connector,
        Some("application/json"),
        Some("\u{fffd}["),
        400,
    )
    .await;
    // Unknown credentials on a secured route: 401 (declared with 429 by the
    // rate limiter's layer on every secured operation).
    let resp = app
        .anon
        .get(app.url("/api/v1/jobs"))
        .header("x-api-key", "mkd_not_a_key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let statuses = declared(&spec, "GET", "/api/v1/jobs");
    for s in ["401", "408", "422", "429"] {
        assert!(
            statuses.contains(&s.to_string()),
            "GET /api/v1/jobs lacks {s}: {statuses:?}"
        );
    }
    let retry_after =
        &spec["paths"]["/api/v1/jobs"]["get"]["responses"]["429"]["headers"]["Retry-After"];
    assert!(retry_after.is_object(), "429 declares Retry-After");
    app.stop().await;
}

/// Each creation links to the operations on what it created, and every
/// link points at an operation of the spec, so schemathesis' stateful phase
/// follows created ids instead of guessing them.
#[tokio::test]
async fn creations_link_to_the_operations_on_the_created_resource() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let links = &spec["paths"]["/api/v1/uploads"]["post"]["responses"]["201"]["links"];
    let get = &links["get /api/v1/uploads/{id}"];
    assert_eq!(get["operationRef"], "#/paths/~1api~1v1~1uploads~1{id}/get");
    assert_eq!(get["parameters"]["id"], "$response.body#/id");
    let mut count = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().into_iter().flatten() {
                for (name, link) in resp["links"].as_object().into_iter().flatten() {
                    let r = link["operationRef"].as_str().unwrap();
                    let (p, m) = r.trim_start_matches("#/paths/").rsplit_once('/').unwrap();
                    let p = p.replace("~1", "/");
                    assert!(
                        spec["paths"][&p][m].is_object(),
                        "{method} {path} {status} link {name}: no operation {m} {p}"
                    );
                    count += 1;
                }
            }
        }
    }
    assert!(count >= 13, "{count} links");
    app.stop().await;
}

/// The parameter `name` of `method path` in the served spec.
fn parameter<'a>(spec: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    spec["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

fn schema<'a>(spec: &'a Value, name: &str) -> &'a Value {
    let s = &spec["components"]["schemas"][name];
    assert!(s.is_object(), "no component {name}");
    s
}

/// The served spec states what the server validates, with this server's
/// limits: schemathesis' positive_data_acceptance and
/// negative_data_rejection (scripts/proof.d/api) found each of these looser
/// in the spec than in the server (symbol syntax, `limit` ranges, required
/// body fields, the credential-name alphabet, free-form TDA and connector
/// bodies).
#[tokio::test]
async fn the_spec_states_the_validation_with_the_configured_limits() {
    let app = TestApp::spawn(|c| {
        c.feeds.simulated.enabled = false;
        c.http.max_page = 777;
        c.polling.max_symbols = 7;
        c.aggregator.ma_windows = vec![3, 9];
        c.tda.max_points = 33;
        c.tda.max_coordinates = 5;
        c.tda.max_dim = 2;
    })
    .await;
    let (_, spec) = app.get_json("/openapi.json").await;

    let symbol = schema(&spec, "Symbol");
    assert_eq!(symbol["pattern"], marketd_model::SYMBOL_PATTERN);
    assert_eq!(symbol["maxLength"], 32);
    for path in [
        "/api/v1/prices/latest",
        "/api/v1/prices/history",
        "/api/v1/bars",
        "/api/v1/indicators/moving-average",
    ] {
        let p = parameter(&spec, "get", path, "symbol");
        assert_eq!(p["schema"]["$ref"], "#/components/schemas/Symbol", "{path}");
        assert_eq!(p["required"], true, "{path}");
    }

    for path in [
        "/api/v1/prices/history",
        "/api/v1/bars",
        "/api/v1/indicators/moving-average",
        "/api/v1/connectors/{id}/data",
        "/api/v1/tda/signals",
    ] {
        let limit = &parameter(&spec, "get", path, "limit")["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"]),
            (&json!(1), &json!(777)),
            "{path}"
        );
    }
    for path in ["/api/v1/jobs", "/api/v1/uploads"] {
        let limit = &parameter(&spec, "get", path, "limit")["schema"];
        assert_eq!(
            (&limit["minimum"], &limit["maximum"]),
            (&json!(1), &json!(1000)),
            "{path}"
        );
    }
    let from = &parameter(&spec, "get", "/api/v1/bars", "from")["schema"]["anyOf"];
    assert_eq!(from[0]["pattern"], marketd_model::time::EPOCH_BOUND_PATTERN);
    assert_eq!(from[1]["format"], "date-time");
    let ma = "/api/v1/indicators/moving-average";
    assert_eq!(
        parameter(&spec, "get", ma, "window")["schema"]["enum"],
        json!([3, 9])
    );
    assert_eq!(
        parameter(&spec, "get", ma, "interval")["schema"]["enum"],
        json!(["1s", "1m"])
    );
    assert_eq!(
        parameter(&spec, "get", "/api/v1/tda/signals", "basket")["required"],
        true
    );
    assert_eq!(
        parameter(&spec, "get", "/api/v1/prices/latest", "provider")["schema"]["enum"],
        json!(["simulated"])
    );
    assert_eq!(
        parameter(&spec, "delete", "/api/v1/credentials/{name}", "name")["schema"]["pattern"],
        marketd_engine::services::access::CREDENTIAL_NAME_PATTERN
    );

    let poll = schema(&spec, "PollRequest");
    assert_eq!(poll["properties"]["symbols"]["minItems"], 1);
    assert_eq!(poll["properties"]["symbols"]["maxItems"], 7);
    assert_eq!(poll["properties"]["interval"]["minimum"], 1.0);
    let key = schema(&spec, "CreateKey");
    assert_eq!(
        key["properties"]["name"]["pattern"],
        marketd_engine::services::access::NAME_PATTERN
    );
    assert_eq!(key["properties"]["expires_in_days"]["minimum"], 1);
    assert_eq!(
        schema(&spec, "PutCredential")["properties"]["value"]["minLength"],
        1
    );

    let vr = schema(&spec, "VietorisRipsRequest");
    assert_eq!(vr["additionalProperties"], false);
    assert_eq!(vr["properties"]["points"]["maxItems"], 33);
    assert_eq!(vr["properties"]["points"]["items"]["maxItems"], 5);
    assert_eq!(vr["properties"]["max_dim"]["maximum"], 2);
    assert_eq!(
        vr["oneOf"],
        json!([{"required": ["points"]}, {"required": ["distance_matrix"]}, {"required": ["upload_id"]}])
    );
    assert_eq!(
        schema(&spec, "JobRequest")["oneOf"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        spec["paths"]["/api/v1/tda/distance"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/DistanceRequest"
    );
    assert_eq!(
        schema(&spec, "SummariesRequest")["required"],
        json!(["diagrams", "summaries"])
    );
    let connector = schema(&spec, "ConnectorDefinition");
    assert_eq!(connector["oneOf"].as_array().unwrap().len(), 2);
    assert_eq!(
        schema(&spec, "RestConnector")["required"],
        json!(["name", "kind", "url", "polling_interval_ms", "mapping"])
    );
    assert_eq!(
        spec["paths"]["/api/v1/connectors/test"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/RestConnectorDefinition"
    );
    app.stop().await;
}

/// The patterns of the served spec, read by a regular-expression engine,
/// accept what the server accepts and refuse what it refuses.
#[tokio::test]
async fn the_spec_patterns_agree_with_the_server() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let pattern = |s: &Value| regex::Regex::new(s.as_str().unwrap()).unwrap();

    let symbol = pattern(&schema(&spec, "Symbol")["pattern"]);
    for s in [
        "AAPL",
        " aapl ",
        "eth_usdt",
        "BTC/USDT",
        "BRK.B",
        "^GSPC",
        "A--B",
        "-A",
        "A.",
        "A B",
        "ÄPPLE",
        "\u{3000}X",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
    ] {
        let valid = symbol.is_match(s) && s.chars().count() <= 32;
        let resp = app
            .client
            .get(app.url("/api/v1/prices/history"))
            .query(&[("symbol", s)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            if valid { 200 } else { 422 },
            "{s:?}"
        );
    }

    let epoch =
        pattern(&parameter(&spec, "get", "/api/v1/bars", "from")["schema"]["anyOf"][0]["pattern"]);
    for (from, ok) in [
        ("1700000000", true),
        ("-5", true),
        ("99999999999999999999999", true),
        ("2024-01-01T00:00:00Z", true),
        ("9999-12-31T23:59:59.123456789+05:30", true),
        ("0000-01-01t00:00:00z", true),
        (" 1700000000", false),
        ("2024-01-01 00:00:00Z", false),
        ("2024-02-30T00:00:00Z", false),
        ("yesterday", false),
    ] {
        assert!(!epoch.is_match(from) || ok, "{from:?}");
        let resp = app
            .client
            .get(app.url("/api/v1/bars"))
            .query(&[("symbol", "AAPL"), ("from", from)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status().as_u16(),
            if ok { 200 } else { 422 },
            "{from:?}"
        );
    }

    let credential = pattern(
        &parameter(&spec, "delete", "/api/v1/credentials/{name}", "name")["schema"]["pattern"],
    );
    for name in ["providers.x.api_key", "0", "Upper", ".hidden", "a%20b"] {
        let decoded = name.replace("%20", " ");
        let (status, _) = app
            .admin(Method::DELETE, &format!("/api/v1/credentials/{name}"), None)
            .await;
        assert_eq!(
            status,
            if credential.is_match(&decoded) {
                404
            } else {
                422
            },
            "{name:?}"
        );
    }

    let name = pattern(&schema(&spec, "CreateKey")["properties"]["name"]["pattern"]);
    for holder in ["ci bot", "\u{feff}", " ", "a\u{7}b", "\u{3000}"] {
        let (status, _) = app
            .admin(
                Method::POST,
                "/api/v1/api-keys",
                Some(&json!({"name": holder, "role": "read"})),
            )
            .await;
        assert_eq!(
            status,
            if name.is_match(holder) { 201 } else { 422 },
            "{holder:?}"
        );
    }
    app.stop().await;
}

/// Requests the spec calls invalid that the server took, and valid ones it
/// refused, found by schemathesis once both were checked; each now answered
/// as the spec says.
#[tokio::test]
async fn the_server_answers_as_the_spec_says_where_it_did_not() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let admin = |m: Method, path: &'static str, body: Value| {
        let app = &app;
        async move { app.admin(m, path, Some(&body)).await }
    };
    // A credential value is a string (a boolean was stored as "false").
    let (s, b) = admin(
        Method::PUT,
        "/api/v1/credentials/x.y",
        json!({"value": false}),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(error_shape_gap(&b), None);
    // A value is limited in characters, as the spec's maxLength counts.
    let (s, _) = admin(
        Method::PUT,
        "/api/v1/credentials/x.y",
        json!({"value": "é".repeat(8192)}),
    )
    .await;
    assert_eq!(s, 200);
    // Summary parameters are objects (serde read `[null, null]` as one).
    let (s, b) = admin(
        Method::POST,
        "/api/v1/tda/summaries",
        json!({"diagrams": {}, "summaries": [], "silhouette": [null, null]}),
    )
    .await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (422, Some("summaries: silhouette: expected an object"))
    );
    // A job is refused when submitted, not failed when run, for a summary
    // parameter or a modulus the computation cannot take.
    for (body, detail) in [
        (
            json!({"kind": "vietoris-rips", "points": [[0.0]], "summaries": ["landscape"], "landscape": {"samples": 0}}),
            "summaries: landscape.samples: 0 samples: must be between 1 and 10000",
        ),
        (
            json!({"kind": "vietoris-rips", "points": [[0.0]], "modulus": 65537}),
            "modulus: expected a prime number up to 65521",
        ),
    ] {
        let (s, b) = admin(Method::POST, "/api/v1/jobs", body).await;
        assert_eq!((s, b["detail"].as_str()), (422, Some(detail)));
    }
    // A connector's header-borne secret is a header value; its symbol a string.
    let rest = |auth: Value, symbol: Value| {
        json!({"name": "n", "kind": "rest", "url": "http://127.0.0.1:9/", "polling_interval_ms": 1000,
               "mapping": {"records": "$", "price": "$.p"}, "auth": auth, "symbol": symbol})
    };
    let (s, b) = admin(
        Method::POST,
        "/api/v1/connectors",
        rest(json!({"type": "bearer", "token": "a\nb"}), Value::Null),
    )
    .await;
    assert_eq!(s, 422, "{b}");
    let (s, b) = admin(
        Method::POST,
        "/api/v1/connectors",
        rest(json!({"type": "none"}), json!(5)),
    )
    .await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (422, Some("symbol must be a string"))
    );
    // `_` between base and quote reads as `-`, as documented.
    let (s, b) = admin(
        Method::POST,
        "/api/v1/prices/poll",
        json!({"symbols": ["eth_usdt"], "interval": 60}),
    )
    .await;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["jobs"][0]["symbol"], "ETH-USDT", "{b}");
    // A bound past what i64 nanoseconds hold is clamped, not refused.
    let (s, b) = app
        .get_json(
            "/api/v1/prices/history?symbol=AAPL&from=1000-01-01T00:00:00Z&to=9999-12-31T23:59:59Z",
        )
        .await;
    assert_eq!(s, 200, "{b}");
    app.stop().await;
}

/// Two lists shared the component name `JobList`, so the polling jobs'
/// list was declared as the TDA jobs' (a polling job failed the schema of
/// a TDA job); a connector record's `data` is an array of ticks, declared
/// an object.
#[tokio::test]
async fn response_components_name_their_own_shapes() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let (_, spec) = app.get_json("/openapi.json").await;
    let body_of = |method: &str, path: &str| {
        spec["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
            ["$ref"]
            .clone()
    };
    assert_eq!(
        body_of("get", "/api/v1/polling-jobs"),
        "#/components/schemas/JobList"
    );
    assert_eq!(
        body_of("get", "/api/v1/jobs"),
        "#/components/schemas/TdaJobList"
    );
    assert_eq!(
        schema(&spec, "JobList")["properties"]["jobs"]["items"]["$ref"],
        "#/components/schemas/JobView"
    );
    assert_eq!(
        schema(&spec, "TdaJobList")["properties"]["jobs"]["items"]["$ref"],
        "#/components/schemas/TdaJob"
    );
    let data = &schema(&spec, "ConnectorRecord")["properties"]["data"];
    assert_eq!(data["type"], json!(["array", "null"]), "{data}");
    app.stop().await;
}

/// A connector's sealed secrets (`connectors.<id>.secrets`) could be
/// overwritten through `PUT /credentials/{name}`: the connector then failed
/// with a 500 on its next update. The name is the connector's (409), and
/// numbers are read exactly (`p` just under 1 was read as 1 and passed).
#[tokio::test]
async fn a_connectors_secrets_are_its_own_and_numbers_are_read_exactly() {
    let app = TestApp::spawn(|c| c.feeds.simulated.enabled = false).await;
    let def = json!({"name": "n", "kind": "rest", "url": "http://127.0.0.1:9/", "polling_interval_ms": 1000,
                     "mapping": {"records": "$", "price": "$.p"}, "auth": {"type": "bearer", "token": "t"}});
    let (s, created) = app
        .admin(Method::POST, "/api/v1/connectors", Some(&def))
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let secrets = format!("/api/v1/credentials/connectors.{id}.secrets");
    let (s, b) = app
        .admin(Method::PUT, &secrets, Some(&json!({"value": "not json"})))
        .await;
    assert_eq!(
        (s, b["error_code"].as_str()),
        (409, Some("CREDENTIAL_RESERVED")),
        "{b}"
    );
    let (s, b) = app.admin(Method::DELETE, &secrets, None).await;
    assert_eq!(s, 409, "{b}");
    let (_, spec) = app.get_json("/openapi.json").await;
    for method in ["PUT", "DELETE"] {
        assert!(declared(&spec, method, "/api/v1/credentials/{name}").contains(&"409".to_string()));
    }
    let (s, b) = app
        .admin(Method::PUT, &format!("/api/v1/connectors/{id}"), Some(&def))
        .await;
    assert_eq!(s, 200, "{b}");

    let (s, b) = app
        .admin(
            Method::POST,
            "/api/v1/tda/distance",
            Some(&serde_json::from_str(r#"{"a": [], "b": [], "p": 0.9999999999999999}"#).unwrap()),
        )
        .await;
    assert_eq!(
        (s, b["detail"].as_str()),
        (422, Some("p: a number of at least 1")),
        "{b}"
    );
    app.stop().await;
}
