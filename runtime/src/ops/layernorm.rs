//! ONNX `LayerNormalization` over the last `axis_len` elements of each of `outer` rows:
//! `y = (x − mean) / sqrt(var + epsilon) · gamma + beta` with `var = mean((x − mean)²)`.
//!
//! Two passes over each row in `f32` (mean, then the mean of squared deviations — the
//! numerically stable form, no `E[x²] − E[x]²` cancellation); partial sums are interleaved
//! 8 ways (see [`super::reduce`]) so the loops vectorize.

use super::math;
use super::reduce::sum_row;
use crate::quantize::Range;

/// Normalizes each row of `x` (`outer` rows of `axis_len`) into `out`. `gamma` and `beta`
/// (optional, ONNX `B`) have `axis_len` elements. With `range`, also widens it by every output
/// row while the row is in L1 (see [`Range`]). Panics if a length does not match.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm(
    x: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    outer: usize,
    axis_len: usize,
    epsilon: f32,
    out: &mut [f32],
    range: Option<&Range>,
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
        rows(Some(xs), gamma, beta, axis_len, epsilon, os, range)
    });
}

/// `layer_norm(x + residual)`: the residual Add in front of a transformer's LayerNorm, fused so
/// that the sum is formed in the first pass over each row instead of a separate pass over
/// memory. The sum is rounded to f32 exactly as the separate Add would, so the result equals
/// `Add` followed by [`layer_norm`] bit for bit. Panics if a length does not match.
#[allow(clippy::too_many_arguments)]
pub fn add_layer_norm(
    x: &[f32],
    residual: &[f32],
    gamma: &[f32],
    beta: Option<&[f32]>,
    outer: usize,
    axis_len: usize,
    epsilon: f32,
    out: &mut [f32],
    range: Option<&Range>,
) {
    assert_eq!(x.len(), outer * axis_len, "add_layer_norm: input length");
    assert_eq!(residual.len(), x.len(), "add_layer_norm: residual length");
    assert_eq!(out.len(), x.len(), "add_layer_norm: output length");
    assert_eq!(gamma.len(), axis_len, "add_layer_norm: gamma length");
    if let Some(b) = beta {
        assert_eq!(b.len(), axis_len, "add_layer_norm: beta length");
    }
    if axis_len == 0 {
        return;
    }
    let min_rows = crate::par::MIN_ELEMS.div_ceil(axis_len);
    crate::par::rows_mut(out, axis_len, min_rows, |r0, os| {
        let (i0, i1) = (r0 * axis_len, r0 * axis_len + os.len());
        let (xs, rs) = (&x[i0..i1], &residual[i0..i1]);
        #[cfg(target_arch = "x86_64")]
        if crate::isa::Isa::current().resolve() == crate::isa::Isa::Avx512Vnni {
            let inv_n = 1.0 / axis_len as f32;
            for ((xr, rr), or) in xs
                .chunks_exact(axis_len)
                .zip(rs.chunks_exact(axis_len))
                .zip(os.chunks_exact_mut(axis_len))
            {
                // SAFETY: the resolved family has avx512f; the rows have axis_len elements
                // (gamma and beta checked above).
                unsafe { x86::row_avx512(xr, Some(rr), gamma, beta, inv_n, epsilon, or) };
                if let Some(r) = range {
                    r.observe(crate::isa::Isa::Avx512Vnni, or);
                }
            }
            return;
        }
        for (o, (&a, &b)) in os.iter_mut().zip(xs.iter().zip(rs)) {
            *o = a + b;
        }
        rows(None, gamma, beta, axis_len, epsilon, os, range);
    });
}

/// [`layer_norm`] on whole rows (one piece of the parallel split).
/// `x` None: the input is already in `out` (normalised in place; the generic path of
/// [`add_layer_norm`]).
#[allow(clippy::too_many_arguments)]
fn rows(
    x: Option<&[f32]>,
    gamma: &[f32],
    beta: Option<&[f32]>,
    axis_len: usize,
    epsilon: f32,
    out: &mut [f32],
    range: Option<&Range>,
) {
    let inv_n = 1.0 / axis_len as f32;
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = x
        && crate::isa::Isa::current().resolve() == crate::isa::Isa::Avx512Vnni
    {
        for (xr, or) in x.chunks_exact(axis_len).zip(out.chunks_exact_mut(axis_len)) {
            // SAFETY: the resolved family has avx512f; the row lengths match (chunks of
            // `axis_len`, gamma and beta checked by `layer_norm`).
            unsafe { x86::row_avx512(xr, None, gamma, beta, inv_n, epsilon, or) };
            if let Some(r) = range {
                r.observe(crate::isa::Isa::Avx512Vnni, or);
            }
        }
        return;
    }
    for (r, or) in out.chunks_exact_mut(axis_len).enumerate() {
        // Deviations go through `out` so the variance pass reads them once.
        if let Some(x) = x {
            let xr = &x[r * axis_len..(r + 1) * axis_len];
            let mean = sum_row(xr) * inv_n;
            for (o, &v) in or.iter_mut().zip(xr) {
                *o = v - mean;
            }
        } else {
            let mean = sum_row(or) * inv_n;
            for o in or.iter_mut() {
                *o -= mean;
            }
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
        if let Some(r) = range {
            r.observe(crate::isa::Isa::current(), or);
        }
    }
}

// AVX-512 intrinsics need rustc >= 1.89 (see softmax.rs).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use core::arch::x86_64::*;

    /// One row with 16-lane vectors, same two-pass numerics as the generic path (the sums are
    /// split over 2×16 lanes instead of 8 and the squares use FMA, so results agree within
    /// float rounding).
    ///
    /// With `residual`, the row is `x + residual` (each sum rounded once, as by a separate
    /// Add), formed in the first pass and kept in `out` for the second.
    ///
    /// # Safety
    /// CPU has avx512f; `residual` (if any), `gamma`, `beta` (if any) and `out` have `x.len()`
    /// elements.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn row_avx512(
        x: &[f32],
        residual: Option<&[f32]>,
        gamma: &[f32],
        beta: Option<&[f32]>,
        inv_n: f32,
        epsilon: f32,
        out: &mut [f32],
    ) {
        let n = x.len();
        debug_assert!(gamma.len() == n && out.len() == n);
        let mask_at = |i: usize| ((1u32 << (n - i).min(16)) - 1) as __mmask16;
        let (op, gp) = (out.as_mut_ptr(), gamma.as_ptr());
        // SAFETY (all loads and stores below): lanes i..i+16 (or the mask's lanes) lie inside
        // the rows, which all have n elements.
        let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // The row's values: x itself, or x + residual stored into `out` on the way.
        let xp = if let Some(r) = residual {
            debug_assert!(r.len() == n);
            let (ap, rp) = (x.as_ptr(), r.as_ptr());
            while i + 32 <= n {
                unsafe {
                    let v0 = _mm512_add_ps(_mm512_loadu_ps(ap.add(i)), _mm512_loadu_ps(rp.add(i)));
                    let v1 = _mm512_add_ps(
                        _mm512_loadu_ps(ap.add(i + 16)),
                        _mm512_loadu_ps(rp.add(i + 16)),
                    );
                    _mm512_storeu_ps(op.add(i), v0);
                    _mm512_storeu_ps(op.add(i + 16), v1);
                    s0 = _mm512_add_ps(s0, v0);
                    s1 = _mm512_add_ps(s1, v1);
                }
                i += 32;
            }
            while i < n {
                let k = mask_at(i);
                unsafe {
                    let v = _mm512_add_ps(
                        _mm512_maskz_loadu_ps(k, ap.add(i)),
                        _mm512_maskz_loadu_ps(k, rp.add(i)),
                    );
                    _mm512_mask_storeu_ps(op.add(i), k, v);
                    s0 = _mm512_add_ps(s0, v);
                }
                i += 16;
            }
            op as *const f32
        } else {
            let xp = x.as_ptr();
            while i + 32 <= n {
                unsafe {
                    s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xp.add(i)));
                    s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xp.add(i + 16)));
                }
                i += 32;
            }
            while i < n {
                s0 = _mm512_add_ps(s0, unsafe { _mm512_maskz_loadu_ps(mask_at(i), xp.add(i)) });
                i += 16;
            }
            xp
        };
        let mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) * inv_n;
        let mv = _mm512_set1_ps(mean);
        let (mut q0, mut q1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i + 32 <= n {
            unsafe {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(xp.add(i)), mv);
                let d1 = _mm512_sub_ps(_mm512_loadu_ps(xp.add(i + 16)), mv);
                _mm512_storeu_ps(op.add(i), d0);
                _mm512_storeu_ps(op.add(i + 16), d1);
                q0 = _mm512_fmadd_ps(d0, d0, q0);
                q1 = _mm512_fmadd_ps(d1, d1, q1);
            }
            i += 32;
        }
        while i < n {
            let k = mask_at(i);
            unsafe {
                let d = _mm512_maskz_sub_ps(k, _mm512_maskz_loadu_ps(k, xp.add(i)), mv);
                _mm512_mask_storeu_ps(op.add(i), k, d);
                q0 = _mm512_fmadd_ps(d, d, q0);
            }
            i += 16;
        }
        let var = _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) * inv_n;
        let inv_std = _mm512_set1_ps(1.0 / super::math::sqrt(var + epsilon));
        let mut i = 0;
        while i < n {
            let k = mask_at(i);
            unsafe {
                let d = _mm512_maskz_loadu_ps(k, op.add(i));
                let mut y = _mm512_mul_ps(
                    _mm512_mul_ps(d, inv_std),
                    _mm512_maskz_loadu_ps(k, gp.add(i)),
                );
                if let Some(b) = beta {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, b.as_ptr().add(i)));
                }
                _mm512_mask_storeu_ps(op.add(i), k, y);
            }
            i += 16;
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
                layer_norm(&x, &gamma, b, outer, n, 1e-5, &mut out, None);
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

    /// The fused residual form is exactly `Add` then `layer_norm` (which `matches_f64` checks
    /// against f64), on every ISA, with and without beta, including rows that are not a
    /// multiple of the vector width.
    #[test]
    fn add_layer_norm_is_add_then_layer_norm() {
        for isa in crate::isa::Isa::all_available() {
            crate::isa::set_forced(Some(isa));
            for &(outer, n) in &[(1usize, 1usize), (3, 7), (4, 33), (5, 384), (2, 100)] {
                let x: Vec<f32> = (0..outer * n)
                    .map(|i| ((i * 37 % 97) as f32 - 40.0) * 0.05)
                    .collect();
                let r: Vec<f32> = (0..outer * n)
                    .map(|i| ((i * 53 % 89) as f32 - 44.0) * 0.031)
                    .collect();
                let gamma: Vec<f32> = (0..n).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
                let beta: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
                for b in [Some(&beta[..]), None] {
                    let sum: Vec<f32> = x.iter().zip(&r).map(|(a, b)| a + b).collect();
                    let mut want = vec![0.0; x.len()];
                    let range = Range::new();
                    layer_norm(&sum, &gamma, b, outer, n, 1e-5, &mut want, Some(&range));
                    let fold = |y: &[f32]| {
                        y.iter()
                            .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
                    };
                    assert_eq!(
                        range.get(),
                        fold(&want),
                        "{isa} {outer}x{n}: layer_norm range"
                    );
                    let mut got = vec![f32::NAN; x.len()];
                    let range = Range::new();
                    add_layer_norm(&x, &r, &gamma, b, outer, n, 1e-5, &mut got, Some(&range));
                    for (g, w) in got.iter().zip(&want) {
                        assert_eq!(g.to_bits(), w.to_bits(), "{isa} {outer}x{n}: {g} vs {w}");
                    }
                    assert_eq!(range.get(), fold(&got), "{isa} {outer}x{n}: add range");
                }
            }
        }
        crate::isa::set_forced(None);
    }
}
