//! The OpenAPI document against the server's answers: the requests
//! schemathesis (`scripts/proof.d/api`) found answered outside the spec,
//! replayed, each answer checked against the operation's declared statuses
//! and, for errors, the error shape.

mod common;

use common::{TestApp, error_shape_gap};
use reqwest::Method;
use serde_json::Value;

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
