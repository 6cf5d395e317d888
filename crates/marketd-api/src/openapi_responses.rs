//! The error responses the router's shared layers give any operation,
//! declared in the spec once instead of in every `#[utoipa::path]`.
//!
//! Handlers declare what their service can answer; the layers around them
//! (timeout, body limit, the JSON/query/path extractors, authentication, the
//! rate limiter) answer the rest, and schemathesis found those answers
//! missing from the spec (a 415 on a body route called without a
//! content type, a 422 on an unparseable path id, a 400 on malformed JSON).
//! [`CommonResponses`] adds each status where that layer runs and the
//! operation does not declare it already, always in the error shape.
//!
//! [`ResourceLinks`] declares the OpenAPI links from each creating operation
//! to the operations on the created resource, so schemathesis' stateful
//! phase (and generated clients) can follow a created id.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Type,
};

/// Adds the shared layers' error responses to every operation (see the
/// module documentation).
pub struct CommonResponses;

impl utoipa::Modify for CommonResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/api/");
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                add_common(op, api);
            }
        }
    }
}

fn add_common(op: &mut Operation, api: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    // An operation whose security list has no empty requirement needs a
    // key with a role (write or admin): a read-only caller gets 403.
    let key_required = op.security.as_ref().is_some_and(|s| {
        !s.is_empty()
            && s.iter().all(|r| {
                serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
            })
    });
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_path_params = op.parameters.as_ref().is_some_and(|p| {
        p.iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path))
    });

    // The timeout layer wraps every route.
    add(
        op,
        408,
        "The request took longer than `http.request_timeout_ms`",
    );
    if secured {
        add(op, 401, "Missing, unknown, expired or revoked credentials");
        // The rate limiter covers every route that names a security scheme
        // (open routes are not limited).
        if api {
            let retry_after = HeaderBuilder::new()
                .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds until a request may succeed"))
                .build();
            if !op.responses.responses.contains_key("429") {
                let mut r = error_response("Rate limited (`rate_limit`)");
                r.headers.insert("Retry-After".to_string(), retry_after);
                op.responses
                    .responses
                    .insert("429".to_string(), RefOr::T(r));
            }
        }
    }
    if key_required {
        add(op, 403, "The credentials' role is not enough");
    }
    if has_body {
        add(
            op,
            400,
            "The body is not well-formed (JSON syntax, encoding, headers)",
        );
        add(op, 413, "The body is larger than `http.max_body_bytes`");
        add(
            op,
            415,
            "The body's Content-Type is missing or not the expected one",
        );
        add(
            op,
            422,
            "The body does not have the expected fields or values",
        );
    }
    if has_params {
        add(op, 422, "A parameter is missing, malformed or out of range");
    }
    if has_path_params {
        add(op, 404, "No such resource");
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

fn add(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(error_response(description)));
}

/// OpenAPI links from each creation to the operations on what it created:
/// `(creating method, path, status, [(method, path of the target)])`; the
/// created resource's `id` is in the answer's body.
/// `(creating method, path, status, targets)`.
type Creation = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

const CREATIONS: &[Creation] = &[
    (
        "post",
        "/api/v1/uploads",
        "201",
        &[
            ("get", "/api/v1/uploads/{id}"),
            ("delete", "/api/v1/uploads/{id}"),
        ],
    ),
    (
        "post",
        "/api/v1/jobs",
        "202",
        &[
            ("get", "/api/v1/jobs/{id}"),
            ("get", "/api/v1/jobs/{id}/result"),
            ("delete", "/api/v1/jobs/{id}"),
        ],
    ),
    (
        "post",
        "/api/v1/connectors",
        "201",
        &[
            ("get", "/api/v1/connectors/{id}"),
            ("put", "/api/v1/connectors/{id}"),
            ("post", "/api/v1/connectors/{id}/start"),
            ("post", "/api/v1/connectors/{id}/stop"),
            ("get", "/api/v1/connectors/{id}/status"),
            ("get", "/api/v1/connectors/{id}/data"),
            ("delete", "/api/v1/connectors/{id}"),
        ],
    ),
    (
        "post",
        "/api/v1/api-keys",
        "201",
        &[("delete", "/api/v1/api-keys/{id}")],
    ),
];

/// Adds [`CREATIONS`] as response links (see the module documentation).
pub struct ResourceLinks;

impl utoipa::Modify for ResourceLinks {
    fn modify(&self, openapi: &mut OpenApi) {
        for (method, path, status, targets) in CREATIONS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else {
                continue;
            };
            let op = match *method {
                "post" => item.post.as_mut(),
                "put" => item.put.as_mut(),
                _ => None,
            };
            let Some(RefOr::T(response)) = op.and_then(|o| o.responses.responses.get_mut(*status))
            else {
                continue;
            };
            for (target_method, target_path) in *targets {
                // A JSON pointer to the target operation ("/" in the path is "~1").
                let reference =
                    format!("#/paths/{}/{target_method}", target_path.replace('/', "~1"));
                let link = utoipa::openapi::link::LinkBuilder::new()
                    .operation_ref(reference)
                    .parameter("id", "$response.body#/id")
                    .build();
                let name = format!("{target_method} {target_path}");
                response.links.insert(name, RefOr::T(link));
            }
        }
    }
}

/// The document as JSON, as served at `/openapi.json` (with
/// [`crate::openapi_rules`] applied). utoipa 5.5 serializes a
/// link's fields in snake case (`operation_ref`, `operation_id`,
/// `request_body`) where OpenAPI names them in camel case, so tools ignore
/// the links; this renames them in the JSON.
pub fn to_value(doc: &OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths
            .values_mut()
            .filter_map(|i| i.as_object_mut())
            .flat_map(|i| i.values_mut())
        {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for r in responses.values_mut() {
                let Some(links) = r.get_mut("links").and_then(|l| l.as_object_mut()) else {
                    continue;
                };
                for link in links.values_mut().filter_map(|l| l.as_object_mut()) {
                    for (snake, camel) in [
                        ("operation_ref", "operationRef"),
                        ("operation_id", "operationId"),
                        ("request_body", "requestBody"),
                    ] {
                        if let Some(x) = link.remove(snake) {
                            link.insert(camel.to_string(), x);
                        }
                    }
                }
            }
        }
    }
    v
}
