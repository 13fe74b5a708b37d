//! The gateway's errors and OpenAI's error envelope.
//!
//! Every failure a handler can meet is an [`HttpError`]: a mistake of this protocol's (a form
//! field, a route) or a [`ServiceError`] of the serving core, whose status, type, code and
//! retry hint come from the core's one table. The body is always OpenAI's
//! `{"error": {"message", "type", "param", "code"}}`, so the official SDKs raise their typed
//! exceptions (`BadRequestError`, `NotFoundError`, ...) with our message in them. Messages name
//! the problem; internal failures are logged and answered with a generic message.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::model::whisper::decode::DecodeError;
use crate::service::{ServiceError, openai_type};

/// Everything a gateway request can fail with: this protocol's own mistakes, and the serving
/// core's errors, whose status comes from the core's table.
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
    /// A plain request on a WebSocket endpoint, or an upgrade missing what RFC 6455 requires.
    #[error(
        "{path} is a WebSocket endpoint: connect with a WebSocket client (this request was not \
         a valid upgrade: {reason})"
    )]
    NotAWebSocket {
        /// The endpoint.
        path: &'static str,
        /// What the upgrade lacked.
        reason: String,
    },
    /// A refusal or failure of the serving core (admission, audio, limits, engine).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<AudioError> for HttpError {
    fn from(e: AudioError) -> Self {
        Self::Service(e.into())
    }
}

impl From<EngineError> for HttpError {
    fn from(e: EngineError) -> Self {
        Self::Service(e.into())
    }
}

impl HttpError {
    /// The HTTP status: this protocol's mistakes here, the core's from its table.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingField(_)
            | Self::InvalidField { .. }
            | Self::MalformedForm(_)
            | Self::NotAWebSocket { .. } => StatusCode::BAD_REQUEST,
            Self::RouteNotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Service(e) => e.http_status(),
        }
    }

    /// How long a client should wait before retrying, when retrying can help; OpenAI's SDKs
    /// honour `retry-after` on 429 and 503.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Service(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The form field at fault, as OpenAI's `param`.
    fn param(&self) -> Option<&'static str> {
        match self {
            Self::MissingField(param) | Self::InvalidField { param, .. } => Some(param),
            Self::Service(e) => match e {
                ServiceError::Audio(_)
                | ServiceError::AudioTooLong { .. }
                | ServiceError::UploadTooLarge { .. } => Some("file"),
                ServiceError::UnknownModel { .. }
                | ServiceError::Engine(EngineError::Rejected(
                    DecodeError::TranslateNeedsMultilingual,
                )) => Some("model"),
                ServiceError::Engine(EngineError::Rejected(DecodeError::UnsupportedLanguage {
                    ..
                })) => Some("language"),
                _ => None,
            },
            _ => None,
        }
    }

    /// A machine-readable `code`.
    fn code(&self) -> Option<&'static str> {
        Some(match self {
            Self::MissingField(_) => "missing_required_parameter",
            Self::InvalidField { .. } => "invalid_value",
            Self::MalformedForm(_) => "invalid_request_body",
            Self::NotAWebSocket { .. } => "websocket_upgrade_required",
            Self::RouteNotFound { .. } | Self::MethodNotAllowed { .. } => return None,
            Self::Service(e) => e.code(),
        })
    }

    /// The message clients see: ours for their mistakes, a generic one for our failures (whose
    /// details go to the log, not over the wire).
    fn public_message(&self) -> String {
        match self {
            Self::Service(e) => e.public_message(),
            other => other.to_string(),
        }
    }

    /// OpenAI's error envelope; also sent as the last event of a failed stream.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.public_message(),
                "type": openai_type(self.status()),
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
        let too_large = HttpError::Service(ServiceError::UploadTooLarge { limit: 5 });
        assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let busy = HttpError::from(EngineError::Saturated { queued: 3 });
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.body()["error"]["type"], "server_error");
        let response = busy.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }

    #[test]
    fn unsupported_codecs_are_named_and_internal_errors_are_not_leaked() {
        let ac3 = HttpError::from(AudioError::UnsupportedCodec {
            container: "mkv",
            codec: "ac3".into(),
        });
        assert_eq!(ac3.status(), StatusCode::BAD_REQUEST);
        let message = ac3.body()["error"]["message"].to_string();
        assert!(
            message.contains("mkv") && message.contains("ac3"),
            "{message}"
        );
        let internal = HttpError::from(EngineError::Model("CUDA_ERROR_OUT_OF_MEMORY".into()));
        assert_eq!(internal.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.body().to_string().contains("CUDA"));
    }
}
