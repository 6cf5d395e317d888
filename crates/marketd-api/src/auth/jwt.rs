//! Bearer JWTs (`[auth.jwt]`): the verifier built once from the
//! configuration, and the [`Principal`] a valid token stands for (signature,
//! issuer, audience and expiry checked; the role read from a configurable
//! claim).

use super::config::{AuthConfigError, JwtConfig};
use super::{Principal, PrincipalKind};
use crate::error::ApiError;
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use marketd_model::Role;

/// Checks tokens against one issuer's key.
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    role_claim: String,
}

impl JwtVerifier {
    /// The verifier of `cfg`, or why the configuration cannot work.
    pub(crate) fn new(cfg: &JwtConfig) -> Result<Self, AuthConfigError> {
        let err = |m: String| AuthConfigError::Jwt(m);
        if cfg.issuer.trim().is_empty() || cfg.audience.trim().is_empty() {
            return Err(err("issuer and audience must be set when enabled".into()));
        }
        if cfg.role_claim.trim().is_empty() {
            return Err(err("role_claim must not be empty".into()));
        }
        let (algorithm, key) = match cfg.algorithm.to_ascii_uppercase().as_str() {
            "HS256" => {
                let secret = cfg
                    .secret
                    .as_ref()
                    .filter(|s| s.expose().len() >= 32)
                    .ok_or_else(|| {
                        err("secret of at least 32 bytes is required for HS256".into())
                    })?;
                (
                    Algorithm::HS256,
                    DecodingKey::from_secret(secret.expose().as_bytes()),
                )
            }
            "RS256" => {
                let path = cfg
                    .public_key_path
                    .as_ref()
                    .ok_or_else(|| err("public_key_path is required for RS256".into()))?;
                let pem = std::fs::read(path)
                    .map_err(|e| err(format!("public_key_path {}: {e}", path.display())))?;
                let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                    err(format!(
                        "public_key_path {}: not an RSA public key in PEM: {e}",
                        path.display()
                    ))
                })?;
                (Algorithm::RS256, key)
            }
            other => {
                return Err(err(format!(
                    "algorithm {other:?} is not supported (HS256 or RS256)"
                )));
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[cfg.issuer.trim()]);
        validation.set_audience(&[cfg.audience.trim()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = cfg.leeway_s;
        validation.validate_nbf = true;
        Ok(JwtVerifier {
            key,
            validation,
            role_claim: cfg.role_claim.trim().to_string(),
        })
    }

    /// The caller `token` stands for: 401 when it does not verify, 403 when
    /// it carries no known role.
    pub(crate) fn principal(&self, token: &str) -> Result<Principal, ApiError> {
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not valid yet",
                ErrorKind::InvalidIssuer => "token issuer not accepted",
                ErrorKind::InvalidAudience => "token audience not accepted",
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    "token signature invalid"
                }
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "token invalid",
            };
            ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", why)
        })?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", "token lacks sub")
            })?;
        let iss = claims.get("iss").and_then(|s| s.as_str()).unwrap_or("");
        let role = match claims.get(&self.role_claim) {
            Some(serde_json::Value::String(s)) => Role::parse(s),
            Some(serde_json::Value::Array(xs)) => xs
                .iter()
                .filter_map(|x| x.as_str().and_then(Role::parse))
                .max(),
            _ => None,
        }
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("token has no known role in claim {:?}", self.role_claim),
            )
        })?;
        // `exp` is required and was checked; the leeway extends it here too.
        let expires_at = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .map(|exp| {
                exp.saturating_add(i64::try_from(self.validation.leeway).unwrap_or(i64::MAX))
                    .saturating_mul(1_000_000_000)
            });
        Ok(Principal {
            kind: PrincipalKind::Jwt,
            id: sub.chars().take(256).collect::<String>().into(),
            issuer: iss.chars().take(256).collect::<String>().into(),
            role,
            expires_at,
        })
    }
}
