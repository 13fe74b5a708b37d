//! Where a batched step's time goes: process-wide counters of the wall time spent in each phase
//! of [`Transcriber::step`](super::Transcriber::step), read by the benchmarks (a snapshot
//! before and after a run, subtracted) to say which lever pays. Cheap enough to stay on:
//! one clock read and one relaxed atomic add per phase and step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The phases of one step, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Log-mel features of every row.
    Mel,
    /// The audio encoder over the batch.
    Encoder,
    /// Language detection for rows without a language.
    Language,
    /// Greedy decoding with temperature fallback.
    Decode,
    /// Word timings from cross-attention (rows that asked for them).
    Align,
}

static NANOS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
static STEPS: AtomicU64 = AtomicU64::new(0);
static ROWS: AtomicU64 = AtomicU64::new(0);
static ATTEMPTS: AtomicU64 = AtomicU64::new(0);
static TOKENS: AtomicU64 = AtomicU64::new(0);
static ENCODED_FRAMES: AtomicU64 = AtomicU64::new(0);

/// Seconds spent in each phase since the process started, and the steps and rows behind them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct PhaseTimes {
    /// Batched steps run.
    pub steps: u64,
    /// Rows (windows) over those steps.
    pub rows: u64,
    /// Decodings of a row, temperature fallbacks included (`attempts - rows` fell back).
    pub attempts: u64,
    /// Tokens sampled over every attempt.
    pub tokens: u64,
    /// Mel frames (10 ms each) the encoder ran over, padding included.
    pub encoded_frames: u64,
    /// Seconds computing log-mel features.
    pub mel_s: f64,
    /// Seconds in the encoder.
    pub encoder_s: f64,
    /// Seconds detecting languages.
    pub language_s: f64,
    /// Seconds decoding tokens.
    pub decode_s: f64,
    /// Seconds aligning words.
    pub align_s: f64,
}

impl PhaseTimes {
    /// The counters now.
    pub fn now() -> Self {
        let secs = |p: Phase| NANOS[p as usize].load(Ordering::Relaxed) as f64 * 1e-9;
        Self {
            steps: STEPS.load(Ordering::Relaxed),
            rows: ROWS.load(Ordering::Relaxed),
            attempts: ATTEMPTS.load(Ordering::Relaxed),
            tokens: TOKENS.load(Ordering::Relaxed),
            encoded_frames: ENCODED_FRAMES.load(Ordering::Relaxed),
            mel_s: secs(Phase::Mel),
            encoder_s: secs(Phase::Encoder),
            language_s: secs(Phase::Language),
            decode_s: secs(Phase::Decode),
            align_s: secs(Phase::Align),
        }
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            steps: self.steps - earlier.steps,
            rows: self.rows - earlier.rows,
            attempts: self.attempts - earlier.attempts,
            tokens: self.tokens - earlier.tokens,
            encoded_frames: self.encoded_frames - earlier.encoded_frames,
            mel_s: self.mel_s - earlier.mel_s,
            encoder_s: self.encoder_s - earlier.encoder_s,
            language_s: self.language_s - earlier.language_s,
            decode_s: self.decode_s - earlier.decode_s,
            align_s: self.align_s - earlier.align_s,
        }
    }

    /// Seconds over every phase.
    pub fn total_s(&self) -> f64 {
        self.mel_s + self.encoder_s + self.language_s + self.decode_s + self.align_s
    }
}

impl std::fmt::Display for PhaseTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.total_s().max(f64::MIN_POSITIVE);
        let share = |s: f64| 100.0 * s / total;
        write!(
            f,
            "{} steps, {} rows, {} decodings, {} tokens, {:.0} s encoded, {:.1} s: mel {:.0} %, \
             encoder {:.0} %, language {:.0} %, decode {:.0} %, align {:.0} %",
            self.steps,
            self.rows,
            self.attempts,
            self.tokens,
            self.encoded_frames as f64 * 0.01,
            self.total_s(),
            share(self.mel_s),
            share(self.encoder_s),
            share(self.language_s),
            share(self.decode_s),
            share(self.align_s),
        )
    }
}

/// Counts one decoding attempt of a row that sampled `tokens` tokens.
pub(super) fn count_attempt(tokens: usize) {
    ATTEMPTS.fetch_add(1, Ordering::Relaxed);
    TOKENS.fetch_add(tokens as u64, Ordering::Relaxed);
}

/// Counts `frames` mel frames run through the encoder.
pub(super) fn count_encoded(frames: usize) {
    ENCODED_FRAMES.fetch_add(frames as u64, Ordering::Relaxed);
}

/// Times phases of one step: [`lap`](Self::lap) charges the time since the previous lap.
pub(super) struct PhaseClock {
    last: Instant,
}

impl PhaseClock {
    /// Starts timing a step of `rows` rows.
    pub(super) fn start(rows: usize) -> Self {
        STEPS.fetch_add(1, Ordering::Relaxed);
        ROWS.fetch_add(rows as u64, Ordering::Relaxed);
        Self {
            last: Instant::now(),
        }
    }

    /// Charges the time since the last lap to `phase`.
    pub(super) fn lap(&mut self, phase: Phase) {
        let now = Instant::now();
        let nanos = (now - self.last).as_nanos() as u64;
        NANOS[phase as usize].fetch_add(nanos, Ordering::Relaxed);
        self.last = now;
    }
}
