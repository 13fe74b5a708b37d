//! Whisper's hyper-parameters and generation settings, whatever checkpoint layout they came from.
//!
//! CTranslate2 conversions do not store dimensions in `config.json` (they are recovered from
//! tensor shapes), Hugging Face checkpoints do; both loaders fill this one struct so the network
//! and the decoder never care where the weights came from.

use serde::Deserialize;

/// Dimensions of the network plus the token lists that steer generation.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    /// Mel bins the encoder expects (80, or 128 for large-v3).
    pub n_mels: usize,
    /// Vocabulary size including special and timestamp tokens.
    pub n_vocab: usize,
    /// Width of every hidden state.
    pub d_model: usize,
    /// Encoder transformer blocks.
    pub encoder_layers: usize,
    /// Encoder attention heads.
    pub encoder_heads: usize,
    /// Decoder transformer blocks.
    pub decoder_layers: usize,
    /// Decoder attention heads.
    pub decoder_heads: usize,
    /// Encoder positions (1500 for a 30 s window).
    pub n_audio_ctx: usize,
    /// Decoder positions (448).
    pub n_text_ctx: usize,
    /// Tokens never sampled (punctuation-like "non-speech" symbols).
    pub suppress_ids: Vec<u32>,
    /// Tokens banned at the first sampled position (blank, end of text).
    pub suppress_ids_begin: Vec<u32>,
    /// `(layer, head)` pairs whose cross-attention follows the audio (for word timing).
    pub alignment_heads: Vec<(usize, usize)>,
}

impl WhisperConfig {
    /// Multilingual checkpoints have one more token than the English-only ones.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }

    /// Width of one attention head of the decoder.
    pub fn decoder_head_dim(&self) -> usize {
        self.d_model / self.decoder_heads
    }
}

/// The generation part of a CTranslate2 `config.json`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Ct2GenerationConfig {
    #[serde(default)]
    pub(crate) suppress_ids: Vec<u32>,
    #[serde(default)]
    pub(crate) suppress_ids_begin: Vec<u32>,
    #[serde(default)]
    pub(crate) alignment_heads: Vec<(usize, usize)>,
}

/// The fields of a Hugging Face `WhisperConfig` (`config.json`) that hearken uses.
#[derive(Debug, Deserialize)]
pub(crate) struct HfConfig {
    pub(crate) num_mel_bins: usize,
    pub(crate) vocab_size: usize,
    pub(crate) d_model: usize,
    pub(crate) encoder_layers: usize,
    pub(crate) encoder_attention_heads: usize,
    pub(crate) decoder_layers: usize,
    pub(crate) decoder_attention_heads: usize,
    #[serde(default = "default_audio_ctx")]
    pub(crate) max_source_positions: usize,
    #[serde(default = "default_text_ctx")]
    pub(crate) max_target_positions: usize,
    #[serde(default)]
    pub(crate) suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub(crate) begin_suppress_tokens: Vec<u32>,
}

/// The fields of a Hugging Face `generation_config.json` that hearken uses.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct HfGenerationConfig {
    #[serde(default)]
    pub(crate) suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    pub(crate) begin_suppress_tokens: Option<Vec<u32>>,
    #[serde(default)]
    pub(crate) alignment_heads: Option<Vec<(usize, usize)>>,
}

fn default_audio_ctx() -> usize {
    1500
}

fn default_text_ctx() -> usize {
    448
}

/// Whisper's default alignment heads when a checkpoint names none: every head of the second half
/// of the decoder layers (what the CTranslate2 converter and openai-whisper fall back to).
pub(crate) fn default_alignment_heads(decoder_layers: usize, heads: usize) -> Vec<(usize, usize)> {
    (decoder_layers / 2..decoder_layers)
        .flat_map(|layer| (0..heads).map(move |head| (layer, head)))
        .collect()
}
