//! Upstream credentials stored encrypted (role `admin`): provider API keys
//! (`providers.finnhub.api_key`) and, later, connector secrets. Values go in
//! and are never returned, logged or echoed in errors; the store holds only
//! AES-256-GCM ciphertext under the current encryption key's id.

use super::views::counted;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_model::time::to_rfc3339;
use marketd_model::{Secret, StoredCredential};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `PUT /credentials/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredential {
    /// The secret value (1 to 8192 characters). Never returned.
    #[schema(value_type = String, format = Password)]
    #[serde(deserialize_with = "string_secret")]
    pub value: Secret,
}

/// A secret given as a JSON string, and nothing else (`Secret` itself
/// takes any scalar, for configuration from environment variables).
fn string_secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

impl std::fmt::Debug for PutCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PutCredential { value: *** }")
    }
}

/// A credential as listed: metadata only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub name: String,
    /// Id of the encryption key that sealed the value.
    pub key_id: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<StoredCredential> for CredentialView {
    fn from(c: StoredCredential) -> Self {
        CredentialView {
            name: c.name,
            key_id: c.sealed.key_id,
            created_at: to_rfc3339(c.created_at),
            updated_at: to_rfc3339(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    pub count: usize,
    pub credentials: Vec<CredentialView>,
}

/// Stores (or replaces) a credential, encrypted (admin).
#[utoipa::path(put, path = "/api/v1/credentials/{name}", tag = "access", request_body = PutCredential,
    params(("name" = String, Path, description = "Credential name, e.g. providers.finnhub.api_key")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "A connector's secrets (`connectors.<id>.secrets`): change them through the connector", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, description = "No encryption key configured", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PutCredential>,
) -> ApiResult<Json<CredentialView>> {
    let c = state
        .services
        .access
        .put_credential(&name, &req.value)
        .await?;
    Ok(Json(c.into()))
}

/// Lists stored credentials without their values (admin).
#[utoipa::path(get, path = "/api/v1/credentials", tag = "access", security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = CredentialList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<CredentialList>> {
    let (count, credentials) = counted(state.services.access.list_credentials().await?);
    Ok(Json(CredentialList { count, credentials }))
}

/// Deletes a stored credential (admin).
#[utoipa::path(delete, path = "/api/v1/credentials/{name}", tag = "access",
    params(("name" = String, Path, description = "Credential name")), security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "A connector's secrets: they go with the connector", body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.services.access.delete_credential(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
