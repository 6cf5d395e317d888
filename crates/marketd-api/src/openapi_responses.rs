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
