//! The one error type of the API and its wire shape (DESIGN.md):
//! `{"detail", "error_code", "timestamp", "request_id"}`. Internal details
//! are logged with the request id, never returned.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use marketd_engine::PriceError;
use marketd_engine::services::access::AccessError;
use marketd_engine::services::connectors::ConnectorError;
use marketd_engine::services::polling::PollingError;
use marketd_engine::services::series::SeriesError;
use marketd_engine::services::tda::TdaError;
use marketd_engine::services::tda_signals::TdaSignalError;
use marketd_engine::tda::ProblemError;
use serde::Serialize;
use utoipa::ToSchema;

/// The error body of every 4xx/5xx response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Human-readable explanation, safe to show to the caller.
    pub detail: String,
    /// Stable machine-readable code, e.g. `SYMBOL_NOT_FOUND`.
    pub error_code: String,
    /// When the error happened (RFC 3339, UTC).
    pub timestamp: String,
    /// The request id (also in the `X-Request-Id` response header).
    pub request_id: String,
}

/// An API failure. `into_response` leaves the body to the request-id
/// middleware, which knows the request id and renders [`ErrorBody`].
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Logged, never returned.
    pub internal: Option<String>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            internal: None,
            retry_after: None,
        }
    }
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", detail)
    }
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", detail)
    }
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }
    pub fn bad_gateway(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "UPSTREAM_ERROR", detail)
    }
    /// A 500 whose cause is logged but not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError {
            internal: Some(cause.to_string()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_ERROR",
                "internal error",
            )
        }
    }

    /// The generic error of a status produced outside our handlers (unknown
    /// route, wrong method, body too large, timeout).
    pub fn from_status(status: StatusCode, detail: Option<String>) -> Self {
        let code = match status {
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::REQUEST_TIMEOUT => "REQUEST_TIMEOUT",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED",
            StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_ERROR",
            StatusCode::SERVICE_UNAVAILABLE => "SERVICE_UNAVAILABLE",
            s if s.is_server_error() => "INTERNAL_ERROR",
            _ => "BAD_REQUEST",
        };
        let detail = match detail.filter(|d| !d.trim().is_empty() && !status.is_server_error()) {
            Some(d) => d,
            None => status
                .canonical_reason()
                .unwrap_or("error")
                .to_ascii_lowercase(),
        };
        Self::new(status, code, detail)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = self.status.into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res.extensions_mut().insert(self);
        res
    }
}

impl From<marketd_store::Error> for ApiError {
    fn from(e: marketd_store::Error) -> Self {
        match e {
            marketd_store::Error::InvalidCursor => ApiError::validation("invalid cursor"),
            marketd_store::Error::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "CONFLICT",
                format!("{what} already exists"),
            ),
            // A full disk is the operator's to fix and passes once space
            // returns: a 503 the caller may retry, not an internal error.
            e @ marketd_store::Error::Full { .. } => ApiError {
                internal: Some(e.to_string()),
                retry_after: Some(STORAGE_FULL_RETRY_SECS),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "STORAGE_FULL",
                    "storage is full: nothing was written; try again once space is freed",
                )
            },
            other => ApiError::internal(other),
        }
    }
}

/// `Retry-After` of a `STORAGE_FULL` answer, in seconds.
const STORAGE_FULL_RETRY_SECS: u64 = 5;

/// Every service error, so the HTTP mapping below is written once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Prices(#[from] PriceError),
    #[error(transparent)]
    Series(#[from] SeriesError),
    #[error(transparent)]
    Polling(#[from] PollingError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Connectors(#[from] ConnectorError),
    #[error(transparent)]
    Tda(#[from] TdaError),
    #[error(transparent)]
    TdaSignals(#[from] TdaSignalError),
}

/// The one mapping from the services' errors to the API's statuses, error
/// codes and details. Causes that are not the caller's business (store,
/// bus, crypto, upstream reasons) are logged with the request id, never
/// returned.
impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Prices(e) => match e {
                PriceError::UnknownProvider(u) => ApiError::validation(u.to_string()),
                PriceError::SymbolNotFound(s) => ApiError::not_found(
                    "SYMBOL_NOT_FOUND",
                    format!("symbol {s} not found at the provider"),
                ),
                PriceError::Upstream { provider, reason } => ApiError {
                    internal: Some(reason),
                    ..ApiError::bad_gateway(format!(
                        "provider {provider} is unavailable and no stored price exists"
                    ))
                },
            },
            ServiceError::Series(e) => match e {
                SeriesError::Validation(m) => ApiError::validation(m),
                SeriesError::Store(e) => e.into(),
            },
            ServiceError::Polling(e) => match e {
                PollingError::Validation(m) => ApiError::validation(m),
                e @ PollingError::NotFound(_) => {
                    ApiError::not_found("JOB_NOT_FOUND", e.to_string())
                }
                e @ PollingError::Unavailable(_) => unavailable(&e),
                PollingError::Store(e) => e.into(),
            },
            ServiceError::Access(e) => match e {
                AccessError::Validation(m) => ApiError::validation(m),
                e @ AccessError::KeyNotFound(_) => {
                    ApiError::not_found("KEY_NOT_FOUND", e.to_string())
                }
                e @ AccessError::LastAdminKey => {
                    ApiError::new(StatusCode::CONFLICT, "LAST_ADMIN_KEY", e.to_string())
                }
                e @ AccessError::CredentialNotFound(_) => {
                    ApiError::not_found("CREDENTIAL_NOT_FOUND", e.to_string())
                }
                e @ AccessError::Reserved(_) => {
                    ApiError::new(StatusCode::CONFLICT, "CREDENTIAL_RESERVED", e.to_string())
                }
                e @ AccessError::EncryptionNotConfigured => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ENCRYPTION_NOT_CONFIGURED",
                    format!("credentials cannot be stored: {e}"),
                ),
                e @ AccessError::Crypto { .. } => ApiError::internal(e),
                AccessError::Store(e) => e.into(),
            },
            ServiceError::Connectors(e) => match e {
                ConnectorError::Validation(m) => ApiError::validation(m),
                e @ ConnectorError::NotFound(_) => {
                    ApiError::not_found("CONNECTOR_NOT_FOUND", e.to_string())
                }
                e @ ConnectorError::NameTaken(_) => {
                    ApiError::new(StatusCode::CONFLICT, "CONNECTOR_NAME_TAKEN", e.to_string())
                }
                e @ ConnectorError::Unavailable(_) => unavailable(&e),
                ConnectorError::Upstream(m) => ApiError::bad_gateway(m),
                e @ ConnectorError::CorruptSecrets(_) => ApiError::internal(e),
                ConnectorError::Access(e) => ServiceError::Access(e).into(),
                ConnectorError::Store(e) => e.into(),
            },
            ServiceError::Tda(e) => match e {
                TdaError::Problem(p) => match p {
                    ProblemError::Invalid(m) => ApiError::validation(m),
                    ProblemError::TooLarge(m) => {
                        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", m)
                    }
                    e @ ProblemError::UploadNotFound(_) => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "UPLOAD_NOT_FOUND",
                        e.to_string(),
                    ),
                    e @ (ProblemError::Canceled | ProblemError::Failed(_)) => ApiError::internal(e),
                },
                e @ TdaError::NotFound("upload", _) => {
                    ApiError::not_found("UPLOAD_NOT_FOUND", e.to_string())
                }
                e @ TdaError::NotFound(..) => ApiError::not_found("JOB_NOT_FOUND", e.to_string()),
                e @ TdaError::NotFinished(_) => {
                    ApiError::new(StatusCode::CONFLICT, "JOB_NOT_FINISHED", e.to_string())
                }
                e @ TdaError::NoResult(_) => {
                    ApiError::new(StatusCode::CONFLICT, "JOB_HAS_NO_RESULT", e.to_string())
                }
                e @ TdaError::Expired(_) => {
                    ApiError::new(StatusCode::GONE, "RESULT_EXPIRED", e.to_string())
                }
                e @ TdaError::IdempotencyConflict => {
                    ApiError::new(StatusCode::CONFLICT, "IDEMPOTENCY_CONFLICT", e.to_string())
                }
                TdaError::InvalidUpload(m) => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_UPLOAD", m)
                }
                TdaError::UploadTooLarge(m) => {
                    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", m)
                }
                TdaError::Store(e) => e.into(),
                e @ TdaError::Bus(_) => unavailable(&e),
            },
            ServiceError::TdaSignals(e) => match e {
                TdaSignalError::Validation(m) => ApiError::validation(m),
                e @ TdaSignalError::UnknownBasket(_) => {
                    ApiError::not_found("BASKET_NOT_FOUND", e.to_string())
                }
                TdaSignalError::Store(e) => e.into(),
            },
        }
    }
}

/// A 503 for an operation that was saved but could not be announced on the
/// bus; the bus error is logged, not returned.
fn unavailable(e: &dyn std::error::Error) -> ApiError {
    ApiError {
        internal: e.source().map(ToString::to_string),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            e.to_string(),
        )
    }
}

/// Lets handlers use `?` on any service call.
macro_rules! from_service_error {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                ServiceError::from(e).into()
            }
        }
    )*};
}
from_service_error!(
    PriceError,
    SeriesError,
    PollingError,
    AccessError,
    ConnectorError,
    TdaError,
    TdaSignalError
);

impl From<marketd_model::Error> for ApiError {
    fn from(e: marketd_model::Error) -> Self {
        ApiError::validation(e.to_string())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk is a 503 `STORAGE_FULL` with `Retry-After`, whether the
    /// store error comes straight from a handler or through a service; any
    /// other store failure stays a 500 whose cause is not returned.
    #[test]
    fn a_full_store_is_a_503_storage_full() {
        let full = || marketd_store::Error::Full {
            op: "storing a polling job",
            source: "database or disk is full".into(),
        };
        for e in [
            ApiError::from(full()),
            ApiError::from(PollingError::Store(full())),
            ApiError::from(ConnectorError::Store(full())),
        ] {
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(e.code, "STORAGE_FULL");
            assert_eq!(e.retry_after, Some(STORAGE_FULL_RETRY_SECS));
            assert!(!e.detail.contains("database or disk"), "{}", e.detail);
        }
        let other = ApiError::from(marketd_store::Error::Database {
            op: "storing a polling job",
            source: "no such table".into(),
        });
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
