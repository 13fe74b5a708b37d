//! The gRPC layer's errors, mapped to `tonic::Status` in one place.

use std::time::Duration;

use tonic::{Code, Status};

use crate::audio::AudioError;
use crate::engine::EngineError;
use crate::streaming::DriverError;

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
    /// The streaming session failed (the client overran its lead, or the engine refused).
    #[error(transparent)]
    Stream(#[from] DriverError),
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
            | Self::Stream(DriverError::Overrun { .. })
            | Self::MessageTooLarge(_)
            | Self::AudioTooLong { .. } => Code::ResourceExhausted,
            Self::Engine(e) | Self::Stream(DriverError::Engine(e)) => engine_code(e),
        }
    }

    /// How long a client should wait before retrying, when retrying can help.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::TooManySessions { retry_after, .. } => Some(*retry_after),
            Self::Engine(e) | Self::Stream(DriverError::Engine(e)) => e.retry_after(),
            _ => None,
        }
    }
}

fn engine_code(e: &EngineError) -> Code {
    match e {
        EngineError::Rejected(_) => Code::InvalidArgument,
        EngineError::Saturated { .. } => Code::ResourceExhausted,
        EngineError::ShuttingDown => Code::Unavailable,
        EngineError::Model(_) => Code::Internal,
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
