//! `wasm` mode: kiln's wasm32-wasip1 builds (`+simd128`, `+simd128,+relaxed-simd`) against
//! onnxruntime-web (wasm backend, one thread) under Node, on the same models and inputs.
//!
//! ```text
//! cargo run --release -- wasm quick|all    # → bench/results/wasm_{quick,all}.{md,json}
//! ```
//! Builds bench/wasm (its own workspace: kiln without rayon, as a browser user builds it) once
//! per feature set, installs the pinned onnxruntime-web into bench/wasm/node_modules if it is
//! missing, and runs bench/wasm/run.mjs, which times every peer in rotating rounds.
use std::path::Path;
use std::process::Command;

/// The onnxruntime-web release compared against (npm).
pub const ORT_WEB_VERSION: &str = "1.31.1";

/// (label, RUSTFLAGS target features) of the kiln builds.
const BUILDS: &[(&str, &str)] = &[
    ("kiln simd128", "+simd128"),
    ("kiln relaxed-simd", "+simd128,+relaxed-simd"),
];

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("kiln-bench wasm: cannot start {what}: {e}"));
    assert!(
        status.success(),
        "kiln-bench wasm: {what} failed ({status})"
    );
}

pub fn main(bench: &Path, mode: &str) {
    assert!(
        mode == "quick" || mode == "all",
        "usage: kiln-bench wasm quick|all"
    );
    let dir = bench.join("wasm");
    let pkg = dir.join("node_modules/onnxruntime-web/package.json");
    let installed = std::fs::read_to_string(&pkg)
        .is_ok_and(|s| s.contains(&format!("\"version\": \"{ORT_WEB_VERSION}\"")));
    if !installed {
        run(
            Command::new("npm")
                .current_dir(&dir)
                .args(["install", "--no-save", "--no-audit", "--no-fund"])
                .arg(format!("onnxruntime-web@{ORT_WEB_VERSION}")),
            "npm install onnxruntime-web",
        );
    }
    let mut peers = Vec::new();
    for (label, features) in BUILDS {
        let target = format!("target/{}", features.replace(['+', ','], ""));
        run(
            Command::new("cargo")
                .current_dir(&dir)
                .env("RUSTFLAGS", format!("-C target-feature={features}"))
                .env("CARGO_TARGET_DIR", &target)
                .args(["build", "--release", "--target", "wasm32-wasip1"]),
            &format!("cargo build ({label})"),
        );
        peers.push(format!(
            "{label}={}/{target}/wasm32-wasip1/release/kiln-bench-wasm.wasm",
            dir.display()
        ));
    }
    let results = bench.join("results");
    std::fs::create_dir_all(&results).expect("create bench/results");
    let out = results.join(format!("wasm_{mode}.json"));
    // --no-liftoff: see .ci/run (Node 20's baseline tier miscompiles a relaxed dot in a loop);
    // TurboFan compiles everything up front, so warm-up does not time tier-up either.
    run(
        Command::new("node")
            .current_dir(&dir)
            .args([
                "--experimental-wasm-relaxed-simd",
                "--no-liftoff",
                "--no-warnings",
                "run.mjs",
                mode,
            ])
            .arg(&out)
            .args(&peers),
        "node run.mjs",
    );
    eprintln!(
        "kiln-bench wasm: wrote {} and its .md",
        out.with_extension("").display()
    );
}
