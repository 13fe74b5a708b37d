//! Both listeners over TLS with certificates the test makes: gRPC (HTTP/2 by ALPN) and the
//! HTTP gateway, mutual TLS, a client that does not trust the server, and a reload.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, CertifiedIssuer, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TlsFiles;
use crate::engine::ScriptedBackend;
use crate::grpc::proto::ListModelsRequest;
use crate::grpc::proto::speech_client::SpeechClient;
use crate::server::{RunningServer, ServeConfig};

/// A CA, and certificates it signed, written as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "hearken test CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        }
    }

    /// A certificate for `name` signed by the CA: (cert PEM path, key PEM path, cert DER).
    fn issue(&self, name: &str, file: &str) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.path().join(format!("{file}.crt"));
        let key_path = self.dir.path().join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path, cert.der().to_vec())
    }

    fn ca_path(&self) -> std::path::PathBuf {
        let path = self.dir.path().join("ca.crt");
        std::fs::write(&path, self.ca.pem()).unwrap();
        path
    }

    /// A client configuration trusting this CA, with an optional client certificate.
    fn client(&self, identity: Option<(&str, &str)>, alpn: &[u8]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.ca.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some((name, file)) => {
                let (cert, key, _) = self.issue(name, file);
                let chain = vec![CertificateDer::from_pem_file(cert).unwrap()];
                let key = PrivateKeyDer::from_pem_file(key).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = vec![alpn.to_vec()];
        config
    }
}

use rustls::pki_types::pem::PemObject;

async fn start(files: TlsFiles) -> RunningServer {
    let config = ServeConfig {
        tls: Some(files),
        ..ServeConfig::loopback()
    };
    RunningServer::start(ScriptedBackend::english(), config)
        .await
        .unwrap()
}

/// Connects with TLS as `localhost`; the handshake's error when it fails.
async fn connect(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    // TLS 1.3 reports a refused client certificate only on the first read.
    tls.write_all(b"").await?;
    Ok(tls)
}

/// `GET /healthz` over HTTP/1.1 on `tls`: the status line.
async fn healthz(mut tls: tokio_rustls::client::TlsStream<TcpStream>) -> std::io::Result<String> {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response.lines().next().unwrap_or_default().to_string())
}

/// A gRPC client over TLS (h2 by ALPN) with `config`.
async fn grpc_client(
    addr: std::net::SocketAddr,
    config: rustls::ClientConfig,
) -> Result<SpeechClient<tonic::transport::Channel>, tonic::transport::Error> {
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let config = config.clone();
            async move {
                let tls = connect(addr, config).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await?;
    Ok(SpeechClient::new(channel))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_and_http_are_served_over_tls_and_a_renewed_certificate_is_picked_up() {
    let pki = Pki::new();
    let (cert, key, first_der) = pki.issue("localhost", "server");
    let files = TlsFiles {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    };
    let server = start(files).await;
    let mut grpc = grpc_client(server.grpc_addr, pki.client(None, b"h2"))
        .await
        .unwrap();
    let models = grpc.list_models(ListModelsRequest {}).await.unwrap();
    assert_eq!(models.into_inner().models[0].id, "scripted");
    let http = server.http_addr.unwrap();
    let tls = connect(http, pki.client(None, b"http/1.1")).await.unwrap();
    let served = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(served, first_der);
    assert_eq!(healthz(tls).await.unwrap(), "HTTP/1.1 200 OK");

    // Plain text to a TLS port is not served.
    let mut plain = TcpStream::connect(http).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));

    // A client that does not trust the server's CA fails its handshake cleanly.
    let stranger = Pki::new();
    let err = connect(http, stranger.client(None, b"http/1.1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");

    // Renewal: new files on disk are served to new connections within a few seconds.
    let (_, _, _) = pki.issue("localhost", "renewed");
    std::fs::copy(pki.dir.path().join("renewed.crt"), &cert).unwrap();
    std::fs::copy(pki.dir.path().join("renewed.key"), &key).unwrap();
    let renewed = std::fs::read(&cert).unwrap();
    let renewed_der = CertificateDer::from_pem_slice(&renewed).unwrap().to_vec();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tls = connect(http, pki.client(None, b"http/1.1")).await.unwrap();
        if tls.get_ref().1.peer_certificates().unwrap()[0].as_ref() == renewed_der.as_slice() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Connections made before the renewal keep working.
    assert!(grpc.list_models(ListModelsRequest {}).await.is_ok());
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let pki = Pki::new();
    let (cert, key, _) = pki.issue("localhost", "server");
    let files = TlsFiles {
        cert,
        key,
        client_ca: Some(pki.ca_path()),
    };
    let server = start(files).await;
    let http = server.http_addr.unwrap();
    let with_cert = connect(http, pki.client(Some(("svc-a", "client")), b"http/1.1"))
        .await
        .unwrap();
    assert_eq!(healthz(with_cert).await.unwrap(), "HTTP/1.1 200 OK");
    let refused = match connect(http, pki.client(None, b"http/1.1")).await {
        Err(e) => e,
        Ok(tls) => healthz(tls).await.unwrap_err(),
    };
    assert!(
        refused.to_string().contains("CertificateRequired"),
        "a client without a certificate is refused in the handshake: {refused}"
    );
    let grpc = grpc_client(
        server.grpc_addr,
        pki.client(Some(("svc-b", "client-b")), b"h2"),
    )
    .await;
    assert!(
        grpc.unwrap()
            .list_models(ListModelsRequest {})
            .await
            .is_ok()
    );
    server.shutdown().await.unwrap();
}

#[test]
fn unusable_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TlsFiles {
        cert: dir.path().join("nope.crt"),
        key: dir.path().join("nope.key"),
        client_ca: None,
    };
    let err = super::TlsServer::load(&missing).unwrap_err();
    assert!(err.to_string().contains("nope.crt"), "{err}");
    let empty = dir.path().join("empty.crt");
    std::fs::write(&empty, "not a certificate").unwrap();
    let err = super::TlsServer::load(&TlsFiles {
        cert: empty,
        ..missing
    })
    .unwrap_err();
    assert!(err.to_string().contains("no PEM certificate"), "{err}");
}
