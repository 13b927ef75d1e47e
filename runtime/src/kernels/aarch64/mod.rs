//! aarch64 kernels: NEON baseline (widening multiplies, any ARMv8-A), dotprod (SDOT) and i8mm
//! (USMMLA), plus the shared 128-bit epilogue.
//!
//! All three read the aarch64 packed layout `pack::Layout::Kr8` (8-deep k-groups, each 16-byte
//! vector `[c k0..8, c+1 k0..8]`, and a last 4-deep group when `padded_k % 8 == 4`) and the u8
//! A rows as `quantize_pack_a` writes them; nothing is copied or re-packed per call. The layout
//! is USMMLA's weight operand; the other two adapt to it at no or little cost:
//!
//! * **neon**: `SXTL`/`SXTL2` widen a vector to one i16x8 per column; u8·i8 products fit i16
//!   exactly (−32640..=32385), so `UXTL`, `MUL` (i16) and `SADALP` (pairwise add into i32) are
//!   exact. One column per accumulator: a 2×8 register tile, two passes per panel.
//! * **dotprod**: the vector-form SDOT with the row's 8 activation bytes duplicated (64-bit
//!   `DUP`) puts k0..4 and k4..8 of a column in adjacent lanes, folded by `ADDP` once per tile.
//!   SDOT is s8×s8, so the kernel flips the activations' top bit (`a ^ 0x80 = a − 128` as i8)
//!   and adds `colsum << 7`: `Σ a·w = Σ (a − 128)·w + 128·colsum` (padding weights are 0, so
//!   the padded sum equals `colsum`). Wrapping i32 keeps this exact. 2×16 tile.
//! * **i8mm**: USMMLA multiplies u8 by s8 directly; its 8×2 weight operand is one load. 4×16.
//!
//! Each family exposes `pub(crate) unsafe fn run(job, out, panels)`; [`run`] dispatches on a
//! resolved `Isa`. The dotprod and i8mm instructions are written with `asm!` (their intrinsics
//! are not stable) inside `#[target_feature(enable = "dotprod")]` / `"i8mm"` functions.
use core::arch::aarch64::*;
use core::ops::Range;

use super::{Job, Out};
use crate::gemm::Activation;
use crate::isa::Isa;
use crate::pack::NR;

pub(crate) mod dotprod;
pub(crate) mod i8mm;
pub(crate) mod neon;

// The kernels index the packed data as `Layout::Kr8`.
const _: () = assert!(matches!(
    crate::pack::Layout::NATIVE,
    crate::pack::Layout::Kr8
));

/// Runs panels `panels` of `job` with the aarch64 family `isa`.
///
/// # Safety
/// `isa` came from `Isa::resolve` (the CPU has it); `job` is validated as documented on [`Job`];
/// `panels` lies within `padded_n(b.n)/NR`; `out` is valid for `job.m` rows of stride `job.ldc`
/// and no other thread writes these rows' columns of these panels.
pub(crate) unsafe fn run(isa: Isa, job: &Job<'_>, out: Out, panels: Range<usize>) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        match isa {
            Isa::I8mm => i8mm::run(job, out, panels),
            Isa::Dotprod => dotprod::run(job, out, panels),
            Isa::Neon => neon::run(job, out, panels),
            _ => unreachable!("not an aarch64 family: {isa}"),
        }
    }
}

/// `act` on 4 lanes with the reference semantics (`Activation::apply`): compare and select,
/// so NaN and −0.0 go to the bound exactly as `x > 0 ? x : 0` does (FMAX would keep NaN).
#[target_feature(enable = "neon")]
#[inline]
fn act_128(f: float32x4_t, act: Activation) -> float32x4_t {
    match act {
        // Gelu is applied by `qgemm_f32` after the kernel; kernels never see it.
        Activation::None | Activation::Gelu => f,
        Activation::Relu => {
            let z = vdupq_n_f32(0.0);
            vbslq_f32(vcgtq_f32(f, z), f, z)
        }
        Activation::Clip { min, max } => {
            let (lo, hi) = (vdupq_n_f32(min), vdupq_n_f32(max));
            let f = vbslq_f32(vcgtq_f32(f, lo), f, lo);
            vbslq_f32(vcltq_f32(f, hi), f, hi)
        }
    }
}

/// Epilogue for an `R` x 16 tile held as four `int32x4_t` per row (columns 0..4, 4..8, 8..12,
/// 12..16 of panel `p`; the full `Σ a·w`), rows `r0..r0+R`: zero-point correction, then (f32
/// output) convert (SCVTF, round to nearest even like `as f32`), scale, bias, activation, and
/// store only the columns `< job.b.n`. No FMA: MUL then ADD, as the reference.
///
/// # Safety
/// `job` validated as documented on [`Job`]; `r0 + R <= job.m`; panel `p` is inside
/// `padded_n(b.n)`; `out` points at a buffer valid for `job.m` rows of stride `ldc`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn epilogue_128<const R: usize>(
    job: &Job<'_>,
    out: Out,
    acc: &[[int32x4_t; 4]; R],
    r0: usize,
    p: usize,
) {
    let col0 = p * NR;
    let width = NR.min(job.b.n - col0);
    // SAFETY: the per-column arrays have padded_n(n) >= col0 + 16 entries (validated).
    let ld = |s: &[i32], h: usize| unsafe { vld1q_s32(s.as_ptr().add(col0 + 4 * h)) };
    let za = vdupq_n_s32(job.za);
    let zc: [int32x4_t; 4] = core::array::from_fn(|h| vmulq_s32(za, ld(job.b.colsum, h)));
    let zb: [int32x4_t; 4] = core::array::from_fn(|h| ld(job.b.zero_point, h));
    let correct = |i: usize, h: usize| {
        let rt = vdupq_n_s32(job.row_term[r0 + i]);
        vsubq_s32(vsubq_s32(acc[i][h], zc[h]), vmulq_s32(zb[h], rt))
    };
    match out {
        Out::F32 { ptr, a_scale, act } => {
            // SAFETY: as for `ld`.
            let ldf = |s: &[f32], h: usize| unsafe { vld1q_f32(s.as_ptr().add(col0 + 4 * h)) };
            let sa = vdupq_n_f32(a_scale);
            let s: [float32x4_t; 4] = core::array::from_fn(|h| vmulq_f32(sa, ldf(job.b.scale, h)));
            let bias = job
                .b
                .bias
                .map(|b| -> [float32x4_t; 4] { core::array::from_fn(|h| ldf(b, h)) });
            for i in 0..R {
                let f: [float32x4_t; 4] = core::array::from_fn(|h| {
                    let mut v = vmulq_f32(vcvtq_f32_s32(correct(i, h)), s[h]);
                    if let Some(b) = bias {
                        v = vaddq_f32(v, b[h]);
                    }
                    act_128(v, act)
                });
                // SAFETY: row r0+i < m and columns col0..col0+width <= n are inside the output
                // (validated); the temporary is a local array of 16 floats.
                unsafe {
                    let dst = ptr.add((r0 + i) * job.ldc + col0);
                    if width == NR {
                        for (h, v) in f.iter().enumerate() {
                            vst1q_f32(dst.add(4 * h), *v);
                        }
                    } else {
                        let mut tmp = [0f32; NR];
                        for (h, v) in f.iter().enumerate() {
                            vst1q_f32(tmp.as_mut_ptr().add(4 * h), *v);
                        }
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
                    }
                }
            }
        }
        Out::I32 { ptr } => {
            for i in 0..R {
                let v: [int32x4_t; 4] = core::array::from_fn(|h| correct(i, h));
                // SAFETY: as for the f32 store.
                unsafe {
                    let dst = ptr.add((r0 + i) * job.ldc + col0);
                    if width == NR {
                        for (h, v) in v.iter().enumerate() {
                            vst1q_s32(dst.add(4 * h), *v);
                        }
                    } else {
                        let mut tmp = [0i32; NR];
                        for (h, v) in v.iter().enumerate() {
                            vst1q_s32(tmp.as_mut_ptr().add(4 * h), *v);
                        }
                        core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width);
                    }
                }
            }
        }
    }
}
