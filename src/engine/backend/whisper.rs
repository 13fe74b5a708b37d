//! Whisper on candle as the engine's backend: a job is a [`LongFormStream`] (Whisper's seek
//! loop as a state machine) and a step is one batched encoder call and decode loop.

use std::sync::Arc;

use super::{Backend, JobStream, ModelInfo, StepError};
use crate::model::whisper::WhisperModel;
use crate::model::whisper::decode::{
    DecodeError, DecodeOptions, LongFormStream, Segment, Transcript,
};

/// A loaded Whisper model and what it can do.
pub struct WhisperBackend {
    model: WhisperModel,
    info: ModelInfo,
}

impl std::fmt::Debug for WhisperBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperBackend")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl From<WhisperModel> for WhisperBackend {
    fn from(model: WhisperModel) -> Self {
        let info = ModelInfo {
            languages: model
                .tokenizer
                .language_codes()
                .iter()
                .map(|c| c.to_string())
                .collect(),
            multilingual: model.tokenizer.is_multilingual(),
        };
        Self { model, info }
    }
}

impl Backend for WhisperBackend {
    type Stream = LongFormStream;

    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn start(
        &self,
        samples: Arc<[f32]>,
        options: &DecodeOptions,
    ) -> Result<LongFormStream, DecodeError> {
        self.model.transcriber(1).start_stream(samples, options)
    }

    fn step(
        &self,
        batch: &mut [&mut LongFormStream],
        policy: &DecodeOptions,
    ) -> Result<(), StepError> {
        self.model
            .transcriber(batch.len())
            .step(batch, policy)
            .map(drop)
            .map_err(Into::into)
    }
}

impl JobStream for LongFormStream {
    fn is_done(&self) -> bool {
        LongFormStream::is_done(self)
    }

    fn done_seconds(&self) -> f64 {
        LongFormStream::done_seconds(self)
    }

    fn total_seconds(&self) -> f64 {
        LongFormStream::total_seconds(self)
    }

    fn segments(&self) -> &[Segment] {
        LongFormStream::segments(self)
    }

    fn language(&self) -> Option<&str> {
        LongFormStream::language(self)
    }

    fn into_transcript(self) -> Transcript {
        LongFormStream::into_transcript(self)
    }
}
