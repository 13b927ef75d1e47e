//! Inputs that crashed the compiler (panic or out-of-memory) before the fixes recorded in
//! fuzz/README.md. Each must now compile or fail with an `Error`; the files are in
//! `tests/fuzz_regressions/`, and any file dropped there (e.g. a minimized fuzz artifact) is
//! covered by `no_file_panics`.
// As in the library: errors are built once per failed compilation; their size is irrelevant.
#![allow(clippy::result_large_err)]
use std::path::{Path, PathBuf};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions")
}

/// What the fuzz target does: decode, compile, format.
fn compile_bytes(bytes: &[u8]) -> kiln_codegen::Result<String> {
    let graph = kiln_codegen::onnx::decode_model(bytes, &kiln_codegen::onnx::DataDirs::new("."))?;
    kiln_codegen::compile_graph(graph, &Default::default())?.source(Path::new("/nonexistent.bin"))
}

fn compile(name: &str) -> kiln_codegen::Result<String> {
    compile_bytes(&std::fs::read(dir().join(name)).expect("regression file"))
}

fn err(name: &str) -> String {
    match compile(name) {
        Ok(_) => panic!("{name}: compiled, expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn no_file_panics() {
    let mut n = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        let _ = compile_bytes(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 15, "regression files missing ({n})");
}

#[test]
fn non_finite_gemm_alpha_beta_are_emitted_as_constants() {
    // quote's f32 literal panics on NaN and infinities.
    let src = compile("gemm_nan_alpha.onnx").unwrap();
    assert!(
        src.contains("f32::NAN") && src.contains("f32::INFINITY"),
        "{src}"
    );
}

#[test]
fn dynamic_quantize_linear_with_one_output() {
    // The fusion indexed the (absent) zero-point output.
    compile("dql_one_output.onnx").unwrap();
}

#[test]
fn huge_dims_are_an_error_not_an_overflow() {
    for f in [
        "huge_empty_const.onnx",
        "huge_input.onnx",
        "reshape_huge_allowzero.onnx",
    ] {
        let e = err(f);
        assert!(e.contains("too large"), "{f}: {e}");
    }
}

#[test]
fn broadcast_folding_is_bounded() {
    // Two folded [n*n, 1] + [1, n*n] broadcasts: 2^32 elements is rejected, 2^28 is left to run
    // time instead of being folded (it used to allocate it in the compiler).
    let e = err("fold_over_limit.onnx");
    assert!(e.contains("too large"), "{e}");
    compile("fold_too_big_to_fold.onnx").unwrap();
}

#[test]
fn matmul_with_empty_k_is_not_prepacked() {
    // Packing K = 0 weights panicked in the runtime's packer.
    compile("matmul_empty_k.onnx").unwrap();
}

#[test]
fn gemm_alpha_must_be_a_float() {
    // The float fusion used to read a mistyped alpha as 1.0.
    let e = err("gemm_int_alpha.onnx");
    assert!(e.contains("attribute `alpha` must be a float"), "{e}");
}

#[test]
fn slice_with_extreme_steps() {
    // The length `(e - s + step - 1) / step` overflowed for steps near ±i64::MAX and MIN.
    for f in [
        "slice_step_max.onnx",
        "slice_step_min.onnx",
        "slice_step_neg_max.onnx",
        "slice_fold_step_max.onnx",
    ] {
        compile(f).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    let _ = compile("slice_symbolic_min_start.onnx");
}

#[test]
fn symbolic_division_overflow() {
    // i64::MIN % -1 in the polynomial division.
    let _ = compile("symbolic_div_overflow.onnx");
}
