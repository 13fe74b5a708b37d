//! One streaming session's policy: when to transcribe what, and which words are final.
//!
//! Pure logic, no model, no async, no I/O. The serving layer feeds 16 kHz mono audio to a
//! [`SessionPolicy`], sends each [`TranscriptionRequest`] it hands out to the model, and passes the
//! [`Hypothesis`] back; the policy answers with [`TranscriptUpdate`]s. The policy works like
//! whisper_streaming's `OnlineASRProcessor` behind a voice activity gate:
//!
//! - **Utterances.** A [`Vad`] (Silero or energy) opens an utterance when speech starts (keeping
//!   `pre_roll_ms` before it) and closes it `endpoint_ms` after speech stops, so silence and
//!   steady noise never reach the model. With VAD off the stream is one utterance until
//!   [`SessionPolicy::finalize`].
//! - **Requests.** The whole buffer of the open utterance is re-transcribed whenever
//!   `min_chunk_seconds` of new audio has arrived and no request of it is in flight (the first
//!   once the utterance holds `first_chunk_seconds`); the chunk grows while the caller reports
//!   the server behind. Closing an utterance issues one final request.
//! - **Commits.** Under the default [`StreamingPolicy::LocalAgreement`], words two consecutive
//!   hypotheses agree on are committed (LocalAgreement-2); under [`StreamingPolicy::AlignAtt`],
//!   the words one hypothesis aligns clear of the end of its audio are. The rest is tentative
//!   ([`CommitBuffer`]). The final result commits everything.
//! - **Bounded buffer.** Past `buffer_trim_seconds` the buffer is cut after the last committed
//!   segment or word, and the committed text that left becomes the next requests' prompt. Past
//!   `force_commit_seconds` the latest hypothesis is committed up to 1 s before its end; at 30 s
//!   (Whisper's window, reached only if results stop coming) the utterance is split.

mod commit;
mod messages;
mod policy;
mod prompt;
mod utterance;
mod vad;

pub use commit::{CommitBuffer, TimedWord};
pub use messages::{Hypothesis, SpeechEvent, TranscriptUpdate, TranscriptionRequest};
pub use policy::{Output, SessionPolicy};
pub use vad::{Detector, EnergyVad, SileroStream, Vad, VadEvent, regions, speech_regions};

/// Longest audio buffer ever sent to the model: Whisper's 30 s window.
pub const MAX_BUFFER_SECONDS: f64 = 30.0;

const SAMPLE_RATE: f64 = crate::audio::WHISPER_SAMPLE_RATE as f64;

/// Stream time of a sample index.
fn seconds(sample: u64) -> f64 {
    sample as f64 / SAMPLE_RATE
}

/// The sample index nearest a stream time (0 for negative times).
fn sample_at(seconds: f64) -> u64 {
    (seconds * SAMPLE_RATE).round().max(0.0) as u64
}

/// The policy's knobs; [`SessionConfig::default`] is tuned for live dictation.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// Voice activity detection and endpointing.
    pub vad: VadConfig,
    /// Utterance audio, in seconds and pre-roll included, that makes its first transcription
    /// due (0.7): about 0.2 s of speech past the pre-roll, so the first words show sooner than
    /// a whole chunk after the onset. Scaled like the chunk while the server is behind.
    pub first_chunk_seconds: f64,
    /// New audio, in seconds, that makes a transcription of the open utterance due (1.0).
    pub min_chunk_seconds: f64,
    /// The most the chunk grows to while the server is behind (4.0).
    pub max_chunk_seconds: f64,
    /// Past this buffer length the buffer is cut after the last committed segment (15.0).
    pub buffer_trim_seconds: f64,
    /// Past this buffer length the latest hypothesis is committed regardless (25.0).
    pub force_commit_seconds: f64,
    /// The prompt is the last this many characters of committed text no longer in the buffer
    /// (800, about 200 tokens; 0 sends no prompt).
    pub max_prompt_chars: usize,
    /// How words become committed before the utterance ends (LocalAgreement-2).
    pub policy: StreamingPolicy,
}

/// How a stream decides which words are final while its utterance goes on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum StreamingPolicy {
    /// LocalAgreement-2, as in whisper_streaming: a word is committed once two consecutive
    /// hypotheses agree on it. Safer, and a chunk later.
    #[default]
    LocalAgreement,
    /// AlignAtt, as in SimulStreaming: a word is committed from one hypothesis once the
    /// decoder's alignment (the alignment heads' cross-attention, through the word-timing DTW)
    /// ends it at least `margin_seconds` before the end of the audio the model heard; a word
    /// within the margin commits when the next hypothesis heard it whole, or agrees on it.
    AlignAtt {
        /// How close to the end of the heard audio a word may end and still be committed
        /// ([`ALIGN_ATT_MARGIN_SECONDS`]).
        margin_seconds: f64,
    },
}

/// AlignAtt's default margin, 40 encoder frames of 20 ms. SimulStreaming's 25 frames (0.5 s,
/// tuned on large-v3) cost tiny.en 19 errors more than LocalAgreement-2 over the English
/// corpus; 0.8 s costs 2 (`hearken bench policy --policy align-att --align-att-margin S`).
pub const ALIGN_ATT_MARGIN_SECONDS: f64 = 0.8;

impl StreamingPolicy {
    /// AlignAtt with the default margin.
    pub const fn align_att() -> Self {
        Self::AlignAtt {
            margin_seconds: ALIGN_ATT_MARGIN_SECONDS,
        }
    }

    /// The name used on the command line and in logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::LocalAgreement => "local-agreement",
            Self::AlignAtt { .. } => "align-att",
        }
    }
}

impl std::fmt::Display for StreamingPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::LocalAgreement => f.write_str(self.name()),
            Self::AlignAtt { margin_seconds } => {
                write!(f, "{} (margin {margin_seconds} s)", self.name())
            }
        }
    }
}

impl std::str::FromStr for StreamingPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "local-agreement" | "la" => Ok(Self::LocalAgreement),
            "align-att" | "alignatt" => Ok(Self::align_att()),
            other => Err(format!(
                "unknown streaming policy `{other}`: use local-agreement or align-att"
            )),
        }
    }
}

impl SessionConfig {
    /// The defaults with utterances ending after `silence` (the post-roll kept after speech is
    /// at most 300 ms of it).
    pub fn with_endpointing(silence: std::time::Duration) -> Self {
        let endpoint_ms = u32::try_from(silence.as_millis()).unwrap_or(u32::MAX);
        Self {
            vad: VadConfig {
                endpoint_ms,
                post_roll_ms: endpoint_ms.min(300),
                ..VadConfig::default()
            },
            ..Self::default()
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            vad: VadConfig::default(),
            first_chunk_seconds: 0.7,
            min_chunk_seconds: 1.0,
            max_chunk_seconds: 4.0,
            buffer_trim_seconds: 15.0,
            force_commit_seconds: 25.0,
            max_prompt_chars: 800,
            policy: StreamingPolicy::LocalAgreement,
        }
    }
}

/// Voice activity detection settings.
#[derive(Debug, Clone, PartialEq)]
pub struct VadConfig {
    /// Gate the stream on speech (true). Off: every sample is transcribed, and utterances end
    /// only on [`SessionPolicy::finalize`].
    pub enabled: bool,
    /// Silence that ends an utterance (800 ms).
    pub endpoint_ms: u32,
    /// Audio kept before speech onset so the first word is not cut (500 ms: the energy VAD
    /// fires a little after a soft onset).
    pub pre_roll_ms: u32,
    /// Audio kept after the last speech frame (300 ms, at most `endpoint_ms`).
    pub post_roll_ms: u32,
    /// Speech needed, within twice this span, to start an utterance (150 ms).
    pub min_speech_ms: u32,
    /// How far above the noise floor a frame must be to count as speech (10 dB).
    pub threshold_db: f32,
    /// Frames quieter than this are never speech (−50 dBFS).
    pub min_level_dbfs: f32,
    /// Which detector judges speech (energy unless the server loaded Silero VAD).
    pub detector: Detector,
    /// Silero: the probability at which a 32 ms chunk counts as speech (0.5, silero-vad's own
    /// default); speech holds until chunks fall 0.15 below it.
    pub speech_probability: f32,
}

impl Default for VadConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            endpoint_ms: 800,
            pre_roll_ms: 500,
            post_roll_ms: 300,
            min_speech_ms: 150,
            threshold_db: 10.0,
            min_level_dbfs: -50.0,
            detector: Detector::Energy,
            speech_probability: 0.5,
        }
    }
}

impl VadConfig {
    /// The speech gate for whole files: speech must last 200 ms (within 400 ms) rather than
    /// 150, because a whole file has no later audio to correct a false start, and a click or
    /// a 0.1 s fragment is what Whisper turns into "Thank you."; the shortest words ("no",
    /// "yes") last over 250 ms.
    pub fn whole_file(detector: Detector) -> Self {
        Self {
            min_speech_ms: 200,
            // A pause of 300 ms ends a stretch of speech: a long file is cut into chunks at
            // such pauses (faster-whisper's batched pipeline uses 160 ms). The silences cut
            // out of a whole file are only those of 2 s and more (see `service::whole_file`).
            endpoint_ms: 300,
            detector,
            ..Self::default()
        }
    }
}

/// A [`SessionConfig`] value out of range (typically a client-supplied setting).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid session setting `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What the value must be.
    pub reason: &'static str,
}

impl SessionConfig {
    /// Checks every knob's range and their order (chunk < trim < force < 30 s).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let (c, v) = (self, &self.vad);
        let rules = [
            (
                c.min_chunk_seconds > 0.0 && c.min_chunk_seconds.is_finite(),
                "min_chunk_seconds",
                "must be positive",
            ),
            (
                c.first_chunk_seconds > 0.0 && c.first_chunk_seconds <= c.min_chunk_seconds,
                "first_chunk_seconds",
                "must be positive and at most min_chunk_seconds",
            ),
            (
                c.max_chunk_seconds >= c.min_chunk_seconds,
                "max_chunk_seconds",
                "must be at least min_chunk_seconds",
            ),
            (
                c.buffer_trim_seconds > c.max_chunk_seconds,
                "buffer_trim_seconds",
                "must exceed max_chunk_seconds",
            ),
            (
                c.force_commit_seconds > c.buffer_trim_seconds
                    && c.force_commit_seconds < MAX_BUFFER_SECONDS,
                "force_commit_seconds",
                "must lie between buffer_trim_seconds and 30 s",
            ),
            (
                match c.policy {
                    StreamingPolicy::LocalAgreement => true,
                    StreamingPolicy::AlignAtt { margin_seconds } => {
                        (0.0..=c.min_chunk_seconds).contains(&margin_seconds)
                    }
                },
                "policy.margin_seconds",
                "must be between 0 and min_chunk_seconds",
            ),
            (
                (30..=10_000).contains(&v.endpoint_ms),
                "vad.endpoint_ms",
                "must be 30..=10000",
            ),
            (
                v.pre_roll_ms <= 1_000,
                "vad.pre_roll_ms",
                "must be at most 1000",
            ),
            (
                v.post_roll_ms <= v.endpoint_ms,
                "vad.post_roll_ms",
                "must be at most endpoint_ms",
            ),
            (
                (30..=1_500).contains(&v.min_speech_ms),
                "vad.min_speech_ms",
                "must be 30..=1500",
            ),
            (
                v.threshold_db > 0.0 && v.threshold_db < 60.0,
                "vad.threshold_db",
                "must be in (0, 60)",
            ),
            (
                v.min_level_dbfs > -100.0 && v.min_level_dbfs < 0.0,
                "vad.min_level_dbfs",
                "must be in (-100, 0)",
            ),
            (
                matches!(v.detector, Detector::Energy)
                    || (v.speech_probability > 0.0 && v.speech_probability < 1.0),
                "vad.speech_probability",
                "must be in (0, 1)",
            ),
        ];
        match rules.into_iter().find(|(ok, ..)| !ok) {
            Some((_, field, reason)) => Err(ConfigError { field, reason }),
            None => Ok(()),
        }
    }
}

/// Helpers shared by the policy's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Hypothesis, TimedWord};

    /// `text` as words 0.2 s apart (0.15 s long) from relative time 0: five words fit in the
    /// one-second requests the tests make.
    pub(crate) fn hyp(text: &str) -> Hypothesis {
        hyp_every(text, 0.2)
    }

    /// `text` as words `step` seconds apart, each 0.8 `step` long, from relative time 0.
    pub(crate) fn hyp_every(text: &str, step: f64) -> Hypothesis {
        Hypothesis::from_words(
            text.split(' ')
                .enumerate()
                .map(|(i, t)| {
                    let start = step * i as f64;
                    TimedWord::new(format!(" {t}"), start, start + 0.8 * step)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_field() {
        assert_eq!(SessionConfig::default().validate(), Ok(()));
        let c = SessionConfig {
            force_commit_seconds: 31.0,
            ..SessionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "force_commit_seconds");
        let c = SessionConfig {
            first_chunk_seconds: 1.5,
            ..SessionConfig::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "first_chunk_seconds");
        let mut c = SessionConfig::default();
        c.vad.post_roll_ms = 900;
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "vad.post_roll_ms");
        assert!(err.to_string().contains("endpoint_ms"));
    }
}
