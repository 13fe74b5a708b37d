//! The Realtime session's errors and their `error` event, mapped in one place.
//!
//! Most failures concern one client event (bad JSON, an unknown type, a commit with nothing
//! buffered): they become an `error` event and the session goes on, as OpenAI's server does.
//! The few that end the session ([`RealtimeError::is_fatal`]) are sent the same way before
//! the socket closes.

use serde_json::{Value, json};

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::service::ServiceError;
use crate::streaming::DriverError;

/// Everything a Realtime session can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub(super) enum RealtimeError {
    /// The message is not JSON (or not a JSON object with a `type`).
    #[error("the message is not a valid JSON event: {0}")]
    InvalidJson(String),
    /// A `type` this server does not handle.
    #[error("unknown or unsupported event type `{0}`")]
    UnknownEvent(String),
    /// A known event with a field of the wrong shape.
    #[error("invalid `{event_type}` event: {message}")]
    InvalidEvent {
        /// The event's `type`.
        event_type: String,
        /// What serde reported.
        message: String,
    },
    /// A setting out of range or unsupported.
    #[error("{message}")]
    InvalidValue {
        /// The field, as OpenAI names it.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `input_audio_buffer.append` with audio that is not base64.
    #[error("`audio` is not valid base64: {0}")]
    InvalidBase64(String),
    /// `input_audio_buffer.commit` with less than the minimum buffered.
    #[error(
        "buffer too small: expected at least 100ms of audio, but the buffer only has \
         {buffered_ms:.2}ms of audio"
    )]
    CommitEmpty {
        /// Milliseconds buffered.
        buffered_ms: f64,
    },
    /// An update that changes how audio is decoded or segmented while an utterance is open.
    #[error(
        "the audio format, turn detection and transcription settings can change only between \
         utterances; commit or clear the input audio buffer first"
    )]
    UpdateWhileBusy,
    /// The serving core refused what this event asked (bad audio, an unknown model, a
    /// language the model lacks): the event fails, the session goes on.
    #[error(transparent)]
    Refused(ServiceError),
    /// The session cannot go on (the client overran its lead, the engine refused its job).
    #[error(transparent)]
    Fatal(ServiceError),
}

impl From<AudioError> for RealtimeError {
    fn from(e: AudioError) -> Self {
        Self::Refused(e.into())
    }
}

impl From<EngineError> for RealtimeError {
    fn from(e: EngineError) -> Self {
        Self::Refused(e.into())
    }
}

impl From<ServiceError> for RealtimeError {
    fn from(e: ServiceError) -> Self {
        Self::Refused(e)
    }
}

impl From<DriverError> for RealtimeError {
    fn from(e: DriverError) -> Self {
        Self::Fatal(e.into())
    }
}

impl RealtimeError {
    /// Shorthand for an out-of-range setting.
    pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidValue {
            param,
            message: message.into(),
        }
    }

    /// Whether the session must end after reporting this.
    pub(super) fn is_fatal(&self) -> bool {
        matches!(self, Self::Fatal(_))
    }

    /// OpenAI's machine-readable `code`.
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::UnknownEvent(_) => "unknown_event_type",
            Self::InvalidEvent { .. } | Self::InvalidValue { .. } => "invalid_value",
            Self::InvalidBase64(_) => "invalid_base64",
            Self::CommitEmpty { .. } => "input_audio_buffer_commit_empty",
            Self::UpdateWhileBusy => "session_update_while_busy",
            Self::Refused(e) | Self::Fatal(e) => e.code(),
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Refused(e) | Self::Fatal(e) => e.openai_type(),
            _ => "invalid_request_error",
        }
    }

    /// The field at fault, as OpenAI's `param`.
    pub(super) fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidValue { param, .. } => Some(param),
            Self::InvalidBase64(_) | Self::Refused(ServiceError::Audio(_)) => Some("audio"),
            Self::Refused(ServiceError::UnknownModel { .. }) => {
                Some("session.audio.input.transcription.model")
            }
            _ => None,
        }
    }

    /// The `error` server event reporting this; `client_event_id` names the event at fault.
    pub(super) fn event(&self, event_id: &str, client_event_id: Option<&str>) -> Value {
        let message = match self {
            Self::Refused(e) | Self::Fatal(e) => e.public_message(),
            other => other.to_string(),
        };
        json!({
            "type": "error",
            "event_id": event_id,
            "error": {
                "type": self.error_type(),
                "code": self.code(),
                "message": message,
                "param": self.param(),
                "event_id": client_event_id,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overruns_end_the_session_and_model_failures_are_redacted() {
        let overrun = RealtimeError::from(DriverError::Overrun(crate::streaming::Overrun {
            backlog_seconds: 70.0,
            limit_seconds: 30.0,
        }));
        assert!(overrun.is_fatal());
        let event = overrun.event("event_1", None);
        assert_eq!(event["error"]["code"], "audio_overrun");
        assert_eq!(event["error"]["type"], "invalid_request_error");
        let failed = RealtimeError::Fatal(EngineError::Model("cuBLAS status 13".into()).into());
        let event = failed.event("event_2", Some("client_7"));
        assert_eq!(event["error"]["type"], "server_error");
        assert_eq!(event["error"]["event_id"], "client_7");
        assert!(!event.to_string().contains("cuBLAS"), "{event}");
        let language = RealtimeError::from(EngineError::ShuttingDown);
        assert!(!language.is_fatal());
    }
}
