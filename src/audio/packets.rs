//! The packet loop: demux, decode, check, downmix and resample, and the policy for damaged
//! streams.
//!
//! Samples go through to 16 kHz packet by packet, so the only buffer that grows is the output
//! Whisper needs anyway, and decoding stops as soon as it passes the caller's length limit:
//! a small file that expands to hours (FLAC of digital silence, a header claiming a tiny rate)
//! costs no more memory or CPU than the limit allows.
//!
//! Real uploads are often slightly broken (a glitch mid-file, a truncated tail), so once a stream
//! is established a packet the decoder rejects is skipped with a warning, and a demuxer error
//! after audio has been decoded ends the stream early, keeping what was read. What is never
//! accepted: a stream where nothing decoded, or where most packets were corrupt. The latter is
//! what random bytes look like when symphonia's prober happens to find an MPEG sync word in them,
//! and passing such noise to the model would only produce hallucinated text.

use std::io::ErrorKind;

use symphonia::core::audio::{AudioBufferRef, SampleBuffer};
use symphonia::core::codecs::Decoder;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatReader;

use super::resample::StreamResampler;
use super::{
    AudioError, DecodeLimits, DecodedAudio, WHISPER_SAMPLE_RATE, check_sample_rate,
    downmix_interleaved, find_invalid_sample,
};

/// Input frames per resampler block: large enough to amortise rubato's call overhead, small
/// enough to stay in cache.
const RESAMPLE_BLOCK: usize = 1024;

/// Decodes every packet of `track_id` into 16 kHz mono samples, within `limits`.
pub(super) fn decode_all(
    reader: &mut dyn FormatReader,
    track_id: u32,
    decoder: &mut dyn Decoder,
    format: String,
    limits: &DecodeLimits,
) -> Result<DecodedAudio, AudioError> {
    let mut sink = Sink::new(format, limits);
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // symphonia 0.5 signals a clean end of stream as an UnexpectedEof I/O error.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // A chained stream (new Ogg link, new track layout): Whisper input is one recording.
            Err(SymphoniaError::ResetRequired) => break,
            Err(err) if sink.frames_in > 0 => {
                tracing::warn!(
                    format = %sink.format,
                    error = %err,
                    "demuxing stopped early; keeping the audio decoded so far"
                );
                break;
            }
            Err(err) => return Err(sink.fail(&err)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buffer) => sink.push(buffer)?,
            // Bad bitstream data, a packet shorter than its header claims, or (AAC) garbage that
            // parses as a feature the decoder lacks: the codec itself was accepted, so these are
            // damaged packets and the majority rule in `finish` decides if the stream survives.
            Err(
                err @ (SymphoniaError::DecodeError(_)
                | SymphoniaError::IoError(_)
                | SymphoniaError::Unsupported(_)),
            ) => sink.skip(&err),
            Err(err) => return Err(sink.fail(&err)),
        }
    }
    sink.finish()
}

/// A symphonia error as a sentence; bare EOF becomes "truncated", which is what it means here.
pub(super) fn describe(err: &SymphoniaError) -> String {
    match err {
        SymphoniaError::IoError(e) if e.kind() == ErrorKind::UnexpectedEof => {
            "unexpected end of data (is the input truncated?)".to_owned()
        }
        other => other.to_string(),
    }
}

/// Checks, downmixes and resamples decoded packets, and counts good and bad ones.
struct Sink {
    format: String,
    /// 16 kHz mono output.
    samples: Vec<f32>,
    /// The most output samples allowed (from the limit).
    max_samples: u64,
    limit_seconds: f64,
    /// Rate and channel count of the first decoded packet.
    spec: Option<(u32, usize)>,
    /// Built at the first packet, once the rate is known and accepted.
    resampler: Option<StreamResampler>,
    /// Source frames decoded so far.
    frames_in: u64,
    /// Reused across packets: it is sized for the largest packet seen so far.
    interleaved: Option<SampleBuffer<f32>>,
    decoded: usize,
    corrupt: usize,
    first_error: Option<String>,
}

impl Sink {
    fn new(format: String, limits: &DecodeLimits) -> Self {
        Self {
            format,
            samples: Vec::new(),
            max_samples: limits.max_samples(),
            limit_seconds: limits.max_seconds,
            spec: None,
            resampler: None,
            frames_in: 0,
            interleaved: None,
            decoded: 0,
            corrupt: 0,
            first_error: None,
        }
    }

    fn push(&mut self, buffer: AudioBufferRef<'_>) -> Result<(), AudioError> {
        let spec = *buffer.spec();
        let channels = spec.channels.count();
        match self.spec {
            None => {
                check_sample_rate(spec.rate)?;
                self.spec = Some((spec.rate, channels));
                self.resampler = Some(StreamResampler::new(
                    spec.rate,
                    WHISPER_SAMPLE_RATE,
                    RESAMPLE_BLOCK,
                )?);
            }
            Some((rate, _)) if rate != spec.rate => {
                return Err(AudioError::SampleRateChanged {
                    format: self.format.clone(),
                    from: rate,
                    to: spec.rate,
                });
            }
            Some(_) => {}
        }
        self.decoded += 1;
        if buffer.frames() == 0 || channels == 0 {
            return Ok(());
        }
        let needed = buffer.capacity() * channels;
        let mut interleaved = match self.interleaved.take() {
            Some(buf) if buf.capacity() >= needed => buf,
            _ => SampleBuffer::new(buffer.capacity() as u64, spec),
        };
        interleaved.copy_interleaved_ref(buffer);
        let result = self.take(interleaved.samples(), spec.rate, channels);
        self.interleaved = Some(interleaved);
        result
    }

    /// Checks one packet's interleaved samples and sends them through to 16 kHz mono.
    fn take(&mut self, interleaved: &[f32], rate: u32, channels: usize) -> Result<(), AudioError> {
        if let Some((index, value)) = find_invalid_sample(interleaved) {
            let frame = self.frames_in + (index / channels) as u64;
            return Err(AudioError::InvalidSample {
                format: self.format.clone(),
                frame,
                seconds: frame as f64 / f64::from(rate),
                value,
            });
        }
        let mono = downmix_interleaved(interleaved, channels);
        self.frames_in += mono.len() as u64;
        let resampler = self.resampler.as_mut().expect("built at the first packet");
        resampler.push(&mono, &mut self.samples)?;
        self.check_length()
    }

    fn check_length(&self) -> Result<(), AudioError> {
        if self.samples.len() as u64 > self.max_samples {
            return Err(AudioError::TooLong {
                seconds: self.limit_seconds,
                limit_seconds: self.limit_seconds,
                declared: false,
            });
        }
        Ok(())
    }

    fn skip(&mut self, err: &SymphoniaError) {
        self.corrupt += 1;
        if self.first_error.is_none() {
            tracing::warn!(
                format = %self.format,
                error = %err,
                "skipping an undecodable audio packet"
            );
            self.first_error = Some(describe(err));
        }
    }

    fn fail(&self, err: &SymphoniaError) -> AudioError {
        AudioError::Decode {
            format: self.format.clone(),
            reason: describe(err),
        }
    }

    fn finish(mut self) -> Result<DecodedAudio, AudioError> {
        let first = self.first_error.as_deref().unwrap_or_default();
        if self.corrupt > 0 && self.corrupt >= self.decoded {
            return Err(AudioError::Decode {
                reason: format!(
                    "{} of {} packets could not be decoded (first error: {first})",
                    self.corrupt,
                    self.corrupt + self.decoded
                ),
                format: self.format,
            });
        }
        if self.corrupt > 0 {
            tracing::warn!(
                format = %self.format,
                corrupt = self.corrupt,
                decoded = self.decoded,
                "skipped undecodable audio packets"
            );
        }
        let (Some((source_rate, channels)), Some(mut resampler)) =
            (self.spec, self.resampler.take())
        else {
            return Err(AudioError::NoSamples {
                format: self.format,
            });
        };
        if self.frames_in == 0 {
            return Err(AudioError::NoSamples {
                format: self.format,
            });
        }
        resampler.finish(&mut self.samples)?;
        self.check_length()?;
        Ok(DecodedAudio {
            samples: self.samples,
            source_rate,
            channels,
            format: self.format,
        })
    }
}
