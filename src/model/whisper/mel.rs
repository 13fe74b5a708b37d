//! Whisper's log-mel spectrogram frontend: the samples of one 30 s window in, the
//! `[n_mels, 3000]` features the encoder reads out.
//!
//! It follows openai/whisper `audio.log_mel_spectrogram` step by step: a periodic Hann window
//! of 400 samples, an STFT with hop 160 and `center=True` reflect padding, squared magnitudes
//! with the last frame dropped, librosa's Slaney mel filter bank (`htk=False`,
//! `norm="slaney"`), `log10(max(mel, 1e-10))`, a floor at `max - 8` and `(x + 4) / 4`. The one
//! deliberate difference is where the maximum is taken: Whisper (and candle) floor over the
//! whole input they are given, here the floor is per 30 s window, so a window's features depend
//! on its own samples only and chunked streaming sees the same features as a whole-file pass.
//! For a clip of at most 30 s both agree. Pure CPU code on plain `Vec<f32>`: no tensors, no
//! device, no errors.

use std::fmt;
use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// FFT size (and window length) in samples: 25 ms at 16 kHz.
pub const N_FFT: usize = 400;
/// Stride between frames in samples: 10 ms at 16 kHz.
pub const HOP_LENGTH: usize = 160;
/// Samples in one encoder window: 30 s at 16 kHz.
pub const CHUNK_SAMPLES: usize = 480_000;
/// Frames in one encoder window: `CHUNK_SAMPLES / HOP_LENGTH`.
pub const CHUNK_FRAMES: usize = 3000;

/// Bins of a real FFT of `N_FFT` points.
const N_BINS: usize = N_FFT / 2 + 1;
const SAMPLE_RATE: f64 = 16_000.0;
/// `center=True` pads half a window on each side so frame `t` is centred on sample `t * hop`.
const PAD: usize = N_FFT / 2;
/// Whisper's clamp before the log, so silence maps to a finite value.
const MIN_POWER: f32 = 1e-10;
/// Dynamic range kept below the window's loudest value, in decades of power (80 dB).
const DYNAMIC_RANGE: f32 = 8.0;

/// Computes Whisper log-mel features for one 30 s window at a time.
///
/// Everything that does not depend on the audio (filter bank, window, FFT plan) is built once
/// in [`MelFrontend::new`]; [`MelFrontend::window`] takes `&self` and allocates its own
/// buffers, so one instance is shared by all threads without locking. A window is computed on
/// the calling thread (a few ms in an optimised build): parallelism comes from running windows
/// of different requests side by side, not from splitting one.
pub struct MelFrontend {
    n_mels: usize,
    filters: Vec<MelFilter>,
    hann: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl fmt::Debug for MelFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MelFrontend")
            .field("n_mels", &self.n_mels)
            .finish_non_exhaustive()
    }
}

impl MelFrontend {
    /// Builds the frontend for `n_mels` mel bins: 80 for most checkpoints, 128 for large-v3.
    pub fn new(n_mels: usize) -> Self {
        Self {
            n_mels,
            filters: mel_filters(n_mels),
            hann: periodic_hann(),
            fft: RealFftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    /// Number of mel bins, the first dimension of [`MelFrontend::window`]'s output.
    pub fn n_mels(&self) -> usize {
        self.n_mels
    }

    /// Log-mel features of one window, row-major `[n_mels, CHUNK_FRAMES]`.
    ///
    /// A shorter input is zero-padded to `CHUNK_SAMPLES`, as Whisper's `pad_or_trim` does;
    /// a longer one is cut to its first `CHUNK_SAMPLES` samples, because a window is the unit
    /// the encoder sees and slicing the stream into windows is the caller's policy. The floor
    /// at `max - 8` uses this window's maximum only.
    pub fn window(&self, samples: &[f32]) -> Vec<f32> {
        let samples = &samples[..samples.len().min(CHUNK_SAMPLES)];
        let padded = reflect_pad(samples);
        let mut mel = vec![0.0; self.n_mels * CHUNK_FRAMES];
        self.mel_power(&padded, &mut mel);
        log_compress(&mut mel);
        mel
    }

    /// Fills `mel` (`[n_mels, CHUNK_FRAMES]`, zeroed) with filter-bank energies per frame.
    fn mel_power(&self, padded: &[f32], mel: &mut [f32]) {
        let mut frame_power = FramePower::new(&*self.fft);
        // `torch.stft` yields one frame more than Whisper keeps (`stft[..., :-1]`).
        let frames = padded.windows(N_FFT).step_by(HOP_LENGTH).take(CHUNK_FRAMES);
        for (t, frame) in frames.enumerate() {
            // A short clip leaves most of the window as zero padding; its power is exactly
            // zero, which is what `mel` already holds, so those FFTs are skipped.
            if frame.iter().all(|&x| x == 0.0) {
                continue;
            }
            let power = frame_power.compute(frame, &self.hann);
            for (m, filter) in self.filters.iter().enumerate() {
                mel[m * CHUNK_FRAMES + t] = filter.apply(power);
            }
        }
    }
}

/// Per-call FFT buffers, so that `MelFrontend` itself stays immutable and shareable.
struct FramePower<'a> {
    fft: &'a dyn RealToComplex<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

impl<'a> FramePower<'a> {
    fn new(fft: &'a dyn RealToComplex<f32>) -> Self {
        Self {
            fft,
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; N_BINS],
        }
    }

    /// `|rfft(frame * hann)|^2` over the `N_BINS` bins.
    fn compute(&mut self, frame: &[f32], hann: &[f32]) -> &[f32] {
        for ((x, &s), &w) in self.input.iter_mut().zip(frame).zip(hann) {
            *x = s * w;
        }
        // realfft only fails on buffer lengths, and these come from the plan's own `make_*_vec`.
        self.fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .expect("FFT buffers are sized by the plan");
        for (p, c) in self.power.iter_mut().zip(&self.spectrum) {
            *p = c.norm_sqr();
        }
        &self.power
    }
}

/// The window zero-padded to `CHUNK_SAMPLES`, then reflect-padded by `PAD` on both sides
/// (`np.pad(mode="reflect")`: the edge sample itself is not repeated).
fn reflect_pad(samples: &[f32]) -> Vec<f32> {
    let mut padded = vec![0.0; CHUNK_SAMPLES + 2 * PAD];
    padded[PAD..PAD + samples.len()].copy_from_slice(samples);
    let end = PAD + CHUNK_SAMPLES;
    for i in 0..PAD {
        padded[PAD - 1 - i] = padded[PAD + 1 + i];
        padded[end + i] = padded[end - 2 - i];
    }
    padded
}

/// `log10(max(mel, 1e-10))`, floored at the window's maximum minus 8, scaled by `(x + 4) / 4`.
fn log_compress(mel: &mut [f32]) {
    // log10 dominates this pass, and the skipped silent frames of a short clip are all at
    // the clamp, so their log is computed once.
    let clamped = MIN_POWER.log10();
    let mut max = f32::NEG_INFINITY;
    for v in mel.iter_mut() {
        *v = if *v > MIN_POWER { v.log10() } else { clamped };
        max = max.max(*v);
    }
    let floor = max - DYNAMIC_RANGE;
    for v in mel.iter_mut() {
        *v = (v.max(floor) + 4.0) / 4.0;
    }
}

/// `torch.hann_window(N_FFT)`, which is periodic: `0.5 - 0.5 cos(2 pi n / N)`.
fn periodic_hann() -> Vec<f32> {
    (0..N_FFT)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64;
            (0.5 - 0.5 * phase.cos()) as f32
        })
        .collect()
}

/// One triangular mel filter, stored only over the FFT bins where it is nonzero: each
/// triangle spans a handful of the 201 bins, so the dense product would be mostly zeros.
struct MelFilter {
    first_bin: usize,
    weights: Vec<f32>,
}

impl MelFilter {
    /// `librosa.filters.mel`'s row for the triangle rising from `lo`, peaking at `center` and
    /// falling to `hi` (Hz), with Slaney's area normalisation `2 / (hi - lo)`.
    fn triangle(lo: f64, center: f64, hi: f64) -> Self {
        let enorm = 2.0 / (hi - lo);
        let dense: Vec<f32> = (0..N_BINS)
            .map(|k| {
                let freq = k as f64 * SAMPLE_RATE / N_FFT as f64;
                let ramp = ((freq - lo) / (center - lo)).min((hi - freq) / (hi - center));
                // librosa stores the ramp in its float32 output before scaling it, and
                // Whisper's mel_filters.npz is that output: round the same way.
                f64::from(ramp.max(0.0) as f32) * enorm
            })
            .map(|w| w as f32)
            .collect();
        let first = dense.iter().position(|&w| w > 0.0).unwrap_or(N_BINS);
        let end = dense
            .iter()
            .rposition(|&w| w > 0.0)
            .map_or(first, |last| last + 1);
        Self {
            first_bin: first,
            weights: dense[first..end].to_vec(),
        }
    }

    fn apply(&self, power: &[f32]) -> f32 {
        let power = &power[self.first_bin..];
        self.weights.iter().zip(power).map(|(w, p)| w * p).sum()
    }
}

/// The filter bank of `librosa.filters.mel(sr=16000, n_fft=400, n_mels)`: band edges evenly
/// spaced on the Slaney mel scale from 0 Hz to Nyquist, one triangle per three edges.
fn mel_filters(n_mels: usize) -> Vec<MelFilter> {
    let edges = mel_band_edges_hz(n_mels + 2);
    edges
        .windows(3)
        .map(|e| MelFilter::triangle(e[0], e[1], e[2]))
        .collect()
}

/// `mel_to_hz(np.linspace(hz_to_mel(0), hz_to_mel(sr / 2), n))`, `n >= 2`, with linspace's
/// exact arithmetic (`start + i * step`, last point set to `stop`).
fn mel_band_edges_hz(n: usize) -> Vec<f64> {
    let (lo, hi) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let step = (hi - lo) / (n - 1) as f64;
    (0..n)
        .map(|i| if i + 1 == n { hi } else { lo + i as f64 * step })
        .map(mel_to_hz)
        .collect()
}

// Slaney's mel scale as librosa writes it (htk=False): linear below 1 kHz, logarithmic above.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;
const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel >= MIN_LOG_MEL {
        MIN_LOG_HZ * (log_step() * (mel - MIN_LOG_MEL)).exp()
    } else {
        F_SP * mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense_bank(frontend: &MelFrontend) -> Vec<Vec<f32>> {
        let densify = |f: &MelFilter| {
            let mut row = vec![0.0; N_BINS];
            row[f.first_bin..f.first_bin + f.weights.len()].copy_from_slice(&f.weights);
            row
        };
        frontend.filters.iter().map(densify).collect()
    }

    fn assert_close(actual: f32, expected: f64, rel: f64) {
        let err = (f64::from(actual) - expected).abs();
        assert!(err <= rel * expected.abs(), "{actual} vs {expected}");
    }

    /// A 440 Hz tone of `seconds` at `amplitude`, the rest of the window silent.
    fn tone(amplitude: f32, seconds: f32) -> Vec<f32> {
        let n = (seconds * 16_000.0) as usize;
        let step = 2.0 * std::f32::consts::PI * 440.0 / 16_000.0;
        (0..n)
            .map(|i| amplitude * (i as f32 * step).sin())
            .collect()
    }

    #[test]
    fn filter_bank_80_matches_librosa() {
        let bank = dense_bank(&MelFrontend::new(80));
        assert_eq!((bank.len(), bank[0].len()), (80, 201));
        // float32 entries of librosa.filters.mel(sr=16000, n_fft=400, n_mels=80), the table
        // Whisper ships as mel_filters.npz (checked by tests/reference/whisper_mel.py).
        for (m, k, w) in [
            (0, 1, 0.024_862_594_902_515_41),
            (1, 2, 0.022_871_771_827_340_126),
            (9, 10, 0.006_945_197_004_824_877),
            (39, 41, 0.011_486_922_390_758_991),
            (69, 131, 0.004_875_534_214_079_38),
            (79, 192, 0.003_164_711_641_147_732_7),
        ] {
            assert_close(bank[m][k], w, 1e-7);
        }
        let row_sum = |m: usize| bank[m].iter().map(|&w| f64::from(w)).sum::<f64>();
        assert_close(row_sum(40) as f32, 2.666_486_053e-2, 1e-6);
        let total: f64 = (0..80).map(row_sum).sum();
        assert!((total - 1.999_024_103).abs() < 1e-6, "{total}");
        let nonzero = bank.iter().flatten().filter(|&&w| w > 0.0).count();
        assert_eq!(nonzero, 391);
    }

    #[test]
    fn filter_bank_128_matches_librosa() {
        let bank = dense_bank(&MelFrontend::new(128));
        assert_eq!((bank.len(), bank[0].len()), (128, 201));
        assert_close(bank[0][1], 1.237_398_633e-2, 1e-7);
        assert_close(bank[64][43], 1.809_151_762e-2, 1e-7);
        assert_close(bank[127][195], 5.041_601_675e-3, 1e-7);
        let nonzero = bank.iter().flatten().filter(|&&w| w > 0.0).count();
        assert_eq!(nonzero, 394);
    }

    #[test]
    fn silence_is_the_clamped_floor() {
        let frontend = MelFrontend::new(80);
        for samples in [vec![0.0; CHUNK_SAMPLES], Vec::new()] {
            let mel = frontend.window(&samples);
            assert_eq!(mel.len(), 80 * CHUNK_FRAMES);
            assert!(mel.iter().all(|&v| (v + 1.5).abs() < 1e-6));
        }
    }

    #[test]
    fn floor_is_per_window() {
        let frontend = MelFrontend::new(80);
        let max = |mel: &[f32]| mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = |mel: &[f32]| mel.iter().copied().fold(f32::INFINITY, f32::min);
        let loud = frontend.window(&tone(1.0, 2.0));
        let quiet = frontend.window(&tone(1e-5, 2.0));
        // A floor shared with the loud window would sit above everything the quiet one holds
        // and flatten it to a constant; per window, the quiet one keeps its own shape.
        let shared_floor = max(&loud) - 2.0;
        assert!(max(&quiet) < shared_floor);
        assert!(max(&quiet) - min(&quiet) > 0.5);
        assert!((max(&loud) - min(&loud) - 2.0).abs() < 1e-5);
    }

    #[test]
    fn longer_input_uses_the_first_window() {
        let frontend = MelFrontend::new(80);
        let mut long = tone(0.3, 40.0);
        long[CHUNK_SAMPLES..].fill(0.9);
        assert_eq!(
            frontend.window(&long),
            frontend.window(&long[..CHUNK_SAMPLES])
        );
    }

    #[test]
    fn frontend_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MelFrontend>();
        assert_eq!(MelFrontend::new(128).n_mels(), 128);
    }
}
