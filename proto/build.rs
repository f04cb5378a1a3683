//! Generates the protocol types from `proto/orchestrator_service.proto`.
//!
//! protoc comes from `protoc-bin-vendored`, so nothing needs to be installed by hand.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let include = protoc_bin_vendored::include_path()?;
    let proto = "proto/orchestrator_service.proto";
    println!("cargo:rerun-if-changed={proto}");
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // Malformed messages are INVALID_ARGUMENT, not INTERNAL (src/codec.rs).
        .codec_path("crate::codec::ProtocolCodec")
        .compile_with_config(
            config,
            &[std::path::Path::new(proto)],
            &[std::path::Path::new("proto"), include.as_path()],
        )?;
    Ok(())
}
