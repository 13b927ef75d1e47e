//! `aarch64-u8i8i32-dotprod-4x16`: u8 activations × i8 packed weights → i32 with SDOT
//! (FEAT_DotProd: Cortex-A55/A76+, Neoverse N1, Graviton 2, Apple M1+).
//!
//! Why it looks like this: a 64-byte k-group of a panel is four 16-byte vectors, each exactly
//! one SDOT operand (4 columns × 4 k → 4 i32 lanes). The by-element form
//! `SDOT vacc.4s, vb.16b, va.4b[l]` takes the 4 activation bytes of group `l` from a vector
//! holding 16 bytes (4 groups) of one A row, so A costs one 16-byte load and one `EOR` per row
//! per 4 groups, and no broadcast. 4 rows × 16 columns = 16 accumulators (16 independent SDOT
//! chains cover its 3–4 cycle latency on 2–4 SIMD pipes) + 4 weight vectors + 4 activation
//! vectors = 24 of the 32 registers; each group's 4 weight loads feed 16 SDOTs (256 MACs), so
//! loads are ≤ 1 per 4 SDOTs.
//!
//! Signedness: SDOT is s8×s8; the activations are u8. The kernel XORs them with 0x80 in
//! registers (`a − 128` as i8) and adds `128·colsum` (`colsum << 7`) to the accumulators before
//! the epilogue: `Σ a·w = Σ (a − 128)·w + 128·Σ w`, exact in wrapping i32 (padding weights
//! are 0, so the padded sum is `colsum`). Nothing is copied per call.
use core::arch::aarch64::*;
use core::arch::asm;
use core::ops::Range;

use super::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 4;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// The CPU has Advanced SIMD and FEAT_DotProd (`Isa::Dotprod.available()`); otherwise as
/// [`super::neon::run`].
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::Dotprod.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels) }
}

#[target_feature(enable = "neon,dotprod")]
unsafe fn drive(job: &Job<'_>, out: Out, panels: Range<usize>) {
    for p in panels {
        let mut r = 0;
        while r < job.m {
            let mr = MR.min(job.m - r);
            // SAFETY: r + mr <= m and p is a valid panel, as `tile` requires.
            unsafe {
                match mr {
                    4 => tile::<4>(job, out, r, p),
                    3 => tile::<3>(job, out, r, p),
                    2 => tile::<2>(job, out, r, p),
                    _ => tile::<1>(job, out, r, p),
                }
            }
            r += mr;
        }
    }
}

/// `acc += b · a.4b[LANE]` (SDOT by element: lane j of `acc` gains the dot product of bytes
/// 4j..4j+4 of `b` with bytes 4·LANE..4·LANE+4 of `a`, all signed).
macro_rules! sdot_lane {
    ($acc:expr, $b:expr, $a:expr, $lane:literal) => {
        // SAFETY: a register-only instruction of FEAT_DotProd, which the enclosing
        // `#[target_feature(enable = "dotprod")]` function requires.
        unsafe {
            asm!(
                concat!("sdot {acc:v}.4s, {b:v}.16b, {a:v}.4b[", $lane, "]"),
                acc = inout(vreg) $acc,
                b = in(vreg) $b,
                a = in(vreg) $a,
                options(pure, nomem, nostack, preserves_flags)
            )
        }
    };
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    let groups = pk / KR;
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().add(p * pk * NR),
        )
    };
    let flip = vdupq_n_u8(0x80);
    let mut acc = [[vdupq_n_s32(0); 4]; R];
    // The four 16-byte weight vectors of group g.
    let load_b = |g: usize| -> [int8x16_t; 4] {
        // SAFETY: the 64 bytes of k-group g < groups of panel p.
        core::array::from_fn(|q| unsafe { vld1q_s8(b.add(g * NR * KR + 16 * q)) })
    };
    macro_rules! group {
        ($g:expr, $av:expr, $lane:literal) => {{
            let bv = load_b($g);
            for (acc_i, av_i) in acc.iter_mut().zip($av.iter()) {
                for (acc_ij, bv_j) in acc_i.iter_mut().zip(&bv) {
                    sdot_lane!(*acc_ij, *bv_j, *av_i, $lane);
                }
            }
        }};
    }
    let mut g = 0;
    while g + 4 <= groups {
        let av: [int8x16_t; R] = core::array::from_fn(|i| {
            // SAFETY: 16 bytes at i*pk + 4g, inside row r0+i of A (4g + 16 <= pk).
            let v = unsafe { vld1q_u8(a.add(i * pk + g * KR)) };
            vreinterpretq_s8_u8(veorq_u8(v, flip))
        });
        group!(g, av, 0);
        group!(g + 1, av, 1);
        group!(g + 2, av, 2);
        group!(g + 3, av, 3);
        g += 4;
    }
    while g < groups {
        let av: [int8x16_t; R] = core::array::from_fn(|i| {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<u32>()) };
            vreinterpretq_s8_u8(veorq_u8(vreinterpretq_u8_u32(vdupq_n_u32(a4)), flip))
        });
        group!(g, av, 0);
        g += 1;
    }
    // + 128·colsum undoes the activation flip.
    let col0 = p * NR;
    for q in 0..4 {
        // SAFETY: colsum holds padded_n(n) >= col0 + 16 entries (validated).
        let c = vshlq_n_s32::<7>(unsafe { vld1q_s32(job.b.colsum.as_ptr().add(col0 + 4 * q)) });
        for acc_i in acc.iter_mut() {
            acc_i[q] = vaddq_s32(acc_i[q], c);
        }
    }
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &acc, r0, p) };
}
