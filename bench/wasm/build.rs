//! Sets `--cfg kiln_minilm` / `--cfg kiln_ppocr` when the git-ignored models written by
//! `tools/fetch_minilm.py` / `tools/fetch_ppocr.py` exist (as bench/build.rs does).
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_minilm)");
    println!("cargo::rustc-check-cfg=cfg(kiln_ppocr)");
    println!("cargo::rerun-if-changed=build.rs");
    for p in [
        "../../build.rs",
        "../../tools/fetch_minilm.py",
        "../../tools/fetch_ppocr.py",
    ] {
        if Path::new(p).exists() {
            println!("cargo::rerun-if-changed={p}");
        }
    }
    if Path::new("../../models/minilm/q_default.onnx").exists() {
        println!("cargo::rerun-if-changed=../../models/minilm/q_default.onnx");
        println!("cargo::rustc-cfg=kiln_minilm");
    }
    if Path::new("../../models/ppocr/det.qc.onnx").exists()
        && Path::new("../../models/ppocr/cls.qc.onnx").exists()
    {
        for f in ["det.onnx", "det.qc.onnx", "cls.onnx", "cls.qc.onnx"] {
            println!("cargo::rerun-if-changed=../../models/ppocr/{f}");
        }
        println!("cargo::rustc-cfg=kiln_ppocr");
    }
}
