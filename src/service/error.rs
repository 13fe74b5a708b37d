//! The one error table: every failure the serving core can meet, and what each protocol
//! says for it (gRPC code, HTTP status and OpenAI error type, the machine-readable code that
//! OpenAI envelopes and Realtime `error` events carry, and the retry hint).
//!
//! Front ends add only their own protocol's mistakes (a missing form field, a bad JSON event)
//! and name their own fields (`param`); everything else is a [`ServiceError`] and is mapped
//! here, once. Internal failures (the model's own error text) are never sent: clients get
//! [`ServiceError::public_message`], the detail goes to the log.

use std::time::Duration;

use http::StatusCode;
use tonic::Code;

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::streaming::{DriverError, Overrun};

/// Everything a transcription request or session can fail with, whatever its protocol.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request carries a value this server does not accept.
    #[error("{0}")]
    InvalidArgument(String),
    /// The audio could not be decoded.
    #[error("bad audio: {0}")]
    Audio(#[from] AudioError),
    /// A model this server does not serve.
    #[error("unknown model `{requested}`; this server serves `{served}`")]
    UnknownModel {
        /// What the client asked for.
        requested: String,
        /// The served model's id.
        served: String,
    },
    /// All session slots are taken.
    #[error("too many concurrent sessions (limit {limit}); retry in {}s", retry_after.as_secs())]
    TooManySessions {
        /// `--max-sessions`.
        limit: usize,
        /// Suggested wait.
        retry_after: Duration,
    },
    /// A live client sent audio further ahead of transcription than allowed.
    #[error(transparent)]
    Overrun(#[from] Overrun),
    /// A request message is over the size limit.
    #[error("request message too large: {0}")]
    MessageTooLarge(String),
    /// An uploaded file is over the upload limit.
    #[error(
        "the uploaded file is larger than this server accepts ({limit} bytes; \
         --max-upload-bytes / HEARKEN_MAX_UPLOAD_BYTES)"
    )]
    UploadTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The audio is longer than one request may carry.
    #[error(
        "audio is {}{seconds:.0} s long; this server accepts at most {limit_seconds:.0} s per \
         request (--max-audio-seconds)",
        if *at_least { "over " } else { "" }
    )]
    AudioTooLong {
        /// Duration sent, or how far decoding got before it stopped.
        seconds: f64,
        /// The limit in force.
        limit_seconds: f64,
        /// Decoding stopped at the limit, so the real length is unknown and longer.
        at_least: bool,
    },
    /// No API key, or not one of the tenants' (the message never echoes the key).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A tenant is over one of its quotas.
    #[error("tenant `{tenant}` is over its quota of {quota}; retry in {}s", retry_after.as_secs())]
    TenantQuota {
        /// The tenant.
        tenant: String,
        /// Which quota, with its value.
        quota: String,
        /// When enough of the quota is back.
        retry_after: Duration,
    },
    /// A browser page from an origin that is not allowed to call this server.
    #[error(
        "requests from origin `{origin}` are not allowed; the server's operator can allow it \
         with --cors-origins"
    )]
    OriginNotAllowed {
        /// The request's `Origin` header.
        origin: String,
    },
    /// The client went quiet, or sent too slowly, for longer than this server waits: a stream
    /// with no message within the idle timeout, an upload that stalled or crawled.
    #[error("{0}")]
    Timeout(String),
    /// The server shut down before this session finished, and its grace period ran out.
    #[error(
        "the server shut down before this session finished (its shutdown grace period ran \
         out); retry on another instance"
    )]
    GraceExpired,
    /// No resumable session has the token a resume presented.
    #[error(
        "no resumable session has this token: it ended, its resume window \
         (--resume-window-seconds) passed, or it is not this client's; start a new stream"
    )]
    SessionNotFound,
    /// A resume asked for responses its session no longer keeps.
    #[error(
        "responses from sequence {requested} on are no longer kept (the oldest kept is \
         {oldest}); start a new stream"
    )]
    ResumeGap {
        /// The first response the client has not received.
        requested: u64,
        /// The oldest response the session still has.
        oldest: u64,
    },
    /// A newer connection resumed this session; the old one is closed.
    #[error("this session was resumed on another connection")]
    Superseded,
    /// The scheduler refused the job, or the model failed while running it.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<DriverError> for ServiceError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Overrun(overrun) => Self::Overrun(overrun),
            DriverError::Engine(e) => Self::Engine(e),
        }
    }
}

impl ServiceError {
    /// The gRPC status code.
    pub fn grpc_code(&self) -> Code {
        match self {
            Self::InvalidArgument(_)
            | Self::Audio(_)
            | Self::UnknownModel { .. }
            | Self::Engine(EngineError::Rejected(_)) => Code::InvalidArgument,
            Self::TooManySessions { .. }
            | Self::TenantQuota { .. }
            | Self::Overrun(_)
            | Self::MessageTooLarge(_)
            | Self::UploadTooLarge { .. }
            | Self::AudioTooLong { .. }
            | Self::Engine(EngineError::Saturated { .. }) => Code::ResourceExhausted,
            Self::Timeout(_) => Code::DeadlineExceeded,
            Self::SessionNotFound => Code::NotFound,
            Self::ResumeGap { .. } => Code::FailedPrecondition,
            Self::Superseded => Code::Aborted,
            Self::OriginNotAllowed { .. } => Code::PermissionDenied,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::GraceExpired | Self::Engine(EngineError::ShuttingDown) => Code::Unavailable,
            Self::Engine(EngineError::Model(_)) => Code::Internal,
        }
    }

    /// The HTTP status (OpenAI's API conventions: 429 for rate limits, 503 while overloaded).
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::InvalidArgument(_)
            | Self::Audio(_)
            | Self::Overrun(_)
            | Self::AudioTooLong { .. }
            | Self::Engine(EngineError::Rejected(_)) => StatusCode::BAD_REQUEST,
            Self::UnknownModel { .. } | Self::SessionNotFound => StatusCode::NOT_FOUND,
            Self::ResumeGap { .. } | Self::Superseded => StatusCode::CONFLICT,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::OriginNotAllowed { .. } => StatusCode::FORBIDDEN,
            Self::MessageTooLarge(_) | Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManySessions { .. } | Self::TenantQuota { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::GraceExpired
            | Self::Engine(EngineError::Saturated { .. } | EngineError::ShuttingDown) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Engine(EngineError::Model(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// OpenAI's error `type`, which follows the HTTP status.
    pub fn openai_type(&self) -> &'static str {
        openai_type(self.http_status())
    }

    /// The machine-readable `code` of OpenAI error envelopes and Realtime `error` events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) | Self::Engine(EngineError::Rejected(_)) => "invalid_value",
            Self::Audio(_) => "invalid_audio",
            Self::UnknownModel { .. } => "model_not_found",
            Self::TooManySessions { .. } => "rate_limit_exceeded",
            Self::Overrun(_) => "audio_overrun",
            Self::MessageTooLarge(_) => "message_too_large",
            Self::UploadTooLarge { .. } => "file_too_large",
            Self::AudioTooLong { .. } => "audio_too_long",
            Self::Timeout(_) => "timeout",
            Self::SessionNotFound => "session_not_found",
            Self::ResumeGap { .. } => "resume_gap",
            Self::Superseded => "session_resumed_elsewhere",
            Self::OriginNotAllowed { .. } => "origin_not_allowed",
            Self::Unauthenticated(_) => "invalid_api_key",
            Self::TenantQuota { .. } => "quota_exceeded",
            Self::Engine(EngineError::Saturated { .. }) => "server_overloaded",
            Self::GraceExpired | Self::Engine(EngineError::ShuttingDown) => "server_shutting_down",
            Self::Engine(EngineError::Model(_)) => "server_error",
        }
    }

    /// How long a client should wait before retrying, when retrying can help (a full queue
    /// drains in about a second, a slot frees in a few, a restart takes longer). Sent as
    /// `grpc-retry-pushback-ms` and `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManySessions { retry_after, .. } | Self::TenantQuota { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::Engine(EngineError::Saturated { .. }) => Some(Duration::from_secs(1)),
            Self::GraceExpired | Self::Engine(EngineError::ShuttingDown) => {
                Some(Duration::from_secs(5))
            }
            _ => None,
        }
    }

    /// The message clients see: ours for their mistakes, a generic one for our failures,
    /// whose detail is logged here instead of sent.
    pub fn public_message(&self) -> String {
        match self {
            Self::Engine(EngineError::Model(detail)) => {
                tracing::error!(%detail, "transcription failed");
                "the model failed while transcribing this audio; the error was logged on the \
                 server"
                    .to_string()
            }
            other => other.to_string(),
        }
    }
}

/// OpenAI's error `type` for an HTTP status.
pub fn openai_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        status if status.is_server_error() => "server_error",
        _ => "invalid_request_error",
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> Self {
        let mut status = tonic::Status::new(e.grpc_code(), e.public_message());
        if let Some(wait) = e.retry_after() {
            // gRPC's retry pushback header: clients with retry policies honour it.
            if let Ok(v) = wait.as_millis().to_string().parse() {
                status.metadata_mut().insert("grpc-retry-pushback-ms", v);
            }
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::whisper::decode::DecodeError;

    #[test]
    fn every_protocol_reads_one_table() {
        let cases = [
            (
                ServiceError::Engine(EngineError::Saturated { queued: 3 }),
                Code::ResourceExhausted,
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some(1),
            ),
            (
                ServiceError::Engine(EngineError::ShuttingDown),
                Code::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some(5),
            ),
            (
                ServiceError::TooManySessions {
                    limit: 4,
                    retry_after: Duration::from_secs(2),
                },
                Code::ResourceExhausted,
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some(2),
            ),
            (
                ServiceError::Engine(EngineError::Rejected(
                    DecodeError::TranslateNeedsMultilingual,
                )),
                Code::InvalidArgument,
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
            ),
            (
                ServiceError::UnknownModel {
                    requested: "base".into(),
                    served: "tiny.en".into(),
                },
                Code::InvalidArgument,
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
            ),
        ];
        for (error, code, status, kind, retry) in cases {
            assert_eq!(error.grpc_code(), code, "{error}");
            assert_eq!(error.http_status(), status, "{error}");
            assert_eq!(error.openai_type(), kind, "{error}");
            assert_eq!(error.retry_after().map(|d| d.as_secs()), retry, "{error}");
            let grpc = tonic::Status::from(error);
            assert_eq!(
                grpc.metadata().get("grpc-retry-pushback-ms").map(|v| v
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    / 1000),
                retry
            );
        }
    }

    #[test]
    fn model_failures_are_redacted_for_every_protocol() {
        let failure =
            || ServiceError::Engine(EngineError::Model("CUDA_ERROR_OUT_OF_MEMORY".into()));
        assert_eq!(failure().http_status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!failure().public_message().contains("CUDA"));
        let status = tonic::Status::from(failure());
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("CUDA"), "{status:?}");
        assert!(status.message().contains("logged"), "{status:?}");
    }
}
