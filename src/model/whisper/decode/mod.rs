//! Decoding policy on top of the network: logit rules, batched greedy decoding, temperature
//! fallback, segment splitting, language detection, long-form transcription and word timing.
//!
//! Nothing here parses arguments or prints: the CLI and the serving layers call
//! [`Transcriber`] and format its [`Transcript`]s themselves.

mod fallback;
pub mod guard;
mod language;
mod phases;
mod rules;
mod search;
mod segments;
mod transcribe;
mod words;

pub use fallback::{WindowJob, WindowOutcome, compression_ratio, decode_with_fallback};
pub use language::detect_languages;
pub use phases::PhaseTimes;
pub use rules::LogitRules;
pub use search::{DecodeLimits, RowRequest, RowResult, decode_rows};
pub use segments::{TIME_PRECISION, WindowSegment, WindowSplit, split_window};
pub use transcribe::{
    EncoderFrames, LongFormStream, Progress, Segment, Transcriber, Transcript, joined_text,
};
pub use words::{Word, WordWindow, align_windows, align_words};

use super::tokens::{Task, TokenizerError};

/// Errors while decoding.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A tensor operation failed (device out of memory, shape bug).
    #[error("model computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Tokens could not be turned into text.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The requested language is not one the model knows.
    #[error("language `{requested}` is not supported by this model (supported: {supported})")]
    UnsupportedLanguage {
        /// What was asked for.
        requested: String,
        /// Comma-separated codes the model supports.
        supported: String,
    },
    /// Translation was asked of an English-only model.
    #[error(
        "this model is English-only: it cannot translate; use a multilingual model such as `base`"
    )]
    TranslateNeedsMultilingual,
}

/// Checks a job's task and language against a model's language `codes`; returns the fixed
/// language code (`None`: detect it). English-only models take `en` (or nothing) and cannot
/// translate; a language is named by code or by English name. Every backend uses this rule.
pub fn check_language<'a>(
    codes: &[&'a str],
    multilingual: bool,
    opts: &DecodeOptions,
) -> Result<Option<&'a str>, DecodeError> {
    if opts.task == Task::Translate && !multilingual {
        return Err(DecodeError::TranslateNeedsMultilingual);
    }
    let requested = opts
        .language
        .as_deref()
        .map(|l| l.trim().to_ascii_lowercase())
        .filter(|l| !l.is_empty());
    let Some(requested) = requested else {
        return Ok((!multilingual).then_some("en"));
    };
    codes
        .iter()
        .find(|c| **c == requested || super::tokens::language_name(c) == Some(requested.as_str()))
        .map(|c| Some(*c))
        .ok_or_else(|| DecodeError::UnsupportedLanguage {
            requested,
            supported: codes.join(", "),
        })
}

/// How to decode: Whisper's transcribe options, with faster-whisper's defaults.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Transcribe or translate to English.
    pub task: Task,
    /// Language code; `None` detects it (multilingual models) or means English.
    pub language: Option<String>,
    /// Temperatures tried in order when a window's output fails the thresholds.
    pub temperatures: Vec<f32>,
    /// Hypotheses kept by a beam search at temperature 0; 1 decodes greedily. Whisper's CLI
    /// and faster-whisper default to 5; a beam costs decoder time in proportion.
    pub beam_size: usize,
    /// Retry when the text's compression ratio is above this (repetition).
    pub compression_ratio_threshold: Option<f32>,
    /// Retry when the average log-probability is below this.
    pub log_prob_threshold: Option<f32>,
    /// A window is silence when no-speech probability is above this (and log-prob is low).
    pub no_speech_threshold: Option<f32>,
    /// Prompt each window with the text of the previous ones.
    pub condition_on_previous_text: bool,
    /// Drop the running prompt after a window decoded above this temperature.
    pub prompt_reset_on_temperature: f32,
    /// Text to prime the first window with (names, spelling, style).
    pub initial_prompt: Option<String>,
    /// Most tokens per window; `None` = half the text context (224).
    pub sample_len: Option<usize>,
    /// Decode without timestamps: one segment per window, spanning it, and fewer tokens to
    /// sample. Honoured for audio that fits one 30 s window (a whole file's chunk); longer
    /// audio still seeks by the timestamps, which keep a window from ending inside a word.
    /// For callers that want the text only.
    pub without_timestamps: bool,
    /// Latest first timestamp allowed, seconds.
    pub max_initial_timestamp: f32,
    /// Encode full padded windows (Whisper's default) or only the audio present.
    pub encoder_frames: EncoderFrames,
    /// Time each word (cross-attention alignment + DTW); costs one extra decoder pass.
    pub word_timestamps: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            task: Task::Transcribe,
            language: None,
            temperatures: vec![0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
            beam_size: 1,
            compression_ratio_threshold: Some(2.4),
            log_prob_threshold: Some(-1.0),
            no_speech_threshold: Some(0.6),
            condition_on_previous_text: true,
            prompt_reset_on_temperature: 0.5,
            initial_prompt: None,
            sample_len: None,
            without_timestamps: false,
            max_initial_timestamp: 1.0,
            encoder_frames: EncoderFrames::FullFirstWindow,
            word_timestamps: false,
        }
    }
}
