//! `wasm32-u8i8i32-simd128-2x16`: u8 activations × i8 packed weights → i32 with simd128 only.
//!
//! Why it looks like this: simd128 has no 8-bit dot product, but `i32x4.dot_i16x8_s` multiplies
//! i16 pairs into i32 and adds each pair. A k-group of a panel is four 16-byte vectors
//! (4 columns × 4 k); each widens (`i16x8.extend_low/high_i8x16_s`, once per group for the whole
//! tile) into two i16x8 of 2 columns × 4 k. Per row, the group's 4 activation bytes are
//! splatted and widened (`u16x8.extend_low_u8x16`) to `[a0 a1 a2 a3 a0 a1 a2 a3]`; 8
//! `dot_i16x8_s` + 8 adds per row and group (64 MACs) leave lanes
//! `[col c: k0+k1, col c: k2+k3, col c+1: …, …]`, and one shuffle pair + add per 4 columns at
//! the end gives the column sums. Exact: u8·i8 products and their pair sums fit i32 trivially.
//! 2 rows × 16 columns = 16 accumulators + 8 widened weight vectors, which engines map onto
//! 16 (x86_64) or 32 (aarch64) host registers; more rows would spill on x86_64 hosts.
use core::arch::wasm32::*;
use core::ops::Range;

use crate::gemm::Activation;
use crate::kernels::{Job, Out};
use crate::pack::{KR, NR, padded_k};

const MR: usize = 2;

/// Runs panels `panels` of `job`, all rows.
///
/// # Safety
/// This build has simd128 (`Isa::Simd128.available()`); `job` is validated as documented on
/// [`Job`]; `panels` lies within `padded_n(b.n)/NR`; `out` is valid for `job.m` rows of stride
/// `job.ldc` and no other thread writes these panels' columns of these rows.
pub(crate) unsafe fn run(job: &Job<'_>, out: Out, panels: Range<usize>) {
    for p in panels {
        let mut r = 0;
        while r < job.m {
            let mr = MR.min(job.m - r);
            // SAFETY: r + mr <= m and p is a valid panel, as `tile` requires.
            unsafe {
                if mr == 2 {
                    tile::<2>(job, out, r, p);
                } else {
                    tile::<1>(job, out, r, p);
                }
            }
            r += mr;
        }
    }
}

/// Column sums `[c0, c1, c2, c3]` from two half-sum vectors `[c0 lo, c0 hi, c1 lo, c1 hi]` and
/// `[c2 lo, c2 hi, c3 lo, c3 hi]`.
#[inline]
pub(super) fn pair_sums(x: v128, y: v128) -> v128 {
    i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(x, y),
        i32x4_shuffle::<1, 3, 5, 7>(x, y),
    )
}

/// One R x 16 tile at rows `r0..r0+R`, panel `p`.
///
/// # Safety
/// As for [`run`], plus `r0 + R <= job.m` and `p` inside `padded_n(b.n)/NR`.
#[inline]
unsafe fn tile<const R: usize>(job: &Job<'_>, out: Out, r0: usize, p: usize) {
    let pk = padded_k(job.b.k);
    // SAFETY: rows r0..r0+R of A and panel p of B are in bounds (validated sizes).
    let (a, b) = unsafe {
        (
            job.a.as_ptr().add(r0 * pk),
            job.b.data.as_ptr().add(p * pk * NR),
        )
    };
    let mut acc = [[i32x4_splat(0); 8]; R];
    for g in 0..pk / KR {
        let mut bw = [i32x4_splat(0); 8];
        for q in 0..4 {
            // SAFETY: 16 of the 64 bytes of k-group g of panel p.
            let v = unsafe { v128_load(b.add(g * NR * KR + 16 * q).cast()) };
            bw[2 * q] = i16x8_extend_low_i8x16(v);
            bw[2 * q + 1] = i16x8_extend_high_i8x16(v);
        }
        for (i, acc_i) in acc.iter_mut().enumerate() {
            // SAFETY: 4 bytes at i*pk + 4g, inside row r0+i of A.
            let a4 = unsafe { core::ptr::read_unaligned(a.add(i * pk + g * KR).cast::<u32>()) };
            let av = u16x8_extend_low_u8x16(u32x4_splat(a4));
            for (acc_ij, bw_j) in acc_i.iter_mut().zip(&bw) {
                *acc_ij = i32x4_add(*acc_ij, i32x4_dot_i16x8(*bw_j, av));
            }
        }
    }
    let sums: [[v128; 4]; R] = core::array::from_fn(|i| {
        core::array::from_fn(|q| pair_sums(acc[i][2 * q], acc[i][2 * q + 1]))
    });
    // SAFETY: forwarded (r0 + R <= m, p valid, out valid).
    unsafe { epilogue_128::<R>(job, out, &sums, r0, p) };
}

/// `act` on 4 lanes with the reference semantics (`Activation::apply`): compare and select,
/// so NaN and −0.0 go to the bound exactly as `x > 0 ? x : 0` does.
#[inline]
fn act_128(f: v128, act: Activation) -> v128 {
    match act {
        // Gelu is applied by `qgemm_f32` after the kernel; kernels never see it.
        Activation::None | Activation::Gelu => f,
        Activation::Relu => {
            let z = f32x4_splat(0.0);
            v128_bitselect(f, z, f32x4_gt(f, z))
        }
        Activation::Clip { min, max } => {
            let (lo, hi) = (f32x4_splat(min), f32x4_splat(max));
            let f = v128_bitselect(f, lo, f32x4_gt(f, lo));
            v128_bitselect(f, hi, f32x4_lt(f, hi))
        }
    }
}

/// Epilogue for an `R` x 16 tile held as four i32x4 per row (columns 0..4, …, 12..16 of panel
/// `p`; the full `Σ a·w`), rows `r0..r0+R`: zero-point correction, then (f32 output) convert
/// (`f32x4.convert_i32x4_s`, round to nearest even like `as f32`), scale, bias, activation, and
/// store only the columns `< job.b.n`. Multiply then add, as the reference.
///
/// # Safety
/// `job` validated as documented on [`Job`]; `r0 + R <= job.m`; panel `p` is inside
/// `padded_n(b.n)`; `out` points at a buffer valid for `job.m` rows of stride `ldc`.
#[inline]
pub(super) unsafe fn epilogue_128<const R: usize>(
    job: &Job<'_>,
    out: Out,
    acc: &[[v128; 4]; R],
    r0: usize,
    p: usize,
) {
    let col0 = p * NR;
    let width = NR.min(job.b.n - col0);
    // SAFETY: the per-column arrays have padded_n(n) >= col0 + 16 entries (validated).
    let ld = |s: &[i32], h: usize| unsafe { v128_load(s.as_ptr().add(col0 + 4 * h).cast()) };
    let za = i32x4_splat(job.za);
    let zc: [v128; 4] = core::array::from_fn(|h| i32x4_mul(za, ld(job.b.colsum, h)));
    let zb: [v128; 4] = core::array::from_fn(|h| ld(job.b.zero_point, h));
    let correct = |i: usize, h: usize| {
        let rt = i32x4_splat(job.row_term[r0 + i]);
        i32x4_sub(i32x4_sub(acc[i][h], zc[h]), i32x4_mul(zb[h], rt))
    };
    let store = |dst: *mut u8, v: &[v128; 4], elem: usize| {
        // SAFETY: the caller's row r0+i < m, columns col0..col0+width <= n are inside the
        // output (validated); the temporary is a local 64-byte array.
        unsafe {
            if width == NR {
                for (h, v) in v.iter().enumerate() {
                    v128_store(dst.add(16 * h).cast(), *v);
                }
            } else {
                let mut tmp = [0u8; 64];
                for (h, v) in v.iter().enumerate() {
                    v128_store(tmp.as_mut_ptr().add(16 * h).cast(), *v);
                }
                core::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, width * elem);
            }
        }
    };
    match out {
        Out::F32 { ptr, a_scale, act } => {
            // SAFETY: as for `ld`.
            let ldf =
                |s: &[f32], h: usize| unsafe { v128_load(s.as_ptr().add(col0 + 4 * h).cast()) };
            let sa = f32x4_splat(a_scale);
            let s: [v128; 4] = core::array::from_fn(|h| f32x4_mul(sa, ldf(job.b.scale, h)));
            let bias = job
                .b
                .bias
                .map(|b| -> [v128; 4] { core::array::from_fn(|h| ldf(b, h)) });
            for i in 0..R {
                let f: [v128; 4] = core::array::from_fn(|h| {
                    let mut v = f32x4_mul(f32x4_convert_i32x4(correct(i, h)), s[h]);
                    if let Some(b) = bias {
                        v = f32x4_add(v, b[h]);
                    }
                    act_128(v, act)
                });
                // SAFETY: row r0+i < m (caller), column col0 inside the output.
                store(unsafe { ptr.add((r0 + i) * job.ldc + col0).cast() }, &f, 4);
            }
        }
        Out::I32 { ptr } => {
            for i in 0..R {
                let v: [v128; 4] = core::array::from_fn(|h| correct(i, h));
                // SAFETY: as for the f32 store.
                store(unsafe { ptr.add((r0 + i) * job.ldc + col0).cast() }, &v, 4);
            }
        }
    }
}
