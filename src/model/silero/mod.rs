//! Silero VAD (v5/v6), rebuilt with candle from the weights in silero-vad's `silero_vad.onnx`.
//!
//! The network judges 32 ms of 16 kHz audio at a time: an STFT written as a fixed convolution,
//! four small convolutions, one LSTM cell carrying state from chunk to chunk, and a sigmoid
//! head giving the probability that the chunk is speech. It is the detector faster-whisper and
//! WhisperLive gate Whisper with, and it tells speech from noise, music and tones where an
//! energy threshold cannot. Weights come through the model store ([`SILERO_VAD`]); the ONNX file
//! is read directly ([`onnx`]), so no ONNX runtime is linked.
//!
//! [`SILERO_VAD`]: crate::model::store::SILERO_VAD

mod network;
mod onnx;

pub use network::{CHUNK_SAMPLES, CONTEXT_SAMPLES, SileroState, SileroVad};
pub use onnx::OnnxError;

/// Why Silero VAD could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum SileroError {
    /// The weights file could not be read.
    #[error("reading Silero VAD weights {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not the ONNX export we know.
    #[error("Silero VAD weights: {0}")]
    Onnx(#[from] OnnxError),
    /// A weight the network needs is missing or has another shape.
    #[error("Silero VAD weights: {0}")]
    Weights(String),
    /// candle failed (out of memory, most likely).
    #[error("Silero VAD: {0}")]
    Candle(#[from] candle_core::Error),
}
