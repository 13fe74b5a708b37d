//! The gateway's errors and OpenAI's error envelope, mapped to HTTP responses in one place.
//!
//! Every failure a handler can meet is an [`HttpError`]; [`HttpError::status`] is the one table
//! from failure to status code, and the body is always OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`, so the official SDKs raise their typed
//! exceptions (`BadRequestError`, `NotFoundError`, ...) with our message in them. Messages name
//! the problem; internal failures are logged and answered with a generic message.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::grpc::ServiceError;
use crate::model::whisper::decode::DecodeError;

/// Everything a gateway request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A required form field is absent.
    #[error("you must provide a `{0}` field")]
    MissingField(&'static str),
    /// A form field holds a value this API does not accept.
    #[error("{message}")]
    InvalidField {
        /// The field, as OpenAI names it.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The body is not usable `multipart/form-data`.
    #[error("the request body is not valid multipart/form-data: {0}")]
    MalformedForm(String),
    /// A refusal from the layers shared with gRPC that has no closer match here.
    #[error("{0}")]
    BadRequest(String),
    /// The uploaded file is not audio this server decodes.
    #[error("could not decode the uploaded audio: {0}")]
    Audio(AudioError),
    /// The audio is longer than one request may carry.
    #[error(
        "audio is {seconds:.0} s long; this server accepts at most {limit_seconds:.0} s per request"
    )]
    AudioTooLong {
        /// Duration sent.
        seconds: f64,
        /// The limit in force.
        limit_seconds: f64,
    },
    /// The uploaded file (or the whole body) is over the upload limit.
    #[error(
        "the uploaded file is larger than this server accepts ({limit} bytes; \
         --max-upload-bytes / HEARKEN_MAX_UPLOAD_BYTES)"
    )]
    UploadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A model this server knows of but does not serve.
    #[error(
        "the model `{requested}` does not exist on this server or is not loaded; it serves `{served}`"
    )]
    ModelNotFound {
        /// What the client asked for.
        requested: String,
        /// The loaded model's id.
        served: String,
    },
    /// No route matches the path.
    #[error("Invalid URL ({method} {path})")]
    RouteNotFound {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// The path exists but not with this method.
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
    },
    /// All session slots (shared with gRPC) are taken.
    #[error("too many concurrent requests (limit {limit}); retry in {}s", retry_after.as_secs())]
    TooManySessions {
        /// `--max-sessions`.
        limit: usize,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// The scheduler refused or failed the job.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<AudioError> for HttpError {
    fn from(e: AudioError) -> Self {
        Self::Audio(e)
    }
}

impl From<ServiceError> for HttpError {
    /// Session admission happens in the shared (gRPC) service state; its refusals keep their
    /// meaning here.
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::TooManySessions { limit, retry_after } => {
                Self::TooManySessions { limit, retry_after }
            }
            ServiceError::Engine(e) => Self::Engine(e),
            ServiceError::Audio(e) => Self::Audio(e),
            ServiceError::AudioTooLong {
                seconds,
                limit_seconds,
            } => Self::AudioTooLong {
                seconds,
                limit_seconds,
            },
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl HttpError {
    /// The one table from failure to HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::MalformedForm(_)
            | Self::BadRequest(_)
            | Self::Audio(_)
            | Self::AudioTooLong { .. }
            | Self::Engine(EngineError::Rejected(_)) => StatusCode::BAD_REQUEST,
            Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ModelNotFound { .. } | Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::TooManySessions { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Engine(EngineError::Saturated { .. } | EngineError::ShuttingDown) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Engine(EngineError::Model(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// How long a client should wait before retrying, when retrying can help; OpenAI's SDKs
    /// honour `retry-after` on 429 and 503.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManySessions { retry_after, .. } => Some(*retry_after),
            Self::Engine(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The form field at fault, as OpenAI's `param`.
    fn param(&self) -> Option<&'static str> {
        match self {
            Self::MissingField(param) | Self::InvalidField { param, .. } => Some(param),
            Self::Audio(_) | Self::AudioTooLong { .. } | Self::UploadTooLarge { .. } => {
                Some("file")
            }
            Self::ModelNotFound { .. } => Some("model"),
            Self::Engine(EngineError::Rejected(DecodeError::UnsupportedLanguage { .. })) => {
                Some("language")
            }
            Self::Engine(EngineError::Rejected(DecodeError::TranslateNeedsMultilingual)) => {
                Some("model")
            }
            _ => None,
        }
    }

    /// A machine-readable `code`.
    fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::MissingField(_) => "missing_required_parameter",
            Self::InvalidField { .. } | Self::Engine(EngineError::Rejected(_)) => "invalid_value",
            Self::MalformedForm(_) => "invalid_request_body",
            Self::BadRequest(_) => "invalid_request",
            Self::Audio(_) => "invalid_audio",
            Self::AudioTooLong { .. } => "audio_too_long",
            Self::UploadTooLarge { .. } => "file_too_large",
            Self::ModelNotFound { .. } => "model_not_found",
            Self::RouteNotFound { .. } | Self::MethodNotAllowed { .. } => return None,
            Self::TooManySessions { .. } => "rate_limit_exceeded",
            Self::Engine(EngineError::Saturated { .. }) => "server_overloaded",
            Self::Engine(EngineError::ShuttingDown) => "server_shutting_down",
            Self::Engine(EngineError::Model(_)) => "server_error",
        })
    }

    fn error_type(&self) -> &'static str {
        match self.status() {
            StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
            status if status.is_server_error() => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// The message clients see: ours for their mistakes, a generic one for our failures (whose
    /// details go to the log, not over the wire).
    fn public_message(&self) -> String {
        if let Self::Engine(EngineError::Model(detail)) = self {
            tracing::error!(%detail, "transcription failed");
            return "the model failed while transcribing this audio; the error was logged on \
                    the server"
                .to_string();
        }
        self.to_string()
    }

    /// OpenAI's error envelope; also sent as the last event of a failed stream.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.public_message(),
                "type": self.error_type(),
                "param": self.param(),
                "code": self.code(),
            }
        })
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_client_error() {
            tracing::debug!(%status, error = %self, "request refused");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Some(wait) = self.retry_after() {
            let seconds = wait.as_secs().max(1).to_string();
            if let Ok(value) = HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_envelope() {
        let missing = HttpError::MissingField("file");
        assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            missing.body(),
            serde_json::json!({"error": {
                "message": "you must provide a `file` field",
                "type": "invalid_request_error",
                "param": "file",
                "code": "missing_required_parameter",
            }})
        );
        let too_large = HttpError::UploadTooLarge { limit: 5 };
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let busy = HttpError::Engine(EngineError::Saturated { queued: 3 });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.body()["error"]["type"], "server_error");
        let response = busy.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn unsupported_codecs_are_named_and_internal_errors_are_not_leaked() {
        let ac3 = HttpError::Audio(AudioError::UnsupportedCodec {
            container: "mkv",
            codec: "ac3".into(),
        });
        assert_eq!(ac3.status(), StatusCode::BAD_REQUEST);
        let message = ac3.body()["error"]["message"].to_string();
        assert!(
            message.contains("mkv") && message.contains("ac3"),
            "{message}"
        );
        let internal = HttpError::Engine(EngineError::Model("CUDA_ERROR_OUT_OF_MEMORY".into()));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.body().to_string().contains("CUDA"));
    }
}
