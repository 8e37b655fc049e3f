//! Generated protobuf types for the coldchain payloads and state
//! (`proto/coldchain.proto`). Do not edit: change the `.proto` file.
include!(concat!(env!("OUT_DIR"), "/messages/mod.rs"));
