//! `aarch64-u8i8i32-neon-2x8`: u8 activations × i8 packed weights → i32 with baseline
//! Advanced SIMD only (Cortex-A53/A72: Raspberry Pi 3/4, older phones and boards).
//!
//! Why it looks like this: aarch64 packs the weights in 8-deep k-groups (`pack::Layout::Kr8`),
//! so a 16-byte weight vector is `[c k0..8, c+1 k0..8]` and `SXTL`/`SXTL2` widen it to one
//! i16x8 per column. Per row, the 8 activation bytes of the group are one 8-byte load and one
//! `UXTL`. A u8·i8 product always fits i16 (−32640..=32385), so `MUL` (i16) is exact, and
//! `SADALP` adds adjacent products into the column's accumulator `[k0+k1, k2+k3, k4+k5,
//! k6+k7]`; two levels of `ADDP` at the end of the tile give 4 column sums per vector. An
//! accumulator holds one column, so the tile is 2 rows × 8 columns = 16 accumulators + 8 widened
//! weight vectors + 2 activation vectors = 26 of the 32 registers, and a panel is two such
//! passes over K (the first pass's 4 folded vectors stay live). Per 8 k and 2 × 8 outputs:
//! 4 weight loads, 8 `SXTL`, 2 A loads + 2 `UXTL`, 16 `MUL` + 16 `SADALP` — 42 SIMD
//! instructions for 128 MACs, as many as the 2×16 kernel on 4-deep groups needed. A K tail of
//! one 4-deep group (`padded_k % 8 == 4`) holds 2 columns per widened vector; it is multiplied
//! by the activations zero-extended to `[a0..4, 0 × 4]` and `[0 × 4, a0..4]` so that each
//! product vector still belongs to one column.
use core::arch::aarch64::*;
use core::ops::Range;

use super::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{Layout, NR, padded_k};

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

/// One R x 16 tile at rows `r0..r0+R`, panel `p`, as two R x 8 passes.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon")]
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
    let mut sums = [[vdupq_n_s32(0); 4]; R];
    for h in 0..2 {
        // acc[i][c]: partial sums of column 8h + c, row r0 + i.
        let mut acc = [[vdupq_n_s32(0); 8]; R];
        for g in 0..full / 8 {
            let mut bw = [vdupq_n_s16(0); 8];
            for j in 0..4 {
                // SAFETY: 16 of the 128 bytes of 8-deep group g < full/8 of panel p (columns
                // 8h + 2j, 8h + 2j + 1).
                let v = unsafe { vld1q_s8(b.add(g * NR * 8 + 64 * h + 16 * j)) };
                bw[2 * j] = vmovl_s8(vget_low_s8(v));
                bw[2 * j + 1] = vmovl_high_s8(v);
            }
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: 8 bytes at 8g of row r0+i < m (8g + 8 <= full <= pk).
                let a8 = unsafe { vld1_u8(a.add(i * pk + 8 * g)) };
                let av = vreinterpretq_s16_u16(vmovl_u8(a8));
                for (acc_ic, bw_c) in acc_i.iter_mut().zip(&bw) {
                    *acc_ic = vpadalq_s16(*acc_ic, vmulq_s16(*bw_c, av));
                }
            }
        }
        // The 4-deep tail group (pk % 8 == 4): vector q holds columns 4q..4q+4 × 4 k; this
        // pass has q = 2h, 2h + 1.
        if full < pk {
            for (i, acc_i) in acc.iter_mut().enumerate() {
                // SAFETY: the last 4 bytes (k = full..pk) of row r0+i < m.
                let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + full).cast::<u32>()) };
                let widen = |v: u64| vreinterpretq_s16_u16(vmovl_u8(vcreate_u8(v)));
                let (lo, hi) = (widen(a4 as u64), widen((a4 as u64) << 32));
                for qq in 0..2 {
                    // SAFETY: 16 of the 64 bytes of the tail group, after the full groups.
                    let t = unsafe { vld1q_s8(b.add(full * NR + 16 * (2 * h + qq))) };
                    let tw = [vmovl_s8(vget_low_s8(t)), vmovl_high_s8(t)];
                    for (x, tw_x) in tw.iter().enumerate() {
                        let c = 4 * qq + 2 * x;
                        acc_i[c] = vpadalq_s16(acc_i[c], vmulq_s16(*tw_x, lo));
                        acc_i[c + 1] = vpadalq_s16(acc_i[c + 1], vmulq_s16(*tw_x, hi));
                    }
                }
            }
        }
        for (sums_i, acc_i) in sums.iter_mut().zip(&acc) {
            for x in 0..2 {
                let c = &acc_i[4 * x..4 * x + 4];
                sums_i[2 * h + x] = vpaddq_s32(vpaddq_s32(c[0], c[1]), vpaddq_s32(c[2], c[3]));
            }
        }
    }
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
