//! ONNX Gemm for the cases compile-time packing cannot take (B computed at run time, transA,
//! or a C that is not a per-column bias): `out = alpha·op(A)·op(B) + beta·C`.
//! Prepacked constant-weight Gemms never come here; they are `matmul::sgemm`.
use crate::isa::Isa;

/// `a` is \[m,k\] (or \[k,m\] if `trans_a`), `b` is \[k,n\] (or \[n,k\] if `trans_b`), `c` broadcasts
/// to \[m,n\] (unidirectionally). Accumulates in f32 in k order.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    _isa: Isa,
    trans_a: bool,
    trans_b: bool,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: Option<(&[f32], &[usize])>,
    out: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && out.len() >= m * n,
        "gemm: buffers too small"
    );
    let (sam, sak) = if trans_a { (1, m) } else { (k, 1) };
    let (sbk, sbn) = if trans_b { (1, k) } else { (n, 1) };
    // C broadcasting: strides 0 along broadcast dims.
    let (scm, scn) = match c {
        Some((cd, cs)) => {
            let (cm, cn) = match cs.len() {
                0 => (1, 1),
                1 => (1, cs[0]),
                _ => (cs[cs.len() - 2], cs[cs.len() - 1]),
            };
            assert!(cd.len() >= cm * cn, "gemm: C too small");
            (if cm == 1 { 0 } else { cn }, if cn == 1 { 0 } else { 1 })
        }
        None => (0, 0),
    };
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * sam + p * sak] * b[p * sbk + j * sbn];
            }
            let mut v = alpha * acc;
            if let Some((cd, _)) = c {
                v += beta * cd[i * scm + j * scn];
            }
            out[i * n + j] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposes_and_broadcast_c() {
        // A = [[1,2],[3,4]] given transposed; B = [[1,0],[0,1]] given transposed; C = [10, 20].
        let a_t = [1.0, 3.0, 2.0, 4.0];
        let b_t = [1.0, 0.0, 0.0, 1.0];
        let c = [10.0, 20.0];
        let mut out = [0.0; 4];
        gemm(
            Isa::Scalar,
            true,
            true,
            2,
            2,
            2,
            2.0,
            &a_t,
            &b_t,
            0.5,
            Some((&c, &[2])),
            &mut out,
        );
        assert_eq!(out, [2.0 + 5.0, 4.0 + 10.0, 6.0 + 5.0, 8.0 + 10.0]);
        // Column C [m,1].
        let c2 = [1.0, 2.0];
        gemm(
            Isa::Scalar,
            true,
            true,
            2,
            2,
            2,
            1.0,
            &a_t,
            &b_t,
            1.0,
            Some((&c2, &[2, 1])),
            &mut out,
        );
        assert_eq!(out, [2.0, 3.0, 5.0, 6.0]);
    }
}
