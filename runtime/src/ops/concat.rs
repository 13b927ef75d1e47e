//! ONNX `Concat` along one axis and its inverse, one part of `Split`, for any element type.

/// Concatenates `inputs` (each `(data, shape)`, equal rank, equal dims except `axis`) along
/// `axis` into `out`. Panics on inconsistent shapes or lengths (codegen checks them).
pub fn concat<T: Copy>(inputs: &[(&[T], &[usize])], axis: usize, out: &mut [T]) {
    let Some(&(_, first)) = inputs.first() else {
        assert!(out.is_empty(), "concat: no inputs");
        return;
    };
    let r = first.len();
    assert!(axis < r, "concat: axis {axis} out of range for rank {r}");
    let outer: usize = first[..axis].iter().product();
    let inner: usize = first[axis + 1..].iter().product();
    let mut total_axis = 0;
    for &(d, s) in inputs {
        assert_eq!(s.len(), r, "concat: rank mismatch");
        assert!(
            s.iter()
                .enumerate()
                .all(|(i, &v)| i == axis || v == first[i]),
            "concat: shape {s:?} does not match {first:?} outside axis {axis}"
        );
        assert_eq!(d.len(), s.iter().product::<usize>(), "concat: input length");
        total_axis += s[axis];
    }
    assert_eq!(
        out.len(),
        outer * total_axis * inner,
        "concat: output length"
    );
    let mut o = 0;
    for b in 0..outer {
        for &(d, s) in inputs {
            let w = s[axis] * inner;
            out[o..o + w].copy_from_slice(&d[b * w..(b + 1) * w]);
            o += w;
        }
    }
}

/// One output of ONNX `Split`: with `x` viewed as `[outer][axis_len][inner]`, copies the
/// `len` entries of the axis starting at `start` into `out` (`outer · len · inner` elements).
/// Panics if the part lies outside the axis or the lengths do not match (codegen checks them).
pub fn split_part<T: Copy>(
    x: &[T],
    outer: usize,
    axis_len: usize,
    inner: usize,
    start: usize,
    len: usize,
    out: &mut [T],
) {
    assert!(start + len <= axis_len, "split: part outside the axis");
    assert_eq!(x.len(), outer * axis_len * inner, "split: input length");
    assert_eq!(out.len(), outer * len * inner, "split: output length");
    let (w, src) = (len * inner, axis_len * inner);
    if w == 0 {
        return;
    }
    for (o, row) in out.chunks_exact_mut(w).zip(x.chunks_exact(src)) {
        o.copy_from_slice(&row[start * inner..start * inner + w]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concats() {
        let a = [1, 2, 3, 4]; // [2, 2]
        let b = [5, 6]; // [2, 1]
        let e: [i32; 0] = []; // [2, 0]
        let mut out = [0; 6];
        concat(&[(&a, &[2, 2]), (&e, &[2, 0]), (&b, &[2, 1])], 1, &mut out);
        assert_eq!(out, [1, 2, 5, 3, 4, 6]);
        let c = [7, 8];
        concat(&[(&a, &[2, 2]), (&c, &[1, 2])], 0, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 7, 8]);
        let mut one = [0; 3];
        concat(&[(&[9][..], &[1][..]), (&[1, 2], &[2])], 0, &mut one);
        assert_eq!(one, [9, 1, 2]);
    }

    #[test]
    fn splits() {
        let x: [i32; 12] = core::array::from_fn(|i| i as i32); // [2, 3, 2]
        let mut out = [0; 8];
        split_part(&x, 2, 3, 2, 1, 2, &mut out);
        assert_eq!(out, [2, 3, 4, 5, 8, 9, 10, 11]);
        let mut out = [0; 4];
        split_part(&x, 2, 3, 2, 0, 1, &mut out);
        assert_eq!(out, [0, 1, 6, 7]);
        split_part(&x, 2, 3, 2, 3, 0, &mut []);
    }
}
