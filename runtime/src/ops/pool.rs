//! ONNX `MaxPool`, `AveragePool` (1-D to 3-D spatial, NC… layout) and their global forms.
//!
//! The input is viewed as `planes` (= N·C) contiguous planes of `in_dims` (depth, height,
//! width; missing leading spatial dims are 1). For every output row the kernel walks the
//! kernel taps that land inside the input and folds a whole input row segment into the output
//! row at once: with stride 1 the inner loop is a contiguous `max`/`add` of two slices, which
//! vectorises. Padding is never materialised: taps outside the input are skipped (max) or
//! counted only when `count_include_pad` (average). Planes are split across threads when there
//! is enough work.

/// The geometry of one pooling op. Spatial arrays are (depth, height, width); a 2-D pool has
/// depth 1, kernel 1, stride 1, dilation 1 and no padding on the depth axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub in_dims: [usize; 3],
    pub out_dims: [usize; 3],
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub dilation: [usize; 3],
    pub pad_begin: [usize; 3],
    pub pad_end: [usize; 3],
}

/// `(begin, end)` padding of an `auto_pad = SAME_UPPER` (`upper`) or `SAME_LOWER` axis with
/// `out = ceil(in / stride)`: the total `(out-1)·stride + (kernel-1)·dilation + 1 - in` (at
/// least 0), split with the odd element at the end (upper) or the beginning (lower).
pub const fn same_pads(
    input: usize,
    output: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    upper: bool,
) -> (usize, usize) {
    let need = output.saturating_sub(1) * stride + kernel.saturating_sub(1) * dilation + 1;
    let total = need.saturating_sub(input);
    let small = total / 2;
    if upper {
        (small, total - small)
    } else {
        (total - small, small)
    }
}

impl PoolGeom {
    fn in_plane(&self) -> usize {
        self.in_dims[0] * self.in_dims[1] * self.in_dims[2]
    }
    fn out_plane(&self) -> usize {
        self.out_dims[0] * self.out_dims[1] * self.out_dims[2]
    }
    /// Strides, kernel and dilation must be ≥ 1.
    fn check<T>(&self, x: &[T], planes: usize, out: &[T]) {
        assert!(
            self.stride
                .iter()
                .chain(&self.kernel)
                .chain(&self.dilation)
                .all(|&v| v >= 1),
            "pool: kernel, strides and dilations must be >= 1"
        );
        assert_eq!(x.len(), planes * self.in_plane(), "pool: input length");
        assert_eq!(out.len(), planes * self.out_plane(), "pool: output length");
    }
}

/// Kernel taps `j` in `0..kernel` whose coordinate `start + j·dilation` lies in `[lo, hi)`:
/// the range `(first, end)` of `j` (empty if `first >= end`).
#[inline]
fn taps(start: i64, kernel: usize, dilation: usize, lo: i64, hi: i64) -> (usize, usize) {
    if dilation == 1 {
        let first = (lo - start).clamp(0, kernel as i64);
        let end = (hi - start).clamp(first, kernel as i64);
        return (first as usize, end as usize);
    }
    let d = dilation as i64;
    let first = if start >= lo {
        0
    } else {
        (lo - start + d - 1) / d
    };
    let end = if hi <= start {
        0
    } else {
        ((hi - start + d - 1) / d).min(kernel as i64)
    };
    (first as usize, end.max(first) as usize)
}

/// Output positions `o` in `0..out_len` whose input coordinate `o·stride + off` lies in
/// `[0, in_len)`.
#[inline]
fn out_range(off: i64, stride: usize, in_len: usize, out_len: usize) -> (usize, usize) {
    if stride == 1 {
        let lo = (-off).clamp(0, out_len as i64);
        let hi = (in_len as i64 - off).clamp(lo, out_len as i64);
        return (lo as usize, hi as usize);
    }
    let s = stride as i64;
    let lo = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let hi = if (in_len as i64) <= off {
        0
    } else {
        ((in_len as i64 - off + s - 1) / s).min(out_len as i64)
    };
    (lo as usize, hi.max(lo) as usize)
}

/// Kernel widths whose column ranges are precomputed once per call.
const MAX_KW: usize = 16;

/// Per kernel column `kw`: the output columns `lo..hi` it reaches inside the input and the
/// input column of `lo` (the same for every row, so computed once).
#[derive(Clone, Copy)]
struct ColTaps {
    n: usize,
    tab: [(usize, usize, usize); MAX_KW],
}

impl ColTaps {
    fn new(g: &PoolGeom) -> Self {
        let mut t = ColTaps {
            n: g.kernel[2].min(MAX_KW),
            tab: [(0, 0, 0); MAX_KW],
        };
        for kw in 0..t.n {
            t.tab[kw] = col_taps(g, kw);
        }
        t
    }
}

#[inline]
fn col_taps(g: &PoolGeom, kw: usize) -> (usize, usize, usize) {
    let off = (kw * g.dilation[2]) as i64 - g.pad_begin[2] as i64;
    let (lo, hi) = out_range(off, g.stride[2], g.in_dims[2], g.out_dims[2]);
    let first = if lo < hi {
        (lo as i64 * g.stride[2] as i64 + off) as usize
    } else {
        0
    };
    (lo, hi, first)
}

/// Folds every in-bounds tap of output row (`od`, `oh`) of one plane into `row` with `f`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn fold_row<T: Copy>(
    g: &PoolGeom,
    cols: &ColTaps,
    plane: &[T],
    od: usize,
    oh: usize,
    row: &mut [T],
    f: impl Fn(T, T) -> T + Copy,
) {
    let [id_, ih_, iw_] = g.in_dims;
    let sd = (od * g.stride[0]) as i64 - g.pad_begin[0] as i64;
    let sh = (oh * g.stride[1]) as i64 - g.pad_begin[1] as i64;
    let (kd0, kd1) = taps(sd, g.kernel[0], g.dilation[0], 0, id_ as i64);
    let (kh0, kh1) = taps(sh, g.kernel[1], g.dilation[1], 0, ih_ as i64);
    let sw = g.stride[2];
    for kd in kd0..kd1 {
        let d = (sd + (kd * g.dilation[0]) as i64) as usize;
        for kh in kh0..kh1 {
            let h = (sh + (kh * g.dilation[1]) as i64) as usize;
            let in_row = &plane[(d * ih_ + h) * iw_..][..iw_];
            for kw in 0..g.kernel[2] {
                let (lo, hi, first) = if kw < cols.n {
                    cols.tab[kw]
                } else {
                    col_taps(g, kw)
                };
                if lo >= hi {
                    continue;
                }
                let dst = &mut row[lo..hi];
                if sw == 1 {
                    let src = &in_row[first..first + dst.len()];
                    for (o, &v) in dst.iter_mut().zip(src) {
                        *o = f(*o, v);
                    }
                } else {
                    // `chunks` keeps the strided gather free of bounds checks.
                    for (o, c) in dst.iter_mut().zip(in_row[first..].chunks(sw)) {
                        *o = f(*o, c[0]);
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn max2<T: PartialOrd>(a: T, b: T) -> T {
    if b > a { b } else { a }
}

/// ONNX `MaxPool` (the `Values` output), for any ordered element type (`f32`, `u8`, `i8`…).
/// Windows that hold no input element give `lowest` (`-inf` for floats, the type's minimum
/// for integers). NaN inputs are skipped, like padding.
pub fn max_pool<T: Copy + PartialOrd + Send + Sync>(
    x: &[T],
    planes: usize,
    g: &PoolGeom,
    lowest: T,
    out: &mut [T],
) {
    g.check(x, planes, out);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if op == 0 {
        return;
    }
    let work = g.kernel[0] * g.kernel[1] * g.kernel[2];
    let cols = ColTaps::new(g);
    plane_split(x, ip, out, op, work, |xp, yp| {
        for (r, row) in yp.chunks_exact_mut(g.out_dims[2]).enumerate() {
            let (od, oh) = (r / g.out_dims[1], r % g.out_dims[1]);
            row.fill(lowest);
            fold_row(g, &cols, xp, od, oh, row, max2);
        }
    });
}

/// ONNX `AveragePool`: each output is the sum of its window's input elements divided by the
/// number of window taps inside the input, or, with `count_include_pad`, inside the padded
/// input `[-pad_begin, in + pad_end)` (taps past `pad_end`, which `ceil_mode` can create, are
/// never counted). A window with nothing to count gives NaN (0/0).
pub fn avg_pool(x: &[f32], planes: usize, g: &PoolGeom, count_include_pad: bool, out: &mut [f32]) {
    g.check(x, planes, out);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if op == 0 {
        return;
    }
    let work = g.kernel[0] * g.kernel[1] * g.kernel[2];
    let cols = ColTaps::new(g);
    plane_split(x, ip, out, op, work, |xp, yp| {
        for (r, row) in yp.chunks_exact_mut(g.out_dims[2]).enumerate() {
            let (od, oh) = (r / g.out_dims[1], r % g.out_dims[1]);
            row.fill(0.0);
            fold_row(g, &cols, xp, od, oh, row, |a, b| a + b);
            // Divisor: separable per axis, the product of the counted taps.
            let count_axis = |ax: usize, o: usize| -> usize {
                let start = (o * g.stride[ax]) as i64 - g.pad_begin[ax] as i64;
                let (lo, hi) = if count_include_pad {
                    (
                        -(g.pad_begin[ax] as i64),
                        (g.in_dims[ax] + g.pad_end[ax]) as i64,
                    )
                } else {
                    (0, g.in_dims[ax] as i64)
                };
                let (a, b) = taps(start, g.kernel[ax], g.dilation[ax], lo, hi);
                b - a
            };
            let outer = count_axis(0, od) * count_axis(1, oh);
            for (o, v) in row.iter_mut().enumerate() {
                *v /= (outer * count_axis(2, o)) as f32;
            }
        }
    });
}

/// Calls `f(in_planes, out_planes)` on groups of whole planes, in parallel when the work
/// (`out_plane · work` per plane) is large enough.
fn plane_split<T: Send + Sync>(
    x: &[T],
    in_plane: usize,
    out: &mut [T],
    out_plane: usize,
    work: usize,
    f: impl Fn(&[T], &mut [T]) + Sync + Send,
) {
    let planes = out.len() / out_plane;
    let per_plane = (out_plane * work).max(1);
    let n = crate::par::pieces(planes, crate::par::MIN_ELEMS.div_ceil(per_plane));
    if n <= 1 {
        for (xp, yp) in x
            .chunks_exact(in_plane.max(1))
            .zip(out.chunks_exact_mut(out_plane))
        {
            f(xp, yp);
        }
        return;
    }
    let per = planes.div_ceil(n);
    crate::par::rows(x, in_plane * per, out, out_plane * per, |xs, os| {
        for (xp, yp) in xs
            .chunks_exact(in_plane.max(1))
            .zip(os.chunks_exact_mut(out_plane))
        {
            f(xp, yp);
        }
    });
}

/// ONNX `GlobalAveragePool`: the mean of each of `planes` planes of `plane` elements.
pub fn global_avg_pool(x: &[f32], planes: usize, plane: usize, out: &mut [f32]) {
    super::reduce::reduce_mean(x, out, planes, plane, 1);
}

/// ONNX `GlobalMaxPool`: the maximum of each of `planes` planes of `plane` elements (NaN if
/// the plane holds a NaN; `-inf` for an empty plane).
pub fn global_max_pool(x: &[f32], planes: usize, plane: usize, out: &mut [f32]) {
    super::reduce::reduce_max(x, out, planes, plane, 1);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
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
}
