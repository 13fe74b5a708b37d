//! The gRPC front: `hearken.speech.v1.Speech` with native gRPC and grpc-web on one port,
//! plus the service-mesh basics (health, reflection, CORS, keepalive, message limits).
//!
//! RPC handlers only translate: they validate configs ([`config`]), feed audio to the
//! streaming policy ([`crate::session`]) and the batching engine ([`crate::engine`]), and turn
//! results into proto messages ([`convert`]). Every failure is a [`ServiceError`], mapped to a
//! `tonic::Status` in one place.

pub mod client;
mod config;
mod convert;
mod error;
pub mod proto;
mod recognize;
mod server;
mod service;
mod streaming;

pub use error::ServiceError;
pub use server::{GrpcServer, SERVICE_NAME, ServerOptions, set_health};
pub use service::{Limits, ServiceState, SpeechService};
