//! `aarch64-u8i8i32-dotprod-2x16`: u8 activations × i8 packed weights → i32 with SDOT
//! (FEAT_DotProd: Cortex-A55/A76+, Neoverse N1, Graviton 2, Apple M1+).
//!
//! Why it looks like this: aarch64 packs the weights in 8-deep k-groups (`pack::Layout::Kr8`,
//! chosen for USMMLA), so a 16-byte weight vector is `[c k0..8, c+1 k0..8]`. The vector form
//! `SDOT vacc.4s, vb.16b, va.16b` dots the 4-byte lanes of `vb` and `va` position by position;
//! with `va` = the row's 8 activation bytes twice (one 64-bit `DUP`), lanes 0/1 gain column c
//! over k0..4 / k4..8 and lanes 2/3 column c+1. So each weight vector is an SDOT operand as
//! loaded, and one `ADDP` per 4 columns per row folds the lane pairs at the end of the tile.
//! An accumulator holds 2 columns, so a row of 16 columns takes 8: the tile is 2 rows × 16
//! columns = 16 accumulators (16 independent SDOT chains cover its 3–4 cycle latency on 2–4
//! SIMD pipes) + 8 weight vectors + 2 activation vectors = 26 of the 32 registers; 4 rows would
//! need 32 accumulators. Per 8 k: 8 weight loads (4 `LDP q`), per row one 8-byte load into a
//! general register, the flip (`EOR` there) and one `DUP`, and 16 SDOT (256 MACs): the compiled
//! inner loop is 29 instructions, 18 of them SIMD. The by-element form on 4-deep groups
//! (`SDOT .4b[lane]`, which broadcasts 4 bytes, not 8) needed one SIMD `EOR` per 16 SDOTs of a
//! row (4 rows × 16 columns); this ~6 % more SIMD work on dotprod-only CPUs buys the
//! permute-free i8mm kernel on the same blob (docs/design.md, 11). A K tail of one 4-deep group
//! (`padded_k % 8 == 4`, 4 columns × 4 k per vector) is added after the fold with 4-byte
//! activations repeated 4 times.
//!
//! Signedness: SDOT is s8×s8; the activations are u8. The kernel XORs them with 0x80 (`a − 128`
//! as i8) and adds `128·colsum` (`colsum << 7`) to the accumulators before the epilogue:
//! `Σ a·w = Σ (a − 128)·w + 128·Σ w`, exact in wrapping i32 (padding weights are 0, so the
//! padded sum is `colsum`). Nothing is copied per call.
use core::arch::aarch64::*;
use core::arch::asm;
use core::ops::Range;

use super::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{Layout, NR, padded_k};

const MR: usize = 2;

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
                if mr == 2 {
                    tile::<2>(job, out, r, p);
                } else {
                    tile::<1>(job, out, r, p);
                }
            }
            r += mr;
        }
    }
}

/// `acc += b · a` (SDOT, vector form: lane j of `acc` gains the dot product of bytes 4j..4j+4
/// of `b` and of `a`, all signed).
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn sdot(acc: int32x4_t, b: int8x16_t, a: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of FEAT_DotProd, which this function's target
    // features require.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {b:v}.16b, {a:v}.16b",
            acc = inout(vreg) acc,
            b = in(vreg) b,
            a = in(vreg) a,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    let full = Layout::Kr8.full_k(pk);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().add(p * pk * NR),
        )
    };
    // acc[i][j] = [c(2j) k0..4, c(2j) k4..8, c(2j+1) k0..4, c(2j+1) k4..8] of row r0+i.
    let mut acc = [[vdupq_n_s32(0); 8]; R];
    for g in 0..full / 8 {
        let av: [int8x16_t; R] = core::array::from_fn(|i| {
            // SAFETY: 8 bytes at 8g of row r0+i < m (8g + 8 <= full <= pk).
            let a8 = unsafe { core::ptr::read_unaligned(a.add(i * pk + 8 * g).cast::<u64>()) };
            vreinterpretq_s8_u64(vdupq_n_u64(a8 ^ 0x8080_8080_8080_8080))
        });
        for j in 0..8 {
            // SAFETY: 16 of the 128 bytes of 8-deep group g < full/8 of panel p.
            let bj = unsafe { vld1q_s8(b.add(g * NR * 8 + 16 * j)) };
            for (acc_i, av_i) in acc.iter_mut().zip(&av) {
                acc_i[j] = sdot(acc_i[j], bj, *av_i);
            }
        }
    }
    // Fold the lane pairs: ADDP(acc[2q], acc[2q+1]) = columns 4q..4q+4.
    let mut sums: [[int32x4_t; 4]; R] = core::array::from_fn(|i| {
        core::array::from_fn(|q| vpaddq_s32(acc[i][2 * q], acc[i][2 * q + 1]))
    });
    // The 4-deep tail group (pk % 8 == 4): vector q holds columns 4q..4q+4 × 4 k.
    if full < pk {
        let av: [int8x16_t; R] = core::array::from_fn(|i| {
            // SAFETY: the last 4 bytes (k = full..pk) of row r0+i < m.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + full).cast::<u32>()) };
            vreinterpretq_s8_u32(vdupq_n_u32(a4 ^ 0x8080_8080))
        });
        for q in 0..4 {
            // SAFETY: 16 of the 64 bytes of the tail group, which follows the full groups.
            let t = unsafe { vld1q_s8(b.add(full * NR + 16 * q)) };
            for (s_i, av_i) in sums.iter_mut().zip(&av) {
                s_i[q] = sdot(s_i[q], t, *av_i);
            }
        }
    }
    // + 128·colsum undoes the activation flip.
    let col0 = p * NR;
    for q in 0..4 {
        // SAFETY: colsum holds padded_n(n) >= col0 + 16 entries (validated).
        let c = vshlq_n_s32::<7>(unsafe { vld1q_s32(job.b.colsum.as_ptr().add(col0 + 4 * q)) });
        for s_i in sums.iter_mut() {
            s_i[q] = vaddq_s32(s_i[q], c);
        }
    }
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
