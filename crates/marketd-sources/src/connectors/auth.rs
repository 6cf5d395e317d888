//! Upstream request authentication of generic REST connectors: how a
//! connector proves who it is to the venue it polls (an API key in a header
//! or the query, a bearer token, HTTP basic, or a venue's HMAC signature).
//!
//! [`UpstreamAuth`] is the `auth` object of a connector's JSON
//! (`{"type": "hmac_binance", "api_key": "…", "secret": "…"}`) and
//! [`UpstreamAuth::apply`] signs a built [`reqwest::Request`] with it. The
//! clock is an argument (`now_ns`, nanoseconds since the epoch), so
//! signatures are reproducible in tests.
//!
//! # Secrets
//!
//! Every credential is a [`Secret`]: `Debug`, `Display` and serde
//! serialization print `***`, so a spec that is logged or returned by the
//! API never carries one (serializing an `UpstreamAuth` *is* its redacted
//! form). A service that stores connectors reads and replaces the raw
//! values through [`UpstreamAuth::secrets`] / [`UpstreamAuth::secrets_mut`]
//! (seal before storing, unseal after loading), and
//! [`UpstreamAuth::redacted`] gives a copy whose secrets are the literal
//! [`REDACTED`] placeholder. Non-secret fields (`api_key.name`,
//! `basic.username`, `recv_window`) stay readable.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use marketd_model::Secret;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt::Write as _;
use thiserror::Error;

/// The text that stands for a secret in redacted output.
pub const REDACTED: &str = "***";

/// Binance's API key header.
pub const BINANCE_KEY_HEADER: &str = "X-MBX-APIKEY";

/// Where an `api_key` credential travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    Header,
    Query,
}

/// How a connector authenticates to its upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum UpstreamAuth {
    /// No credentials.
    #[default]
    None,
    /// A static key sent as header `name: value` or query parameter `name=value`.
    ApiKey {
        name: String,
        value: Secret,
        #[serde(rename = "in")]
        location: KeyLocation,
    },
    /// `Authorization: Bearer <token>`.
    Bearer { token: Secret },
    /// `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: Secret },
    /// Binance signed endpoints: `recvWindow` (when set) and `timestamp=<ms>`
    /// are appended to the query, the query string (plus the body, if any)
    /// is signed with HMAC-SHA256, the hex digest is appended as the last
    /// parameter `signature`, and the key goes in `X-MBX-APIKEY`.
    HmacBinance {
        api_key: Secret,
        secret: Secret,
        /// Milliseconds the request stays valid at the venue (Binance's
        /// default, 5000, when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recv_window: Option<u64>,
    },
    /// OKX: `OK-ACCESS-SIGN` = base64(HMAC-SHA256(secret, timestamp, METHOD,
    /// requestPath with query, body concatenated)), with `OK-ACCESS-KEY`,
    /// `OK-ACCESS-TIMESTAMP` (ISO 8601 UTC, milliseconds) and `OK-ACCESS-PASSPHRASE`.
    HmacOkx {
        api_key: Secret,
        secret: Secret,
        passphrase: Secret,
    },
}

/// Why a request could not be authenticated.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("auth.{field} is not a valid HTTP header value")]
    InvalidHeaderValue { field: &'static str },
    #[error("auth.name {0:?} is not a valid HTTP header name")]
    InvalidHeaderName(String),
    #[error("auth.{field} must not be empty")]
    Empty { field: &'static str },
    #[error("clock reading {0} ns is outside the range a signature timestamp can express")]
    Clock(i64),
    #[error("the request body is a stream and cannot be signed")]
    UnsignableBody,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Binance's signature: lowercase hex HMAC-SHA256 of `payload` under `secret`.
pub fn binance_signature(secret: &str, payload: &[u8]) -> String {
    hex(&hmac_sha256(secret.as_bytes(), &[payload]))
}

/// OKX's signature: base64 HMAC-SHA256 of `timestamp + method + request_path + body`.
pub fn okx_signature(
    secret: &str,
    timestamp: &str,
    method: &str,
    request_path: &str,
    body: &[u8],
) -> String {
    BASE64.encode(hmac_sha256(
        secret.as_bytes(),
        &[
            timestamp.as_bytes(),
            method.as_bytes(),
            request_path.as_bytes(),
            body,
        ],
    ))
}

/// `now_ns` as OKX's timestamp: ISO 8601 UTC with milliseconds
/// (`2020-12-08T09:08:57.715Z`).
pub fn iso8601_millis(now_ns: i64) -> Result<String, AuthError> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ns))
        .map_err(|_| AuthError::Clock(now_ns))?;
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).map_err(|_| AuthError::Clock(now_ns))
}

fn header_value(text: &str, field: &'static str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::from_str(text).map_err(|_| AuthError::InvalidHeaderValue { field })?;
    v.set_sensitive(true);
    Ok(v)
}

fn body_bytes(req: &reqwest::Request) -> Result<&[u8], AuthError> {
    match req.body() {
        None => Ok(&[]),
        Some(b) => b.as_bytes().ok_or(AuthError::UnsignableBody),
    }
}

impl UpstreamAuth {
    /// The kind as written in JSON (`none`, `api_key`, …), for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamAuth::None => "none",
            UpstreamAuth::ApiKey { .. } => "api_key",
            UpstreamAuth::Bearer { .. } => "bearer",
            UpstreamAuth::Basic { .. } => "basic",
            UpstreamAuth::HmacBinance { .. } => "hmac_binance",
            UpstreamAuth::HmacOkx { .. } => "hmac_okx",
        }
    }

    /// The secret fields, by their JSON name, in declaration order.
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        match self {
            UpstreamAuth::None => vec![],
            UpstreamAuth::ApiKey { value, .. } => vec![("value", value)],
            UpstreamAuth::Bearer { token } => vec![("token", token)],
            UpstreamAuth::Basic { password, .. } => vec![("password", password)],
            UpstreamAuth::HmacBinance {
                api_key, secret, ..
            } => vec![("api_key", api_key), ("secret", secret)],
            UpstreamAuth::HmacOkx {
                api_key,
                secret,
                passphrase,
            } => vec![
                ("api_key", api_key),
                ("secret", secret),
                ("passphrase", passphrase),
            ],
        }
    }

    /// The secret fields, mutable: a service seals each value before storing
    /// and unseals it after loading.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
        match self {
            UpstreamAuth::None => vec![],
            UpstreamAuth::ApiKey { value, .. } => vec![("value", value)],
            UpstreamAuth::Bearer { token } => vec![("token", token)],
            UpstreamAuth::Basic { password, .. } => vec![("password", password)],
            UpstreamAuth::HmacBinance {
                api_key, secret, ..
            } => vec![("api_key", api_key), ("secret", secret)],
            UpstreamAuth::HmacOkx {
                api_key,
                secret,
                passphrase,
            } => vec![
                ("api_key", api_key),
                ("secret", secret),
                ("passphrase", passphrase),
            ],
        }
    }

    /// A copy whose secrets are all [`REDACTED`].
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for (_, s) in copy.secrets_mut() {
            *s = Secret::new(REDACTED);
        }
        copy
    }

    /// The secrets sent as (part of) a header value, by field.
    fn header_secrets(&self) -> Vec<(&'static str, &Secret)> {
        match self {
            UpstreamAuth::ApiKey {
                value,
                location: KeyLocation::Header,
                ..
            } => vec![("value", value)],
            UpstreamAuth::Bearer { token } => vec![("token", token)],
            UpstreamAuth::HmacBinance { api_key, .. } => vec![("api_key", api_key)],
            UpstreamAuth::HmacOkx {
                api_key,
                passphrase,
                ..
            } => vec![("api_key", api_key), ("passphrase", passphrase)],
            _ => vec![],
        }
    }

    /// Checks what can be checked without a request: no empty secret, a
    /// valid header name for a header key, valid header values for the
    /// secrets sent in headers (so a request is never refused for them
    /// later). Errors name the field.
    pub fn validate(&self) -> Result<(), AuthError> {
        for (field, s) in self.secrets() {
            if s.is_empty() {
                return Err(AuthError::Empty { field });
            }
        }
        for (field, s) in self.header_secrets() {
            if HeaderValue::from_str(s.expose()).is_err() {
                return Err(AuthError::InvalidHeaderValue { field });
            }
        }
        match self {
            UpstreamAuth::ApiKey { name, location, .. } => {
                if name.is_empty() {
                    return Err(AuthError::Empty { field: "name" });
                }
                if *location == KeyLocation::Header
                    && HeaderName::from_bytes(name.as_bytes()).is_err()
                {
                    return Err(AuthError::InvalidHeaderName(name.clone()));
                }
            }
            UpstreamAuth::Basic { username, .. } if username.is_empty() => {
                return Err(AuthError::Empty { field: "username" });
            }
            _ => {}
        }
        Ok(())
    }

    /// Authenticates `req` as of `now_ns` (nanoseconds since the epoch):
    /// adds headers and query parameters and, for the HMAC kinds, signs the
    /// request exactly as it will be sent. Call it last, after the URL,
    /// headers and body are final.
    pub fn apply(&self, req: &mut reqwest::Request, now_ns: i64) -> Result<(), AuthError> {
        match self {
            UpstreamAuth::None => {}
            UpstreamAuth::ApiKey {
                name,
                value,
                location: KeyLocation::Header,
            } => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| AuthError::InvalidHeaderName(name.clone()))?;
                req.headers_mut()
                    .insert(name, header_value(value.expose(), "value")?);
            }
            UpstreamAuth::ApiKey {
                name,
                value,
                location: KeyLocation::Query,
            } => {
                req.url_mut()
                    .query_pairs_mut()
                    .append_pair(name, value.expose());
            }
            UpstreamAuth::Bearer { token } => {
                req.headers_mut().insert(
                    reqwest::header::AUTHORIZATION,
                    header_value(&format!("Bearer {}", token.expose()), "token")?,
                );
            }
            UpstreamAuth::Basic { username, password } => {
                let creds = BASE64.encode(format!("{username}:{}", password.expose()));
                req.headers_mut().insert(
                    reqwest::header::AUTHORIZATION,
                    header_value(&format!("Basic {creds}"), "password")?,
                );
            }
            UpstreamAuth::HmacBinance {
                api_key,
                secret,
                recv_window,
            } => {
                let millis = now_ns.div_euclid(1_000_000);
                if millis < 0 {
                    return Err(AuthError::Clock(now_ns));
                }
                let mut query = req.url().query().unwrap_or("").to_string();
                if let Some(w) = recv_window {
                    if !query.is_empty() {
                        query.push('&');
                    }
                    let _ = write!(query, "recvWindow={w}");
                }
                if !query.is_empty() {
                    query.push('&');
                }
                let _ = write!(query, "timestamp={millis}");
                let signature = {
                    let body = body_bytes(req)?;
                    hex(&hmac_sha256(
                        secret.expose().as_bytes(),
                        &[query.as_bytes(), body],
                    ))
                };
                query.push_str("&signature=");
                query.push_str(&signature);
                req.url_mut().set_query(Some(&query));
                req.headers_mut().insert(
                    HeaderName::from_static("x-mbx-apikey"),
                    header_value(api_key.expose(), "api_key")?,
                );
            }
            UpstreamAuth::HmacOkx {
                api_key,
                secret,
                passphrase,
            } => {
                let timestamp = iso8601_millis(now_ns)?;
                let mut path = req.url().path().to_string();
                if let Some(q) = req.url().query() {
                    path.push('?');
                    path.push_str(q);
                }
                let sign = okx_signature(
                    secret.expose(),
                    &timestamp,
                    req.method().as_str(),
                    &path,
                    body_bytes(req)?,
                );
                let h = req.headers_mut();
                h.insert(
                    HeaderName::from_static("ok-access-key"),
                    header_value(api_key.expose(), "api_key")?,
                );
                h.insert(
                    HeaderName::from_static("ok-access-sign"),
                    header_value(&sign, "secret")?,
                );
                h.insert(
                    HeaderName::from_static("ok-access-timestamp"),
                    HeaderValue::from_str(&timestamp).map_err(|_| AuthError::Clock(now_ns))?,
                );
                h.insert(
                    HeaderName::from_static("ok-access-passphrase"),
                    header_value(passphrase.expose(), "passphrase")?,
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BINANCE_SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const BINANCE_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

    fn request(method: reqwest::Method, url: &str, body: Option<&str>) -> reqwest::Request {
        let mut req = reqwest::Request::new(method, url.parse().unwrap());
        if let Some(b) = body {
            *req.body_mut() = Some(b.to_string().into());
        }
        req
    }

    #[test]
    fn binance_documented_example() {
        // Binance's API docs, "SIGNED endpoint examples for POST /api/v3/order".
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        assert_eq!(
            binance_signature(BINANCE_SECRET, payload.as_bytes()),
            expected
        );

        // The same through `apply`: recvWindow and timestamp appended, then the signature last.
        let auth = UpstreamAuth::HmacBinance {
            api_key: Secret::new(BINANCE_KEY),
            secret: Secret::new(BINANCE_SECRET),
            recv_window: Some(5000),
        };
        let mut req = request(
            reqwest::Method::POST,
            "https://api.binance.com/api/v3/order?symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1",
            None,
        );
        auth.apply(&mut req, 1_499_827_319_559 * 1_000_000 + 999_999)
            .unwrap();
        assert_eq!(
            req.url().query().unwrap(),
            format!("{payload}&signature={expected}")
        );
        assert_eq!(req.headers()["x-mbx-apikey"], BINANCE_KEY);
        assert!(req.headers()["x-mbx-apikey"].is_sensitive());
    }

    #[test]
    fn binance_signs_query_then_body() {
        // Binance's example 3: part in the query, part in the body; the
        // payload is their plain concatenation.
        let auth = UpstreamAuth::HmacBinance {
            api_key: Secret::new("k"),
            secret: Secret::new(BINANCE_SECRET),
            recv_window: None,
        };
        let mut req = request(
            reqwest::Method::POST,
            "https://x.test/o?symbol=LTCBTC",
            Some("quantity=1"),
        );
        auth.apply(&mut req, 1_000_000_000_000_000_000).unwrap();
        let q = req.url().query().unwrap();
        let (signed, sig) = q.rsplit_once("&signature=").unwrap();
        assert_eq!(signed, "symbol=LTCBTC&timestamp=1000000000000");
        assert_eq!(
            sig,
            binance_signature(
                BINANCE_SECRET,
                b"symbol=LTCBTC&timestamp=1000000000000quantity=1"
            )
        );
        // No query at all: timestamp is the first parameter.
        let mut req = request(reqwest::Method::GET, "https://x.test/a", None);
        auth.apply(&mut req, 1_000_000_000_000_000_000).unwrap();
        assert!(
            req.url()
                .query()
                .unwrap()
                .starts_with("timestamp=1000000000000&signature=")
        );
    }

    /// Expected value printed by the independent oracle
    /// `tests/oracles/okx_signature.py` (Python standard library only).
    const OKX_ORACLE_SIGN: &str = "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY=";
    const OKX_SECRET: &str = "22582BD0CFF14C41EDBF1AB98506286D";

    #[test]
    fn okx_documented_example_matches_the_oracle() {
        assert_eq!(
            okx_signature(
                OKX_SECRET,
                "2020-12-08T09:08:57.715Z",
                "GET",
                "/api/v5/account/balance?ccy=BTC",
                b""
            ),
            OKX_ORACLE_SIGN
        );
        // 2020-12-08T09:08:57.715Z, plus sub-millisecond noise that must be cut.
        let now_ns = 1_607_418_537_715_000_000 + 123_456;
        assert_eq!(iso8601_millis(now_ns).unwrap(), "2020-12-08T09:08:57.715Z");
        let auth = UpstreamAuth::HmacOkx {
            api_key: Secret::new("key"),
            secret: Secret::new(OKX_SECRET),
            passphrase: Secret::new("pass"),
        };
        let mut req = request(
            reqwest::Method::GET,
            "https://www.okx.com/api/v5/account/balance?ccy=BTC",
            None,
        );
        auth.apply(&mut req, now_ns).unwrap();
        let h = req.headers();
        assert_eq!(h["ok-access-sign"], OKX_ORACLE_SIGN);
        assert_eq!(h["ok-access-timestamp"], "2020-12-08T09:08:57.715Z");
        assert_eq!(h["ok-access-key"], "key");
        assert_eq!(h["ok-access-passphrase"], "pass");
        assert!(h["ok-access-passphrase"].is_sensitive());
    }

    #[test]
    fn simple_kinds_set_header_or_query() {
        let mut req = request(reqwest::Method::GET, "https://x.test/p?a=1", None);
        UpstreamAuth::ApiKey {
            name: "apikey".into(),
            value: Secret::new("s e&cret"),
            location: KeyLocation::Query,
        }
        .apply(&mut req, 0)
        .unwrap();
        assert_eq!(req.url().query(), Some("a=1&apikey=s+e%26cret"));

        let mut req = request(reqwest::Method::GET, "https://x.test/p", None);
        UpstreamAuth::ApiKey {
            name: "X-Api-Key".into(),
            value: Secret::new("k1"),
            location: KeyLocation::Header,
        }
        .apply(&mut req, 0)
        .unwrap();
        assert_eq!(req.headers()["x-api-key"], "k1");

        let mut req = request(reqwest::Method::GET, "https://x.test/p", None);
        UpstreamAuth::Bearer {
            token: Secret::new("tok"),
        }
        .apply(&mut req, 0)
        .unwrap();
        assert_eq!(req.headers()["authorization"], "Bearer tok");

        let mut req = request(reqwest::Method::GET, "https://x.test/p", None);
        UpstreamAuth::Basic {
            username: "Aladdin".into(),
            password: Secret::new("open sesame"),
        }
        .apply(&mut req, 0)
        .unwrap();
        // RFC 7617's example.
        assert_eq!(
            req.headers()["authorization"],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(req.headers()["authorization"].is_sensitive());

        let bad = UpstreamAuth::Bearer {
            token: Secret::new("a\nb"),
        };
        let mut req = request(reqwest::Method::GET, "https://x.test/p", None);
        assert_eq!(
            bad.apply(&mut req, 0),
            Err(AuthError::InvalidHeaderValue { field: "token" })
        );
    }

    #[test]
    fn json_shape_and_secrets_never_print() {
        let json =
            r#"{"type":"hmac_okx","api_key":"KEYVAL","secret":"SECVAL","passphrase":"PASSVAL"}"#;
        let auth: UpstreamAuth = serde_json::from_str(json).unwrap();
        assert_eq!(auth.kind(), "hmac_okx");
        let names: Vec<&str> = auth.secrets().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["api_key", "secret", "passphrase"]);
        assert_eq!(auth.secrets()[1].1.expose(), "SECVAL");
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("KEYVAL") && !debug.contains("SECVAL") && !debug.contains("PASSVAL"),
            "{debug}"
        );
        assert_eq!(
            serde_json::to_string(&auth).unwrap(),
            r#"{"type":"hmac_okx","api_key":"***","secret":"***","passphrase":"***"}"#
        );
        let red = auth.redacted();
        assert!(red.secrets().iter().all(|(_, s)| s.expose() == REDACTED));

        let key: UpstreamAuth =
            serde_json::from_str(r#"{"type":"api_key","name":"token","value":"v","in":"query"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_value(&key).unwrap(),
            serde_json::json!({"type":"api_key","name":"token","value":"***","in":"query"})
        );
        let basic: UpstreamAuth =
            serde_json::from_str(r#"{"type":"basic","username":"u","password":"p"}"#).unwrap();
        assert_eq!(basic.secrets().len(), 1, "the username is not secret");
        let binance: UpstreamAuth = serde_json::from_str(
            r#"{"type":"hmac_binance","api_key":"k","secret":"s","recv_window":5000}"#,
        )
        .unwrap();
        assert!(matches!(
            binance,
            UpstreamAuth::HmacBinance {
                recv_window: Some(5000),
                ..
            }
        ));
        assert_eq!(
            serde_json::from_str::<UpstreamAuth>(r#"{"type":"none"}"#).unwrap(),
            UpstreamAuth::None
        );
        assert!(serde_json::from_str::<UpstreamAuth>(r#"{"type":"oauth"}"#).is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let auth = UpstreamAuth::HmacOkx {
            api_key: Secret::new("k"),
            secret: Secret::new(""),
            passphrase: Secret::new("p"),
        };
        let err = auth.validate().unwrap_err();
        assert_eq!(err.to_string(), "auth.secret must not be empty");
        let bad_name = UpstreamAuth::ApiKey {
            name: "bad name".into(),
            value: Secret::new("v"),
            location: KeyLocation::Header,
        };
        assert!(matches!(
            bad_name.validate(),
            Err(AuthError::InvalidHeaderName(_))
        ));
        assert_eq!(UpstreamAuth::None.validate(), Ok(()));
        // A secret sent in a header must be a header value: refused when
        // the connector is defined, not on its every request.
        let bearer = UpstreamAuth::Bearer {
            token: Secret::new("a\nb"),
        };
        assert_eq!(
            bearer.validate(),
            Err(AuthError::InvalidHeaderValue { field: "token" })
        );
        let in_query = UpstreamAuth::ApiKey {
            name: "token".into(),
            value: Secret::new("a\nb"),
            location: KeyLocation::Query,
        };
        assert_eq!(in_query.validate(), Ok(()));
        let okx = UpstreamAuth::HmacOkx {
            api_key: Secret::new("k"),
            secret: Secret::new("s\u{7f}"),
            passphrase: Secret::new("p\u{1}"),
        };
        assert_eq!(
            okx.validate(),
            Err(AuthError::InvalidHeaderValue {
                field: "passphrase"
            })
        );
    }
}
