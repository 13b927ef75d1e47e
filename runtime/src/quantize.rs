//! ONNX-exact `DynamicQuantizeLinear` (u8), with the quantize pass fused into A packing for the
//! int8 GEMM.
//!
//! Semantics (following onnxruntime 1.32, checked against it and against the ONNX reference
//! evaluator of onnx 1.23):
//!
//! * `min`/`max` over x, **skipping NaN**, then widened to include 0.
//! * `scale = if max == min { 1.0 } else { (max − min) / 255 }` (f32 arithmetic).
//! * `zp = round_half_even(clamp(0 − min/scale, 0, 255))` where the clamp is onnxruntime's
//!   `std::max(0, std::min(255, v))`, so a NaN `v` (from `-inf/inf`) becomes 255.
//! * `q = saturate(round_half_even(x / scale) + zp)` with a true division; a NaN quotient
//!   (NaN input, `inf/inf`, `0/0`) quantizes to 0, like onnxruntime's MLAS kernels.
//!
//! Where onnxruntime and the ONNX reference (`onnx.reference`) differ, we follow onnxruntime:
//!
//! | input | onnxruntime / kiln | ONNX reference |
//! |---|---|---|
//! | all zero | scale 1.0, zp 0 | scale 1/255, zp 0 (q = 0 either way) |
//! | contains NaN | NaN skipped in min/max, NaN → q 0 | scale NaN, zp 255, q 0 |
//! | ±Inf | scale inf (same); `-inf` gives zp 255, finite x → q = zp | same |
//!
//! One known divergence from onnxruntime itself: its vectorised min/max (MLAS) is not
//! NaN-skipping in every lane position — measured on 1.32, a NaN in the last element of an
//! 8/16/64/1000-long input makes its scale NaN, and in some middle positions it drops
//! neighbouring values. kiln always skips NaN (what onnxruntime does for most positions and for
//! short inputs). Subnormal ranges behave as in onnxruntime (e.g. scale underflows to 0, zp 255).
//!
//! The rounding is exact round-half-even in both paths: scalar code adds and subtracts 2^23
//! (exact under the default rounding mode), SIMD code uses VROUNDPS / VRNDSCALEPS with
//! round-to-nearest-even — never `+0.5`.
use crate::isa::Isa;
use crate::pack::padded_k;

/// `DynamicQuantizeLinear` parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: u8,
}

/// Round half to even, exact for every f32 (NaN and ±Inf pass through).
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const TWO23: f32 = 8_388_608.0;
    let a = x.abs();
    if a < TWO23 {
        // In [2^23, 2^24) the spacing is 1, so the sum rounds `a` to an integer, ties to even.
        ((a + TWO23) - TWO23).copysign(x)
    } else {
        x // already an integer, or NaN/Inf
    }
}

/// One value: `saturate(round_half_even(x / scale) + zp)`, NaN → 0. `zp` is the zero point as
/// f32. (`as u8` saturates and maps NaN to 0, exactly like VMAXPS(v, 0) / VMINPS(v, 255).)
#[inline(always)]
pub(crate) fn quantize_one(x: f32, scale: f32, zp: f32) -> u8 {
    (round_half_even(x / scale) + zp) as u8
}

/// `DynamicQuantizeLinear` parameters from a `(min, max)` range (as returned by [`min_max`];
/// it must already include 0).
pub fn qparams_from_range(min: f32, max: f32) -> QParams {
    let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
    let izp = 0.0 - min / scale;
    // onnxruntime: std::max(qmin, std::min(qmax, izp)) — NaN becomes qmax.
    let v = if izp < 255.0 { izp } else { 255.0 };
    let v = if 0.0 < v { v } else { 0.0 };
    QParams {
        scale,
        zero_point: round_half_even(v) as u8,
    }
}

/// DynamicQuantizeLinear parameters for x, following onnxruntime (see the module doc): range
/// always includes 0; `scale = (max(0,max x) − min(0,min x)) / 255` (1.0 if the range is
/// empty); `zp = saturate(round_half_even(0 − min/scale))`; NaN ignored by the min/max.
/// Dispatches on [`Isa::current`].
pub fn dynamic_qparams(x: &[f32]) -> QParams {
    dynamic_qparams_isa(Isa::current(), x)
}

/// [`dynamic_qparams`] on a given ISA family (resolved against the CPU).
pub fn dynamic_qparams_isa(isa: Isa, x: &[f32]) -> QParams {
    let (min, max) = min_max(isa, x);
    qparams_from_range(min, max)
}

/// `(min(0, min x), max(0, max x))`, skipping NaN (SIMD on x86_64). Large inputs are split
/// across threads (min and max are exact, so the result does not depend on the split).
pub fn min_max(isa: Isa, x: &[f32]) -> (f32, f32) {
    #[cfg(feature = "rayon")]
    {
        let n = crate::par::pieces(x.len(), crate::par::MIN_ELEMS);
        if n > 1 {
            use rayon::prelude::*;
            return x
                .par_chunks(x.len().div_ceil(n))
                .with_max_len(1)
                .map(|c| min_max_seq(isa, c))
                .reduce(
                    || (0.0, 0.0),
                    |a, b| {
                        (
                            if b.0 < a.0 { b.0 } else { a.0 },
                            if b.1 > a.1 { b.1 } else { a.1 },
                        )
                    },
                );
        }
    }
    min_max_seq(isa, x)
}

/// [`min_max`] on the calling thread.
pub(crate) fn min_max_seq(isa: Isa, x: &[f32]) -> (f32, f32) {
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` returned a family the CPU has (AVX-512 F).
        Isa::Avx512Vnni => unsafe { x86::min_max_avx512(x) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` returned a family the CPU has; all of them include AVX2.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::min_max_avx2(x) },
        _ => min_max_scalar(x, 0.0, 0.0),
    }
}

/// [`min_max`] of a block of `rows` rows of `cols` values at stride `ld` (row `r` is
/// `x[r*ld .. r*ld + cols]`), on the calling thread, accumulated in registers across rows (a
/// GEMM's output block has rows of a few dozen values).
pub(crate) fn min_max_rows(isa: Isa, x: &[f32], rows: usize, cols: usize, ld: usize) -> (f32, f32) {
    if rows == 0 || cols == 0 {
        return (0.0, 0.0);
    }
    assert!(
        cols <= ld && x.len() >= (rows - 1) * ld + cols,
        "min_max_rows: block out of x"
    );
    if cols == ld {
        return min_max_seq(isa, &x[..rows * cols]);
    }
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` returned a family the CPU has (AVX-512 F); the block lies in x
        // (asserted above).
        Isa::Avx512Vnni => unsafe { x86::min_max_rows_avx512(x, rows, cols, ld) },
        _ => {
            let (mut lo, mut hi) = (0.0, 0.0);
            for r in 0..rows {
                (lo, hi) = min_max_scalar(&x[r * ld..r * ld + cols], lo, hi);
            }
            (lo, hi)
        }
    }
}

/// The `(min(0, min x), max(0, max x))` of a tensor gathered by the op that writes it, piece by
/// piece while each piece is still in cache, so that the `DynamicQuantizeLinear` of its
/// consumer needs no separate pass over memory (design decision 20). Pieces may run on several
/// threads: the bounds are kept as order-preserving integer keys and merged with atomic
/// min/max. Min and max are exact, so the result equals [`min_max`] of the whole tensor
/// whatever the split or the order.
#[derive(Debug)]
pub struct Range {
    lo: core::sync::atomic::AtomicU32,
    hi: core::sync::atomic::AtomicU32,
}

/// Maps f32 bits to u32 keys whose unsigned order is the float order (−0 just below +0).
/// NaN never reaches here (the folds skip it).
#[inline]
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 { !b } else { b | 0x8000_0000 }
}

#[inline]
fn from_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

impl Range {
    /// The empty range `(0, 0)` (the quantization range always includes 0).
    pub const fn new() -> Self {
        // order_key(0.0), written out because the fn is not const.
        Range {
            lo: core::sync::atomic::AtomicU32::new(0x8000_0000),
            hi: core::sync::atomic::AtomicU32::new(0x8000_0000),
        }
    }

    /// Widens the range by a piece's `(min, max)`.
    pub fn include(&self, (min, max): (f32, f32)) {
        use core::sync::atomic::Ordering::Relaxed;
        // Relaxed: the reader runs after the producing op has returned, and the pool's join
        // orders every piece's writes before that.
        self.lo.fetch_min(order_key(min), Relaxed);
        self.hi.fetch_max(order_key(max), Relaxed);
    }

    /// Widens the range by the values of `x` (NaN skipped), on the calling thread.
    pub fn observe(&self, isa: Isa, x: &[f32]) {
        if !x.is_empty() {
            self.include(min_max_seq(isa, x));
        }
    }

    /// `(min, max)` so far; equal to [`min_max`] over everything observed.
    pub fn get(&self) -> (f32, f32) {
        use core::sync::atomic::Ordering::Relaxed;
        (
            from_key(self.lo.load(Relaxed)),
            from_key(self.hi.load(Relaxed)),
        )
    }

    /// [`qparams_from_range`] of [`Range::get`].
    pub fn qparams(&self) -> QParams {
        let (min, max) = self.get();
        qparams_from_range(min, max)
    }
}

impl Default for Range {
    fn default() -> Self {
        Self::new()
    }
}

/// Scalar NaN-skipping fold (`v < min` and `v > max` are false for NaN).
#[inline]
fn min_max_scalar(x: &[f32], mut min: f32, mut max: f32) -> (f32, f32) {
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// `q = saturate(round_half_even(x / scale) + zp)`, with a true division (not a multiply by the
/// reciprocal). Scalar; writes `out[..x.len()]`.
pub fn quantize_u8(x: &[f32], qp: QParams, out: &mut [u8]) {
    assert!(out.len() >= x.len(), "quantize_u8: output too short");
    let zp = qp.zero_point as f32;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, qp.scale, zp);
    }
}

/// [`quantize_u8`] with the SIMD row kernels of [`quantize_pack_a`] (bit-identical); large
/// inputs are split across threads.
pub fn quantize_u8_isa(isa: Isa, x: &[f32], qp: QParams, out: &mut [u8]) {
    assert!(out.len() >= x.len(), "quantize_u8: output too short");
    let isa = isa.resolve();
    let out = &mut out[..x.len()];
    #[cfg(feature = "rayon")]
    {
        let n = crate::par::pieces(x.len(), crate::par::MIN_ELEMS);
        if n > 1 {
            use rayon::prelude::*;
            let per = x.len().div_ceil(n);
            x.par_chunks(per)
                .zip(out.par_chunks_mut(per))
                .with_max_len(1)
                .for_each(|(x, o)| {
                    quantize_row(isa, x, qp, o);
                });
            return;
        }
    }
    quantize_row(isa, x, qp, out);
}

/// Quantizes `x` into `out` (same length) on the calling thread with the best kernel of a
/// resolved `isa`.
pub fn quantize_row(isa: Isa, x: &[f32], qp: QParams, out: &mut [u8]) {
    assert_eq!(x.len(), out.len(), "quantize_row: lengths differ");
    let zp = qp.zero_point as f32;
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` returned a family the CPU has (AVX-512 F/BW). No row sum: one
        // vector op fewer per 16 values in a loop bound by its op count.
        Isa::Avx512Vnni => unsafe {
            x86::quantize_row_avx512::<false>(x, qp.scale, zp, out);
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` returned a family the CPU has; all of them include AVX2.
        Isa::Avx2 | Isa::AvxVnni => unsafe {
            x86::quantize_row_avx2(x, qp.scale, zp, out);
        },
        _ => {
            quantize_row_scalar(x, qp.scale, zp, out);
        }
    }
}

/// The fused pass: quantize an M x K row-major f32 matrix (row stride `lda`) into `a`
/// (M x padded_k(K) u8, row-major, padding bytes 0) and write `row_term[m] = rowsum_m − K·zp`
/// (rowsum over the real K quantized values, wrapping i32). SIMD (AVX-512/AVX2) with scalar
/// fallback; bit-exact with [`quantize_u8`].
#[allow(clippy::too_many_arguments)]
pub fn quantize_pack_a(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    qp: QParams,
    a: &mut [u8],
    row_term: &mut [i32],
) {
    let pk = padded_k(k);
    assert!(lda >= k, "quantize_pack_a: lda < k");
    if m > 0 {
        assert!(x.len() >= (m - 1) * lda + k, "quantize_pack_a: x too short");
    }
    assert!(
        a.len() >= m * pk,
        "quantize_pack_a: a shorter than m x padded_k(k)"
    );
    assert!(row_term.len() >= m, "quantize_pack_a: row_term too short");
    let isa = isa.resolve();
    let zp = qp.zero_point as f32;
    let kzp = (k as i32).wrapping_mul(qp.zero_point as i32);
    let (a, row_term) = (&mut a[..m * pk], &mut row_term[..m]);
    // Rows are independent: large matrices are split into row blocks across threads.
    #[cfg(feature = "rayon")]
    {
        let n = crate::par::pieces(m, crate::par::MIN_ELEMS.div_ceil(k.max(1)));
        if n > 1 {
            use rayon::prelude::*;
            let per = m.div_ceil(n);
            a.par_chunks_mut(per * pk)
                .zip(row_term.par_chunks_mut(per))
                .enumerate()
                .with_max_len(1)
                .for_each(|(i, (a, rt))| {
                    let r0 = i * per;
                    let x = &x[r0 * lda..];
                    quantize_rows(isa, x, rt.len(), k, lda, qp.scale, zp, kzp, a, rt);
                });
            return;
        }
    }
    quantize_rows(isa, x, m, k, lda, qp.scale, zp, kzp, a, row_term);
}

/// [`quantize_pack_a`]'s loop over `m` rows on the calling thread.
#[allow(clippy::too_many_arguments)]
fn quantize_rows(
    isa: Isa,
    x: &[f32],
    m: usize,
    k: usize,
    lda: usize,
    scale: f32,
    zp: f32,
    kzp: i32,
    a: &mut [u8],
    row_term: &mut [i32],
) {
    let pk = padded_k(k);
    for r in 0..m {
        let xr = &x[r * lda..r * lda + k];
        let ar = &mut a[r * pk..(r + 1) * pk];
        let (ak, pad) = ar.split_at_mut(k);
        let sum = match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `resolve` returned a family the CPU has (AVX-512 F/BW).
            Isa::Avx512Vnni => unsafe { x86::quantize_row_avx512::<true>(xr, scale, zp, ak) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `resolve` returned a family the CPU has; all of them include AVX2.
            Isa::Avx2 | Isa::AvxVnni => unsafe { x86::quantize_row_avx2(xr, scale, zp, ak) },
            _ => quantize_row_scalar(xr, scale, zp, ak),
        };
        pad.fill(0);
        row_term[r] = sum.wrapping_sub(kzp);
    }
}

/// Quantizes one row into `out` (same length) and returns the sum of the quantized values.
#[inline]
fn quantize_row_scalar(x: &[f32], scale: f32, zp: f32, out: &mut [u8]) -> i32 {
    let mut sum = 0i32;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, scale, zp);
        sum = sum.wrapping_add(*o as i32);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! SIMD passes. Why they are exact: VDIVPS is the IEEE division the scalar code does;
    //! VRNDSCALEPS/VROUNDPS with imm 8 (nearest-even, no exceptions) is round_half_even; adding
    //! the zero point is the same f32 add; VMAXPS(v, 0) then VMINPS(v, 255) saturate with NaN →
    //! 0 exactly like `as u8`; the truncating convert then sees an integer in [0, 255].
    //! Tails (< one vector) use the scalar code.
    use core::arch::x86_64::*;

    const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

    /// # Safety
    /// The CPU supports AVX-512 F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn min_max_avx512(x: &[f32]) -> (f32, f32) {
        if x.is_empty() {
            return (0.0, 0.0);
        }
        // SAFETY: one row of x.len() values (the caller's CPU guarantee is forwarded).
        unsafe { min_max_rows_avx512(x, 1, x.len(), x.len()) }
    }

    /// # Safety
    /// The CPU supports AVX-512 F; rows ≥ 1 and `x` holds `(rows − 1)·ld + cols` values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn min_max_rows_avx512(
        x: &[f32],
        rows: usize,
        cols: usize,
        ld: usize,
    ) -> (f32, f32) {
        // Two accumulator pairs with fixed names (an array indexed by a loop counter would
        // live in memory); VMINPS(v, acc) returns acc when v is NaN: NaN skipped.
        let (mut lo0, mut hi0) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (mut lo1, mut hi1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let tail = cols % 16;
        let km = ((1u32 << tail) - 1) as __mmask16;
        for r in 0..rows {
            let p = x[r * ld..].as_ptr();
            let mut j = 0;
            while j + 32 <= cols {
                // SAFETY: lanes j..j+32 <= cols of row r, inside x (caller).
                let (v0, v1) =
                    unsafe { (_mm512_loadu_ps(p.add(j)), _mm512_loadu_ps(p.add(j + 16))) };
                (lo0, hi0) = (_mm512_min_ps(v0, lo0), _mm512_max_ps(v0, hi0));
                (lo1, hi1) = (_mm512_min_ps(v1, lo1), _mm512_max_ps(v1, hi1));
                j += 32;
            }
            if j + 16 <= cols {
                // SAFETY: as above, 16 lanes.
                let v = unsafe { _mm512_loadu_ps(p.add(j)) };
                (lo0, hi0) = (_mm512_min_ps(v, lo0), _mm512_max_ps(v, hi0));
                j += 16;
            }
            if tail != 0 {
                // SAFETY: the mask covers lanes j..cols of row r. Masked-off lanes read as 0,
                // which the range always includes.
                let v = unsafe { _mm512_maskz_loadu_ps(km, p.add(j)) };
                (lo1, hi1) = (_mm512_min_ps(v, lo1), _mm512_max_ps(v, hi1));
            }
        }
        // Neither accumulator holds NaN, so the lane reductions need no NaN care.
        (
            _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1)),
            _mm512_reduce_max_ps(_mm512_max_ps(hi0, hi1)),
        )
    }

    /// # Safety
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn min_max_avx2(x: &[f32]) -> (f32, f32) {
        let mut lo = [_mm256_setzero_ps(); 2];
        let mut hi = [_mm256_setzero_ps(); 2];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            for j in 0..2 {
                // SAFETY: the chunk has 16 floats.
                let v = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * j)) };
                lo[j] = _mm256_min_ps(v, lo[j]);
                hi[j] = _mm256_max_ps(v, hi[j]);
            }
        }
        let mut l = [0f32; 8];
        let mut h = [0f32; 8];
        // SAFETY: 8-float local arrays.
        unsafe {
            _mm256_storeu_ps(l.as_mut_ptr(), _mm256_min_ps(lo[0], lo[1]));
            _mm256_storeu_ps(h.as_mut_ptr(), _mm256_max_ps(hi[0], hi[1]));
        }
        let (mn, _) = super::min_max_scalar(&l, 0.0, 0.0);
        let (_, mx) = super::min_max_scalar(&h, 0.0, 0.0);
        super::min_max_scalar(chunks.remainder(), mn, mx)
    }

    /// Returns the sum of the quantized values (wrapping) when `SUM`, else 0 for the vector part.
    /// `zp` is a zero point (an integer in [0, 255]) as f32.
    ///
    /// # Safety
    /// The CPU supports AVX-512 F and BW; `out.len() == x.len()`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn quantize_row_avx512<const SUM: bool>(
        x: &[f32],
        scale: f32,
        zp: f32,
        out: &mut [u8],
    ) -> i32 {
        // Clamp the quotient to [−zp, 255 − zp] first, then one rounding conversion and an
        // integer add of zp: for an integer zp, round(clamp(v)) + zp equals the reference's
        // clamp(round(v) + zp) (the clamp bounds are integers), and VMAXPS(NaN, −zp) = −zp
        // quantizes NaN to 0 like the reference. One op fewer than rounding in float.
        let s = _mm512_set1_ps(scale);
        let (lo, hi) = (_mm512_set1_ps(-zp), _mm512_set1_ps(255.0 - zp));
        let zi = _mm512_set1_epi32(zp as i32);
        let mut sum = _mm512_setzero_si512();
        let n = x.len() / 16 * 16;
        let mut i = 0;
        while i < n {
            // SAFETY: i + 16 <= n <= x.len() == out.len().
            let v = unsafe { _mm512_loadu_ps(x.as_ptr().add(i)) };
            let t = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(v, s), lo), hi);
            let q = _mm512_add_epi32(_mm512_cvt_roundps_epi32::<ROUND>(t), zi);
            if SUM {
                sum = _mm512_add_epi32(sum, q);
            }
            // SAFETY: 16 bytes at out[i..i + 16].
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(q)) };
            i += 16;
        }
        let tail = super::quantize_row_scalar(&x[n..], scale, zp, &mut out[n..]);
        _mm512_reduce_add_epi32(sum).wrapping_add(tail)
    }

    /// # Safety
    /// The CPU supports AVX2; `out.len() == x.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize_row_avx2(x: &[f32], scale: f32, zp: f32, out: &mut [u8]) -> i32 {
        let (s, z) = (_mm256_set1_ps(scale), _mm256_set1_ps(zp));
        let (lo, hi) = (_mm256_setzero_ps(), _mm256_set1_ps(255.0));
        let mut sum = _mm256_setzero_si256();
        let n = x.len() / 16 * 16;
        let mut i = 0;
        while i < n {
            let mut q = [_mm256_setzero_si256(); 2];
            for (j, qj) in q.iter_mut().enumerate() {
                // SAFETY: i + 16 <= n <= x.len().
                let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(i + 8 * j)) };
                let f = _mm256_add_ps(_mm256_round_ps::<ROUND>(_mm256_div_ps(v, s)), z);
                *qj = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(f, lo), hi));
                sum = _mm256_add_epi32(sum, *qj);
            }
            // i16 pack: [q0 0..4, q1 0..4 | q0 4..8, q1 4..8]; u8 pack duplicates; the dwords
            // 0, 4, 1, 5 are then q0[0..4], q0[4..8], q1[0..4], q1[4..8].
            let w = _mm256_packs_epi32(q[0], q[1]);
            let b = _mm256_packus_epi16(w, w);
            let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 0, 4, 1, 5));
            // SAFETY: 16 bytes at out[i..i + 16].
            unsafe { _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm256_castsi256_si128(b)) };
            i += 16;
        }
        let tail = super::quantize_row_scalar(&x[n..], scale, zp, &mut out[n..]);
        let s128 = _mm_add_epi32(
            _mm256_castsi256_si128(sum),
            _mm256_extracti128_si256::<1>(sum),
        );
        let s64 = _mm_add_epi32(s128, _mm_unpackhi_epi64(s128, s128));
        let s32 = _mm_add_epi32(s64, _mm_shuffle_epi32::<1>(s64));
        _mm_cvtsi128_si32(s32).wrapping_add(tail)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// Independent spec, written from the ONNX formulas plus onnxruntime's choices (NaN skipped,
    /// empty range → scale 1, NaN quotient → 0), using std's rounding.
    fn spec(x: &[f32]) -> (QParams, Vec<u8>) {
        let finite_or_inf = x.iter().copied().filter(|v| !v.is_nan());
        let min = finite_or_inf.clone().fold(0.0f32, f32::min);
        let max = finite_or_inf.fold(0.0f32, f32::max);
        let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
        let izp = (0.0 - min / scale).round_ties_even();
        let zp = if izp.is_nan() {
            255
        } else {
            izp.clamp(0.0, 255.0) as u8
        };
        let q = x
            .iter()
            .map(|&v| {
                let t = (v / scale).round_ties_even() + zp as f32;
                if t.is_nan() {
                    0
                } else {
                    t.clamp(0.0, 255.0) as u8
                }
            })
            .collect();
        (
            QParams {
                scale,
                zero_point: zp,
            },
            q,
        )
    }

    fn run_all(x: &[f32]) -> (QParams, Vec<u8>) {
        let (qp, q) = spec(x);
        for isa in Isa::all_available() {
            let got = dynamic_qparams_isa(isa, x);
            assert_eq!(got.zero_point, qp.zero_point, "{isa} zp for {x:?}");
            assert_eq!(
                got.scale.to_bits(),
                qp.scale.to_bits(),
                "{isa} scale for {x:?}"
            );
            let mut out = std::vec![7u8; x.len()];
            quantize_u8(x, got, &mut out);
            assert_eq!(out, q, "{isa} q");
            // The fused pass on a single row, too.
            let mut a = std::vec![9u8; padded_k(x.len())];
            let mut rt = [0i32];
            quantize_pack_a(isa, x, 1, x.len(), x.len(), got, &mut a, &mut rt);
            assert_eq!(&a[..x.len()], &q[..], "{isa} fused q");
            assert!(a[x.len()..].iter().all(|&v| v == 0));
            let rowsum: i32 = q.iter().map(|&v| v as i32).sum();
            assert_eq!(rt[0], rowsum - x.len() as i32 * qp.zero_point as i32);
        }
        (qp, q)
    }

    #[test]
    fn round_half_even_matches_std() {
        let mut s = 1u32;
        for i in 0..200_000u32 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let x = if i.is_multiple_of(2) {
                f32::from_bits(s)
            } else {
                (s as i32 as f32) / 64.0
            };
            let (a, b) = (round_half_even(x), x.round_ties_even());
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{x}: {a} vs {b}"
            );
        }
        for (x, r) in [
            (0.5, 0.0),
            (1.5, 2.0),
            (2.5, 2.0),
            (-0.5, -0.0),
            (-1.5, -2.0),
            (8388607.5, 8388608.0),
        ] {
            assert_eq!(round_half_even(x), r);
        }
    }

    #[test]
    fn onnxruntime_special_values() {
        // Values observed with onnxruntime 1.32 (see the module doc).
        let cases: [(&[f32], f32, u8, &[u8]); 8] = [
            (&[0.0, 0.0, 0.0], 1.0, 0, &[0, 0, 0]),
            (&[f32::NAN; 3], 1.0, 0, &[0, 0, 0]),
            (&[1.0, f32::NAN, -2.0], 3.0 / 255.0, 170, &[255, 0, 0]),
            (&[1.0, f32::INFINITY, -1.0], f32::INFINITY, 0, &[0, 0, 0]),
            (
                &[1.0, f32::NEG_INFINITY, 2.0],
                f32::INFINITY,
                255,
                &[255, 0, 255],
            ),
            (
                &[f32::INFINITY, f32::NEG_INFINITY],
                f32::INFINITY,
                255,
                &[0, 0],
            ),
            (&[1e-45, 0.0, -1e-45], 0.0, 255, &[255, 0, 0]),
            (&[1.0, 2.0, 3.0], 3.0 / 255.0, 0, &[85, 170, 255]),
        ];
        for (x, scale, zp, q) in cases {
            let (qp, got) = run_all(x);
            assert_eq!(
                (qp.scale.to_bits(), qp.zero_point),
                (scale.to_bits(), zp),
                "{x:?}"
            );
            assert_eq!(got, q, "{x:?}");
        }
    }

    #[test]
    fn ties_round_to_even() {
        // scale = 15.9375/255 = 0.0625 exactly, zp = 85; x/scale = j + 0.5 exactly.
        let mut x = std::vec![-5.3125f32, 10.625];
        x.extend((-85..170).map(|j| (j as f32 + 0.5) * 0.0625));
        let (qp, q) = run_all(&x);
        assert_eq!(
            qp,
            QParams {
                scale: 0.0625,
                zero_point: 85
            }
        );
        for (j, &v) in (-85..170).zip(&q[2..]) {
            let even = if j % 2 == 0 { j } else { j + 1 };
            assert_eq!(v as i32, (even + 85).clamp(0, 255), "j={j}");
        }
        // Zero point tie: min/scale = -84.5 -> 84.
        let (qp, _) = run_all(&[-84.5 * 0.0625, 170.5 * 0.0625]);
        assert_eq!(
            qp,
            QParams {
                scale: 0.0625,
                zero_point: 84
            }
        );
    }

    #[test]
    fn min_max_simd_skips_nan_everywhere() {
        for n in [
            0usize, 1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 1000, 100_003,
        ] {
            for pos in [0, n / 2, n.saturating_sub(1)] {
                let mut x: Vec<f32> = (0..n).map(|i| ((i * 7919) % 113) as f32 - 50.0).collect();
                if n > 0 {
                    x[pos] = f32::NAN;
                }
                let want = min_max_scalar(&x, 0.0, 0.0);
                for isa in Isa::all_available() {
                    assert_eq!(min_max(isa, &x), want, "{isa} n={n} pos={pos}");
                }
            }
        }
    }

    /// The SIMD rows against the scalar definition, element by element, for every zero
    /// point class and scales from subnormal to infinite: NaN, ±inf, ±0, exact ties, values
    /// far outside the range (the AVX-512 row clamps before rounding).
    #[test]
    fn simd_rows_equal_the_scalar_definition() {
        let scales = [
            1.0f32,
            0.0371,
            3.0 / 255.0,
            1e-3,
            1e-40,
            1e30,
            f32::INFINITY,
        ];
        for &zp in &[0u8, 1, 77, 127, 128, 200, 254, 255] {
            for &scale in &scales {
                let mut x: Vec<f32> = (0..203)
                    .map(|i| (i as f32 - 101.0) * 0.5 * scale) // ties at odd i
                    .collect();
                x.extend([
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    -0.0,
                    0.0,
                    1e-45,
                    -1e-45,
                    f32::MAX,
                    f32::MIN,
                    (zp as f32 + 0.5) * scale,
                    -(zp as f32 + 0.5) * scale,
                    (255.5 - zp as f32) * scale,
                ]);
                x.extend((0..37).map(|i| (i * 7919 % 613) as f32 * 0.731 - 200.0));
                let qp = QParams {
                    scale,
                    zero_point: zp,
                };
                let mut want = std::vec![0u8; x.len()];
                quantize_u8(&x, qp, &mut want);
                for isa in Isa::all_available() {
                    let mut got = std::vec![7u8; x.len()];
                    quantize_u8_isa(isa, &x, qp, &mut got);
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(g, w, "{isa} zp={zp} scale={scale} x={}", x[i]);
                    }
                }
            }
        }
    }

    /// A `Range` fed piece by piece (any split, any order, from several threads, blocks at a
    /// stride) equals `min_max` of the whole tensor, and gives the same quantization
    /// parameters; NaN skipped, ±inf, ±0 and subnormals kept.
    #[test]
    fn range_pieces_equal_the_whole() {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            1e-40,
            -1e-40,
        ];
        let mut s = 99u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as usize
        };
        for case in 0..200 {
            let n = next() % 300;
            let x: Vec<f32> = (0..n)
                .map(|_| match next() % 20 {
                    0 => specials[next() % specials.len()],
                    _ => (next() % 20001) as f32 * 1e-3 - 10.0 + (case % 3) as f32 * 7.0,
                })
                .collect();
            let want = min_max_scalar(&x, 0.0, 0.0);
            for isa in Isa::all_available() {
                let r = Range::new();
                r.observe(isa, &[]);
                let mut i = 0;
                while i < n {
                    let end = (i + 1 + next() % 40).min(n);
                    r.observe(isa, &x[i..end]);
                    i = end;
                }
                assert_eq!(r.get(), want, "{isa} case {case}");
                assert_eq!(
                    r.qparams(),
                    dynamic_qparams_isa(isa, &x),
                    "{isa} case {case}"
                );
                // Rows of 7 at stride 10 (the last row short of a full stride).
                if n >= 7 {
                    let rows = (n - 7) / 10 + 1;
                    let mut fold = (0f32, 0f32);
                    for row in 0..rows {
                        let (lo, hi) = min_max_scalar(&x[row * 10..row * 10 + 7], 0.0, 0.0);
                        fold = (fold.0.min(lo), fold.1.max(hi));
                    }
                    assert_eq!(
                        min_max_rows(isa, &x, rows, 7, 10),
                        fold,
                        "{isa} case {case}"
                    );
                }
            }
        }
        // Threads: one include per piece, in whatever order they run (wasm32-wasip1 has no
        // threads).
        #[cfg(not(target_arch = "wasm32"))]
        {
            let x: Vec<f32> = (0..100_000)
                .map(|i| ((i * 7919) % 10007) as f32 - 6000.5)
                .collect();
            let r = Range::new();
            std::thread::scope(|sc| {
                for c in x.chunks(7001) {
                    let r = &r;
                    sc.spawn(move || r.observe(Isa::current(), c));
                }
            });
            assert_eq!(r.get(), min_max_scalar(&x, 0.0, 0.0));
        }
    }

    #[test]
    fn fused_pack_all_isas_with_strides_and_saturation() {
        let mut s = 12345u64;
        let mut next = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 33) as u32
        };
        for &(m, k, lda) in &[
            (1, 1, 1),
            (3, 17, 20),
            (5, 64, 64),
            (2, 100, 131),
            (4, 255, 255),
            (1, 0, 0),
            // Large enough to be split into row blocks across threads (feature `rayon`).
            (300, 130, 133),
            (701, 100, 100),
        ] {
            let x: Vec<f32> = (0..m * lda)
                .map(|_| match next() % 50 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    _ => (next() as i32 as f32) / 1.0e8,
                })
                .collect();
            // A scale that does not cover the data, so the clamps are exercised.
            let qp = QParams {
                scale: 0.07,
                zero_point: 131,
            };
            let pk = padded_k(k);
            let mut want = std::vec![0u8; m * pk];
            let mut want_rt = std::vec![0i32; m];
            for r in 0..m {
                quantize_u8(&x[r * lda..r * lda + k], qp, &mut want[r * pk..r * pk + k]);
                let sum: i32 = want[r * pk..r * pk + k].iter().map(|&v| v as i32).sum();
                want_rt[r] = sum - k as i32 * 131;
            }
            for isa in Isa::all_available() {
                let mut a = std::vec![0xAAu8; m * pk];
                let mut rt = std::vec![0i32; m];
                quantize_pack_a(isa, &x, m, k, lda, qp, &mut a, &mut rt);
                assert_eq!(a, want, "{isa} m={m} k={k}");
                assert_eq!(rt, want_rt, "{isa}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        #[test]
        fn random_data_matches_spec(x in proptest::collection::vec(-100.0f32..100.0, 1..200),
                                    shift in -50.0f32..50.0) {
            let x: Vec<f32> = x.iter().map(|v| v + shift).collect();
            let (qp, q) = run_all(&x);
            // f64 check of the rounding: |q - (x/scale + zp)| <= 0.5 (+ f32 division error),
            // wherever not saturated.
            for (&v, &qv) in x.iter().zip(&q) {
                let exact = v as f64 / qp.scale as f64 + qp.zero_point as f64;
                if (0.0..=255.0).contains(&exact) {
                    prop_assert!((qv as f64 - exact).abs() <= 0.5 + 1e-4, "{v} -> {qv}, exact {exact}");
                }
            }
        }
    }
}
