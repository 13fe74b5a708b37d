//! What a load run talks to, named by one URL whose scheme picks the protocol.

use std::fmt;
use std::sync::OnceLock;

use anyhow::bail;

use crate::session::StreamingPolicy;

/// The protocol a target speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// hearken's gRPC `StreamingRecognize` (`grpc://`, `grpcs://`).
    Grpc,
    /// OpenAI's Realtime transcription WebSocket (`ws://`, `wss://`).
    Realtime,
    /// OpenAI's `POST /v1/audio/transcriptions` (`http://`, `https://`).
    Http,
}

/// A server to load, and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// What it speaks.
    pub protocol: Protocol,
    /// The URL in the form its client takes (`grpc://` becomes `http://`, `grpcs://`
    /// `https://`; the others as given).
    pub url: String,
    /// The URL as the user wrote it, for reports.
    pub display: String,
    /// Sent as `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// PEM CA certificates to trust instead of the system's roots (TLS targets).
    pub ca_pem: Option<Vec<u8>>,
    /// The model asked for (`None`: the server's default; HTTP needs one, `whisper-1`).
    pub model: Option<String>,
    /// The spoken language, when the clips' own is not to be sent.
    pub language: Option<String>,
    /// HTTP only: ask for `stream=true` (Server-Sent Events) and time the first delta.
    pub http_stream: bool,
    /// gRPC only: the streaming policy to ask for (`None`: the server's default).
    pub policy: Option<StreamingPolicy>,
    /// The TLS configuration HTTP sessions share: roots are read from disk once per run.
    http_tls: OnceLock<rustls::ClientConfig>,
}

impl Target {
    /// The target named by `url`; everything else defaults (no key, system roots).
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some((scheme, rest)) = url.split_once("://") else {
            bail!(
                "target {url:?} has no scheme: use grpc://, grpcs://, ws://, wss://, http:// or \
                 https://"
            );
        };
        if rest.is_empty() || rest.starts_with('/') {
            bail!("target {url:?} has no host");
        }
        let (protocol, client_url) = match scheme {
            "grpc" => (Protocol::Grpc, format!("http://{rest}")),
            "grpcs" => (Protocol::Grpc, format!("https://{rest}")),
            "ws" | "wss" => (Protocol::Realtime, url.to_string()),
            "http" | "https" => (Protocol::Http, url.to_string()),
            other => bail!(
                "target {url:?}: unknown scheme {other:?}; use grpc://, grpcs://, ws://, wss://, \
                 http:// or https://"
            ),
        };
        Ok(Self {
            protocol,
            url: client_url,
            display: url.to_string(),
            api_key: None,
            ca_pem: None,
            model: None,
            language: None,
            http_stream: false,
            policy: None,
            http_tls: OnceLock::new(),
        })
    }

    /// The TLS configuration for HTTP sessions (`ca_pem` or the system's roots), built once.
    pub(super) fn http_tls(&self) -> anyhow::Result<rustls::ClientConfig> {
        if let Some(config) = self.http_tls.get() {
            return Ok(config.clone());
        }
        let config = crate::tls::client_config(self.ca_pem.as_deref(), &[b"http/1.1"])?;
        Ok(self.http_tls.get_or_init(|| config).clone())
    }

    /// Whether the connection is encrypted.
    pub fn tls(&self) -> bool {
        self.url.starts_with("https://") || self.url.starts_with("wss://")
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "gRPC StreamingRecognize",
            Protocol::Realtime => "Realtime WebSocket",
            Protocol::Http => "HTTP transcriptions",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_protocol() {
        let grpc = Target::parse("grpc://127.0.0.1:50051").unwrap();
        assert_eq!(
            (grpc.protocol, grpc.url.as_str(), grpc.tls()),
            (Protocol::Grpc, "http://127.0.0.1:50051", false)
        );
        let grpcs = Target::parse("grpcs://speech.example:443").unwrap();
        assert_eq!(grpcs.url, "https://speech.example:443");
        assert!(grpcs.tls());
        let ws = Target::parse("wss://api.openai.com/v1/realtime").unwrap();
        assert_eq!((ws.protocol, ws.tls()), (Protocol::Realtime, true));
        let http = Target::parse("http://127.0.0.1:8000").unwrap();
        assert_eq!(http.protocol, Protocol::Http);
    }

    #[test]
    fn bad_targets_are_named() {
        let err = Target::parse("127.0.0.1:50051").unwrap_err().to_string();
        assert!(err.contains("no scheme"), "{err}");
        let err = Target::parse("ftp://h").unwrap_err().to_string();
        assert!(err.contains("unknown scheme \"ftp\""), "{err}");
        assert!(Target::parse("grpc://").is_err());
    }
}
