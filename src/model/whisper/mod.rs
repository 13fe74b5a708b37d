//! Whisper: configuration, weights, log-mel frontend, network, tokenizer and decoding.
//!
//! The network ([`model`]) knows nothing of decoding policy; [`decode`] drives it (timestamp
//! rules, temperature fallback, long-form seeking) and [`tokens`] maps ids to text.

pub mod cache;
pub mod config;
pub mod decode;
pub mod mel;
pub mod model;
mod ops;
pub mod precision;
pub mod tokens;
pub mod weights;

use std::path::Path;

use candle_core::Device;

use self::decode::Transcriber;
use self::mel::MelFrontend;
use self::model::Whisper;
use self::precision::{CpuPrecision, PrecisionUnsupported};
use self::tokens::{TokenizerError, WhisperTokenizer};
use self::weights::WeightsError;

/// Errors while loading a model directory.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The weights could not be read or do not fit the network.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// `tokenizer.json` is missing or lacks Whisper's special tokens.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The precision asked for does not run on this CPU.
    #[error(transparent)]
    Precision(#[from] PrecisionUnsupported),
}

/// Everything needed to turn 16 kHz samples into text: network, tokenizer and mel frontend.
pub struct WhisperModel {
    /// The network on its device.
    pub network: Whisper,
    /// Text ↔ token ids.
    pub tokenizer: WhisperTokenizer,
    /// Log-mel frontend sized for the network.
    pub mel: MelFrontend,
}

impl WhisperModel {
    /// Loads a model directory (CTranslate2 or Hugging Face layout) onto `device`, in f32 on
    /// CPU (matrix products in bf16 where the CPU has AVX512_BF16) and f16 on GPUs.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, LoadError> {
        Self::load_with(dir, device, CpuPrecision::Auto)
    }

    /// [`Self::load`] with the CPU's matrix products in `precision`.
    pub fn load_with(
        dir: &Path,
        device: &Device,
        precision: CpuPrecision,
    ) -> Result<Self, LoadError> {
        let products = precision.resolve(device)?;
        let dtype = if device.is_cpu() {
            candle_core::DType::F32
        } else {
            candle_core::DType::F16
        };
        let loaded = weights::load(dir, device, dtype)?;
        let network = Whisper::new(
            loaded.config,
            &loaded.tensors,
            device.clone(),
            dtype,
            products,
        )?;
        let tokenizer = WhisperTokenizer::from_file(
            &dir.join("tokenizer.json"),
            network.config.is_multilingual(),
        )?;
        let mel = MelFrontend::new(network.config.n_mels);
        Ok(Self {
            network,
            tokenizer,
            mel,
        })
    }

    /// A long-form transcriber batching up to `max_batch` windows per model call.
    pub fn transcriber(&self, max_batch: usize) -> Transcriber<'_> {
        Transcriber::new(&self.network, &self.tokenizer, &self.mel, max_batch)
    }
}
