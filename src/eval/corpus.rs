//! The dev speech corpus: reading `manifest.jsonl` and finding the corpus on disk.
//!
//! The corpus lives in the team's `shared/` folder beside the checkout, not in the repo, so
//! tests and benchmarks locate it through [`default_corpus_dir`] and get clips with absolute
//! paths, whatever directory they run from.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Environment variable that overrides where the corpus is.
pub const CORPUS_DIR_ENV: &str = "HEARKEN_CORPUS_DIR";

/// One clip of the corpus and its reference transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusClip {
    /// Stable clip name, e.g. `jfk`.
    pub id: String,
    /// The WAV file (16 kHz mono PCM), absolute.
    pub file: PathBuf,
    /// ISO 639-1 language of the speech, e.g. `en`.
    pub lang: String,
    /// Duration in seconds.
    pub seconds: f64,
    /// The reference transcript, unnormalised.
    pub text: String,
}

/// One manifest line; fields the scorer does not need (`source`, `note`) are ignored.
#[derive(Deserialize)]
struct ManifestLine {
    id: String,
    file: PathBuf,
    lang: String,
    seconds: f64,
    text: String,
}

/// Why the manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The manifest file is missing or unreadable.
    #[error("cannot read corpus manifest {path}: {source}")]
    Read {
        /// The manifest's path.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A line is not a valid manifest entry.
    #[error("{path}:{line}: not a manifest entry: {source}")]
    Parse {
        /// The manifest's path.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What was wrong with it.
        source: serde_json::Error,
    },
}

/// Reads `<corpus_dir>/manifest.jsonl`; blank lines are skipped, clip paths made absolute.
pub fn load_manifest(corpus_dir: &Path) -> Result<Vec<CorpusClip>, CorpusError> {
    let path = corpus_dir.join("manifest.jsonl");
    let read_error = |source| CorpusError::Read {
        path: path.clone(),
        source,
    };
    let manifest = fs::read_to_string(&path).map_err(read_error)?;
    let base = std::path::absolute(corpus_dir).map_err(read_error)?;
    let lines = manifest
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    lines
        .map(|(index, line)| {
            let entry: ManifestLine =
                serde_json::from_str(line).map_err(|source| CorpusError::Parse {
                    path: path.clone(),
                    line: index + 1,
                    source,
                })?;
            Ok(CorpusClip {
                id: entry.id,
                file: base.join(entry.file),
                lang: entry.lang,
                seconds: entry.seconds,
                text: entry.text,
            })
        })
        .collect()
}

/// Where the corpus is: `$HEARKEN_CORPUS_DIR` when set; otherwise the first of
/// `<crate root at build time>/../shared/corpus`, `./shared/corpus` and `../shared/corpus` that
/// has a manifest (the checkout-beside-`shared/` layout, seen from the build, from the
/// workspace and from the checkout); otherwise the first of those, so errors name a useful path.
pub fn default_corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CORPUS_DIR_ENV).filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let beside_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let candidates = [
        beside_crate,
        PathBuf::from("shared/corpus"),
        PathBuf::from("../shared/corpus"),
    ];
    let found = candidates
        .iter()
        .find(|dir| dir.join("manifest.jsonl").is_file());
    found.unwrap_or(&candidates[0]).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_entries_and_reports_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let line =
            r#"{"id":"a","file":"en/a.wav","lang":"en","seconds":1.5,"text":"Hi.","note":"x"}"#;
        fs::write(dir.path().join("manifest.jsonl"), format!("{line}\n\n")).expect("write");
        let clips = load_manifest(dir.path()).expect("valid manifest");
        assert_eq!(clips.len(), 1);
        assert!(clips[0].file.is_absolute() && clips[0].file.ends_with("en/a.wav"));
        assert_eq!((clips[0].seconds, clips[0].text.as_str()), (1.5, "Hi."));

        fs::write(
            dir.path().join("manifest.jsonl"),
            format!("{line}\n{{\"id\":1}}\n"),
        )
        .expect("write");
        let err = load_manifest(dir.path()).expect_err("bad second line");
        assert!(matches!(err, CorpusError::Parse { line: 2, .. }), "{err}");
    }
}
