//! The gRPC layer's errors, mapped to `tonic::Status` in one place.

use std::time::Duration;

use tonic::{Code, Status};

use crate::audio::AudioError;
use crate::engine::EngineError;

/// Everything a speech RPC can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request breaks the protocol or carries a bad field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The audio could not be decoded.
    #[error("bad audio: {0}")]
    Audio(#[from] AudioError),
    /// The named model is not served here.
    #[error("unknown model `{requested}`; this server serves: {served}")]
    UnknownModel {
        /// What the client asked for.
        requested: String,
        /// Comma-separated ids served.
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
    /// The client sent audio further ahead of transcription than allowed, past backpressure.
    #[error(
        "audio is arriving faster than it can be transcribed: {backlog_seconds:.1} s buffered, \
         limit {limit_seconds:.1} s (max_lead_seconds); send at real-time pace"
    )]
    Overrun {
        /// Seconds of audio waiting.
        backlog_seconds: f64,
        /// The limit in force.
        limit_seconds: f64,
    },
    /// A request message is over the size limit.
    #[error("request message too large: {0}")]
    MessageTooLarge(String),
    /// The audio is longer than the server accepts in one request.
    #[error(
        "audio is {seconds:.0} s long; this server accepts at most {limit_seconds:.0} s per request"
    )]
    AudioTooLong {
        /// Duration sent.
        seconds: f64,
        /// The limit in force.
        limit_seconds: f64,
    },
    /// The scheduler or model failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ServiceError {
    fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) | Self::Audio(_) | Self::UnknownModel { .. } => {
                Code::InvalidArgument
            }
            Self::TooManySessions { .. }
            | Self::Overrun { .. }
            | Self::MessageTooLarge(_)
            | Self::AudioTooLong { .. } => Code::ResourceExhausted,
            Self::Engine(EngineError::Rejected(_)) => Code::InvalidArgument,
            Self::Engine(EngineError::Saturated { .. }) => Code::ResourceExhausted,
            Self::Engine(EngineError::ShuttingDown) => Code::Unavailable,
            Self::Engine(EngineError::Model(_)) => Code::Internal,
        }
    }

    /// How long a client should wait before retrying, when retrying can help.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManySessions { retry_after, .. } => Some(*retry_after),
            Self::Engine(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let mut status = Status::new(e.code(), e.to_string());
        if let Some(wait) = e.retry_after() {
            // gRPC's retry pushback header: clients with retry policies honour it.
            if let Ok(v) = wait.as_millis().to_string().parse() {
                status.metadata_mut().insert("grpc-retry-pushback-ms", v);
            }
        }
        status
    }
}

/// Shorthand for protocol errors.
pub(super) fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}
