//! kiln compiles quantized ONNX models into Rust at build time.
//!
//! [`include_model!`] reads an ONNX graph while your crate compiles and generates a module: a
//! `Model` whose `run` calls fused int8 kernels (quantize activations → int8 GEMM → rescale →
//! bias → activation), with the weights baked into your binary, already packed for the
//! kernels. No model file ships with the program; there is no C++ runtime and no Python.
//!
//! # Quick start
//!
//! ```toml
//! [dependencies]
//! kiln = { path = "../kiln" }   # a checkout of the repository (not on crates.io yet)
//! ```
//!
//! The path is relative to the directory of your `Cargo.toml`. This runs the int8 digits
//! classifier that ships with kiln (64 pixels in, 10 logits out; [`example`] shows the module
//! it generates):
//!
//! ```
//! mod digits {
//!     kiln::include_model!("examples/digits/digits.quant.onnx");
//! }
//!
//! # fn main() -> Result<(), kiln::Error> {
//! let mut model = digits::Model::new(); // the best kernel family of this CPU
//! let pixels = [8.0f32; 64]; // one 8×8 image, values 0..16
//! let x = kiln::TensorRef::new(&pixels, &[1, 64])?; // Err if len != product(shape)
//! let out = model.run(digits::Inputs { x })?; // Err naming the input if its shape is wrong
//! let logits: &[f32] = out.logits.data();
//! assert_eq!(out.logits.shape(), &[1, 10]);
//! assert!(logits.iter().all(|v| v.is_finite()));
//! # Ok(())
//! # }
//! ```
//!
//! A wrong shape is an [`Error`] that names the input and both shapes, never a panic:
//!
//! ```
//! # mod digits { kiln::include_model!("examples/digits/digits.quant.onnx"); }
//! let mut model = digits::Model::new();
//! let pixels = [0.0f32; 128];
//! let x = kiln::TensorRef::new(&pixels, &[2, 64]).unwrap();
//! let err = model.run(digits::Inputs { x }).err().unwrap();
//! assert!(err.to_string().contains("[2, 64]"), "{err}");
//! ```
//!
//! # Your own model
//!
//! Quantize a float model with the command-line tool (`cargo install --path cli`, then
//! `kiln quantize model.onnx`: int8 MatMul, Gemm and Conv like onnxruntime's
//! `quantize_dynamic`), check it with `kiln inspect model.quant.onnx`, and point
//! [`include_model!`] at it. Models quantized by onnxruntime (dynamic, static QDQ, QOperator) and
//! float models compile as they are. A model kiln cannot compile is a `compile_error!` at the
//! macro's path naming the file, the node, the op and what to do.
//!
//! The build-script form runs the same compiler and writes the module to `OUT_DIR`:
//!
//! ```ignore
//! // build.rs ([build-dependencies] kiln-codegen)
//! kiln_codegen::Builder::new("model.onnx").module("mlp").compile()?;
//! // src/lib.rs
//! mod mlp { include!(concat!(env!("OUT_DIR"), "/mlp.rs")); }
//! ```
//!
//! # What the macro generates
//!
//! | item | what it is |
//! |---|---|
//! | `Model` | `new()`, `with_isa(`[`Isa`]`)`, `isa()`, `run(Inputs) -> Result<Outputs<'_>, Error>` |
//! | `Inputs<'a>` | one [`TensorRef`] field per ONNX input |
//! | `Outputs<'m>` | one [`TensorView`] per ONNX output, borrowed from the model's buffers until the next `run` |
//! | `INPUT_NAMES`, `OUTPUT_NAMES`, `INPUT_DTYPES`, `OUTPUT_DTYPES`, `INPUT_SHAPES`, `OUTPUT_SHAPES` | the interface as constants (symbolic dims by name) |
//! | `WORKSPACE_BYTES`, `NAIVE_WORKSPACE_BYTES`, `workspace_bytes(dims…)` | intermediate memory after and without buffer reuse; with symbolic dims the function gives the total for given dims |
//! | `ARENA_BYTES`, `ARENA_ALIGN`, `Arena`, `Model::run_in` | static-shape models run in a caller-provided arena, with no allocator |
//!
//! Field names are the ONNX names lowercased, every run of characters outside `[a-z0-9]` turned
//! into one `_` (`onnx::Shape_422` → `onnx_shape_422`), `input_`/`output_` before a leading digit,
//! `_` after a Rust keyword, and `_2`, `_3`, … on a collision.
//!
//! # Kernels, threads and `no_std`
//!
//! `Model::new()` picks the best int8 kernel family the CPU has ([`Isa`]: AVX-512 VNNI,
//! AVX-VNNI, AVX2 on x86_64; i8mm, dotprod, NEON on aarch64; relaxed-simd, simd128 on wasm32;
//! scalar everywhere). The environment variable `KILN_ISA=<family>` or `Model::with_isa` forces
//! one, falling back safely on CPUs without it. Integer layers give the same bits on every
//! family. With the default `rayon` feature large ops run on rayon's pool (`RAYON_NUM_THREADS`,
//! or the pool `run` is called in); small calls stay on the calling thread.
//!
//! With `default-features = false` the crate is `#![no_std]` and allocator-free: static-shape
//! models run with `Model::run_in(&mut arena, inputs)`, every intermediate at a compile-time
//! offset in one arena of `ARENA_BYTES`; `include_model!("m.onnx", link_section = "…")` places
//! the weights in a named linker section.
//!
//! The repository's `docs/guide.md` is the long-form guide (choosing a quantization, errors,
//! FAQ); `docs/embedded.md` covers firmware.
#![no_std]

// The generated code names `::kiln`; this makes that path work inside kiln's own docs.
extern crate self as kiln;

pub use kiln_macros::include_model;
pub use kiln_runtime as runtime;
pub use kiln_runtime::{Error, Isa, TensorRef, TensorView};

/// What [`include_model!`] generates, shown for the digits classifier of the quick start
/// (`examples/digits/digits.quant.onnx`: `x` `[1, 64]` f32 → `logits` `[1, 10]` f32, two int8
/// layers). Only built for the documentation.
#[cfg(doc)]
pub mod example {
    kiln::include_model!("examples/digits/digits.quant.onnx");
}
