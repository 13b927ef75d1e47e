//! Fused multiply-add for `f32` without `std`: `a·b + c` rounded once.
//!
//! Why: kiln's float GEMMs accumulate with FMA on the SIMD paths (AVX2, AVX-512), and the
//! portable path must round the same way for every ISA to give the same bits (issue 20,
//! docs/numerics.md). `core` has no `mul_add`, so [`fma32`] is a software FMA, and x86_64
//! callers use the hardware instruction when the CPU has it (the scalar GEMM is instantiated
//! once with `target_feature(enable = "fma")`).
//!
//! How: `a·b` is exact in `f64` (24 + 24 significant bits ≤ 53), so `s = a·b + c` in `f64` is
//! one rounding away from the exact result, and converting `s` to `f32` would be a second one.
//! Double rounding is avoided by making the first rounding *round to odd*: when `s` is inexact
//! (its error, found exactly by a two-sum, is non-zero) and its last bit is even, `s` moves one
//! ulp towards the exact value. Rounding a round-to-odd result with ≥ 2 extra bits (here 29) to
//! nearest-even gives the correctly rounded result, normal or subnormal (Boldo & Melquiond,
//! "When double rounding is odd").

/// `a·b + c` with a single rounding to nearest-even (IEEE 754 fusedMultiplyAdd), including
/// infinities, NaN, signed zeros and subnormal results.
#[inline]
pub fn fma32(a: f32, b: f32, c: f32) -> f32 {
    let p = a as f64 * b as f64; // exact (or ±inf/NaN from inf·x, 0·inf)
    let c = c as f64;
    let s = p + c;
    if !s.is_finite() || s == 0.0 {
        // Inf/NaN propagate as in f64; a zero sum is exact (p = −c, or both zero with the
        // IEEE sign rules of the f64 add, which are fma's).
        return s as f32;
    }
    // Two-sum: err = (p + c) − s exactly (no overflow: |p| < 2^256).
    let pv = s - c;
    let cv = s - pv;
    let err = (p - pv) + (c - cv);
    let bits = s.to_bits();
    let s = if err != 0.0 && bits & 1 == 0 {
        // Round to odd: step towards the exact value (the sign of err says which side it is).
        if (err > 0.0) == (s > 0.0) {
            f64::from_bits(bits + 1)
        } else {
            f64::from_bits(bits - 1)
        }
    } else {
        s
    };
    s as f32
}

#[cfg(all(test, target_arch = "x86_64", feature = "std"))]
mod tests {
    use super::fma32;
    use core::arch::x86_64::*;

    fn hw(a: f32, b: f32, c: f32) -> f32 {
        // SAFETY: only called after the fma feature check below.
        unsafe { hw_fma(a, b, c) }
    }

    #[target_feature(enable = "fma")]
    fn hw_fma(a: f32, b: f32, c: f32) -> f32 {
        _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)))
    }

    fn same(a: f32, b: f32, c: f32) {
        let (g, w) = (fma32(a, b, c), hw(a, b, c));
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "fma32({a:e}, {b:e}, {c:e}) = {g:e} ({:#x}), vfmadd {w:e} ({:#x})",
            g.to_bits(),
            w.to_bits()
        );
    }

    /// Against the CPU's VFMADD231SS on edge cases and on random bit patterns chosen to hit
    /// cancellation, halfway cases, subnormal results and overflow.
    #[test]
    fn matches_the_hardware_instruction() {
        if !std::is_x86_feature_detected!("fma") {
            return;
        }
        let edge = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0 + f32::EPSILON,
            1.0 - f32::EPSILON / 2.0,
            0.5,
            3.0,
            1e-20,
            1e20,
        ];
        for &a in &edge {
            for &b in &edge {
                for &c in &edge {
                    same(a, b, c);
                }
            }
        }
        // xorshift over bit patterns, with c drawn near −a·b (cancellation) a third of the
        // time and near a halfway point of a·b's f32 rounding another third.
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..3_000_000u32 {
            let r = next();
            let a = f32::from_bits(r as u32);
            let b = f32::from_bits((r >> 32) as u32);
            let p = a as f64 * b as f64;
            let c = match i % 3 {
                0 => f32::from_bits(next() as u32),
                1 => (-p) as f32 * (1.0 + (next() % 7) as f32 * f32::EPSILON),
                _ => {
                    // half an f32 ulp of p, so a·b + c lands at or next to a tie
                    let ulp = f32::from_bits((p as f32).to_bits() & 0x7f80_0000) * f32::EPSILON;
                    ulp * 0.5 * if next() & 1 == 0 { 1.0 } else { -1.0 }
                }
            };
            same(a, b, c);
            // the same around 1 (normal magnitudes, where most arithmetic happens)
            let a = 1.0 + (r as u32 >> 9) as f32 * f32::EPSILON;
            let b = 1.0 - ((r >> 40) as u32 >> 9) as f32 * f32::EPSILON / 2.0;
            same(a, b, -1.0);
            same(a, -b, 1.0 + f32::EPSILON);
        }
    }
}
