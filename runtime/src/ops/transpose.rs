//! ONNX `Transpose` for any element type, without allocation.
//!
//! Why this shape: dims of size 1 are dropped and input dims that stay adjacent and in order
//! under the permutation are merged, so e.g. `[B,S,H,D]` with perm `[0,2,1,3]` becomes a
//! 4-D walk with contiguous `D` rows and `[M,N]ᵀ` stays 2-D. If the innermost output dim is
//! contiguous in the input, rows are copied; otherwise the last two output dims are transposed
//! in 8×8 tiles so that both the reads and the writes touch few cache lines per tile.

use super::elementwise::{MAX_DIMS, numel};

const TILE: usize = 8;

/// `out = transpose(x, perm)`; `out[i_0..i_r]` (output index) = `x[j]` with `j[perm[d]] = i_d`.
///
/// Panics if `perm` is not a permutation of `0..shape.len()` or the lengths do not match.
pub fn transpose<T: Copy + Send + Sync>(x: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    let r = shape.len();
    assert_eq!(perm.len(), r, "transpose: perm rank");
    assert_eq!(x.len(), numel(shape), "transpose: input length");
    assert_eq!(out.len(), x.len(), "transpose: output length");
    let mut seen = 0u128;
    for &p in perm {
        assert!(
            p < r && p < 128 && seen & (1 << p) == 0,
            "transpose: invalid perm {perm:?}"
        );
        seen |= 1 << p;
    }
    if x.is_empty() {
        return;
    }
    // Input strides, then coalesce in output order: keep (size, input stride) per output dim.
    let mut dims = [0usize; MAX_DIMS];
    let mut st = [0usize; MAX_DIMS];
    let mut rank = 0;
    let mut overflow = false;
    for &p in perm {
        let size = shape[p];
        if size == 1 {
            continue;
        }
        let stride: usize = shape[p + 1..].iter().product();
        if rank > 0 && st[rank - 1] == stride * size {
            // Output-adjacent dims that are also input-adjacent in order: merge.
            dims[rank - 1] *= size;
            st[rank - 1] = stride;
        } else if rank == MAX_DIMS {
            overflow = true;
            break;
        } else {
            dims[rank] = size;
            st[rank] = stride;
            rank += 1;
        }
    }
    if overflow {
        return transpose_slow(x, shape, perm, out);
    }
    if rank <= 1 {
        out.copy_from_slice(x);
        return;
    }
    // Large transposes: blocks of the outermost output dim in parallel. Output index i of that
    // dim is one contiguous block whose inputs all lie at offsets ≥ i·st[0].
    let block = out.len() / dims[0];
    crate::par::rows_mut(
        out,
        block,
        crate::par::MIN_ELEMS.div_ceil(block),
        |i0, out| {
            let mut d = dims;
            d[0] = out.len() / block;
            coalesced(&x[i0 * st[0]..], &d[..rank], &st[..rank], out);
        },
    );
}

/// The transpose of a coalesced walk (`rank >= 2` dims of the output with their input strides).
fn coalesced<T: Copy>(x: &[T], dims: &[usize], st: &[usize], out: &mut [T]) {
    let rank = dims.len();
    let inner = dims[rank - 1];
    if st[rank - 1] == 1 {
        // Rows contiguous in both: copy rows, walk the outer dims with a counter.
        walk(&dims[..rank - 1], &st[..rank - 1], |o, xo| {
            let o = o * inner;
            out[o..o + inner].copy_from_slice(&x[xo..xo + inner]);
        });
        return;
    }
    let rows = dims[rank - 2];
    let (sr, sc) = (st[rank - 2], st[rank - 1]);
    walk(&dims[..rank - 2], &st[..rank - 2], |o, xo| {
        let o = o * rows * inner;
        tile2d(&x[xo..], sr, sc, &mut out[o..o + rows * inner], rows, inner);
    });
}

/// Calls `f(outer_linear_index, input_offset)` for every index of the outer dims, in order.
fn walk(dims: &[usize], st: &[usize], mut f: impl FnMut(usize, usize)) {
    let r = dims.len();
    let mut idx = [0usize; MAX_DIMS];
    let mut off = 0;
    let mut lin = 0;
    loop {
        f(lin, off);
        lin += 1;
        let mut d = r;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            off += st[d];
            if idx[d] < dims[d] {
                break;
            }
            off -= st[d] * dims[d];
            idx[d] = 0;
        }
    }
}

/// `out[i*cols + j] = x[i*sr + j*sc]`, in TILE×TILE blocks.
fn tile2d<T: Copy>(x: &[T], sr: usize, sc: usize, out: &mut [T], rows: usize, cols: usize) {
    // The conv output layout change (NHWC → NCHW) and other plain 2-D transposes of 4-byte
    // elements: whole 8×8 tiles through AVX registers (24 shuffles per 64 elements instead of
    // 64 scalar gathers), edges below.
    #[cfg(target_arch = "x86_64")]
    if core::mem::size_of::<T>() == 4
        && sr == 1
        && rows >= TILE
        && cols >= TILE
        && crate::isa::Isa::current().resolve() >= crate::isa::Isa::Avx2
    {
        let (fr, fc) = (rows / TILE * TILE, cols / TILE * TILE);
        assert!(x.len() > (fc - 1) * sc + fr - 1 && out.len() >= rows * cols);
        // SAFETY: AVX2 (hence AVX) is present; T is 4 bytes and Copy, so moving its bits as
        // f32 lanes is a plain copy (unaligned loads/stores, no arithmetic). Tile (i0, j0)
        // reads x[(j0 + r)·sc + i0 .. +8] for r < 8 and writes out[(i0 + r)·cols + j0 .. +8],
        // inside both slices by the assert (i0 + 8 ≤ fr, j0 + 8 ≤ fc).
        unsafe {
            let (xp, op) = (x.as_ptr().cast::<f32>(), out.as_mut_ptr().cast::<f32>());
            for i0 in (0..fr).step_by(TILE) {
                for j0 in (0..fc).step_by(TILE) {
                    x86::t8x8(xp.add(j0 * sc + i0), sc, op.add(i0 * cols + j0), cols);
                }
            }
        }
        edges(x, sr, sc, out, rows, cols, fr, fc);
        return;
    }
    blocks(x, sr, sc, out, cols, 0..rows, 0..cols);
}

/// The parts of a 2-D transpose outside the full tiles `[0, fr) × [0, fc)`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
fn edges<T: Copy>(
    x: &[T],
    sr: usize,
    sc: usize,
    out: &mut [T],
    rows: usize,
    cols: usize,
    fr: usize,
    fc: usize,
) {
    blocks(x, sr, sc, out, cols, 0..fr, fc..cols);
    blocks(x, sr, sc, out, cols, fr..rows, 0..cols);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// 8×8 f32 transpose: `d[r·ld + c] = s[c·ls + r]`.
    ///
    /// # Safety
    /// CPU has AVX; `s` is readable for 8 rows of 8 floats at stride `ls`, `d` writable for 8
    /// rows of 8 floats at stride `ld`.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn t8x8(s: *const f32, ls: usize, d: *mut f32, ld: usize) {
        // SAFETY: the caller's contract covers every row read and written.
        unsafe {
            let r: [__m256; 8] = core::array::from_fn(|k| _mm256_loadu_ps(s.add(k * ls)));
            let t0 = _mm256_unpacklo_ps(r[0], r[1]);
            let t1 = _mm256_unpackhi_ps(r[0], r[1]);
            let t2 = _mm256_unpacklo_ps(r[2], r[3]);
            let t3 = _mm256_unpackhi_ps(r[2], r[3]);
            let t4 = _mm256_unpacklo_ps(r[4], r[5]);
            let t5 = _mm256_unpackhi_ps(r[4], r[5]);
            let t6 = _mm256_unpacklo_ps(r[6], r[7]);
            let t7 = _mm256_unpackhi_ps(r[6], r[7]);
            let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
            let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
            let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
            let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
            let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
            let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
            let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
            let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
            let o = [
                _mm256_permute2f128_ps::<0x20>(u0, u4),
                _mm256_permute2f128_ps::<0x20>(u1, u5),
                _mm256_permute2f128_ps::<0x20>(u2, u6),
                _mm256_permute2f128_ps::<0x20>(u3, u7),
                _mm256_permute2f128_ps::<0x31>(u0, u4),
                _mm256_permute2f128_ps::<0x31>(u1, u5),
                _mm256_permute2f128_ps::<0x31>(u2, u6),
                _mm256_permute2f128_ps::<0x31>(u3, u7),
            ];
            for (k, v) in o.iter().enumerate() {
                _mm256_storeu_ps(d.add(k * ld), *v);
            }
        }
    }
}

/// [`tile2d`]'s scalar form over rows `ri` × columns `ci` of an output with `cols` columns,
/// in TILE×TILE blocks.
#[allow(clippy::too_many_arguments)]
fn blocks<T: Copy>(
    x: &[T],
    sr: usize,
    sc: usize,
    out: &mut [T],
    cols: usize,
    ri: core::ops::Range<usize>,
    ci: core::ops::Range<usize>,
) {
    for i0 in ri.clone().step_by(TILE) {
        let i1 = (i0 + TILE).min(ri.end);
        for j0 in ci.clone().step_by(TILE) {
            let j1 = (j0 + TILE).min(ci.end);
            for i in i0..i1 {
                let orow = &mut out[i * cols + j0..i * cols + j1];
                for (j, o) in (j0..j1).zip(orow) {
                    *o = x[i * sr + j * sc];
                }
            }
        }
    }
}

/// Any rank: recompute each element's input offset by division (only for > MAX_DIMS dims left
/// after coalescing).
fn transpose_slow<T: Copy>(x: &[T], shape: &[usize], perm: &[usize], out: &mut [T]) {
    for (lin, o) in out.iter_mut().enumerate() {
        let mut rem = lin;
        let mut off = 0;
        for d in (0..perm.len()).rev() {
            let p = perm[d];
            let i = rem % shape[p];
            rem /= shape[p];
            off += i * shape[p + 1..].iter().product::<usize>();
        }
        *o = x[off];
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn naive(x: &[u32], shape: &[usize], perm: &[usize]) -> Vec<u32> {
        let r = shape.len();
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let mut out = vec![0; x.len()];
        for (lin, o) in out.iter_mut().enumerate() {
            let mut idx = vec![0; r];
            let mut rem = lin;
            for d in (0..r).rev() {
                idx[d] = rem % out_shape[d];
                rem /= out_shape[d];
            }
            let mut src = vec![0; r];
            for d in 0..r {
                src[perm[d]] = idx[d];
            }
            let mut off = 0;
            for d in 0..r {
                off = off * shape[d] + src[d];
            }
            *o = x[off];
        }
        out
    }

    fn check(shape: &[usize], perm: &[usize]) {
        let x: Vec<u32> = (0..numel(shape) as u32).collect();
        let mut out = vec![0; x.len()];
        transpose(&x, shape, perm, &mut out);
        assert_eq!(out, naive(&x, shape, perm), "{shape:?} {perm:?}");
        let mut slow = vec![0; x.len()];
        transpose_slow(&x, shape, perm, &mut slow);
        assert_eq!(slow, out);
    }

    #[test]
    fn perms() {
        check(&[], &[]);
        check(&[5], &[0]);
        check(&[3, 4], &[1, 0]);
        check(&[17, 33], &[1, 0]);
        check(&[1, 9], &[1, 0]);
        check(&[2, 3, 4], &[0, 2, 1]);
        check(&[2, 3, 4], &[2, 0, 1]);
        check(&[2, 3, 4], &[1, 2, 0]);
        check(&[2, 3, 4, 5], &[0, 2, 1, 3]);
        check(&[2, 3, 4, 5], &[0, 2, 3, 1]);
        check(&[2, 3, 4, 5], &[3, 2, 1, 0]);
        check(&[2, 3, 1, 4, 5], &[4, 0, 3, 2, 1]);
        check(&[3, 2, 4, 5, 2], &[1, 3, 0, 4, 2]);
        check(&[2, 3, 4, 5, 6], &[0, 1, 2, 3, 4]);
        check(&[2, 0, 3], &[2, 1, 0]);
        // Large enough to be split across threads (feature `rayon`): the attention reshapes
        // and a plain 2-D transpose.
        check(&[2, 128, 12, 32], &[0, 2, 1, 3]);
        check(&[2, 128, 12, 32], &[0, 2, 3, 1]);
        check(&[2, 128, 12, 32], &[3, 1, 2, 0]);
        check(&[300, 203], &[1, 0]);
        // 2-D transposes of 4-byte elements: whole 8×8 tiles (SIMD on x86_64) plus edges.
        check(&[8, 8], &[1, 0]);
        check(&[9, 16], &[1, 0]);
        check(&[16, 9], &[1, 0]);
        check(&[3, 64, 40], &[0, 2, 1]);
        check(&[2, 1, 77, 24], &[0, 3, 1, 2]);
        // 10 dims with full reversal: no merging, > MAX_DIMS -> slow path.
        check(
            &[2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
            &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        );
    }
}
