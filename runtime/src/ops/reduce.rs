//! Reductions over the middle axis of `x` viewed as `[outer][axis_len][inner]`: ONNX
//! `ReduceSum`, `ReduceMean`, `ReduceMax` (one contiguous group of reduced axes; codegen
//! coalesces adjacent reduced axes into one). `out` has `outer * inner` elements.
//!
//! Sums accumulate in `f32`; a contiguous row (`inner == 1`) uses 8 interleaved partial sums,
//! which vectorizes and keeps the error growth ~len/8. An empty axis gives 0 (sum), NaN (mean)
//! and `-inf` (max). `reduce_max` propagates NaN.

fn check(x: &[f32], out: &[f32], outer: usize, axis_len: usize, inner: usize) {
    assert_eq!(x.len(), outer * axis_len * inner, "reduce: input length");
    assert_eq!(out.len(), outer * inner, "reduce: output length");
}

/// Sum of a contiguous row with 8 partial sums.
pub(crate) fn sum_row(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut s = 0.0;
    for &v in chunks.remainder() {
        s += v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// `out[o][i] = Σ_a x[o][a][i]`.
pub fn reduce_sum(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    check(x, out, outer, axis_len, inner);
    if inner == 1 {
        if axis_len == 0 {
            out.fill(0.0);
            return;
        }
        for (o, row) in out.iter_mut().zip(x.chunks_exact(axis_len)) {
            *o = sum_row(row);
        }
        return;
    }
    out.fill(0.0);
    if axis_len == 0 {
        return;
    }
    for (og, xg) in out
        .chunks_exact_mut(inner)
        .zip(x.chunks_exact(axis_len * inner))
    {
        for row in xg.chunks_exact(inner) {
            for (o, &v) in og.iter_mut().zip(row) {
                *o += v;
            }
        }
    }
}

/// `out[o][i] = (Σ_a x[o][a][i]) / axis_len`.
pub fn reduce_mean(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    reduce_sum(x, out, outer, axis_len, inner);
    let d = axis_len as f32;
    for o in out.iter_mut() {
        *o /= d;
    }
}

/// `out[o][i] = max_a x[o][a][i]` (NaN if any element is NaN).
pub fn reduce_max(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    check(x, out, outer, axis_len, inner);
    out.fill(f32::NEG_INFINITY);
    if axis_len == 0 {
        return;
    }
    for (og, xg) in out
        .chunks_exact_mut(inner)
        .zip(x.chunks_exact(axis_len * inner))
    {
        for row in xg.chunks_exact(inner) {
            for (o, &v) in og.iter_mut().zip(row) {
                // A NaN v replaces o; once o is NaN it stays NaN.
                if (v > *o || v.is_nan()) && !o.is_nan() {
                    *o = v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn reductions_match_f64() {
        for &(outer, axis, inner) in &[
            (1, 1, 1),
            (2, 3, 1),
            (3, 17, 1),
            (2, 100, 1),
            (2, 5, 7),
            (1, 33, 16),
            (2, 0, 3),
            (0, 4, 2),
        ] {
            let x: Vec<f32> = (0..outer * axis * inner)
                .map(|i| ((i * 29 % 53) as f32 - 26.0) * 0.1)
                .collect();
            let mut s = vec![0.0; outer * inner];
            let mut m = vec![0.0; outer * inner];
            let mut mx = vec![0.0; outer * inner];
            reduce_sum(&x, &mut s, outer, axis, inner);
            reduce_mean(&x, &mut m, outer, axis, inner);
            reduce_max(&x, &mut mx, outer, axis, inner);
            for o in 0..outer {
                for i in 0..inner {
                    let vals: Vec<f64> = (0..axis)
                        .map(|a| x[(o * axis + a) * inner + i] as f64)
                        .collect();
                    let sum: f64 = vals.iter().sum();
                    let abs: f64 = vals.iter().map(|v| v.abs()).sum();
                    // f32 summation: |err| <= axis·eps·Σ|x| (Higham).
                    let tol = axis as f64 * f32::EPSILON as f64 * abs + 1e-30;
                    let j = o * inner + i;
                    assert!((s[j] as f64 - sum).abs() <= tol);
                    if axis == 0 {
                        assert!(m[j].is_nan());
                    } else {
                        assert!(
                            (m[j] as f64 - sum / axis as f64).abs()
                                <= tol / axis as f64 + 1e-7 * (sum / axis as f64).abs()
                        );
                    }
                    let want = vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    assert_eq!(mx[j] as f64, want);
                }
            }
        }
        let mut o = [0.0f32; 1];
        reduce_max(&[1.0, f32::NAN, 3.0], &mut o, 1, 3, 1);
        assert!(o[0].is_nan());
        reduce_max(&[f32::NAN, 1.0], &mut o, 1, 2, 1);
        assert!(o[0].is_nan());
    }
}
