//! Cutting a long recording into model-sized chunks at its pauses, so that the chunks can be
//! transcribed side by side in one batch instead of one 30 s window after another (the idea of
//! faster-whisper's batched pipeline).
//!
//! The speech regions come from a detector; this module only pads, splits and groups them, so
//! it is pure and tested on plain numbers.

use super::{Splice, WHISPER_SAMPLE_RATE, level_dbfs};

const SR: f64 = WHISPER_SAMPLE_RATE as f64;

/// The longest chunk: one Whisper window.
pub const MAX_CHUNK_SECONDS: f64 = 30.0;

/// Frames the quietest cut point is looked for in, when speech runs on past a chunk's length
/// without a pause the detector saw.
const CUT_FRAME_SECONDS: f64 = 0.1;
const CUT_HOP_SECONDS: f64 = 0.02;

/// A recording cut into chunks: the spans (seconds, in order, none overlapping) that each chunk
/// keeps. The audio between a chunk's spans (silence of twice the padding or more) is left out.
#[derive(Debug, Clone, PartialEq)]
pub struct ChunkPlan {
    chunks: Vec<Vec<(f64, f64)>>,
    total_seconds: f64,
}

impl ChunkPlan {
    /// Pads each speech region by `pad` on both sides (a pause shorter than twice the padding is
    /// shared at its middle, so no audio lands in two chunks), cuts regions longer than
    /// `max_seconds` at their quietest point, and groups consecutive regions into chunks of at
    /// most `max_seconds` of kept audio.
    pub fn new(samples: &[f32], regions: &[(f64, f64)], pad: f64, max_seconds: f64) -> Self {
        let total_seconds = samples.len() as f64 / SR;
        let padded = pad_regions(regions, pad, total_seconds);
        let spans: Vec<(f64, f64)> = padded
            .into_iter()
            .flat_map(|span| split_long(samples, span, max_seconds))
            .collect();
        Self {
            chunks: group(&spans, max_seconds),
            total_seconds,
        }
    }

    /// Chunks in the plan (none when there was no speech).
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// Whether there is no chunk at all (no speech).
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The spans each chunk keeps, in seconds of the recording.
    pub fn spans(&self) -> &[Vec<(f64, f64)>] {
        &self.chunks
    }

    /// Seconds of the recording the plan was made for.
    pub fn total_seconds(&self) -> f64 {
        self.total_seconds
    }

    /// Seconds of audio all chunks keep together.
    pub fn kept_seconds(&self) -> f64 {
        self.chunks.iter().flatten().map(|(a, b)| b - a).sum()
    }

    /// Chunk `index`'s audio, cut from `samples` (the recording the plan was made for), and the
    /// map from its times back to the recording's.
    pub fn chunk(&self, samples: &[f32], index: usize) -> (Vec<f32>, Splice) {
        Splice::keep(samples, &self.chunks[index], 0.0)
    }
}

/// Widens each region by `pad` within the recording; where two widened regions would overlap,
/// the pause between them is split at its middle instead.
fn pad_regions(regions: &[(f64, f64)], pad: f64, total: f64) -> Vec<(f64, f64)> {
    let half_pause =
        |earlier: (f64, f64), later: (f64, f64)| ((later.0 - earlier.1) / 2.0).max(0.0);
    let mut padded: Vec<(f64, f64)> = Vec::with_capacity(regions.len());
    for (i, &(start, end)) in regions.iter().enumerate() {
        let lead = match i {
            0 => pad,
            _ => pad.min(half_pause(regions[i - 1], regions[i])),
        };
        let trail = regions
            .get(i + 1)
            .map_or(pad, |&next| pad.min(half_pause(regions[i], next)));
        let (from, to) = ((start - lead).max(0.0), (end + trail).min(total));
        if to > from {
            padded.push((from, to));
        }
    }
    padded
}

/// `span`, cut into pieces of at most `max_seconds`, each cut at the quietest
/// [`CUT_FRAME_SECONDS`] in the second half of the piece it ends (the likeliest breath or word
/// gap the detector did not call a pause).
fn split_long(samples: &[f32], span: (f64, f64), max_seconds: f64) -> Vec<(f64, f64)> {
    let (mut start, end) = span;
    let mut pieces = Vec::new();
    while end - start > max_seconds {
        let cut = quietest(samples, start + max_seconds / 2.0, start + max_seconds);
        pieces.push((start, cut));
        start = cut;
    }
    pieces.push((start, end));
    pieces
}

/// The middle of the quietest frame within `from..to` seconds (later frames win ties), never
/// past `to`.
fn quietest(samples: &[f32], from: f64, to: f64) -> f64 {
    let frame = (CUT_FRAME_SECONDS * SR) as usize;
    let hop = (CUT_HOP_SECONDS * SR) as usize;
    let first = (from * SR) as usize;
    let last = ((to * SR) as usize).saturating_sub(frame);
    let mut best = (f32::INFINITY, to);
    let mut at = first;
    while at <= last && at + frame <= samples.len() {
        let level = level_dbfs(&samples[at..at + frame]);
        if level <= best.0 {
            best = (level, (at + frame / 2) as f64 / SR);
        }
        at += hop;
    }
    best.1.min(to)
}

/// Consecutive spans gathered greedily into chunks of at most `max_seconds` of audio.
fn group(spans: &[(f64, f64)], max_seconds: f64) -> Vec<Vec<(f64, f64)>> {
    let mut chunks: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut length = 0.0;
    for &span in spans {
        let seconds = span.1 - span.0;
        match chunks.last_mut() {
            Some(chunk) if length + seconds <= max_seconds + 1e-6 => {
                chunk.push(span);
                length += seconds;
            }
            _ => {
                chunks.push(vec![span]);
                length = seconds;
            }
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(seconds: f64) -> Vec<f32> {
        vec![0.0; (seconds * SR) as usize]
    }

    /// A loud 200 Hz hum with a soft dip of `dip_seconds` at each of `dips` (seconds).
    fn hum_with_dips(seconds: f64, dips: &[f64], dip_seconds: f64) -> Vec<f32> {
        (0..(seconds * SR) as usize)
            .map(|i| {
                let t = i as f64 / SR;
                let soft = dips.iter().any(|&d| (t - d).abs() < dip_seconds / 2.0);
                let amplitude = if soft { 0.01 } else { 0.3 };
                amplitude * (std::f64::consts::TAU * 200.0 * t).sin() as f32
            })
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn padding_shares_short_pauses_and_stays_inside_the_recording() {
        // 0.3 s pause between the first two (shared: 0.15 s each), 5 s before the third.
        let padded = pad_regions(&[(0.2, 2.0), (2.3, 4.0), (9.0, 9.9)], 0.4, 10.0);
        assert_eq!(padded.len(), 3);
        assert!(
            close(padded[0].0, 0.0) && close(padded[0].1, 2.15),
            "{padded:?}"
        );
        assert!(
            close(padded[1].0, 2.15) && close(padded[1].1, 4.4),
            "{padded:?}"
        );
        assert!(
            close(padded[2].0, 8.6) && close(padded[2].1, 10.0),
            "{padded:?}"
        );
    }

    #[test]
    fn regions_are_grouped_up_to_the_chunk_length_without_splitting_any() {
        // Ten 5.2 s regions with 2 s pauses: padded by 0.4 s each is 6 s, five to a 30 s chunk.
        let regions: Vec<(f64, f64)> = (0..10)
            .map(|i| (1.0 + 7.2 * i as f64, 6.2 + 7.2 * i as f64))
            .collect();
        let samples = quiet(75.0);
        let plan = ChunkPlan::new(&samples, &regions, 0.4, MAX_CHUNK_SECONDS);
        assert_eq!(plan.len(), 2, "{plan:?}");
        for chunk in plan.spans() {
            let seconds: f64 = chunk.iter().map(|(a, b)| b - a).sum();
            assert!(seconds <= MAX_CHUNK_SECONDS + 1e-6, "{seconds}");
            assert_eq!(chunk.len(), 5);
        }
        assert!(close(plan.kept_seconds(), 10.0 * 6.0));
        let (audio, splice) = plan.chunk(&samples, 1);
        assert_eq!(audio.len(), (30.0 * SR).round() as usize);
        // The second chunk starts with the sixth region, padded.
        assert!((splice.start_time(0.0) - (1.0 + 7.2 * 5.0 - 0.4)).abs() < 1e-3);
        assert!(close(splice.original_seconds(), 75.0));
    }

    #[test]
    fn speech_without_pauses_is_cut_at_its_quietest_moment() {
        // 70 s of loud hum with soft dips at 22 s and 47 s: cut there, not at 30 s and 60 s.
        let samples = hum_with_dips(70.0, &[22.0, 47.0], 0.2);
        let plan = ChunkPlan::new(&samples, &[(0.0, 70.0)], 0.4, MAX_CHUNK_SECONDS);
        let ends: Vec<f64> = plan.spans().iter().map(|c| c.last().unwrap().1).collect();
        assert_eq!(ends.len(), 3, "{:?}", plan.spans());
        assert!((ends[0] - 22.0).abs() < 0.1, "{ends:?}");
        assert!((ends[1] - 47.0).abs() < 0.1, "{ends:?}");
        assert!(close(ends[2], 70.0));
        // Nothing lost, nothing twice.
        assert!(close(plan.kept_seconds(), 70.0));
    }

    #[test]
    fn even_sound_is_still_cut_within_the_chunk_length() {
        let samples = hum_with_dips(100.0, &[], 0.0);
        let plan = ChunkPlan::new(&samples, &[(0.0, 100.0)], 0.4, MAX_CHUNK_SECONDS);
        assert!(plan.len() >= 4, "{:?}", plan.spans());
        for chunk in plan.spans() {
            let seconds: f64 = chunk.iter().map(|(a, b)| b - a).sum();
            assert!(seconds <= MAX_CHUNK_SECONDS + 1e-6, "{seconds}");
        }
        assert!(close(plan.kept_seconds(), 100.0));
    }

    #[test]
    fn no_speech_makes_no_chunks() {
        let plan = ChunkPlan::new(&quiet(60.0), &[], 0.4, MAX_CHUNK_SECONDS);
        assert!(plan.is_empty());
        assert_eq!(plan.kept_seconds(), 0.0);
    }
}
