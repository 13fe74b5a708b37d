//! How a streaming session's [`TranscriptionRequest`]s become engine jobs and their transcripts
//! become the policy's [`Hypothesis`]: shared by every transport that streams (gRPC, the
//! Realtime WebSocket) and by the policy replay benchmark, so they all behave alike.

use crate::engine::JobOptions;
use crate::model::whisper::decode::Transcript;
use crate::session::{Hypothesis, TimedWord, TranscriptionRequest};

/// The job for one policy request: the session's options with word timings on (agreement works
/// on timed words), and the committed text that left the buffer appended to the session's own
/// prompt. Interim requests encode only the buffer (they are short and frequent) and decode
/// once, without temperature fallback (superseded a second later, a retry is wasted: policy
/// replay of the English corpus, 362 decodings for 306 requests with fallback, the same WER
/// without); the final one encodes a padded 30 s window with the fallback, as offline
/// transcription does, because on short utterances the trimmed encoder costs accuracy (corpus
/// short clips, policy replay: 4.95 % WER trimmed, 3.72 % padded, the offline figure).
pub fn streaming_job_options(session: &JobOptions, request: &TranscriptionRequest) -> JobOptions {
    JobOptions {
        prompt: join_prompt(session.prompt.as_deref(), &request.prompt),
        word_timestamps: true,
        trim_encoder: !request.is_final,
        single_pass: !request.is_final,
        live: true,
        ..session.clone()
    }
}

/// The model's transcript of a request as the policy's hypothesis (times relative to the
/// request audio, as the engine reports them).
pub fn hypothesis(transcript: &Transcript) -> Hypothesis {
    let words = transcript
        .segments
        .iter()
        .flat_map(|s| s.words.iter())
        .map(|w| TimedWord {
            text: w.word.clone(),
            start: w.start,
            end: w.end,
            probability: w.probability,
        })
        .collect();
    Hypothesis {
        words,
        segment_ends: transcript.segments.iter().map(|s| s.end).collect(),
    }
}

fn join_prompt(configured: Option<&str>, committed: &str) -> Option<String> {
    let joined = match configured {
        Some(c) if !committed.is_empty() => format!("{c} {committed}"),
        Some(c) => c.to_string(),
        None => committed.to_string(),
    };
    Some(joined.trim().to_string()).filter(|p| !p.is_empty())
}
