//! `generic-u8i8i32-scalar`: the portable scalar kernel, always built — the executable
//! specification every SIMD kernel is tested against for exact equality.
//!
//! Why it looks like this: it walks the packed layout ([`Layout::NATIVE`]: 4-deep k-groups, or
//! 8-deep ones and a last 4-deep group on aarch64) panel by panel with a 16-wide i32
//! accumulator row, so it is the same arithmetic (wrapping i32, padding included) as the SIMD
//! kernels, just one lane at a time; LLVM may auto-vectorise it, which cannot change the
//! integer result.
use crate::gemm::Activation;
use crate::pack::{KR, Layout, NR, PackedI8, padded_k};

/// The integer zero-point correction, in wrapping i32:
/// `acc - za*colsum - zb*row_term` where `row_term = rowsum(a) - K*za`.
/// (Expanding, this is `Σ (a - za)(b - zb)`.)
#[inline(always)]
pub fn correct(acc: i32, za: i32, colsum: i32, zb: i32, row_term: i32) -> i32 {
    acc.wrapping_sub(za.wrapping_mul(colsum))
        .wrapping_sub(zb.wrapping_mul(row_term))
}

/// The float epilogue, in exactly this order (no FMA): `s = a_scale * b_scale` (computed by
/// the caller, once per column), `v as f32` (round to nearest even), `* s`, `+ bias` (skipped
/// when there is no bias, so `-0.0` survives), then the activation.
#[inline(always)]
pub fn dequant(v: i32, s: f32, bias: Option<f32>, act: Activation) -> f32 {
    let mut f = v as f32 * s;
    if let Some(b) = bias {
        f += b;
    }
    act.apply(f)
}

/// Integer accumulators of rows `m` for the 16 columns of panel `p`.
#[inline(always)]
fn panel_acc(a_row: &[u8], b: &PackedI8<'_>, p: usize) -> [i32; NR] {
    const D: usize = Layout::NATIVE.depth();
    let pk = padded_k(b.k);
    let full = Layout::NATIVE.full_k(pk);
    let panel = &b.data[p * pk * NR..(p + 1) * pk * NR];
    let mut acc = [0i32; NR];
    groups::<D>(&mut acc, &a_row[..full], &panel[..full * NR]);
    groups::<KR>(&mut acc, &a_row[full..pk], &panel[full * NR..]);
    acc
}

/// `acc[c] += Σ a·w` over consecutive `D`-deep groups of one panel (`D`·16 bytes each).
#[inline(always)]
fn groups<const D: usize>(acc: &mut [i32; NR], a: &[u8], panel: &[i8]) {
    for (g, group) in panel.chunks_exact(NR * D).enumerate() {
        let av = &a[g * D..g * D + D];
        for (c, w) in group.chunks_exact(D).enumerate() {
            let mut s = acc[c];
            for t in 0..D {
                s = s.wrapping_add(av[t] as i32 * w[t] as i32);
            }
            acc[c] = s;
        }
    }
}

/// Validated-size reference GEMM with the f32 epilogue (see `gemm::qgemm_f32`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_f32(
    m: usize,
    a: &[u8],
    row_term: &[i32],
    za: i32,
    a_scale: f32,
    b: &PackedI8<'_>,
    act: Activation,
    out: &mut [f32],
    ldc: usize,
) {
    let pk = padded_k(b.k);
    for p in 0..b.n.div_ceil(NR) {
        for r in 0..m {
            let acc = panel_acc(&a[r * pk..(r + 1) * pk], b, p);
            for (c, &acc) in acc.iter().enumerate() {
                let n = p * NR + c;
                if n >= b.n {
                    break;
                }
                let v = correct(acc, za, b.colsum[n], b.zero_point[n], row_term[r]);
                let s = a_scale * b.scale[n];
                out[r * ldc + n] = dequant(v, s, b.bias.map(|bb| bb[n]), act);
            }
        }
    }
}

/// Validated-size reference GEMM with the i32 output (see `gemm::qgemm_i32`).
#[allow(clippy::too_many_arguments)]
pub fn gemm_i32(
    m: usize,
    a: &[u8],
    row_term: &[i32],
    za: i32,
    b: &PackedI8<'_>,
    out: &mut [i32],
    ldc: usize,
) {
    let pk = padded_k(b.k);
    for p in 0..b.n.div_ceil(NR) {
        for r in 0..m {
            let acc = panel_acc(&a[r * pk..(r + 1) * pk], b, p);
            for (c, &acc) in acc.iter().enumerate() {
                let n = p * NR + c;
                if n >= b.n {
                    break;
                }
                out[r * ldc + n] = correct(acc, za, b.colsum[n], b.zero_point[n], row_term[r]);
            }
        }
    }
}
