//! `aarch64-u8i8i32-neon-2x16`: u8 activations × i8 packed weights → i32 with baseline
//! Advanced SIMD only (Cortex-A53/A72: Raspberry Pi 3/4, older phones and boards).
//!
//! Why it looks like this: a k-group of a panel is 64 bytes = four 16-byte vectors of
//! 4 columns × 4 k. `SXTL`/`SXTL2` widen each to two i16x8 (2 columns × 4 k), once per group for
//! the whole tile. Per row, the group's 4 activation bytes are loaded once, repeated, and
//! widened (`UXTL`) to `[a0 a1 a2 a3 a0 a1 a2 a3]`. A u8·i8 product always fits i16
//! (−32640..=32385), so `MUL` (i16) is exact, and `SADALP` adds adjacent products into i32
//! lanes `[col c: k0+k1, col c: k2+k3, col c+1: …, …]`; one `ADDP` per 4 columns at the end
//! gives the column sums. That is 16 instructions (8 MUL + 8 SADALP) for 64 MACs per row and
//! group. 2 rows × 16 columns use 16 accumulators + 8 widened weight vectors + 2 activation
//! vectors of the 32 registers; a third row would not fit.
use core::arch::aarch64::*;
use core::ops::Range;

use super::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 2;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// The CPU has Advanced SIMD (`Isa::Neon.available()`); `job` is validated as documented on
/// [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for `job.m` rows of stride
/// `job.ldc` and no other thread writes these panels' columns of these rows.
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::Neon.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels) }
}

#[target_feature(enable = "neon")]
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

/// One R x 16 tile at rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().add(p * pk * NR),
        )
    };
    let mut acc = [[vdupq_n_s32(0); 8]; R];
    for g in 0..pk / KR {
        let mut bw = [vdupq_n_s16(0); 8];
        for q in 0..4 {
            // SAFETY: 16 of the 64 bytes of k-group g of panel p.
            let v = unsafe { vld1q_s8(b.add(g * NR * KR + 16 * q)) };
            bw[2 * q] = vmovl_s8(vget_low_s8(v));
            bw[2 * q + 1] = vmovl_high_s8(v);
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<u32>()) };
            let av = vreinterpretq_s16_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(a4))));
            for (acc_ij, bw_j) in acc_i.iter_mut().zip(&bw) {
                *acc_ij = vpadalq_s16(*acc_ij, vmulq_s16(*bw_j, av));
            }
        }
    }
    let sums: [[int32x4_t; 4]; R] = core::array::from_fn(|i| {
        core::array::from_fn(|q| vpaddq_s32(acc[i][2 * q], acc[i][2 * q + 1]))
    });
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
