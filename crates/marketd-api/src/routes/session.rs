//! `GET /api/v1/session`: who the caller is, as the dashboard needs to know
//! it (sign in when reads need a key; hide or disable writes for a read
//! key). Open: it answers anonymous callers too, but credentials that are
//! sent are verified as on every route (a bad key is a 401).

use crate::auth::Principal;
use crate::state::AppState;
use axum::extract::State;
use axum::{Extension, Json};
use marketd_model::Role;
use marketd_model::time::to_rfc3339;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Valid credentials came with the request.
    pub authenticated: bool,
    /// Their role; `null` for an anonymous caller.
    pub role: Option<Role>,
    /// `key:<id>` for an API key, `jwt:<iss>:<sub>` for a token; never the secret.
    pub principal: Option<String>,
    /// Reads need credentials (`auth.require_read_key`); writes always do.
    pub read_requires_key: bool,
    /// When the credentials stop being valid (RFC 3339), if they expire.
    pub expires_at: Option<String>,
}

/// The caller's session.
#[utoipa::path(get, path = "/api/v1/session", tag = "access",
    responses(
        (status = 200, description = "Who the caller is", body = SessionResponse),
        (status = 401, description = "Credentials were sent and are not valid", body = crate::error::ErrorBody),
    ))]
pub async fn session(
    State(state): State<AppState>,
    principal: Option<Extension<Principal>>,
) -> Json<SessionResponse> {
    let p = principal.map(|Extension(p)| p);
    Json(SessionResponse {
        authenticated: p.is_some(),
        role: p.as_ref().map(|p| p.role),
        principal: p.as_ref().map(Principal::rate_limit_identity),
        read_requires_key: state.auth.reads_need_key(),
        expires_at: p.and_then(|p| p.expires_at).map(to_rfc3339),
    })
}
