//! Probing and decoding files and uploads with symphonia, down to mono at the source rate.
//!
//! The container is found by content, never by extension: symphonia scans for a signature, and
//! the extension is only passed along as a hint (symphonia 0.5.5's prober ignores it) and quoted
//! in errors. Gapless trimming is on, so MP3 (LAME/Xing tag) and Ogg encoder delay and padding are
//! removed and timestamps match the original recording; MP4 edit lists are not applied by 0.5, so
//! AAC keeps its ~1024 priming frames. The packet loop and its damaged-stream policy live in
//! `packets.rs`.

use std::fs::File;
use std::io::{Cursor, ErrorKind, Read, Seek};
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use symphonia::core::codecs::{CODEC_TYPE_NULL, CodecParameters, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::container::{self, HEAD_LEN};
use super::packets::{self, describe};
use super::{AudioError, WHISPER_SAMPLE_RATE, check_sample_rate};

/// A decoded stream as Whisper hears it: mono, 16 kHz.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples (channels averaged) at [`WHISPER_SAMPLE_RATE`], nominally in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// The source's sample rate in Hz.
    pub source_rate: u32,
    /// How many channels the source had before downmixing.
    pub channels: usize,
    /// `container/codec`, e.g. `wav/pcm_s16le` or `mp4/aac`, for logs and API responses.
    pub format: String,
}

impl DecodedAudio {
    /// Length of the audio in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(WHISPER_SAMPLE_RATE)
    }
}

/// Bounds on one decode: what a server accepts from a client.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeLimits {
    /// Longest audio accepted, seconds. A header that declares more is refused before any
    /// decoding, and decoding stops with [`AudioError::TooLong`] as soon as it passes this.
    pub max_seconds: f64,
}

impl DecodeLimits {
    /// No limit: local files the user chose.
    pub const NONE: Self = Self {
        max_seconds: f64::INFINITY,
    };

    /// At most `max_seconds` of audio.
    pub fn max_seconds(max_seconds: f64) -> Self {
        Self { max_seconds }
    }

    /// The limit in 16 kHz output samples.
    pub(super) fn max_samples(&self) -> u64 {
        let samples = self.max_seconds * f64::from(WHISPER_SAMPLE_RATE);
        if samples >= u64::MAX as f64 {
            u64::MAX
        } else {
            samples.max(0.0) as u64
        }
    }

    /// Refuses a declared length over the limit.
    pub fn check_declared(&self, seconds: f64) -> Result<(), AudioError> {
        if seconds > self.max_seconds {
            return Err(AudioError::TooLong {
                seconds,
                limit_seconds: self.max_seconds,
                declared: true,
            });
        }
        Ok(())
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self::NONE
    }
}

/// Decodes a file and returns Whisper's input: mono, 16 kHz.
pub fn load_file(path: &Path) -> Result<Vec<f32>, AudioError> {
    Ok(decode_file(path)?.samples)
}

/// Decodes a file to 16 kHz mono, streaming it from disk rather than reading it into memory.
/// No length limit: the user chose the file.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    let io = |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(HEAD_LEN);
    (&mut file)
        .take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io)?;
    if head.is_empty() {
        return Err(AudioError::Empty);
    }
    file.rewind().map_err(io)?;
    let extension = path.extension().and_then(|ext| ext.to_str());
    let input = Input {
        head: &head,
        len,
        hint: extension,
    };
    decode_source(Box::new(file), &input, &DecodeLimits::NONE)
}

/// Decodes in-memory bytes (an upload) to 16 kHz mono within `limits`; `extension_hint` is
/// e.g. `Some("mp3")`, without the dot.
pub fn decode_bytes(
    bytes: Vec<u8>,
    extension_hint: Option<&str>,
    limits: &DecodeLimits,
) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let mut bytes = bytes;
    if container::clamp_wav_sizes(&mut bytes) {
        tracing::debug!(
            "the WAV header claimed more data than the upload holds; decoding what is there"
        );
    }
    let head = bytes[..bytes.len().min(HEAD_LEN)].to_vec();
    let input = Input {
        head: &head,
        len: bytes.len() as u64,
        hint: extension_hint,
    };
    decode_source(Box::new(Cursor::new(bytes)), &input, limits)
}

/// What is known of an input before it is parsed.
struct Input<'a> {
    /// Its first bytes, for naming the container.
    head: &'a [u8],
    /// Its length in bytes.
    len: u64,
    /// The file name's extension.
    hint: Option<&'a str>,
}

/// Runs the decode behind `catch_unwind`: symphonia has had panics on crafted input, and one bad
/// upload must cost a 4xx, not a worker thread.
fn decode_source(
    media: Box<dyn MediaSource>,
    input: &Input<'_>,
    limits: &DecodeLimits,
) -> Result<DecodedAudio, AudioError> {
    let sniffed = container::sniff(input.head);
    if let Some(rate) = container::wav_sample_rate(input.head) {
        // Checked before symphonia sees the header: a rate of 0 panics inside its WAV reader.
        check_sample_rate(rate)?;
    }
    panic::catch_unwind(AssertUnwindSafe(|| {
        decode_stream(media, sniffed, input, limits)
    }))
    .unwrap_or_else(|_| {
        Err(AudioError::DecoderPanic {
            format: sniffed.unwrap_or("unknown").to_owned(),
        })
    })
}

fn decode_stream(
    media: Box<dyn MediaSource>,
    sniffed: Option<&'static str>,
    input: &Input<'_>,
    limits: &DecodeLimits,
) -> Result<DecodedAudio, AudioError> {
    let mut reader = probe(media, sniffed, input.hint)?;
    let label = sniffed.unwrap_or("unknown");
    let (track_id, codec, mut decoder) = open_decoder(reader.as_ref(), label)?;
    let params = &reader
        .tracks()
        .iter()
        .find(|t| t.id == track_id)
        .expect("open_decoder returned one of the reader's tracks")
        .codec_params;
    if let Some(rate) = params.sample_rate {
        check_sample_rate(rate)?;
    }
    if let Some(seconds) = declared_seconds(params, codec, input.len) {
        limits.check_declared(seconds)?;
    }
    let format = format!(
        "{}/{codec}",
        sniffed.unwrap_or(container::from_codec(codec))
    );
    packets::decode_all(reader.as_mut(), track_id, decoder.as_mut(), format, limits)
}

/// The length a header declares, in seconds. For uncompressed PCM it is capped by the bytes
/// actually present: a WAV written to a pipe declares a huge (or no) data size, and a
/// truncated file declares more than it holds; both are decoded up to their real end.
fn declared_seconds(params: &CodecParameters, codec: &str, input_len: u64) -> Option<f64> {
    let rate = params.sample_rate.filter(|&r| r > 0)?;
    let mut frames = params.n_frames?;
    if codec.starts_with("pcm_") {
        let bits = params.bits_per_coded_sample.or(params.bits_per_sample)?;
        let channels = params.channels.map_or(1, |c| c.count()).max(1);
        let frame_bits = u64::from(bits) * channels as u64;
        if let Some(present) = input_len.saturating_mul(8).checked_div(frame_bits) {
            frames = frames.min(present);
        }
    }
    Some(frames as f64 / f64::from(rate))
}

fn probe(
    media: Box<dyn MediaSource>,
    sniffed: Option<&'static str>,
    extension: Option<&str>,
) -> Result<Box<dyn FormatReader>, AudioError> {
    let mut hint = Hint::new();
    if let Some(ext) = extension {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(media, Default::default());
    let options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    symphonia::default::get_probe()
        .format(&hint, stream, &options, &MetadataOptions::default())
        .map(|probed| probed.format)
        .map_err(|err| probe_error(&err, sniffed, extension))
}

fn probe_error(
    err: &SymphoniaError,
    sniffed: Option<&'static str>,
    hint: Option<&str>,
) -> AudioError {
    match sniffed {
        Some(container) => AudioError::MalformedContainer {
            container,
            reason: describe(err),
        },
        // The prober reads until it finds a signature: running out of input (or its own
        // "no suitable reader") just means there was none, which is clearer said plainly.
        None if is_probe_exhausted(err) => AudioError::UnrecognizedFormat {
            hint: hint_note(hint),
            reason: "no known container signature in the input".to_owned(),
        },
        None => AudioError::UnrecognizedFormat {
            hint: hint_note(hint),
            reason: describe(err),
        },
    }
}

fn is_probe_exhausted(err: &SymphoniaError) -> bool {
    match err {
        SymphoniaError::IoError(e) => e.kind() == ErrorKind::UnexpectedEof,
        SymphoniaError::Unsupported(_) => true,
        _ => false,
    }
}

fn hint_note(hint: Option<&str>) -> String {
    hint.map(|ext| format!(" (extension hint: .{ext})"))
        .unwrap_or_default()
}

/// Picks the first track symphonia can decode (an M4A may also carry cover art or chapters) and
/// builds its decoder; returns the track id and the codec's short name.
fn open_decoder(
    reader: &dyn FormatReader,
    container: &'static str,
) -> Result<(u32, &'static str, Box<dyn Decoder>), AudioError> {
    let registry = super::opus::codec_registry();
    let tracks = reader.tracks();
    let Some((track, descriptor)) = tracks
        .iter()
        .find_map(|t| registry.get_codec(t.codec_params.codec).map(|d| (t, d)))
    else {
        return Err(
            match tracks
                .iter()
                .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            {
                Some(t) => AudioError::UnsupportedCodec {
                    container,
                    codec: container::unsupported_codec_name(t.codec_params.codec),
                },
                None => AudioError::NoAudioTrack { container },
            },
        );
    };
    let decoder = registry
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|err| AudioError::Decode {
            format: format!("{container}/{}", descriptor.short_name),
            reason: format!(
                "the decoder rejected the stream parameters: {}",
                describe(&err)
            ),
        })?;
    Ok((track.id, descriptor.short_name, decoder))
}
