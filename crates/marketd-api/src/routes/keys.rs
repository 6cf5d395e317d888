//! API key management (role `admin`): create (the key is returned once, and
//! only its SHA-256 is stored), list (never a key or hash), revoke (refused
//! at once on every instance: keys are looked up per request).

use super::views::counted;
use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use marketd_engine::services::access::LastAdmin;
use marketd_model::time::to_rfc3339;
use marketd_model::{ApiKey, Role};
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
    let (record, key) = state
        .services
        .access
        .create_key(&req.name, req.role, req.expires_in_days)
        .await?;
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
    let (count, keys) = counted(state.services.access.list_keys().await?);
    Ok(Json(KeyList { count, keys }))
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
    state
        .services
        .access
        .revoke_key(id, LastAdmin::Keep)
        .await?;
    // Refused at once on this instance; other instances within
    // `auth.key_cache_ms`.
    state.auth.forget_keys();
    Ok(StatusCode::NO_CONTENT)
}
