//! The gRPC front: `hearken.speech.v1.Speech` with native gRPC and grpc-web on one port,
//! plus the service-mesh basics (health, reflection, CORS, keepalive, message limits).
//!
//! RPC handlers only translate: they validate configs ([`config`]), run streams through the
//! shared [`SessionDriver`](crate::streaming::SessionDriver) and whole files through the
//! serving core's pipeline ([`crate::service`]), and turn results into proto messages
//! ([`convert`]). Every failure is a [`ServiceError`], whose gRPC status the core's one error
//! table gives.

pub mod client;
mod config;

/// Fuzzing entry: `bytes` decoded as a `RecognitionConfig` and checked against `service`, as
/// a stream's first message is. Must not panic.
#[doc(hidden)]
pub fn fuzz_config(service: &crate::service::Service, bytes: &[u8]) {
    use prost::Message;
    if let Ok(config) = proto::RecognitionConfig::decode(bytes) {
        let _ = config::resolve(&config, service);
    }
}
mod convert;
pub mod proto;
mod recognize;
mod resume;
mod server;
mod service;
mod streaming;

pub use server::{GrpcServer, SERVICE_NAME, ServerOptions, grpc_web_routes, set_health};
pub use service::SpeechService;

use crate::service::ServiceError;

/// A protocol mistake of the client's, as INVALID_ARGUMENT.
fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::InvalidArgument(message.into())
}

#[cfg(test)]
mod tests;
