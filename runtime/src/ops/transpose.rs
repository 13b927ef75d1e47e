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
    for i0 in (0..rows).step_by(TILE) {
        let i1 = (i0 + TILE).min(rows);
        for j0 in (0..cols).step_by(TILE) {
            let j1 = (j0 + TILE).min(cols);
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
        // 10 dims with full reversal: no merging, > MAX_DIMS -> slow path.
        check(
            &[2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
            &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
        );
    }
}
