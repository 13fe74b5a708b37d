//! How a streaming session's [`TranscriptionRequest`]s become engine jobs and their transcripts
//! become the policy's [`Hypothesis`]: shared by every transport that streams (gRPC, the
//! Realtime WebSocket) and by the policy replay benchmark, so they all behave alike.

use crate::engine::JobOptions;
use crate::model::whisper::decode::Transcript;
use crate::session::{Hypothesis, TimedWord, TranscriptionRequest};

/// The job for one policy request: the session's options with word timings on (agreement works
/// on timed words), and the committed text that left the buffer appended to the session's own
/// prompt. Every request encodes only the buffer, followed by an encoded silent window (policy
/// replay of the English corpus: finals trimmed too, model time 0.421 → 0.337 s per second of
/// stream, streamed WER 7.50 → 8.09 %, 1.06× offline). Interims decode once, without
/// temperature fallback (superseded a second later, a retry is wasted: 362 decodings for 306
/// requests with fallback, the same WER without); the final one keeps the fallback.
pub fn streaming_job_options(session: &JobOptions, request: &TranscriptionRequest) -> JobOptions {
    JobOptions {
        prompt: join_prompt(session.prompt.as_deref(), &request.prompt),
        word_timestamps: true,
        trim_encoder: true,
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
