//! Band-limited sample-rate conversion of mono signals, whole or arriving in pieces.
//!
//! Whisper only hears 16 kHz, so every other rate goes through rubato's windowed-sinc resampler:
//! linear interpolation would alias everything above 8 kHz back into the speech band. The
//! resampler's fixed offset is cancelled and its tail flushed, so output sample `k` lines up with
//! input time `k / to_rate` and the length is `round(n * to_rate / from_rate)`; timestamps the
//! model produces therefore map straight back onto the caller's audio. Whole buffers and live
//! streams share one stateful resampler, so a stream cut into chunks resamples like the file.

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use super::AudioError;

/// Input frames per rubato call for whole buffers; large enough to amortise call overhead, small
/// enough to stay in cache.
const CHUNK: usize = 1024;

/// Resamples a mono signal from `from_rate` to `to_rate` Hz.
///
/// Equal rates return the input unchanged (bit-exact), so 16 kHz sources skip the filter.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, AudioError> {
    if samples.is_empty() {
        check_rates(from_rate, to_rate)?;
        return Ok(Vec::new());
    }
    let mut resampler = StreamResampler::new(from_rate, to_rate, CHUNK)?;
    let mut out = Vec::with_capacity(output_len(samples.len(), from_rate, to_rate));
    resampler.push(samples, &mut out)?;
    resampler.finish(&mut out)?;
    Ok(out)
}

fn check_rates(from_rate: u32, to_rate: u32) -> Result<(), AudioError> {
    match [from_rate, to_rate].into_iter().find(|&rate| rate == 0) {
        Some(rate) => Err(AudioError::InvalidSampleRate { rate }),
        None => Ok(()),
    }
}

/// The resampler behind both [`resample`] and live streams: input arrives in pieces of any size,
/// and the output is that of resampling the concatenation in one go. With the same `chunk` it is
/// bit-identical; across block sizes only rubato's `f64` phase accumulator rounds differently,
/// which moves samples by a few 1e-8.
///
/// Input is handed to rubato in fixed `chunk`-frame blocks (rubato's history buffer assumes a
/// constant block size), so up to `chunk - 1` frames wait in `pending`, on top of the filter's own
/// look-ahead of `sinc_len / 2` input frames. Alignment padding goes in first and the first `skip`
/// output frames are dropped, so emitted frame `k` always sits at input time `k / to_rate`: the
/// latency is held back inside, never added to the output timeline.
pub(super) struct StreamResampler {
    /// `None` when the rates are equal: samples pass through untouched.
    sinc: Option<SincFixedIn<f32>>,
    from_rate: u32,
    to_rate: u32,
    chunk: usize,
    pending: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
    skip: usize,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A resampler fed in blocks of `chunk` input frames (more when the alignment padding alone
    /// would fill a block, which only happens far above 384 kHz).
    pub(super) fn new(from_rate: u32, to_rate: u32, chunk: usize) -> Result<Self, AudioError> {
        check_rates(from_rate, to_rate)?;
        let (pad, skip) = alignment(from_rate, to_rate);
        let chunk = chunk.max(pad + 1);
        let (sinc, pad, skip) = if from_rate == to_rate {
            (None, 0, 0)
        } else {
            (Some(sinc_resampler(from_rate, to_rate, chunk)?), pad, skip)
        };
        let out_buf = sinc
            .as_ref()
            .map_or_else(Vec::new, |s| s.output_buffer_allocate(true));
        Ok(Self {
            sinc,
            from_rate,
            to_rate,
            chunk,
            pending: vec![0.0; pad],
            out_buf,
            skip,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Resamples `samples`, appending every output frame that no longer depends on later input.
    pub(super) fn push(&mut self, samples: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.frames_in += samples.len() as u64;
        if self.sinc.is_none() {
            self.frames_out += samples.len() as u64;
            out.extend_from_slice(samples);
            return Ok(());
        }
        let mut rest = samples;
        if !self.pending.is_empty() {
            let take = rest.len().min(self.chunk - self.pending.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() < self.chunk {
                return Ok(());
            }
            let block = std::mem::take(&mut self.pending);
            self.process(&block, out)?;
            self.pending = block;
            self.pending.clear();
        }
        let mut blocks = rest.chunks_exact(self.chunk);
        for block in &mut blocks {
            self.process(block, out)?;
        }
        self.pending.extend_from_slice(blocks.remainder());
        Ok(())
    }

    /// Flushes the filter: the pending frames and then zeros go through until the output reaches
    /// `round(frames_in * to_rate / from_rate)` frames in all.
    pub(super) fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        if self.sinc.is_none() || self.frames_in == 0 {
            return Ok(());
        }
        let wanted = output_len_u64(self.frames_in, self.from_rate, self.to_rate);
        let start = out.len();
        // The pending frames go first (zero-padded), then all-zero blocks flush the filter.
        let mut block = std::mem::take(&mut self.pending);
        while self.frames_out < wanted {
            self.process(&block, out)?;
            block.clear();
        }
        // The last block overshoots; only frames emitted by this call can be taken back.
        let excess = (self.frames_out - wanted) as usize;
        out.truncate(start.max(out.len() - excess));
        self.frames_out = wanted;
        Ok(())
    }

    /// Runs one block (a short one is zero-padded to `chunk`) and emits what it produced, minus
    /// the alignment frames still to be skipped.
    fn process(&mut self, block: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        let Some(sinc) = self.sinc.as_mut() else {
            return Ok(());
        };
        let (_, n) = if block.len() == self.chunk {
            sinc.process_into_buffer(&[block], &mut self.out_buf, None)?
        } else {
            let input = [block];
            let input = Some(&input[..]).filter(|_| !block.is_empty());
            sinc.process_partial_into_buffer(input, &mut self.out_buf, None)?
        };
        let dropped = n.min(self.skip);
        self.skip -= dropped;
        out.extend_from_slice(&self.out_buf[0][dropped..n]);
        self.frames_out += (n - dropped) as u64;
        Ok(())
    }
}

/// How many zero frames to prepend and output frames to drop so output frame `k` lands on input
/// position `k·from/to`.
///
/// rubato 0.16's `SincFixedIn` already centres its filter: output frame `k` comes from input
/// position `(k + 1)·from/to − 1`. Its `output_delay()` (`sinc_len/2` input frames, in output
/// frames) is the latency before a frame can be emitted, not an offset in the output, so trimming
/// it would cut real audio. The remaining `from/to − 1` offset is fractional; prepending `pad`
/// frames and dropping `skip` moves frame `k` to `(k + skip + 1)·from/to − 1 − pad`, and a short
/// search finds the pair that cancels it to within a few hundredths of a sample for common rates.
fn alignment(from_rate: u32, to_rate: u32) -> (usize, usize) {
    let step = f64::from(from_rate) / f64::from(to_rate);
    (0..32usize)
        .map(|skip| {
            let offset = (skip + 1) as f64 * step - 1.0;
            let pad = offset.round().max(0.0);
            ((offset - pad).abs(), pad as usize, skip)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map_or((0, 0), |(_, pad, skip)| (pad, skip))
}

/// `round(n * to / from)`, in integers so long inputs do not drift.
pub(super) fn output_len(n: usize, from_rate: u32, to_rate: u32) -> usize {
    output_len_u64(n as u64, from_rate, to_rate) as usize
}

fn output_len_u64(n: u64, from_rate: u32, to_rate: u32) -> u64 {
    let (from, to) = (u128::from(from_rate), u128::from(to_rate));
    ((u128::from(n) * to + from / 2) / from) as u64
}

/// rubato's recommended high-quality settings: a 256-tap BlackmanHarris² sinc, 256× oversampled
/// so linear interpolation between sinc points (half the cost of cubic) stays far below 16-bit
/// noise; the 0.95 cutoff keeps the band up to 7.6 kHz at 16 kHz output.
fn sinc_resampler(
    from_rate: u32,
    to_rate: u32,
    chunk: usize,
) -> Result<SincFixedIn<f32>, AudioError> {
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Linear,
        window: WindowFunction::BlackmanHarris2,
    };
    let ratio = f64::from(to_rate) / f64::from(from_rate);
    Ok(SincFixedIn::new(ratio, 1.0, params, chunk, 1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::TAU;

    fn sine(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (TAU * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Largest deviation from the ideal sine at the output rate, ignoring the edges where the
    /// signal starts and stops abruptly (the band-limited version legitimately rings there).
    fn max_interior_error(out: &[f32], freq: f32, rate: u32) -> f32 {
        let ideal = sine(freq, rate, out.len() as f32 / rate as f32 + 1.0);
        let edge = rate as usize / 20;
        (edge..out.len() - edge)
            .map(|i| (out[i] - ideal[i]).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn downsampling_preserves_frequency_phase_and_length() {
        let input = sine(440.0, 44_100, 1.5);
        let out = resample(&input, 44_100, 16_000).unwrap();
        assert_eq!(out.len(), 24_000);
        // A half-sample misalignment would show up as an error of ~0.09 at 440 Hz.
        let err = max_interior_error(&out, 440.0, 16_000);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn upsampling_preserves_frequency_phase_and_length() {
        let input = sine(1_000.0, 8_000, 1.0);
        let out = resample(&input, 8_000, 16_000).unwrap();
        assert_eq!(out.len(), 16_000);
        let err = max_interior_error(&out, 1_000.0, 16_000);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn content_above_the_new_nyquist_is_removed() {
        let out = resample(&sine(10_000.0, 48_000, 1.0), 48_000, 16_000).unwrap();
        let rms = (out.iter().map(|x| x * x).sum::<f32>() / out.len() as f32).sqrt();
        assert!(rms < 0.01, "aliased rms {rms}");
    }

    #[test]
    fn odd_lengths_round_to_nearest() {
        let out = resample(&vec![0.0; 1_001], 44_100, 16_000).unwrap();
        assert_eq!(out.len(), output_len(1_001, 44_100, 16_000));
        assert_eq!(out.len(), 363); // 1001 * 16000 / 44100 = 363.17
    }

    #[test]
    fn same_rate_is_a_bit_exact_copy() {
        let input = sine(300.0, 16_000, 0.1);
        assert_eq!(resample(&input, 16_000, 16_000).unwrap(), input);
    }

    #[test]
    fn alignment_cancels_rubatos_offset() {
        assert_eq!(alignment(48_000, 16_000), (2, 0)); // offset exactly 2 input frames
        assert_eq!(alignment(8_000, 16_000), (0, 1)); // offset exactly one output frame
        let (pad, skip) = alignment(44_100, 16_000);
        let residual = (skip + 1) as f64 * 44_100.0 / 16_000.0 - 1.0 - pad as f64;
        assert!(residual.abs() < 0.05, "residual {residual} input frames");
    }

    #[test]
    fn pieces_of_any_size_resample_like_the_whole_buffer() {
        let input = sine(1_234.0, 44_100, 0.5);
        let whole = resample(&input, 44_100, 16_000).unwrap();
        let mut streamed = Vec::new();
        let mut resampler = StreamResampler::new(44_100, 16_000, CHUNK).unwrap();
        let mut rest = &input[..];
        for size in [1, 1_023, 1, 5_000, 0, 77].into_iter().cycle() {
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            resampler.push(piece, &mut streamed).unwrap();
            rest = tail;
            if rest.is_empty() {
                break;
            }
        }
        resampler.finish(&mut streamed).unwrap();
        assert_eq!(streamed, whole);
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert!(matches!(
            resample(&[0.0], 0, 16_000),
            Err(AudioError::InvalidSampleRate { rate: 0 })
        ));
    }
}
