//! Pooling against direct definitions, on every ISA.
extern crate std;
use super::*;
use std::format;
use std::vec;
use std::vec::Vec;

/// Direct definition: every output position visits every kernel tap.
fn reference(x: &[f32], planes: usize, g: &PoolGeom, avg: Option<bool>) -> Vec<f32> {
    let mut out = Vec::new();
    for p in 0..planes {
        for od in 0..g.out_dims[0] {
            for oh in 0..g.out_dims[1] {
                for ow in 0..g.out_dims[2] {
                    let o = [od, oh, ow];
                    let (mut m, mut s, mut n) = (f32::NEG_INFINITY, 0.0f64, 0usize);
                    for kd in 0..g.kernel[0] {
                        for kh in 0..g.kernel[1] {
                            for kw in 0..g.kernel[2] {
                                let k = [kd, kh, kw];
                                let c: Vec<i64> = (0..3)
                                    .map(|a| {
                                        (o[a] * g.stride[a] + k[a] * g.dilation[a]) as i64
                                            - g.pad_begin[a] as i64
                                    })
                                    .collect();
                                let inside =
                                    (0..3).all(|a| c[a] >= 0 && c[a] < g.in_dims[a] as i64);
                                let in_padded =
                                    (0..3).all(|a| c[a] < (g.in_dims[a] + g.pad_end[a]) as i64);
                                if inside {
                                    let i = ((p * g.in_dims[0] + c[0] as usize) * g.in_dims[1]
                                        + c[1] as usize)
                                        * g.in_dims[2]
                                        + c[2] as usize;
                                    m = m.max(x[i]);
                                    s += x[i] as f64;
                                    n += 1;
                                } else if avg == Some(true) && in_padded {
                                    n += 1;
                                }
                            }
                        }
                    }
                    out.push(match avg {
                        None => m,
                        Some(_) => (s / n as f64) as f32,
                    });
                }
            }
        }
    }
    out
}

fn out_len(i: usize, k: usize, s: usize, d: usize, pb: usize, pe: usize, ceil: bool) -> usize {
    let span = (k - 1) * d + 1;
    let num = i + pb + pe - span;
    if ceil {
        let mut o = num.div_ceil(s) + 1;
        if (o - 1) * s >= i + pb {
            o -= 1;
        }
        o
    } else {
        num / s + 1
    }
}

#[test]
fn max_pool_nhwc_matches_nchw() {
    // (c, h, w, k, stride, pad_begin, pad_end, dilation)
    let cases = [
        (16, 9, 11, 3, 2, 1, 1, 1),
        (3, 8, 8, 2, 2, 0, 0, 1),
        (37, 7, 5, 3, 1, 1, 1, 1),
        (64, 6, 7, 3, 2, 1, 2, 1),
        (5, 9, 9, 3, 1, 2, 2, 2),
        // 81 taps: folded in two batches.
        (20, 12, 12, 9, 1, 4, 4, 1),
    ];
    for &(c, h, w, k, s, pb, pe, d) in &cases {
        let out = |n: usize| (n + pb + pe - d * (k - 1) - 1) / s + 1;
        let g = PoolGeom {
            in_dims: [1, h, w],
            out_dims: [1, out(h), out(w)],
            kernel: [1, k, k],
            stride: [1, s, s],
            dilation: [1, d, d],
            pad_begin: [0, pb, pb],
            pad_end: [0, pe, pe],
        };
        let batch = 2;
        let mut x: Vec<f32> = (0..batch * c * h * w)
            .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
            .collect();
        x[3] = f32::NAN;
        x[10] = -0.0;
        x[11] = 0.0;
        let mut want = vec![0f32; batch * c * g.out_plane()];
        max_pool(&x, batch * c, &g, f32::NEG_INFINITY, &mut want);
        let mut xn = vec![0f32; x.len()];
        for b in 0..batch {
            for ch in 0..c {
                for p in 0..h * w {
                    xn[(b * h * w + p) * c + ch] = x[(b * c + ch) * h * w + p];
                }
            }
        }
        let mut got = vec![f32::NAN; want.len()];
        max_pool_nhwc(&xn, batch, c, &g, &mut got);
        let op = g.out_plane();
        for b in 0..batch {
            for ch in 0..c {
                for p in 0..op {
                    let (e, v) = (want[(b * c + ch) * op + p], got[(b * op + p) * c + ch]);
                    assert_eq!(e.to_bits(), v.to_bits(), "c {c} h {h} k {k} s {s}");
                }
            }
        }
    }
}

#[test]
fn matches_reference_2d_and_1d() {
    let mut seed = 7u32;
    let mut rnd = || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    let cases = [
        // (in h, in w, k, s, d, pb, pe, ceil)
        (7, 9, [3, 3], [1, 1], [1, 1], [1, 1], [1, 1], false),
        (7, 9, [3, 3], [2, 2], [1, 1], [1, 1], [1, 1], false),
        (8, 8, [2, 2], [2, 2], [1, 1], [0, 0], [0, 0], false),
        (5, 6, [3, 2], [2, 3], [2, 1], [2, 1], [0, 1], true),
        (1, 17, [1, 4], [1, 3], [1, 2], [0, 3], [0, 2], true),
        (4, 4, [3, 3], [2, 2], [1, 1], [0, 0], [0, 0], true),
        (6, 5, [5, 5], [1, 1], [1, 1], [2, 2], [2, 2], false),
    ];
    for (ih, iw, k, s, d, pb, pe, ceil) in cases {
        let oh = out_len(ih, k[0], s[0], d[0], pb[0], pe[0], ceil);
        let ow = out_len(iw, k[1], s[1], d[1], pb[1], pe[1], ceil);
        let g = PoolGeom {
            in_dims: [1, ih, iw],
            out_dims: [1, oh, ow],
            kernel: [1, k[0], k[1]],
            stride: [1, s[0], s[1]],
            dilation: [1, d[0], d[1]],
            pad_begin: [0, pb[0], pb[1]],
            pad_end: [0, pe[0], pe[1]],
        };
        let planes = 3;
        let x: Vec<f32> = (0..planes * ih * iw).map(|_| rnd()).collect();
        let mut out = vec![0.0; planes * oh * ow];
        max_pool(&x, planes, &g, f32::NEG_INFINITY, &mut out);
        assert_eq!(out, reference(&x, planes, &g, None), "max {g:?}");
        for cip in [false, true] {
            avg_pool(&x, planes, &g, cip, &mut out);
            let want = reference(&x, planes, &g, Some(cip));
            for (a, b) in out.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6, "avg {cip} {g:?}: {a} vs {b}");
            }
        }
    }
}

/// Deterministic generator (LCG) for the fast-path tests.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n
    }
}

/// A random geometry: 1-D to 3-D, strides 1–3, kernels 1–6, dilations, pads up to the
/// kernel span (so whole windows can fall in the padding), floor or ceil output sizes.
fn random_geom(r: &mut Lcg) -> PoolGeom {
    let mut g = PoolGeom {
        in_dims: [1; 3],
        out_dims: [1; 3],
        kernel: [1; 3],
        stride: [1; 3],
        dilation: [1; 3],
        pad_begin: [0; 3],
        pad_end: [0; 3],
    };
    let spatial = 1 + r.below(3);
    for ax in 3 - spatial..3 {
        let wide = ax == 2 && r.below(4) == 0;
        g.in_dims[ax] = 1 + r.below(if wide { 150 } else { 40 });
        g.kernel[ax] = 1 + r.below(if ax == 0 { 3 } else { 6 });
        g.stride[ax] = 1 + r.below(if ax == 2 { 3 } else { 2 });
        g.dilation[ax] = if r.below(4) == 0 { 2 } else { 1 };
        let span = (g.kernel[ax] - 1) * g.dilation[ax] + 1;
        g.pad_begin[ax] = r.below(span);
        g.pad_end[ax] = r.below(span);
        let total = g.in_dims[ax] + g.pad_begin[ax] + g.pad_end[ax];
        if total < span {
            g.pad_end[ax] += span - total;
        }
        g.out_dims[ax] = out_len(
            g.in_dims[ax],
            g.kernel[ax],
            g.stride[ax],
            g.dilation[ax],
            g.pad_begin[ax],
            g.pad_end[ax],
            r.below(2) == 0,
        );
    }
    g
}

/// f32 values with many ties, ±0, ±inf and NaN, so any change of tap order or of the
/// padding's treatment shows in the bits.
fn tricky_f32(r: &mut Lcg, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| match r.below(16) {
            0 => 0.0,
            1 => -0.0,
            2 => f32::NAN,
            3 => f32::INFINITY,
            4 => f32::NEG_INFINITY,
            5 => 1.0,
            _ => (r.next() % 2001) as f32 / 100.0 - 10.0,
        })
        .collect()
}

/// Bit patterns, every NaN as one: Rust leaves the sign and payload of a NaN produced by
/// arithmetic unspecified (LLVM may commute an addition, and x86 returns the first
/// operand's NaN), so `inf + -inf + NaN` has no defined bits.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { u32::MAX } else { x.to_bits() })
        .collect()
}

#[test]
fn fast_path_matches_generic_bit_for_bit() {
    let mut r = Lcg(0x5eed);
    let mut fast = 0;
    for case in 0..600 {
        let g = random_geom(&mut r);
        let planes = 1 + r.below(3);
        let n = planes * g.in_plane();
        let x = tricky_f32(&mut r, n);
        let len = planes * g.out_plane();
        let mut want = vec![0.0f32; len];
        max_pool_generic(&x, planes, &g, f32::NEG_INFINITY, &mut want);
        let mut want_avg = [vec![0.0f32; len], vec![0.0f32; len]];
        for (cip, w) in want_avg.iter_mut().enumerate() {
            avg_pool_generic(&x, planes, &g, cip == 1, w);
        }
        let xu: Vec<u8> = x.iter().map(|v| (v.to_bits() >> 13) as u8).collect();
        let mut want_u8 = vec![0u8; len];
        max_pool_generic(&xu, planes, &g, 0, &mut want_u8);
        let xi: Vec<i8> = xu.iter().map(|&v| v as i8).collect();
        let mut want_i8 = vec![0i8; len];
        max_pool_generic(&xi, planes, &g, i8::MIN, &mut want_i8);
        fast += usize::from(fast_geometry(&g));
        for isa in Isa::all_available() {
            let what = format!("case {case} [{isa}] {g:?}");
            let mut got = vec![1.5f32; len];
            max_pool_isa(isa, &x, planes, &g, f32::NEG_INFINITY, &mut got);
            assert_eq!(bits(&got), bits(&want), "max {what}");
            for (cip, w) in want_avg.iter().enumerate() {
                avg_pool_isa(isa, &x, planes, &g, cip == 1, &mut got);
                assert_eq!(bits(&got), bits(w), "avg cip={cip} {what}");
            }
            let mut got_u8 = vec![7u8; len];
            max_pool_isa(isa, &xu, planes, &g, 0, &mut got_u8);
            assert_eq!(got_u8, want_u8, "max u8 {what}");
            let mut got_i8 = vec![7i8; len];
            max_pool_isa(isa, &xi, planes, &g, i8::MIN, &mut got_i8);
            assert_eq!(got_i8, want_i8, "max i8 {what}");
        }
    }
    // Most random geometries must exercise the fast path.
    assert!(
        fast > 250,
        "only {fast} of 600 geometries took the fast path"
    );
}

#[test]
fn fast_path_common_shapes() {
    // The vision-network cases, at sizes around the chunk width and with wide rows (more
    // than one column block).
    let mut r = Lcg(77);
    for &(h, w) in &[
        (7, 7),
        (14, 14),
        (15, 17),
        (16, 16),
        (33, 31),
        (56, 56),
        (9, 1100),
    ] {
        for &(k, s, p, ceil) in &[
            (3, 2, 1, false),
            (2, 2, 0, false),
            (3, 1, 1, false),
            (5, 1, 2, false),
            (3, 2, 0, true),
            (2, 1, 0, false),
            (7, 2, 3, false),
        ] {
            let oh = out_len(h, k, s, 1, p, p, ceil);
            let ow = out_len(w, k, s, 1, p, p, ceil);
            let g = PoolGeom {
                in_dims: [1, h, w],
                out_dims: [1, oh, ow],
                kernel: [1, k, k],
                stride: [1, s, s],
                dilation: [1, 1, 1],
                pad_begin: [0, p, p],
                pad_end: [0, p, p],
            };
            assert!(fast_geometry(&g), "{g:?}");
            let planes = 2;
            let x = tricky_f32(&mut r, planes * h * w);
            let mut want = vec![0.0; planes * oh * ow];
            let mut got = want.clone();
            max_pool_generic(&x, planes, &g, f32::NEG_INFINITY, &mut want);
            for isa in Isa::all_available() {
                max_pool_isa(isa, &x, planes, &g, f32::NEG_INFINITY, &mut got);
                assert_eq!(bits(&got), bits(&want), "max [{isa}] {g:?}");
            }
            for cip in [false, true] {
                avg_pool_generic(&x, planes, &g, cip, &mut want);
                for isa in Isa::all_available() {
                    avg_pool_isa(isa, &x, planes, &g, cip, &mut got);
                    assert_eq!(bits(&got), bits(&want), "avg {cip} [{isa}] {g:?}");
                }
            }
        }
    }
}

#[test]
fn matches_reference_3d() {
    let g = PoolGeom {
        in_dims: [4, 5, 6],
        out_dims: [2, 3, 3],
        kernel: [2, 3, 2],
        stride: [2, 2, 2],
        dilation: [1, 1, 1],
        pad_begin: [0, 1, 0],
        pad_end: [0, 1, 0],
    };
    let x: Vec<f32> = (0..2 * 120).map(|i| ((i * 37) % 101) as f32).collect();
    let mut out = vec![0.0; 2 * 18];
    max_pool(&x, 2, &g, f32::NEG_INFINITY, &mut out);
    assert_eq!(out, reference(&x, 2, &g, None));
    avg_pool(&x, 2, &g, true, &mut out);
    let want = reference(&x, 2, &g, Some(true));
    for (a, b) in out.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
    }
}

#[test]
fn large_parallel_matches_serial_reference() {
    // Enough work to take the threaded path when the pool has several threads.
    let g = PoolGeom {
        in_dims: [1, 64, 64],
        out_dims: [1, 32, 32],
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        dilation: [1, 1, 1],
        pad_begin: [0, 1, 1],
        pad_end: [0, 0, 0],
    };
    let planes = 32;
    let x: Vec<f32> = (0..planes * 64 * 64)
        .map(|i| ((i * 7919) % 1009) as f32)
        .collect();
    let mut out = vec![0.0; planes * 32 * 32];
    max_pool(&x, planes, &g, f32::NEG_INFINITY, &mut out);
    assert_eq!(out, reference(&x, planes, &g, None));
}

#[test]
fn max_pool_u8() {
    let x: [u8; 9] = [1, 9, 3, 4, 5, 6, 200, 8, 0];
    let g = PoolGeom {
        in_dims: [1, 3, 3],
        out_dims: [1, 2, 2],
        kernel: [1, 2, 2],
        stride: [1, 1, 1],
        dilation: [1, 1, 1],
        pad_begin: [0, 0, 0],
        pad_end: [0, 0, 0],
    };
    let mut out = [0u8; 4];
    max_pool(&x, 1, &g, 0, &mut out);
    assert_eq!(out, [9, 9, 200, 8]);
}

#[test]
fn same_padding() {
    // in 5, stride 2 → out 3; need (3-1)·2 + 3 = 7 → total 2.
    assert_eq!(same_pads(5, 3, 3, 2, 1, true), (1, 1));
    // in 4, k 2, stride 1 → out 4; total 1: upper puts it at the end, lower at the start.
    assert_eq!(same_pads(4, 4, 2, 1, 1, true), (0, 1));
    assert_eq!(same_pads(4, 4, 2, 1, 1, false), (1, 0));
    assert_eq!(same_pads(4, 2, 1, 2, 1, true), (0, 0));
}

#[test]
fn global() {
    let x = [1.0, 2.0, 3.0, 4.0, -1.0, -2.0, -3.0, -6.0];
    let mut out = [0.0; 2];
    global_avg_pool(&x, 2, 4, &mut out);
    assert_eq!(out, [2.5, -3.0]);
    global_max_pool(&x, 2, 4, &mut out);
    assert_eq!(out, [4.0, -1.0]);
}

/// Rough throughput on vision-network shapes; run with
/// `cargo test -p kiln-runtime --release --lib -- --ignored --nocapture pool_speed`.
#[test]
#[ignore]
fn pool_speed() {
    let time = |f: &mut dyn FnMut()| {
        f();
        let t = std::time::Instant::now();
        let mut reps = 0;
        while t.elapsed().as_secs_f64() < 0.5 {
            f();
            reps += 1;
        }
        t.elapsed().as_secs_f64() / reps as f64
    };
    // ResNet stem MaxPool 3x3/2 pad 1: 64 x 112x112 → 56x56.
    let g = PoolGeom {
        in_dims: [1, 112, 112],
        out_dims: [1, 56, 56],
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        dilation: [1, 1, 1],
        pad_begin: [0, 1, 1],
        pad_end: [0, 1, 1],
    };
    let x: Vec<f32> = (0..64 * 112 * 112).map(|i| (i % 251) as f32).collect();
    let mut out = vec![0.0; 64 * 56 * 56];
    let dt = time(&mut || max_pool(&x, 64, &g, f32::NEG_INFINITY, &mut out));
    std::println!(
        "maxpool 3x3/2 64x112x112: {:.1} us ({:.2} GB/s in)",
        dt * 1e6,
        x.len() as f64 * 4.0 / dt / 1e9
    );
    let dt = time(&mut || avg_pool(&x, 64, &g, false, &mut out));
    std::println!("avgpool 3x3/2 64x112x112: {:.1} us", dt * 1e6);
    // Stride 1 3x3 (SPP-style) on 128 x 40x40.
    let g1 = PoolGeom {
        in_dims: [1, 40, 40],
        out_dims: [1, 40, 40],
        stride: [1, 1, 1],
        ..g
    };
    let x1: Vec<f32> = (0..128 * 1600).map(|i| (i % 97) as f32).collect();
    let mut o1 = vec![0.0; 128 * 1600];
    let dt = time(&mut || max_pool(&x1, 128, &g1, f32::NEG_INFINITY, &mut o1));
    std::println!("maxpool 3x3/1 128x40x40: {:.1} us", dt * 1e6);
    let dt = time(&mut || global_avg_pool(&x, 64, 112 * 112, &mut out[..64]));
    std::println!("global avg 64x112x112: {:.1} us", dt * 1e6);
}
