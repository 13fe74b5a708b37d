//! The client side, for hearken's own clients (`hearken stream --realtime-ws`, `hearken
//! loadgen`): rustls on ring, trusting the system's roots or a given CA.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A client configuration trusting the CA certificates in `ca_pem`, or the system's roots
/// when `None`; `alpn` lists the protocols offered (empty: none).
pub fn client_config(
    ca_pem: Option<&[u8]>,
    alpn: &[&[u8]],
) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots.add(cert.context("reading the CA certificates")?)?;
            }
            anyhow::ensure!(!roots.is_empty(), "the CA file holds no PEM certificate");
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// An HTTP client builder (reqwest) on the same stack, trusting `ca_pem` or the system's
/// roots. reqwest is built without a crypto provider of its own (see Cargo.toml), so its
/// clients are made here rather than with `reqwest::Client::new()`, which would panic.
pub fn http_client_builder(ca_pem: Option<&[u8]>) -> anyhow::Result<reqwest::ClientBuilder> {
    let tls = client_config(ca_pem, &[b"h2", b"http/1.1"])?;
    Ok(http_client_builder_with(tls))
}

/// An HTTP client builder on a TLS configuration made already (one [`client_config`] for
/// many clients).
pub fn http_client_builder_with(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder().tls_backend_preconfigured(tls)
}

/// An HTTP client with the system's roots (see [`http_client_builder`]).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(http_client_builder(None)?.build()?)
}
