//! Sets `--cfg kiln_minilm` when issue 3's MiniLM model exists, so the bench compiles it with
//! `include_model!` (see the hook in src/cases.rs). While the file is missing only this script is
//! watched (watching a missing path would rebuild the bench every time): after the model first
//! appears, `touch bench/build.rs`; the harness prints that hint.
use std::path::Path;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(kiln_minilm)");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/minilm/q_default.onnx");
    if model.exists() {
        println!("cargo:rustc-cfg=kiln_minilm");
        println!("cargo:rerun-if-changed={}", model.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
