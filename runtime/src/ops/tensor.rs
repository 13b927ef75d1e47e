//! Tensor construction and rearrangement ops of the standard set: Range, Trilu, Tile, EyeLike,
//! OneHot, DepthToSpace/SpaceToDepth. Scalar, generic over the element type; the same
//! functions fold constants at compile time, so folded and run-time results agree.

use super::cast::CastTo;

/// Element types `Range` produces: `start + i·delta`, integers wrapping.
pub trait Step: Copy {
    fn nth(start: Self, delta: Self, i: usize) -> Self;
}

macro_rules! step_int {
    ($($t:ty),*) => {$(
        impl Step for $t {
            fn nth(start: Self, delta: Self, i: usize) -> Self {
                start.wrapping_add(delta.wrapping_mul(i as $t))
            }
        }
    )*};
}
step_int!(i16, i32, i64);

impl Step for f32 {
    fn nth(start: Self, delta: Self, i: usize) -> Self {
        start + i as f32 * delta
    }
}

impl Step for f64 {
    fn nth(start: Self, delta: Self, i: usize) -> Self {
        start + i as f64 * delta
    }
}

/// ONNX `Range`: `out[i] = start + i·delta` (the caller sizes `out` from start, limit, delta).
pub fn range<T: Step>(start: T, delta: T, out: &mut [T]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = T::nth(start, delta, i);
    }
}

/// ONNX `Trilu` over the last two axes of `shape` (rank ≥ 2): keeps `x[.., i, j]` where
/// `j − i ≥ k` (`upper`) or `j − i ≤ k` (lower), zero elsewhere.
pub fn trilu<T: Copy + Default>(x: &[T], shape: &[usize], k: i64, upper: bool, out: &mut [T]) {
    let r = shape.len();
    let (rows, cols) = (shape[r - 2], shape[r - 1]);
    let per = rows * cols;
    if per == 0 {
        return;
    }
    for (xm, om) in x.chunks_exact(per).zip(out.chunks_exact_mut(per)) {
        for i in 0..rows {
            for j in 0..cols {
                let d = j as i64 - i as i64;
                let keep = if upper { d >= k } else { d <= k };
                om[i * cols + j] = if keep { xm[i * cols + j] } else { T::default() };
            }
        }
    }
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> [usize; 8] {
    let mut s = [0; 8];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        s[i] = acc;
        acc *= shape[i];
    }
    s
}

/// ONNX `Tile` (rank ≤ 8): `out` has shape `shape[i]·repeats[i]`; element `o` reads
/// `x[o_i mod shape[i]]`.
pub fn tile<T: Copy>(x: &[T], shape: &[usize], repeats: &[usize], out: &mut [T]) {
    let r = shape.len();
    let mut oshape = [0usize; 8];
    for i in 0..r {
        oshape[i] = shape[i] * repeats[i];
    }
    let xs = strides(shape);
    let mut idx = [0usize; 8];
    for o in out.iter_mut() {
        let mut src = 0;
        for i in 0..r {
            src += (idx[i] % shape[i]) * xs[i];
        }
        *o = x[src];
        for i in (0..r).rev() {
            idx[i] += 1;
            if idx[i] < oshape[i] {
                break;
            }
            idx[i] = 0;
        }
    }
}

/// ONNX `EyeLike` of a `rows × cols` matrix: ones on diagonal `k`, zeros elsewhere.
pub fn eye_like<T: Copy>(rows: usize, cols: usize, k: i64, zero: T, one: T, out: &mut [T]) {
    for i in 0..rows {
        for j in 0..cols {
            out[i * cols + j] = if j as i64 - i as i64 == k { one } else { zero };
        }
    }
}

/// ONNX `OneHot`: output `outer × depth × inner` (the depth axis inserted at `axis`);
/// `indices` holds `outer × inner` values (any numeric type, converted as `Cast` to int64
/// does) in `[-depth, depth)`, negative ones counting from the end; out-of-range indices give
/// an all-`off` row, as in the spec.
pub fn one_hot<I: Copy + CastTo<i64>, T: Copy>(
    indices: &[I],
    outer: usize,
    inner: usize,
    depth: usize,
    off: T,
    on: T,
    out: &mut [T],
) {
    out.fill(off);
    let d = depth as i64;
    for b in 0..outer {
        for i in 0..inner {
            let mut v: i64 = indices[b * inner + i].cast_to();
            if v < 0 {
                v += d;
            }
            if (0..d).contains(&v) {
                out[(b * depth + v as usize) * inner + i] = on;
            }
        }
    }
}

/// ONNX `DepthToSpace` on NCHW: `[n, c, h, w]` → `[n, c/b², h·b, w·b]`; `dcr` (DCR mode):
/// the channel is `(bi·b + bj)·c' + ci`, else (CRD) `ci·b² + bi·b + bj`.
pub fn depth_to_space<T: Copy>(x: &[T], shape: [usize; 4], b: usize, dcr: bool, out: &mut [T]) {
    let [n, c, h, w] = shape;
    let co = c / (b * b);
    let (ho, wo) = (h * b, w * b);
    for ni in 0..n {
        for ci in 0..co {
            for y in 0..ho {
                for xo in 0..wo {
                    let (bi, bj) = (y % b, xo % b);
                    let src_c = if dcr {
                        (bi * b + bj) * co + ci
                    } else {
                        ci * b * b + bi * b + bj
                    };
                    let src = ((ni * c + src_c) * h + y / b) * w + xo / b;
                    out[((ni * co + ci) * ho + y) * wo + xo] = x[src];
                }
            }
        }
    }
}

/// ONNX `SpaceToDepth` on NCHW, the inverse of `depth_to_space`: `[n, c, h, w]` →
/// `[n, c·b², h/b, w/b]`; output channel `(bi·b + bj)·c + ci` (DCR) or `ci·b² + bi·b + bj`
/// (CRD).
pub fn space_to_depth<T: Copy>(x: &[T], shape: [usize; 4], b: usize, dcr: bool, out: &mut [T]) {
    let [n, c, h, w] = shape;
    let (ho, wo) = (h / b, w / b);
    let co = c * b * b;
    for ni in 0..n {
        for oc in 0..co {
            let (blk, ci) = if dcr {
                (oc / c, oc % c)
            } else {
                (oc % (b * b), oc / (b * b))
            };
            let (bi, bj) = (blk / b, blk % b);
            for y in 0..ho {
                for xo in 0..wo {
                    let src = ((ni * c + ci) * h + y * b + bi) * w + xo * b + bj;
                    out[((ni * co + oc) * ho + y) * wo + xo] = x[src];
                }
            }
        }
    }
}

/// ONNX `CumSum` / `CumProd` over the middle axis of `x` viewed as `[outer][len][inner]`:
/// `out[k] = f(f(id, x[0]), …, x[k])` along the axis (`exclusive`: up to `x[k-1]`, so the
/// first is `id`; `reverse`: from the end of the axis). `f` is the sum or product (wrapping
/// for integers).
#[allow(clippy::too_many_arguments)]
pub fn cumulate<T: Copy>(
    x: &[T],
    (outer, len, inner): (usize, usize, usize),
    exclusive: bool,
    reverse: bool,
    id: T,
    f: impl Fn(T, T) -> T,
    out: &mut [T],
) {
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = id;
            for s in 0..len {
                let k = if reverse { len - 1 - s } else { s };
                let at = (o * len + k) * inner + i;
                if exclusive {
                    out[at] = acc;
                    acc = f(acc, x[at]);
                } else {
                    acc = f(acc, x[at]);
                    out[at] = acc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_counts_from_start() {
        let mut o = [0i32; 4];
        range(10, -3, &mut o);
        assert_eq!(o, [10, 7, 4, 1]);
        let mut f = [0f32; 3];
        range(1.0, 0.5, &mut f);
        assert_eq!(f, [1.0, 1.5, 2.0]);
    }

    #[test]
    fn trilu_keeps_the_band() {
        let x: [i32; 9] = core::array::from_fn(|i| i as i32 + 1);
        let mut o = [0; 9];
        trilu(&x, &[3, 3], 0, true, &mut o);
        assert_eq!(o, [1, 2, 3, 0, 5, 6, 0, 0, 9]);
        trilu(&x, &[3, 3], -1, false, &mut o);
        assert_eq!(o, [0, 0, 0, 4, 0, 0, 7, 8, 0]);
    }

    #[test]
    fn tile_repeats_each_axis() {
        let mut o = [0; 8];
        tile(&[1, 2], &[1, 2], &[2, 2], &mut o);
        assert_eq!(o, [1, 2, 1, 2, 1, 2, 1, 2]);
        let mut o = [0; 4];
        tile(&[1, 2], &[2, 1], &[1, 2], &mut o);
        assert_eq!(o, [1, 1, 2, 2]);
    }

    #[test]
    fn one_hot_and_eye() {
        let mut o = [0; 6];
        one_hot(&[1i64, -1], 2, 1, 3, 0, 5, &mut o);
        assert_eq!(o, [0, 5, 0, 0, 0, 5]);
        let mut e = [0; 6];
        eye_like(2, 3, 1, 0, 1, &mut e);
        assert_eq!(e, [0, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn depth_space_round_trip() {
        // DCR DepthToSpace inverts SpaceToDepth.
        let x: [i32; 32] = core::array::from_fn(|i| i as i32);
        let mut s = [0; 32];
        space_to_depth(&x, [1, 2, 4, 4], 2, true, &mut s);
        let mut back = [0; 32];
        depth_to_space(&s, [1, 8, 2, 2], 2, true, &mut back);
        assert_eq!(back.as_slice(), x.as_slice());
        space_to_depth(&x, [1, 2, 4, 4], 2, false, &mut s);
        depth_to_space(&s, [1, 8, 2, 2], 2, false, &mut back);
        assert_eq!(back.as_slice(), x.as_slice());
    }

    /// Against running sums and products written out by hand.
    #[test]
    fn cumulate_forward_reverse_exclusive() {
        let x = [1i32, 2, 3, 4, 5, 6]; // [2][3]
        let mut o = [0i32; 6];
        cumulate(&x, (1, 2, 3), false, false, 0, |a, b| a + b, &mut o);
        assert_eq!(o, [1, 2, 3, 5, 7, 9]); // axis 0
        cumulate(&x, (2, 3, 1), true, false, 0, |a, b| a + b, &mut o);
        assert_eq!(o, [0, 1, 3, 0, 4, 9]);
        cumulate(&x, (2, 3, 1), false, true, 1, |a, b| a * b, &mut o);
        assert_eq!(o, [6, 6, 3, 120, 30, 6]);
        cumulate(&x, (2, 3, 1), true, true, 1, |a, b| a * b, &mut o);
        assert_eq!(o, [6, 3, 1, 30, 6, 1]);
    }
}
