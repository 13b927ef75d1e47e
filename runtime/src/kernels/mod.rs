//! Int8 GEMM micro-kernels, one module per ISA family (see `gemm.rs` for dispatch).
//!
//! Every kernel computes the same thing, defined by [`generic`] (the scalar reference and
//! executable specification): for each output row `m` and column `n < b.n`,
//! `acc = Σ_k a[m][k] (u8) · b[k][n] (i8)` in wrapping i32 over the padded K (padding is zero),
//! then the zero-point correction and the epilogue of [`generic::correct`] /
//! [`generic::dequant`], applied while the tile is in registers. Integer accumulation is exact,
//! and the float epilogue has one fixed order of operations without FMA contraction, so every
//! ISA path is bit-identical to the reference.
use crate::gemm::Activation;
use crate::pack::PackedI8;

#[cfg(target_arch = "aarch64")]
pub(crate) mod aarch64;
pub mod generic;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::run as run_arch;
#[cfg(target_arch = "wasm32")]
pub(crate) mod wasm32;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm32::run as run_arch;

/// One GEMM call, already validated by `gemm.rs` (`b.assert_valid()`, `a.len() >= m *
/// padded_k(b.k)`, `row_term.len() >= m`, output length for `m` rows of stride `ldc >= b.n`).
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct Job<'a> {
    pub m: usize,
    /// `m` x `padded_k(b.k)` u8, row-major, padding zero.
    pub a: &'a [u8],
    pub row_term: &'a [i32],
    pub za: i32,
    pub b: PackedI8<'a>,
    pub ldc: usize,
}

/// Where and how a kernel stores its tiles. A raw pointer so that threads can share one output
/// buffer while writing disjoint column panels.
#[derive(Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) enum Out {
    F32 {
        ptr: *mut f32,
        a_scale: f32,
        act: Activation,
    },
    I32 {
        ptr: *mut i32,
    },
}

impl Out {
    /// The same destination starting `r0` rows (of stride `ldc`) further.
    ///
    /// # Safety
    /// The buffer `self` points at holds more than `r0 * ldc` elements.
    #[inline]
    pub(crate) unsafe fn rows_from(self, r0: usize, ldc: usize) -> Out {
        // SAFETY: forwarded from the caller (the offset stays inside the buffer).
        unsafe {
            match self {
                Out::F32 { ptr, a_scale, act } => Out::F32 {
                    ptr: ptr.add(r0 * ldc),
                    a_scale,
                    act,
                },
                Out::I32 { ptr } => Out::I32 {
                    ptr: ptr.add(r0 * ldc),
                },
            }
        }
    }
}

// SAFETY: `Out` is only a destination address; every user writes a disjoint set of columns
// (distinct NR panels), so sharing it across threads cannot create overlapping writes.
unsafe impl Send for Out {}
// SAFETY: as above; `Out` has no interior mutability.
unsafe impl Sync for Out {}
