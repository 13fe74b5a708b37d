//! What makes a directory a loadable Whisper model, and which weights format it holds.
//!
//! Checked up front so a wrong `--model` path fails at startup with the list of missing files,
//! instead of deep inside the loader with a bare "No such file".

use std::path::{Path, PathBuf};

use thiserror::Error;

/// How the weights in a model directory are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum WeightsLayout {
    /// A CTranslate2 conversion (`model.bin`), as faster-whisper uses; what the catalogue ships.
    CTranslate2,
    /// Hugging Face transformers weights (`model.safetensors`, or sharded with an index).
    SafeTensors,
}

/// Why a directory is not a usable model.
#[derive(Debug, Error)]
pub enum LayoutError {
    /// Nothing at that path.
    #[error("model directory {} does not exist", .0.display())]
    NotFound(PathBuf),
    /// Something, but not a directory.
    #[error("{} is not a directory; a model is a directory holding its weights, config.json and tokenizer.json", .0.display())]
    NotADirectory(PathBuf),
    /// A directory lacking required files.
    #[error("{} is not a complete model directory: missing {}", dir.display(), missing.join(", "))]
    Incomplete {
        /// The directory checked.
        dir: PathBuf,
        /// Each missing requirement, in words.
        missing: Vec<String>,
    },
}

const CT2_WEIGHTS: &str = "model.bin";
const SAFETENSORS: [&str; 2] = ["model.safetensors", "model.safetensors.index.json"];
const ALWAYS: [&str; 2] = ["config.json", "tokenizer.json"];

/// Which weights `dir` holds, if any. When both formats are present the safetensors win: they
/// are the upstream checkpoint, the `model.bin` beside them most likely a derived conversion.
pub fn weights_layout(dir: &Path) -> Option<WeightsLayout> {
    let has = |name: &str| dir.join(name).is_file();
    if SAFETENSORS.iter().any(|name| has(name)) {
        Some(WeightsLayout::SafeTensors)
    } else if has(CT2_WEIGHTS) {
        Some(WeightsLayout::CTranslate2)
    } else {
        None
    }
}

/// Checks `dir` holds weights, `config.json` and `tokenizer.json`, and says which weights.
pub(super) fn detect(dir: &Path) -> Result<WeightsLayout, LayoutError> {
    if !dir.exists() {
        return Err(LayoutError::NotFound(dir.to_path_buf()));
    }
    if !dir.is_dir() {
        return Err(LayoutError::NotADirectory(dir.to_path_buf()));
    }
    let has = |name: &str| dir.join(name).is_file();
    let layout = weights_layout(dir);
    let mut missing: Vec<String> = Vec::new();
    if layout.is_none() {
        missing.push(format!(
            "{CT2_WEIGHTS} (CTranslate2) or {} / {} (Hugging Face)",
            SAFETENSORS[0], SAFETENSORS[1]
        ));
    }
    missing.extend(
        ALWAYS
            .iter()
            .filter(|name| !has(name))
            .map(|name| name.to_string()),
    );
    match layout {
        Some(layout) if missing.is_empty() => Ok(layout),
        _ => Err(LayoutError::Incomplete {
            dir: dir.to_path_buf(),
            missing,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for file in files {
            std::fs::write(dir.path().join(file), b"x").unwrap();
        }
        dir
    }

    #[test]
    fn recognises_each_layout() {
        let ct2 = dir_with(&["model.bin", "config.json", "tokenizer.json"]);
        assert_eq!(detect(ct2.path()).unwrap(), WeightsLayout::CTranslate2);
        let sharded = dir_with(&[
            "model.safetensors.index.json",
            "config.json",
            "tokenizer.json",
        ]);
        assert_eq!(detect(sharded.path()).unwrap(), WeightsLayout::SafeTensors);
        let both = dir_with(&[
            "model.bin",
            "model.safetensors",
            "config.json",
            "tokenizer.json",
        ]);
        assert_eq!(detect(both.path()).unwrap(), WeightsLayout::SafeTensors);
    }

    #[test]
    fn lists_every_missing_requirement() {
        let dir = dir_with(&["config.json"]);
        let message = detect(dir.path()).unwrap_err().to_string();
        assert!(
            message.contains("missing model.bin (CTranslate2) or model.safetensors"),
            "{message}"
        );
        assert!(message.ends_with(", tokenizer.json"), "{message}");
    }

    #[test]
    fn distinguishes_absent_from_not_a_directory() {
        let dir = dir_with(&["model.bin"]);
        let file = dir.path().join("model.bin");
        assert!(matches!(detect(&file), Err(LayoutError::NotADirectory(_))));
        assert!(matches!(
            detect(&dir.path().join("nope")),
            Err(LayoutError::NotFound(_))
        ));
    }
}
