//! `x86_64-u8i8i32-avxvnni-6x16`: u8 activations × i8 packed weights → i32 with the VEX-encoded
//! 256-bit VPDPBUSD of AVX-VNNI (Alder Lake+, Zen 5 — also used on AVX-512 CPUs when forced).
//!
//! Why this tile: a 64-byte k-group of a 16-column panel is two ymm (columns 0..8, 8..16). Six
//! rows × two ymm = 12 accumulators, plus 2 B vectors and 1 broadcast = 15 of the 16 ymm
//! registers; 12 independent VPDPBUSD chains hide its latency, and each k-group costs 2 B loads
//! and 6 broadcast dwords for 12 VPDPBUSD. Panels outside, row tiles inside (the panel stays in
//! L1). Partial row tiles are separate monomorphisations; the N tail is computed on zero
//! padding and dropped at the store (shared 256-bit epilogue).
use core::arch::x86_64::*;
use core::ops::Range;

use super::epilogue_256;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 6;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// The CPU supports AVX2 and AVX-VNNI (`Isa::AvxVnni.available()`); `job` is validated as
/// documented on [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for
/// `job.m` rows of stride `job.ldc` and no other thread writes these panels' columns.
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::AvxVnni.available());
    // SAFETY: forwarded from the caller's contract.
    unsafe { drive(job, out, panels) }
}

#[target_feature(enable = "avx2,fma,avxvnni")]
unsafe fn drive(job: &Job<'_>, out: Out, panels: Range<usize>) {
    for p in panels {
        let mut r = 0;
        while r < job.m {
            let mr = MR.min(job.m - r);
            macro_rules! go {
                ($($r:literal)*) => {
                    match mr {
                        // SAFETY: r + R <= m and p is a valid panel, as `tile` requires.
                        $($r => unsafe { tile::<$r>(job, out, r, p) },)*
                        _ => unreachable!(),
                    }
                };
            }
            go!(1 2 3 4 5 6);
            r += mr;
        }
    }
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "avx2,fma,avxvnni")]
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().cast::<u8>().add(p * pk * NR),
        )
    };
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
            acc_i[0] = _mm256_dpbusd_avx_epi32(acc_i[0], av, b0);
            acc_i[1] = _mm256_dpbusd_avx_epi32(acc_i[1], av, b1);
        }
    }
    // SAFETY: forwarded (same rows and panel).
    unsafe { epilogue_256::<R>(job, out, &acc, r0, p) }
}
