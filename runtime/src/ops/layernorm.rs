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
            // SAFETY: the resolved family has avx512f; xs, rs and os hold the same whole rows
            // of axis_len elements (gamma and beta checked above).
            unsafe { x86::rows_avx512(xs, Some(rs), gamma, beta, epsilon, os, range) };
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
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = x
        && crate::isa::Isa::current().resolve() == crate::isa::Isa::Avx512Vnni
    {
        // SAFETY: the resolved family has avx512f; x and out hold the same whole rows of
        // axis_len elements (gamma and beta checked by `layer_norm`).
        unsafe { x86::rows_avx512(x, None, gamma, beta, epsilon, out, range) };
        return;
    }
    let inv_n = 1.0 / axis_len as f32;
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
    use crate::quantize::Range;
    use core::arch::x86_64::*;

    /// Whole rows of `gamma.len()` values with 16-lane vectors, four rows at a time, then
    /// the range (if any) of all of them, gathered in registers by the last pass.
    ///
    /// Each row's reductions are short dependency chains (two accumulators, then a horizontal
    /// sum): one row at a time ran at their latency, so four rows are interleaved. Every row
    /// is computed by exactly the same operations in the same order as a lone row, so the
    /// results do not depend on the grouping.
    ///
    /// # Safety
    /// CPU has avx512f; `gamma` is not empty; `x`, `residual` (if any) and `out` hold the same
    /// whole number of rows of `gamma.len()`; `beta` (if any) has `gamma.len()` elements.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows_avx512(
        x: &[f32],
        residual: Option<&[f32]>,
        gamma: &[f32],
        beta: Option<&[f32]>,
        epsilon: f32,
        out: &mut [f32],
        range: Option<&Range>,
    ) {
        let n = gamma.len();
        debug_assert!(n > 0 && x.len() == out.len() && x.len().is_multiple_of(n));
        debug_assert!(residual.is_none_or(|r| r.len() == x.len()));
        let (rows, inv_n) = (x.len() / n, 1.0 / n as f32);
        let xp = x.as_ptr();
        let rp = residual.map(|r| r.as_ptr());
        let op = out.as_mut_ptr();
        // Accumulators start at 0, which the range always includes.
        let mut mm = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let (rp, bp) = (
            rp.unwrap_or(core::ptr::null()),
            beta.map_or(core::ptr::null(), |b| b.as_ptr()),
        );
        // The residual and beta are decided once per call: as run-time options inside the
        // loops they compiled to a test and branch per vector and row, and spilled pointers.
        macro_rules! go {
            ($g:literal, $r:expr) => {{
                let at = $r * n;
                // SAFETY: rows r..r+$g lie inside x, residual and out (r + $g <= rows); the
                // null pointers are only passed with their flag false (never read).
                unsafe {
                    let (x, r, o) = (
                        xp.add(at),
                        if rp.is_null() { rp } else { rp.add(at) },
                        op.add(at),
                    );
                    match (rp.is_null(), bp.is_null()) {
                        (false, false) => {
                            group::<$g, true, true>(x, r, gamma, bp, inv_n, epsilon, o, &mut mm)
                        }
                        (false, true) => {
                            group::<$g, true, false>(x, r, gamma, bp, inv_n, epsilon, o, &mut mm)
                        }
                        (true, false) => {
                            group::<$g, false, true>(x, r, gamma, bp, inv_n, epsilon, o, &mut mm)
                        }
                        (true, true) => {
                            group::<$g, false, false>(x, r, gamma, bp, inv_n, epsilon, o, &mut mm)
                        }
                    }
                }
            }};
        }
        let mut r = 0;
        while r + 4 <= rows {
            go!(4, r);
            r += 4;
        }
        match rows - r {
            3 => go!(3, r),
            2 => go!(2, r),
            1 => go!(1, r),
            _ => {}
        }
        if let Some(range) = range {
            // Exact: no NaN reaches the accumulators (VMINPS/VMAXPS keep the accumulator when
            // the value is NaN), and −0 never replaces their initial +0, as in `min_max`.
            range.include((_mm512_reduce_min_ps(mm.0), _mm512_reduce_max_ps(mm.1)));
        }
    }

    /// `G` consecutive rows of `gamma.len()` values at `x` (plus `residual`) into `out`, and
    /// the outputs' min/max into `mm`.
    ///
    /// With `RES`, a row is `x + residual` (each sum rounded once, as by a separate Add),
    /// stored into `out` by the first pass and read back by the others. The deviations are
    /// recomputed by each pass that needs them instead of being stored: the same operations give
    /// the same bits, and the row is written at most twice instead of three times.
    ///
    /// # Safety
    /// CPU has avx512f; `x`, `residual` (with `RES`) and `out` are valid for `G` rows of
    /// `gamma.len()` and `out` overlaps neither; `beta` (with `BETA`) has `gamma.len()` elements.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn group<const G: usize, const RES: bool, const BETA: bool>(
        x: *const f32,
        residual: *const f32,
        gamma: &[f32],
        beta: *const f32,
        inv_n: f32,
        epsilon: f32,
        out: *mut f32,
        mm: &mut (__m512, __m512),
    ) {
        let n = gamma.len();
        let mask_at = |i: usize| ((1u32 << (n - i).min(16)) - 1) as __mmask16;
        let gp = gamma.as_ptr();
        // SAFETY (every pointer offset, load and store below): row g starts g·n after the
        // base pointers, and lanes i..i+16 (or the mask's lanes) lie inside its n elements;
        // `residual` is read only with RES and `beta` only with BETA (then they are valid).
        // Row g's values at lanes i.. (the mask's lanes; the others 0): x or x + residual.
        let value = |g: usize, i: usize, k: __mmask16| unsafe {
            let v = _mm512_maskz_loadu_ps(k, x.add(g * n + i));
            if RES {
                _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, residual.add(g * n + i)))
            } else {
                v
            }
        };
        // The same for all 16 lanes (unmasked loads: the same values).
        let value16 = |g: usize, i: usize| unsafe {
            let v = _mm512_loadu_ps(x.add(g * n + i));
            if RES {
                _mm512_add_ps(v, _mm512_loadu_ps(residual.add(g * n + i)))
            } else {
                v
            }
        };
        // With a residual, the first pass stores each sum x + residual into `out` and the later
        // passes read it back: one store instead of two loads and an add per value in each of
        // them (float operations are what this loop is bound by). `out` is then overwritten
        // in place by the last pass, each value read before it is written.
        let (mut s0, mut s1) = ([_mm512_setzero_ps(); G], [_mm512_setzero_ps(); G]);
        let mut i = 0;
        while i + 32 <= n {
            for g in 0..G {
                let (v0, v1) = (value16(g, i), value16(g, i + 16));
                if RES {
                    // SAFETY: lanes i..i+32 of row g of `out`.
                    unsafe {
                        _mm512_storeu_ps(out.add(g * n + i), v0);
                        _mm512_storeu_ps(out.add(g * n + i + 16), v1);
                    }
                }
                s0[g] = _mm512_add_ps(s0[g], v0);
                s1[g] = _mm512_add_ps(s1[g], v1);
            }
            i += 32;
        }
        while i < n {
            let k = mask_at(i);
            for (g, s) in s0.iter_mut().enumerate() {
                let v = value(g, i, k);
                if RES {
                    // SAFETY: the mask's lanes of row g of `out`.
                    unsafe { _mm512_mask_storeu_ps(out.add(g * n + i), k, v) };
                }
                *s = _mm512_add_ps(*s, v);
            }
            i += 16;
        }
        // The later passes' values: the stored sums, or x itself.
        let src: *const f32 = if RES { out } else { x };
        let value = |g: usize, i: usize, k: __mmask16| unsafe {
            _mm512_maskz_loadu_ps(k, src.add(g * n + i))
        };
        let value16 = |g: usize, i: usize| unsafe { _mm512_loadu_ps(src.add(g * n + i)) };
        let mv: [__m512; G] = core::array::from_fn(|g| {
            _mm512_set1_ps(_mm512_reduce_add_ps(_mm512_add_ps(s0[g], s1[g])) * inv_n)
        });
        // Row g's deviations from its mean at lanes i.. (0 outside the mask).
        let dev = |g: usize, i: usize, k: __mmask16| _mm512_maskz_sub_ps(k, value(g, i, k), mv[g]);
        let dev16 = |g: usize, i: usize| _mm512_sub_ps(value16(g, i), mv[g]);
        let (mut q0, mut q1) = ([_mm512_setzero_ps(); G], [_mm512_setzero_ps(); G]);
        let mut i = 0;
        while i + 32 <= n {
            for g in 0..G {
                let (d0, d1) = (dev16(g, i), dev16(g, i + 16));
                q0[g] = _mm512_fmadd_ps(d0, d0, q0[g]);
                q1[g] = _mm512_fmadd_ps(d1, d1, q1[g]);
            }
            i += 32;
        }
        while i < n {
            let k = mask_at(i);
            for (g, q) in q0.iter_mut().enumerate() {
                let d = dev(g, i, k);
                *q = _mm512_fmadd_ps(d, d, *q);
            }
            i += 16;
        }
        let inv_std: [__m512; G] = core::array::from_fn(|g| {
            let var = _mm512_reduce_add_ps(_mm512_add_ps(q0[g], q1[g])) * inv_n;
            _mm512_set1_ps(1.0 / super::math::sqrt(var + epsilon))
        });
        // y = (dev · inv_std) · gamma (+ beta), stored, and its min/max: VMINPS(y, acc) keeps
        // acc when y is NaN (NaN skipped, as by `min_max`).
        // One min/max pair per row: a single pair was a dependency chain through all rows.
        let (mut lo, mut hi) = ([mm.0; G], [mm.1; G]);
        let mut i = 0;
        while i + 16 <= n {
            unsafe {
                let gv = _mm512_loadu_ps(gp.add(i));
                let bv = if BETA {
                    _mm512_loadu_ps(beta.add(i))
                } else {
                    _mm512_setzero_ps()
                };
                for g in 0..G {
                    let mut y = _mm512_mul_ps(_mm512_mul_ps(dev16(g, i), inv_std[g]), gv);
                    if BETA {
                        y = _mm512_add_ps(y, bv);
                    }
                    _mm512_storeu_ps(out.add(g * n + i), y);
                    lo[g] = _mm512_min_ps(y, lo[g]);
                    hi[g] = _mm512_max_ps(y, hi[g]);
                }
            }
            i += 16;
        }
        if i < n {
            let k = mask_at(i);
            unsafe {
                let gv = _mm512_maskz_loadu_ps(k, gp.add(i));
                let bv = if BETA {
                    _mm512_maskz_loadu_ps(k, beta.add(i))
                } else {
                    _mm512_setzero_ps()
                };
                for g in 0..G {
                    let mut y = _mm512_mul_ps(_mm512_mul_ps(dev(g, i, k), inv_std[g]), gv);
                    if BETA {
                        y = _mm512_add_ps(y, bv);
                    }
                    _mm512_mask_storeu_ps(out.add(g * n + i), k, y);
                    lo[g] = _mm512_mask_min_ps(lo[g], k, y, lo[g]);
                    hi[g] = _mm512_mask_max_ps(hi[g], k, y, hi[g]);
                }
            }
        }
        // Min/max are exact and order-free here (no NaN and no −0 ever enters: see above).
        *mm = (
            lo.into_iter()
                .reduce(|a, b| _mm512_min_ps(a, b))
                .unwrap_or(mm.0),
            hi.into_iter()
                .reduce(|a, b| _mm512_max_ps(a, b))
                .unwrap_or(mm.1),
        );
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

    /// Rows are processed in groups (four at a time on AVX-512): each row's result must not
    /// depend on the group it fell in, so a row normalised alone has the same bits.
    #[test]
    fn rows_do_not_depend_on_grouping() {
        let _forced = crate::isa::forced_test_lock();
        for isa in crate::isa::Isa::all_available() {
            crate::isa::set_forced(Some(isa));
            for &(outer, n) in &[(7usize, 384usize), (6, 33), (5, 7)] {
                let x: Vec<f32> = (0..outer * n)
                    .map(|i| ((i * 37 % 97) as f32 - 40.0) * 0.05 + (i / n) as f32)
                    .collect();
                let gamma: Vec<f32> = (0..n).map(|i| 0.5 + (i % 5) as f32 * 0.25).collect();
                let beta: Vec<f32> = (0..n).map(|i| (i % 3) as f32 - 1.0).collect();
                let mut all = vec![0.0; x.len()];
                layer_norm(&x, &gamma, Some(&beta), outer, n, 1e-5, &mut all, None);
                for (xr, ar) in x.chunks(n).zip(all.chunks(n)) {
                    let mut one = vec![0.0; n];
                    layer_norm(xr, &gamma, Some(&beta), 1, n, 1e-5, &mut one, None);
                    for (a, o) in ar.iter().zip(&one) {
                        assert_eq!(a.to_bits(), o.to_bits(), "{isa} {outer}x{n}: {a} vs {o}");
                    }
                }
            }
        }
        crate::isa::set_forced(None);
    }

    /// The fused residual form is exactly `Add` then `layer_norm` (which `matches_f64` checks
    /// against f64), on every ISA, with and without beta, including rows that are not a
    /// multiple of the vector width.
    #[test]
    fn add_layer_norm_is_add_then_layer_norm() {
        let _forced = crate::isa::forced_test_lock();
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
