//! AVX2 kernels (Haswell+, Zen 1+), two variants chosen per matrix by `PackedI8::avx2_safe`:
//!
//! * `x86_64-u8i8i32-avx2-4x16` (fast): VPMADDUBSW multiplies u8 activations by i8 weights and
//!   adds adjacent pairs into **saturating** i16; VPMADDWD by ones widens the pairs to i32;
//!   VPADDD accumulates. Exact only if no pair can exceed i16 — which the packer proves at
//!   compile time (`avx2_safe`), so no `reduce_range` is needed. Tile: 4 rows × 2 ymm = 8
//!   accumulators + 2 B + ones + broadcast + temporary = 13 of 16 ymm.
//! * `x86_64-u8i8i32-avx2exact-2x16` (exact, any weights): activations zero-extended and weights
//!   sign-extended to i16 (VPMOVSXBW straight from memory), then VPMADDWD (products ≤ 2·255·128,
//!   no saturation possible). Each 16-byte load of 4 columns × 4 k becomes 8 i32 lanes holding
//!   two partial sums per column; they are combined once per tile with VPHADDD + VPERMQ.
//!   Tile: 2 rows × 4 ymm = 8 accumulators + 2 broadcasts + 1 B (the 16 ymm do not fit a third
//!   row without spilling).
//!
//! Panels outside, row tiles inside; partial row tiles are separate monomorphisations; the N
//! tail is computed on zero padding and dropped at the store (shared 256-bit epilogue).
use core::arch::x86_64::*;
use core::ops::Range;

use super::epilogue_256;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR_FAST: usize = 4;
const MR_EXACT: usize = 2;

/// Runs panels `panels` of `job`, all rows; the fast kernel only if `fast` (callers pass
/// `job.b.avx2_safe`, tests may force the exact one).
///
/// # Safety
/// The CPU supports AVX2 and FMA (`Isa::Avx2.available()`); `fast` implies `job.b.avx2_safe`
/// (otherwise results may saturate, though memory safety is unaffected); `job` is validated as
/// documented on [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for `job.m`
/// rows of stride `job.ldc` and no other thread writes these panels' columns.
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>, fast: bool) {
    debug_assert!(crate::Isa::Avx2.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels, fast) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn drive(job: &Job<'_>, out: Out, panels: Range<usize>, fast: bool) {
    for p in panels {
        let mut r = 0;
        while r < job.m {
            if fast {
                let mr = MR_FAST.min(job.m - r);
                match mr {
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    1 => unsafe { tile_fast::<1>(job, out, r, p) },
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    2 => unsafe { tile_fast::<2>(job, out, r, p) },
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    3 => unsafe { tile_fast::<3>(job, out, r, p) },
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    _ => unsafe { tile_fast::<4>(job, out, r, p) },
                }
                r += mr;
            } else {
                let mr = MR_EXACT.min(job.m - r);
                match mr {
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    1 => unsafe { tile_exact::<1>(job, out, r, p) },
                    // SAFETY: r + R <= m and p is a valid panel, as the tile requires.
                    _ => unsafe { tile_exact::<2>(job, out, r, p) },
                }
                r += mr;
            }
        }
    }
}

/// Fast R x 16 tile (VPMADDUBSW), rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_fast<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().cast::<u8>().add(p * pk * NR),
        )
    };
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); 2]; R];
    for g in 0..pk / KR {
        // SAFETY: the 64 bytes of k-group g of panel p.
        let (b0, b1) = unsafe {
            let bg = b.add(g * NR * KR);
            (
                _mm256_loadu_si256(bg.cast()),
                _mm256_loadu_si256(bg.add(32).cast()),
            )
        };
        for (i, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<i32>()) };
            let av = _mm256_set1_epi32(a4);
            let t0 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b0), ones);
            let t1 = _mm256_madd_epi16(_mm256_maddubs_epi16(av, b1), ones);
            acc_i[0] = _mm256_add_epi32(acc_i[0], t0);
            acc_i[1] = _mm256_add_epi32(acc_i[1], t1);
        }
    }
    // SAFETY: forwarded (same rows and panel).
    unsafe { epilogue_256::<R>(job, out, &acc, r0, p) }
}

/// Exact R x 16 tile (sign-extend + VPMADDWD), rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_exact<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().cast::<u8>().add(p * pk * NR),
        )
    };
    // acc[i][j]: columns 4j..4j+4, lanes (c, pair): [c0p0, c0p1, c1p0, c1p1, ...].
    let mut acc = [[_mm256_setzero_si256(); 4]; R];
    for g in 0..pk / KR {
        let mut av = [_mm256_setzero_si256(); R];
        for (i, v) in av.iter_mut().enumerate() {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<i32>()) };
            // a0 a1 a2 a3 as i16, repeated: one qword broadcast.
            *v = _mm256_broadcastq_epi64(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(a4)));
        }
        for j in 0..4 {
            // SAFETY: 16 bytes (4 columns x 4 k) inside k-group g of panel p.
            let bj = unsafe {
                _mm256_cvtepi8_epi16(_mm_loadu_si128(b.add(g * NR * KR + 16 * j).cast()))
            };
            for (acc_i, a_i) in acc.iter_mut().zip(&av) {
                acc_i[j] = _mm256_add_epi32(acc_i[j], _mm256_madd_epi16(*a_i, bj));
            }
        }
    }
    // Pairwise sums: hadd(cols 0-3, cols 4-7) = [c0 c1 c4 c5 | c2 c3 c6 c7]; VPERMQ 0xD8 puts
    // the qwords in column order.
    let mut sums = [[_mm256_setzero_si256(); 2]; R];
    for i in 0..R {
        for h in 0..2 {
            let s = _mm256_hadd_epi32(acc[i][2 * h], acc[i][2 * h + 1]);
            sums[i][h] = _mm256_permute4x64_epi64::<0xD8>(s);
        }
    }
    // SAFETY: forwarded (same rows and panel).
    unsafe { epilogue_256::<R>(job, out, &sums, r0, p) }
}
