//! What crosses the policy's boundary: requests out to the model, hypotheses back in, updates
//! and speech events out to the client.
//!
//! Times are seconds from the start of the stream ("absolute"), except in a [`Hypothesis`],
//! whose times are relative to the request's first sample, as the model produces them.

use super::TimedWord;

/// A transcription the caller should run now.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionRequest {
    /// Names this request in [`SessionPolicy::submit`](super::SessionPolicy::submit) and
    /// [`SessionPolicy::fail`](super::SessionPolicy::fail); increases per session.
    pub request_id: u64,
    /// The utterance the audio belongs to.
    pub utterance_id: u64,
    /// 16 kHz mono samples, at most [`MAX_BUFFER_SECONDS`](super::MAX_BUFFER_SECONDS) long.
    pub audio: Vec<f32>,
    /// Stream time of `audio[0]`.
    pub audio_start_seconds: f64,
    /// Committed text that precedes the audio (Whisper's `initial_prompt`); may be empty.
    pub prompt: String,
    /// The utterance is closed: this result will be its final update.
    pub is_final: bool,
}

impl TranscriptionRequest {
    /// Length of `audio` in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.audio.len() as f64 / f64::from(crate::audio::WHISPER_SAMPLE_RATE)
    }
}

/// The model's answer to a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Hypothesis {
    /// The words in order, times relative to the request's `audio[0]`.
    pub words: Vec<TimedWord>,
    /// Where Whisper's segments end (its timestamp tokens), relative like `words`; may be
    /// empty, and then the buffer is cut at word boundaries.
    pub segment_ends: Vec<f64>,
}

impl Hypothesis {
    /// A hypothesis without segment information.
    pub fn from_words(words: Vec<TimedWord>) -> Self {
        Self {
            words,
            segment_ends: Vec::new(),
        }
    }
}

/// The transcript of one utterance as it stands after a result.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptUpdate {
    /// The utterance this updates.
    pub utterance_id: u64,
    /// 1 for the utterance's first update, then +1 per update.
    pub revision: u64,
    /// Committed text added since the previous update; the deltas concatenate to `committed`.
    pub committed_delta: String,
    /// All committed (stable, never revised) text of the utterance.
    pub committed: String,
    /// The rest of the latest hypothesis, which may still change; empty when final.
    pub tentative: String,
    /// The utterance is over: no further updates for it.
    pub is_final: bool,
    /// Share of the hypothesis' words that are committed (1.0 when final).
    pub stability: f32,
    /// Committed words, then tentative ones, with absolute times.
    pub words: Vec<TimedWord>,
    /// How many of `words` are committed.
    pub committed_words: usize,
    /// Start of the first word, or of the utterance's audio when there is none.
    pub start_seconds: f64,
    /// End of the audio this hypothesis covers.
    pub end_seconds: f64,
    /// Audio of this utterance was dropped untranscribed to keep a live stream current (the
    /// stream's overflow policy is drop-oldest): its text misses what was said then.
    pub audio_dropped: bool,
}

impl TranscriptUpdate {
    /// `committed` followed by `tentative`: the whole hypothesis.
    pub fn text(&self) -> String {
        format!("{}{}", self.committed, self.tentative)
    }
}

/// Speech activity, for clients that show "listening" or implement barge-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpeechEvent {
    /// Speech began; `utterance_id` is the utterance it opened.
    Started {
        /// The utterance opened.
        utterance_id: u64,
        /// Onset time (without the pre-roll).
        at_seconds: f64,
    },
    /// Speech ended; the utterance's final request is queued.
    Ended {
        /// The utterance closed.
        utterance_id: u64,
        /// End of the last speech frame.
        at_seconds: f64,
    },
    /// Audio between the two times was dropped untranscribed because transcription fell
    /// behind a client that cannot slow down (overflow policy drop-oldest).
    AudioDropped {
        /// The utterance cut short by the drop (its final update follows), or 0 if none was.
        utterance_id: u64,
        /// Start of the dropped audio.
        from_seconds: f64,
        /// End of the dropped audio: transcription resumes here.
        to_seconds: f64,
    },
}
