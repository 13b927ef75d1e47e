//! Generic reductions over the middle axis of `x` viewed as `[outer][len][inner]`, for every
//! element type: ONNX `ReduceSum`, `ReduceMean`, `ReduceMax`, `ReduceMin`, `ReduceProd`,
//! `ReduceL1`, `ReduceL2`, `ReduceLogSum`, `ReduceLogSumExp`, `ReduceSumSquare`, and `ArgMax`,
//! `ArgMin`. `out` has `outer * inner` elements (`ArgMax`/`ArgMin`: `i64` indices).
//!
//! The float32 sum, mean and max have faster kernels in [`super::reduce`]; these are the plain
//! scalar forms, shared by generated code and the compiler's constant folding (so a folded
//! value and a computed one agree). The accumulators live in `out` and the innermost loop runs
//! over `inner` contiguous elements, which the compiler vectorises; `inner == 1` is a
//! sequential pass per row. Integers wrap (two's complement, like the elementwise ops); floats
//! accumulate in their own type, in order. An empty axis gives the operation's identity: 0
//! (sum, L1, L2, sum of squares), 1 (product), the lowest / highest value (max / min: `-inf` /
//! `inf` for floats, `false` / `true` for bool), `-inf` (log-sum, log-sum-exp), NaN (mean).
//! Max and min propagate NaN, as numpy's do; `ArgMax`/`ArgMin` point at the first NaN (the last
//! with `select_last_index`).

use super::math;

/// The element operations the reductions need. Integer arithmetic wraps; on bool, `add` is
/// "or" and `mul` is "and" (so max is "any" and min is "all").
pub trait Elem: Copy + PartialOrd {
    const ZERO: Self;
    const ONE: Self;
    /// The identity of max: the smallest value (`-inf` for floats).
    const LOWEST: Self;
    /// The identity of min: the largest value (`inf` for floats).
    const HIGHEST: Self;
    fn add(a: Self, b: Self) -> Self;
    fn mul(a: Self, b: Self) -> Self;
    fn abs(a: Self) -> Self;
    fn is_nan(self) -> bool {
        false
    }
}

/// Float element types: the reductions that need division, roots, logarithms.
pub trait Float: Elem {
    fn from_usize(n: usize) -> Self;
    fn sub(a: Self, b: Self) -> Self;
    fn div(a: Self, b: Self) -> Self;
    fn sqrt(self) -> Self;
    fn ln(self) -> Self;
    fn exp(self) -> Self;
}

macro_rules! elem_float {
    ($t:ty, $sqrt:path, $ln:path, $exp:path) => {
        impl Elem for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                a + b
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                a * b
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                if a < 0.0 { -a } else { a }
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                self != self
            }
        }
        impl Float for $t {
            #[inline(always)]
            fn from_usize(n: usize) -> Self {
                n as $t
            }
            #[inline(always)]
            fn sub(a: Self, b: Self) -> Self {
                a - b
            }
            #[inline(always)]
            fn div(a: Self, b: Self) -> Self {
                a / b
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                $sqrt(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                $ln(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
        }
    };
}
elem_float!(f32, math::sqrt, math::ln, math::exp);
elem_float!(f64, math::sqrt_f64, math::ln_f64, math::exp_f64);

macro_rules! elem_int {
    ($abs:ident: $($t:ty),*) => {$(
        impl Elem for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self {
                a.wrapping_add(b)
            }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self {
                a.wrapping_mul(b)
            }
            #[inline(always)]
            fn abs(a: Self) -> Self {
                elem_int!(@$abs a)
            }
        }
    )*};
    (@signed $a:ident) => { $a.wrapping_abs() };
    (@unsigned $a:ident) => { $a };
}
elem_int!(signed: i8, i16, i32, i64);
elem_int!(unsigned: u8, u16, u32, u64);

impl Elem for bool {
    const ZERO: Self = false;
    const ONE: Self = true;
    const LOWEST: Self = false;
    const HIGHEST: Self = true;
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        a | b
    }
    #[inline(always)]
    fn mul(a: Self, b: Self) -> Self {
        a & b
    }
    #[inline(always)]
    fn abs(a: Self) -> Self {
        a
    }
}

fn check<T, U>(x: &[T], out: &[U], outer: usize, len: usize, inner: usize) {
    assert_eq!(x.len(), outer * len * inner, "reduction: input length");
    assert_eq!(out.len(), outer * inner, "reduction: output length");
}

/// `out[o, i] = step(…step(step(init, x[o, 0, i]), x[o, 1, i])…, x[o, len-1, i])`.
#[inline(always)]
pub fn fold<T: Copy>(
    x: &[T],
    out: &mut [T],
    outer: usize,
    len: usize,
    inner: usize,
    init: T,
    step: impl Fn(T, T) -> T,
) {
    check(x, out, outer, len, inner);
    if inner == 0 {
        return;
    }
    for (o, dst) in out.chunks_exact_mut(inner).enumerate() {
        dst.fill(init);
        let block = &x[o * len * inner..(o + 1) * len * inner];
        for row in block.chunks_exact(inner) {
            for (d, &v) in dst.iter_mut().zip(row) {
                *d = step(*d, v);
            }
        }
    }
}

/// The larger of `a` and `v`, NaN sticking once seen (numpy's `max`).
#[inline(always)]
fn max_step<T: Elem>(a: T, v: T) -> T {
    if v > a || v.is_nan() { v } else { a }
}

#[inline(always)]
fn min_step<T: Elem>(a: T, v: T) -> T {
    if v < a || v.is_nan() { v } else { a }
}

/// ONNX `ReduceSum`.
pub fn sum<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::ZERO, T::add);
}

/// ONNX `ReduceProd`.
pub fn prod<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::ONE, T::mul);
}

/// ONNX `ReduceMax` (NaN propagates; empty: the lowest value).
pub fn max<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::LOWEST, max_step);
}

/// ONNX `ReduceMin` (NaN propagates; empty: the highest value).
pub fn min<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::HIGHEST, min_step);
}

/// ONNX `ReduceL1`: the sum of absolute values.
pub fn l1<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::ZERO, |a, v| {
        T::add(a, T::abs(v))
    });
}

/// ONNX `ReduceSumSquare`.
pub fn sum_square<T: Elem>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    fold(x, out, outer, len, inner, T::ZERO, |a, v| {
        T::add(a, T::mul(v, v))
    });
}

/// ONNX `ReduceMean` (an empty axis gives NaN, 0/0).
pub fn mean<T: Float>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    sum(x, out, outer, len, inner);
    let n = T::from_usize(len);
    for v in out.iter_mut() {
        *v = T::div(*v, n);
    }
}

/// ONNX `ReduceL2`: the square root of the sum of squares.
pub fn l2<T: Float>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    sum_square(x, out, outer, len, inner);
    for v in out.iter_mut() {
        *v = v.sqrt();
    }
}

/// ONNX `ReduceLogSum`: the natural logarithm of the sum.
pub fn log_sum<T: Float>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    sum(x, out, outer, len, inner);
    for v in out.iter_mut() {
        *v = v.ln();
    }
}

/// ONNX `ReduceLogSumExp`, as `m + ln(Σ e^(x - m))` with `m` the maximum, so large inputs do
/// not overflow. An infinite or NaN maximum is the result (`-inf` for an empty axis).
pub fn log_sum_exp<T: Float>(x: &[T], out: &mut [T], outer: usize, len: usize, inner: usize) {
    max(x, out, outer, len, inner);
    for (k, m) in out.iter_mut().enumerate() {
        let mv = *m;
        if mv.is_nan() || mv == T::LOWEST || mv == T::HIGHEST {
            continue;
        }
        let (o, i) = (k / inner, k % inner);
        let mut s = T::ZERO;
        for j in 0..len {
            s = T::add(s, T::sub(x[(o * len + j) * inner + i], mv).exp());
        }
        *m = T::add(mv, s.ln());
    }
}

/// Index of the maximum (`last`: the last of equal maxima); NaN counts as the maximum.
pub fn argmax<T: Elem>(
    x: &[T],
    out: &mut [i64],
    outer: usize,
    len: usize,
    inner: usize,
    last: bool,
) {
    arg(x, out, outer, len, inner, last, |v, b| v > b);
}

/// Index of the minimum (`last`: the last of equal minima); NaN counts as the minimum.
pub fn argmin<T: Elem>(
    x: &[T],
    out: &mut [i64],
    outer: usize,
    len: usize,
    inner: usize,
    last: bool,
) {
    arg(x, out, outer, len, inner, last, |v, b| v < b);
}

#[inline(always)]
fn arg<T: Elem>(
    x: &[T],
    out: &mut [i64],
    outer: usize,
    len: usize,
    inner: usize,
    last: bool,
    better: impl Fn(T, T) -> bool,
) {
    check(x, out, outer, len, inner);
    for (k, dst) in out.iter_mut().enumerate() {
        let (o, i) = (k / inner, k % inner);
        let at = |j: usize| x[(o * len + j) * inner + i];
        let mut best = 0;
        for j in 1..len {
            let (v, b) = (at(j), at(best));
            let take = if b.is_nan() {
                last && v.is_nan()
            } else {
                v.is_nan() || better(v, b) || (last && v == b)
            };
            if take {
                best = j;
            }
        }
        *dst = best as i64;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// A strided reference over `[outer][len][inner]` in f64, written independently of `fold`.
    fn reference(x: &[f32], o: usize, l: usize, i: usize, f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let mut r = Vec::new();
        for a in 0..o {
            for c in 0..i {
                let col: Vec<f64> = (0..l).map(|b| x[(a * l + b) * i + c] as f64).collect();
                r.push(f(&col));
            }
        }
        r
    }

    #[test]
    fn float_reductions_match_an_f64_reference() {
        let (o, l, i) = (3, 5, 4);
        let x: Vec<f32> = (0..o * l * i)
            .map(|k| ((k * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        type Kernel = fn(&[f32], &mut [f32], usize, usize, usize);
        type Reference = fn(&[f64]) -> f64;
        let cases: [(Kernel, Reference); 10] = [
            (sum, |c| c.iter().sum()),
            (prod, |c| c.iter().product()),
            (max, |c| c.iter().cloned().fold(f64::NEG_INFINITY, f64::max)),
            (min, |c| c.iter().cloned().fold(f64::INFINITY, f64::min)),
            (l1, |c| c.iter().map(|v| v.abs()).sum()),
            (sum_square, |c| c.iter().map(|v| v * v).sum()),
            (mean, |c| c.iter().sum::<f64>() / c.len() as f64),
            (l2, |c| c.iter().map(|v| v * v).sum::<f64>().sqrt()),
            (log_sum, |c| c.iter().sum::<f64>().ln()),
            (log_sum_exp, |c| c.iter().map(|v| v.exp()).sum::<f64>().ln()),
        ];
        for (k, (f, r)) in cases.iter().enumerate() {
            let mut out = vec![0.0f32; o * i];
            f(&x, &mut out, o, l, i);
            for (g, w) in out.iter().zip(reference(&x, o, l, i, r)) {
                let ok =
                    (*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()) || (w.is_nan() && g.is_nan());
                assert!(ok, "case {k}: {g} vs {w}");
            }
        }
    }

    #[test]
    fn empty_axis_gives_the_identity() {
        let x: [f32; 0] = [];
        let mut out = [7.0f32; 2];
        type Kernel = fn(&[f32], &mut [f32], usize, usize, usize);
        let cases: [(Kernel, f32); 8] = [
            (sum, 0.0),
            (prod, 1.0),
            (max, f32::NEG_INFINITY),
            (min, f32::INFINITY),
            (l1, 0.0),
            (l2, 0.0),
            (log_sum, f32::NEG_INFINITY),
            (log_sum_exp, f32::NEG_INFINITY),
        ];
        for (f, want) in cases {
            f(&x, &mut out, 2, 0, 1);
            assert_eq!(out, [want; 2]);
        }
        mean(&x, &mut out, 2, 0, 1);
        assert!(out[0].is_nan());
        let mut b = [true; 2];
        max::<bool>(&[], &mut b, 1, 0, 2);
        assert_eq!(b, [false; 2]);
    }

    #[test]
    fn integers_wrap_and_bools_are_any_all() {
        let x: [i8; 4] = [100, 100, -128, 3];
        let mut out = [0i8; 2];
        sum(&x, &mut out, 2, 2, 1);
        assert_eq!(out, [100i8.wrapping_add(100), -125]);
        l1(&x, &mut out, 2, 2, 1);
        assert_eq!(out, [-56, -125]); // |-128| wraps to -128
        let b = [true, false, false, false];
        let mut o = [false; 2];
        max(&b, &mut o, 2, 2, 1);
        assert_eq!(o, [true, false]);
        min(&b, &mut o, 1, 2, 2);
        assert_eq!(o, [false, false]);
    }

    #[test]
    fn nan_propagates_and_large_inputs_do_not_overflow() {
        let x = [1.0f32, f32::NAN, 3.0, 500.0, 500.0, 1.0];
        let mut out = [0.0f32; 2];
        max(&x, &mut out, 2, 3, 1);
        assert!(out[0].is_nan());
        assert_eq!(out[1], 500.0);
        min(&x, &mut out, 2, 3, 1);
        assert!(out[0].is_nan());
        log_sum_exp(&x[3..], &mut out[..1], 1, 3, 1);
        assert!((out[0] - (500.0 + 2f32.ln())).abs() < 1e-3, "{}", out[0]);
    }

    #[test]
    fn arg_first_or_last_and_nan() {
        let x = [1.0f32, 3.0, 3.0, 0.0, 0.0, 2.0];
        let mut out = [0i64; 2];
        argmax(&x, &mut out, 2, 3, 1, false);
        assert_eq!(out, [1, 2]);
        argmax(&x, &mut out, 2, 3, 1, true);
        assert_eq!(out, [2, 2]);
        argmin(&x, &mut out, 2, 3, 1, false);
        assert_eq!(out, [0, 0]);
        argmin(&x, &mut out, 2, 3, 1, true);
        assert_eq!(out, [0, 1]);
        // Columns: [1, 0], [3, 0], [3, 2] along axis 0 of a 2×3 view (inner = 3).
        let mut c = [0i64; 3];
        argmax(&x, &mut c, 1, 2, 3, false);
        assert_eq!(c, [0, 0, 0]);
        let y = [1.0f32, f32::NAN, 5.0, f32::NAN];
        let mut one = [0i64; 1];
        argmax(&y, &mut one, 1, 4, 1, false);
        assert_eq!(one, [1]);
        argmin(&y, &mut one, 1, 4, 1, true);
        assert_eq!(one, [3]);
    }
}
