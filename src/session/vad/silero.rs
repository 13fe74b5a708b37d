//! The Silero detector: Silero VAD's per-chunk speech probability, turned into speech events.
//!
//! Every 32 ms chunk gets a probability. Speech starts once `min_speech_ms` of chunks at or above
//! `speech_probability` fall within twice that span (the start is the first of them). While in
//! speech, silence begins at the first chunk below `speech_probability − 0.15` and is cancelled by
//! any chunk back at or above `speech_probability` (silero-vad's own hysteresis, from its
//! `VADIterator`); speech ends once silence has lasted `endpoint_ms`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{VadConfig, VadEvent};
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::model::silero::{CHUNK_SAMPLES, SileroState, SileroVad};

const CHUNK_SECONDS: f64 = CHUNK_SAMPLES as f64 / WHISPER_SAMPLE_RATE as f64;
/// How far below the start threshold a chunk must fall to begin the endpointing silence.
const HYSTERESIS: f32 = 0.15;

/// The Silero detector's state for one stream: the network's recurrent state, the samples of
/// the chunk not yet complete, and the gate turning probabilities into events.
#[derive(Debug, Clone)]
pub struct SileroStream {
    model: Arc<SileroVad>,
    state: SileroState,
    partial: Vec<f32>,
    gate: ProbabilityGate,
}

impl SileroStream {
    /// A detector with `config`'s thresholds and timings, running `model`.
    pub fn new(model: Arc<SileroVad>, config: &VadConfig) -> Self {
        Self {
            model,
            state: SileroState::new(),
            partial: Vec::with_capacity(2 * CHUNK_SAMPLES),
            gate: ProbabilityGate::new(config),
        }
    }

    /// Feeds samples (any chunking gives the same events) and returns the events they complete.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        self.partial.extend_from_slice(samples);
        let whole = self.partial.len() / CHUNK_SAMPLES * CHUNK_SAMPLES;
        if whole == 0 {
            return Vec::new();
        }
        let probabilities = self
            .model
            .probabilities(&self.partial[..whole], &mut self.state)
            .unwrap_or_else(|error| {
                // Only an allocation failure gets here (the network runs on the CPU); judging the
                // audio silent keeps the stream alive without inventing speech.
                tracing::error!(%error, "Silero VAD failed; audio judged silent");
                vec![0.0; whole / CHUNK_SAMPLES]
            });
        self.partial.drain(..whole);
        probabilities
            .into_iter()
            .filter_map(|p| self.gate.chunk_done(p))
            .collect()
    }

    /// Whether the detector is inside speech.
    pub fn in_speech(&self) -> bool {
        self.gate.in_speech
    }

    /// Forgets the current speech (the caller closed the utterance); the network's state is
    /// kept and the next speech needs a fresh onset.
    pub fn reset_speech(&mut self) {
        self.gate.reset_speech();
    }
}

/// Speech events from per-chunk probabilities; no model, so its rules are tested alone.
#[derive(Debug, Clone)]
struct ProbabilityGate {
    threshold: f32,
    min_speech_chunks: usize,
    endpoint_chunks: u64,
    /// Index of the next chunk to judge.
    chunk: u64,
    /// Speech flags of the last `2 * min_speech_chunks` chunks while not in speech.
    onset: VecDeque<bool>,
    in_speech: bool,
    /// While in speech: the first chunk of the current run of silence.
    silence_since: Option<u64>,
    /// Onsets are never placed before this chunk (the previous speech's end, or a reset).
    not_before: u64,
}

impl ProbabilityGate {
    fn new(config: &VadConfig) -> Self {
        let chunks = |ms: u32| (f64::from(ms) / 1000.0 / CHUNK_SECONDS).ceil() as u64;
        Self {
            threshold: config.speech_probability,
            min_speech_chunks: chunks(config.min_speech_ms).max(1) as usize,
            endpoint_chunks: chunks(config.endpoint_ms).max(1),
            chunk: 0,
            onset: VecDeque::new(),
            in_speech: false,
            silence_since: None,
            not_before: 0,
        }
    }

    fn reset_speech(&mut self) {
        self.in_speech = false;
        self.silence_since = None;
        self.onset.clear();
        self.not_before = self.chunk;
    }

    fn chunk_done(&mut self, probability: f32) -> Option<VadEvent> {
        let c = self.chunk;
        self.chunk += 1;
        if self.in_speech {
            if probability >= self.threshold {
                self.silence_since = None;
            } else if probability < self.threshold - HYSTERESIS && self.silence_since.is_none() {
                self.silence_since = Some(c);
            }
            let silence = self.silence_since?;
            if c + 1 - silence < self.endpoint_chunks {
                return None;
            }
            self.in_speech = false;
            self.silence_since = None;
            self.not_before = c + 1;
            return Some(VadEvent::SpeechEnded {
                at_seconds: silence as f64 * CHUNK_SECONDS,
            });
        }
        self.onset.push_back(probability >= self.threshold);
        if self.onset.len() > 2 * self.min_speech_chunks {
            self.onset.pop_front();
        }
        if self.onset.iter().filter(|&&s| s).count() < self.min_speech_chunks {
            return None;
        }
        let first_in_window = c + 1 - self.onset.len() as u64;
        let first_speech = first_in_window + self.onset.iter().position(|&s| s).unwrap_or(0) as u64;
        self.onset.clear();
        self.in_speech = true;
        Some(VadEvent::SpeechStarted {
            at_seconds: first_speech.max(self.not_before) as f64 * CHUNK_SECONDS,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events for a run of probabilities under the default config (min speech 150 ms = 5 chunks
    /// within 10, endpoint 800 ms = 25 chunks), as (start, end) chunk indices.
    fn events(probabilities: &[f32]) -> Vec<VadEvent> {
        let mut gate = ProbabilityGate::new(&VadConfig::default());
        probabilities
            .iter()
            .filter_map(|&p| gate.chunk_done(p))
            .collect()
    }

    fn run(parts: &[(f32, usize)]) -> Vec<f32> {
        parts
            .iter()
            .flat_map(|&(p, n)| std::iter::repeat_n(p, n))
            .collect()
    }

    fn at(chunk: u64) -> f64 {
        chunk as f64 * CHUNK_SECONDS
    }

    #[test]
    fn speech_starts_at_its_first_chunk_and_ends_after_the_endpointing_silence() {
        let probs = run(&[(0.02, 20), (0.9, 30), (0.05, 40)]);
        assert_eq!(
            events(&probs),
            vec![
                VadEvent::SpeechStarted { at_seconds: at(20) },
                VadEvent::SpeechEnded { at_seconds: at(50) },
            ]
        );
        // 24 silent chunks are not yet an endpoint.
        assert_eq!(events(&run(&[(0.9, 10), (0.05, 24)])).len(), 1);
    }

    #[test]
    fn a_blip_shorter_than_min_speech_is_not_speech() {
        assert!(events(&run(&[(0.02, 10), (0.95, 4), (0.02, 40)])).is_empty());
        // Five speech chunks scattered within ten do start speech, at the first of them.
        let scattered = [0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1];
        let mut probs = vec![0.0; 3];
        probs.extend(scattered);
        assert_eq!(
            events(&probs),
            vec![VadEvent::SpeechStarted { at_seconds: at(3) }]
        );
    }

    #[test]
    fn hysteresis_holds_speech_between_the_two_thresholds_and_a_return_cancels_silence() {
        // 0.4 is below the start threshold but above 0.35: it never begins silence.
        assert_eq!(events(&run(&[(0.9, 10), (0.4, 60)])).len(), 1);
        // Silence for 20 chunks, speech again, silence for 25: one utterance, ended late.
        let probs = run(&[(0.9, 10), (0.1, 20), (0.9, 3), (0.1, 25)]);
        assert_eq!(
            events(&probs),
            vec![
                VadEvent::SpeechStarted { at_seconds: at(0) },
                VadEvent::SpeechEnded { at_seconds: at(33) },
            ]
        );
    }

    #[test]
    fn after_a_reset_the_next_onset_is_not_placed_before_it() {
        let mut gate = ProbabilityGate::new(&VadConfig::default());
        for _ in 0..10 {
            gate.chunk_done(0.9);
        }
        assert!(gate.in_speech);
        gate.reset_speech();
        assert!(!gate.in_speech);
        let restarted: Vec<VadEvent> = (0..10).filter_map(|_| gate.chunk_done(0.9)).collect();
        assert_eq!(
            restarted,
            vec![VadEvent::SpeechStarted { at_seconds: at(10) }]
        );
    }
}
