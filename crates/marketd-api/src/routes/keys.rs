//! API key management (role `admin`): create (the key is returned once, and
//! only its SHA-256 is stored), list (never a key or hash), revoke (refused
//! at once on every instance: keys are looked up per request).

use crate::AppState;
use crate::auth::{MAX_KEY_DAYS, create_expiring_api_key, validate_key_name};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_model::time::{now_ns, to_rfc3339};
use marketd_model::{ApiKey, Role};
use marketd_store::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Body of `POST /api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Who holds the key (1-64 characters).
    pub name: String,
    pub role: Role,
    /// Days until the key stops working (1-3650); absent: it never expires.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A key as listed: never the key itself nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
    pub expires_at: Option<String>,
    /// Neither revoked nor expired.
    pub active: bool,
}

impl From<ApiKey> for KeyView {
    fn from(k: ApiKey) -> Self {
        KeyView {
            id: k.id,
            active: k.is_active(),
            name: k.name,
            role: k.role,
            prefix: k.prefix,
            created_at: to_rfc3339(k.created_at),
            revoked_at: k.revoked_at.map(to_rfc3339),
            expires_at: k.expires_at.map(to_rfc3339),
        }
    }
}

/// A new key: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub view: KeyView,
    /// The key, for the `X-API-Key` header. It cannot be shown again.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub count: usize,
    pub keys: Vec<KeyView>,
}

/// Creates an API key (admin).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "access", request_body = CreateKey,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created; the key is shown once", body = CreatedKey),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    validate_key_name(&req.name).map_err(ApiError::validation)?;
    if req
        .expires_in_days
        .is_some_and(|d| d == 0 || d > MAX_KEY_DAYS)
    {
        return Err(ApiError::validation(format!(
            "expires_in_days must be between 1 and {MAX_KEY_DAYS}"
        )));
    }
    let (record, key) = create_expiring_api_key(
        &state.engine.backends.store,
        req.name.trim(),
        req.role,
        req.expires_in_days,
    )
    .await
    .map_err(ApiError::from)?;
    tracing::info!(key_id = %record.id, role = %record.role, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view: record.into(),
            key: key.expose().to_string(),
        }),
    ))
}

/// Lists API keys, revoked ones included (admin).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "access", security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = KeyList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<KeyList>> {
    let keys: Vec<KeyView> = state
        .engine
        .backends
        .store
        .api_keys()
        .await?
        .into_iter()
        .map(KeyView::from)
        .collect();
    Ok(Json(KeyList {
        count: keys.len(),
        keys,
    }))
}

/// Revokes an API key at once (admin). The last active admin key cannot be
/// revoked (409), so the instance cannot lock its operators out.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "access", params(("id" = Uuid, Path, description = "Key id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let store = &state.engine.backends.store;
    let keys = store.api_keys().await?;
    let Some(target) = keys.iter().find(|k| k.id == id && k.revoked_at.is_none()) else {
        return Err(ApiError::not_found(
            "KEY_NOT_FOUND",
            format!("no active API key {id}"),
        ));
    };
    let admins = keys
        .iter()
        .filter(|k| k.is_active() && k.role == Role::Admin)
        .count();
    if target.role == Role::Admin && admins <= 1 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "LAST_ADMIN_KEY",
            "this is the last active admin key: create another admin key first",
        ));
    }
    if !store.revoke_api_key(id, now_ns()).await? {
        return Err(ApiError::not_found(
            "KEY_NOT_FOUND",
            format!("no active API key {id}"),
        ));
    }
    tracing::info!(key_id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
