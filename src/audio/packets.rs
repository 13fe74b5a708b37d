//! The packet loop: demux, decode, downmix, and the policy for damaged streams.
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

use super::{AudioError, DecodedAudio, downmix_interleaved};

/// Decodes every packet of `track_id` into mono samples at the stream's rate.
pub(super) fn decode_all(
    reader: &mut dyn FormatReader,
    track_id: u32,
    decoder: &mut dyn Decoder,
    format: String,
) -> Result<DecodedAudio, AudioError> {
    let mut sink = Sink::new(format);
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            // symphonia 0.5 signals a clean end of stream as an UnexpectedEof I/O error.
            Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => break,
            // A chained stream (new Ogg link, new track layout): Whisper input is one recording.
            Err(SymphoniaError::ResetRequired) => break,
            Err(err) if !sink.samples.is_empty() => {
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

/// Accumulates mono samples and counts good and bad packets.
struct Sink {
    format: String,
    samples: Vec<f32>,
    /// Rate and channel count of the first decoded packet.
    spec: Option<(u32, usize)>,
    /// Reused across packets: it is sized for the largest packet seen so far.
    interleaved: Option<SampleBuffer<f32>>,
    decoded: usize,
    corrupt: usize,
    first_error: Option<String>,
}

impl Sink {
    fn new(format: String) -> Self {
        Self {
            format,
            samples: Vec::new(),
            spec: None,
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
            None => self.spec = Some((spec.rate, channels)),
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
        if buffer.frames() == 0 {
            return Ok(());
        }
        let needed = buffer.capacity() * channels;
        let mut interleaved = match self.interleaved.take() {
            Some(buf) if buf.capacity() >= needed => buf,
            _ => SampleBuffer::new(buffer.capacity() as u64, spec),
        };
        interleaved.copy_interleaved_ref(buffer);
        self.samples
            .extend(downmix_interleaved(interleaved.samples(), channels));
        self.interleaved = Some(interleaved);
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

    fn finish(self) -> Result<DecodedAudio, AudioError> {
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
        match self.spec {
            Some((sample_rate, channels)) if !self.samples.is_empty() => {
                if sample_rate == 0 {
                    return Err(AudioError::InvalidSampleRate { rate: 0 });
                }
                Ok(DecodedAudio {
                    samples: self.samples,
                    sample_rate,
                    channels,
                    format: self.format,
                })
            }
            _ => Err(AudioError::NoSamples {
                format: self.format,
            }),
        }
    }
}
