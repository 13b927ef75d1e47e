//! `aarch64-u8i8i32-i8mm-4x16`: u8 activations × i8 packed weights → i32 with USMMLA
//! (FEAT_I8MM: Cortex-A510/A710/X2+, Neoverse V1/N2/V2, Graviton 3/4, Apple M2+).
//!
//! `USMMLA vacc.4s, va.16b, vb.16b` multiplies a 2×8 u8 matrix (two A rows × 8 k) by an 8×2 s8
//! matrix (8 k × two columns) into 2×2 i32 lanes `[r0c0, r0c1, r1c0, r1c1]`: 32 MACs, u8 × s8
//! natively, so no sign trick is needed.
//!
//! Why it looks like this: the tile is 4 rows (2 row pairs) × 16 columns (8 column pairs) =
//! 16 accumulators; per 8 k it issues 16 USMMLA (512 MACs). The weights come from the common
//! 4-deep layout: k-groups g and g+1 are eight 16-byte vectors `[c0..c3 × 4 k]`, and
//! `ZIP1`/`ZIP2` on 32-bit lanes of the matching vectors give `[c0 k0..8, c1 k0..8]` — the
//! 8×2 operand — so 8 loads + 8 ZIPs per 8 k serve both row pairs (the A pairs come from two
//! 8-byte loads per row pair). A second, 8-deep packed layout would save those 8 ZIPs per
//! 16 USMMLA, but the packed weights are baked into the binary by codegen for every target at
//! once (the weights are chosen before the CPU is known: one binary runs the neon, dotprod or
//! i8mm path at run time), so a second layout would double the weight bytes in every binary
//! or need a second, arch-gated blob; the ZIPs run on the SIMD permute ports next to the
//! matrix ops and cost less than that. The accumulator de-interleave (`ZIP1`/`ZIP2` on 64-bit
//! lanes) runs once per tile. A K tail of one 4-deep group is zipped with zeros.
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
/// The CPU has Advanced SIMD and FEAT_I8MM (`Isa::I8mm.available()`); otherwise as
/// [`super::neon::run`].
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::I8mm.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels) }
}

#[target_feature(enable = "neon,i8mm")]
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

/// `acc += a (2×8 u8) · b (8×2 s8)`.
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn usmmla(acc: int32x4_t, a: uint8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: a register-only instruction of FEAT_I8MM, which this function's target features
    // require.
    unsafe {
        asm!(
            "usmmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p` (rows ≥ R are computed on zeros and dropped).
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "neon,i8mm")]
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
    // [row pair][column pair]
    let mut acc = [[vdupq_n_s32(0); 8]; 2];
    let mut g = 0;
    while g < groups {
        let two = g + 1 < groups;
        // SAFETY: the 64 bytes of k-group g (and g+1 when it exists) of panel p.
        let b0: [int8x16_t; 4] =
            core::array::from_fn(|q| unsafe { vld1q_s8(b.add(g * NR * KR + 16 * q)) });
        let b1: [int8x16_t; 4] = if two {
            // SAFETY: as above, group g + 1 < groups.
            core::array::from_fn(|q| unsafe { vld1q_s8(b.add((g + 1) * NR * KR + 16 * q)) })
        } else {
            [vdupq_n_s8(0); 4]
        };
        let bz: [int8x16_t; 8] = core::array::from_fn(|j| {
            let (x, y) = (
                vreinterpretq_s32_s8(b0[j / 2]),
                vreinterpretq_s32_s8(b1[j / 2]),
            );
            vreinterpretq_s8_s32(if j % 2 == 0 {
                vzip1q_s32(x, y)
            } else {
                vzip2q_s32(x, y)
            })
        });
        // 8 (or, in the tail, 4) activation bytes of row i at k = 4g, zero past R.
        let row = |i: usize| -> uint8x8_t {
            if i >= R {
                return vdup_n_u8(0);
            }
            // SAFETY: row r0+i < m; 8 bytes at 4g when group g+1 exists (4g + 8 <= pk), else 4.
            unsafe {
                let src = a.add(i * pk + g * KR);
                if two {
                    vld1_u8(src)
                } else {
                    vcreate_u8(core::ptr::read_unaligned(src.cast::<u32>()) as u64)
                }
            }
        };
        for (pi, acc_p) in acc.iter_mut().enumerate() {
            if 2 * pi < R {
                let ap = vcombine_u8(row(2 * pi), row(2 * pi + 1));
                for (acc_pj, bz_j) in acc_p.iter_mut().zip(&bz) {
                    *acc_pj = usmmla(*acc_pj, ap, *bz_j);
                }
            }
        }
        g += 2;
    }
    // acc[pi][j] = [r(2pi) c(2j), r(2pi) c(2j+1), r(2pi+1) c(2j), r(2pi+1) c(2j+1)].
    let sums: [[int32x4_t; 4]; R] = core::array::from_fn(|i| {
        let acc_p = &acc[i / 2];
        core::array::from_fn(|q| {
            let (x, y) = (
                vreinterpretq_s64_s32(acc_p[2 * q]),
                vreinterpretq_s64_s32(acc_p[2 * q + 1]),
            );
            vreinterpretq_s32_s64(if i % 2 == 0 {
                vzip1q_s64(x, y)
            } else {
                vzip2q_s64(x, y)
            })
        })
    });
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
