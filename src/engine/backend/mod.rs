//! The seam between the scheduler and a model: what one batched step needs.
//!
//! The engine knows nothing of mel frames, tokens or tensors. It asks a [`Backend`] to start
//! a job's [`JobStream`] (checking the job's options against the model), and to step a batch
//! of streams by one window in one call; the streams then report what they decoded. Whisper on
//! candle ([`whisper`]) is the production backend; [`scripted`] is a deterministic stand-in
//! that lets the scheduler, the streaming driver and both transports be tested without model
//! weights. A GPU-only backend or a second model family plugs in here.

pub mod scripted;
mod whisper;

use std::sync::Arc;

use crate::model::whisper::decode::{
    DecodeError, DecodeOptions, Segment, Transcript, check_language,
};

pub use scripted::ScriptedBackend;
pub use whisper::WhisperBackend;

/// What the served model can do, for validation and for the front ends' model listings.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Language codes the model transcribes (`["en"]` for English-only models).
    pub languages: Vec<String>,
    /// Whether the model detects languages and translates.
    pub multilingual: bool,
}

/// A batched step failed; every job in the batch fails with it.
pub type StepError = Box<dyn std::error::Error + Send + Sync>;

/// A model the scheduler can drive, one window of many jobs at a time.
///
/// `step` runs on the engine's worker thread and may take as long as the model needs; the
/// other methods are called from the submitting thread (an async task) and must be cheap.
pub trait Backend: Send + Sync + 'static {
    /// One job's decoding state between steps.
    type Stream: JobStream;

    /// The model's capabilities.
    fn info(&self) -> &ModelInfo;

    /// Starts a job over 16 kHz mono `samples` with `options` (language, task, prompt, word
    /// timings, encoder frames). Fails at once, without queuing, on options the model cannot
    /// serve.
    fn start(
        &self,
        samples: Arc<[f32]>,
        options: &DecodeOptions,
    ) -> Result<Self::Stream, DecodeError>;

    /// Decodes the next window of every stream in `batch` in one model call. `policy` is the
    /// engine's shared decoding policy (thresholds); each stream keeps the options it was
    /// started with (temperatures included). None of the streams is done.
    fn step(
        &self,
        batch: &mut [&mut Self::Stream],
        policy: &DecodeOptions,
    ) -> Result<(), StepError>;
}

/// One job's progress as the scheduler reads it between steps.
pub trait JobStream: Send + 'static {
    /// Whether every window has been decoded.
    fn is_done(&self) -> bool;
    /// Seconds of the job's audio decoded so far.
    fn done_seconds(&self) -> f64;
    /// Seconds of audio in the job.
    fn total_seconds(&self) -> f64;
    /// Segments decoded so far, in order; a step only appends.
    fn segments(&self) -> &[Segment];
    /// The language in use, once given or detected.
    fn language(&self) -> Option<&str>;
    /// The transcript of what has been decoded.
    fn into_transcript(self) -> Transcript;
}

impl ModelInfo {
    /// Checks a job's language and task against the model by Whisper's rules
    /// ([`check_language`]); returns the fixed language code (`None`: detect it).
    pub fn check(&self, options: &DecodeOptions) -> Result<Option<String>, DecodeError> {
        let codes: Vec<&str> = self.languages.iter().map(String::as_str).collect();
        check_language(&codes, self.multilingual, options).map(|code| code.map(str::to_string))
    }
}
