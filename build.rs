//! Build script: compiles the gRPC protos (with protox, so no `protoc` is needed) into Rust
//! and a descriptor set for server reflection, and stamps the git revision into
//! `hearken --version`, so a bug report names the exact build.

use std::path::PathBuf;
use std::process::Command;

const PROTOS: &[&str] = &["proto/hearken/speech/v1/speech.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    compile_protos()?;
    stamp_revision();
    Ok(())
}

fn compile_protos() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("hearken_descriptor.bin"),
        protox::prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}

fn stamp_revision() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    let revision = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HEARKEN_GIT_REVISION={revision}");
}
