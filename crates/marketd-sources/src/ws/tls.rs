//! The rustls client configuration of `wss://` connections: the ring
//! provider (the workspace's choice, as for reqwest and the server side),
//! passed explicitly so nothing depends on a process-wide default provider.

use super::options::TlsRoots;
use rustls::{ClientConfig, RootCertStore};
use std::sync::{Arc, OnceLock};

/// The client configuration for `roots`, built once per process and kind.
pub(crate) fn client_config(roots: TlsRoots) -> Result<Arc<ClientConfig>, String> {
    static WEBPKI: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static NATIVE: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static BOTH: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let cell = match roots {
        TlsRoots::Webpki => &WEBPKI,
        TlsRoots::Native => &NATIVE,
        TlsRoots::WebpkiAndNative => &BOTH,
    };
    cell.get_or_init(|| build(roots)).clone()
}

fn build(roots: TlsRoots) -> Result<Arc<ClientConfig>, String> {
    let mut store = RootCertStore::empty();
    if matches!(roots, TlsRoots::Webpki | TlsRoots::WebpkiAndNative) {
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if matches!(roots, TlsRoots::Native | TlsRoots::WebpkiAndNative) {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::warn!(errors = ?found.errors, "some native root certificates could not be loaded");
        }
        store.add_parsable_certificates(found.certs);
    }
    if store.is_empty() {
        return Err("no trusted root certificates (the OS store is empty)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webpki_config_builds_and_is_shared() {
        let a = client_config(TlsRoots::Webpki).unwrap();
        let b = client_config(TlsRoots::Webpki).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
