//! Selection along one axis: ONNX `Hardmax` (one-hot of the first maximum) and `TopK` (the k
//! largest or smallest values and their indices, sorted, ties to the lower index as ONNX
//! specifies). The tensor is viewed as `[outer, len, inner]` around the axis. Plain loops on
//! every ISA, no allocation.

use core::cmp::Ordering;

/// A total order on partially ordered values: NaN above everything (numpy's sort order), NaNs
/// equal to each other.
#[inline]
fn total_cmp<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    match a.partial_cmp(b) {
        Some(o) => o,
        None => {
            let (na, nb) = (a.partial_cmp(a).is_none(), b.partial_cmp(b).is_none());
            na.cmp(&nb)
        }
    }
}

/// `out` = 1 at the first maximum of each row along the axis, 0 elsewhere.
pub fn hardmax<T: Copy + PartialOrd>(
    x: &[T],
    out: &mut [T],
    (outer, len, inner): (usize, usize, usize),
    zero: T,
    one: T,
) {
    assert_eq!(x.len(), outer * len * inner, "hardmax: input length");
    assert_eq!(out.len(), x.len(), "hardmax: output length");
    out.fill(zero);
    if len == 0 {
        return;
    }
    for o in 0..outer {
        let base = o * len * inner;
        for i in 0..inner {
            let mut best = 0;
            for j in 1..len {
                let (v, b) = (&x[base + j * inner + i], &x[base + best * inner + i]);
                if total_cmp(v, b) == Ordering::Greater {
                    best = j;
                }
            }
            out[base + best * inner + i] = one;
        }
    }
}

/// The `k` largest (or smallest) values of each row along the axis and their indices, in
/// order (largest first, or smallest first); equal values keep the lower index first.
/// `values` and `indices` are `[outer, k, inner]`. Panics if a length does not match or
/// `k > len`.
#[allow(clippy::too_many_arguments)]
pub fn top_k<T: Copy + PartialOrd>(
    x: &[T],
    (outer, len, inner): (usize, usize, usize),
    k: usize,
    largest: bool,
    values: &mut [T],
    indices: &mut [i64],
) {
    assert_eq!(x.len(), outer * len * inner, "top_k: input length");
    assert!(k <= len, "top_k: k = {k} exceeds the axis length {len}");
    assert_eq!(values.len(), outer * k * inner, "top_k: values length");
    assert_eq!(indices.len(), values.len(), "top_k: indices length");
    // `a` comes strictly before `b` in the result.
    let before = |a: &T, b: &T| {
        let o = total_cmp(a, b);
        if largest {
            o == Ordering::Greater
        } else {
            o == Ordering::Less
        }
    };
    if k == 0 {
        return;
    }
    for o in 0..outer {
        let (xb, ob) = (o * len * inner, o * k * inner);
        for i in 0..inner {
            let at = |j: usize| ob + j * inner + i;
            // Insertion into the sorted prefix of length `n`: scanning in index order and
            // inserting only before strictly worse entries keeps ties in index order.
            let mut n = 0;
            for j in 0..len {
                let v = x[xb + j * inner + i];
                if n == k && !before(&v, &values[at(k - 1)]) {
                    continue;
                }
                let mut p = if n < k { n } else { k - 1 };
                while p > 0 && before(&v, &values[at(p - 1)]) {
                    values[at(p)] = values[at(p - 1)];
                    indices[at(p)] = indices[at(p - 1)];
                    p -= 1;
                }
                values[at(p)] = v;
                indices[at(p)] = j as i64;
                n = (n + 1).min(k);
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
    fn hardmax_first_maximum() {
        // [2, 3] along axis 1 and along axis 0.
        let x = [1.0f32, 3.0, 3.0, 5.0, 2.0, 5.0];
        let mut y = [9.0f32; 6];
        hardmax(&x, &mut y, (2, 3, 1), 0.0, 1.0);
        assert_eq!(y, [0.0, 1.0, 0.0, 1.0, 0.0, 0.0]);
        hardmax(&x, &mut y, (1, 2, 3), 0.0, 1.0);
        assert_eq!(y, [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
    }

    /// Against a stable sort of (value, index) pairs, on rows with many ties.
    #[test]
    fn top_k_matches_stable_sort() {
        let x: Vec<i32> = (0..60).map(|i| (i * 7 % 11) % 5).collect();
        for (outer, len, inner) in [(3, 20, 1), (2, 10, 3), (1, 60, 1)] {
            for k in [0, 1, 3, len] {
                for largest in [true, false] {
                    let mut v = vec![0i32; outer * k * inner];
                    let mut ix = vec![0i64; v.len()];
                    top_k(&x, (outer, len, inner), k, largest, &mut v, &mut ix);
                    for o in 0..outer {
                        for i in 0..inner {
                            let mut row: Vec<(i32, usize)> = (0..len)
                                .map(|j| (x[o * len * inner + j * inner + i], j))
                                .collect();
                            if largest {
                                row.sort_by_key(|a| core::cmp::Reverse(a.0)); // stable: ties by index
                            } else {
                                row.sort_by_key(|a| a.0);
                            }
                            for (j, &(want_v, want_i)) in row[..k].iter().enumerate() {
                                let at = o * k * inner + j * inner + i;
                                assert_eq!((v[at], ix[at]), (want_v, want_i as i64));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn top_k_nan_is_largest() {
        let x = [1.0f32, f32::NAN, 3.0, 2.0];
        let (mut v, mut ix) = ([0.0f32; 2], [0i64; 2]);
        top_k(&x, (1, 4, 1), 2, true, &mut v, &mut ix);
        assert!(v[0].is_nan() && v[1] == 3.0 && ix == [1, 2]);
        top_k(&x, (1, 4, 1), 2, false, &mut v, &mut ix);
        assert_eq!((v, ix), ([1.0, 2.0], [0, 3]));
    }
}
