//! Speech-only audio: the parts of a recording worth transcribing, joined, and the way back
//! from a time in the joined audio to the same instant in the recording.
//!
//! A long recording with long silences costs a window of model time per 30 s of nothing, and
//! Whisper decoding silence is where it invents text. Cutting the silences out (faster-whisper's
//! `vad_filter`) fixes both, but the transcript must still point into the original file: that
//! is what [`Splice`] keeps.

use super::WHISPER_SAMPLE_RATE;

const SR: f64 = WHISPER_SAMPLE_RATE as f64;

/// How joined audio maps back onto the recording it was cut from.
#[derive(Debug, Clone, PartialEq)]
pub struct Splice {
    pieces: Vec<Piece>,
    original_seconds: f64,
}

/// One kept stretch: where it sits in the joined audio and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    joined_start: f64,
    original_start: f64,
    seconds: f64,
}

impl Splice {
    /// Keeps `regions` of `samples` (seconds, in order), each widened by `pad` on both sides
    /// and merged where they then touch, and returns the joined samples with their map.
    pub fn keep(samples: &[f32], regions: &[(f64, f64)], pad: f64) -> (Vec<f32>, Self) {
        let original_seconds = samples.len() as f64 / SR;
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for &(start, end) in regions {
            let from = sample_at(start - pad).min(samples.len());
            let to = sample_at(end + pad).min(samples.len());
            match spans.last_mut() {
                Some(last) if from <= last.1 => last.1 = last.1.max(to),
                _ if to > from => spans.push((from, to)),
                _ => {}
            }
        }
        let mut joined = Vec::with_capacity(spans.iter().map(|(a, b)| b - a).sum());
        let mut pieces = Vec::with_capacity(spans.len());
        for (from, to) in spans {
            pieces.push(Piece {
                joined_start: joined.len() as f64 / SR,
                original_start: from as f64 / SR,
                seconds: (to - from) as f64 / SR,
            });
            joined.extend_from_slice(&samples[from..to]);
        }
        (
            joined,
            Self {
                pieces,
                original_seconds,
            },
        )
    }

    /// Seconds of audio kept.
    pub fn kept_seconds(&self) -> f64 {
        self.pieces.iter().map(|p| p.seconds).sum()
    }

    /// Seconds of the recording the audio was cut from.
    pub fn original_seconds(&self) -> f64 {
        self.original_seconds
    }

    /// The recording's time of a start (of a segment, a word) at `t` in the joined audio. At a
    /// joint the start belongs to the piece after it.
    pub fn start_time(&self, t: f64) -> f64 {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.joined_start <= t)
            .or(self.pieces.first());
        piece.map_or(t, |p| {
            p.original_start + (t - p.joined_start).clamp(0.0, p.seconds)
        })
    }

    /// The recording's time of an end at `t` in the joined audio. At a joint the end belongs to
    /// the piece before it, so nothing is stretched over the silence that was cut.
    pub fn end_time(&self, t: f64) -> f64 {
        let piece = self
            .pieces
            .iter()
            .find(|p| t <= p.joined_start + p.seconds)
            .or(self.pieces.last());
        piece.map_or(t, |p| {
            p.original_start + (t - p.joined_start).clamp(0.0, p.seconds)
        })
    }
}

fn sample_at(seconds: f64) -> usize {
    (seconds * SR).round().max(0.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(seconds: f64) -> Vec<f32> {
        (0..(seconds * SR) as usize).map(|i| i as f32).collect()
    }

    #[test]
    fn padded_regions_merge_and_are_joined_in_order() {
        let samples = ramp(20.0);
        // 2–3 s and 3.5–4 s touch once padded by 0.4 s; 10–11 s stays apart.
        let (joined, splice) = Splice::keep(&samples, &[(2.0, 3.0), (3.5, 4.0), (10.0, 11.0)], 0.4);
        assert_eq!(splice.pieces.len(), 2);
        assert!((splice.kept_seconds() - (2.8 + 1.8)).abs() < 1e-9);
        assert_eq!(joined.len(), (4.6 * SR).round() as usize);
        assert_eq!(joined[0], (1.6 * SR) as f32);
        assert_eq!(joined[(2.8 * SR) as usize], (9.6 * SR) as f32);
        assert_eq!(splice.original_seconds(), 20.0);
    }

    #[test]
    fn times_map_back_and_joints_split_between_start_and_end() {
        let samples = ramp(20.0);
        let (_, splice) = Splice::keep(&samples, &[(2.0, 3.0), (10.0, 11.0)], 0.0);
        assert!((splice.start_time(0.5) - 2.5).abs() < 1e-9);
        assert!((splice.end_time(1.5) - 10.5).abs() < 1e-9);
        // The joint at 1.0 s: a start there is the second piece's, an end the first's.
        assert!((splice.start_time(1.0) - 10.0).abs() < 1e-9);
        assert!((splice.end_time(1.0) - 3.0).abs() < 1e-9);
        // Past the end (Whisper may round up) stays inside the last piece.
        assert!((splice.end_time(2.3) - 11.0).abs() < 1e-9);
    }

    #[test]
    fn regions_are_clipped_to_the_recording() {
        let samples = ramp(3.0);
        let (joined, splice) = Splice::keep(&samples, &[(0.1, 2.9)], 0.4);
        assert_eq!(joined.len(), samples.len());
        assert!((splice.start_time(0.0)).abs() < 1e-9);
    }
}
