//! Data movement for shape ops computed at run time: Slice, Expand, fill (ConstantOfShape).
//! Shapes are given by generated code (already validated); no allocation.
use super::elementwise::MAX_DIMS;

/// Strided slice: for each axis `d`, output index `i` reads input index `start[d] + i·step[d]`
/// (steps may be negative). `out_shape[d]` is the number of elements taken on axis `d`.
pub fn slice<T: Copy>(
    x: &[T],
    shape: &[usize],
    starts: &[i64],
    steps: &[i64],
    out_shape: &[usize],
    out: &mut [T],
) {
    let r = shape.len();
    assert!(r <= MAX_DIMS && starts.len() == r && steps.len() == r && out_shape.len() == r);
    let n: usize = out_shape.iter().product();
    assert!(out.len() >= n);
    if n == 0 {
        return;
    }
    let mut strides = [0usize; MAX_DIMS];
    let mut s = 1;
    for d in (0..r).rev() {
        strides[d] = s;
        s *= shape[d];
    }
    // Base offset and per-axis signed step in elements.
    let mut base: i64 = 0;
    let mut dstep = [0i64; MAX_DIMS];
    for d in 0..r {
        base += starts[d] * strides[d] as i64;
        dstep[d] = steps[d] * strides[d] as i64;
    }
    if r == 0 {
        out[0] = x[base as usize];
        return;
    }
    let inner = out_shape[r - 1];
    let mut idx = [0usize; MAX_DIMS];
    let mut o = 0;
    loop {
        let mut off = base;
        for d in 0..r - 1 {
            off += idx[d] as i64 * dstep[d];
        }
        if steps[r - 1] == 1 {
            let off = off as usize;
            out[o..o + inner].copy_from_slice(&x[off..off + inner]);
        } else {
            for i in 0..inner {
                out[o + i] = x[(off + i as i64 * dstep[r - 1]) as usize];
            }
        }
        o += inner;
        // Advance the outer index counter.
        let mut d = r - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Broadcasts `x` (shape `x_shape`, right-aligned) to `out_shape` (ONNX Expand after the
/// output shape was computed).
pub fn expand<T: Copy>(x: &[T], x_shape: &[usize], out: &mut [T], out_shape: &[usize]) {
    super::elementwise::unary_broadcast(x, x_shape, out, out_shape);
}

/// Fills `out` with `v` (ConstantOfShape with a run-time shape).
pub fn fill<T: Copy>(out: &mut [T], v: T) {
    out.fill(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices() {
        let x: [i32; 12] = core::array::from_fn(|i| i as i32); // [3,4]
        let mut out = [0; 4];
        slice(&x, &[3, 4], &[1, 1], &[1, 1], &[2, 2], &mut out);
        assert_eq!(out, [5, 6, 9, 10]);
        let mut out = [0; 6];
        slice(&x, &[3, 4], &[2, 3], &[-1, -2], &[3, 2], &mut out);
        assert_eq!(out, [11, 9, 7, 5, 3, 1]);
    }

    #[test]
    fn expands() {
        let x = [1, 2, 3];
        let mut out = [0; 6];
        expand(&x, &[3], &mut out, &[2, 3]);
        assert_eq!(out, [1, 2, 3, 1, 2, 3]);
        let mut out = [0; 6];
        expand(&x, &[3, 1], &mut out, &[3, 2]);
        assert_eq!(out, [1, 1, 2, 2, 3, 3]);
    }
}
