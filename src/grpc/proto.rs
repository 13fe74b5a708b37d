//! Generated types and service traits for `hearken.speech.v1` (see `proto/`).
#![allow(missing_docs, unreachable_pub, clippy::all)]

tonic::include_proto!("hearken.speech.v1");

/// Encoded `FileDescriptorSet` of our protos, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hearken_descriptor");
