//! Turning a client's `RecognitionConfig` into checked settings, defaults filled in.

use std::time::Duration;

use super::invalid;
use super::proto::{self, AudioEncoding, RecognitionConfig};
use crate::audio::stream::StreamEncoding;
use crate::engine::JobOptions;
use crate::model::whisper::tokens::Task;
use crate::service::{AudioFormat, Service, ServiceError};
use crate::session::{Detector, StreamingPolicy};
use crate::streaming::Overflow;

/// Default silence that ends an utterance.
pub(super) const DEFAULT_ENDPOINTING: Duration = Duration::from_millis(800);
/// Bounds on a client's endpointing choice.
const ENDPOINTING_RANGE_MS: (u32, u32) = (100, 10_000);

/// A validated configuration.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    /// How the audio bytes are encoded; `None` = sniff the container (Recognize only).
    pub(super) encoding: Option<StreamEncoding>,
    pub(super) sample_rate: u32,
    /// The container the client declared (`flac`, `ogg`, `wav`, `mp3`), checked against the
    /// audio's first bytes.
    pub(super) declared_container: Option<&'static str>,
    pub(super) channels: u32,
    pub(super) job: JobOptions,
    pub(super) interim_results: bool,
    pub(super) single_utterance: bool,
    pub(super) endpointing: Duration,
    /// The speech detector (streams and files): the client's choice, else the server's.
    pub(super) detector: Detector,
    pub(super) max_lead_seconds: f64,
    pub(super) overflow: Overflow,
    /// Which rule commits a stream's words before its utterance ends.
    pub(super) policy: StreamingPolicy,
    /// Kept through a broken connection for the server's resume window (when it has one).
    pub(super) resumable: bool,
    /// The configuration echoed back in `SessionStarted`.
    pub(super) effective: RecognitionConfig,
}

impl Settings {
    /// The whole-file pipeline's view of the encoding.
    pub(super) fn audio_format(&self) -> AudioFormat {
        match self.encoding {
            None => AudioFormat::Sniffed {
                extension_hint: None,
            },
            Some(encoding) => AudioFormat::Declared {
                encoding,
                sample_rate: self.sample_rate,
                channels: self.channels,
            },
        }
    }
}

/// Checks `config` against what this server can do.
pub(super) fn resolve(
    config: &RecognitionConfig,
    service: &Service,
) -> Result<Settings, ServiceError> {
    check_model(&config.model, service)?;
    let encoding_enum = AudioEncoding::try_from(config.encoding)
        .map_err(|_| invalid(format!("unknown audio encoding value {}", config.encoding)))?;
    let (encoding, default_rate) = match encoding_enum {
        AudioEncoding::Linear16 => (Some(StreamEncoding::Linear16), 0),
        AudioEncoding::Float32Le => (Some(StreamEncoding::Float32Le), 0),
        AudioEncoding::Mulaw => (Some(StreamEncoding::Mulaw), 8_000),
        AudioEncoding::Alaw => (Some(StreamEncoding::Alaw), 8_000),
        AudioEncoding::Flac | AudioEncoding::Ogg | AudioEncoding::Wav | AudioEncoding::Mp3 => {
            (Some(StreamEncoding::Container), 16_000)
        }
        AudioEncoding::Auto | AudioEncoding::Unspecified => (None, 16_000),
    };
    let sample_rate = match config.sample_rate_hertz {
        0 if default_rate == 0 => {
            return Err(invalid(format!(
                "sample_rate_hertz is required for {} audio",
                encoding_enum.as_str_name()
            )));
        }
        0 => default_rate,
        rate => rate,
    };
    let channels = config.channels.max(1);
    let task = match proto::Task::try_from(config.task) {
        Ok(proto::Task::Translate) => Task::Translate,
        Ok(_) => Task::Transcribe,
        Err(_) => return Err(invalid(format!("unknown task value {}", config.task))),
    };
    let endpointing = match config.endpointing_ms {
        0 => DEFAULT_ENDPOINTING,
        ms if (ENDPOINTING_RANGE_MS.0..=ENDPOINTING_RANGE_MS.1).contains(&ms) => {
            Duration::from_millis(ms.into())
        }
        ms => {
            return Err(invalid(format!(
                "endpointing_ms must be between {} and {} (got {ms})",
                ENDPOINTING_RANGE_MS.0, ENDPOINTING_RANGE_MS.1
            )));
        }
    };
    let limit = service.limits().max_lead_seconds;
    let max_lead_seconds = match config.max_lead_seconds {
        // Unset (proto3's zero): the server's limit.
        0.0 => limit,
        x if x > 0.0 && x.is_finite() => f64::from(x).min(limit),
        x => {
            return Err(invalid(format!(
                "max_lead_seconds must be a positive number of seconds, or 0 for the server's \
                 limit ({limit} s); got {x}"
            )));
        }
    };
    let overflow = match proto::Overflow::try_from(config.overflow) {
        Ok(proto::Overflow::DropOldest) => Overflow::DropOldest,
        Ok(_) => Overflow::Reject,
        Err(_) => {
            return Err(invalid(format!(
                "unknown overflow value {}; use REJECT or DROP_OLDEST",
                config.overflow
            )));
        }
    };
    let detector = detector(config.vad, service)?;
    let policy = match proto::StreamingPolicy::try_from(config.policy) {
        Ok(proto::StreamingPolicy::AlignAtt) => StreamingPolicy::align_att(),
        Ok(_) => StreamingPolicy::LocalAgreement,
        Err(_) => {
            return Err(invalid(format!(
                "unknown policy value {}; use LOCAL_AGREEMENT or ALIGN_ATT",
                config.policy
            )));
        }
    };
    let language = Some(config.language.trim().to_string()).filter(|l| !l.is_empty());
    let prompt = Some(config.prompt.trim().to_string()).filter(|p| !p.is_empty());
    let job = JobOptions {
        language,
        task,
        prompt,
        word_timestamps: config.word_timestamps,
        // Recognize answers with each result's times.
        text_only: false,
        trim_encoder: false,
        temperature: None,
        single_pass: false,
        // Streams mark each request live (`streaming_job_options`); Recognize is a file.
        live: false,

        // The server's beam width (`--beam-size`) for files; live requests decode greedily.
        beam_size: None,
    };
    service.engine().validate(&job)?;
    let resumable = resumable(config, service);
    let effective = RecognitionConfig {
        encoding: encoding_enum as i32,
        sample_rate_hertz: sample_rate,
        channels,
        model: service.model_id().to_string(),
        endpointing_ms: endpointing.as_millis() as u32,
        max_lead_seconds: max_lead_seconds as f32,
        vad: match detector {
            Detector::Energy => proto::VoiceActivityDetector::Energy,
            Detector::Silero(_) => proto::VoiceActivityDetector::Silero,
        } as i32,
        resumable,
        policy: proto::StreamingPolicy::from(policy) as i32,
        ..config.clone()
    };
    let declared_container = match encoding_enum {
        AudioEncoding::Flac => Some("flac"),
        AudioEncoding::Ogg => Some("ogg"),
        AudioEncoding::Wav => Some("wav"),
        AudioEncoding::Mp3 => Some("mp3"),
        _ => None,
    };
    Ok(Settings {
        declared_container,
        encoding,
        sample_rate,
        channels,
        job,
        interim_results: config.interim_results,
        single_utterance: config.single_utterance,
        endpointing,
        detector,
        max_lead_seconds,
        overflow,
        policy,
        resumable,
        effective,
    })
}

impl From<StreamingPolicy> for proto::StreamingPolicy {
    fn from(policy: StreamingPolicy) -> Self {
        match policy {
            StreamingPolicy::LocalAgreement => Self::LocalAgreement,
            StreamingPolicy::AlignAtt { .. } => Self::AlignAtt,
        }
    }
}

/// Whether a stream is resumable: asked for, on a server with a resume window.
fn resumable(config: &RecognitionConfig, service: &Service) -> bool {
    config.resumable && !service.limits().resume_window.is_zero()
}

/// The detector a config asks for; Silero only where the server loaded it.
fn detector(requested: i32, service: &Service) -> Result<Detector, ServiceError> {
    match proto::VoiceActivityDetector::try_from(requested) {
        Ok(proto::VoiceActivityDetector::Unspecified) => Ok(service.detector().clone()),
        Ok(proto::VoiceActivityDetector::Energy) => Ok(Detector::Energy),
        Ok(proto::VoiceActivityDetector::Silero) => match service.detector() {
            silero @ Detector::Silero(_) => Ok(silero.clone()),
            Detector::Energy => Err(invalid(
                "vad SILERO is not available: this server runs with --vad energy; send ENERGY \
                 or leave vad unset",
            )),
        },
        Err(_) => Err(invalid(format!(
            "unknown vad value {requested}; use SILERO or ENERGY"
        ))),
    }
}

fn check_model(requested: &str, service: &Service) -> Result<(), ServiceError> {
    let requested = requested.trim();
    if requested.is_empty() || requested == service.model_id() {
        return Ok(());
    }
    Err(ServiceError::UnknownModel {
        requested: requested.to_string(),
        served: service.model_id().to_string(),
    })
}
