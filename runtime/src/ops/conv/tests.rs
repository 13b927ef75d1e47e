//! Every convolution path against the direct-loop references, and those against naive
//! loops written here from the ONNX definition.
use super::*;
use crate::pack::PackedI8Owned;
use crate::quantize::{dynamic_qparams, quantize_u8};
use std::vec;
use std::vec::Vec;

/// Deterministic pseudo-random values in [-1, 1).
fn vals(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn geoms() -> Vec<ConvGeom> {
    let base = ConvGeom {
        batch: 2,
        c_in: 8,
        h: 9,
        w: 11,
        c_out: 12,
        oh: 0,
        ow: 0,
        kh: 3,
        kw: 3,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        ph: 1,
        pw: 1,
        groups: 1,
    };
    let mut v = Vec::new();
    for (kh, kw, s, d, p, groups, c_out) in [
        (3, 3, 1, 1, 1, 1, 12),
        (1, 1, 1, 1, 0, 1, 12),
        (3, 3, 2, 1, 1, 1, 12),
        (5, 5, 2, 2, 3, 1, 12),
        (3, 3, 1, 1, 1, 2, 12),
        (3, 3, 1, 1, 1, 8, 8),
        (3, 3, 2, 1, 1, 8, 16),
        (7, 1, 1, 1, 0, 1, 5),
        (1, 7, 3, 1, 2, 4, 4),
    ] {
        let mut g = ConvGeom {
            kh,
            kw,
            sh: s,
            sw: s,
            dh: d,
            dw: d,
            ph: p,
            pw: p,
            groups,
            c_out,
            ..base
        };
        // Symmetric padding (end = begin).
        g.oh = (g.h + 2 * p - ((kh - 1) * d + 1)) / s + 1;
        g.ow = (g.w + 2 * p - ((kw - 1) * d + 1)) / s + 1;
        v.push(g);
    }
    // An RGB stem (7×7/2, 3 channels: 21-byte runs) on a wider image, so that rows have
    // interior pixels between the padded borders.
    v.push(ConvGeom {
        c_in: 3,
        w: 19,
        c_out: 5,
        oh: 5,
        ow: 10,
        kh: 7,
        kw: 7,
        sh: 2,
        sw: 2,
        ph: 3,
        pw: 3,
        ..base
    });
    v
}

/// ONNX weights [c_out][cg][kh][kw] → the int8 GEMM's B per group: [K = (ky,kx,c)][og].
fn gemm_weights(g: &ConvGeom, w: &[i8], grp: usize) -> Vec<i8> {
    let (cg, og, k) = (g.cg(), g.og(), g.k());
    let mut b = vec![0i8; k * og];
    for o in 0..og {
        let co = grp * og + o;
        for c in 0..cg {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let kk = (ky * g.kw + kx) * cg + c;
                    b[kk * og + o] = w[((co * cg + c) * g.kh + ky) * g.kw + kx];
                }
            }
        }
    }
    b
}

#[test]
fn row_terms_match_definition() {
    for k in [4, 8, 16, 24, 40, 96, 100, 200] {
        for rows in [1, 2, 5] {
            let a: Vec<u8> = (0..rows * k).map(|i| (i * 97 % 256) as u8).collect();
            let mut rt = vec![0i32; rows];
            row_terms(&a, rows, k, 9, &mut rt);
            for r in 0..rows {
                let want: i32 =
                    a[r * k..(r + 1) * k].iter().map(|&v| v as i32).sum::<i32>() - 9 * k as i32;
                assert_eq!(rt[r], want, "k {k} rows {rows}");
            }
        }
    }
}

#[test]
fn byte_transpose_matches_definition() {
    for rows in [1, 2, 3, 4, 5, 16, 17, 33] {
        for cols in [1, 7, 16, 40, 100] {
            let src: Vec<u8> = (0..rows * cols).map(|i| (i * 37 % 251) as u8).collect();
            let mut dst = vec![0u8; rows * cols];
            transpose_u8(&src, rows, cols, &mut dst);
            for i in 0..rows {
                for j in 0..cols {
                    assert_eq!(dst[j * rows + i], src[i * cols + j], "{rows}×{cols}");
                }
            }
        }
    }
}

#[test]
fn int8_paths_match_conv_integer_reference() {
    for g in geoms() {
        let x = vals(g.input_len(), 7);
        let qp = dynamic_qparams(&x);
        let mut xq = vec![0u8; x.len()];
        quantize_u8(&x, qp, &mut xq);
        let w: Vec<i8> = vals(g.c_out * g.k(), 3)
            .iter()
            .map(|v| (v * 127.0) as i8)
            .collect();
        let mut reference = vec![0i32; g.output_len()];
        conv_integer_ref(&g, &xq, qp.zero_point as i32, &w, &[0], &mut reference);
        let wscale = 0.01f32;
        let expect: Vec<f32> = reference
            .iter()
            .map(|&v| v as f32 * (qp.scale * wscale))
            .collect();
        for isa in Isa::all_available() {
            // GEMM path: quantize NHWC, im2col, qgemm per group, NHWC → NCHW.
            let mut q = vec![0u8; x.len()];
            quantize_nhwc(isa, &x, g.batch, g.c_in, g.h * g.w, qp, &mut q);
            let (rows, pk, og) = (g.rows(), padded_k(g.k()), g.og());
            let mut a = vec![0u8; rows * pk];
            let mut rt = vec![0i32; rows];
            let mut nhwc = vec![0f32; rows * g.c_out];
            for grp in 0..g.groups {
                im2col_u8(&g, grp, &q, qp.zero_point, &mut a, Some(&mut rt));
                // Without row terms (symmetric weights): the same A.
                let mut a2 = vec![1u8; rows * pk];
                im2col_u8(&g, grp, &q, qp.zero_point, &mut a2, None);
                assert!(a2 == a, "A without row terms differs");
                let b = gemm_weights(&g, &w, grp);
                let packed = PackedI8Owned::pack(
                    crate::pack::Weights::I8(&b),
                    g.k(),
                    og,
                    &[0],
                    &[wscale],
                    None,
                );
                let p = crate::gemm::QGemm {
                    m: rows,
                    a: &a,
                    row_term: &rt,
                    a_zero_point: qp.zero_point as i32,
                    a_scale: qp.scale,
                    b: packed.as_ref(),
                    act: Activation::None,
                };
                crate::gemm::qgemm_f32(isa, &p, &mut nhwc[grp * og..], g.c_out);
            }
            let mut y = vec![0f32; g.output_len()];
            crate::ops::transpose::transpose(
                &nhwc,
                &[g.batch, g.pixels(), g.c_out],
                &[0, 2, 1],
                &mut y,
            );
            assert_eq!(y, expect, "gemm path {g:?} {isa:?}");
            // Depthwise path.
            if g.cg() == 1 {
                let wc: Vec<f32> = w.iter().map(|&v| v as f32).collect();
                let mut y = vec![0f32; g.output_len()];
                depthwise(
                    isa,
                    &g,
                    &xq,
                    qp.zero_point as f32,
                    &wc,
                    Some((qp.scale, &[wscale])),
                    None,
                    Activation::None,
                    &mut y,
                );
                assert_eq!(y, expect, "depthwise {g:?} {isa:?}");
            }
        }
    }
}

#[test]
fn float_paths_match_reference() {
    for g in geoms() {
        let x = vals(g.input_len(), 11);
        let w = vals(g.c_out * g.k(), 5);
        let bias = vals(g.c_out, 9);
        let mut reference = vec![0f32; g.output_len()];
        conv_ref_f32(&g, &x, &w, Some(&bias), &mut reference);
        let relu: Vec<f32> = reference
            .iter()
            .map(|&v| Activation::Relu.apply(v))
            .collect();
        for isa in Isa::all_available() {
            let mut col = vec![0f32; g.pixels().div_ceil(16) * 16 * g.k()];
            let mut y = vec![0f32; g.output_len()];
            conv_f32_gemm(
                isa,
                &g,
                &x,
                &w,
                Some(&bias),
                Activation::Relu,
                &mut col,
                &mut y,
            );
            for (a, b) in y.iter().zip(&relu) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "gemm {g:?} {isa:?}: {a} vs {b}"
                );
            }
            if g.cg() == 1 {
                let mut y = vec![0f32; g.output_len()];
                depthwise(
                    isa,
                    &g,
                    &x,
                    0.0,
                    &w,
                    None,
                    Some(&bias),
                    Activation::Relu,
                    &mut y,
                );
                for (a, b) in y.iter().zip(&relu) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "dw {g:?} {isa:?}: {a} vs {b}"
                    );
                }
            }
        }
    }
}

/// ConvTranspose by its definition (scatter of every input pixel × kernel tap).
fn conv_transpose_ref(g: &ConvGeom, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (cg, og) = (g.cg(), g.og());
    y.fill(0.0);
    for b in 0..g.batch {
        for ci in 0..g.c_in {
            let grp = ci / cg;
            for o in 0..og {
                let co = grp * og + o;
                for iy in 0..g.h {
                    for ix in 0..g.w {
                        for ky in 0..g.kh {
                            for kx in 0..g.kw {
                                let oy = (iy * g.sh + ky * g.dh) as isize - g.ph as isize;
                                let ox = (ix * g.sw + kx * g.dw) as isize - g.pw as isize;
                                if oy < 0 || ox < 0 || oy >= g.oh as isize || ox >= g.ow as isize {
                                    continue;
                                }
                                let xv = x[((b * g.c_in + ci) * g.h + iy) * g.w + ix];
                                let wv = w[(((ci * og) + o) * g.kh + ky) * g.kw + kx];
                                y[((b * g.c_out + co) * g.oh + oy as usize) * g.ow
                                    + ox as usize] += xv * wv;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn conv_transpose_matches_definition() {
    for (k, s, d, p, groups, op) in [
        (2, 2, 1, 0, 1, 0),
        (3, 2, 1, 1, 1, 1),
        (4, 2, 1, 1, 2, 0),
        (3, 1, 2, 2, 1, 0),
    ] {
        let mut g = ConvGeom {
            batch: 2,
            c_in: 4,
            h: 5,
            w: 7,
            c_out: 6,
            oh: 0,
            ow: 0,
            kh: k,
            kw: k,
            sh: s,
            sw: s,
            dh: d,
            dw: d,
            ph: p,
            pw: p,
            groups,
        };
        g.oh = s * (g.h - 1) + op + (k - 1) * d + 1 - 2 * p;
        g.ow = s * (g.w - 1) + op + (k - 1) * d + 1 - 2 * p;
        let (cg, og) = (g.cg(), g.og());
        let x = vals(g.input_len(), 1);
        // ONNX layout [c_in][og][kh][kw].
        let w = vals(g.c_in * og * k * k, 2);
        let mut want = vec![0f32; g.output_len()];
        conv_transpose_ref(&g, &x, &w, &mut want);
        // Transposed per group: [og·kh·kw][cg].
        let rows = og * k * k;
        let mut wt = vec![0f32; groups * rows * cg];
        for grp in 0..groups {
            for c in 0..cg {
                for r in 0..rows {
                    wt[(grp * rows + r) * cg + c] = w[((grp * cg + c) * rows) + r];
                }
            }
        }
        for isa in Isa::all_available() {
            let mut xp = vec![0f32; (g.h * g.w).div_ceil(16) * 16 * cg];
            let mut col = vec![0f32; rows * g.h * g.w];
            let mut y = vec![0f32; g.output_len()];
            conv_transpose_f32(isa, &g, &x, &wt, None, &mut xp, &mut col, &mut y);
            for (a, b) in y.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{g:?} {isa:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn depthwise_large_planes_take_the_row_path() {
    // Planes too large for the whole-plane path (and wider than one 256-output chunk),
    // stride 1 and 2, dilation 2, int8 and f32.
    for (s, d) in [(1, 1), (2, 1), (1, 2)] {
        let mut g = ConvGeom {
            batch: 1,
            c_in: 3,
            h: 70,
            w: 300,
            c_out: 6,
            oh: 0,
            ow: 0,
            kh: 3,
            kw: 5,
            sh: s,
            sw: s,
            dh: d,
            dw: d,
            ph: 1,
            pw: 2,
            groups: 3,
        };
        g.oh = (g.h + 2 * g.ph - ((g.kh - 1) * d + 1)) / s + 1;
        g.ow = (g.w + 2 * g.pw - ((g.kw - 1) * d + 1)) / s + 1;
        let x = vals(g.input_len(), 3);
        let w = vals(g.c_out * g.k(), 4);
        let mut want = vec![0f32; g.output_len()];
        conv_ref_f32(&g, &x, &w, None, &mut want);
        let qp = dynamic_qparams(&x);
        let mut xq = vec![0u8; x.len()];
        quantize_u8(&x, qp, &mut xq);
        let wq: Vec<i8> = w.iter().map(|v| (v * 100.0) as i8).collect();
        let mut iref = vec![0i32; g.output_len()];
        conv_integer_ref(&g, &xq, qp.zero_point as i32, &wq, &[0], &mut iref);
        for isa in Isa::all_available() {
            let mut y = vec![0f32; g.output_len()];
            depthwise(isa, &g, &x, 0.0, &w, None, None, Activation::None, &mut y);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{g:?} {isa:?}");
            }
            let wc: Vec<f32> = wq.iter().map(|&v| v as f32).collect();
            depthwise(
                isa,
                &g,
                &xq,
                qp.zero_point as f32,
                &wc,
                Some((1.0, &[1.0])),
                None,
                Activation::None,
                &mut y,
            );
            let exact: Vec<f32> = iref.iter().map(|&v| v as f32).collect();
            assert_eq!(y, exact, "int8 {g:?} {isa:?}");
        }
    }
}

#[test]
fn padding_only_windows() {
    // Output pixels whose whole window is padding: zero sum, bias only.
    let g = ConvGeom {
        batch: 1,
        c_in: 1,
        h: 1,
        w: 1,
        c_out: 1,
        oh: 3,
        ow: 3,
        kh: 1,
        kw: 1,
        sh: 1,
        sw: 1,
        dh: 1,
        dw: 1,
        ph: 1,
        pw: 1,
        groups: 1,
    };
    let mut y = vec![0f32; 9];
    conv_ref_f32(&g, &[2.0], &[3.0], Some(&[0.5]), &mut y);
    assert_eq!(y, [0.5, 0.5, 0.5, 0.5, 6.5, 0.5, 0.5, 0.5, 0.5]);
    let mut y2 = vec![0f32; 9];
    depthwise(
        Isa::current(),
        &g,
        &[2.0f32],
        0.0,
        &[3.0],
        None,
        Some(&[0.5]),
        Activation::None,
        &mut y2,
    );
    assert_eq!(y2, y);
}

/// ONNX Conv as the spec writes it, from the raw shapes and nothing of `ConvGeom` but its
/// fields: `y[b][co][oy][ox] = Σ_{c in group, ky, kx} x[b][g·cg + c][oy·s − p + ky·d][…] ·
/// w[co][c][ky][kx]`, out-of-range input positions contributing 0, in f64 (float) or i64
/// (integer, with zero points subtracted first).
fn naive_conv<T: Copy + Default + core::ops::AddAssign + core::ops::Mul<Output = T>>(
    geom: &ConvGeom,
    x: &[T],
    w: &[T],
) -> Vec<T> {
    let [n, ci, h, wd, co] = [geom.batch, geom.c_in, geom.h, geom.w, geom.c_out];
    let [kh, kw, g] = [geom.kh, geom.kw, geom.groups];
    let (ci_g, co_g) = (ci / g, co / g);
    let mut y = vec![T::default(); n * co * geom.oh * geom.ow];
    for b in 0..n {
        for o in 0..co {
            let grp = o / co_g;
            for oy in 0..geom.oh {
                for ox in 0..geom.ow {
                    let mut acc = T::default();
                    for c in 0..ci_g {
                        let cin = grp * ci_g + c;
                        for ky in 0..kh {
                            let iy = (oy * geom.sh + ky * geom.dh) as isize - geom.ph as isize;
                            for kx in 0..kw {
                                let ix = (ox * geom.sw + kx * geom.dw) as isize - geom.pw as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xv = x[((b * ci + cin) * h + iy as usize) * wd + ix as usize];
                                let wv = w[((o * ci_g + c) * kh + ky) * kw + kx];
                                acc += xv * wv;
                            }
                        }
                    }
                    y[((b * co + o) * geom.oh + oy) * geom.ow + ox] = acc;
                }
            }
        }
    }
    y
}

/// The references the other tests trust (`conv_ref_f32`, `conv_integer_ref`, also run-time
/// fallbacks of generated code) against the naive definition above: float within f32
/// accumulation rounding, integer exactly (zero points per tensor and per channel).
#[test]
fn references_match_the_naive_definition() {
    for (i, g) in geoms().iter().enumerate() {
        let (xl, wl) = (g.input_len(), g.c_out * g.k());
        let (x, w) = (vals(xl, 3 + i as u32), vals(wl, 50 + i as u32));
        let bias = vals(g.c_out, 90 + i as u32);
        let mut got = vec![0f32; g.output_len()];
        conv_ref_f32(g, &x, &w, Some(&bias), &mut got);
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let wd: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let want = naive_conv(g, &xd, &wd);
        let plane = g.oh * g.ow;
        for (j, (&gv, &wv)) in got.iter().zip(&want).enumerate() {
            let wv = wv + bias[j / plane % g.c_out] as f64;
            // Each product is exact in f64; f32 accumulation of k terms of |x·w| ≤ 1.
            let tol = 1e-6 * g.k() as f64;
            assert!(
                (gv as f64 - wv).abs() <= tol,
                "geom {i} [{j}]: {gv} vs {wv} (tol {tol:e})"
            );
        }
        // Integer: u8 activations with a zero point, i8 weights with per-channel zero points.
        let xq: Vec<u8> = (0..xl).map(|j| (j * 37 % 256) as u8).collect();
        let wq: Vec<i8> = (0..wl).map(|j| ((j * 91 + i) % 256) as u8 as i8).collect();
        let (xz, wz): (i32, Vec<i32>) = (131, (0..g.c_out).map(|c| c as i32 % 7 - 3).collect());
        let mut got = vec![0i32; g.output_len()];
        conv_integer_ref(g, &xq, xz, &wq, &wz, &mut got);
        let xi: Vec<i64> = xq.iter().map(|&v| v as i64 - xz as i64).collect();
        let kk = g.k();
        let wi: Vec<i64> = wq
            .iter()
            .enumerate()
            .map(|(j, &v)| v as i64 - wz[j / kk] as i64)
            .collect();
        let want = naive_conv(g, &xi, &wi);
        let want: Vec<i32> = want.iter().map(|&v| i32::try_from(v).unwrap()).collect();
        assert_eq!(got, want, "geom {i}: integer reference");
    }
}
