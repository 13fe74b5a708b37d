//! Audio in: container/codec decoding, downmixing and resampling to Whisper's 16 kHz mono.
//!
//! This module owns everything between "bytes someone handed us" and "the `f32` samples the mel
//! front end expects": probing and decoding files or uploads with symphonia ([`decode_bytes`],
//! [`load_file`]), averaging channels down to mono, band-limited resampling with rubato
//! ([`resample`]), the raw PCM/G.711 conversions a streaming client sends ([`pcm`]), and their
//! chunk-by-chunk assembly into 16 kHz samples for live streams ([`StreamDecoder`]). It is pure
//! (no async, no global state), so every failure surfaces as an [`AudioError`] the serving layers
//! map to a client error, never as a panic.

mod chunks;
mod container;
mod decode;
mod opus;
mod packets;
pub mod pcm;
mod resample;
mod splice;
pub mod stream;

use std::ops::RangeInclusive;
use std::path::PathBuf;

pub use chunks::{ChunkPlan, MAX_CHUNK_SECONDS};
pub use decode::{DecodeLimits, DecodedAudio, decode_bytes, decode_file, load_file};
pub use pcm::{
    alaw_to_f32, downmix_interleaved, f32_to_pcm16le, f32_to_wav_pcm16, f32le_bytes_to_f32,
    mulaw_to_f32, pcm16le_to_f32,
};
pub use resample::resample;
pub use splice::Splice;
pub use stream::{MAX_CONTAINER_BYTES, StreamDecoder, StreamEncoding};

/// Level of digital silence (and of no samples at all); keeps `log10(0)` out of the arithmetic.
pub const SILENCE_DBFS: f32 = -100.0;

/// RMS level of `samples` in dBFS, never below [`SILENCE_DBFS`].
pub fn level_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return SILENCE_DBFS;
    }
    let power = samples.iter().map(|x| x * x).sum::<f32>() / samples.len() as f32;
    if power > 0.0 {
        (10.0 * power.log10()).max(SILENCE_DBFS)
    } else {
        SILENCE_DBFS
    }
}

/// The sample rate Whisper's mel front end is trained on; everything is converted to it.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// The source sample rates accepted on every transport, declared or read from a header:
/// telephony's 8 kHz up to the 192 kHz of studio recorders. Below 8 kHz nothing of speech is
/// left that Whisper could use, and the floor bounds what resampling can make of a payload (at
/// most twice its samples), so a header claiming 1 Hz cannot turn kilobytes into gigabytes.
pub const ACCEPTED_SAMPLE_RATES: RangeInclusive<u32> = 8_000..=192_000;

/// Largest magnitude a float sample may have: 60 dB over full scale (±1). Float audio a little
/// over full scale is legitimate; beyond this it is garbage that would overflow the mel
/// spectrum's power to infinity.
pub const MAX_SAMPLE_MAGNITUDE: f32 = 1_000.0;

/// Checks that `head` (the first bytes of an input) starts like `expected` (`flac`, `ogg`,
/// `wav`, `mp3`): a client that declares a container is told at once when the bytes are
/// something else, instead of whatever the prober happens to find in them.
pub fn check_declared_container(expected: &'static str, head: &[u8]) -> Result<(), AudioError> {
    let found = container::sniff(head);
    let id3 = head.starts_with(b"ID3");
    let matches = match expected {
        "mp3" => matches!(found, Some("mp3" | "mp2" | "mp1")) || id3,
        other => found == Some(other),
    };
    if matches || head.is_empty() {
        return Ok(());
    }
    Err(AudioError::NotDeclaredContainer {
        declared: expected,
        found: found.unwrap_or(if id3 { "id3-tagged" } else { "unrecognised" }),
    })
}

/// Checks a source sample rate against [`ACCEPTED_SAMPLE_RATES`].
pub fn check_sample_rate(rate: u32) -> Result<(), AudioError> {
    if ACCEPTED_SAMPLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::SampleRateOutOfRange {
            rate,
            min: *ACCEPTED_SAMPLE_RATES.start(),
            max: *ACCEPTED_SAMPLE_RATES.end(),
        })
    }
}

/// The first sample that is NaN, infinite or beyond [`MAX_SAMPLE_MAGNITUDE`], with its index.
pub fn find_invalid_sample(samples: &[f32]) -> Option<(usize, f32)> {
    samples
        .iter()
        .position(|s| !s.is_finite() || s.abs() > MAX_SAMPLE_MAGNITUDE)
        .map(|i| (i, samples[i]))
}

/// Why audio could not be turned into samples.
///
/// Messages name the container and codec involved so an API client can tell "wrong format" from
/// "broken file" without reading server logs.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// Zero bytes were supplied (an empty upload or file).
    #[error("audio input is empty (0 bytes)")]
    Empty,
    /// The file could not be opened or read.
    #[error("cannot read audio file {path}: {source}")]
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No supported container signature was found: not audio, or a format symphonia lacks.
    #[error(
        "input is not a recognised audio format{hint} (supported containers: WAV, AIFF, CAF, \
         FLAC, MP3, Ogg, MP4/M4A, MKV/WebM, ADTS AAC): {reason}"
    )]
    UnrecognizedFormat {
        /// `" (extension hint: .xyz)"` when the caller gave one, otherwise empty.
        hint: String,
        /// What the prober reported.
        reason: String,
    },
    /// The container was recognised but its headers are broken or truncated.
    #[error("malformed {container} container: {reason}")]
    MalformedContainer {
        /// The container that was recognised, e.g. `wav`.
        container: &'static str,
        /// What the demuxer reported.
        reason: String,
    },
    /// The container holds no track with an audio codec.
    #[error("{container} container has no audio track")]
    NoAudioTrack {
        /// The container that was recognised.
        container: &'static str,
    },
    /// The audio track uses a codec that has no decoder here (AC-3, WMA, surround Opus, ...).
    #[error(
        "{container} audio uses the {codec} codec, which is not supported \
         (supported: PCM, ADPCM, FLAC, ALAC, MP1/2/3, Vorbis, AAC-LC, Opus)"
    )]
    UnsupportedCodec {
        /// The container that was recognised.
        container: &'static str,
        /// The codec's name, or its symphonia id when it has none.
        codec: String,
    },
    /// The stream could not be decoded: every packet failed, most did, or a fatal error occurred.
    #[error("{format}: decoding failed: {reason}")]
    Decode {
        /// `container/codec`, e.g. `mp3/mp3`.
        format: String,
        /// What went wrong.
        reason: String,
    },
    /// The stream decoded cleanly but contained no samples.
    #[error("{format}: the stream contains no audio samples")]
    NoSamples {
        /// `container/codec`.
        format: String,
    },
    /// A decoder panicked on malformed input; caught so one bad upload cannot take a worker down.
    #[error("{format}: the decoder crashed on malformed input")]
    DecoderPanic {
        /// `container/codec`, or just the container when the panic came before the codec was known.
        format: String,
    },
    /// The sample rate changed mid-stream, which a single resampling pass cannot represent.
    #[error("{format}: sample rate changed mid-stream from {from} Hz to {to} Hz")]
    SampleRateChanged {
        /// `container/codec`.
        format: String,
        /// The rate of the first decoded packet.
        from: u32,
        /// The rate of the offending packet.
        to: u32,
    },
    /// A sample rate of zero was passed to [`resample`] (clients' rates are checked against
    /// [`ACCEPTED_SAMPLE_RATES`] instead, which reports [`Self::SampleRateOutOfRange`]).
    #[error("invalid sample rate {rate} Hz")]
    InvalidSampleRate {
        /// The offending rate.
        rate: u32,
    },
    /// A sample was NaN, infinite or absurdly large: one such value would silently wipe out
    /// the transcription around it, so the audio is refused and the place named.
    #[error(
        "{format}: sample {frame} (at {seconds:.3} s) is {value}; samples must be finite and \
         within ±{MAX_SAMPLE_MAGNITUDE} (full scale is ±1)"
    )]
    InvalidSample {
        /// The encoding or `container/codec`.
        format: String,
        /// Index of the offending frame (sample per channel) from the start of the audio.
        frame: u64,
        /// Its time from the start of the audio.
        seconds: f64,
        /// The value.
        value: f32,
    },
    /// The audio is longer than the caller's limit: its header says so, or decoding ran past
    /// the limit (then it stopped there, so `seconds` is a lower bound).
    #[error(
        "audio is {}{seconds:.1} s long{}; the limit is {limit_seconds:.0} s",
        if *declared { "" } else { "over " },
        if *declared { " (from its header)" } else { "" }
    )]
    TooLong {
        /// The declared length, or how far decoding got.
        seconds: f64,
        /// The limit in force.
        limit_seconds: f64,
        /// Whether `seconds` is the header's declared length (else decoding reached the limit).
        declared: bool,
    },
    /// Raw PCM whose byte length is not a whole number of samples.
    #[error("{encoding} input has {len} bytes, not a multiple of the {width}-byte sample size")]
    PartialSample {
        /// The raw encoding, e.g. `pcm_s16le`.
        encoding: &'static str,
        /// The byte length received.
        len: usize,
        /// Bytes per sample.
        width: usize,
    },
    /// The client declared one container and sent another (or none).
    #[error("the audio was declared as {declared} but its bytes are {found} data")]
    NotDeclaredContainer {
        /// What the client declared.
        declared: &'static str,
        /// What the bytes look like.
        found: &'static str,
    },
    /// A declared or decoded sample rate outside [`ACCEPTED_SAMPLE_RATES`].
    #[error("sample rate {rate} Hz is out of range: accepted rates are {min} to {max} Hz")]
    SampleRateOutOfRange {
        /// The offending rate.
        rate: u32,
        /// The lowest rate accepted.
        min: u32,
        /// The highest rate accepted.
        max: u32,
    },
    /// A stream was opened with an unsupported number of interleaved channels.
    #[error("stream channel count {channels} is out of range (1 to {max})")]
    ChannelsOutOfRange {
        /// The offending channel count.
        channels: u32,
        /// The most channels accepted.
        max: u32,
    },
    /// A chunk of a raw PCM stream ended part-way through a sample.
    #[error(
        "{encoding} stream chunk of {len} bytes is not a whole number of {width}-byte samples: \
         each chunk must carry whole samples (a multi-channel frame may span chunks, a sample may not)"
    )]
    ChunkPartialSample {
        /// The raw encoding, e.g. `pcm_s16le`.
        encoding: &'static str,
        /// The chunk's byte length.
        len: usize,
        /// Bytes per sample.
        width: usize,
    },
    /// A raw PCM stream ended part-way through an interleaved frame.
    #[error(
        "stream ended in the middle of a frame: {samples} trailing sample(s), but a frame has \
         {channels} channels"
    )]
    PartialFrame {
        /// Samples of the incomplete last frame.
        samples: usize,
        /// Samples per frame.
        channels: usize,
    },
    /// A container stream (decoded only once it ends) grew past the buffering limit.
    #[error(
        "container audio stream exceeds the {limit}-byte buffer limit ({received} bytes \
         received); long streams must be sent as raw PCM or G.711"
    )]
    StreamTooLarge {
        /// The limit in bytes.
        limit: usize,
        /// Bytes received including the chunk that crossed the limit.
        received: u64,
    },
    /// Audio was pushed after the stream was finished.
    #[error("audio stream already finished: no more audio can be pushed")]
    StreamFinished,
    /// rubato rejected the resampler configuration.
    #[error("cannot build the resampler: {0}")]
    ResamplerSetup(#[from] rubato::ResamplerConstructionError),
    /// rubato failed while resampling.
    #[error("resampling failed: {0}")]
    Resample(#[from] rubato::ResampleError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(level_dbfs(&[]), -100.0);
        assert_eq!(level_dbfs(&[0.0; 10]), -100.0);
        assert!((level_dbfs(&[0.5, -0.5]) - (-6.02)).abs() < 0.01);
    }
}
