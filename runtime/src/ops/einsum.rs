//! ONNX `Einsum` as one loop nest over every label of the equation (the compiler parses the
//! equation and passes each operand's stride per label: repeated labels — diagonals — add
//! their strides, broadcast dims have stride 0). Output labels are the outer loops, summed
//! labels the inner ones, so each output element is accumulated in a fixed order (the summed
//! labels' row-major order) on every ISA. Products are formed left to right over the operands.

use core::ops::{Add, Mul};

/// Most labels and operands an equation may have (fixed-size counters, no allocation).
pub const MAX_LABELS: usize = 52;
pub const MAX_OPERANDS: usize = 16;

/// `out[o] = Σ_summed Π_k inputs[k][Σ_l idx[l]·strides[k][l]]`. `sizes` has one entry per
/// label, the output's labels first (`n_out` of them, in output order); `out` is row-major
/// over them. Panics if the counts exceed [`MAX_LABELS`]/[`MAX_OPERANDS`], or an operand is
/// too short for its strides.
pub fn einsum<T: Copy + Add<Output = T> + Mul<Output = T>>(
    inputs: &[&[T]],
    strides: &[&[usize]],
    sizes: &[usize],
    n_out: usize,
    zero: T,
    out: &mut [T],
) {
    let nl = sizes.len();
    assert!(nl <= MAX_LABELS && inputs.len() <= MAX_OPERANDS && !inputs.is_empty());
    assert_eq!(inputs.len(), strides.len(), "einsum: strides per operand");
    assert!(
        strides.iter().all(|s| s.len() == nl),
        "einsum: strides per label"
    );
    assert_eq!(
        out.len(),
        sizes[..n_out].iter().product::<usize>(),
        "einsum: output length"
    );
    out.fill(zero);
    if sizes.contains(&0) {
        return;
    }
    let total: usize = sizes.iter().product();
    let inner: usize = sizes[n_out..].iter().product();
    let mut idx = [0usize; MAX_LABELS];
    let mut off = [0usize; MAX_OPERANDS];
    for step in 0..total {
        let mut p = inputs[0][off[0]];
        for k in 1..inputs.len() {
            p = p * inputs[k][off[k]];
        }
        let o = step / inner;
        out[o] = out[o] + p;
        // Odometer: advance the last label, carrying; offsets follow incrementally.
        let mut l = nl;
        while l > 0 {
            l -= 1;
            idx[l] += 1;
            for (k, s) in strides.iter().enumerate() {
                off[k] += s[l];
            }
            if idx[l] < sizes[l] {
                break;
            }
            for (k, s) in strides.iter().enumerate() {
                off[k] -= s[l] * sizes[l];
            }
            idx[l] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    /// Batch matmul `bij,bjk->bik` and a diagonal `ii->i` against direct loops.
    #[test]
    fn batch_matmul_and_diagonal() {
        let (b, i, j, k) = (2, 3, 4, 5);
        let x: std::vec::Vec<f64> = (0..b * i * j).map(|v| v as f64 * 0.5 - 3.0).collect();
        let y: std::vec::Vec<f64> = (0..b * j * k).map(|v| (v % 7) as f64 - 2.0).collect();
        // labels b, i, k (output), j (summed)
        let sx = [i * j, j, 0, 1];
        let sy = [j * k, 0, 1, k];
        let mut out = vec![0.0; b * i * k];
        einsum(&[&x, &y], &[&sx, &sy], &[b, i, k, j], 3, 0.0, &mut out);
        for bb in 0..b {
            for ii in 0..i {
                for kk in 0..k {
                    let want: f64 = (0..j)
                        .map(|jj| x[bb * i * j + ii * j + jj] * y[bb * j * k + jj * k + kk])
                        .sum();
                    assert_eq!(out[bb * i * k + ii * k + kk], want);
                }
            }
        }
        let m = [1i32, 2, 3, 4, 5, 6, 7, 8, 9];
        let mut d = [0i32; 3];
        einsum(&[&m], &[&[4]], &[3], 1, 0, &mut d);
        assert_eq!(d, [1, 5, 9]);
        // Full contraction to a scalar: Σ m.
        let mut s = [0i32; 1];
        einsum(&[&m], &[&[3, 1]], &[3, 3], 0, 0, &mut s);
        assert_eq!(s, [45]);
    }
}
