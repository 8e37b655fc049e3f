//! Generates the Rust types for `proto/*.proto` with protoc (protobuf 2, the
//! same generation the `sawtooth-sdk` crate uses, so messages interoperate).
use std::fs;
use std::path::Path;

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let dest = Path::new(&out_dir).join("messages");
    fs::create_dir_all(&dest).expect("create the generated-messages folder");
    let protos = ["proto/coldchain.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    protoc_rust::Codegen::new()
        .out_dir(&dest)
        .inputs(protos)
        .include("proto")
        .run()
        .expect("protoc failed: install protobuf-compiler (scripts/setup.sh does it)");
    fs::write(dest.join("mod.rs"), "pub mod coldchain;\n").expect("write the messages module");
}
