//! ONNX `MaxPool`, `AveragePool` (1-D to 3-D spatial, NC… layout) and their global forms.
//!
//! The input is viewed as `planes` (= N·C) contiguous planes of `in_dims` (depth, height,
//! width; missing leading spatial dims are 1). The generic row fold (every geometry) folds,
//! per output row, each in-bounds kernel tap's whole row segment into the row. Windows with
//! kernel depth 1 and width stride 1 or 2 — every pooling of vision networks — take a fast path
//! that computes 16 outputs per register (see "fast path" below), compiled for AVX-512 / AVX2
//! when the CPU has them. Both fold the taps in the direct definition's order (depth, height,
//! width), so the fast path's results are the generic fold's bit for bit: max keeps the first
//! of equal values (±0) and skips NaN, average sums in tap order. Planes are split across
//! threads when there is enough work.

use crate::isa::Isa;

mod fast;
use fast::*;

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
#[inline(always)]
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

/// `b` if it is greater than `a`, else `a` (so NaN `b` and ties keep `a`; `a` is never NaN
/// here: folds start from the lowest value).
#[inline(always)]
fn max2<T: PartialOrd>(a: T, b: T) -> T {
    // On wasm32 with relaxed-simd, LLVM turns the plain `if b > a { b } else { a }` into
    // `f32x4.relaxed_max`, whose results for NaN and ±0 the engine chooses (V8 keeps a NaN
    // `b`). Spelled as "keep `a` unless `b` is greater and a number", it stays a compare and
    // a bitwise select. Elsewhere the plain form is one max instruction.
    #[cfg(target_arch = "wasm32")]
    {
        #[allow(clippy::eq_op)]
        let keep = a >= b || b != b;
        if keep { a } else { b }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        if b > a { b } else { a }
    }
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
    max_pool_isa(Isa::current(), x, planes, g, lowest, out)
}

/// [`max_pool`] on the vector width of `isa` (resolved against the CPU).
fn max_pool_isa<T: Copy + PartialOrd + Send + Sync>(
    isa: Isa,
    x: &[T],
    planes: usize,
    g: &PoolGeom,
    lowest: T,
    out: &mut [T],
) {
    if !fast_geometry(g) {
        return max_pool_generic(x, planes, g, lowest, out);
    }
    g.check(x, planes, out);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if op == 0 {
        return;
    }
    let work = g.kernel[0] * g.kernel[1] * g.kernel[2];
    let isa = isa.resolve();
    plane_split(x, ip, out, op, work, |xs, ys| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has; the AVX-512 family has
        // avx512f/bw/vl, the AVX2 ones avx2.
        Isa::Avx512Vnni => unsafe { x86::max_planes_avx512(g, xs, ys, lowest) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::max_planes_avx2(g, xs, ys, lowest) },
        _ => max_planes(g, xs, ys, lowest),
    });
}

/// [`max_pool`] by the generic row fold (every geometry; the reference for the fast path).
fn max_pool_generic<T: Copy + PartialOrd + Send + Sync>(
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
    plane_split(x, ip, out, op, work, |xs, ys| {
        for (xp, yp) in xs.chunks_exact(ip.max(1)).zip(ys.chunks_exact_mut(op)) {
            for (r, row) in yp.chunks_exact_mut(g.out_dims[2]).enumerate() {
                let (od, oh) = (r / g.out_dims[1], r % g.out_dims[1]);
                row.fill(lowest);
                fold_row(g, &cols, xp, od, oh, row, max2);
            }
        }
    });
}

/// ONNX `AveragePool`: each output is the sum of its window's input elements divided by the
/// number of window taps inside the input, or, with `count_include_pad`, inside the padded
/// input `[-pad_begin, in + pad_end)` (taps past `pad_end`, which `ceil_mode` can create, are
/// never counted). A window with nothing to count gives NaN (0/0).
pub fn avg_pool(x: &[f32], planes: usize, g: &PoolGeom, count_include_pad: bool, out: &mut [f32]) {
    avg_pool_isa(Isa::current(), x, planes, g, count_include_pad, out)
}

/// [`avg_pool`] on the vector width of `isa` (resolved against the CPU).
fn avg_pool_isa(
    isa: Isa,
    x: &[f32],
    planes: usize,
    g: &PoolGeom,
    count_include_pad: bool,
    out: &mut [f32],
) {
    if !fast_geometry(g) {
        return avg_pool_generic(x, planes, g, count_include_pad, out);
    }
    g.check(x, planes, out);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if op == 0 {
        return;
    }
    let work = g.kernel[0] * g.kernel[1] * g.kernel[2];
    let isa = isa.resolve();
    let cip = count_include_pad;
    plane_split(x, ip, out, op, work, |xs, ys| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has; the AVX-512 family has
        // avx512f/bw/vl, the AVX2 ones avx2.
        Isa::Avx512Vnni => unsafe { x86::avg_planes_avx512(g, xs, ys, cip) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::avg_planes_avx2(g, xs, ys, cip) },
        _ => avg_planes(g, xs, ys, cip),
    });
}

/// Taps of output position `o` on axis `ax` that count towards the average's divisor.
#[inline(always)]
fn avg_count(g: &PoolGeom, count_include_pad: bool, ax: usize, o: usize) -> usize {
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
}

/// [`avg_pool`] by the generic row fold (every geometry; the reference for the fast path).
fn avg_pool_generic(
    x: &[f32],
    planes: usize,
    g: &PoolGeom,
    count_include_pad: bool,
    out: &mut [f32],
) {
    g.check(x, planes, out);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if op == 0 {
        return;
    }
    let work = g.kernel[0] * g.kernel[1] * g.kernel[2];
    let cols = ColTaps::new(g);
    plane_split(x, ip, out, op, work, |xs, ys| {
        for (xp, yp) in xs.chunks_exact(ip.max(1)).zip(ys.chunks_exact_mut(op)) {
            for (r, row) in yp.chunks_exact_mut(g.out_dims[2]).enumerate() {
                let (od, oh) = (r / g.out_dims[1], r % g.out_dims[1]);
                row.fill(0.0);
                fold_row(g, &cols, xp, od, oh, row, |a, b| a + b);
                // Divisor: separable per axis, the product of the counted taps.
                let outer =
                    avg_count(g, count_include_pad, 0, od) * avg_count(g, count_include_pad, 1, oh);
                for (o, v) in row.iter_mut().enumerate() {
                    *v /= (outer * avg_count(g, count_include_pad, 2, o)) as f32;
                }
            }
        }
    });
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use super::{PoolGeom, avg_planes, max_planes};

    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn max_nhwc_avx512(
        x: &[f32],
        p: &super::NhwcPool,
        r0: usize,
        ys: &mut [f32],
    ) {
        super::max_nhwc_rows(x, p, r0, ys)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_nhwc_avx2(x: &[f32], p: &super::NhwcPool, r0: usize, ys: &mut [f32]) {
        super::max_nhwc_rows(x, p, r0, ys)
    }

    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn max_planes_avx512<T: Copy + PartialOrd>(
        g: &PoolGeom,
        xs: &[T],
        ys: &mut [T],
        lowest: T,
    ) {
        max_planes(g, xs, ys, lowest)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn max_planes_avx2<T: Copy + PartialOrd>(
        g: &PoolGeom,
        xs: &[T],
        ys: &mut [T],
        lowest: T,
    ) {
        max_planes(g, xs, ys, lowest)
    }

    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn avg_planes_avx512(g: &PoolGeom, xs: &[f32], ys: &mut [f32], cip: bool) {
        avg_planes(g, xs, ys, cip)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avg_planes_avx2(g: &PoolGeom, xs: &[f32], ys: &mut [f32], cip: bool) {
        avg_planes(g, xs, ys, cip)
    }
}

/// Calls `f(in_planes, out_planes)` on groups of whole planes (all of them at once when
/// serial), in parallel when the work (`out_plane · work` per plane) is large enough.
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
        return f(x, out);
    }
    let per = planes.div_ceil(n);
    crate::par::rows(x, in_plane * per, out, out_plane * per, f);
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

/// 2-D `MaxPool` on NHWC f32 (`x` is `[batch][h][w][c]`, `g.in_dims[0] == 1`): each output
/// pixel folds its window's taps, in the order of [`max_pool`] (rows, then columns), over all
/// `c` channels at once, so the result is bit-identical to [`max_pool`] on the NCHW tensor.
/// Used when codegen keeps the activations NHWC (docs/design.md, decision 19).
pub fn max_pool_nhwc(x: &[f32], batch: usize, c: usize, g: &PoolGeom, out: &mut [f32]) {
    assert!(
        g.in_dims[0] == 1 && g.out_dims[0] == 1 && g.kernel[0] == 1,
        "max_pool_nhwc: 2-D only"
    );
    g.check(x, batch * c, out);
    let (h, w) = (g.in_dims[1], g.in_dims[2]);
    let (oh, ow) = (g.out_dims[1], g.out_dims[2]);
    let row = ow * c;
    if row == 0 || oh == 0 {
        return;
    }
    let isa = Isa::current().resolve();
    let work = g.kernel[1] * g.kernel[2];
    let min_rows = crate::par::MIN_ELEMS.div_ceil(row * work / 4 + 1);
    let _ = (h, w);
    let geo = NhwcPool { g, c, batch };
    crate::par::rows_mut(out, row, min_rows, |r0, ys| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has (the AVX-512 one has
        // avx512f/bw/vl).
        Isa::Avx512Vnni => unsafe { x86::max_nhwc_avx512(x, &geo, r0, ys) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::max_nhwc_avx2(x, &geo, r0, ys) },
        _ => max_nhwc_rows(x, &geo, r0, ys),
    });
}

/// `y[ch] = max2(…max2(start, x[offs[0] + ch])…, x[offs[n−1] + ch])` for the `c` channels of
/// one pixel, `start` = -inf (`first`) or `y`'s value; blocks of 16 channels in registers.
#[inline(always)]
fn fold_taps(x: &[f32], offs: &[usize], c: usize, y: &mut [f32], first: bool) {
    let mut c0 = 0;
    while c0 + 16 <= c {
        let mut acc: [f32; 16] = if first {
            [f32::NEG_INFINITY; 16]
        } else {
            y[c0..c0 + 16].try_into().unwrap()
        };
        for &o in offs {
            let v: &[f32; 16] = x[o + c0..][..16].try_into().unwrap();
            for j in 0..16 {
                acc[j] = max2(acc[j], v[j]);
            }
        }
        y[c0..c0 + 16].copy_from_slice(&acc);
        c0 += 16;
    }
    for ch in c0..c {
        let mut a = if first { f32::NEG_INFINITY } else { y[ch] };
        for &o in offs {
            a = max2(a, x[o + ch]);
        }
        y[ch] = a;
    }
}

/// The geometry of [`max_pool_nhwc`].
struct NhwcPool<'a> {
    g: &'a PoolGeom,
    c: usize,
    batch: usize,
}

/// Output rows `r0…` of [`max_pool_nhwc`] (inlined into each ISA wrapper, so that the channel
/// loop is compiled for its vector width).
#[inline(always)]
fn max_nhwc_rows(x: &[f32], p: &NhwcPool, r0: usize, ys: &mut [f32]) {
    let (g, c) = (p.g, p.c);
    let (h, w) = (g.in_dims[1], g.in_dims[2]);
    let (oh, ow) = (g.out_dims[1], g.out_dims[2]);
    debug_assert!(r0 + ys.len() / (ow * c) <= p.batch * oh);
    for (i, yr) in ys.chunks_exact_mut(ow * c).enumerate() {
        let (b, oy) = ((r0 + i) / oh, (r0 + i) % oh);
        let img = &x[b * h * w * c..][..h * w * c];
        let sh = (oy * g.stride[1]) as i64 - g.pad_begin[1] as i64;
        let (kh0, kh1) = taps(sh, g.kernel[1], g.dilation[1], 0, h as i64);
        for (ox, yp) in yr.chunks_exact_mut(c).enumerate() {
            let sw = (ox * g.stride[2]) as i64 - g.pad_begin[2] as i64;
            let (kw0, kw1) = taps(sw, g.kernel[2], g.dilation[2], 0, w as i64);
            // Input offsets of the window's taps inside the image, in fold order, folded 64 at
            // a time (the first batch starts from -inf).
            let mut offs = [0usize; 64];
            let (mut nt, mut first) = (0, true);
            for kh in kh0..kh1 {
                let iy = (sh + (kh * g.dilation[1]) as i64) as usize;
                for kw in kw0..kw1 {
                    let ix = (sw + (kw * g.dilation[2]) as i64) as usize;
                    if nt == offs.len() {
                        fold_taps(img, &offs, c, yp, first);
                        (nt, first) = (0, false);
                    }
                    offs[nt] = (iy * w + ix) * c;
                    nt += 1;
                }
            }
            fold_taps(img, &offs[..nt], c, yp, first);
        }
    }
}

#[cfg(test)]
mod tests;
