//! TLS for both listeners (rustls), with certificates reloaded without a restart, and optional
//! mutual TLS for a mesh.
//!
//! `--tls-cert` and `--tls-key` (PEM) turn TLS on for the gRPC port and the HTTP port alike;
//! ALPN offers HTTP/2 (gRPC) and HTTP/1.1 (grpc-web, the HTTP API, WebSockets). The pair is
//! read again on SIGHUP and whenever either file changes (checked every 2 s), so a renewed
//! certificate (cert-manager, certbot) is served to new connections at once; a pair that does
//! not load is logged and the old one kept. `--tls-client-ca` requires client certificates
//! signed by that CA: a client without one fails the handshake and never reaches the server.
//!
//! Handshakes run in tasks of their own, bounded by a timeout, so a client that connects and
//! sends nothing holds up no one else's accept.

mod client;
mod incoming;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

pub use client::{client_config, http_client, http_client_builder, http_client_builder_with};
pub use incoming::{Conn, Incoming};

/// How often the certificate files are checked for changes.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Where the server's certificate, key and (for mutual TLS) client CA are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates that client certificates must chain to; `None`: no client auth.
    pub client_ca: Option<PathBuf>,
}

/// Why TLS could not be set up; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
    #[error("{what} {path}: {reason}")]
    File {
        /// `certificate`, `private key` or `client CA`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the combination (a key that does not match the certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// A TLS server configuration whose certificate can be swapped while it serves.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<rustls::ServerConfig>,
    resolver: Arc<Reloading>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("files", &self.resolver.files)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Loads the files and builds the configuration.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let resolver = Arc::new(Reloading {
            current: RwLock::new(Arc::new(certified_key(files, &provider)?)),
            stamp: RwLock::new(stamp(files)),
            files: files.clone(),
            provider: Arc::clone(&provider),
        });
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?;
        let builder = match &files.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs(path, "client CA")? {
                    roots.add(cert).map_err(|e| TlsError::File {
                        what: "client CA",
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                }
                let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                    .build()
                    .map_err(|e| TlsError::File {
                        what: "client CA",
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as _);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            resolver,
        })
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Reads the certificate and key again; on failure the current pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.resolver.reload()
    }

    /// Reloads on SIGHUP and when the files change, until the returned task is aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let resolver = Arc::clone(&self.resolver);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            loop {
                #[cfg(unix)]
                let signalled = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await.is_some(),
                        None => std::future::pending().await,
                    }
                };
                #[cfg(not(unix))]
                let signalled = std::future::pending::<bool>();
                let reason = tokio::select! {
                    true = signalled => "SIGHUP",
                    () = tokio::time::sleep(WATCH_EVERY) => {
                        if !resolver.changed() {
                            continue;
                        }
                        "the files changed"
                    }
                };
                match resolver.reload() {
                    Ok(()) => tracing::info!(reason, "TLS certificate reloaded"),
                    Err(e) => tracing::error!(
                        reason,
                        error = %e,
                        "TLS certificate not reloaded; still serving the previous one"
                    ),
                }
            }
        })
    }
}

/// Hands out the current certificate; swapped on reload.
#[derive(Debug)]
struct Reloading {
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times of the cert and key when last loaded.
    stamp: RwLock<Stamp>,
    files: TlsFiles,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

type Stamp = (Option<SystemTime>, Option<SystemTime>);

impl Reloading {
    fn reload(&self) -> Result<(), TlsError> {
        // Stamp first: a write that lands while loading is seen at the next check.
        *self.stamp.write().unwrap_or_else(|e| e.into_inner()) = stamp(&self.files);
        let key = certified_key(&self.files, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
        Ok(())
    }

    fn changed(&self) -> bool {
        *self.stamp.read().unwrap_or_else(|e| e.into_inner()) != stamp(&self.files)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

fn stamp(files: &TlsFiles) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(&files.cert), modified(&files.key))
}

fn certified_key(
    files: &TlsFiles,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = read_certs(&files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::File {
        what: "private key",
        path: files.key.display().to_string(),
        reason: e.to_string(),
    })?;
    let key = CertifiedKey::from_der(chain, key, provider)?;
    Ok(key)
}

fn read_certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |reason: String| TlsError::File {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".to_string()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
