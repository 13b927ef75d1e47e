//! ONNX `LayerNormalization` over the last `axis_len` elements of each of `outer` rows:
//! `y = (x − mean) / sqrt(var + epsilon) · gamma + beta` with `var = mean((x − mean)²)`.
//!
//! Two passes over each row in `f32` (mean, then the mean of squared deviations — the
//! numerically stable form, no `E[x²] − E[x]²` cancellation); partial sums are interleaved
//! 8 ways (see [`super::reduce`]) so the loops vectorize.

use super::math;
use super::reduce::sum_row;

/// Normalizes each row of `x` (`outer` rows of `axis_len`) into `out`. `gamma` and `beta`
/// (optional, ONNX `B`) have `axis_len` elements. Panics if a length does not match.
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    outer: usize,
    axis_len: usize,
    epsilon: f32,
    out: &mut [f32],
) {
    assert_eq!(x.len(), outer * axis_len, "layer_norm: input length");
    assert_eq!(out.len(), x.len(), "layer_norm: output length");
    assert_eq!(gamma.len(), axis_len, "layer_norm: gamma length");
    if let Some(b) = beta {
        assert_eq!(b.len(), axis_len, "layer_norm: beta length");
    }
    if axis_len == 0 {
        return;
    }
    crate::par::rows(x, axis_len, out, axis_len, |xs, os| {
        rows(xs, gamma, beta, axis_len, epsilon, os)
    });
}

/// [`layer_norm`] on whole rows (one piece of the parallel split).
fn rows(
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    axis_len: usize,
    epsilon: f32,
    out: &mut [f32],
) {
    let inv_n = 1.0 / axis_len as f32;
    for (xr, or) in x.chunks_exact(axis_len).zip(out.chunks_exact_mut(axis_len)) {
        let mean = sum_row(xr) * inv_n;
        // Deviations go through `out` so the variance pass reads them once.
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = v - mean;
        }
        let mut acc = [0.0f32; 8];
        let mut chunks = or.chunks_exact(8);
        for c in &mut chunks {
            for (a, &d) in acc.iter_mut().zip(c) {
                *a += d * d;
            }
        }
        let mut tail = 0.0;
        for &d in chunks.remainder() {
            tail += d * d;
        }
        let sq = ((acc[0] + acc[4]) + (acc[1] + acc[5]))
            + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
            + tail;
        let inv_std = 1.0 / math::sqrt(sq * inv_n + epsilon);
        match beta {
            Some(b) => {
                for ((o, &g), &bb) in or.iter_mut().zip(gamma).zip(b) {
                    *o = *o * inv_std * g + bb;
                }
            }
            None => {
                for (o, &g) in or.iter_mut().zip(gamma) {
                    *o = *o * inv_std * g;
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

    /// Tolerance: mean and variance are f32 sums of n terms (relative error ~n·eps each after
    /// the stable two-pass form), the normalized value (x − mean)·inv_std is O(sqrt(n)) at most,
    /// so an absolute bound of (n + 8)·eps·(|y| + |gamma| + 1) covers it with margin.
    #[test]
    fn matches_f64() {
        for &(outer, n) in &[
            (1usize, 1usize),
            (3, 7),
            (2, 16),
            (4, 33),
            (2, 100),
            (1, 768),
        ] {
            let x: Vec<f32> = (0..outer * n)
                .map(|i| ((i * 37 % 97) as f32 - 40.0) * 0.05 + 1000.0)
                .collect();
            let gamma: Vec<f32> = (0..n).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
            let beta: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
            for with_beta in [true, false] {
                let mut out = vec![0.0; x.len()];
                let b = with_beta.then_some(&beta[..]);
                layer_norm(&x, &gamma, b, outer, n, 1e-5, &mut out);
                for r in 0..outer {
                    let row: Vec<f64> = x[r * n..(r + 1) * n].iter().map(|&v| v as f64).collect();
                    let mean = row.iter().sum::<f64>() / n as f64;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
                    let inv = 1.0 / (var + 1e-5f32 as f64).sqrt();
                    for i in 0..n {
                        let mut want = (row[i] - mean) * inv * gamma[i] as f64;
                        if with_beta {
                            want += beta[i] as f64;
                        }
                        let got = out[r * n + i] as f64;
                        // x has magnitude 1000, so the f32 deviations carry ~1000·eps absolute
                        // error, relative to a std of ~1.4: scale the bound by |x|/std too.
                        let tol = (n as f64 + 8.0)
                            * f32::EPSILON as f64
                            * (want.abs() + gamma[i] as f64 + 1.0)
                            * 1000.0
                            * inv.max(1.0);
                        assert!(
                            (got - want).abs() <= tol,
                            "{outer}x{n} [{r},{i}] {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
