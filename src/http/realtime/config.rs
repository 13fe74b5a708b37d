//! A Realtime transcription session's settings: what `session.update` (GA) and
//! `transcription_session.update` (beta) may change, how each maps onto the streaming policy
//! and the engine job, and how the effective settings are echoed back in both shapes.
//!
//! Only fields a client sends change; the rest keep their values. Turn detection `null` turns
//! the VAD off (the client commits), `server_vad` maps `silence_duration_ms` to endpointing,
//! `prefix_padding_ms` to pre-roll and `threshold` (0..1, OpenAI's scale) onto the energy
//! VAD's threshold above the noise floor.

use serde::Deserialize;
use serde_json::{Value, json};

use super::error::RealtimeError;
use crate::audio::stream::StreamEncoding;
use crate::engine::JobOptions;
use crate::session::{Detector, SessionConfig, VadConfig};

/// The sample rate of `audio/pcm` (and beta `pcm16`) unless the client names another.
const DEFAULT_PCM_RATE: u32 = 24_000;
/// G.711 is always narrowband.
const G711_RATE: u32 = 8_000;
/// Decibels above the noise floor per unit of OpenAI's 0..1 `threshold`: 0.5 (OpenAI's
/// default) gives the policy's own 10 dB.
const DB_PER_THRESHOLD: f32 = 20.0;

/// The `include` entry (hearken's own, beside OpenAI's `...logprobs`) that asks for
/// `conversation.item.input_audio_transcription.tentative` events: the words not yet committed,
/// for a live caption. OpenAI clients never ask, so they never see the event.
pub(super) const INCLUDE_TENTATIVE: &str = "item.input_audio_transcription.tentative";

/// The `param` of turn-detection refusals that no single field explains.
const TURN_DETECTION: &str = "session.audio.input.turn_detection";

/// The audio encoding of `input_audio_buffer.append` payloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct AudioFormat {
    pub(super) encoding: StreamEncoding,
    pub(super) sample_rate: u32,
}

/// Server VAD settings, in OpenAI's terms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ServerVad {
    threshold: f32,
    prefix_padding_ms: u32,
    silence_duration_ms: u32,
}

impl Default for ServerVad {
    fn default() -> Self {
        let vad = VadConfig::default();
        Self {
            threshold: vad.threshold_db / DB_PER_THRESHOLD,
            prefix_padding_ms: vad.pre_roll_ms,
            silence_duration_ms: vad.endpoint_ms,
        }
    }
}

/// Everything a session update can set.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RealtimeConfig {
    pub(super) format: AudioFormat,
    /// `None`: manual turns, committed by the client.
    pub(super) vad: Option<ServerVad>,
    pub(super) model: Option<String>,
    pub(super) language: Option<String>,
    pub(super) prompt: Option<String>,
    /// Send tentative-text events ([`INCLUDE_TENTATIVE`]).
    pub(super) tentative: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            format: AudioFormat {
                encoding: StreamEncoding::Linear16,
                sample_rate: DEFAULT_PCM_RATE,
            },
            vad: Some(ServerVad::default()),
            model: None,
            language: None,
            prompt: None,
            tentative: false,
        }
    }
}

/// `session` of a GA `session.update`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct GaSession {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    audio: GaAudio,
    include: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct GaAudio {
    #[serde(default)]
    input: GaInput,
}

#[derive(Debug, Default, Deserialize)]
struct GaInput {
    format: Option<GaFormat>,
    transcription: Option<Transcription>,
    #[serde(default, deserialize_with = "present")]
    turn_detection: Option<Option<TurnDetection>>,
}

#[derive(Debug, Deserialize)]
struct GaFormat {
    #[serde(rename = "type")]
    kind: String,
    rate: Option<u32>,
}

/// `session` of a beta `transcription_session.update`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BetaSession {
    input_audio_format: Option<String>,
    input_audio_transcription: Option<Transcription>,
    #[serde(default, deserialize_with = "present")]
    turn_detection: Option<Option<TurnDetection>>,
    include: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Transcription {
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TurnDetection {
    #[serde(rename = "type")]
    kind: Option<String>,
    threshold: Option<f32>,
    prefix_padding_ms: Option<u32>,
    silence_duration_ms: Option<u32>,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

impl RealtimeConfig {
    /// This config with a GA `session.update` applied.
    pub(super) fn with_ga(&self, session: GaSession) -> Result<Self, RealtimeError> {
        if let Some(kind) = session.kind.as_deref().filter(|k| *k != "transcription") {
            return Err(RealtimeError::invalid(
                "session.type",
                format!("this endpoint serves transcription sessions only, not `{kind}`"),
            ));
        }
        let input = session.audio.input;
        let mut next = self.clone();
        if let Some(format) = input.format {
            next.format = ga_format(&format)?;
        }
        next.apply(input.transcription, input.turn_detection)?;
        next.include(session.include);
        Ok(next)
    }

    /// This config with a beta `transcription_session.update` applied.
    pub(super) fn with_beta(&self, session: BetaSession) -> Result<Self, RealtimeError> {
        let mut next = self.clone();
        if let Some(format) = session.input_audio_format.as_deref() {
            next.format = beta_format(format)?;
        }
        next.apply(session.input_audio_transcription, session.turn_detection)?;
        next.include(session.include);
        Ok(next)
    }

    /// `include`, when sent, replaces the list: entries this server does not produce (OpenAI's
    /// logprobs) are accepted and ignored, as OpenAI ignores what it cannot add.
    fn include(&mut self, include: Option<Vec<String>>) {
        if let Some(include) = include {
            self.tentative = include.iter().any(|entry| entry == INCLUDE_TENTATIVE);
        }
    }

    fn apply(
        &mut self,
        transcription: Option<Transcription>,
        turn_detection: Option<Option<TurnDetection>>,
    ) -> Result<(), RealtimeError> {
        if let Some(t) = transcription {
            // A field sent empty resets it (the model to the served one, the language to
            // detection); one left out keeps its value.
            let set = |field: &mut Option<String>, value: Option<String>| {
                if let Some(value) = value {
                    *field = Some(value.trim().to_string()).filter(|v| !v.is_empty());
                }
            };
            set(&mut self.model, t.model);
            set(&mut self.language, t.language);
            set(&mut self.prompt, t.prompt);
        }
        match turn_detection {
            None => {}
            Some(None) => self.vad = None,
            Some(Some(turn)) => self.vad = Some(server_vad(turn, self.vad.unwrap_or_default())?),
        }
        self.policy()?;
        Ok(())
    }

    /// The streaming policy's knobs for this session, with the energy detector (checks the
    /// settings when the server's detector is not at hand).
    pub(super) fn policy(&self) -> Result<SessionConfig, RealtimeError> {
        self.policy_with(Detector::Energy)
    }

    /// The streaming policy's knobs for this session, gated by `detector`. `threshold` is
    /// Silero's speech probability as it is (OpenAI's own scale, 0 to 1), or for the energy
    /// detector 20 dB per unit above the noise floor (0.5 → 10 dB).
    pub(super) fn policy_with(&self, detector: Detector) -> Result<SessionConfig, RealtimeError> {
        let mut config = SessionConfig::default();
        match self.vad {
            None => config.vad.enabled = false,
            Some(vad) => {
                config = SessionConfig::with_endpointing(std::time::Duration::from_millis(
                    vad.silence_duration_ms.into(),
                ));
                config.vad.pre_roll_ms = vad.prefix_padding_ms;
                config.vad.threshold_db = vad.threshold * DB_PER_THRESHOLD;
                config.vad.speech_probability = vad.threshold;
            }
        }
        config.vad.detector = detector;
        config
            .validate()
            .map_err(|e| self.turn_detection_error(&e))?;
        Ok(config)
    }

    /// A policy refusal in the client's terms: the `turn_detection` field it sent and its
    /// value, not the policy knob it maps to.
    fn turn_detection_error(&self, error: &crate::session::ConfigError) -> RealtimeError {
        let vad = self.vad.unwrap_or_default();
        let (param, field, rule) = match error.field {
            "vad.endpoint_ms" => (
                "session.audio.input.turn_detection.silence_duration_ms",
                "silence_duration_ms",
                format!("must be 30 to 10000 ms (got {})", vad.silence_duration_ms),
            ),
            "vad.pre_roll_ms" => (
                "session.audio.input.turn_detection.prefix_padding_ms",
                "prefix_padding_ms",
                format!("must be at most 1000 ms (got {})", vad.prefix_padding_ms),
            ),
            "vad.threshold_db" => (
                "session.audio.input.turn_detection.threshold",
                "threshold",
                format!(
                    "must be above 0 and below {} (got {})",
                    60.0 / DB_PER_THRESHOLD,
                    vad.threshold
                ),
            ),
            "vad.speech_probability" => (
                "session.audio.input.turn_detection.threshold",
                "threshold",
                format!(
                    "must be above 0 and below 1 with Silero VAD (got {})",
                    vad.threshold
                ),
            ),
            _ => return RealtimeError::invalid(TURN_DETECTION, error.to_string()),
        };
        RealtimeError::invalid(param, format!("turn_detection.{field} {rule}"))
    }

    /// The engine job options every request of the session starts from.
    pub(super) fn job(&self) -> JobOptions {
        JobOptions {
            language: self.language.clone(),
            prompt: self.prompt.clone(),
            ..JobOptions::default()
        }
    }

    /// The effective settings in the GA shape (`session.created` / `session.updated`).
    pub(super) fn ga_json(&self, id: &str, served_model: &str) -> Value {
        let format = match self.format.encoding {
            StreamEncoding::Mulaw => json!({"type": "audio/pcmu"}),
            StreamEncoding::Alaw => json!({"type": "audio/pcma"}),
            _ => json!({"type": "audio/pcm", "rate": self.format.sample_rate}),
        };
        json!({
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": id,
            "audio": {"input": {
                "format": format,
                "transcription": self.transcription_json(served_model),
                "turn_detection": self.turn_detection_json(),
            }},
            "include": self.include_json(),
        })
    }

    /// The effective settings in the beta shape (`transcription_session.*`).
    pub(super) fn beta_json(&self, id: &str, served_model: &str) -> Value {
        let format = match self.format.encoding {
            StreamEncoding::Mulaw => "g711_ulaw",
            StreamEncoding::Alaw => "g711_alaw",
            _ => "pcm16",
        };
        json!({
            "object": "realtime.transcription_session",
            "id": id,
            "input_audio_format": format,
            "input_audio_transcription": self.transcription_json(served_model),
            "turn_detection": self.turn_detection_json(),
            "include": self.include_json(),
        })
    }

    fn include_json(&self) -> Value {
        if self.tentative {
            json!([INCLUDE_TENTATIVE])
        } else {
            json!([])
        }
    }

    fn transcription_json(&self, served_model: &str) -> Value {
        json!({
            "model": self.model.as_deref().unwrap_or(served_model),
            "language": self.language,
            "prompt": self.prompt.as_deref().unwrap_or(""),
        })
    }

    fn turn_detection_json(&self) -> Value {
        match self.vad {
            None => Value::Null,
            Some(vad) => json!({
                "type": "server_vad",
                "threshold": vad.threshold,
                "prefix_padding_ms": vad.prefix_padding_ms,
                "silence_duration_ms": vad.silence_duration_ms,
            }),
        }
    }
}

fn ga_format(format: &GaFormat) -> Result<AudioFormat, RealtimeError> {
    let (encoding, sample_rate) = match format.kind.as_str() {
        "audio/pcm" => (
            StreamEncoding::Linear16,
            format.rate.unwrap_or(DEFAULT_PCM_RATE),
        ),
        "audio/pcmu" => (StreamEncoding::Mulaw, G711_RATE),
        "audio/pcma" => (StreamEncoding::Alaw, G711_RATE),
        other => {
            return Err(RealtimeError::invalid(
                "session.audio.input.format.type",
                format!(
                    "unsupported audio format `{other}`; use audio/pcm, audio/pcmu or audio/pcma"
                ),
            ));
        }
    };
    // The one rate range every transport accepts.
    crate::audio::check_sample_rate(sample_rate)
        .map_err(|e| RealtimeError::invalid("session.audio.input.format.rate", e.to_string()))?;
    Ok(AudioFormat {
        encoding,
        sample_rate,
    })
}

fn beta_format(format: &str) -> Result<AudioFormat, RealtimeError> {
    let (encoding, sample_rate) = match format {
        "pcm16" => (StreamEncoding::Linear16, DEFAULT_PCM_RATE),
        "g711_ulaw" => (StreamEncoding::Mulaw, G711_RATE),
        "g711_alaw" => (StreamEncoding::Alaw, G711_RATE),
        other => {
            return Err(RealtimeError::invalid(
                "session.input_audio_format",
                format!("unsupported audio format `{other}`; use pcm16, g711_ulaw or g711_alaw"),
            ));
        }
    };
    Ok(AudioFormat {
        encoding,
        sample_rate,
    })
}

fn server_vad(turn: TurnDetection, current: ServerVad) -> Result<ServerVad, RealtimeError> {
    if let Some(kind) = turn.kind.as_deref().filter(|k| *k != "server_vad") {
        return Err(RealtimeError::invalid(
            "session.audio.input.turn_detection.type",
            format!(
                "unsupported turn detection `{kind}`; use server_vad, or null to commit manually"
            ),
        ));
    }
    Ok(ServerVad {
        threshold: turn.threshold.unwrap_or(current.threshold),
        prefix_padding_ms: turn.prefix_padding_ms.unwrap_or(current.prefix_padding_ms),
        silence_duration_ms: turn
            .silence_duration_ms
            .unwrap_or(current.silence_duration_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ga(value: Value) -> Result<RealtimeConfig, RealtimeError> {
        RealtimeConfig::default().with_ga(serde_json::from_value(value).unwrap())
    }

    #[test]
    fn ga_update_maps_format_vad_and_transcription() {
        let config = ga(json!({"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcmu"},
            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500,
                               "prefix_padding_ms": 300},
        }}}))
        .unwrap();
        assert_eq!(config.format.encoding, StreamEncoding::Mulaw);
        assert_eq!(config.format.sample_rate, 8_000);
        let policy = config.policy().unwrap();
        assert_eq!((policy.vad.endpoint_ms, policy.vad.pre_roll_ms), (500, 300));
        assert_eq!(config.job().language.as_deref(), Some("en"));
    }

    #[test]
    fn null_turn_detection_is_manual_and_absent_keeps_vad() {
        let manual = ga(json!({"audio": {"input": {"turn_detection": null}}})).unwrap();
        assert!(!manual.policy().unwrap().vad.enabled);
        let kept = ga(json!({"audio": {"input": {}}})).unwrap();
        assert!(kept.policy().unwrap().vad.enabled);
    }

    #[test]
    fn bad_values_name_their_param() {
        let err = ga(json!({"audio": {"input": {"format": {"type": "audio/opus"}}}})).unwrap_err();
        assert_eq!(err.param(), Some("session.audio.input.format.type"));
        let err = RealtimeConfig::default()
            .with_beta(serde_json::from_value(json!({"input_audio_format": "mp3"})).unwrap())
            .unwrap_err();
        assert_eq!(err.param(), Some("session.input_audio_format"));
    }
}
