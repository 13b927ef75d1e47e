//! Scalar `f32` math for `no_std`: `exp`, `ln`, `powf`, `sqrt`, `recip`, `tanh`, `sigmoid`,
//! `erf`, `relu`, `gelu_erf`, the activations `leaky_relu`, `hard_sigmoid`, `hard_swish`,
//! `elu`, `selu`, `softplus`, `softsign`, and `abs`, `neg`, `sign`, `floor`, `ceil`, `round_even`.
//!
//! `core` has no transcendental functions (they live in `std`, backed by the platform libm), so
//! they are implemented here from the math. Why this shape: every `f32` function evaluates in
//! `f64` (range reduction + Taylor series that are truncated far below `f64` precision) and
//! rounds once to `f32`. The `f64` result carries a relative error of a few 1e-16, so the final
//! rounding gives the correctly rounded `f32` except in rare near-halfway cases (≤ 1 ulp). This
//! is slower than a minimax `f32` polynomial but simple to verify; hot loops (softmax) use the
//! SIMD `f32` kernels in [`crate::ops::softmax`].
//!
//! `sqrt` is correctly rounded: `sqrtss` on x86_64, an exact integer square root elsewhere.

const LN2: f64 = core::f64::consts::LN_2;
/// ln 2 split so that `n * LN2_HI` is exact for |n| < 2^11 (the low 32 bits of LN2_HI are zero).
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000); // 6.93147180369123816490e-1
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76); // 1.90821492927058770002e-10
const LOG2E: f64 = core::f64::consts::LOG2_E;

/// Round half away from zero to an integer (`f64::round` is std-only). |x| must be < 2^62.
#[inline]
fn round_i64(x: f64) -> i64 {
    if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        (x - 0.5) as i64
    }
}

/// 2^n as f64 for n in [-1022, 1023].
#[inline]
fn pow2i(n: i64) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// Reciprocal factorials 1/0! … 1/13!, the Taylor coefficients of e^r.
const EXP_C: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362_880.0,
    1.0 / 3_628_800.0,
    1.0 / 39_916_800.0,
    1.0 / 479_001_600.0,
    1.0 / 6_227_020_800.0,
];

/// e^x in f64 with a relative error of a few 1e-16 for x in [-708, 709.7]; `inf` above, 0 below
/// (the `f64` subnormal range is not needed by the `f32` callers).
pub(crate) fn exp64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.78 {
        return f64::INFINITY;
    }
    if x < -708.0 {
        return 0.0;
    }
    let n = round_i64(x * LOG2E);
    let nf = n as f64;
    // |r| <= ln2/2 + tiny; Taylor to degree 13 truncates at 0.347^14/14! ~ 4e-18.
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    // Horner with exact reciprocal-factorial coefficients.
    const C: [f64; 14] = EXP_C;
    let mut q = C[13];
    for c in C[..13].iter().rev() {
        q = q * r + c;
    }
    if n > 1023 {
        // Only reachable for x in (709.08, 709.78]: scale in two steps.
        return q * pow2i(n - 1) * 2.0;
    }
    q * pow2i(n)
}

/// Natural logarithm of a positive, finite, normal f64 (relative error a few 1e-16).
pub(crate) fn ln64(x: f64) -> f64 {
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln m = 2 atanh(s), |s| <= 0.1716, s^2 <= 0.0295: 12 terms reach 1e-19.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut sum = 0.0;
    let mut k = 23.0;
    while k > 0.0 {
        sum = sum * s2 + 1.0 / k;
        k -= 2.0;
    }
    e as f64 * LN2 + 2.0 * s * sum
}

/// erf in f64 for finite x (relative error ~1e-15 where |erf| matters for `f32`).
pub(crate) fn erf64(x: f64) -> f64 {
    let ax = x.abs();
    let r = if ax < 2.5 {
        erf_series(ax)
    } else {
        1.0 - erfc_cf(ax)
    };
    if x.is_sign_negative() { -r } else { r }
}

/// erfc in f64 for finite x; accurate in the far tail too (relative ~1e-14 for x >= 2.5).
pub(crate) fn erfc64(x: f64) -> f64 {
    if x < 2.5 { 1.0 - erf64(x) } else { erfc_cf(x) }
}

/// erf(x) = 2/sqrt(pi) e^{-x^2} sum_n 2^n x^{2n+1} / (2n+1)!!, all terms positive (no
/// cancellation), for 0 <= x < 2.5.
fn erf_series(x: f64) -> f64 {
    const TWO_OVER_SQRT_PI: f64 = core::f64::consts::FRAC_2_SQRT_PI;
    let x2 = x * x;
    let mut term = x;
    let mut sum = x;
    let mut n = 0.0;
    while term > sum * 1e-17 {
        n += 1.0;
        term *= 2.0 * x2 / (2.0 * n + 1.0);
        sum += term;
    }
    TWO_OVER_SQRT_PI * exp64(-x2) * sum
}

/// erfc(x) for x >= 2.5 by the Laplace continued fraction
/// erfc x = e^{-x^2}/sqrt(pi) · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated bottom-up.
fn erfc_cf(x: f64) -> f64 {
    const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;
    if x > 27.0 {
        return 0.0;
    }
    let mut t = x;
    let mut k = 120.0;
    while k > 0.0 {
        t = x + (k * 0.5) / t;
        k -= 1.0;
    }
    exp64(-x * x) * FRAC_1_SQRT_PI / t
}

/// e^x (≤ 1 ulp; overflow to `inf`, gradual underflow to subnormals and 0).
pub fn exp(x: f32) -> f32 {
    exp64(x as f64) as f32
}

/// Natural logarithm: `ln(0) = -inf`, `ln(x<0) = NaN`, `ln(inf) = inf`; subnormals handled.
pub fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    // Every f32 (subnormals included) is a normal f64.
    ln64(x as f64) as f32
}

/// IEEE/C99 `pow` semantics (pow(x, ±0) = 1, pow(1, y) = 1, negative base needs an integer
/// exponent, signed zeros and infinities per C99 F.9.4.4).
pub fn powf(x: f32, y: f32) -> f32 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f32::NAN;
    }
    let ay = y.abs();
    let y_int = ay >= 16_777_216.0 || (ay as i64) as f32 == ay;
    let y_odd = y_int && ay < 16_777_216.0 && (ay as i64) & 1 == 1;
    if y.is_infinite() {
        let ax = x.abs();
        return if ax == 1.0 {
            1.0
        } else if (ax < 1.0) == (y < 0.0) {
            f32::INFINITY
        } else {
            0.0
        };
    }
    if x == 0.0 {
        let mag = if y < 0.0 { f32::INFINITY } else { 0.0 };
        return if y_odd && x.is_sign_negative() {
            -mag
        } else {
            mag
        };
    }
    if x.is_infinite() {
        let mag = if y < 0.0 { 0.0 } else { f32::INFINITY };
        return if y_odd && x < 0.0 { -mag } else { mag };
    }
    if x < 0.0 && !y_int {
        return f32::NAN;
    }
    // |y ln|x|| beyond ~104 over/underflows anyway; exp64 saturates well past that.
    let r = exp64(y as f64 * ln64(x.abs() as f64)) as f32;
    if x < 0.0 && y_odd { -r } else { r }
}

/// Correctly rounded square root (`sqrt(-0) = -0`, negative → NaN).
#[cfg(target_arch = "x86_64")]
pub fn sqrt(x: f32) -> f32 {
    use core::arch::x86_64::{_mm_cvtss_f32, _mm_set_ss, _mm_sqrt_ss};
    // SAFETY: SSE is part of the x86_64 baseline target, so the CPU always has it; the
    // intrinsics take and return values only (no memory access).
    unsafe { _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(x))) }
}

/// Correctly rounded square root (`sqrt(-0) = -0`, negative → NaN).
#[cfg(not(target_arch = "x86_64"))]
pub fn sqrt(x: f32) -> f32 {
    sqrt_soft(x)
}

/// Portable correctly rounded square root through an exact integer square root.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
pub(crate) fn sqrt_soft(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return if x == 0.0 { x } else { f32::NAN };
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 23) & 0xff) as i32;
    let (mut m, mut e) = if exp == 0 {
        (bits & 0x7f_ffff, -149)
    } else {
        ((bits & 0x7f_ffff) | 0x80_0000, exp - 150)
    };
    // Normalize m into [2^23, 2^24); value = m * 2^e.
    let shift = m.leading_zeros() as i32 - 8;
    m <<= shift;
    e -= shift;
    // M = m << s in [2^46, 2^48) with e - s even, so sqrt(value) = sqrt(M) * 2^((e-s)/2).
    let s = if (e - 23) % 2 == 0 { 23 } else { 24 };
    let big = (m as u64) << s;
    let mut q = big.isqrt();
    // Round to nearest: sqrt(M) > q + 1/2  <=>  M - q^2 > q (exact ties are impossible).
    if big - q * q > q {
        q += 1;
    }
    let mut h = (e - s) / 2;
    if q == 1 << 24 {
        q >>= 1;
        h += 1;
    }
    f32::from_bits((((h + 150) as u32) << 23) | (q as u32 & 0x7f_ffff))
}

/// 1 / x (correctly rounded: IEEE division).
#[inline]
pub fn recip(x: f32) -> f32 {
    1.0 / x
}

/// Hyperbolic tangent.
pub fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let xd = x as f64;
    let ax = xd.abs();
    let r = if ax < 0.0625 {
        // Taylor: x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925.
        let x2 = ax * ax;
        ax * (1.0
            + x2 * (-1.0 / 3.0
                + x2 * (2.0 / 15.0
                    + x2 * (-17.0 / 315.0 + x2 * (62.0 / 2835.0 + x2 * (-1382.0 / 155_925.0))))))
    } else if ax > 20.0 {
        1.0
    } else {
        1.0 - 2.0 / (exp64(2.0 * ax) + 1.0)
    };
    (if x.is_sign_negative() { -r } else { r }) as f32
}

/// e^t for t in [-104, 104] (NaN propagates), branch-free so that loops over it vectorise
/// (the callers' element loops run inside `elementwise`'s AVX2/AVX-512 wrappers): round-to-
/// nearest n through the 1.5·2^52 shifter, whose low mantissa bits then hold n for building
/// 2^n, and a degree-11 Taylor polynomial (truncation 0.347^12/12! ≈ 7e-15 relative).
#[inline]
fn exp64_small(t: f64) -> f64 {
    const SHIFTER: f64 = 6_755_399_441_055_744.0; // 1.5 · 2^52
    let k = t * LOG2E + SHIFTER;
    let n = k - SHIFTER;
    let r = (t - n * LN2_HI) - n * LN2_LO;
    // The first 12 of exp64's reciprocal factorials.
    let c = &EXP_C[..12];
    let mut p = c[11];
    for &k in c[..11].iter().rev() {
        p = p * r + k;
    }
    // |n| ≤ 151, so n + 1023 is a normal f64 exponent; the shift drops the shifter's bits.
    p * f64::from_bits(k.to_bits().wrapping_add(1023) << 52)
}

/// Logistic sigmoid 1 / (1 + e^-x), evaluated in f64 and rounded once (≤ 1 ulp). Beyond
/// |x| = 104 the f32 result no longer changes (1, or 0: e^-104 is below half the smallest
/// subnormal), so the argument is clamped there.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    let t = (-(x as f64)).clamp(-104.0, 104.0);
    (1.0 / (1.0 + exp64_small(t))) as f32
}

/// Error function.
pub fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x.abs() >= 4.0 {
        // erfc(4) = 1.5e-8 < half an ulp below 1.0 (2^-25).
        return if x < 0.0 { -1.0 } else { 1.0 };
    }
    erf64(x as f64) as f32
}

/// max(x, 0); NaN propagates.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x < 0.0 { 0.0 } else { x }
}

/// GELU (exact form) 0.5·x·(1 + erf(x/√2)); the negative tail uses erfc so it stays accurate.
pub fn gelu_erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let xd = x as f64;
    let z = xd * core::f64::consts::FRAC_1_SQRT_2;
    let r = if z < -2.5 {
        0.5 * xd * erfc64(-z)
    } else if z > 5.0 {
        xd
    } else {
        0.5 * xd * (1.0 + erf64(z))
    };
    r as f32
}

/// ONNX `LeakyRelu`: `x` for `x >= 0`, else `alpha · x`.
#[inline]
pub fn leaky_relu(x: f32, alpha: f32) -> f32 {
    if x >= 0.0 { x } else { alpha * x }
}

/// ONNX `HardSigmoid`: `max(0, min(1, alpha · x + beta))` (NaN → 0).
#[inline]
pub fn hard_sigmoid(x: f32, alpha: f32, beta: f32) -> f32 {
    let y = alpha * x + beta;
    let y = if y > 0.0 { y } else { 0.0 };
    if y < 1.0 { y } else { 1.0 }
}

/// ONNX `HardSwish`: `x · HardSigmoid(x)` with `alpha = 1/6`, `beta = 0.5`.
#[inline]
pub fn hard_swish(x: f32) -> f32 {
    x * hard_sigmoid(x, 1.0 / 6.0, 0.5)
}

/// `e^x - 1` in f64, accurate near 0 (|relative error| ~1e-16).
fn expm1_64(x: f64) -> f64 {
    if x.abs() < 1e-5 {
        x * (1.0 + x * (0.5 + x / 6.0))
    } else {
        exp64(x) - 1.0
    }
}

/// `ln(1 + t)` in f64 for `t >= 0` (small `t` by its series).
fn ln1p_64(t: f64) -> f64 {
    if t < 1e-4 {
        t * (1.0 - t * (0.5 - t / 3.0))
    } else {
        ln64(1.0 + t)
    }
}

/// ONNX `Elu`: `x` for `x >= 0`, else `alpha · (e^x - 1)`.
pub fn elu(x: f32, alpha: f32) -> f32 {
    if x >= 0.0 || x.is_nan() {
        x
    } else {
        (alpha as f64 * expm1_64(x as f64)) as f32
    }
}

/// ONNX `Selu`: `gamma · x` for `x > 0`, else `gamma · alpha · (e^x - 1)`.
pub fn selu(x: f32, alpha: f32, gamma: f32) -> f32 {
    if x > 0.0 || x.is_nan() {
        ((gamma as f64) * (x as f64)) as f32
    } else {
        (gamma as f64 * alpha as f64 * expm1_64(x as f64)) as f32
    }
}

/// ONNX `Softplus`: `ln(1 + e^x)`, as `max(x, 0) + ln(1 + e^-|x|)` (no overflow).
pub fn softplus(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    let xd = x as f64;
    (xd.max(0.0) + ln1p_64(exp64(-xd.abs()))) as f32
}

/// |x| (clears the sign bit; NaN stays NaN).
#[inline]
pub fn abs(x: f32) -> f32 {
    f32::from_bits(x.to_bits() & 0x7fff_ffff)
}

/// -x (flips the sign bit).
#[inline]
pub fn neg(x: f32) -> f32 {
    -x
}

/// ONNX `Sign`: 1 for x > 0, -1 for x < 0, x itself for ±0 and NaN.
#[inline]
pub fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x
    }
}

/// 2^23: every f32 of at least this magnitude is an integer.
const F32_INT: f32 = 8_388_608.0;

/// Rounds toward zero (`f32::trunc` is std-only): exact through an integer conversion, since
/// |x| < 2^23 fits an i32; larger values, infinities and NaN are returned as they are.
#[inline]
fn trunc(x: f32) -> f32 {
    if abs(x) < F32_INT {
        let t = x as i32 as f32;
        // Keep the sign of zero: trunc(-0.5) = -0.
        f32::from_bits(t.to_bits() | (x.to_bits() & 0x8000_0000))
    } else {
        x
    }
}

/// Largest integer ≤ x (-0 stays -0; NaN and infinities propagate).
#[inline]
pub fn floor(x: f32) -> f32 {
    let t = trunc(x);
    if t > x { t - 1.0 } else { t }
}

/// Smallest integer ≥ x (ceil(-0.5) = -0; NaN and infinities propagate).
#[inline]
pub fn ceil(x: f32) -> f32 {
    let t = trunc(x);
    if t < x { t + 1.0 } else { t }
}

/// Rounds to the nearest integer, halves to even (ONNX `Round`, numpy's `round`): adding and
/// subtracting 2^23 rounds |x| < 2^23 to an integer in IEEE round-to-nearest-even, the
/// default (and only, in Rust) rounding mode, so every target gives the same bits.
#[inline]
pub fn round_even(x: f32) -> f32 {
    let a = abs(x);
    if a < F32_INT {
        let r = (a + F32_INT) - F32_INT;
        f32::from_bits(r.to_bits() | (x.to_bits() & 0x8000_0000))
    } else {
        x
    }
}

/// ONNX `Softsign`: x / (1 + |x|) (correctly rounded through f64; ±inf → ±1).
#[inline]
pub fn softsign(x: f32) -> f32 {
    if x.is_infinite() {
        return sign(x);
    }
    let xd = x as f64;
    (xd / (1.0 + abs(x) as f64)) as f32
}

/// e^x in f64 (a few 1e-16 relative; `inf` above 709.78, 0 below -708: the f64 subnormal
/// range is flushed).
pub fn exp_f64(x: f64) -> f64 {
    exp64(x)
}

/// Natural logarithm in f64: `ln(0) = -inf`, `ln(x<0) = NaN`, `ln(inf) = inf`; subnormals are
/// scaled into the normal range first.
pub fn ln_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    if x < f64::MIN_POSITIVE {
        return ln64(x * pow2i(54)) - 54.0 * LN2;
    }
    ln64(x)
}

/// Square root in f64 (within 1 ulp; `sqrt(-0) = -0`, negative → NaN): the exponent halved
/// exactly, the mantissa's root from the f32 one refined by two Newton steps (24 → 48 → full
/// precision), so every target gives the same bits.
pub fn sqrt_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x == f64::INFINITY {
        return x;
    }
    let (x, adj) = if x < f64::MIN_POSITIVE {
        (x * pow2i(54), -27)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if e & 1 != 0 {
        m *= 2.0;
        e -= 1;
    }
    // m in [1, 4): its root in [1, 2).
    let mut y = sqrt(m as f32) as f64;
    y = 0.5 * (y + m / y);
    y = 0.5 * (y + m / y);
    y * pow2i(e / 2 + adj)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn ulp_diff(a: f32, b: f32) -> u32 {
        if a.is_nan() && b.is_nan() {
            return 0;
        }
        if a == b {
            return 0;
        }
        let ia = a.to_bits() as i32;
        let ib = b.to_bits() as i32;
        // map to a monotonic integer line
        let fa = if ia < 0 { i32::MIN - ia } else { ia } as i64;
        let fb = if ib < 0 { i32::MIN - ib } else { ib } as i64;
        (fa - fb).unsigned_abs().min(u32::MAX as u64) as u32
    }

    /// Deterministic sample of f32 values: a bit-pattern sweep plus specials.
    fn samples() -> Vec<f32> {
        let mut v = Vec::new();
        let mut bits: u32 = 1;
        while bits < 0xff00_0000 {
            v.push(f32::from_bits(bits));
            bits = bits.wrapping_add(0x0000_3b17).wrapping_add(bits >> 9);
        }
        v.extend([
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::MAX,
            f32::MIN,
            1.0,
            -1.0,
        ]);
        v
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0;
        for x in samples() {
            let want = (x as f64).exp() as f32;
            let d = ulp_diff(exp(x), want);
            assert!(d <= 1, "exp({x:e}) = {:e}, want {want:e}", exp(x));
            worst = worst.max(d);
        }
        for i in -2000..=2000 {
            let x = i as f32 * 0.0521;
            assert!(ulp_diff(exp(x), (x as f64).exp() as f32) <= 1, "{x}");
        }
        assert_eq!(exp(88.8), f32::INFINITY);
        assert_eq!(exp(-104.0), 0.0);
        assert!(exp(-100.0) > 0.0 && exp(-100.0) < f32::MIN_POSITIVE);
    }

    #[test]
    fn sqrt_correctly_rounded() {
        for x in samples() {
            let want = x.sqrt();
            assert!(ulp_diff(sqrt(x), want) == 0, "sqrt({x:e})");
            assert!(
                ulp_diff(sqrt_soft(x), want) == 0,
                "sqrt_soft({x:e}) {} {}",
                sqrt_soft(x),
                want
            );
        }
        assert!(sqrt_soft(-0.0).is_sign_negative() && sqrt(-0.0).is_sign_negative());
        assert!(sqrt(-1.0).is_nan() && sqrt_soft(-1.0).is_nan());
        for i in 1..20000u32 {
            let x = i as f32 * 0.37;
            assert_eq!(sqrt_soft(x), x.sqrt());
        }
    }

    #[test]
    fn ln_and_pow_match_std() {
        for x in samples() {
            let want = (x as f64).ln() as f32;
            assert!(
                ulp_diff(ln(x), want) <= 1,
                "ln({x:e}) = {} want {want}",
                ln(x)
            );
        }
        let ys = [
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.0,
            2.0,
            3.0,
            -3.0,
            2.5,
            -2.5,
            7.0,
            1e-3,
            100.0,
            -100.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e10,
            -1e10,
            16_777_217.0,
        ];
        let xs = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.0,
            -2.0,
            0.5,
            -0.5,
            3.7,
            -3.7,
            1e-20,
            1e20,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1.0001,
            0.9999,
            f32::from_bits(5),
            123.456,
        ];
        for &x in &xs {
            for &y in &ys {
                let want = x.powf(y);
                let got = powf(x, y);
                assert!(
                    ulp_diff(got, want) <= 1,
                    "pow({x}, {y}) = {got}, want {want}"
                );
                if want == 0.0 || want.is_infinite() {
                    assert_eq!(
                        got.is_sign_negative(),
                        want.is_sign_negative(),
                        "pow({x},{y})"
                    );
                }
            }
        }
        for i in 1..500 {
            let x = i as f32 * 0.173;
            for &y in &[0.3f32, -1.7, 4.2, 11.0, -0.01] {
                let want = ((x as f64).powf(y as f64)) as f32;
                assert!(ulp_diff(powf(x, y), want) <= 1, "pow({x},{y})");
            }
        }
    }

    #[test]
    fn tanh_sigmoid_match_std() {
        for x in samples() {
            let t = (x as f64).tanh() as f32;
            let s = (1.0 / (1.0 + (-(x as f64)).exp())) as f32;
            assert!(
                ulp_diff(tanh(x), t) <= 1,
                "tanh({x:e}) = {} want {t}",
                tanh(x)
            );
            assert!(ulp_diff(sigmoid(x), s) <= 1, "sigmoid({x:e})");
        }
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert!(sigmoid(f32::NAN).is_nan());
        assert_eq!(sigmoid(f32::INFINITY), 1.0);
        assert_eq!(sigmoid(f32::NEG_INFINITY), 0.0);
        assert_eq!(sigmoid(-200.0), 0.0);
        // Subnormal results near the clamp are still correctly rounded.
        let s = (1.0 / (1.0 + 100f64.exp())) as f32;
        assert!(ulp_diff(sigmoid(-100.0), s) <= 1, "sigmoid(-100)");
    }

    /// Independent erf: composite Simpson on 2/sqrt(pi) e^{-t^2} in f64.
    fn erf_ref(x: f64) -> f64 {
        let n = 20_000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            s += f(i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        s * h / 3.0 * core::f64::consts::FRAC_2_SQRT_PI
    }

    #[test]
    fn erf_and_gelu() {
        for i in -300..=300 {
            let x = i as f32 * 0.0173;
            let want = erf_ref(x as f64);
            assert!(
                (erf(x) as f64 - want).abs() <= 1e-7 + want.abs() * 1.2e-7,
                "erf({x})"
            );
            let xd = x as f64;
            let g = 0.5 * xd * (1.0 + erf_ref(xd * core::f64::consts::FRAC_1_SQRT_2));
            assert!(
                (gelu_erf(x) as f64 - g).abs() <= 1e-7 + g.abs() * 1.2e-7,
                "gelu({x}) {} {g}",
                gelu_erf(x)
            );
        }
        // Tail: erfc from 1 - erf_ref in f64 is exact enough to 1e-10 absolute.
        for i in 0..=60 {
            let x = 2.5 + i as f64 * 0.05;
            let want = 1.0 - erf_ref(x);
            assert!((erfc64(x) - want).abs() < 1e-12, "erfc({x})");
        }
        assert_eq!(erf(f32::INFINITY), 1.0);
        assert_eq!(erf(f32::NEG_INFINITY), -1.0);
        assert!(erf(f32::NAN).is_nan() && gelu_erf(f32::NAN).is_nan());
        assert_eq!(gelu_erf(-30.0), -0.0);
        assert_eq!(gelu_erf(30.0), 30.0);
        assert_eq!(
            erf(1e-30),
            (1e-30f64 * core::f64::consts::FRAC_2_SQRT_PI) as f32
        );
        assert_eq!(relu(-2.0), 0.0);
        assert_eq!(recip(4.0), 0.25);
    }

    #[test]
    fn activations_match_std() {
        for x in samples() {
            let xd = x as f64;
            let want_elu = if x >= 0.0 || x.is_nan() {
                x
            } else {
                xd.exp_m1() as f32
            };
            assert!(ulp_diff(elu(x, 1.0), want_elu) <= 1, "elu({x:e})");
            let (a, g) = (1.673_263_2_f32, 1.050_701_f32);
            let want_selu = if x > 0.0 || x.is_nan() {
                (g as f64 * xd) as f32
            } else {
                (g as f64 * a as f64 * xd.exp_m1()) as f32
            };
            assert!(ulp_diff(selu(x, a, g), want_selu) <= 1, "selu({x:e})");
            let want_sp = if x.is_nan() || x.is_infinite() && x > 0.0 {
                x
            } else {
                (xd.max(0.0) + (-xd.abs()).exp().ln_1p()) as f32
            };
            assert!(
                ulp_diff(softplus(x), want_sp) <= 1,
                "softplus({x:e}) = {}",
                softplus(x)
            );
        }
        assert_eq!(leaky_relu(-2.0, 0.1), -0.2);
        assert_eq!(leaky_relu(3.0, 0.1), 3.0);
        assert_eq!(hard_sigmoid(1.0, 0.2, 0.5), 0.7);
        assert_eq!(hard_sigmoid(10.0, 0.2, 0.5), 1.0);
        assert_eq!(hard_sigmoid(-10.0, 0.2, 0.5), 0.0);
        assert_eq!(hard_swish(3.0), 3.0);
        assert_eq!(hard_swish(-3.0), 0.0);
        assert_eq!(hard_swish(0.0), 0.0);
        assert!((hard_swish(1.0) - 2.0 / 3.0).abs() < 1e-7);
    }

    /// Rounding, sign and absolute value against std's (libm-independent, exact) versions, bit
    /// for bit, over edge cases and a sweep of f32 bit patterns (every 4099th: all exponents,
    /// signs, subnormals, halves).
    #[test]
    fn rounding_matches_std_bit_for_bit() {
        let mut xs: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i * 4099))
            .collect();
        xs.extend([
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            0.49999997,
            -0.49999997,
            8_388_607.5,
            -8_388_607.5,
            8_388_608.0,
            16_777_215.0,
            1e30,
            -1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-45,
        ]);
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        for &x in &xs {
            assert!(same(floor(x), x.floor()), "floor({x:e})");
            assert!(same(ceil(x), x.ceil()), "ceil({x:e})");
            assert!(
                same(round_even(x), x.round_ties_even()),
                "round_even({x:e})"
            );
            assert!(same(abs(x), x.abs()), "abs({x:e})");
            assert!(same(neg(x), -x), "neg({x:e})");
            let s = if x.is_nan() || x == 0.0 {
                x
            } else {
                x.signum()
            };
            assert!(same(sign(x), s), "sign({x:e})");
        }
    }

    /// Softsign against an f64 reference (≤ 1 ulp), and its limits.
    #[test]
    fn f64_functions_match_std() {
        let mut xs = std::vec![
            1e-310, 5e-324, 1e-300, 0.1, 0.5, 1.0, 2.0, 3.0, 10.0, 1e10, 1e300
        ];
        for k in 0..2000 {
            xs.push(1.0 + k as f64 * 0.37);
            xs.push(f64::from_bits(
                0x0010_0000_0000_0000 + k * 0x0008_3a7f_1234_5677,
            ));
        }
        for &x in &xs {
            let (s, l) = (sqrt_f64(x), ln_f64(x));
            assert!(
                (s - x.sqrt()).abs() <= 2.3e-16 * x.sqrt(),
                "sqrt({x}) = {s}"
            );
            assert!(
                (l - x.ln()).abs() <= 4e-16 * x.ln().abs().max(1.0),
                "ln({x}) = {l}"
            );
        }
        for k in -700..700 {
            let x = k as f64 + 0.31;
            assert!((exp_f64(x) - x.exp()).abs() <= 1e-15 * x.exp(), "exp({x})");
        }
        assert!(sqrt_f64(-1.0).is_nan() && ln_f64(-1.0).is_nan());
        assert_eq!(ln_f64(0.0), f64::NEG_INFINITY);
        assert_eq!(sqrt_f64(f64::INFINITY), f64::INFINITY);
    }

    #[test]
    fn softsign_reference() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.0137;
            let r = (x as f64 / (1.0 + (x as f64).abs())) as f32;
            assert!(ulp_diff(softsign(x), r) <= 1, "softsign({x})");
        }
        assert_eq!(softsign(f32::INFINITY), 1.0);
        assert_eq!(softsign(f32::NEG_INFINITY), -1.0);
        assert!(softsign(f32::NAN).is_nan());
    }
}
