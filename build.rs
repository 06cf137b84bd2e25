//! Build script: compiles `proto/` to Rust with tonic-prost-build (protoc comes from the
//! `protoc-bin-vendored` crate, so no system package is needed), writes the encoded descriptor
//! set for gRPC reflection, and embeds `templates/` and `data/` so that `flowtime serve` on a
//! fresh database can load them without the repository at hand.

use std::path::{Path, PathBuf};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));

    let mut protos = Vec::new();
    files_under(&root.join("proto"), &mut protos);
    protos.retain(|p| p.extension().is_some_and(|e| e == "proto"));
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("protoc-bin-vendored has a protoc for this platform");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("flowtime_descriptor.bin"))
        .compile_with_config(config, &protos, &[root.join("proto")])
        .expect("compiling proto/");

    let mut embedded = Vec::new();
    for dir in ["templates", "data"] {
        files_under(&root.join(dir), &mut embedded);
    }
    embedded.retain(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        !name.starts_with('.') && !name.ends_with(".py") && !name.ends_with(".pyc")
    });
    let mut code = String::from(
        "/// Files of `templates/` and `data/` compiled into the binary: (relative path, bytes).\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for p in &embedded {
        let rel = p.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/");
        code.push_str(&format!("    ({rel:?}, include_bytes!({:?})),\n", p.to_string_lossy()));
    }
    code.push_str("];\n");
    std::fs::write(out.join("embedded.rs"), code).expect("writing embedded.rs");

    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=templates");
    println!("cargo:rerun-if-changed=data");
}
