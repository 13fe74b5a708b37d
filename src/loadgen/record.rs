//! What one session measured: collected by a protocol driver as instants, kept as seconds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clips::Clip;
use crate::eval::score;

/// The audio frame every driver sends: 100 ms, what a microphone client sends.
pub const FRAME: Duration = Duration::from_millis(100);

/// How a session's audio is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Each frame when it would have been spoken: a live microphone.
    RealTime,
    /// As fast as the server's backpressure lets the frames through.
    Fast,
}

/// When each frame of a session's audio went out, shared by the sender and the reader.
#[derive(Debug, Clone, Default)]
pub struct SendLog(Arc<Mutex<Vec<Instant>>>);

impl From<Vec<Instant>> for SendLog {
    fn from(sent: Vec<Instant>) -> Self {
        Self(Arc::new(Mutex::new(sent)))
    }
}

impl SendLog {
    /// Notes that the next frame went out now.
    pub fn sent(&self) {
        self.0.lock().expect("send log").push(Instant::now());
    }

    /// When the frame holding audio time `seconds` (its last sample) went out; the last frame
    /// for times beyond the audio sent.
    pub fn when_sent(&self, seconds: f64) -> Option<Instant> {
        let sent = self.0.lock().expect("send log");
        let frame = ((seconds / FRAME.as_secs_f64()).ceil() as usize).saturating_sub(1);
        sent.get(frame).or(sent.last()).copied()
    }

    /// When frame `index` (0-based) went out.
    pub fn frame(&self, index: usize) -> Option<Instant> {
        self.0.lock().expect("send log").get(index).copied()
    }

    /// When the last frame went out: the client's end of audio.
    pub fn end(&self) -> Option<Instant> {
        self.0.lock().expect("send log").last().copied()
    }
}

/// How a session's commit lags were measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitTiming {
    /// Each committed word's own end time (gRPC word timings).
    WordTimings,
    /// The protocol gives no word timings: an item's words are spread evenly over its
    /// speech span (`speech_started` … `speech_stopped`), the k-th of n ending k/n through it.
    ItemSpan,
}

/// What a driver saw of one session, as it happened.
#[derive(Debug)]
pub struct Observation {
    /// When the session was opened.
    pub started: Instant,
    /// When each frame went out.
    pub sent: SendLog,
    /// The first non-empty partial text (tentative or committed, before the final).
    pub first_interim: Option<Instant>,
    /// Where the first speech starts in the audio (seconds), as the server reported it.
    pub speech_onset: Option<f64>,
    /// Each committed word: when it arrived, and where its audio ends (seconds).
    pub commits: Vec<(Instant, f64)>,
    /// How `commits`' audio times were found.
    pub commit_timing: Option<CommitTiming>,
    /// When the last final arrived.
    pub last_final: Option<Instant>,
    /// The final text of every utterance, in order.
    pub finals: Vec<String>,
}

impl Observation {
    /// A session opened now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            sent: SendLog::default(),
            first_interim: None,
            speech_onset: None,
            commits: Vec::new(),
            commit_timing: None,
            last_final: None,
            finals: Vec::new(),
        }
    }

    /// Notes partial text that arrived now.
    pub fn interim(&mut self, text: &str) {
        if self.first_interim.is_none() && !text.trim().is_empty() {
            self.first_interim = Some(Instant::now());
        }
    }

    /// Notes an utterance's final text, arrived now.
    pub fn finished_utterance(&mut self, text: &str) {
        let text = text.trim();
        if !text.is_empty() {
            self.finals.push(text.to_string());
        }
        self.last_final = Some(Instant::now());
    }
}

impl Default for Observation {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a session did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The protocol's code: a gRPC code name (`RESOURCE_EXHAUSTED`), `HTTP 429`, a Realtime
    /// error code, or `transport` when the connection itself failed.
    pub code: String,
    /// What the server (or the connection) said.
    pub message: String,
    /// The server turned the session away with a code that asks the client to retry later
    /// (gRPC `RESOURCE_EXHAUSTED`/`UNAVAILABLE`, HTTP 429/503, a Realtime rate limit).
    pub retryable: bool,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every utterance got its final.
    Completed,
    /// Turned away with a retryable code (the server is full or draining).
    Refused,
    /// Any other error.
    Failed,
}

/// One session's figures, as `--json` writes them. Latencies are seconds.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The clip played.
    pub clip: String,
    /// When the session opened, from the start of the run.
    pub started_s: f64,
    /// Seconds of audio in the clip.
    pub audio_seconds: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The failure's code, when not completed.
    pub code: Option<String>,
    /// The failure's message, when not completed.
    pub message: Option<String>,
    /// From opening the session to its first partial text.
    pub first_interim_s: Option<f64>,
    /// From sending the frame of the speech onset (as the server placed it) to the first
    /// partial text: the silence a recording starts with is not the server's latency.
    pub first_words_s: Option<f64>,
    /// Per committed word: when it arrived minus when the frame ending it went out.
    pub commit_lags_s: Vec<f64>,
    /// How the commit lags were measured (`None` when the protocol commits nothing early).
    pub commit_timing: Option<CommitTiming>,
    /// From the last audio sent to the last final.
    pub final_latency_s: Option<f64>,
    /// From opening to the end of the session.
    pub wall_s: f64,
    /// The finals, joined.
    pub hypothesis: String,
    /// Word (or character) errors against the reference, when the clip has one.
    pub errors: Option<usize>,
    /// Reference words (or characters), when the clip has a reference.
    pub reference_words: Option<usize>,
}

impl SessionRecord {
    /// The record of a session that ran to its end.
    pub fn completed(observation: Observation, clip: &Clip, run_started: Instant) -> Self {
        let sent = &observation.sent;
        let commit_lags_s = observation
            .commits
            .iter()
            .filter_map(|&(arrived, end)| {
                Some(seconds(
                    arrived.saturating_duration_since(sent.when_sent(end)?),
                ))
            })
            .collect();
        let first_words_s = observation
            .first_interim
            .zip(observation.speech_onset)
            .and_then(|(at, onset)| {
                // The frame holding the onset's first sample.
                let sent_at = sent.frame((onset / FRAME.as_secs_f64()).floor() as usize)?;
                Some(seconds(at.saturating_duration_since(sent_at)))
            });
        let final_latency_s = observation
            .last_final
            .zip(sent.end())
            .map(|(done, end)| seconds(done.saturating_duration_since(end)));
        let hypothesis = observation.finals.join(" ");
        let counts = clip
            .reference
            .as_ref()
            .map(|reference| score(clip.lang.as_deref().unwrap_or("en"), reference, &hypothesis));
        Self {
            clip: clip.id.clone(),
            started_s: seconds(observation.started.saturating_duration_since(run_started)),
            audio_seconds: clip.seconds(),
            outcome: Outcome::Completed,
            code: None,
            message: None,
            first_interim_s: observation
                .first_interim
                .map(|at| seconds(at.saturating_duration_since(observation.started))),
            first_words_s,
            commit_lags_s,
            commit_timing: observation.commit_timing,
            final_latency_s,
            wall_s: seconds(observation.started.elapsed()),
            errors: counts.map(|c| c.errors()),
            reference_words: counts.map(|c| c.reference_words),
            hypothesis,
        }
    }

    /// The record of a session that failed or was refused after opening at `started`.
    pub fn failed(failure: Failure, clip: &Clip, started: Instant, run_started: Instant) -> Self {
        Self {
            clip: clip.id.clone(),
            started_s: seconds(started.saturating_duration_since(run_started)),
            audio_seconds: clip.seconds(),
            outcome: if failure.retryable {
                Outcome::Refused
            } else {
                Outcome::Failed
            },
            code: Some(failure.code),
            message: Some(failure.message),
            first_interim_s: None,
            first_words_s: None,
            commit_lags_s: Vec::new(),
            commit_timing: None,
            final_latency_s: None,
            wall_s: seconds(started.elapsed()),
            hypothesis: String::new(),
            errors: None,
            reference_words: None,
        }
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_is_timed_from_the_frame_that_ends_it() {
        let log = SendLog::default();
        let t0 = Instant::now();
        {
            let mut sent = log.0.lock().unwrap();
            for i in 0..10u32 {
                sent.push(t0 + FRAME * i);
            }
        }
        // A word ending at 0.25 s is in the third frame (0.2–0.3 s).
        assert_eq!(log.when_sent(0.25), Some(t0 + FRAME * 2));
        assert_eq!(log.when_sent(0.3), Some(t0 + FRAME * 2));
        assert_eq!(log.when_sent(0.0), Some(t0));
        // Beyond the audio: the last frame.
        assert_eq!(log.when_sent(5.0), Some(t0 + FRAME * 9));
        assert_eq!(log.end(), Some(t0 + FRAME * 9));
        assert_eq!(SendLog::default().when_sent(1.0), None);
    }

    #[test]
    fn a_completed_session_scores_and_times_itself() {
        let clip = Clip::new(
            "c".into(),
            Some("en".into()),
            vec![0.0; 16_000],
            Some("hello there world".into()),
        );
        let run = Instant::now();
        let mut seen = Observation::new();
        let t0 = seen.started;
        {
            let mut sent = seen.sent.0.lock().unwrap();
            for i in 0..10u32 {
                sent.push(t0 + FRAME * i);
            }
        }
        seen.commits = vec![(t0 + Duration::from_millis(1500), 0.3)];
        seen.first_interim = Some(t0 + Duration::from_millis(700));
        seen.speech_onset = Some(0.25);
        seen.last_final = Some(t0 + Duration::from_millis(2400));
        seen.finals = vec!["Hello there.".into(), "World!".into()];
        let record = SessionRecord::completed(seen, &clip, run);
        assert_eq!(record.outcome, Outcome::Completed);
        assert!((record.commit_lags_s[0] - 1.3).abs() < 1e-9);
        assert!((record.first_interim_s.unwrap() - 0.7).abs() < 1e-9);
        // The onset at 0.25 s went out with the third frame, at 0.2 s.
        assert!((record.first_words_s.unwrap() - 0.5).abs() < 1e-9);
        // The last frame went out at 0.9 s.
        assert!((record.final_latency_s.unwrap() - 1.5).abs() < 1e-9);
        assert_eq!((record.errors, record.reference_words), (Some(0), Some(3)));
    }
}
