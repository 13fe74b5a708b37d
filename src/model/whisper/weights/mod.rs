//! Loading Whisper weights from either checkpoint layout into one canonical tensor map.
//!
//! Both loaders rename tensors to hearken's canonical names (self-attention Q/K/V fused into one
//! `attn.qkv` projection, cross-attention K/V fused into `cross.kv`, as CTranslate2 stores them) so
//! that [`super::model`] is written once. Every error names the tensor as the file spells it.

mod ctranslate2;
mod safetensors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::config::WhisperConfig;
use crate::model::store::{WeightsLayout, weights_layout};

/// Everything that can go wrong while reading a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The directory holds neither `model.bin` nor `model.safetensors`.
    #[error("{0}: no model weights found (expected model.bin or model.safetensors)")]
    NoWeights(PathBuf),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A CTranslate2 file is cut short or its header is inconsistent.
    #[error("{path}: corrupt CTranslate2 model: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong, naming the variable where one was being read.
        detail: String,
    },
    /// A configuration file is missing fields or is not JSON.
    #[error("{path}: invalid model configuration: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parse error.
        detail: String,
    },
    /// A tensor the network needs is absent.
    #[error("missing tensor `{0}` in the checkpoint")]
    MissingTensor(String),
    /// A tensor has the wrong shape for the configured dimensions.
    #[error("tensor `{name}` has shape {actual:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor, as the file names it.
        name: String,
        /// The shape in the file.
        actual: Vec<usize>,
        /// The shape the network needs.
        expected: Vec<usize>,
    },
    /// A tensor uses a storage type hearken cannot convert.
    #[error("tensor `{name}` has unsupported data type {dtype}")]
    UnsupportedDType {
        /// The tensor.
        name: String,
        /// The type, as the file spells it.
        dtype: String,
    },
    /// A tensor operation failed while converting weights.
    #[error("converting tensor `{name}`: {source}")]
    Tensor {
        /// The tensor.
        name: String,
        /// The cause.
        source: candle_core::Error,
    },
}

/// A loaded checkpoint: its configuration plus tensors under canonical names.
pub struct LoadedWeights {
    /// Dimensions and generation settings.
    pub config: WhisperConfig,
    /// Tensors, already on the target device in the target dtype.
    pub tensors: WeightMap,
}

/// Loads the checkpoint in `dir`, converting every floating tensor to `dtype` on `device`.
pub fn load(dir: &Path, device: &Device, dtype: DType) -> Result<LoadedWeights, WeightsError> {
    match weights_layout(dir).ok_or_else(|| WeightsError::NoWeights(dir.to_path_buf()))? {
        WeightsLayout::CTranslate2 => ctranslate2::load(dir, device, dtype),
        WeightsLayout::SafeTensors => safetensors::load(dir, device, dtype),
    }
}

/// Canonical tensor names mapped to tensors, remembering each tensor's name in the file.
#[derive(Default)]
pub struct WeightMap {
    tensors: HashMap<String, (Tensor, String)>,
}

impl WeightMap {
    /// Adds a tensor under its canonical name; `source` is how the file names it.
    pub(crate) fn insert(&mut self, canonical: String, tensor: Tensor, source: String) {
        self.tensors.insert(canonical, (tensor, source));
    }

    /// Adds a tensor whose file name is its canonical name (for tests building checkpoints).
    pub fn insert_for_tests(&mut self, canonical: &str, tensor: Tensor) {
        self.insert(canonical.to_string(), tensor, canonical.to_string());
    }

    /// The tensor under `canonical`, checked against `shape`.
    pub fn get(&self, canonical: &str, shape: &[usize]) -> Result<Tensor, WeightsError> {
        let (tensor, source) = self
            .tensors
            .get(canonical)
            .ok_or_else(|| WeightsError::MissingTensor(canonical.to_string()))?;
        if tensor.dims() != shape {
            return Err(WeightsError::ShapeMismatch {
                name: source.clone(),
                actual: tensor.dims().to_vec(),
                expected: shape.to_vec(),
            });
        }
        Ok(tensor.clone())
    }

    /// The dimensions of a tensor, if present (used to infer hyper-parameters).
    pub(crate) fn dims(&self, canonical: &str) -> Option<&[usize]> {
        self.tensors.get(canonical).map(|(t, _)| t.dims())
    }

    /// How many layers `prefix` (`encoder` or `decoder`) has, counting `prefix.layers.N.*` names.
    pub(crate) fn count_layers(&self, prefix: &str) -> usize {
        let marker = format!("{prefix}.layers.");
        self.tensors
            .keys()
            .filter_map(|k| {
                k.strip_prefix(&marker)?
                    .split('.')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .map(|n| n + 1)
            .max()
            .unwrap_or(0)
    }
}

/// Reads and parses a JSON file into `T`.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, WeightsError> {
    let text = std::fs::read_to_string(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| WeightsError::Config {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Wraps a candle error with the tensor it concerns.
pub(crate) fn tensor_err(name: &str) -> impl FnOnce(candle_core::Error) -> WeightsError + '_ {
    move |source| WeightsError::Tensor {
        name: name.to_string(),
        source,
    }
}
