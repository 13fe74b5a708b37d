//! The whole-file pipeline both front ends share (gRPC `Recognize`/`RecognizeStream`, HTTP
//! `/v1/audio/transcriptions` and `/translations`): decode the payload off the async runtime,
//! check its length against the limit, submit it to the engine.

use crate::audio::stream::{StreamDecoder, StreamEncoding};
use crate::audio::{AudioError, decode_bytes};
use crate::engine::{JobHandle, JobOptions};

use super::{Service, ServiceError};

/// How a payload's bytes are encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum AudioFormat {
    /// A container (WAV, FLAC, MP3, Ogg, WebM, M4A), sniffed from its bytes; the file name's
    /// extension, when there is one, is a hint for formats that cannot be sniffed.
    Sniffed {
        /// `mp3`, `wav`, …
        extension_hint: Option<String>,
    },
    /// Headerless samples (or a container type declared by the client).
    Declared {
        /// The encoding.
        encoding: StreamEncoding,
        /// Samples per second.
        sample_rate: u32,
        /// Interleaved channels.
        channels: u32,
    },
}

impl Service {
    /// Decodes `bytes` to 16 kHz mono on the blocking pool (a long MP3 must not stall the
    /// runtime), refuses audio over `max_audio_seconds`, and queues the job.
    pub async fn submit_file(
        &self,
        bytes: Vec<u8>,
        format: AudioFormat,
        job: &JobOptions,
    ) -> Result<JobHandle, ServiceError> {
        let samples = decode(bytes, format).await?;
        let seconds = samples.len() as f64 / f64::from(crate::audio::WHISPER_SAMPLE_RATE);
        let limit_seconds = self.limits().max_audio_seconds;
        if seconds > limit_seconds {
            return Err(ServiceError::AudioTooLong {
                seconds,
                limit_seconds,
            });
        }
        Ok(self.engine().submit(samples.into(), job)?)
    }
}

/// Decodes a whole payload to 16 kHz mono off the async runtime. A decoder that panics is
/// reported as undecodable audio (the input made it panic), never as a server failure.
async fn decode(bytes: Vec<u8>, format: AudioFormat) -> Result<Vec<f32>, ServiceError> {
    let label = match &format {
        AudioFormat::Sniffed { .. } => "upload".to_string(),
        AudioFormat::Declared { encoding, .. } => format!("{encoding:?}"),
    };
    let decoded = tokio::task::spawn_blocking(move || match format {
        AudioFormat::Sniffed { extension_hint } => {
            decode_bytes(bytes, extension_hint.as_deref())?.into_whisper_input()
        }
        AudioFormat::Declared {
            encoding,
            sample_rate,
            channels,
        } => {
            let mut decoder = StreamDecoder::new(encoding, sample_rate, channels)?;
            let mut samples = decoder.push(&bytes)?;
            samples.extend(decoder.finish()?);
            Ok(samples)
        }
    })
    .await
    .map_err(|_| AudioError::DecoderPanic { format: label })?;
    Ok(decoded?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::backend::scripted::{say, silence};
    use crate::engine::{Engine, EngineConfig, ScriptedBackend};
    use crate::service::{Limits, ServedModel};
    use crate::telemetry::Metrics;

    fn service(max_audio_seconds: f64) -> Service {
        let engine = Engine::start(ScriptedBackend::english(), EngineConfig::default());
        let limits = Limits {
            max_audio_seconds,
            ..Limits::default()
        };
        let model = ServedModel {
            id: "scripted".into(),
            device: "cpu".into(),
        };
        Service::new(Arc::new(engine), model, limits, Metrics::in_memory())
    }

    fn pcm16(samples: &[f32]) -> Vec<u8> {
        crate::audio::f32_to_pcm16le(samples)
    }

    fn linear16() -> AudioFormat {
        AudioFormat::Declared {
            encoding: StreamEncoding::Linear16,
            sample_rate: 16_000,
            channels: 1,
        }
    }

    #[tokio::test]
    async fn decodes_submits_and_transcribes() {
        let service = service(60.0);
        let audio = pcm16(&say(&["six", "two"]));
        let handle = service
            .submit_file(audio, linear16(), &JobOptions::default())
            .await
            .unwrap();
        assert_eq!(handle.finish().await.unwrap().text, "six two");
    }

    #[tokio::test]
    async fn refuses_audio_over_the_limit_and_bytes_that_are_not_audio() {
        let service = service(2.0);
        let long = pcm16(&silence(2.5));
        let err = service
            .submit_file(long, linear16(), &JobOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::AudioTooLong { .. }), "{err:?}");
        let sniffed = AudioFormat::Sniffed {
            extension_hint: None,
        };
        let err = service
            .submit_file(
                b"definitely not audio".to_vec(),
                sniffed,
                &JobOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::Audio(_)), "{err:?}");
        assert_eq!(err.grpc_code(), tonic::Code::InvalidArgument);
    }
}
