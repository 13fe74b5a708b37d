//! Voice activity detection on 16 kHz mono: which audio is speech, one detector per stream.
//!
//! Two detectors produce the same [`VadEvent`]s: [`SileroStream`] (Silero VAD, a small network
//! that tells speech from noise, music and tones) and [`EnergyVad`] (a level threshold over a
//! tracked noise floor; no model, the fallback). [`VadConfig::detector`] picks one; the
//! streaming policy, the Realtime `server_vad` turns and the whole-file speech gate all go
//! through [`Vad`], so they always agree on what speech is.

mod energy;
mod silero;

use std::sync::Arc;

pub use energy::EnergyVad;
pub use silero::SileroStream;

use super::VadConfig;
use crate::audio::WHISPER_SAMPLE_RATE;
use crate::model::silero::SileroVad;

/// A change in speech activity, at a time in seconds from the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VadEvent {
    /// Speech began at `at_seconds` (without the pre-roll).
    SpeechStarted {
        /// Start of the first speech frame.
        at_seconds: f64,
    },
    /// Speech ended at `at_seconds`, reported once the endpointing silence has passed.
    SpeechEnded {
        /// End of the last speech frame.
        at_seconds: f64,
    },
}

/// Which detector judges speech; the Silero one carries its loaded network, shared by every
/// stream.
#[derive(Clone, Default)]
pub enum Detector {
    /// Level above the noise floor ([`EnergyVad`]).
    #[default]
    Energy,
    /// Silero VAD ([`SileroStream`]).
    Silero(Arc<SileroVad>),
}

impl Detector {
    /// The name `--vad` and the config use: `energy` or `silero`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Energy => "energy",
            Self::Silero(_) => "silero",
        }
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for Detector {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Energy, Self::Energy) => true,
            (Self::Silero(a), Self::Silero(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// One stream's detector.
#[derive(Debug, Clone)]
pub enum Vad {
    /// The energy detector.
    Energy(EnergyVad),
    /// The Silero detector (boxed: its state is several times the energy detector's).
    Silero(Box<SileroStream>),
}

impl Vad {
    /// The detector `config` selects, with its thresholds and timings.
    pub fn new(config: &VadConfig) -> Self {
        match &config.detector {
            Detector::Energy => Self::Energy(EnergyVad::new(config)),
            Detector::Silero(model) => {
                Self::Silero(Box::new(SileroStream::new(model.clone(), config)))
            }
        }
    }

    /// Feeds samples (any chunking gives the same events) and returns the events they complete.
    pub fn push(&mut self, samples: &[f32]) -> Vec<VadEvent> {
        match self {
            Self::Energy(vad) => vad.push(samples),
            Self::Silero(vad) => vad.push(samples),
        }
    }

    /// Whether the detector is inside speech.
    pub fn in_speech(&self) -> bool {
        match self {
            Self::Energy(vad) => vad.in_speech(),
            Self::Silero(vad) => vad.in_speech(),
        }
    }

    /// Forgets the current speech (the caller closed the utterance); the next speech needs a
    /// fresh onset.
    pub fn reset_speech(&mut self) {
        match self {
            Self::Energy(vad) => vad.reset_speech(),
            Self::Silero(vad) => vad.reset_speech(),
        }
    }
}

/// The speech in a whole recording by the configured detector, as (start, end) seconds in
/// order; speech still going at the end runs to it. None at all is the whole-file gate that
/// keeps Whisper from inventing text ("you", "Thank you.") on silence, noise, a tone or a click.
pub fn speech_regions(samples: &[f32], config: &VadConfig) -> Vec<(f64, f64)> {
    let mut vad = Vad::new(config);
    let events = samples
        .chunks(WHISPER_SAMPLE_RATE as usize)
        .flat_map(|piece| vad.push(piece));
    let total = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
    regions(events, total)
}

/// Pairs each start with the end after it; an open start ends at `total`.
pub fn regions(events: impl IntoIterator<Item = VadEvent>, total: f64) -> Vec<(f64, f64)> {
    let mut spans = Vec::new();
    let mut open = None;
    for event in events {
        match event {
            VadEvent::SpeechStarted { at_seconds } => open = Some(at_seconds),
            VadEvent::SpeechEnded { at_seconds } => {
                if let Some(start) = open.take() {
                    spans.push((start, at_seconds));
                }
            }
        }
    }
    spans.extend(open.map(|start| (start, total)));
    spans
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::energy::tests::{noise, silence, tone};
    use super::*;

    #[test]
    fn regions_pair_starts_with_ends_and_close_at_the_end_of_audio() {
        let events = [
            VadEvent::SpeechStarted { at_seconds: 0.5 },
            VadEvent::SpeechEnded { at_seconds: 1.7 },
            VadEvent::SpeechStarted { at_seconds: 3.0 },
        ];
        assert_eq!(regions(events, 5.0), vec![(0.5, 1.7), (3.0, 5.0)]);
    }

    #[test]
    fn energy_regions_of_two_bursts() {
        let mut signal = silence(8.0);
        energy::tests::mix(&mut signal, &tone(1.0, 0.3), 1.0);
        energy::tests::mix(&mut signal, &tone(1.0, 0.3), 5.0);
        let found = speech_regions(&signal, &VadConfig::default());
        assert_eq!(found.len(), 2, "{found:?}");
        assert!((found[0].0 - 1.0).abs() < 0.05 && (found[1].1 - 6.0).abs() < 0.05);
    }
}
