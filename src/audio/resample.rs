//! Band-limited sample-rate conversion of whole mono signals.
//!
//! Whisper only hears 16 kHz, so every other rate goes through rubato's windowed-sinc resampler:
//! linear interpolation would alias everything above 8 kHz back into the speech band. The
//! resampler's fixed offset is cancelled and its tail flushed, so output sample `k` lines up with
//! input time `k / to_rate` and the length is `round(n * to_rate / from_rate)`; timestamps the
//! model produces therefore map straight back onto the caller's audio.

use rubato::{
    Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use super::AudioError;

/// Input frames per rubato call; large enough to amortise call overhead, small enough to stay in
/// cache.
const CHUNK: usize = 1024;

/// Resamples a mono signal from `from_rate` to `to_rate` Hz.
///
/// Equal rates return the input unchanged (bit-exact), so 16 kHz sources skip the filter.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Result<Vec<f32>, AudioError> {
    for rate in [from_rate, to_rate] {
        if rate == 0 {
            return Err(AudioError::InvalidSampleRate { rate });
        }
    }
    if from_rate == to_rate || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let (pad, skip) = alignment(from_rate, to_rate);
    let wanted = output_len(samples.len(), from_rate, to_rate);
    let mut input = vec![0.0; pad];
    input.extend_from_slice(samples);
    let mut out = run(
        &mut sinc_resampler(from_rate, to_rate)?,
        &input,
        skip + wanted,
    )?;
    out.drain(..skip);
    out.truncate(wanted);
    Ok(out)
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
fn output_len(n: usize, from_rate: u32, to_rate: u32) -> usize {
    let (from, to) = (u128::from(from_rate), u128::from(to_rate));
    ((n as u128 * to + from / 2) / from) as usize
}

/// rubato's recommended high-quality settings: a 256-tap BlackmanHarris² sinc, 256× oversampled
/// so linear interpolation between sinc points (half the cost of cubic) stays far below 16-bit
/// noise; the 0.95 cutoff keeps the band up to 7.6 kHz at 16 kHz output.
fn sinc_resampler(from_rate: u32, to_rate: u32) -> Result<SincFixedIn<f32>, AudioError> {
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Linear,
        window: WindowFunction::BlackmanHarris2,
    };
    let ratio = f64::from(to_rate) / f64::from(from_rate);
    Ok(SincFixedIn::new(ratio, 1.0, params, CHUNK, 1)?)
}

/// Feeds all input, then zeros, until at least `needed` output frames exist.
fn run(
    resampler: &mut SincFixedIn<f32>,
    samples: &[f32],
    needed: usize,
) -> Result<Vec<f32>, AudioError> {
    let mut buf = resampler.output_buffer_allocate(true);
    let mut out = Vec::with_capacity(needed + buf[0].len());
    let mut chunks = samples.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        let (_, n) = resampler.process_into_buffer(&[chunk], &mut buf, None)?;
        out.extend_from_slice(&buf[0][..n]);
    }
    let mut tail = Some(chunks.remainder()).filter(|rest| !rest.is_empty());
    // The filter still holds the last `sinc_len / 2` input frames; zero-padded calls flush them.
    while out.len() < needed {
        let input = tail.take().map(|rest| [rest]);
        let (_, n) = resampler.process_partial_into_buffer(
            input.as_ref().map(|i| &i[..]),
            &mut buf,
            None,
        )?;
        out.extend_from_slice(&buf[0][..n]);
    }
    Ok(out)
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
    fn zero_rate_is_an_error() {
        assert!(matches!(
            resample(&[0.0], 0, 16_000),
            Err(AudioError::InvalidSampleRate { rate: 0 })
        ));
    }
}
