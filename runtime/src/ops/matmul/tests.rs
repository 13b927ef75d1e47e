//! Float matmul kernels against a naive reference, on every ISA.
extern crate std;
use super::*;
use std::vec;
use std::vec::Vec;

/// Deterministic values in [-1, 1).
fn data(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1 << 23) as f32 - 1.0
        })
        .collect()
}

/// f64 reference; returns (value, sum of |terms|) per output for the error bound.
fn reference(m: usize, k: usize, n: usize, a: &[f32], lda: usize, b: &[f32]) -> Vec<(f64, f64)> {
    let mut out = vec![(0.0, 0.0); m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut s_abs) = (0.0f64, 0.0f64);
            for kk in 0..k {
                let t = a[i * lda + kk] as f64 * b[kk * n + j] as f64;
                s += t;
                s_abs += t.abs();
            }
            out[i * n + j] = (s, s_abs);
        }
    }
    out
}

/// Recursive f32 summation of k products has error <= gamma_k * sum|terms| with
/// gamma_k ~ k*eps (Higham, Thm 3.1); +2 covers the bias add and the final rounding.
fn close(got: f32, want: f64, s_abs: f64, k: usize) -> bool {
    let tol = (k as f64 + 2.0) * f32::EPSILON as f64 * (s_abs + want.abs()) + 1e-30;
    (got as f64 - want).abs() <= tol
}

#[test]
#[cfg(feature = "alloc")]
fn sgemm_all_isas_and_edges() {
    let sizes = [1usize, 3, 15, 16, 17, 33, 100];
    for isa in Isa::all_available() {
        for &m in &[1usize, 3, 13, 17, 100] {
            for &k in &sizes {
                for &n in &sizes {
                    if m * k * n > 200_000 {
                        continue;
                    }
                    let lda = k + 3;
                    let ldc = n + 2;
                    let a = data(m * lda, (m * 31 + k) as u32);
                    let b = data(k * n, (k * 7 + n) as u32);
                    let bias = data(n, n as u32 + 5);
                    let relu = (m + n) % 2 == 0;
                    let transposed = k % 2 == 1;
                    let bt: Vec<f32> = if transposed {
                        (0..n * k).map(|i| b[(i % k) * n + i / k]).collect()
                    } else {
                        b.clone()
                    };
                    let with_bias = n % 3 != 0;
                    let packed =
                        PackedF32Owned::pack(&bt, k, n, transposed, with_bias.then_some(&bias[..]));
                    let mut out = vec![f32::NAN; m * ldc];
                    let act = if relu { FloatAct::Relu } else { FloatAct::None };
                    sgemm(isa, m, &a, lda, packed.as_ref(), act, &mut out, ldc);
                    let want = reference(m, k, n, &a, lda, &b);
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = out[i * ldc + j];
                            if j >= n {
                                assert!(got.is_nan(), "{isa} wrote past n");
                                continue;
                            }
                            let (mut w, s) = want[i * n + j];
                            if with_bias {
                                w += bias[j] as f64;
                            }
                            if relu {
                                w = w.max(0.0);
                            }
                            assert!(
                                close(got, w, s, k),
                                "{isa} m{m} k{k} n{n} [{i},{j}] {got} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }
}

fn matmul_ref(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
) -> (Vec<usize>, Vec<(f64, f64)>, usize) {
    // Promote, broadcast naively with explicit index math.
    let a_s: Vec<usize> = if a_shape.len() == 1 {
        vec![1, a_shape[0]]
    } else {
        a_shape.to_vec()
    };
    let b_s: Vec<usize> = if b_shape.len() == 1 {
        vec![b_shape[0], 1]
    } else {
        b_shape.to_vec()
    };
    let (m, k) = (a_s[a_s.len() - 2], a_s[a_s.len() - 1]);
    let n = b_s[b_s.len() - 1];
    let ab = &a_s[..a_s.len() - 2];
    let bb = &b_s[..b_s.len() - 2];
    let r = ab.len().max(bb.len());
    let al = |s: &[usize], d: usize| {
        if d + s.len() >= r {
            s[d + s.len() - r]
        } else {
            1
        }
    };
    let batch: Vec<usize> = (0..r).map(|d| al(ab, d).max(al(bb, d))).collect();
    let nb: usize = batch.iter().product();
    let mut out = Vec::new();
    for bi in 0..nb {
        let mut rem = bi;
        let mut idx = vec![0; r];
        for d in (0..r).rev() {
            idx[d] = rem % batch[d];
            rem /= batch[d];
        }
        let off = |s: &[usize]| {
            let mut o = 0;
            for d in 0..r {
                let sz = al(s, d);
                o = o * sz + if sz == 1 { 0 } else { idx[d] };
            }
            o
        };
        let (ao, bo) = (off(ab) * m * k, off(bb) * k * n);
        out.extend(reference(
            m,
            k,
            n,
            &a[ao..ao + m * k],
            k,
            &b[bo..bo + k * n],
        ));
    }
    let mut shape = batch;
    if a_shape.len() > 1 {
        shape.push(m);
    }
    if b_shape.len() > 1 {
        shape.push(n);
    }
    (shape, out, k)
}

#[test]
fn matmul_shapes_all_isas() {
    let cases: &[(&[usize], &[usize])] = &[
        (&[3, 5], &[5, 17]),
        (&[5], &[5, 33]),
        (&[4, 5], &[5]),
        (&[7], &[7]),
        (&[2, 3, 15, 16], &[16, 17]),
        (&[2, 1, 3, 4], &[3, 4, 33]),
        (&[1, 100], &[100, 100]),
        (&[17, 300], &[300, 3]),
        (&[2, 3, 0, 4], &[4, 5]),
        (&[3, 0], &[0, 5]),
        (&[1, 33, 16], &[2, 16, 1]),
    ];
    for isa in Isa::all_available() {
        for (ash, bsh) in cases {
            let a = data(ash.iter().product(), 3);
            let b = data(bsh.iter().product(), 4);
            let (shape, want, k) = matmul_ref(&a, ash, &b, bsh);
            let mut out = vec![f32::NAN; want.len()];
            matmul(isa, &a, ash, &b, bsh, &mut out, &shape);
            for (i, (&g, &(w, s))) in out.iter().zip(&want).enumerate() {
                assert!(close(g, w, s, k), "{isa} {ash:?}x{bsh:?} [{i}] {g} vs {w}");
            }
        }
    }
}
