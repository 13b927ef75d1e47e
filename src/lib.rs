//! kiln: compile quantized ONNX models into specialized Rust at build time.
//!
//! ```ignore
//! mod mlp { kiln::include_model!("models/mlp.quant.onnx"); }
//! let mut model = mlp::Model::new();
//! let x = kiln::TensorRef::new(&pixels, &[1, 64])?;
//! let out = model.run(mlp::Inputs { x })?;
//! let logits: &[f32] = out.logits.data();
//! ```
//! See the README for the build.rs form (`kiln_codegen::Builder`) and the supported operators.
#![no_std]

pub use kiln_macros::include_model;
pub use kiln_runtime as runtime;
pub use kiln_runtime::{Error, Isa, TensorRef, TensorView};
