//! `GET /api/v1/realtime`: the WebSocket face of the realtime hub
//! ([`marketd_engine::realtime`]). The protocol is in `protocol.rs` and
//! `docs/realtime.md`; one connection's loop in `session.rs`.

pub mod protocol;
pub mod revocations;
pub mod session;

use crate::auth::{Principal, PrincipalKind};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Extension, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::Response;
use std::net::SocketAddr;

/// The subprotocol the server answers when a client offers it (a browser
/// offering its key as a subprotocol must offer this one too: the server
/// never echoes the key).
pub const SUBPROTOCOL: &str = "marketd.v1";

/// Largest client message accepted (a subscribe with many symbols fits).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Socket buffers per connection. tungstenite's defaults (128 KiB each way)
/// cost every idle connection that much; clients send small messages, and
/// the session flushes what it writes, so a little suffices.
const READ_BUFFER: usize = 8 * 1024;
const WRITE_BUFFER: usize = 16 * 1024;
/// Bytes a connection may have unwritten before the write fails (the
/// session then closes it): the slow-consumer rules keep it far below.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;

/// Upgrades to the realtime protocol.
#[utoipa::path(get, path = "/api/v1/realtime", tag = "realtime",
    security((), ("api_key" = []), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol of docs/realtime.md"),
        (status = 426, description = "Not a WebSocket upgrade", body = crate::error::ErrorBody),
        (status = 401, description = "Reads need a key (auth.require_read_key)", body = crate::error::ErrorBody),
    ))]
pub async fn connect(
    State(state): State<AppState>,
    caller: Option<Extension<Principal>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| {
        ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "WEBSOCKET_REQUIRED",
            format!("this route speaks WebSocket only: {e}"),
        )
    })?;
    let hub = state.realtime.clone();
    let client = match &caller {
        Some(Extension(p)) => p.rate_limit_identity(),
        None => format!(
            "ip:{}",
            crate::ratelimit::client_addr_of(
                &headers,
                peer.as_ref().map(|Extension(c)| c),
                state.cfg.rate_limit.trust_forwarded_for
            )
        ),
    };
    let Some(admission) = hub.admit(&client) else {
        metrics::counter!("marketd_realtime_refused_total").increment(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_CONNECTIONS",
            format!(
                "at most {} realtime connections per client",
                hub.config().max_connections_per_client
            ),
        ));
    };
    // A connection closes when its credentials expire, and one made with an
    // API key when the key is revoked.
    let expires_at = caller.as_ref().and_then(|Extension(p)| p.expires_at);
    let key = caller
        .filter(|Extension(p)| p.kind == PrincipalKind::ApiKey)
        .map(|Extension(p)| (p.id, state.revoked.clone()));
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .protocols([SUBPROTOCOL])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            session::run(socket, hub, key, expires_at).await;
            drop(admission);
        }))
}
