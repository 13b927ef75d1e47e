//! The ONNX activations of opsets 9–28 that are not plain [`super::math`] functions: `Gelu`'s
//! tanh form, `Swish`, `Mish`, `Celu`, `ThresholdedRelu`, `Shrink`, `PRelu`, `SwiGLU`.
//! (`Gelu`'s erf form on f32 is the vectorised [`super::gelu`] kernel.)
//!
//! Every function is scalar `no_std` code evaluated in f64 ([`super::math`]'s `exp64`) and,
//! for f32, rounded once, so every ISA gives the same bits; the `_f64` variants are the same
//! evaluation without the final rounding. Generated code and constant folding call the same
//! functions.

use super::math::{erf64, erfc64, exp64};

/// e^x − 1 without cancellation near 0 (Taylor below |x| = 0.25, where 13 terms reach 1e-18).
fn expm1(x: f64) -> f64 {
    if x.abs() < 0.25 {
        let mut term = x;
        let mut sum = x;
        for k in 2..=14 {
            term *= x / k as f64;
            sum += term;
        }
        sum
    } else {
        exp64(x) - 1.0
    }
}

/// tanh in f64 (relative error a few 1e-16): Taylor near 0, `1 − 2/(e^{2x} + 1)` elsewhere.
fn tanh64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    let ax = x.abs();
    let r = if ax < 0.25 {
        // expm1(2x) / (expm1(2x) + 2): no cancellation.
        let e = expm1(2.0 * ax);
        e / (e + 2.0)
    } else if ax > 20.0 {
        1.0
    } else {
        1.0 - 2.0 / (exp64(2.0 * ax) + 1.0)
    };
    if x.is_sign_negative() { -r } else { r }
}

/// 1 / (1 + e^-x) in f64.
fn sigmoid64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    1.0 / (1.0 + exp64((-x).clamp(-745.0, 745.0)))
}

/// ONNX `Gelu` with `approximate="tanh"`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`.
pub fn gelu_tanh_f64(x: f64) -> f64 {
    const K: f64 = 0.797_884_560_802_865_4; // √(2/π)
    if x.is_infinite() {
        return if x > 0.0 { x } else { 0.0 };
    }
    0.5 * x * (1.0 + tanh64(K * (x + 0.044715 * x * x * x)))
}

/// f32 [`gelu_tanh_f64`].
pub fn gelu_tanh(x: f32) -> f32 {
    gelu_tanh_f64(x as f64) as f32
}

/// ONNX `Gelu` (erf form) in f64: `x·Φ(x)`, the negative tail through erfc.
pub fn gelu_erf_f64(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.is_infinite() {
        return if x > 0.0 { x } else { 0.0 };
    }
    let z = x * core::f64::consts::FRAC_1_SQRT_2;
    if z < -2.5 {
        0.5 * x * erfc64(-z)
    } else if z > 27.0 {
        x
    } else {
        0.5 * x * (1.0 + erf64(z))
    }
}

/// ONNX `Swish`: `x·sigmoid(alpha·x)`.
pub fn swish_f64(x: f64, alpha: f64) -> f64 {
    if x.is_infinite() {
        // x·sigmoid(±inf·alpha): inf·1, or −inf·0 → 0 (the limit).
        let s = sigmoid64(alpha * x);
        return if s == 0.0 { 0.0 } else { x * s };
    }
    x * sigmoid64(alpha * x)
}

/// f32 [`swish_f64`].
pub fn swish(x: f32, alpha: f32) -> f32 {
    swish_f64(x as f64, alpha as f64) as f32
}

/// ONNX `Mish`: `x·tanh(softplus(x))`. With `e = e^x`, `tanh(ln(1 + e)) = e(e + 2)/(e(e + 2) + 2)`,
/// which has no cancellation anywhere; above x = 40 the factor is 1 in f64.
pub fn mish_f64(x: f64) -> f64 {
    if x.is_nan() || x > 40.0 {
        return x;
    }
    if x == f64::NEG_INFINITY {
        return -0.0;
    }
    let e = exp64(x);
    let p = e * (e + 2.0);
    x * (p / (p + 2.0))
}

/// f32 [`mish_f64`].
pub fn mish(x: f32) -> f32 {
    mish_f64(x as f64) as f32
}

/// ONNX `Celu`: `max(0, x) + min(0, alpha·(e^{x/alpha} − 1))`.
pub fn celu_f64(x: f64, alpha: f64) -> f64 {
    if x >= 0.0 || x.is_nan() {
        x
    } else {
        alpha * expm1(x / alpha)
    }
}

/// f32 [`celu_f64`].
pub fn celu(x: f32, alpha: f32) -> f32 {
    celu_f64(x as f64, alpha as f64) as f32
}

/// ONNX `ThresholdedRelu`: `x` for `x > alpha`, else 0 (NaN propagates).
pub fn thresholded_relu<T: PartialOrd + Default + Copy>(x: T, alpha: T) -> T {
    // NaN: unordered with itself.
    if x > alpha || x.partial_cmp(&x).is_none() {
        x
    } else {
        T::default()
    }
}

/// ONNX `Shrink`: `x + bias` below `−lambd`, `x − bias` above `lambd`, else 0.
pub fn shrink_f64(x: f64, lambd: f64, bias: f64) -> f64 {
    if x < -lambd {
        x + bias
    } else if x > lambd {
        x - bias
    } else if x.is_nan() {
        x
    } else {
        0.0
    }
}

/// f32 [`shrink_f64`] (one rounding of `x ± bias`).
pub fn shrink(x: f32, lambd: f32, bias: f32) -> f32 {
    shrink_f64(x as f64, lambd as f64, bias as f64) as f32
}

/// ONNX `PRelu`: `slope·x` for `x < 0`, else `x`.
pub fn prelu<T: PartialOrd + Default + Copy + core::ops::Mul<Output = T>>(x: T, slope: T) -> T {
    if x < T::default() { slope * x } else { x }
}

/// ONNX `SwiGLU`: `Swish_alpha(a)·b`, rounded once.
pub fn swiglu_f64(a: f64, b: f64, alpha: f64) -> f64 {
    swish_f64(a, alpha) * b
}

/// f32 [`swiglu_f64`].
pub fn swiglu(a: f32, b: f32, alpha: f32) -> f32 {
    swiglu_f64(a as f64, b as f64, alpha as f64) as f32
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// Each activation against its formula written with std's (platform libm) f64 functions.
    #[test]
    fn matches_std_formulas() {
        let xs: std::vec::Vec<f64> = (-400..=400).map(|i| i as f64 * 0.0731).collect();
        let close = |got: f64, want: f64, what: &str, x: f64| {
            assert!(
                (got - want).abs() <= 1e-14 * (1e-30 + want.abs()) + 1e-300,
                "{what}({x}): {got} vs {want}"
            );
        };
        for &x in &xs {
            let k = (2.0 / std::f64::consts::PI).sqrt();
            let want = 0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh());
            assert!((gelu_tanh_f64(x) - want).abs() <= 1e-14 * (1.0 + want.abs()));
            let want = 0.5 * x * libm::erfc(-x / 2f64.sqrt());
            // math's erfc64 is 1 − erf64 below 2.5: ~1e-12 relative where GELU's value is small.
            let got = gelu_erf_f64(x);
            assert!(
                (got - want).abs() <= 1e-11 * (1e-20 + want.abs()),
                "gelu({x}): {got} vs {want}"
            );
            close(swish_f64(x, 0.7), x / (1.0 + (-0.7 * x).exp()), "swish", x);
            let sp = if x > 30.0 { x } else { x.exp().ln_1p() };
            close(mish_f64(x), x * sp.tanh(), "mish", x);
            let want = x.max(0.0) + (2.0 * (x / 2.0).exp_m1()).min(0.0);
            close(celu_f64(x, 2.0), want, "celu", x);
            close(
                swiglu_f64(x, 1.5, 1.0),
                1.5 * x / (1.0 + (-x).exp()),
                "swiglu",
                x,
            );
        }
        assert_eq!(shrink(-2.0, 1.5, 0.5), -1.5);
        assert_eq!(shrink(2.0, 1.5, 0.5), 1.5);
        assert_eq!(shrink(1.0, 1.5, 0.5), 0.0);
        assert_eq!(thresholded_relu(2.5f32, 2.0), 2.5);
        assert_eq!(thresholded_relu(1.5f32, 2.0), 0.0);
        assert!(thresholded_relu(f32::NAN, 2.0).is_nan());
        assert_eq!(prelu(-2.0f32, 0.25), -0.5);
        assert_eq!(prelu(3i32, 2), 3);
        assert_eq!(mish(f32::INFINITY), f32::INFINITY);
        assert_eq!(swish(f32::NEG_INFINITY, 1.0), 0.0);
        assert_eq!(gelu_tanh(f32::NEG_INFINITY), 0.0);
    }
}
