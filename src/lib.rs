//! hearken: self-hosted speech-to-text.
//!
//! The crate is laid out by concern: [`audio`] turns files and PCM into 16 kHz mono samples,
//! [`model`] holds the Whisper network, its weights loaders and the model store, and [`eval`]
//! scores transcripts (text normalisation, WER) for tests and benchmarks. Serving layers build
//! on these and never the other way round: [`engine`] batches jobs onto a model backend,
//! [`session`] is the streaming policy, [`streaming`] joins the two for live sessions,
//! [`service`] is the serving core both front ends share (admission, limits, the whole-file
//! pipeline, one error table), and [`grpc`] and [`http`] translate their protocols onto it
//! without knowing of each other.
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod audio;
pub mod cli;
pub mod engine;
pub mod eval;
pub mod formats;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
pub mod loadgen;
pub mod model;
pub mod server;
pub mod service;
pub mod session;
pub mod streaming;
pub mod telemetry;
#[cfg(test)]
mod test_support;
#[doc(hidden)]
pub mod testing;
pub mod tls;
