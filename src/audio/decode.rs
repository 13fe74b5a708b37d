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

use symphonia::core::codecs::{CODEC_TYPE_NULL, Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::container::{self, HEAD_LEN};
use super::packets::{self, describe};
use super::{AudioError, WHISPER_SAMPLE_RATE, resample};

/// A decoded stream, downmixed to mono but still at its own sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples (channels averaged), nominally in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// The stream's sample rate in Hz.
    pub sample_rate: u32,
    /// How many channels the source had before downmixing.
    pub channels: usize,
    /// `container/codec`, e.g. `wav/pcm_s16le` or `mp4/aac`, for logs and API responses.
    pub format: String,
}

impl DecodedAudio {
    /// Length of the audio in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }

    /// Resamples to [`WHISPER_SAMPLE_RATE`]; 16 kHz input is returned without copying.
    pub fn into_whisper_input(self) -> Result<Vec<f32>, AudioError> {
        if self.sample_rate == WHISPER_SAMPLE_RATE {
            return Ok(self.samples);
        }
        resample(&self.samples, self.sample_rate, WHISPER_SAMPLE_RATE)
    }
}

/// Decodes a file and returns Whisper's input: mono, 16 kHz.
pub fn load_file(path: &Path) -> Result<Vec<f32>, AudioError> {
    decode_file(path)?.into_whisper_input()
}

/// Decodes a file at its own rate, streaming it from disk rather than reading it into memory.
pub fn decode_file(path: &Path) -> Result<DecodedAudio, AudioError> {
    let io = |source| AudioError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
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
    decode_source(Box::new(file), &head, extension)
}

/// Decodes in-memory bytes (an upload); `extension_hint` is e.g. `Some("mp3")`, without the dot.
pub fn decode_bytes(
    bytes: Vec<u8>,
    extension_hint: Option<&str>,
) -> Result<DecodedAudio, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::Empty);
    }
    let head = bytes[..bytes.len().min(HEAD_LEN)].to_vec();
    decode_source(Box::new(Cursor::new(bytes)), &head, extension_hint)
}

/// Runs the decode behind `catch_unwind`: symphonia has had panics on crafted input, and one bad
/// upload must cost a 4xx, not a worker thread.
fn decode_source(
    media: Box<dyn MediaSource>,
    head: &[u8],
    hint: Option<&str>,
) -> Result<DecodedAudio, AudioError> {
    let sniffed = container::sniff(head);
    panic::catch_unwind(AssertUnwindSafe(|| decode_stream(media, sniffed, hint))).unwrap_or_else(
        |_| {
            Err(AudioError::DecoderPanic {
                format: sniffed.unwrap_or("unknown").to_owned(),
            })
        },
    )
}

fn decode_stream(
    media: Box<dyn MediaSource>,
    sniffed: Option<&'static str>,
    hint: Option<&str>,
) -> Result<DecodedAudio, AudioError> {
    let mut reader = probe(media, sniffed, hint)?;
    let label = sniffed.unwrap_or("unknown");
    let (track_id, codec, mut decoder) = open_decoder(reader.as_ref(), label)?;
    let format = format!(
        "{}/{codec}",
        sniffed.unwrap_or(container::from_codec(codec))
    );
    packets::decode_all(reader.as_mut(), track_id, decoder.as_mut(), format)
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
