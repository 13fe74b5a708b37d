//! The energy detector: no model, and the fallback when Silero VAD is not available.
//!
//! The signal is cut into 30 ms frames (after a DC blocker) and each frame's level in dBFS is
//! compared with the noise floor, estimated as the quietest frame of the last 3 s (minimum
//! statistics: it falls at once when the room goes quiet and rises to a new steady noise within
//! the window, so a fan or hiss never counts as speech for long). A frame is speech when it is
//! `threshold_db` above the floor and above `min_level_dbfs`. Speech starts once `min_speech_ms`
//! of speech frames fall within twice that span (clicks do not start utterances); its start is
//! walked back (up to 1 s) over earlier frames that are loud against the current floor. In the
//! stream's first 2 s the onset window itself is judged against the current floor, so a stream
//! that opens mid-word (no quiet frame yet to learn the floor from) keeps its first word. Speech ends after `endpoint_ms` without a speech frame;
//! a slightly lower threshold while in speech (hysteresis) keeps decaying word ends.

use std::collections::VecDeque;

use super::{VadConfig, VadEvent};
use crate::audio::{WHISPER_SAMPLE_RATE, level_dbfs};

/// Samples per analysis frame (30 ms at 16 kHz).
const FRAME_SAMPLES: usize = 480;
const FRAME_SECONDS: f64 = FRAME_SAMPLES as f64 / WHISPER_SAMPLE_RATE as f64;
/// Frames of level history the noise floor is the minimum of (3 s).
const FLOOR_WINDOW: usize = 100;
/// How far a confirmed onset may be walked back (1 s).
const MAX_LOOKBACK: usize = 33;
/// For the stream's first 2 s the onset window is judged against the current floor.
const YOUNG_FRAMES: u64 = 67;
/// Speech, once started, holds at a threshold this much lower.
const HYSTERESIS_DB: f32 = 3.0;
/// Pole of the DC blocker: a high-pass near 50 Hz, below any voice, that also removes rumble
/// and keeps the filter's own decay after a sound stops under 5 ms.
const DC_POLE: f32 = 0.98;

/// The detector's state for one stream.
#[derive(Debug, Clone)]
pub struct EnergyVad {
    endpoint_frames: u64,
    min_speech_frames: usize,
    threshold_db: f32,
    min_level_dbfs: f32,
    partial: Vec<f32>,
    /// Index of the next frame to complete.
    frame: u64,
    dc_prev_in: f32,
    dc_prev_out: f32,
    /// Levels of the last `FLOOR_WINDOW` frames, newest last.
    levels: VecDeque<f32>,
    /// Speech flags of the last `2 * min_speech_frames` frames while not in speech.
    onset: VecDeque<bool>,
    in_speech: bool,
    last_speech_frame: u64,
    /// Onsets are never walked back before this frame (the previous speech's end).
    not_before: u64,
}

impl EnergyVad {
    /// A detector with `config`'s thresholds and timings.
    pub fn new(config: &VadConfig) -> Self {
        let frames = |ms: u32| (f64::from(ms) / 1000.0 / FRAME_SECONDS).ceil() as u64;
        Self {
            endpoint_frames: frames(config.endpoint_ms).max(1),
            min_speech_frames: frames(config.min_speech_ms).max(1) as usize,
            threshold_db: config.threshold_db,
            min_level_dbfs: config.min_level_dbfs,
            partial: Vec::with_capacity(FRAME_SAMPLES),
            frame: 0,
            dc_prev_in: 0.0,
            dc_prev_out: 0.0,
            levels: VecDeque::with_capacity(FLOOR_WINDOW + 1),
            onset: VecDeque::new(),
            in_speech: false,
            last_speech_frame: 0,
            not_before: 0,
        }
    }

    /// Feeds samples (any chunking gives the same events) and returns the events they complete.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        let mut events = Vec::new();
        for &x in samples {
            // DC blocker: y[n] = x[n] - x[n-1] + p * y[n-1].
            let y = x - self.dc_prev_in + DC_POLE * self.dc_prev_out;
            self.dc_prev_in = x;
            self.dc_prev_out = y;
            self.partial.push(y);
            if self.partial.len() == FRAME_SAMPLES {
                let level = level_dbfs(&self.partial);
                self.partial.clear();
                events.extend(self.frame_done(level));
            }
        }
        events
    }

    /// Whether the detector is inside speech.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Forgets the current speech (the caller closed the utterance); the noise floor is kept and
    /// the next speech needs a fresh onset.
    pub fn reset_speech(&mut self) {
        self.in_speech = false;
        self.onset.clear();
        self.not_before = self.frame;
    }

    fn frame_done(&mut self, level: f32) -> Option<VadEvent> {
        let f = self.frame;
        self.frame += 1;
        self.levels.push_back(level);
        if self.levels.len() > FLOOR_WINDOW {
            self.levels.pop_front();
        }
        let floor = self.levels.iter().copied().fold(f32::INFINITY, f32::min);
        let start_threshold = (floor + self.threshold_db).max(self.min_level_dbfs);
        let hold_threshold = start_threshold - HYSTERESIS_DB;
        if self.in_speech {
            if level > hold_threshold {
                self.last_speech_frame = f;
            } else if f - self.last_speech_frame >= self.endpoint_frames {
                self.in_speech = false;
                self.not_before = f + 1;
                return Some(VadEvent::SpeechEnded {
                    at_seconds: (self.last_speech_frame + 1) as f64 * FRAME_SECONDS,
                });
            }
            return None;
        }
        self.onset.push_back(level > start_threshold);
        if self.onset.len() > 2 * self.min_speech_frames {
            self.onset.pop_front();
        }
        if f < YOUNG_FRAMES {
            // The floor had nothing quiet to learn from before; judge the window again.
            let oldest = self.frame - self.levels.len() as u64;
            let skip = self.levels.len() - self.onset.len();
            for (i, flag) in self.onset.iter_mut().enumerate() {
                let frame = oldest + (skip + i) as u64;
                *flag = frame >= self.not_before && self.levels[skip + i] > start_threshold;
            }
        }
        if self.onset.iter().filter(|&&s| s).count() < self.min_speech_frames {
            return None;
        }
        let first_in_window = f + 1 - self.onset.len() as u64;
        let first_speech = first_in_window + self.onset.iter().position(|&s| s).unwrap_or(0) as u64;
        let last_speech = first_in_window + self.onset.iter().rposition(|&s| s).unwrap_or(0) as u64;
        let start = self.walk_back(first_speech, hold_threshold);
        self.onset.clear();
        self.in_speech = true;
        self.last_speech_frame = last_speech;
        Some(VadEvent::SpeechStarted {
            at_seconds: start as f64 * FRAME_SECONDS,
        })
    }

    /// Extends an onset back over frames that are speech against the current floor (they were
    /// judged against a floor that had not settled yet, e.g. at the start of a stream).
    fn walk_back(&self, mut start: u64, threshold: f32) -> u64 {
        let oldest = self.frame - self.levels.len() as u64;
        let limit = start
            .saturating_sub(MAX_LOOKBACK as u64)
            .max(oldest)
            .max(self.not_before);
        while start > limit && self.levels[(start - 1 - oldest) as usize] > threshold {
            start -= 1;
        }
        start
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SR: f64 = WHISPER_SAMPLE_RATE as f64;

    pub(crate) fn silence(seconds: f64) -> Vec<f32> {
        vec![0.0; (seconds * SR) as usize]
    }

    /// A 220 Hz tone of peak `amplitude`.
    pub(crate) fn tone(seconds: f64, amplitude: f32) -> Vec<f32> {
        (0..(seconds * SR) as usize)
            .map(|i| amplitude * (2.0 * std::f64::consts::PI * 220.0 * i as f64 / SR).sin() as f32)
            .collect()
    }

    /// Uniform white noise of RMS `rms`, deterministic (xorshift).
    pub(crate) fn noise(seconds: f64, rms: f32, seed: u64) -> Vec<f32> {
        let mut state = seed.max(1);
        let peak = rms * 3f32.sqrt();
        (0..(seconds * SR) as usize)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                peak * ((state >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0)
            })
            .collect()
    }

    pub(crate) fn mix(a: &mut [f32], b: &[f32], at_seconds: f64) {
        let at = (at_seconds * SR) as usize;
        for (x, y) in a[at..].iter_mut().zip(b) {
            *x += y;
        }
    }

    fn run(signal: &[f32]) -> Vec<VadEvent> {
        EnergyVad::new(&VadConfig::default()).push(signal)
    }

    fn starts_and_ends(events: &[VadEvent]) -> (Vec<f64>, Vec<f64>) {
        let mut starts = Vec::new();
        let mut ends = Vec::new();
        for e in events {
            match *e {
                VadEvent::SpeechStarted { at_seconds } => starts.push(at_seconds),
                VadEvent::SpeechEnded { at_seconds } => ends.push(at_seconds),
            }
        }
        (starts, ends)
    }

    #[test]
    fn silence_and_steady_noise_are_never_speech() {
        assert!(run(&silence(5.0)).is_empty());
        for (rms, seed) in [(0.0005, 1), (0.003, 2), (0.03, 3), (0.2, 4)] {
            let events = run(&noise(6.0, rms, seed));
            assert!(events.is_empty(), "noise at rms {rms}: {events:?}");
        }
    }

    #[test]
    fn a_tone_burst_starts_and_ends_speech_at_its_edges() {
        let mut signal = silence(4.0);
        mix(&mut signal, &tone(1.0, 0.3), 1.0);
        let (starts, ends) = starts_and_ends(&run(&signal));
        assert_eq!(starts.len(), 1);
        assert_eq!(ends.len(), 1);
        assert!((starts[0] - 1.0).abs() <= 0.03, "start {}", starts[0]);
        assert!((ends[0] - 2.0).abs() <= 0.03, "end {}", ends[0]);
    }

    #[test]
    fn speech_ends_only_after_the_endpointing_silence() {
        let mut signal = silence(2.0);
        mix(&mut signal, &tone(0.5, 0.3), 0.5);
        let mut vad = EnergyVad::new(&VadConfig::default());
        // Speech ends at 1.0 s; 0.7 s later it has not been reported yet, 0.9 s later it has.
        let cut = (1.7 * SR) as usize;
        let early = vad.push(&signal[..cut]);
        assert_eq!(starts_and_ends(&early).1.len(), 0, "{early:?}");
        let late = vad.push(&signal[cut..(1.9 * SR) as usize]);
        assert_eq!(starts_and_ends(&late).1.len(), 1, "{late:?}");
    }

    #[test]
    fn bursts_in_background_noise_are_found() {
        let mut signal = noise(6.0, 0.01, 7);
        mix(&mut signal, &tone(1.0, 0.2), 2.0);
        let (starts, ends) = starts_and_ends(&run(&signal));
        assert_eq!(starts.len(), 1);
        assert_eq!(ends.len(), 1);
        assert!((starts[0] - 2.0).abs() <= 0.06 && (ends[0] - 3.0).abs() <= 0.06);
    }

    #[test]
    fn a_click_is_not_speech() {
        let mut signal = silence(2.0);
        mix(&mut signal, &tone(0.06, 0.5), 1.0);
        assert!(run(&signal).is_empty());
    }

    #[test]
    fn a_short_pause_stays_in_one_utterance_and_a_long_one_splits() {
        let mut signal = silence(6.0);
        mix(&mut signal, &tone(0.6, 0.3), 0.5);
        mix(&mut signal, &tone(0.6, 0.3), 1.6); // 0.5 s pause
        mix(&mut signal, &tone(0.6, 0.3), 3.4); // 1.2 s pause
        let (starts, ends) = starts_and_ends(&run(&signal));
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert_eq!(ends.len(), 2);
        assert!((ends[0] - 2.2).abs() <= 0.03 && (starts[1] - 3.4).abs() <= 0.03);
    }

    #[test]
    fn a_step_in_noise_is_absorbed_within_the_floor_window() {
        let mut signal = silence(10.0);
        mix(&mut signal, &noise(8.0, 0.05, 9), 2.0);
        let (starts, ends) = starts_and_ends(&run(&signal));
        assert_eq!((starts.len(), ends.len()), (1, 1));
        assert!(
            ends[0] <= 2.0 + 3.1,
            "noise held as speech until {}",
            ends[0]
        );
    }

    #[test]
    fn a_stream_that_opens_mid_speech_keeps_its_start() {
        // Loud from the first sample: the floor settles in the pause, then the onset is walked
        // back to the stream start.
        let mut signal = tone(0.6, 0.3);
        signal.extend(silence(0.3));
        signal.extend(tone(0.6, 0.3));
        signal.extend(silence(1.5));
        let (starts, _) = starts_and_ends(&run(&signal));
        assert_eq!(starts, vec![0.0]);
    }

    #[test]
    fn chunking_does_not_change_events() {
        let mut signal = noise(5.0, 0.002, 11);
        mix(&mut signal, &tone(0.8, 0.3), 1.3);
        let whole = run(&signal);
        let mut vad = EnergyVad::new(&VadConfig::default());
        let chunked: Vec<VadEvent> = signal.chunks(317).flat_map(|c| vad.push(c)).collect();
        assert_eq!(whole, chunked);
        assert_eq!(whole.len(), 2);
    }

    #[test]
    fn reset_needs_a_fresh_onset() {
        let mut vad = EnergyVad::new(&VadConfig::default());
        let mut signal = silence(0.5);
        signal.extend(tone(0.5, 0.3));
        assert_eq!(vad.push(&signal).len(), 1);
        assert!(vad.in_speech());
        vad.reset_speech();
        assert!(!vad.in_speech());
        // Speech continues: it is found again, no earlier than the reset.
        let (starts, _) = starts_and_ends(&vad.push(&tone(0.5, 0.3)));
        assert_eq!(starts.len(), 1);
        assert!(starts[0] >= 0.99 - 1e-9, "{starts:?}");
    }
}
