//! wasm32 kernels: simd128 (`i32x4.dot_i16x8_s` on widened operands) and its 128-bit epilogue.
//!
//! WebAssembly has no run-time feature detection (a module using an instruction the engine
//! lacks fails to validate), so the families are compiled in by target features:
//! `-C target-feature=+simd128` builds the simd128 kernel, `+simd128,+relaxed-simd` makes
//! `Isa::RelaxedSimd` the best family too.
//!
//! **relaxed-simd runs the simd128 GEMM kernel.** `i32x4.relaxed_dot_i8x16_i7x16_add_s` is
//! deterministic only for a 7-bit second operand, and neither u8 activations nor the default
//! −127..=127 weights are 7-bit, so an exact kernel needs two relaxed dots per 16 MACs (the
//! activations split into `a & 0x7f` and `a >> 7`). V8 (Node 20) lowers each relaxed dot on
//! x86_64 to a `pmaddubsw` + `pmaddwd` + `paddd` sequence, so that kernel cost more instructions
//! per MAC than `dot_i16x8_s` + add: measured under Node 20 (bench `wasm` mode), MiniLM-L3 b1
//! s128 took 75.6 ms with it against 50.0 ms for the simd128 build, and every CNN fixture was
//! slower too. A build flag must not make kiln slower, so `RelaxedSimd` uses the simd128 kernel
//! until an engine runs a relaxed kernel faster (the removed kernel is in git history).
use core::ops::Range;

use super::{Job, Out};
use crate::isa::Isa;

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
            // See the module doc: relaxed-simd has no faster GEMM kernel.
            #[cfg(target_feature = "simd128")]
            Isa::Simd128 | Isa::RelaxedSimd => simd128::run(job, out, panels),
            _ => {
                let _ = (job, out, panels);
                unreachable!("not a wasm32 family of this build: {isa}")
            }
        }
    }
}
