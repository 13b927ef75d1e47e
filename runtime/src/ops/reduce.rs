//! Reductions over the middle axis of `x` viewed as `[outer][axis_len][inner]`: ONNX
//! `ReduceSum`, `ReduceMean`, `ReduceMax` (one contiguous group of reduced axes; codegen
//! coalesces adjacent reduced axes into one). `out` has `outer * inner` elements.
//!
//! Sums accumulate in `f32`; a contiguous row (`inner == 1`) uses 8 interleaved partial sums,
//! which vectorizes and keeps the error growth ~len/8. An empty axis gives 0 (sum), NaN (mean)
//! and `-inf` (max). `reduce_max` propagates NaN.
//!
//! Maxima of contiguous rows (`inner == 1`, e.g. GlobalMaxPool over planes) run in a function
//! compiled for the CPU's vector width, as lane maxima with an exact sequential rescan in the
//! rare cases where lanes cannot decide (a NaN, or a zero maximum, whose sign depends on which
//! zero comes first).

use crate::isa::Isa;

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
    sum_finish(acc, chunks.remainder())
}

/// The end of [`sum_row`]: the 8 partial sums combined pairwise, plus the tail in order.
#[inline(always)]
fn sum_finish(acc: [f32; 8], rest: &[f32]) -> f32 {
    let mut s = 0.0;
    for &v in rest {
        s += v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// `out[o] = sum_row(row o)` for contiguous rows of `len ≥ 1`, on the vector width of `isa`.
fn sum_rows_isa(isa: Isa, x: &[f32], out: &mut [f32], len: usize) {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa.resolve(), Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni) {
        // SAFETY: every family in the pattern has avx2 (`resolve` only returns families the
        // CPU has).
        return unsafe { x86::sum_rows_avx2(x, out, len) };
    }
    let _ = isa;
    for (o, row) in out.iter_mut().zip(x.chunks_exact(len)) {
        *o = sum_row(row);
    }
}

/// The maximum of a row with `reduce_max`'s semantics: the first NaN if there is one, else
/// the first element equal to the maximum (`-inf` for an empty row).
#[inline(always)]
fn max_row_exact(x: &[f32]) -> f32 {
    let mut o = f32::NEG_INFINITY;
    for &v in x {
        // A NaN v replaces o; once o is NaN it stays NaN.
        if (v > o || v.is_nan()) && !o.is_nan() {
            o = v;
        }
    }
    o
}

/// [`max_row_exact`], vectorised: per lane the maximum of the non-NaN values and whether a NaN
/// was seen. Without NaN and with a nonzero maximum, every element equal to the maximum has
/// the same bits, so the lanes decide; otherwise the row is rescanned exactly.
#[inline(always)]
fn max_row(x: &[f32]) -> f32 {
    const W: usize = 16;
    // Whole arrays in and out (an in-place select becomes a masked store, which a later load
    // of the same lanes waits for).
    #[inline(always)]
    fn step(m: &mut [f32; W], nan: &mut [bool; W], c: &[f32; W]) {
        let (old, was) = (*m, *nan);
        *m = core::array::from_fn(|l| if c[l] > old[l] { c[l] } else { old[l] });
        *nan = core::array::from_fn(|l| was[l] | c[l].is_nan());
    }
    // Four independent lane sets over chunks of 4·W, then chunks of W, then the tail.
    let (big, rest) = x.as_chunks::<{ 4 * W }>();
    let mut m = [[f32::NEG_INFINITY; W]; 4];
    let mut nan = [[false; W]; 4];
    for c in big {
        let (c, _) = c.as_chunks::<W>();
        for k in 0..4 {
            step(&mut m[k], &mut nan[k], &c[k]);
        }
    }
    let (small, tail) = rest.as_chunks::<W>();
    for c in small {
        step(&mut m[0], &mut nan[0], c);
    }
    // Combine the lanes pairwise (their order does not matter when the answer is decided).
    let mut best = m[0];
    let mut any = nan[0];
    if !big.is_empty() {
        for k in 1..4 {
            best = core::array::from_fn(|l| if m[k][l] > best[l] { m[k][l] } else { best[l] });
            any = core::array::from_fn(|l| any[l] | nan[k][l]);
        }
    }
    let mut width = W;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            let v = best[l + width];
            best[l] = if v > best[l] { v } else { best[l] };
        }
    }
    let mut b = best[0];
    let mut any_nan = any.iter().any(|&n| n);
    for &v in tail {
        b = if v > b { v } else { b };
        any_nan |= v.is_nan();
    }
    if any_nan || b == 0.0 {
        return max_row_exact(x);
    }
    b
}

/// `reduce_max` over contiguous rows, compiled for the vector width of `isa` (resolved
/// against the CPU).
fn max_rows_isa(isa: Isa, x: &[f32], out: &mut [f32], len: usize) {
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has; the AVX-512 family has
        // avx512f/bw/vl, the AVX2 ones avx2.
        Isa::Avx512Vnni => unsafe { x86::avx512(x, out, len) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::avx2(x, out, len) },
        _ => max_rows(x, out, len),
    }
}

#[inline(always)]
fn max_rows(x: &[f32], out: &mut [f32], len: usize) {
    for (o, row) in out.iter_mut().zip(x.chunks_exact(len)) {
        *o = max_row(row);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn avx512(x: &[f32], out: &mut [f32], len: usize) {
        super::max_rows(x, out, len)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(x: &[f32], out: &mut [f32], len: usize) {
        super::max_rows(x, out, len)
    }

    /// [`super::sum_row`] of each row, four rows at a time: lane `l` of row `p`'s register
    /// adds the row's elements `8c + l` in order, as `sum_row`'s partial sum `l` does, so each
    /// result is the same; the four rows are independent chains (the only speed-up).
    ///
    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn sum_rows_avx2(x: &[f32], out: &mut [f32], len: usize) {
        use core::arch::x86_64::*;
        let full = len / 8;
        let mut rows = x.chunks_exact(len);
        let mut outs = out.chunks_exact_mut(4);
        for o in &mut outs {
            let mut r: [&[f32]; 4] = [&[]; 4];
            for ri in &mut r {
                *ri = rows.next().unwrap_or(&[]);
            }
            assert!(r.iter().all(|r| r.len() == len));
            let mut acc = [_mm256_setzero_ps(); 4];
            for c in 0..full {
                for (a, row) in acc.iter_mut().zip(&r) {
                    // SAFETY: `8c + 8 ≤ 8·full ≤ len = row.len()`.
                    *a = _mm256_add_ps(*a, unsafe { _mm256_loadu_ps(row.as_ptr().add(8 * c)) });
                }
            }
            for ((o, a), row) in o.iter_mut().zip(acc).zip(&r) {
                let mut lanes = [0.0f32; 8];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
                *o = super::sum_finish(lanes, &row[8 * full..]);
            }
        }
        for (o, row) in outs.into_remainder().iter_mut().zip(rows) {
            *o = super::sum_row(row);
        }
    }
}

/// `out[o][i] = Σ_a x[o][a][i]`.
pub fn reduce_sum(x: &[f32], out: &mut [f32], outer: usize, axis_len: usize, inner: usize) {
    check(x, out, outer, axis_len, inner);
    if inner == 1 {
        if axis_len == 0 {
            out.fill(0.0);
            return;
        }
        return sum_rows_isa(Isa::current(), x, out, axis_len);
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
    reduce_max_isa(Isa::current(), x, out, outer, axis_len, inner)
}

fn reduce_max_isa(
    isa: Isa,
    x: &[f32],
    out: &mut [f32],
    outer: usize,
    axis_len: usize,
    inner: usize,
) {
    check(x, out, outer, axis_len, inner);
    out.fill(f32::NEG_INFINITY);
    if axis_len == 0 {
        return;
    }
    if inner == 1 {
        return max_rows_isa(isa, x, out, axis_len);
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

    /// The row kernels (every ISA) against the sequential definitions, bit for bit: sums as
    /// `sum_row` (any NaN as one: Rust leaves the bits of a NaN produced by arithmetic
    /// unspecified), maxima as `max_row_exact` — including the first of ±0 and the first
    /// NaN's payload — over lengths around the chunk sizes.
    #[test]
    fn rows_match_sequential_bit_for_bit() {
        let mut seed = 0x1234_5678u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) as u32
        };
        for len in (1..80).chain([127, 128, 129, 200, 1000]) {
            for rows in [1, 3, 4, 5, 9] {
                for kind in 0..4 {
                    let x: Vec<f32> = (0..rows * len)
                        .map(|_| {
                            let r = next();
                            match (kind, r % 64) {
                                // Zeros of both signs as the maximum.
                                (1, _) if r % 3 == 0 => -0.0,
                                (1, _) if r % 3 == 1 => 0.0,
                                (1, _) => -((r % 100) as f32) - 1.0,
                                // Rare NaNs with distinct payloads, infinities.
                                (2, 0) => f32::from_bits(0x7fc0_0000 | (r >> 12)),
                                (2, 1) => f32::NEG_INFINITY,
                                (3, _) => f32::NEG_INFINITY,
                                _ => (r % 2001) as f32 / 100.0 - 10.0,
                            }
                        })
                        .collect();
                    let bits = |v: f32| if v.is_nan() { u32::MAX } else { v.to_bits() };
                    let want_sum: Vec<u32> =
                        x.chunks_exact(len).map(|r| bits(sum_row(r))).collect();
                    let want_max: Vec<u32> = x
                        .chunks_exact(len)
                        .map(|r| max_row_exact(r).to_bits())
                        .collect();
                    for isa in Isa::all_available() {
                        let mut out = vec![0.0f32; rows];
                        sum_rows_isa(isa, &x, &mut out, len);
                        let got: Vec<u32> = out.iter().map(|&v| bits(v)).collect();
                        assert_eq!(got, want_sum, "sum {isa} len {len} rows {rows} kind {kind}");
                        reduce_max_isa(isa, &x, &mut out, rows, len, 1);
                        let got: Vec<u32> = out.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(got, want_max, "max {isa} len {len} rows {rows} kind {kind}");
                    }
                }
            }
        }
    }

    #[test]
    fn nan_and_zero_rows() {
        let mut o = [0.0f32; 1];
        reduce_max(&[1.0, f32::NAN, 3.0], &mut o, 1, 3, 1);
        assert!(o[0].is_nan());
        reduce_max(&[f32::NAN, 1.0], &mut o, 1, 2, 1);
        assert!(o[0].is_nan());
    }
}
