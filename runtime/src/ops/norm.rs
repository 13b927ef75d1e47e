//! The normalisations beside plain `LayerNormalization` ([`super::layernorm`]): ONNX
//! `RMSNormalization`, `LayerNormalization` with its `Mean`/`InvStdDev` outputs, and
//! onnxruntime's `SkipLayerNormalization`, `SkipSimplifiedLayerNormalization` and
//! `SimplifiedLayerNormalization` (`com.microsoft`), all one row function:
//!
//! ```text
//! v   = x (+ skip) (+ bias)                      each sum rounded once, in this order
//! LN:  mean = Σv / n,  d = v − mean,  inv = 1 / sqrt(Σd² / n + ε),  y = d·inv·γ (+ β)
//! RMS: inv = 1 / sqrt(Σv² / n + ε),  y = v·inv·γ (+ β)
//! ```
//!
//! Sums are `reduce::sum_row`'s 8 interleaved partial sums (`sum_sq` the same for
//! squares), so the loops vectorise. The code has no ISA-specific path: the AVX2 entry is the
//! same Rust compiled with wider vectors, and since the order of every operation is fixed in
//! the source (no reassociation, no FMA contraction), every ISA gives the same bits.

use super::math;
use super::reduce::sum_row;

/// Shape and options of one normalisation call.
#[derive(Clone, Copy, Debug)]
pub struct NormSpec {
    /// Elements per normalised row (`gamma.len()`).
    pub len: usize,
    pub epsilon: f32,
    /// RMS normalisation (no mean subtraction) instead of LayerNorm.
    pub rms: bool,
}

/// Optional extra outputs: the per-row mean (LayerNorm only; 0 for RMS) and inverse standard
/// deviation (`outer` values each), and the sum `x + skip + bias` (same length as `x`).
#[derive(Default)]
pub struct NormOutputs<'a> {
    pub mean: Option<&'a mut [f32]>,
    pub inv_std: Option<&'a mut [f32]>,
    pub sum: Option<&'a mut [f32]>,
}

/// `Σ v²` with [`sum_row`]'s order.
#[inline(always)]
fn sum_sq(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let mut s = 0.0;
    for &v in chunks.remainder() {
        s += v * v;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + s
}

/// Normalises each row of `x` (plus `skip`, whose rows repeat when it is shorter than `x`,
/// plus `bias`) into `out`. `gamma`, `beta` and `bias` have `spec.len` elements.
///
/// Panics if a length does not match.
#[allow(clippy::too_many_arguments)]
pub fn norm(
    isa: crate::isa::Isa,
    x: &[f32],
    skip: Option<&[f32]>,
    bias: Option<&[f32]>,
    gamma: &[f32],
    beta: Option<&[f32]>,
    spec: NormSpec,
    out: &mut [f32],
    extra: NormOutputs<'_>,
) {
    let n = spec.len;
    assert_eq!(gamma.len(), n, "norm: gamma length");
    assert_eq!(out.len(), x.len(), "norm: output length");
    assert!(beta.is_none_or(|b| b.len() == n), "norm: beta length");
    assert!(bias.is_none_or(|b| b.len() == n), "norm: bias length");
    if n == 0 || x.is_empty() {
        return;
    }
    assert!(x.len().is_multiple_of(n), "norm: input length");
    let rows = x.len() / n;
    if let Some(s) = skip {
        assert!(
            !s.is_empty() && s.len().is_multiple_of(n) && x.len().is_multiple_of(s.len()),
            "norm: skip length"
        );
    }
    assert!(
        extra.mean.as_ref().is_none_or(|m| m.len() == rows),
        "norm: mean length"
    );
    assert!(
        extra.inv_std.as_ref().is_none_or(|m| m.len() == rows),
        "norm: inv_std length"
    );
    assert!(
        extra.sum.as_ref().is_none_or(|m| m.len() == x.len()),
        "norm: sum length"
    );
    #[cfg(target_arch = "x86_64")]
    if matches!(
        isa.resolve(),
        crate::isa::Isa::Avx2 | crate::isa::Isa::AvxVnni | crate::isa::Isa::Avx512Vnni
    ) {
        // SAFETY: every family in the pattern has avx2 (`resolve` only returns families the
        // CPU has); the lengths were checked above.
        unsafe { norm_avx2(x, skip, bias, gamma, beta, spec, out, extra) };
        return;
    }
    let _ = isa;
    norm_rows(x, skip, bias, gamma, beta, spec, out, extra);
}

/// [`norm_rows`] compiled for AVX2 (the same operations, wider vectors).
///
/// # Safety
/// The CPU has avx2; lengths as checked by [`norm`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn norm_avx2(
    x: &[f32],
    skip: Option<&[f32]>,
    bias: Option<&[f32]>,
    gamma: &[f32],
    beta: Option<&[f32]>,
    spec: NormSpec,
    out: &mut [f32],
    extra: NormOutputs<'_>,
) {
    norm_rows(x, skip, bias, gamma, beta, spec, out, extra);
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn norm_rows(
    x: &[f32],
    skip: Option<&[f32]>,
    bias: Option<&[f32]>,
    gamma: &[f32],
    beta: Option<&[f32]>,
    spec: NormSpec,
    out: &mut [f32],
    mut extra: NormOutputs<'_>,
) {
    let n = spec.len;
    let inv_n = 1.0 / n as f32;
    for (r, (or, xr)) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)).enumerate() {
        // The input of the normalisation, formed in `out`.
        match skip {
            Some(s) => {
                let at = (r * n) % s.len();
                for ((o, &a), &b) in or.iter_mut().zip(xr).zip(&s[at..at + n]) {
                    *o = a + b;
                }
            }
            None => or.copy_from_slice(xr),
        }
        if let Some(b) = bias {
            for (o, &c) in or.iter_mut().zip(b) {
                *o += c;
            }
        }
        if let Some(sum) = extra.sum.as_deref_mut() {
            sum[r * n..(r + 1) * n].copy_from_slice(or);
        }
        let mean = if spec.rms {
            0.0
        } else {
            let mean = sum_row(or) * inv_n;
            for o in or.iter_mut() {
                *o -= mean;
            }
            mean
        };
        let inv_std = 1.0 / math::sqrt(sum_sq(or) * inv_n + spec.epsilon);
        match beta {
            Some(b) => {
                for ((o, &g), &c) in or.iter_mut().zip(gamma).zip(b) {
                    *o = *o * inv_std * g + c;
                }
            }
            None => {
                for (o, &g) in or.iter_mut().zip(gamma) {
                    *o = *o * inv_std * g;
                }
            }
        }
        if let Some(m) = extra.mean.as_deref_mut() {
            m[r] = mean;
        }
        if let Some(m) = extra.inv_std.as_deref_mut() {
            m[r] = inv_std;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::isa::Isa;
    use std::vec;
    use std::vec::Vec;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(7);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 400.0 - 2.5
            })
            .collect()
    }

    /// f64 evaluation of the definition (module docs) for one case.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        skip: Option<&[f32]>,
        bias: Option<&[f32]>,
        gamma: &[f32],
        beta: Option<&[f32]>,
        rms: bool,
        eps: f32,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = gamma.len();
        let (mut y, mut means, mut invs) = (vec![], vec![], vec![]);
        for r in 0..x.len() / n {
            let v: Vec<f64> = (0..n)
                .map(|i| {
                    let s = skip.map_or(0.0, |s| s[(r * n + i) % s.len()] as f64);
                    x[r * n + i] as f64 + s + bias.map_or(0.0, |b| b[i] as f64)
                })
                .collect();
            let mean = if rms {
                0.0
            } else {
                v.iter().sum::<f64>() / n as f64
            };
            let ms = v.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / n as f64;
            let inv = 1.0 / (ms + eps as f64).sqrt();
            for i in 0..n {
                y.push((v[i] - mean) * inv * gamma[i] as f64 + beta.map_or(0.0, |b| b[i] as f64));
            }
            means.push(mean);
            invs.push(inv);
        }
        (y, means, invs)
    }

    #[test]
    fn matches_f64_and_is_the_same_on_every_isa() {
        for &(rows, n, skip_rows) in &[(1usize, 1usize, 1usize), (3, 7, 3), (4, 33, 2), (2, 384, 1)]
        {
            let x = data(rows * n, 1);
            let skip = data(skip_rows * n, 2);
            let bias = data(n, 3);
            let gamma = data(n, 4);
            let beta = data(n, 5);
            for rms in [false, true] {
                for opts in 0..4 {
                    let sk = (opts & 1 != 0).then_some(&skip[..]);
                    let bi = (opts & 2 != 0).then_some(&bias[..]);
                    let be = (!rms || opts == 3).then_some(&beta[..]);
                    let (want, wm, wi) = reference(&x, sk, bi, &gamma, be, rms, 1e-5);
                    let mut first: Option<Vec<f32>> = None;
                    for isa in Isa::all_available() {
                        let mut out = vec![0.0; x.len()];
                        let (mut m, mut iv, mut s) =
                            (vec![0.0; rows], vec![0.0; rows], vec![0.0; x.len()]);
                        let spec = NormSpec {
                            len: n,
                            epsilon: 1e-5,
                            rms,
                        };
                        let extra = NormOutputs {
                            mean: Some(&mut m),
                            inv_std: Some(&mut iv),
                            sum: Some(&mut s),
                        };
                        norm(isa, &x, sk, bi, &gamma, be, spec, &mut out, extra);
                        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                            assert!(
                                (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                "rms {rms} opts {opts} n {n} [{i}]: {g} vs {w}"
                            );
                        }
                        for r in 0..rows {
                            assert!((m[r] as f64 - wm[r]).abs() <= 1e-5 * (1.0 + wm[r].abs()));
                            assert!((iv[r] as f64 - wi[r]).abs() <= 1e-5 * wi[r]);
                        }
                        for (i, &v) in s.iter().enumerate() {
                            let r = i / n;
                            let mut e = x[i];
                            if let Some(sk) = sk {
                                e += sk[(r * n + i % n) % sk.len()];
                            }
                            if let Some(b) = bi {
                                e += b[i % n];
                            }
                            assert_eq!(v.to_bits(), e.to_bits());
                        }
                        match &first {
                            None => first = Some(out),
                            Some(f) => assert!(
                                f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                                "{isa:?} differs from the first ISA"
                            ),
                        }
                    }
                }
            }
        }
    }
}
