//! Opus for symphonia: browsers' MediaRecorder uploads (WebM) and voice notes (Ogg Opus).
//!
//! symphonia 0.5 demuxes both containers but has no Opus decoder, so this registers one built
//! on the pure-Rust `opus-decoder` (no C library to install). Opus decodes natively at 16 kHz,
//! Whisper's rate, so these files skip the resampler. The encoder's pre-skip (the `delay` the
//! demuxer reads from the Opus header) is dropped from the start, as players do.

use std::sync::LazyLock;

use opus_decoder::OpusDecoder;
use symphonia::core::audio::{
    AsAudioBufferRef, AudioBuffer, AudioBufferRef, Channels, Signal, SignalSpec,
};
use symphonia::core::codecs::{
    CODEC_TYPE_OPUS, CodecDescriptor, CodecParameters, CodecRegistry, Decoder, DecoderOptions,
    FinalizeResult,
};
use symphonia::core::errors::{Error, Result};
use symphonia::core::formats::Packet;
use symphonia::core::support_codec;

/// Output rate: Whisper's.
const OUTPUT_RATE: u32 = 16_000;
/// Opus' own clock, in which the header's pre-skip is counted.
const OPUS_CLOCK: u64 = 48_000;
/// The longest Opus packet holds 120 ms.
const MAX_FRAMES: usize = OUTPUT_RATE as usize * 120 / 1000;

/// symphonia's enabled codecs plus Opus.
pub(super) fn codec_registry() -> &'static CodecRegistry {
    static REGISTRY: LazyLock<CodecRegistry> = LazyLock::new(|| {
        let mut registry = CodecRegistry::new();
        symphonia::default::register_enabled_codecs(&mut registry);
        registry.register_all::<OpusPacketDecoder>();
        registry
    });
    &REGISTRY
}

/// A symphonia [`Decoder`] for mono or stereo Opus (one stream, as browsers and voice apps
/// write it; surround multistream files are refused by name).
pub(super) struct OpusPacketDecoder {
    params: CodecParameters,
    decoder: OpusDecoder,
    channels: usize,
    buffer: AudioBuffer<f32>,
    /// Interleaved output of the last packet.
    scratch: Vec<f32>,
    /// Pre-skip frames still to drop.
    skip: usize,
}

/// The encoder delay at 48 kHz: the Ogg demuxer reports it as `delay`; the Matroska one only
/// passes the `OpusHead` along (bytes 10–11, little-endian).
fn pre_skip(params: &CodecParameters) -> u32 {
    params
        .delay
        .unwrap_or_else(|| match params.extra_data.as_deref() {
            Some(
                [
                    b'O',
                    b'p',
                    b'u',
                    b's',
                    b'H',
                    b'e',
                    b'a',
                    b'd',
                    _,
                    _,
                    lo,
                    hi,
                    ..,
                ],
            ) => u32::from(u16::from_le_bytes([*lo, *hi])),
            _ => 0,
        })
}

impl Decoder for OpusPacketDecoder {
    fn try_new(params: &CodecParameters, _options: &DecoderOptions) -> Result<Self> {
        let channels = params.channels.map_or(1, Channels::count);
        let layout = match channels {
            1 => Channels::FRONT_LEFT,
            2 => Channels::FRONT_LEFT | Channels::FRONT_RIGHT,
            _ => {
                return Err(Error::Unsupported(
                    "Opus with more than 2 channels (multistream)",
                ));
            }
        };
        let decoder = OpusDecoder::new(OUTPUT_RATE, channels)
            .map_err(|_| Error::Unsupported("Opus decoder parameters"))?;
        let pre_skip = u64::from(pre_skip(params));
        Ok(Self {
            params: params.clone(),
            decoder,
            channels,
            buffer: AudioBuffer::new(MAX_FRAMES as u64, SignalSpec::new(OUTPUT_RATE, layout)),
            scratch: vec![0.0; MAX_FRAMES * channels],
            skip: (pre_skip * u64::from(OUTPUT_RATE) / OPUS_CLOCK) as usize,
        })
    }

    fn supported_codecs() -> &'static [CodecDescriptor] {
        &[support_codec!(CODEC_TYPE_OPUS, "opus", "Opus")]
    }

    fn reset(&mut self) {
        self.decoder.reset();
    }

    fn codec_params(&self) -> &CodecParameters {
        &self.params
    }

    fn decode(&mut self, packet: &Packet) -> Result<AudioBufferRef<'_>> {
        let frames = self
            .decoder
            .decode_float(&packet.data, &mut self.scratch, false)
            .map_err(|_| Error::DecodeError("invalid Opus packet"))?;
        let skipped = self.skip.min(frames);
        self.skip -= skipped;
        self.buffer.clear();
        self.buffer.render_reserved(Some(frames - skipped));
        for channel in 0..self.channels {
            let interleaved = self.scratch[skipped * self.channels..frames * self.channels]
                .iter()
                .skip(channel)
                .step_by(self.channels);
            for (out, &sample) in self.buffer.chan_mut(channel).iter_mut().zip(interleaved) {
                *out = sample;
            }
        }
        Ok(self.buffer.as_audio_buffer_ref())
    }

    fn finalize(&mut self) -> FinalizeResult {
        FinalizeResult::default()
    }

    fn last_decoded(&self) -> AudioBufferRef<'_> {
        self.buffer.as_audio_buffer_ref()
    }
}
