//! Decoding real speech in every container we claim to support, and failing cleanly on bad input.
//!
//! The repository carries one reference recording (`jfk.wav`, 16 kHz mono, 11 s); the other
//! formats are made from it at test time with `sox` and `ffmpeg`, so each test can compare the
//! decoded samples with the original. Those tools are required, not optional: a missing tool
//! fails the test with an install hint rather than skipping it (CI installs
//! `sox libsox-fmt-all ffmpeg`).

use std::path::{Path, PathBuf};
use std::process::Command;

use hearken::audio::{self, AudioError, DecodeLimits, WHISPER_SAMPLE_RATE};

const NO_LIMIT: DecodeLimits = DecodeLimits::NONE;

const JFK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus/en/jfk.wav");
/// 11.0 s at 16 kHz.
const JFK_SAMPLES: usize = 176_000;

fn reference() -> Vec<f32> {
    audio::load_file(Path::new(JFK)).expect("the corpus clip decodes")
}

/// Runs `tool args...` to write `name` in a fresh temp dir and returns its path (and the dir,
/// which deletes the file when dropped).
fn convert(tool: &str, args: &[&str], name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(name);
    let mut cmd = Command::new(tool);
    match tool {
        "ffmpeg" => cmd
            .args(["-nostdin", "-loglevel", "error", "-i", JFK])
            .args(args)
            .arg(&out),
        _ => cmd.arg(JFK).args(args).arg(&out),
    };
    let status = cmd.status().unwrap_or_else(|e| {
        panic!(
            "`{tool}` could not be run ({e}). These tests need it on PATH: \
             apt-get install -y sox libsox-fmt-all ffmpeg"
        )
    });
    assert!(status.success(), "`{tool} {args:?}` failed to write {name}");
    (dir, out)
}

/// Normalised cross-correlation of `a` and `b` with `b` shifted by `lag` samples.
fn ncc_at(a: &[f32], b: &[f32], lag: isize) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &x) in a.iter().enumerate() {
        let Some(&y) = i.checked_add_signed(lag).and_then(|j| b.get(j)) else {
            continue;
        };
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt().max(f64::MIN_POSITIVE)
}

/// The lag (within ±`max_lag`) that best aligns `b` with `a`, searched on 1.5 s of speech so it
/// stays cheap in a debug build.
fn best_lag(a: &[f32], b: &[f32], max_lag: usize) -> isize {
    let start = 16_000;
    let window = &a[start..start + 24_000];
    let b = &b[start - max_lag..];
    let max_lag = max_lag as isize;
    (-max_lag..=max_lag)
        .map(|lag| (lag, ncc_at(window, b, lag + max_lag)))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(lag, _)| lag)
        .unwrap()
}

/// Decodes `path`, checks length and similarity to the original, and returns the lag found.
fn assert_matches_reference(path: &Path, format: &str, channels: usize, min_ncc: f64) -> isize {
    let bytes = std::fs::read(path).unwrap();
    let decoded = audio::decode_bytes(bytes, None, &NO_LIMIT).unwrap();
    assert_eq!(decoded.format, format);
    assert_eq!(decoded.channels, channels, "{format}");
    let samples = decoded.samples;
    let seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
    assert!(
        (seconds - 11.0).abs() < 0.1,
        "{format}: decoded {seconds:.3} s"
    );
    let original = reference();
    let lag = best_lag(&original, &samples, 500);
    let ncc = ncc_at(&original, &samples, lag);
    println!(
        "{format}: {} samples, lag {lag}, ncc {ncc:.4}",
        samples.len()
    );
    assert!(ncc > min_ncc, "{format}: ncc {ncc:.4} at lag {lag}");
    lag
}

#[test]
fn corpus_wav_is_eleven_seconds_at_16k() {
    let decoded = audio::decode_file(Path::new(JFK)).unwrap();
    assert_eq!(
        (
            decoded.source_rate,
            decoded.channels,
            decoded.format.as_str()
        ),
        (16_000, 1, "wav/pcm_s16le")
    );
    assert_eq!(decoded.samples.len(), JFK_SAMPLES);
    assert!(decoded.samples.iter().all(|s| (-1.0..1.0).contains(s)));
    assert_eq!(
        reference(),
        decoded.samples,
        "16 kHz input passes through untouched"
    );
}

#[test]
fn pcm24_and_float_wav_are_bit_exact() {
    let original = reference();
    for (args, name, format) in [
        (&["-b", "24"][..], "jfk24.wav", "wav/pcm_s24le"),
        (
            &["-e", "floating-point", "-b", "32"][..],
            "jfkf32.wav",
            "wav/pcm_f32le",
        ),
    ] {
        let (_dir, path) = convert("sox", args, name);
        let decoded = audio::decode_file(&path).unwrap();
        assert_eq!(decoded.format, format);
        assert_eq!(decoded.samples, original, "{format}");
    }
}

#[test]
fn flac_44k_stereo_is_downmixed_and_resampled_in_place() {
    let (_dir, path) = convert("sox", &["-r", "44100", "-c", "2"], "jfk.flac");
    let lag = assert_matches_reference(&path, "flac/flac", 2, 0.999);
    assert_eq!(lag, 0, "resampling must not shift the audio");
}

#[test]
fn mp3_is_gapless() {
    let (_dir, path) = convert(
        "ffmpeg",
        &["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "64k"],
        "jfk.mp3",
    );
    let lag = assert_matches_reference(&path, "mp3/mp3", 1, 0.9);
    // The LAME tag's encoder delay is trimmed, so there is no leading silence.
    assert!(lag.abs() <= 1, "mp3 lag {lag}");
}

#[test]
fn ogg_vorbis_48k_stereo() {
    let (_dir, path) = convert(
        "ffmpeg",
        &["-ar", "48000", "-ac", "2", "-c:a", "libvorbis", "-q:a", "4"],
        "jfk.ogg",
    );
    let lag = assert_matches_reference(&path, "ogg/vorbis", 2, 0.9);
    assert!(lag.abs() <= 1, "vorbis lag {lag}");
}

#[test]
fn m4a_aac_decodes() {
    let (_dir, path) = convert(
        "ffmpeg",
        &["-ar", "44100", "-c:a", "aac", "-b:a", "96k"],
        "jfk.m4a",
    );
    // symphonia 0.5 does not apply the MP4 edit list, so AAC's priming samples stay in.
    let lag = assert_matches_reference(&path, "mp4/aac", 1, 0.9);
    // ffmpeg primes with 1024 frames: 372 samples at 16 kHz.
    assert!((0..=400).contains(&lag), "aac lag {lag}");
}

#[test]
fn extension_hint_is_not_trusted() {
    let (_dir, path) = convert("ffmpeg", &["-c:a", "libmp3lame"], "jfk.mp3");
    let decoded =
        audio::decode_bytes(std::fs::read(path).unwrap(), Some("wav"), &NO_LIMIT).unwrap();
    assert_eq!(decoded.format, "mp3/mp3");
}

#[test]
fn webm_opus_as_browsers_record_it() {
    let (_dir, path) = convert("ffmpeg", &["-c:a", "libopus", "-b:a", "24k"], "jfk.webm");
    let lag = assert_matches_reference(&path, "mkv/opus", 1, 0.8);
    // Opus' pre-skip (312 samples at 48 kHz, 104 here) is dropped: within 1 ms of the original.
    assert!(lag.abs() <= 16, "webm opus lag {lag}");
}

#[test]
fn ogg_opus_48k_stereo() {
    let (_dir, path) = convert(
        "ffmpeg",
        &["-ar", "48000", "-ac", "2", "-c:a", "libopus"],
        "jfk.opus",
    );
    let lag = assert_matches_reference(&path, "ogg/opus", 2, 0.8);
    assert!(lag.abs() <= 16, "ogg opus lag {lag}");
}

#[test]
fn surround_opus_is_reported_as_an_unsupported_codec() {
    let (_dir, path) = convert(
        "ffmpeg",
        &["-ac", "6", "-c:a", "libopus", "-mapping_family", "1"],
        "jfk.opus",
    );
    let err = audio::load_file(&path).unwrap_err();
    assert!(err.to_string().contains("opus"), "{err}");
}

#[test]
fn random_bytes_are_an_error() {
    // xorshift: deterministic noise that still contains the odd MPEG sync word.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let bytes: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let err = audio::decode_bytes(bytes, Some("wav"), &NO_LIMIT).unwrap_err();
    println!("random bytes: {err}");
    assert!(!err.to_string().is_empty());
}

#[test]
fn text_is_not_a_recognised_format() {
    let bytes = b"this is a transcript, not a recording\n".repeat(100);
    let err = audio::decode_bytes(bytes, Some("txt"), &NO_LIMIT).unwrap_err();
    assert!(
        matches!(err, AudioError::UnrecognizedFormat { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("not a recognised audio format (extension hint: .txt)"),
        "{err}"
    );
}

#[test]
fn truncated_wav_header_is_a_malformed_container() {
    let bytes = std::fs::read(JFK).unwrap()[..30].to_vec();
    let err = audio::decode_bytes(bytes, Some("wav"), &NO_LIMIT).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::MalformedContainer {
                container: "wav",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("malformed wav container"), "{err}");
}

#[test]
fn truncated_wav_data_keeps_what_was_there() {
    // 44-byte header plus 1000 whole samples and half of the next one.
    let bytes = std::fs::read(JFK).unwrap()[..44 + 2_001].to_vec();
    let decoded = audio::decode_bytes(bytes, None, &NO_LIMIT).unwrap();
    assert_eq!(decoded.samples[..], reference()[..decoded.samples.len()]);
    assert!(
        (1_000..=1_001).contains(&decoded.samples.len()),
        "{}",
        decoded.samples.len()
    );
}

#[test]
fn corrupt_mp3_frames_are_skipped() {
    let (_dir, path) = convert("ffmpeg", &["-c:a", "libmp3lame", "-b:a", "64k"], "jfk.mp3");
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle..middle + 400].fill(0x55);
    let samples = audio::decode_bytes(bytes, None, &NO_LIMIT).unwrap().samples;
    let seconds = samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE);
    assert!(seconds > 10.0, "kept {seconds:.2} s");
}

#[test]
fn empty_input_is_an_error() {
    assert!(matches!(
        audio::decode_bytes(Vec::new(), None, &NO_LIMIT),
        Err(AudioError::Empty)
    ));
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = audio::load_file(file.path()).unwrap_err();
    assert!(matches!(err, AudioError::Empty), "{err:?}");
    assert_eq!(err.to_string(), "audio input is empty (0 bytes)");
}

#[test]
fn missing_file_names_the_path() {
    let err = audio::load_file(Path::new("/nonexistent/clip.wav")).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/clip.wav"), "{err}");
}

/// A WAV file: `format` 1 (integer PCM) or 3 (IEEE float), `data` already encoded;
/// `declared_data` overrides the data chunk's size field (a pipe writes 0xFFFFFFFF).
fn wav(format: u16, bits: u16, rate: u32, data: &[u8], declared_data: Option<u32>) -> Vec<u8> {
    let data_len = declared_data.unwrap_or(data.len() as u32);
    let mut h = Vec::new();
    h.extend(b"RIFF");
    h.extend(36u32.wrapping_add(data_len).to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(format.to_le_bytes());
    h.extend(1u16.to_le_bytes());
    h.extend(rate.to_le_bytes());
    h.extend((rate * u32::from(bits) / 8).to_le_bytes());
    h.extend((bits / 8).to_le_bytes());
    h.extend(bits.to_le_bytes());
    h.extend(b"data");
    h.extend(data_len.to_le_bytes());
    h.extend(data);
    h
}

#[test]
fn a_header_claiming_a_rate_outside_8_to_192_khz_is_refused_before_decoding() {
    for rate in [0u32, 1, 7_999, 192_001, 4_000_000] {
        // 40 KB of samples: at 1 Hz this once expanded to 2.8 GB before the length check.
        let bytes = wav(1, 16, rate, &[0u8; 40_000], None);
        let err =
            audio::decode_bytes(bytes, Some("wav"), &DecodeLimits::max_seconds(60.0)).unwrap_err();
        assert!(
            matches!(err, AudioError::SampleRateOutOfRange { rate: r, .. } if r == rate),
            "{rate} Hz: {err:?}"
        );
        assert!(
            err.to_string()
                .contains(&format!("sample rate {rate} Hz is out of range")),
            "{err}"
        );
    }
    let ok = wav(1, 16, 8_000, &[0u8; 16_000], None);
    let decoded = audio::decode_bytes(ok, None, &NO_LIMIT).unwrap();
    assert_eq!(
        decoded.samples.len(),
        16_000,
        "1 s at 8 kHz is 1 s at 16 kHz"
    );
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_decoding() {
    let limits = DecodeLimits::max_seconds(60.0);
    let (_dir, path) = sox_synth(&["-r", "16000", "-c", "1"], "silence.flac", "600");
    let err = audio::decode_bytes(std::fs::read(&path).unwrap(), None, &limits).unwrap_err();
    assert!(
        matches!(err, AudioError::TooLong { declared: true, seconds, .. } if seconds == 600.0),
        "{err:?}"
    );
    // A WAV written to a pipe declares 4 GB of data, and a cut-off one more than it holds:
    // both are decoded up to their real end, not refused.
    for declared in [u32::MAX, 32_000 * 100] {
        let piped = wav(1, 16, 16_000, &vec![0u8; 32_000 * 3], Some(declared));
        let decoded = audio::decode_bytes(piped, None, &limits).unwrap();
        assert_eq!(decoded.samples.len(), 48_000);
    }
}

#[test]
fn decoding_stops_at_the_limit_when_no_length_is_declared() {
    // FLAC written to a pipe cannot go back to fill in STREAMINFO's total: no length declared.
    let output = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i"])
        .args(["anoisesrc=a=0.01:r=16000:d=120", "-f", "flac", "-"])
        .output()
        .expect("ffmpeg is installed");
    assert!(output.status.success());
    let bytes = output.stdout;
    let err =
        audio::decode_bytes(bytes.clone(), None, &DecodeLimits::max_seconds(30.0)).unwrap_err();
    assert!(
        matches!(
            err,
            AudioError::TooLong {
                declared: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "audio is over 30.0 s long; the limit is 30 s"
    );
    let whole = audio::decode_bytes(bytes, None, &NO_LIMIT).unwrap();
    assert!(
        (whole.duration_secs() - 120.0).abs() < 0.1,
        "{}",
        whole.duration_secs()
    );
}

#[test]
fn a_nan_in_a_float_wav_is_refused_with_its_place() {
    let mut samples = vec![0.1f32; 48_000];
    samples[40_000] = f32::NAN;
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let err = audio::decode_bytes(wav(3, 32, 16_000, &data, None), None, &NO_LIMIT).unwrap_err();
    assert!(
        matches!(err, AudioError::InvalidSample { frame: 40_000, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("wav/pcm_f32le: sample 40000 (at 2.500 s) is NaN"),
        "{err}"
    );
}

/// Makes `seconds` of `sox -n` silence in `name` with `args` (rate, channels).
fn sox_synth(args: &[&str], name: &str, seconds: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    let status = Command::new("sox")
        .arg("-n")
        .args(args)
        .arg(&path)
        .args(["trim", "0", seconds])
        .status()
        .expect("sox is installed");
    assert!(status.success());
    (dir, path)
}
