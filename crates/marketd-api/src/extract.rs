//! Extractors whose rejections are [`ApiError`]s, so malformed queries and
//! bodies get the project's error shape (422 for well-formed but invalid
//! input, 400 for unparsable JSON).

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts};

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// A JSON body: `Content-Type: application/json`, within the body limit
/// (413), nested at most [`MAX_JSON_DEPTH`] levels (400), then deserialized
/// (400 for bad syntax, 422 for the wrong shape).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// Deepest nesting of arrays and objects accepted in a request body.
pub const MAX_JSON_DEPTH: usize = 32;

/// Whether `body` nests arrays/objects deeper than `max` (strings skipped).
pub fn json_too_deep(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json {
            return Err(ApiError::from_status(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Some("expected a body with Content-Type: application/json".into()),
            ));
        }
        let body = bytes::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from_status(e.status(), Some(e.body_text())))?;
        if json_too_deep(&body, MAX_JSON_DEPTH) {
            return Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "JSON_TOO_DEEP",
                format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"),
            ));
        }
        let axum::Json(v) = axum::Json::<T>::from_bytes(&body)?;
        Ok(ApiJson(v))
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::validation(r.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(e.body_text()),
            JsonRejection::MissingJsonContentType(e) => {
                ApiError::from_status(e.status(), Some(e.body_text()))
            }
            JsonRejection::BytesRejection(e) => {
                ApiError::from_status(e.status(), Some(e.body_text()))
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::validation(r.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert!(!json_too_deep(b"[[[]]]", 3));
        assert!(json_too_deep(b"[[[[]]]]", 3));
        assert!(!json_too_deep(br#"{"a":"[[[[[[[[[[","b":"\"[[[["}"#, 1));
        assert!(!json_too_deep(b"", 0));
    }

    proptest! {
        /// Agrees with the real nesting of generated documents.
        #[test]
        fn depth_matches_generated_nesting(d in 0usize..80, max in 1usize..40) {
            let doc = format!("{}{}", "[{\"k\":".repeat(d), "1}]".repeat(d));
            prop_assert_eq!(json_too_deep(doc.as_bytes(), max), 2 * d > max);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = json_too_deep(&bytes, 8);
        }
    }
}
