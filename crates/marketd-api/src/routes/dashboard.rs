//! The web dashboard: the single-page app built from `web/` (Vite output in
//! `web/dist`, committed) and embedded in the binary, so `marketd serve`
//! needs no Node.js. Every page path answers `index.html` (the app routes
//! on the client); hashed assets under `/assets/` are immutable. Responses
//! are gzip-compressed once, on first use, when the client accepts it, and
//! carry a strong `ETag` so a reload costs a 304.

use crate::error::ApiError;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rust_embed::Embed;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::OnceLock;

#[derive(Embed)]
#[folder = "../../web/dist"]
struct Dist;

/// The page paths of the app besides `/` (each answers `index.html`). The
/// frontend's router (`web/src/lib/router.ts`) knows the same list.
pub const PAGES: [&str; 7] = [
    "/symbols/{symbol}",
    "/connectors",
    "/connectors/{*rest}",
    "/jobs",
    "/tda",
    "/signals",
    "/operations",
];

/// One embedded file, ready to send.
struct Asset {
    body: Bytes,
    /// The gzip encoding, when it is smaller.
    gzip: Option<Bytes>,
    content_type: &'static str,
    etag: HeaderValue,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type == "image/svg+xml"
}

fn gzip(data: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < data.len()).then(|| Bytes::from(out))
}

/// Every embedded file by its path in `web/dist`, prepared once.
fn assets() -> &'static HashMap<String, Asset> {
    static ASSETS: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        Dist::iter()
            .filter_map(|name| {
                let file = Dist::get(&name)?;
                let content_type = content_type(&name);
                let body = Bytes::from(file.data.into_owned());
                let digest = Sha256::digest(&body);
                let etag = format!("\"{}\"", hex_prefix(&digest));
                let gzip = compressible(content_type).then(|| gzip(&body)).flatten();
                Some((
                    name.into_owned(),
                    Asset {
                        body,
                        gzip,
                        content_type,
                        etag: HeaderValue::from_str(&etag).expect("hex is a valid header"),
                    },
                ))
            })
            .collect()
    })
}

fn hex_prefix(digest: &[u8]) -> String {
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|enc| {
            let mut parts = enc.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn send(asset: &Asset, headers: &HeaderMap, cache_control: &'static str) -> Response {
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        ),
        (header::ETAG, asset.etag.clone()),
        (header::VARY, HeaderValue::from_static("accept-encoding")),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .any(|t| t.trim() == asset.etag || t.trim() == "*")
        });
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let ctype = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    )];
    match &asset.gzip {
        Some(gz) if accepts_gzip(headers) => (
            ctype,
            cache,
            [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))],
            gz.clone(),
        )
            .into_response(),
        _ => (ctype, cache, asset.body.clone()).into_response(),
    }
}

/// `/` and every page path: the app's `index.html`, revalidated on each load
/// (it names the current hashed assets).
pub async fn page(headers: HeaderMap) -> Response {
    match assets().get("index.html") {
        Some(index) => send(index, &headers, "no-cache"),
        None => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "DASHBOARD_NOT_BUILT",
            "this binary was built without the dashboard (web/dist is empty)",
        )
        .into_response(),
    }
}

/// `/assets/{*file}`: the hashed scripts and styles, immutable.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    match assets().get(&format!("assets/{file}")) {
        Some(a) => send(a, &headers, "public, max-age=31536000, immutable"),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no dashboard asset {file:?}"),
        )
        .into_response(),
    }
}

/// The names of the embedded files (for tests and the CSP check).
pub fn files() -> impl Iterator<Item = &'static str> {
    assets().keys().map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_dashboard_is_embedded_with_its_assets() {
        let index = assets().get("index.html").expect("web/dist/index.html");
        let html = std::str::from_utf8(&index.body).unwrap();
        // Every script and stylesheet index.html names is embedded, and no
        // script is inline (the CSP allows `script-src 'self'` only).
        let mut named = 0;
        for attr in ["src=\"/assets/", "href=\"/assets/"] {
            for part in html.split(attr).skip(1) {
                let path = format!("assets/{}", &part[..part.find('"').unwrap()]);
                assert!(
                    assets().contains_key(&path),
                    "index.html names {path}, not embedded"
                );
                named += 1;
            }
        }
        assert!(named >= 2, "{html}");
        for script in html.split("<script").skip(1) {
            let tag = &script[..script.find('>').unwrap()];
            assert!(tag.contains("src="), "inline script in index.html: {tag}");
        }
        assert!(!html.contains("<style"), "inline style in index.html");
        assert!(files().any(|f| f.starts_with("assets/") && f.ends_with(".js")));
    }

    #[test]
    fn compressible_assets_are_gzipped_and_content_types_are_right() {
        let index = assets().get("index.html").unwrap();
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        for (name, a) in assets() {
            if name.ends_with(".js") {
                assert_eq!(a.content_type, "text/javascript; charset=utf-8");
                let gz = a.gzip.as_ref().expect("scripts compress");
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
                    .unwrap();
                assert_eq!(out, a.body, "{name}");
            }
        }
    }

    #[test]
    fn accept_encoding_is_parsed() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(accepts_gzip(&h("gzip, deflate, br")));
        assert!(accepts_gzip(&h("br;q=1.0, gzip;q=0.8")));
        assert!(!accepts_gzip(&h("gzip;q=0, br")));
        assert!(!accepts_gzip(&h("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
