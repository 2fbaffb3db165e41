//! Generates the gRPC service of the Open Inference Protocol from `proto/inference.proto`,
//! with a protobuf compiler written in Rust (protox), so no `protoc` is needed.

fn main() {
    let proto = "proto/inference.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"]).expect("proto/inference.proto compiles");
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        .compile_fds(descriptors)
        .expect("the gRPC service is generated");
}
