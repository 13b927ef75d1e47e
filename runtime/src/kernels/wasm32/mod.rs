//! wasm32 kernels: simd128 (`i32x4.dot_i16x8_s` on widened operands) and relaxed-simd
//! (`i32x4.relaxed_dot_i8x16_i7x16_add_s`), plus the shared 128-bit epilogue.
//!
//! WebAssembly has no run-time feature detection (a module using an instruction the engine
//! lacks fails to validate), so the families are compiled in by target features:
//! `-C target-feature=+simd128` builds the simd128 kernel, `+simd128,+relaxed-simd` both.
//!
//! **The 7-bit operand.** `relaxed_dot_i8x16_i7x16` is deterministic only when every byte of
//! its second operand is in 0..=127; otherwise engines may treat it as signed or unsigned. kiln
//! does not try to prove this per layer: neither operand is 7-bit in general (activations are
//! u8 0..=255, and `quantize_dynamic`'s default weights are −127..=127, `reduce_range` ones
//! −64..=64, one value too wide even for a `w + 64` shift), so a per-layer proof would almost
//! never hold. Instead the kernel re-encodes the activations in registers: `a = 128·h + l` with
//! `l = a & 0x7f` and `h = a >> 7` (both 7-bit), the weights are the signed first operand, and
//! `Σ w·a = Σ w·l + 128·Σ w·h`, two exact relaxed dots (|pair sums| ≤ 2·128·127 < 2^15, so
//! even a saturating i16 lowering cannot clip). Always exact, no pack-time flag, no copies.
use core::ops::Range;

use super::{Job, Out};
use crate::isa::Isa;

#[cfg(all(target_feature = "simd128", target_feature = "relaxed-simd"))]
pub(crate) mod relaxed;
#[cfg(target_feature = "simd128")]
pub(crate) mod simd128;

// The kernels index the packed data as `Layout::Kr4`.
const _: () = assert!(matches!(
    crate::pack::Layout::NATIVE,
    crate::pack::Layout::Kr4
));

/// Runs panels `panels` of `job` with the wasm32 family `isa`.
///
/// # Safety
/// `isa` came from `Isa::resolve` (this build has it); `job` is validated as documented on
/// [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for `job.m` rows of stride
/// `job.ldc` and no other thread writes these rows' columns of these panels.
pub(crate) unsafe fn run(isa: Isa, job: &Job<'_>, out: Out, panels: Range<usize>) {
    // SAFETY: forwarded from the caller's contract.
    #[allow(unused_unsafe)] // no kernel is compiled in without simd128
    unsafe {
        match isa {
            #[cfg(all(target_feature = "simd128", target_feature = "relaxed-simd"))]
            Isa::RelaxedSimd => relaxed::run(job, out, panels),
            #[cfg(target_feature = "simd128")]
            Isa::Simd128 => simd128::run(job, out, panels),
            _ => {
                let _ = (job, out, panels);
                unreachable!("not a wasm32 family of this build: {isa}")
            }
        }
    }
}
