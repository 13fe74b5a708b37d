//! Parity of the log-mel frontend with Whisper's formula on real speech.
//!
//! The fixtures are written by `tests/reference/whisper_mel.py`, an independent numpy
//! implementation (float64) of `whisper.audio.log_mel_spectrogram` for one 30 s window. Each
//! holds the first K frames, row-major `[n_mels, K]` little-endian f32; every later frame lies
//! wholly in the zero padding after the clip and equals the floor `max - 2.0`, so it is checked
//! against that value instead of being stored.

use std::path::{Path, PathBuf};

use hearken::model::whisper::mel::{CHUNK_FRAMES, MelFrontend};

/// Largest difference we accept: the reference is float64, we run the FFT in float32.
const TOLERANCE: f32 = 1e-3;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/en")
        .join(name)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mel")
        .join(name)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Samples of a canonical 44-byte-header WAV, 16 kHz mono PCM16, scaled by 1/32768 as
/// Whisper does. Kept here rather than using the crate's decoder so this test checks the
/// frontend alone.
fn read_pcm16_wav(path: &Path) -> Vec<f32> {
    let bytes = read(path);
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at =
        |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    assert_eq!((&bytes[0..4], &bytes[8..12]), (&b"RIFF"[..], &b"WAVE"[..]));
    assert_eq!(&bytes[36..40], b"data", "expected a 44-byte header");
    assert_eq!(
        (u16_at(20), u16_at(22), u32_at(24), u16_at(34)),
        (1, 1, 16_000, 16)
    );
    let len = u32_at(40) as usize;
    bytes[44..44 + len]
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

fn read_f32s(path: &Path) -> Vec<f32> {
    let bytes = read(path);
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Largest absolute difference between our `[n_mels, 3000]` output and the fixture.
fn max_abs_error(clip: &str, n_mels: usize) -> f32 {
    let samples = read_pcm16_wav(&corpus(&format!("{clip}.wav")));
    let expected = read_f32s(&fixture(&format!("{clip}_{n_mels}.f32")));
    assert_eq!(expected.len() % n_mels, 0);
    let stored = expected.len() / n_mels;
    let floor = expected.iter().copied().fold(f32::NEG_INFINITY, f32::max) - 2.0;

    let actual = MelFrontend::new(n_mels).window(&samples);
    assert_eq!(actual.len(), n_mels * CHUNK_FRAMES);
    let mut worst = 0.0f32;
    for m in 0..n_mels {
        for t in 0..CHUNK_FRAMES {
            let want = if t < stored {
                expected[m * stored + t]
            } else {
                floor
            };
            worst = worst.max((actual[m * CHUNK_FRAMES + t] - want).abs());
        }
    }
    worst
}

#[test]
fn jfk_80_bins_match_whisper() {
    let err = max_abs_error("jfk", 80);
    println!("jfk 80 bins: max abs error {err:e}");
    assert!(err <= TOLERANCE, "max abs error {err}");
}

#[test]
fn short_clip_128_bins_match_whisper() {
    let err = max_abs_error("sb_spk2_snt2", 128);
    println!("sb_spk2_snt2 128 bins: max abs error {err:e}");
    assert!(err <= TOLERANCE, "max abs error {err}");
}
