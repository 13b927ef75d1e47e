//! Turns on `cfg(kiln_minilm)` when the MiniLM models fetched by `tools/fetch_minilm.py` are
//! present (and `cfg(kiln_ppocr)` for the PP-OCR models of `tools/fetch_ppocr.py`), so tests/minilm.rs and examples/sentence_similarity.rs can `include_model!` them
//! (a missing model file would be a compile error) and skip cleanly otherwise.
//!
//! Rerun tracking: cargo treats a `rerun-if-changed` path that does not exist as changed on
//! every build, which would rebuild kiln and every test on each `cargo test` without the models.
//! So without the models only this file and the fetch script are watched, and the fetch script
//! touches this file whenever it writes a model, which makes cargo rerun it.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_minilm)");
    println!("cargo::rustc-check-cfg=cfg(kiln_ppocr)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=tools/fetch_minilm.py");
    println!("cargo::rerun-if-changed=tools/fetch_ppocr.py");
    let dir = Path::new("models/ppocr");
    let ppocr = ["det", "cls", "rec"]
        .iter()
        .flat_map(|m| [format!("{m}.onnx"), format!("{m}.qc.onnx")]);
    let ppocr: Vec<String> = ppocr.collect();
    if ppocr.iter().all(|f| dir.join(f).exists()) {
        for f in &ppocr {
            println!("cargo::rerun-if-changed=models/ppocr/{f}");
        }
        println!("cargo::rustc-cfg=kiln_ppocr");
    } else if dir.exists() {
        println!("cargo::rerun-if-changed=models/ppocr");
    }
    let dir = Path::new("models/minilm");
    if dir.join("q_default.onnx").exists() {
        println!("cargo::rerun-if-changed=models/minilm");
        for f in ["float.onnx", "q_default.onnx", "q_recommended.onnx"] {
            if dir.join(f).exists() {
                println!("cargo::rerun-if-changed=models/minilm/{f}");
            }
        }
        println!("cargo::rustc-cfg=kiln_minilm");
    } else if dir.exists() {
        println!("cargo::rerun-if-changed=models/minilm");
    }
}
