//! Upstream credentials stored encrypted (role `admin`): provider API keys
//! (`providers.finnhub.api_key`) and, later, connector secrets. Values go in
//! and are never returned, logged or echoed in errors; the store holds only
//! AES-256-GCM ciphertext under the current encryption key's id.

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_model::time::{now_ns, to_rfc3339};
use marketd_model::{Secret, StoredCredential};
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Checks a credential name: 1-128 of `a-z 0-9 . _ -`, starting with a
/// letter or digit (`providers.finnhub.api_key`, `connectors.<id>.token`).
pub fn validate_credential_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err("credential names are 1-128 characters of a-z, 0-9, '.', '_', '-'".into())
    }
}

/// Body of `PUT /credentials/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCredential {
    /// The secret value (at most 8 KiB). Never returned.
    #[schema(value_type = String, format = Password)]
    pub value: Secret,
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

fn name_checked(name: &str) -> ApiResult<()> {
    validate_credential_name(name).map_err(ApiError::validation)
}

/// Stores (or replaces) a credential, encrypted (admin).
#[utoipa::path(put, path = "/api/v1/credentials/{name}", tag = "access", request_body = PutCredential,
    params(("name" = String, Path, description = "Credential name, e.g. providers.finnhub.api_key")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = CredentialView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, description = "No encryption key configured", body = ErrorBody)))]
pub async fn put(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PutCredential>,
) -> ApiResult<Json<CredentialView>> {
    name_checked(&name)?;
    if req.value.is_empty() || req.value.expose().len() > 8192 {
        return Err(ApiError::validation("value must be 1 to 8192 bytes"));
    }
    if !state.keyring.is_configured() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ENCRYPTION_NOT_CONFIGURED",
            "credentials cannot be stored: no encryption key is configured (encryption.key)",
        ));
    }
    let sealed = state
        .keyring
        .seal(&name, &req.value)
        .map_err(ApiError::internal)?;
    let store = &state.engine.backends.store;
    let now = now_ns();
    let created_at = store.credential(&name).await?.map_or(now, |c| c.created_at);
    let c = StoredCredential {
        name,
        sealed,
        created_at,
        updated_at: now,
    };
    store.put_credential(&c).await?;
    tracing::info!(credential = %c.name, key_id = %c.sealed.key_id, "credential stored");
    Ok(Json(c.into()))
}

/// Lists stored credentials without their values (admin).
#[utoipa::path(get, path = "/api/v1/credentials", tag = "access", security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = CredentialList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<CredentialList>> {
    let credentials: Vec<CredentialView> = state
        .engine
        .backends
        .store
        .credentials()
        .await?
        .into_iter()
        .map(CredentialView::from)
        .collect();
    Ok(Json(CredentialList {
        count: credentials.len(),
        credentials,
    }))
}

/// Deletes a stored credential (admin).
#[utoipa::path(delete, path = "/api/v1/credentials/{name}", tag = "access",
    params(("name" = String, Path, description = "Credential name")), security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    name_checked(&name)?;
    if !state.engine.backends.store.delete_credential(&name).await? {
        return Err(ApiError::not_found(
            "CREDENTIAL_NOT_FOUND",
            format!("no credential named {name}"),
        ));
    }
    tracing::info!(credential = %name, "credential deleted");
    Ok(StatusCode::NO_CONTENT)
}
