//! Generated protobuf and gRPC code for `flowtime.v1` (see `proto/`). Proto types never leave
//! `server/`: `convert.rs` maps them to domain types by hand.
#![allow(clippy::all, clippy::pedantic, unreachable_pub, missing_docs)]

tonic::include_proto!("flowtime.v1");

/// The encoded descriptor set, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("flowtime_descriptor");
