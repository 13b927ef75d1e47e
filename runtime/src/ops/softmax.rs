//! ONNX `Softmax` / `LogSoftmax` (opset ≥ 13: one axis) over `x` viewed as
//! `[outer][axis_len][inner]`.
//!
//! Numerics: subtract the max over the axis, exponentiate, divide by the sum (softmax multiplies
//! by the correctly rounded reciprocal of the sum: ≤ 1 extra rounding); log-softmax is
//! `x − max − ln(sum)`. NaN anywhere in a group makes the whole group NaN; a group of all `-inf`
//! is NaN (`-inf − -inf`), like onnxruntime. Sums accumulate in `f32`.
//!
//! The exponentials go through SIMD kernels (`x86_64-f32-avx512-exp`, `x86_64-f32-avx2-exp`)
//! when the CPU has them: Cody–Waite reduction `x = n·ln2 + r` with |r| ≤ ln2/2, a polynomial
//! of e^r by FMA Horner (AVX2: the degree-7 Taylor polynomial, truncation 5e-9 relative;
//! AVX-512: a degree-6 fit, 1.9e-9, both below half an ulp), and
//! the product with 2^n (`vscalefps` on AVX-512, built in the exponent field on AVX2) — about
//! 1–2 ulp. The AVX2 one is only valid for this use (arguments ≤ 0 after the max subtraction):
//! results below ~2^-127 flush to zero, which is negligible against a sum ≥ 1; the AVX-512 one
//! rounds into the subnormals. The scalar path uses [`super::math::exp`].

use super::math;
use crate::isa::Isa;

/// Columns processed together when `inner > 1` (per-column max and sum live on the stack).
const CHUNK: usize = 64;

/// Softmax over the middle axis of `[outer][axis_len][inner]`. Panics if lengths mismatch.
pub fn softmax(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    run(x, out, outer, axis_len, inner, false);
}

/// Log-softmax over the middle axis of `[outer][axis_len][inner]`. Panics if lengths mismatch.
pub fn log_softmax(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    run(x, out, outer, axis_len, inner, true);
}

fn run(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize, log: bool) {
    let len = outer * axis_len * inner;
    assert_eq!(x.len(), len, "softmax: input length");
    assert_eq!(out.len(), len, "softmax: output length");
    if len == 0 {
        return;
    }
    let isa = Isa::current().resolve();
    if inner == 1 && !log {
        crate::par::rows(x, axis_len, out, axis_len, |xs, os| {
            for (xr, or) in xs.chunks_exact(axis_len).zip(os.chunks_exact_mut(axis_len)) {
                softmax_row(isa, xr, or);
            }
        });
        return;
    }
    if inner == 1 {
        for (xr, or) in x.chunks_exact(axis_len).zip(out.chunks_exact_mut(axis_len)) {
            let m = row_max(xr);
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = v - m;
            }
            let mut sum = 0.0;
            for &v in or.iter() {
                sum += math::exp(v);
            }
            let l = math::ln(sum);
            for o in or.iter_mut() {
                *o -= l;
            }
        }
        return;
    }
    let group = axis_len * inner;
    for (xg, og) in x.chunks_exact(group).zip(out.chunks_exact_mut(group)) {
        for c0 in (0..inner).step_by(CHUNK) {
            let w = CHUNK.min(inner - c0);
            let mut mx = [f32::NEG_INFINITY; CHUNK];
            let mut nan = [false; CHUNK];
            for a in 0..axis_len {
                let row = &xg[a * inner + c0..a * inner + c0 + w];
                for ((m, n), &v) in mx.iter_mut().zip(nan.iter_mut()).zip(row) {
                    if v > *m {
                        *m = v;
                    }
                    *n |= v.is_nan();
                }
            }
            for (m, &n) in mx.iter_mut().zip(&nan) {
                if n {
                    *m = f32::NAN;
                }
            }
            let mut sum = [0.0f32; CHUNK];
            for a in 0..axis_len {
                let i0 = a * inner + c0;
                let orow = &mut og[i0..i0 + w];
                for ((o, &v), &m) in orow.iter_mut().zip(&xg[i0..i0 + w]).zip(&mx) {
                    *o = v - m;
                }
                if log {
                    for (s, &o) in sum.iter_mut().zip(orow.iter()) {
                        *s += math::exp(o);
                    }
                } else {
                    exp_sum_inplace(isa, orow);
                    for (s, &o) in sum.iter_mut().zip(orow.iter()) {
                        *s += o;
                    }
                }
            }
            for s in sum.iter_mut() {
                *s = if log { math::ln(*s) } else { 1.0 / *s };
            }
            for a in 0..axis_len {
                let i0 = a * inner + c0;
                for (o, &s) in og[i0..i0 + w].iter_mut().zip(&sum) {
                    if log {
                        *o -= s;
                    } else {
                        *o *= s;
                    }
                }
            }
        }
    }
}

/// Softmax of one row: max, `e^(x − max)` and its sum, then the product with `1/sum`.
fn softmax_row(isa: Isa, x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni {
        // SAFETY: `isa` is resolved, so the CPU has avx512f, avx2 and fma.
        unsafe { x86::softmax_row_avx512(x, out) };
        return;
    }
    let m = row_max(x);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v - m;
    }
    let sum = exp_sum_inplace(isa, out);
    let r = 1.0 / sum;
    for o in out.iter_mut() {
        *o *= r;
    }
}

/// The unnormalised softmax of a row in place (the fused attention's score rows, whose
/// normalisation is applied to the output instead): `row[j] = e^(row[j] − max)`, returning
/// their sum. The same max and exp as [`softmax_row`].
pub(crate) fn exp_row_inplace(isa: Isa, row: &mut [f32]) -> f32 {
    let m = row_max(row);
    for o in row.iter_mut() {
        *o -= m;
    }
    exp_sum_inplace(isa, row)
}

/// Max of a row; NaN if any element is NaN.
fn row_max(x: &[f32]) -> f32 {
    let mut m = f32::NEG_INFINITY;
    let mut nan = false;
    for &v in x {
        if v > m {
            m = v;
        }
        nan |= v.is_nan();
    }
    if nan { f32::NAN } else { m }
}

/// `v = e^v` for every element (arguments ≤ 0 or NaN), returning the sum.
fn exp_sum_inplace(isa: Isa, v: &mut [f32]) -> f32 {
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            // SAFETY: resolve() returned Avx512Vnni, so the CPU has avx512f, avx2 and fma.
            unsafe { x86::exp_sum_avx512(v) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni => {
            // SAFETY: resolve() returned an AVX2 family, so the CPU has avx2 and fma.
            unsafe { x86::exp_sum_avx2(v) }
        }
        _ => {
            let mut s = 0.0;
            for x in v.iter_mut() {
                *x = math::exp(*x);
                s += *x;
            }
            s
        }
    }
}

// AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable since Rust 1.89, so
// this module needs rustc >= 1.89 whatever the workspace `rust-version` (1.85) says; the
// AVX-512 int8 kernels have the same requirement, so the declared MSRV should become 1.89.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
pub(crate) mod x86 {
    use core::arch::x86_64::*;

    const LOG2E: f32 = core::f32::consts::LOG2_E;
    /// ln 2 = LN2_HI + LN2_LO with LN2_HI = 355/512, so n·LN2_HI is exact for |n| < 2^15.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    /// Arguments are clamped here: n = round(x·log2e) stays in [-127, 127].
    const LO: f32 = -88.0;
    const HI: f32 = 88.0;
    /// The AVX-512 kernel's clamp: e^-104 is below half the smallest subnormal, so 0.
    const LO_AVX512: f32 = -104.0;
    /// The AVX-512 kernel's polynomial: degree 6, fitted for the smallest relative error of
    /// e^r on |r| ≤ 0.3467 (fit error 1.9e-9; with the f32 coefficients and Horner steps
    /// 7.1e-8 ≈ 1.2 · 2^-24), one FMA fewer than the Taylor polynomial below.
    const C6: [f32; 7] = [
        1.383_680_6e-3,
        8.374_846e-3,
        4.166_823e-2,
        1.666_642e-1,
        4.999_999e-1,
        1.0,
        1.0,
    ];
    /// 1/k! for k = 7 down to 0 (Horner order).
    const C: [f32; 8] = [
        1.0 / 5040.0,
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ];

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    pub(crate) fn exp8(x: __m256) -> __m256 {
        // max/min return their second operand when either is NaN, so NaN survives the clamp.
        let x = _mm256_min_ps(_mm256_set1_ps(HI), _mm256_max_ps(_mm256_set1_ps(LO), x));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(C[0]);
        for &c in &C[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(p, _mm256_castsi256_ps(e))
    }

    /// # Safety
    /// CPU has avx2 and fma.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_sum_avx2(v: &mut [f32]) -> f32 {
        let mut acc = _mm256_setzero_ps();
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c has exactly 8 floats.
            unsafe {
                let e = exp8(_mm256_loadu_ps(c.as_ptr()));
                _mm256_storeu_ps(c.as_mut_ptr(), e);
                acc = _mm256_add_ps(acc, e);
            }
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut t = [f32::NEG_INFINITY; 8];
            t[..tail.len()].copy_from_slice(tail);
            // SAFETY: t has 8 floats; padding lanes are -inf, whose exp is 0.
            unsafe {
                let e = exp8(_mm256_loadu_ps(t.as_ptr()));
                _mm256_storeu_ps(t.as_mut_ptr(), e);
                acc = _mm256_add_ps(acc, e);
            }
            tail.copy_from_slice(&t[..tail.len()]);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: lanes has 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        lanes.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    pub(crate) fn exp16(x: __m512) -> __m512 {
        // Only the low clamp (for -inf, whose reduction would be -inf + inf): scalef builds
        // p·2^n for any n, overflowing to inf above 88.7 and rounding into the subnormals (and
        // to 0 below x ≈ -103.97) on its own.
        let x = _mm512_max_ps(_mm512_set1_ps(LO_AVX512), x);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(C6[0]);
        for &c in &C6[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// One softmax row in three vector passes (max with NaN detection; `e^(x − max)` stored
    /// and summed; scale by `1/sum`). Same operations and summation order as the generic path
    /// with [`exp_sum_avx512`], so the results are identical.
    ///
    /// # Safety
    /// CPU has avx512f, avx2 and fma; `out.len() == x.len()`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn softmax_row_avx512(x: &[f32], out: &mut [f32]) {
        assert_eq!(out.len(), x.len());
        // SAFETY: both slices hold x.len() floats; the CPU features are the caller's contract.
        unsafe { softmax_row_avx512_ptr(x.as_ptr(), out.as_mut_ptr(), x.len()) }
    }

    /// [`softmax_row_avx512`] on raw pointers, so that `xp == op` (in place) is allowed: every
    /// pass reads an element before it writes the same element.
    ///
    /// # Safety
    /// CPU has avx512f, avx2 and fma; `xp` is readable and `op` writable for `len` floats, and
    /// the two ranges are identical or disjoint.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn softmax_row_avx512_ptr(xp: *const f32, op: *mut f32, len: usize) {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mask_at = |i: usize| ((1u32 << (len - i).min(16)) - 1) as __mmask16;
        let mut mx = ninf;
        let mut nan: __mmask16 = 0;
        let mut i = 0;
        while i < len {
            // SAFETY: the mask selects lanes i..min(i+16, len), inside x.
            let v = unsafe { _mm512_mask_loadu_ps(ninf, mask_at(i), xp.add(i)) };
            mx = _mm512_max_ps(mx, v);
            nan |= _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
            i += 16;
        }
        let m = if nan != 0 {
            f32::NAN
        } else {
            _mm512_reduce_max_ps(mx)
        };
        let mv = _mm512_set1_ps(m);
        let mut acc = _mm512_setzero_ps();
        let mut i = 0;
        while i < len {
            let k = mask_at(i);
            // SAFETY: as above, for x and out (same length). Masked-off lanes are -inf − m
            // (−inf, whose exp is 0, or NaN when the sum is NaN anyway) and are not stored.
            unsafe {
                let d = _mm512_sub_ps(_mm512_mask_loadu_ps(ninf, k, xp.add(i)), mv);
                let e = exp16(d);
                _mm512_mask_storeu_ps(op.add(i), k, e);
                acc = _mm512_add_ps(acc, e);
            }
            i += 16;
        }
        let r = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(acc));
        let mut i = 0;
        while i < len {
            let k = mask_at(i);
            // SAFETY: as above.
            unsafe {
                let v = _mm512_maskz_loadu_ps(k, op.add(i));
                _mm512_mask_storeu_ps(op.add(i), k, _mm512_mul_ps(v, r));
            }
            i += 16;
        }
    }

    /// The attention score rows, R at a time: `row[j] = (row[j] ∘ c) + mask[j]` (∘ = `/` or
    /// `·`, each step rounded like the separate ops; a null mask for none) folded into the max
    /// pass, then `row[j] = e^(row[j] − max)` in place, returning each row's sum (the caller
    /// scales the attention output by its reciprocal instead of normalising the row: two passes
    /// over the row instead of three). The same max and exp as [`softmax_row_avx512_ptr`]. Interleaving
    /// R rows overlaps their independent dependency chains (the exp polynomial, the sum, the
    /// horizontal reductions), which a single 128-element row leaves mostly waiting on latency.
    ///
    /// # Safety
    /// CPU has avx512f, avx2 and fma; every row is writable for `len` floats, every non-null
    /// mask readable for `len` floats; rows do not overlap.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(crate) unsafe fn exp_rows_pre_avx512<const R: usize>(
        rows: [*mut f32; R],
        len: usize,
        scale: crate::ops::attention::ScoreScale,
        masks: [*const f32; R],
    ) -> [f32; R] {
        use crate::ops::attention::ScoreScale;
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mask_at = |i: usize| ((1u32 << (len - i).min(16)) - 1) as __mmask16;
        let mut mx = [ninf; R];
        let mut i = 0;
        while i < len {
            let k = mask_at(i);
            for r in 0..R {
                // SAFETY: the mask selects lanes i..min(i+16, len), inside each row and mask.
                unsafe {
                    let mut v = _mm512_maskz_loadu_ps(k, rows[r].add(i));
                    v = match scale {
                        ScoreScale::None => v,
                        ScoreScale::Div(c) => _mm512_div_ps(v, _mm512_set1_ps(c)),
                        ScoreScale::Mul(c) => _mm512_mul_ps(v, _mm512_set1_ps(c)),
                    };
                    if !masks[r].is_null() {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, masks[r].add(i)));
                    }
                    _mm512_mask_storeu_ps(rows[r].add(i), k, v);
                    mx[r] = _mm512_mask_max_ps(mx[r], k, mx[r], v);
                }
            }
            i += 16;
        }
        // No separate NaN check (unlike `softmax_row_avx512_ptr`): a NaN score that the max
        // skipped gives a NaN exponential, so the row's sum is NaN and so is every output the
        // caller scales by its reciprocal — the same all-NaN row.
        let mv: [__m512; R] = core::array::from_fn(|r| _mm512_set1_ps(_mm512_reduce_max_ps(mx[r])));
        let mut acc = [_mm512_setzero_ps(); R];
        let mut i = 0;
        while i < len {
            let k = mask_at(i);
            for r in 0..R {
                // SAFETY: as above; masked-off lanes are −inf − m (exp 0) and are not stored.
                unsafe {
                    let d = _mm512_sub_ps(_mm512_mask_loadu_ps(ninf, k, rows[r].add(i)), mv[r]);
                    let e = exp16(d);
                    _mm512_mask_storeu_ps(rows[r].add(i), k, e);
                    acc[r] = _mm512_add_ps(acc[r], e);
                }
            }
            i += 16;
        }
        core::array::from_fn(|r| _mm512_reduce_add_ps(acc[r]))
    }

    /// # Safety
    /// CPU has avx512f, avx2 and fma.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn exp_sum_avx512(v: &mut [f32]) -> f32 {
        let mut acc = _mm512_setzero_ps();
        let len = v.len();
        let p = v.as_mut_ptr();
        let mut i = 0;
        while i < len {
            let w = (len - i).min(16);
            let mask = ((1u32 << w) - 1) as __mmask16;
            // SAFETY: lanes i..i+w are in bounds and the mask selects exactly those; masked-off
            // lanes are neither read nor written.
            unsafe {
                let x = _mm512_mask_loadu_ps(_mm512_set1_ps(f32::NEG_INFINITY), mask, p.add(i));
                let e = exp16(x);
                _mm512_mask_storeu_ps(p.add(i), mask, e);
                acc = _mm512_add_ps(acc, e);
            }
            i += w;
        }
        _mm512_reduce_add_ps(acc)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn reference(x: &[f32], outer: usize, axis: usize, inner: usize, log: bool) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        for o in 0..outer {
            for i in 0..inner {
                let at = |a: usize| o * axis * inner + a * inner + i;
                let m = (0..axis)
                    .map(|a| x[at(a)] as f64)
                    .fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = (0..axis).map(|a| (x[at(a)] as f64 - m).exp()).sum();
                for a in 0..axis {
                    let d = x[at(a)] as f64 - m;
                    out[at(a)] = if log { d - s.ln() } else { d.exp() / s };
                }
            }
        }
        out
    }

    /// Tolerances: each output is e^d/s. d = x − max is rounded to f32 (absolute error
    /// ≤ eps·|d|/2, i.e. relative eps·|d|/2 after exp), e^d is within 2 ulp and s an f32 sum of
    /// `axis` terms (relative error ≤ axis·eps), plus the reciprocal: relative
    /// (axis + 4 + |d|)·eps. Log-softmax is d − ln s: absolute eps·(|d| + 1)·(axis + 4).
    #[test]
    fn softmax_matches_f64() {
        let _forced = crate::isa::forced_test_lock();
        let shapes = [
            (1, 1, 1),
            (3, 5, 1),
            (2, 33, 1),
            (2, 100, 1),
            (3, 7, 5),
            (2, 4, 70),
            (1, 17, 3),
            (2, 0, 3),
        ];
        for isa in Isa::all_available() {
            crate::isa::set_forced(Some(isa));
            for &(outer, axis, inner) in &shapes {
                let n = outer * axis * inner;
                let x: Vec<f32> = (0..n)
                    .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37)
                    .collect();
                for log in [false, true] {
                    let mut out = vec![0.0; n];
                    if log {
                        log_softmax(&x, &mut out, outer, axis, inner);
                    } else {
                        softmax(&x, &mut out, outer, axis, inner);
                    }
                    let want = reference(&x, outer, axis, inner, log);
                    let eps = f32::EPSILON as f64 * (axis as f64 + 4.0);
                    for (g, w) in out.iter().zip(&want) {
                        let tol = if log {
                            eps * (w.abs() + 1.0)
                        } else {
                            // |d| <= |ln w| + ln(axis) <= |ln w| + axis.
                            let d = -w.ln() + axis as f64;
                            f32::EPSILON as f64 * (axis as f64 + 4.0 + d) * w + 1e-38
                        };
                        assert!(
                            (*g as f64 - w).abs() <= tol,
                            "{isa} {outer}x{axis}x{inner} log={log}: {g} vs {w}"
                        );
                    }
                }
            }
        }
        crate::isa::set_forced(None);
    }

    #[test]
    fn special_values() {
        let _forced = crate::isa::forced_test_lock();
        for isa in Isa::all_available() {
            crate::isa::set_forced(Some(isa));
            let mut out = [0.0f32; 4];
            softmax(
                &[1.0, f32::NEG_INFINITY, 1.0, f32::NEG_INFINITY],
                &mut out,
                1,
                4,
                1,
            );
            assert_eq!(out, [0.5, 0.0, 0.5, 0.0]);
            softmax(&[1.0, f32::NAN, 1.0, 2.0], &mut out, 1, 4, 1);
            assert!(out.iter().all(|v| v.is_nan()));
            softmax(&[1000.0, -1000.0, 0.0, 1000.0], &mut out, 1, 4, 1);
            assert_eq!(out, [0.5, 0.0, 0.0, 0.5]);
            let mut out = [0.0f32; 2];
            log_softmax(&[0.0, 0.0], &mut out, 1, 2, 1);
            assert_eq!(out, [-core::f32::consts::LN_2; 2]);
        }
        crate::isa::set_forced(None);
    }

    #[test]
    fn simd_exp_accuracy() {
        for isa in Isa::all_available() {
            let mut v: Vec<f32> = (0..4000).map(|i| -(i as f32) * 0.0217).collect();
            let x = v.clone();
            exp_sum_inplace(isa, &mut v);
            for (g, &x) in v.iter().zip(&x) {
                let w = (x as f64).exp();
                if w < 1.2e-38 {
                    // Below 2^-126 the kernel may flush or round to a subnormal.
                    assert!((*g as f64) <= 1.8e-38);
                    continue;
                }
                assert!(
                    (*g as f64 - w).abs() <= 2.5 * f32::EPSILON as f64 * w,
                    "{isa} exp({x}) {g} vs {w}"
                );
            }
        }
    }
}
