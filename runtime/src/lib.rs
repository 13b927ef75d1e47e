//! kiln-runtime: the kernels and small float ops that kiln-generated model code calls.
//!
//! `#![no_std]` always; `alloc` enables owned buffers (packing at run time, model workspaces),
//! `std` enables run-time CPU detection and the `KILN_ISA` override, `rayon` enables threads.
//! The generated code contains no `unsafe`: every view into the embedded weight blob and every
//! kernel call goes through the safe functions here.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
// `Error` carries shapes inline (no allocation, usable without `alloc`); it is only built on the
// failure path, so its size does not matter for speed.
#![allow(clippy::result_large_err)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(target_endian = "big")]
compile_error!(
    "kiln-runtime reads little-endian weight blobs; big-endian targets are not supported"
);

pub mod arena;
pub mod blob;
pub mod error;
pub mod gemm;
pub mod isa;
pub mod kernels;
pub mod ops;
pub mod pack;
pub mod par;
pub mod qlinear;
pub mod qlut;
pub mod quantize;
pub mod tensor;

#[cfg(feature = "alloc")]
pub use alloc::vec::Vec;
pub use error::Error;

/// Whether this build of kiln-runtime has the `alloc` feature (the allocation-free path's
/// tests assert it is off).
pub const HAS_ALLOC: bool = cfg!(feature = "alloc");

/// Grows `v` to at least `n` elements (generated code calls this when symbolic dims grow; it
/// never shrinks, so steady-state calls do not allocate).
#[cfg(feature = "alloc")]
#[inline]
pub fn ensure_len<T: Clone + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// A vector of `n` copies of `v` (generated code builds its buffers with this, so it needs no
/// `alloc` import of its own).
#[cfg(feature = "alloc")]
pub fn alloc_vec<T: Clone>(n: usize, v: T) -> Vec<T> {
    alloc::vec![v; n]
}
pub use isa::Isa;
pub use tensor::{TensorRef, TensorView};
