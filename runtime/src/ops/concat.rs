//! ONNX `Concat` along one axis, for any element type.

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
}
