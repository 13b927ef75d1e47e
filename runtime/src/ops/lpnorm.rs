//! ONNX `LpNormalization`: `x / ‖x‖_p` along one axis (`p` 1 or 2), the tensor viewed as
//! `[outer, len, inner]`. The norm is accumulated in f64 and a zero norm gives 0 (not NaN), as
//! the ONNX reference does. Plain loops, the same bits on every ISA.

use super::math::sqrt_f64;

macro_rules! lp_normalize_impl {
    ($name:ident, $t:ty) => {
        /// `out = x / ‖x‖_p` along the axis of `(outer, len, inner)`; `p` is 1 or 2.
        pub fn $name(x: &[$t], out: &mut [$t], (outer, len, inner): (usize, usize, usize), p: u32) {
            assert_eq!(x.len(), outer * len * inner, "lp_normalize: input length");
            assert_eq!(out.len(), x.len(), "lp_normalize: output length");
            assert!(p == 1 || p == 2, "lp_normalize: p must be 1 or 2");
            for o in 0..outer {
                let base = o * len * inner;
                for i in 0..inner {
                    let mut acc = 0.0f64;
                    for j in 0..len {
                        let v = x[base + j * inner + i] as f64;
                        acc += if p == 1 { v.abs() } else { v * v };
                    }
                    let norm = if p == 1 { acc } else { sqrt_f64(acc) };
                    for j in 0..len {
                        let at = base + j * inner + i;
                        out[at] = if norm == 0.0 {
                            0.0
                        } else {
                            (x[at] as f64 / norm) as $t
                        };
                    }
                }
            }
        }
    };
}

lp_normalize_impl!(lp_normalize, f32);
lp_normalize_impl!(lp_normalize_f64, f64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l1_and_l2_along_an_axis() {
        // [2, 2] along axis 0 (inner 2) and axis 1.
        let x = [3.0f32, -1.0, 4.0, 0.0];
        let mut y = [0.0f32; 4];
        lp_normalize(&x, &mut y, (1, 2, 2), 2);
        assert_eq!(y, [0.6, -1.0, 0.8, 0.0]);
        lp_normalize(&x, &mut y, (2, 2, 1), 1);
        assert_eq!(y, [0.75, -0.25, 1.0, 0.0]);
        let mut z = [1.0f64; 2];
        lp_normalize_f64(&[0.0, 0.0], &mut z, (1, 2, 1), 2);
        assert_eq!(z, [0.0, 0.0]);
    }
}
