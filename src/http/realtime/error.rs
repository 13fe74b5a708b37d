//! The Realtime session's errors and their `error` event, mapped in one place.
//!
//! Most failures concern one client event (bad JSON, an unknown type, a commit with nothing
//! buffered): they become an `error` event and the session goes on, as OpenAI's server does.
//! The few that end the session ([`RealtimeError::is_fatal`]) are sent the same way before
//! the socket closes.

use serde_json::{Value, json};

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::http::HttpError;
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
    /// The appended bytes are not audio in the session's format.
    #[error("bad audio: {0}")]
    Audio(#[from] AudioError),
    /// The shared streaming driver gave up (overrun, engine refusal): the session ends.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// A refusal from the gateway's checks (unknown model, unsupported language).
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl From<EngineError> for RealtimeError {
    fn from(e: EngineError) -> Self {
        Self::Http(HttpError::Engine(e))
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
        matches!(self, Self::Driver(_))
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
            Self::Audio(_) => "invalid_audio",
            Self::Driver(DriverError::Overrun { .. }) => "audio_overrun",
            Self::Driver(DriverError::Engine(e)) => engine_code(e),
            Self::Http(HttpError::ModelNotFound { .. }) => "model_not_found",
            Self::Http(HttpError::Engine(e)) => engine_code(e),
            Self::Http(_) => "invalid_request",
        }
    }

    fn error_type(&self) -> &'static str {
        match self {
            Self::Driver(DriverError::Engine(e)) | Self::Http(HttpError::Engine(e))
                if !matches!(e, EngineError::Rejected(_)) =>
            {
                "server_error"
            }
            _ => "invalid_request_error",
        }
    }

    /// The field at fault, as OpenAI's `param`.
    pub(super) fn param(&self) -> Option<&'static str> {
        match self {
            Self::InvalidValue { param, .. } => Some(param),
            Self::InvalidBase64(_) | Self::Audio(_) => Some("audio"),
            Self::Http(HttpError::ModelNotFound { .. }) => {
                Some("session.audio.input.transcription.model")
            }
            _ => None,
        }
    }

    /// The `error` server event reporting this; `client_event_id` names the event at fault.
    pub(super) fn event(&self, event_id: &str, client_event_id: Option<&str>) -> Value {
        let message = match self {
            Self::Http(HttpError::Engine(EngineError::Model(detail))) => {
                tracing::error!(%detail, "transcription failed");
                "the model failed while transcribing; the error was logged on the server".into()
            }
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

fn engine_code(e: &EngineError) -> &'static str {
    match e {
        EngineError::Rejected(_) => "invalid_value",
        EngineError::Saturated { .. } => "server_overloaded",
        EngineError::ShuttingDown => "server_shutting_down",
        EngineError::Model(_) => "server_error",
    }
}
