//! `wasm32-u8i8i32-relaxedsimd-2x16`: u8 activations × i8 packed weights → i32 with
//! `i32x4.relaxed_dot_i8x16_i7x16_add_s` (relaxed-simd).
//!
//! Why it looks like this: one 16-byte weight vector (4 columns × 4 k) is exactly one relaxed
//! dot operand: lane j gains `Σ_t w[c+j][t] · x[t]`. The 7-bit rule is met by splitting the
//! activations (see the module doc of `wasm32`): per row and group the 4 activation bytes are
//! splatted, then `l = a & 0x7f` and `h = a >> 7` (one AND and one shift), and each weight
//! vector feeds two dots, `lo += w·l` and `hi += w·h`; the tile ends with `lo + (hi << 7)`. No
//! widening and no final pair reduction (unlike simd128), 8 dots + 2 masks per row and group
//! (64 MACs). 2 rows × 16 columns × (lo, hi) = 16 accumulators + 4 weight vectors: the most an
//! x86_64 host engine keeps in its 16 vector registers.
use core::arch::wasm32::*;
use core::ops::Range;

use super::simd128::epilogue_128;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 2;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// This build has relaxed-simd (`Isa::RelaxedSimd.available()`); otherwise as
/// [`super::simd128::run`].
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
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
    let low7 = u8x16_splat(0x7f);
    let mut lo = [[i32x4_splat(0); 4]; R];
    let mut hi = [[i32x4_splat(0); 4]; R];
    for g in 0..pk / KR {
        // SAFETY: the 64 bytes of k-group g of panel p.
        let bv: [v128; 4] =
            core::array::from_fn(|q| unsafe { v128_load(b.add(g * NR * KR + 16 * q).cast()) });
        for i in 0..R {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<u32>()) };
            let av = u32x4_splat(a4);
            let (l, h) = (v128_and(av, low7), u8x16_shr(av, 7));
            for q in 0..4 {
                lo[i][q] = i32x4_relaxed_dot_i8x16_i7x16_add(bv[q], l, lo[i][q]);
                hi[i][q] = i32x4_relaxed_dot_i8x16_i7x16_add(bv[q], h, hi[i][q]);
            }
        }
    }
    let sums: [[v128; 4]; R] = core::array::from_fn(|i| {
        core::array::from_fn(|q| i32x4_add(lo[i][q], i32x4_shl(hi[i][q], 7)))
    });
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}
