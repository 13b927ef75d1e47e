//! `x86_64-u8i8i32-avx512vnni-8x32`: u8 activations × i8 packed weights → i32, AVX-512 VNNI
//! (Ice Lake+, Zen 4/5).
//!
//! Why this tile: one VPDPBUSD zmm consumes one 64-byte k-group of a 16-column panel (16 i32
//! lanes × 4 u8·i8 products) against one broadcast dword of 4 activations. An 8-row × 32-column
//! tile keeps 16 zmm accumulators (VPDPBUSD has latency 4 and issues 2 per cycle on Zen 5, so
//! ≥ 8 independent chains are needed), and per k-group loads 2 B vectors + 8 broadcast dwords
//! for 16 VPDPBUSD — 10 loads per 16 MACs, within Zen 5's 2 loads/cycle. Loop order: column
//! panel pairs outside, row tiles inside, so the panel pair (K·32 bytes) stays in L1 while the
//! A rows stream from L2. There is no K blocking: the accumulators cover the full K (exact).
//! Edges: a partial row tile is a separate monomorphisation (R = 1..8 rows), an odd last panel
//! uses the 1-panel variant, and the N tail within a panel is computed on zero padding and
//! dropped by a masked store. The epilogue (zero-point correction, scale, bias, activation)
//! runs on the accumulators in registers before the store.
use core::arch::x86_64::*;
use core::ops::Range;

use crate::gemm::Activation;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 8;
const NP: usize = 2;
const NP_GEMV: usize = 4;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// The CPU supports AVX-512 F/BW/VL/VNNI (`Isa::Avx512Vnni.available()`); `job` is validated as
/// documented on [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for
/// `job.m` rows of stride `job.ldc` and no other thread writes these panels' columns.
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    debug_assert!(crate::Isa::Avx512Vnni.available());
    // SAFETY: forwarded from the caller's contract (CPU features, validated sizes).
    unsafe { drive::<false>(job, out, panels) };
}

/// [`run`] for an f32 output that also returns `(min(0, min y), max(0, max y))` over every
/// value it stores (NaN skipped), taken from the registers in the epilogue: the range a
/// consumer's dynamic quantization needs, without a pass over the output.
///
/// # Safety
/// As for [`run`].
pub(crate) unsafe fn run_min_max(job: &Job<'_>, out: Out, panels: Range<usize>) -> (f32, f32) {
    debug_assert!(crate::Isa::Avx512Vnni.available());
    // SAFETY: forwarded from the caller's contract (CPU features, validated sizes).
    unsafe { drive::<true>(job, out, panels) }
}

/// With `MM`, returns the min/max of the stored f32 values (else `(0, 0)`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn drive<const MM: bool>(job: &Job<'_>, out: Out, panels: Range<usize>) -> (f32, f32) {
    let mm = &mut [_mm512_setzero_ps(); 2];
    // GEMV-like calls (one or two rows) have too few accumulator chains in an 8x32 tile to
    // hide VPDPBUSD latency: widen to 4 panels (64 columns) per tile instead.
    let np_max = if job.m <= 2 { NP_GEMV } else { NP };
    let mut p = panels.start;
    while p < panels.end {
        let np = np_max.min(panels.end - p);
        let mut r = 0;
        while r < job.m {
            let mr = MR.min(job.m - r);
            macro_rules! go {
                ($($r:literal)*) => {
                    match (mr, np) {
                        // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                        (1, 4) => unsafe { tile::<1, 4, MM>(job, out, r, p, mm) },
                        // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                        (1, 3) => unsafe { tile::<1, 3, MM>(job, out, r, p, mm) },
                        // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                        (2, 4) => unsafe { tile::<2, 4, MM>(job, out, r, p, mm) },
                        // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                        (2, 3) => unsafe { tile::<2, 3, MM>(job, out, r, p, mm) },
                        $(
                            // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                            ($r, 2) => unsafe { tile::<$r, 2, MM>(job, out, r, p, mm) },
                            // SAFETY: r + R <= m and p + P <= panels.end, as `tile` requires.
                            ($r, _) => unsafe { tile::<$r, 1, MM>(job, out, r, p, mm) },
                        )*
                        _ => unreachable!(),
                    }
                };
            }
            go!(1 2 3 4 5 6 7 8);
            r += mr;
        }
        p += np;
    }
    (_mm512_reduce_min_ps(mm[0]), _mm512_reduce_max_ps(mm[1]))
}

/// `act` on 16 lanes (see `act_256` in `x86_64/mod.rs` for why max/min match the reference).
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn act_512(f: __m512, act: Activation) -> __m512 {
    match act {
        // Gelu is applied by `qgemm_f32` after the kernel; kernels never see it.
        Activation::None | Activation::Gelu => f,
        Activation::Relu => _mm512_max_ps(f, _mm512_setzero_ps()),
        Activation::Clip { min, max } => {
            _mm512_min_ps(_mm512_max_ps(f, _mm512_set1_ps(min)), _mm512_set1_ps(max))
        }
    }
}

/// One R x (P·16) tile at rows `r0..r0+R`, panels `p0..p0+P`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and panel `p0 + P - 1` inside `padded_n(b.n)/NR`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn tile<const R: usize, const P: usize, const MM: bool>(
    job: &Job<'_>,
    out: Out,
    r0: usize,
    p0: usize,
    mm: &mut [__m512; 2],
) {
    let pk = padded_k(job.b.k);
    let groups = pk / KR;
    // SAFETY: rows r0..r0+R of A are inside `a` (a.len() >= m*pk) and panels p0..p0+P inside
    // `data` (len >= padded_n*pk); offsets below stay within those rows/panels.
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().cast::<u8>().add(p0 * pk * NR),
        )
    };
    // One k-group into one accumulator set.
    macro_rules! step {
        ($g:expr, $acc:expr) => {{
            let g = $g;
            let mut bv = [_mm512_setzero_si512(); P];
            for (q, v) in bv.iter_mut().enumerate() {
                // SAFETY: byte offset q*pk*NR + g*64 + 64 <= (q+1)*pk*NR inside panel p0+q.
                *v = unsafe { _mm512_loadu_si512(b.add(q * pk * NR + g * NR * KR).cast()) };
            }
            for (i, acc_i) in $acc.iter_mut().enumerate() {
                // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
                let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<i32>()) };
                let av = _mm512_set1_epi32(a4);
                for q in 0..P {
                    acc_i[q] = _mm512_dpbusd_epi32(acc_i[q], av, bv[q]);
                }
            }
        }};
    }
    // The accumulators start at −za·colsum[n] (the activation zero point's correction)
    // instead of 0: wrapping i32 adds commute, so the result is the same, and the epilogue
    // has one subtraction per output vector fewer.
    let za = _mm512_set1_epi32(job.za);
    // Explicit loops, not `array::from_fn` closures: a closure does not carry this function's
    // target features, and with one codegen unit its intrinsics stayed out-of-line calls.
    let mut init = [_mm512_setzero_si512(); P];
    for (q, iq) in init.iter_mut().enumerate() {
        // SAFETY: colsum holds padded_n(n) >= (p0 + q + 1)·16 entries (validated).
        let cs = unsafe { _mm512_loadu_si512(job.b.colsum.as_ptr().add((p0 + q) * NR).cast()) };
        *iq = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_mullo_epi32(za, cs));
    }
    let mut acc = [init; R];
    let mut g = 0;
    if R * P < 8 {
        // Too few accumulators to cover VPDPBUSD latency (small-M / GEMV tiles): give even and
        // odd k-groups separate accumulators and add them at the end (wrapping adds commute,
        // so the result is unchanged).
        let mut odd = [[_mm512_setzero_si512(); P]; R];
        while g + 2 <= groups {
            step!(g, acc);
            step!(g + 1, odd);
            g += 2;
        }
        for (acc_i, odd_i) in acc.iter_mut().zip(&odd) {
            for q in 0..P {
                acc_i[q] = _mm512_add_epi32(acc_i[q], odd_i[q]);
            }
        }
    }
    while g < groups {
        step!(g, acc);
        g += 1;
    }

    // Epilogue, per panel, with constant panel indices: a loop over `acc[i][q]` that LLVM does
    // not unroll makes it keep the accumulators in memory through the whole k loop.
    macro_rules! panels {
        ($($q:literal)*) => {$(
            if $q < P {
                let mut accq = [_mm512_setzero_si512(); R];
                for (a, acc_i) in accq.iter_mut().zip(&acc) {
                    *a = acc_i[$q.min(P - 1)];
                }
                // SAFETY: forwarded (panel p0 + q < p0 + P is inside the matrix).
                unsafe { epilogue::<R, MM>(job, out, &accq, r0, (p0 + $q) * NR, mm) };
            }
        )*};
    }
    panels!(0 1 2 3);
}

/// One panel's 16 columns of an R-row tile (accumulators that already include −za·colsum):
/// the weight zero points' correction, then the f32 scale, bias
/// and activation, or the i32 result.
///
/// It carries the features itself (an `#[inline(always)]` function without them relied on
/// being inlined first, and its closures never had them: with `codegen-units = 1` the
/// conversions and multiplies were out-of-line calls, MiniLM 3.25 ms instead of 2.03 ms).
///
/// # Safety
/// As for [`tile`]; `col0` is the first column of a panel of the matrix.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn epilogue<const R: usize, const MM: bool>(
    job: &Job<'_>,
    out: Out,
    acc: &[__m512i; R],
    r0: usize,
    col0: usize,
    mm: &mut [__m512; 2],
) {
    // SAFETY: memory accesses are justified below (the CPU features are this function's).
    unsafe {
        let width = NR.min(job.b.n - col0);
        let mask: __mmask16 = if width == NR {
            0xffff
        } else {
            (1u16 << width) - 1
        };
        // SAFETY: the per-column arrays hold padded_n(n) >= col0 + 16 entries (validated).
        let zb = _mm512_loadu_si512(job.b.zero_point.as_ptr().add(col0).cast());
        // Every decision (symmetric weights, bias, activation, output type) is taken once per
        // panel, outside the per-row work: deciding it per row vector cost a branch and an
        // indirect jump (the activation's match) for each of the tile's R row vectors.
        // `acc` already includes −za·colsum (the accumulators' initial value, see `tile`).
        let mut v: [__m512i; R] = *acc;
        // Symmetric weights (every zero point of the panel 0, the usual int8 export): the row
        // term is multiplied by 0, so skip it (a third of the per-vector epilogue, which small-K
        // convolutions are bound by) and never read it.
        if _mm512_test_epi32_mask(zb, zb) != 0 {
            let rt = &job.row_term[r0..r0 + R];
            for (vi, &t) in v.iter_mut().zip(rt) {
                *vi = _mm512_sub_epi32(*vi, _mm512_mullo_epi32(zb, _mm512_set1_epi32(t)));
            }
        }
        match out {
            Out::F32 { ptr, a_scale, act } => {
                // SAFETY: as for `cs`.
                let sb = _mm512_loadu_ps(job.b.scale.as_ptr().add(col0));
                let s = _mm512_mul_ps(_mm512_set1_ps(a_scale), sb);
                let mut f = [_mm512_setzero_ps(); R];
                for (fi, vi) in f.iter_mut().zip(&v) {
                    *fi = _mm512_mul_ps(_mm512_cvtepi32_ps(*vi), s);
                }
                if let Some(bb) = job.b.bias {
                    // SAFETY: as for `cs`.
                    let bias = _mm512_loadu_ps(bb.as_ptr().add(col0));
                    for fi in f.iter_mut() {
                        *fi = _mm512_add_ps(*fi, bias);
                    }
                }
                match act {
                    Activation::None | Activation::Gelu => {}
                    Activation::Relu | Activation::Clip { .. } => {
                        for fi in f.iter_mut() {
                            *fi = act_512(*fi, act);
                        }
                    }
                }
                for (i, fi) in f.iter().enumerate() {
                    // SAFETY: row r0+i < m, columns col0..col0+width <= n; masked-off lanes are
                    // not accessed.
                    _mm512_mask_storeu_ps(ptr.add((r0 + i) * job.ldc + col0), mask, *fi);
                }
                if MM {
                    // VMINPS(f, acc) keeps acc for a NaN f; the padding columns (masked off)
                    // are not part of the output.
                    let (mut lo, mut hi) = (mm[0], mm[1]);
                    for fi in &f {
                        lo = _mm512_mask_min_ps(lo, mask, *fi, lo);
                        hi = _mm512_mask_max_ps(hi, mask, *fi, hi);
                    }
                    (mm[0], mm[1]) = (lo, hi);
                }
            }
            Out::I32 { ptr } => {
                for (i, vi) in v.iter().enumerate() {
                    // SAFETY: as for the f32 store.
                    _mm512_mask_storeu_epi32(ptr.add((r0 + i) * job.ldc + col0), mask, *vi);
                }
            }
        }
    }
}
