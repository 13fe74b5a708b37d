//! Engine results → proto messages.

use super::config::Settings;
use super::proto::{self, RecognizeResponse, ServerLimits, SessionStarted, TranscriptUpdate};
use crate::engine::WindowUpdate;
use crate::model::whisper::decode::{Segment, Transcript};
use crate::service::Service;

/// The first message of every response stream: what the server made of the config.
pub(super) fn session_started(service: &Service, settings: &Settings) -> SessionStarted {
    let limits = service.limits();
    SessionStarted {
        effective_config: Some(settings.effective.clone()),
        limits: Some(ServerLimits {
            max_message_bytes: limits.max_message_bytes as u32,
            max_lead_seconds: limits.max_lead_seconds as f32,
            max_sessions: limits.max_sessions as u32,
            max_audio_seconds: limits.max_audio_seconds as f32,
        }),
        model: service.model_id().to_string(),
        device: service.device().to_string(),
        // Set by the stream for a resumable session.
        resume_token: String::new(),
        resume_window_seconds: 0.0,
    }
}

/// The `Recognize` answer for a finished transcript.
pub(super) fn recognize_response(
    transcript: Transcript,
    model_id: &str,
    with_words: bool,
) -> RecognizeResponse {
    RecognizeResponse {
        text: transcript.text,
        language: transcript.language,
        language_probability: transcript.language_probability.unwrap_or(0.0),
        duration_seconds: transcript.duration,
        segments: transcript
            .segments
            .iter()
            .map(|s| segment(s, with_words))
            .collect(),
        model: model_id.to_string(),
    }
}

fn segment(s: &Segment, with_words: bool) -> proto::Segment {
    proto::Segment {
        id: s.id as u32,
        start: s.start,
        end: s.end,
        text: s.text.clone(),
        tokens: s.tokens.clone(),
        temperature: s.temperature,
        avg_logprob: s.avg_logprob,
        compression_ratio: s.compression_ratio,
        no_speech_prob: s.no_speech_prob,
        words: if with_words { words(s) } else { Vec::new() },
    }
}

fn words(s: &Segment) -> Vec<proto::Word> {
    s.words
        .iter()
        .map(|w| proto::Word {
            word: w.word.clone(),
            start: w.start,
            end: w.end,
            probability: w.probability,
        })
        .collect()
}

/// A decoded segment of a whole-audio request as the final update of utterance `utterance_id`.
pub(super) fn final_segment_update(
    s: &Segment,
    utterance_id: u64,
    language: &str,
    with_words: bool,
) -> TranscriptUpdate {
    let text = s.text.trim().to_string();
    TranscriptUpdate {
        utterance_id,
        revision: 1,
        committed_delta: text.clone(),
        committed: text,
        tentative: String::new(),
        is_final: true,
        stability: 1.0,
        words: if with_words { words(s) } else { Vec::new() },
        start: s.start,
        end: s.end,
        language: language.to_string(),
        audio_dropped: false,
    }
}

/// How far a whole-audio request has got after a decoded window: seconds of the recording done
/// and still to go.
pub(super) fn window_progress(window: &WindowUpdate) -> proto::AudioAck {
    let done = window.done_seconds.min(window.total_seconds);
    proto::AudioAck {
        sequence: 0,
        processed_seconds: done,
        backlog_seconds: window.total_seconds - done,
        dropped_seconds: 0.0,
    }
}

/// The last progress of a whole-audio request: all of it done.
pub(super) fn file_done(transcript: &Transcript) -> proto::AudioAck {
    proto::AudioAck {
        sequence: 0,
        processed_seconds: transcript.duration,
        backlog_seconds: 0.0,
        dropped_seconds: 0.0,
    }
}
