//! GELU, erf form: `gelu(x) = ½·x·(1 + erf(x/√2)) = ½·x·erfc(−x/√2)`, vectorised.
//!
//! Written through erfc so that neither side loses relative accuracy: for x ≥ 0 the factor is
//! `1 − ½·erfc(z)` (erfc ≤ 1), for x < 0 it is `½·erfc(z)`, with `z = |x|/√2`. erfc uses
//! kiln's own fit `erfc(z) = t·exp(P(u) − z²)`, `t = 1/(1 + z/2)`, `u = (t − A)/B` mapping
//! z ∈ [0, 9.2] onto u ∈ [−1, 1], P of degree 9 fitted by least squares on ln(erfc(z)/t) + z²
//! (coefficients below; fit error 2e-7 in the exponent). The exponent `P − z²` is formed with one
//! rounding (FMA, or exactly in f64 on the scalar path), so the result's relative error is
//! ≈ 1e-6 in the far negative tail (|x| ≥ 5, where |gelu| < 2e-6) and a few ulp elsewhere.
//! Beyond z = 9.2, erfc < 2^-126 and is taken as 0. SIMD paths agree with the scalar one within
//! float rounding (FMA vs exact-in-f64 steps, and the SIMD exp's 2 ulp).
use crate::isa::Isa;

const A: f32 = 0.589_285_73;
const INV_B: f32 = 2.434_782_5;
const Z_MAX: f32 = 9.2;
/// P's coefficients, highest degree first (Horner order).
const P: [f32; 10] = [
    5.268_127_6e-5,
    7.500_719e-5,
    -4.848_053_5e-4,
    -2.628_632e-4,
    3.436_702_5e-3,
    -7.508_35e-4,
    -2.827_797_3e-2,
    1.407_162_1e-2,
    0.562_585_65,
    -0.550_445,
];
const FRAC_1_SQRT_2: f32 = core::f32::consts::FRAC_1_SQRT_2;

/// Scalar GELU with the same formula as the SIMD paths.
pub fn gelu_scalar(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let z = x.abs() * FRAC_1_SQRT_2;
    let e = if z > Z_MAX {
        0.0
    } else {
        let t = 1.0 / (1.0 + 0.5 * z);
        let u = (t - A) * INV_B;
        let mut p = P[0];
        for &c in &P[1..] {
            p = (p as f64 * u as f64 + c as f64) as f32;
        }
        let arg = (p as f64 - z as f64 * z as f64) as f32;
        t * super::math::exp(arg)
    };
    let factor = if x >= 0.0 { 1.0 - 0.5 * e } else { 0.5 * e };
    x * factor
}

/// `out[i] = gelu(x[i])`.
pub fn gelu(isa: Isa, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "gelu: length mismatch");
    out.copy_from_slice(x);
    gelu_inplace(isa, out);
}

/// `x[i] = gelu(x[i])`.
pub fn gelu_inplace(isa: Isa, x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let isa = isa.resolve();
        if isa >= Isa::Avx512Vnni {
            // SAFETY: resolve() returned a family whose features (avx512f, avx2, fma) this CPU has.
            unsafe { x86::gelu_avx512(x) };
            return;
        }
        if isa >= Isa::Avx2 {
            // SAFETY: as above, avx2 and fma are present.
            unsafe { x86::gelu_avx2(x) };
            return;
        }
    }
    let _ = isa;
    for v in x {
        *v = gelu_scalar(*v);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{A, FRAC_1_SQRT_2, INV_B, P, Z_MAX};
    use crate::ops::softmax::x86::{exp8, exp16};
    use core::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn gelu8(x: __m256) -> __m256 {
        let sign = _mm256_set1_ps(-0.0);
        let z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(FRAC_1_SQRT_2));
        let one = _mm256_set1_ps(1.0);
        let t = _mm256_div_ps(one, _mm256_fmadd_ps(z, _mm256_set1_ps(0.5), one));
        let u = _mm256_mul_ps(_mm256_sub_ps(t, _mm256_set1_ps(A)), _mm256_set1_ps(INV_B));
        let mut p = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(c));
        }
        let arg = _mm256_fnmadd_ps(z, z, p);
        let mut e = _mm256_mul_ps(t, exp8(arg));
        // erfc beyond Z_MAX is below the smallest normal: 0 (NaN z compares false and stays).
        let big = _mm256_cmp_ps::<_CMP_GT_OQ>(z, _mm256_set1_ps(Z_MAX));
        e = _mm256_andnot_ps(big, e);
        let half = _mm256_set1_ps(0.5);
        let pos = _mm256_fnmadd_ps(half, e, one);
        let neg = _mm256_mul_ps(half, e);
        let is_neg = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
        _mm256_mul_ps(x, _mm256_blendv_ps(pos, neg, is_neg))
    }

    /// # Safety
    /// CPU has avx2 and fma.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gelu_avx2(x: &mut [f32]) {
        let mut chunks = x.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: c has exactly 8 floats.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), gelu8(_mm256_loadu_ps(c.as_ptr()))) };
        }
        for v in chunks.into_remainder() {
            *v = super::gelu_scalar(*v);
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    fn gelu16(x: __m512) -> __m512 {
        let z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(FRAC_1_SQRT_2));
        let one = _mm512_set1_ps(1.0);
        let t = _mm512_div_ps(one, _mm512_fmadd_ps(z, _mm512_set1_ps(0.5), one));
        let u = _mm512_mul_ps(_mm512_sub_ps(t, _mm512_set1_ps(A)), _mm512_set1_ps(INV_B));
        let mut p = _mm512_set1_ps(P[0]);
        for &c in &P[1..] {
            p = _mm512_fmadd_ps(p, u, _mm512_set1_ps(c));
        }
        let arg = _mm512_fnmadd_ps(z, z, p);
        let e = _mm512_mul_ps(t, exp16(arg));
        let big = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_set1_ps(Z_MAX));
        let e = _mm512_mask_mov_ps(e, big, _mm512_setzero_ps());
        let half = _mm512_set1_ps(0.5);
        let pos = _mm512_fnmadd_ps(half, e, one);
        let neg = _mm512_mul_ps(half, e);
        let is_neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(x, _mm512_setzero_ps());
        _mm512_mul_ps(x, _mm512_mask_mov_ps(pos, is_neg, neg))
    }

    /// # Safety
    /// CPU has avx512f, avx2 and fma.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn gelu_avx512(x: &mut [f32]) {
        let len = x.len();
        let p = x.as_mut_ptr();
        let mut i = 0;
        while i < len {
            let w = (len - i).min(16);
            let mask = ((1u32 << w) - 1) as __mmask16;
            // SAFETY: lanes i..i+w are in bounds and only those are read and written.
            unsafe {
                let v = _mm512_maskz_loadu_ps(mask, p.add(i));
                _mm512_mask_storeu_ps(p.add(i), mask, gelu16(v));
            }
            i += w;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// GELU in f64 from std's erf-free pieces: ½·x·erfc(−x/√2) with erfc from the runtime's
    /// accurate f64 implementation (tested against std in math.rs).
    fn reference(x: f32) -> f64 {
        let xd = x as f64;
        0.5 * xd * crate::ops::math::erfc64(-xd * core::f64::consts::FRAC_1_SQRT_2)
    }

    #[test]
    fn accurate_on_every_isa() {
        let mut xs: Vec<f32> = (-20000..=20000).map(|i| i as f32 * 6e-4).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            30.0,
            -30.0,
            1e6,
            -1e6,
            f32::MAX,
            f32::MIN,
        ]);
        for isa in Isa::all_available() {
            let mut y = xs.clone();
            gelu_inplace(isa, &mut y);
            for (&x, &g) in xs.iter().zip(&y) {
                let r = reference(x);
                // 4 ulp of the result, plus the f32 rounding of the exponent −z² (half an ulp
                // of z²: up to z²·2^-23 relative with the polynomial error), plus a floor for underflowing values.
                let z2 = (x as f64) * (x as f64) / 2.0;
                let tol = (r.abs() * (5e-7 + z2 * 2.4e-7)).max(1e-37);
                assert!(
                    (g as f64 - r).abs() <= tol,
                    "{isa}: gelu({x}) = {g}, want {r}"
                );
            }
        }
        for isa in Isa::all_available() {
            let mut y = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY];
            gelu_inplace(isa, &mut y);
            assert!(y[0].is_nan(), "{isa}");
            assert_eq!(y[1], f32::INFINITY, "{isa}");
        }
    }
}
