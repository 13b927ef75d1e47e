//! The direct depthwise convolution (one input channel per group), int8 or f32, NCHW.
use super::*;

/// An input element of the depthwise kernel, as the f32 the products use.
pub trait DwInput: Copy + Send + Sync {
    /// `self − za` as f32 (exact for u8 with an integer `za`).
    fn centered(self, za: f32) -> f32;
}
impl DwInput for u8 {
    #[inline(always)]
    fn centered(self, za: f32) -> f32 {
        self as f32 - za
    }
}
impl DwInput for i8 {
    #[inline(always)]
    fn centered(self, za: f32) -> f32 {
        self as f32 - za
    }
}
impl DwInput for f32 {
    #[inline(always)]
    fn centered(self, _za: f32) -> f32 {
        self
    }
}

/// Depthwise convolution (one input channel per group; `og()` output channels per group):
/// `y[b][co][oy][ox] = act(Σ (x − za)·w[co][ky][kx] · scale[co] + bias[co])`, where `scale` is
/// `a_scale · w_scale[co]` computed in that order (`w_scale` of length 1 or `c_out`; `None`
/// means no scaling, the float path). `w` is `c_out × kh × kw`, for int8 already centered
/// (`w − wz`, exact small integers stored as f32).
#[allow(clippy::too_many_arguments)]
pub fn depthwise<T: DwInput>(
    isa: Isa,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    scale: Option<(f32, &[f32])>,
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
) {
    g.validate();
    assert_eq!(
        g.cg(),
        1,
        "depthwise: more than one input channel per group"
    );
    assert!(x.len() >= g.input_len(), "depthwise: input too short");
    assert!(y.len() >= g.output_len(), "depthwise: output too short");
    assert!(
        w.len() >= g.c_out * g.kh * g.kw,
        "depthwise: weights too short"
    );
    if let Some((_, ws)) = scale {
        assert!(ws.len() == 1 || ws.len() >= g.c_out, "depthwise: scales");
    }
    if let Some(b) = bias {
        assert!(b.len() >= g.c_out, "depthwise: bias too short");
    }
    let planes = g.batch * g.c_out;
    let plane_len = g.pixels();
    let y = &mut y[..planes * plane_len];
    let one = |sc: &mut DwScratch, i: usize, out: &mut [f32]| {
        let (b, co) = (i / g.c_out, i % g.c_out);
        let ci = co / g.og();
        let xp = &x[(b * g.c_in + ci) * g.h * g.w..][..g.h * g.w];
        let wk = &w[co * g.kh * g.kw..][..g.kh * g.kw];
        let s = scale.map(|(a, ws)| a * ws[if ws.len() == 1 { 0 } else { co }]);
        let bb = bias.map(|b| b[co]);
        dispatch_plane(sc, isa, g, xp, za, wk, s, bb, act, out);
    };
    if plane_len == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        let per_plane = plane_len * g.kh * g.kw;
        let n = crate::par::pieces(
            planes,
            (4 * crate::par::MIN_ELEMS).div_ceil(per_plane.max(1)),
        );
        if n > 1 {
            use rayon::prelude::*;
            let per = planes.div_ceil(n);
            y.par_chunks_mut(per * plane_len)
                .enumerate()
                .with_max_len(1)
                .for_each(|(c, ys)| {
                    let mut sc = DwScratch::new();
                    for (j, out) in ys.chunks_exact_mut(plane_len).enumerate() {
                        one(&mut sc, c * per + j, out);
                    }
                });
            return;
        }
    }
    let mut sc = DwScratch::new();
    for (i, out) in y.chunks_exact_mut(plane_len).enumerate() {
        one(&mut sc, i, out);
    }
}

/// Outputs per row chunk of the depthwise kernel, and its padded input row buffer.
pub(super) const DW_CH: usize = 256;
pub(super) const DW_BUF: usize = 2048;
/// Most kernel taps the register-blocked depthwise path handles (7×7 is 49).
pub(super) const DW_TAPS: usize = 64;

/// The depthwise kernel's stack buffers, set up once per run of planes (zeroing 9 KB per
/// plane cost more than the arithmetic on deep layers' small planes).
pub(super) struct DwScratch {
    acc: [f32; DW_CH],
    buf: [f32; DW_BUF],
    /// Whole padded plane and its accumulators, for stride-1 layers with small planes.
    pbuf: [f32; DW_PLANE],
    pacc: [f32; DW_PLANE],
}

/// Largest padded plane (floats) the whole-plane depthwise path takes.
pub(super) const DW_PLANE: usize = 4096;

impl DwScratch {
    fn new() -> Self {
        DwScratch {
            acc: [0.0; DW_CH],
            buf: [0.0; DW_BUF],
            pbuf: [0.0; DW_PLANE],
            pacc: [0.0; DW_PLANE],
        }
    }
}

/// Stride-1 depthwise on a whole plane at once: the input is copied (centered) into a
/// zero-padded plane of row length `Wp = ow + (kw−1)·dw`, and every tap is one multiply-add
/// over all `oh·Wp` positions (the `Wp − ow` extra columns per row are computed and dropped).
/// Deep layers have planes like 10×15: row by row, most of the work would be loop tails.
/// Returns false (doing nothing) when the plane does not fit the scratch.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn plane_whole<T: DwInput>(
    sc: &mut DwScratch,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) -> bool {
    if g.sh != 1 || g.sw != 1 {
        return false;
    }
    let wp = g.ow + (g.kw - 1) * g.dw;
    let hp = g.oh + (g.kh - 1) * g.dh;
    // The last row's dropped columns read up to (kw−1)·dw floats past the plane: zeros.
    let tail = (g.kw - 1) * g.dw;
    if hp * wp + tail > DW_PLANE || g.oh * wp > DW_PLANE || wp == 0 {
        return false;
    }
    sc.pbuf[hp * wp..hp * wp + tail].fill(0.0);
    let (pbuf, pacc) = (&mut sc.pbuf[..hp * wp + tail], &mut sc.pacc[..g.oh * wp]);
    // pbuf[yy][xx] = x[yy − ph][xx − pw] (centered), 0 outside the image.
    for (yy, row) in pbuf[..hp * wp].chunks_exact_mut(wp).enumerate() {
        match yy.checked_sub(g.ph).filter(|&iy| iy < g.h) {
            None => row.fill(0.0),
            Some(iy) => {
                let xa = g.pw.min(wp);
                let xb = (g.pw + g.w).min(wp).max(xa);
                row[..xa].fill(0.0);
                row[xb..].fill(0.0);
                for (d, &v) in row[xa..xb]
                    .iter_mut()
                    .zip(&x[iy * g.w..iy * g.w + (xb - xa)])
                {
                    *d = v.centered(za);
                }
            }
        }
    }
    if g.kh * g.kw <= DW_TAPS {
        let mut taps = [(0usize, 0f32); DW_TAPS];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                taps[ky * g.kw + kx] = (ky * g.dh * wp + kx * g.dw, w[ky * g.kw + kx]);
            }
        }
        taps_blocked(pbuf, &taps[..g.kh * g.kw], pacc);
    } else {
        pacc.fill(0.0);
        let n = pacc.len();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let wv = w[ky * g.kw + kx];
                let o = ky * g.dh * wp + kx * g.dw;
                for (a, &v) in pacc.iter_mut().zip(&pbuf[o..o + n]) {
                    *a += v * wv;
                }
            }
        }
    }
    for oy in 0..g.oh {
        epilogue(
            &mut out[oy * g.ow..(oy + 1) * g.ow],
            &pacc[oy * wp..oy * wp + g.ow],
            s,
            b,
            act,
        );
    }
    true
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn dispatch_plane<T: DwInput>(
    sc: &mut DwScratch,
    isa: Isa,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) {
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has; AVX-512 VNNI implies AVX-512 F.
        Isa::Avx512Vnni => unsafe { plane_avx512(sc, g, x, za, w, s, b, act, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above; AVX2 and AVX-VNNI imply AVX2.
        Isa::Avx2 | Isa::AvxVnni => unsafe { plane_avx2(sc, g, x, za, w, s, b, act, out) },
        _ => plane(sc, g, x, za, w, s, b, act, out),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn plane_avx512<T: DwInput>(
    sc: &mut DwScratch,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) {
    plane(sc, g, x, za, w, s, b, act, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn plane_avx2<T: DwInput>(
    sc: &mut DwScratch,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) {
    plane(sc, g, x, za, w, s, b, act, out)
}

/// One output plane of the depthwise kernel (inlined into each ISA wrapper so that the loops
/// are vectorised for its width). No FMA is requested, and the products are exact anyway for
/// int8; for f32 the sum runs in tap order.
///
/// Per output row and chunk of up to `CH` outputs, each input row the window touches is
/// converted once (centered, f32) into a zero-padded buffer split by column phase (`ix mod
/// stride`), so that every kernel tap is one contiguous multiply-add over the chunk: no bounds
/// checks and no strided loads in the inner loop.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn plane<T: DwInput>(
    sc: &mut DwScratch,
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) {
    if plane_whole(sc, g, x, za, w, s, b, act, out) {
        return;
    }
    const CH: usize = DW_CH;
    let span = (g.kw - 1) * g.dw; // extra input columns one chunk needs beyond CH·sw
    if CH * g.sw + span + 1 > DW_BUF || g.sw > 8 {
        return plane_generic(g, x, za, w, s, b, act, out);
    }
    let DwScratch { acc, buf, .. } = sc;
    // Register-blocked variant: convert the window's kh input rows first (one phase-split
    // buffer per ky), then accumulate all taps of 64 outputs in registers and store once.
    // The per-tap form below reads and writes the accumulators through memory for every tap
    // (a load, multiply, add and store per output per tap). Same taps in the same order
    // (ky, then kx, from 0), so the same sums.
    let cspan = span.div_ceil(g.sw);
    let chn = (DW_BUF / (g.kh * g.sw)).saturating_sub(cspan + 1).min(CH);
    if g.kh * g.kw <= DW_TAPS && chn >= 16 {
        for oy in 0..g.oh {
            let orow = &mut out[oy * g.ow..(oy + 1) * g.ow];
            for o0 in (0..g.ow).step_by(chn) {
                let o1 = (o0 + chn).min(g.ow);
                let n = o1 - o0;
                let v0 = o0 * g.sw;
                let plen = ((n - 1) * g.sw + span + 1).div_ceil(g.sw);
                // (buffer offset, weight) of every valid tap, in accumulation order.
                let mut taps = [(0usize, 0f32); DW_TAPS];
                let mut nt = 0;
                for ky in 0..g.kh {
                    let Some(iy) = g.in_y(oy, ky) else { continue };
                    let kb = ky * g.sw * plen;
                    fill_phases(
                        g,
                        &x[iy * g.w..(iy + 1) * g.w],
                        za,
                        v0,
                        plen,
                        &mut buf[kb..],
                    );
                    for kx in 0..g.kw {
                        let t = kx * g.dw;
                        taps[nt] = (kb + (t % g.sw) * plen + t / g.sw, w[ky * g.kw + kx]);
                        nt += 1;
                    }
                }
                let acc = &mut acc[..n];
                taps_blocked(buf, &taps[..nt], acc);
                epilogue(&mut orow[o0..o1], acc, s, b, act);
            }
        }
        return;
    }
    for oy in 0..g.oh {
        let orow = &mut out[oy * g.ow..(oy + 1) * g.ow];
        for o0 in (0..g.ow).step_by(CH) {
            let o1 = (o0 + CH).min(g.ow);
            let n = o1 - o0;
            let acc = &mut acc[..n];
            acc.fill(0.0);
            // Virtual columns v = ix + pw covered by this chunk: [o0·sw, o0·sw + len).
            let v0 = o0 * g.sw;
            let len = (n - 1) * g.sw + span + 1;
            // Each phase r holds v0 + r, v0 + r + sw, …: `plen` entries.
            let plen = len.div_ceil(g.sw);
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                let xrow = &x[iy * g.w..(iy + 1) * g.w];
                fill_phases(g, xrow, za, v0, plen, buf);
                for kx in 0..g.kw {
                    let wv = w[ky * g.kw + kx];
                    let t = kx * g.dw;
                    let (r, u0) = (t % g.sw, t / g.sw);
                    let src = &buf[r * plen + u0..r * plen + u0 + n];
                    for (a, &v) in acc.iter_mut().zip(src) {
                        *a += v * wv;
                    }
                }
            }
            epilogue(&mut orow[o0..o1], acc, s, b, act);
        }
    }
}

/// Converts the input columns one row chunk needs (virtual columns `v0…`, padding zero) into
/// `sw` phase buffers of `plen` entries at `buf` (phase r holds v0 + r, v0 + r + sw, …), centered.
#[inline(always)]
pub(super) fn fill_phases<T: DwInput>(
    g: &ConvGeom,
    xrow: &[T],
    za: f32,
    v0: usize,
    plen: usize,
    buf: &mut [f32],
) {
    for r in 0..g.sw {
        let ph = &mut buf[r * plen..(r + 1) * plen];
        // Phase r, entry u reads ix = v0 + r + u·sw − pw: valid for u in [ua, ub).
        let first = v0 + r; // ix + pw of u = 0
        let ua = g.pw.saturating_sub(first).div_ceil(g.sw).min(plen);
        let ub = if g.w + g.pw > first {
            (g.w + g.pw - first).div_ceil(g.sw).min(plen)
        } else {
            0
        }
        .max(ua);
        ph[..ua].fill(0.0);
        ph[ub..].fill(0.0);
        let ix0 = first + ua * g.sw - g.pw;
        let d = &mut ph[ua..ub];
        if g.sw == 1 {
            for (d, &v) in d.iter_mut().zip(&xrow[ix0..ix0 + (ub - ua)]) {
                *d = v.centered(za);
            }
        } else if g.sw == 2 {
            // Even elements of pairs: a form the compiler vectorises (byte
            // deinterleave), unlike the strided index below.
            let src = &xrow[ix0..];
            let pairs = src.chunks_exact(2);
            let np = pairs.len();
            for (d, p) in d.iter_mut().zip(pairs) {
                *d = p[0].centered(za);
            }
            if d.len() > np {
                d[np] = src[2 * np].centered(za);
            }
        } else {
            for (u, d) in d.iter_mut().enumerate() {
                *d = xrow[ix0 + u * g.sw].centered(za);
            }
        }
    }
}

/// `acc[j] = Σ_taps buf[off + j]·w` for `j < acc.len()`, taps in order, accumulated in
/// registers over blocks of 64 then 16 outputs (one memory write per output instead of one
/// read-modify-write per tap). Each sum is the same sequence of rounded multiply-adds as a
/// per-tap pass would compute.
#[inline(always)]
pub(super) fn taps_blocked(buf: &[f32], taps: &[(usize, f32)], acc: &mut [f32]) {
    let n = acc.len();
    let mut j = 0;
    macro_rules! block {
        ($l:expr) => {
            while j + $l <= n {
                let mut a = [0f32; $l];
                for &(off, wv) in taps {
                    let src = &buf[off + j..off + j + $l];
                    for (a, &v) in a.iter_mut().zip(src) {
                        *a += v * wv;
                    }
                }
                acc[j..j + $l].copy_from_slice(&a);
                j += $l;
            }
        };
    }
    block!(64);
    block!(16);
    block!(4);
    while j < n {
        let mut a = 0f32;
        for &(off, wv) in taps {
            a += buf[off + j] * wv;
        }
        acc[j] = a;
        j += 1;
    }
}

/// `dst = act(acc·s + b)` (each part optional). The activation is matched once here, not per
/// element, so that each loop below vectorises.
#[inline(always)]
pub(super) fn epilogue(
    dst: &mut [f32],
    acc: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
) {
    match act {
        Activation::None => epilogue_with(dst, acc, s, b, |v| v),
        Activation::Relu => epilogue_with(dst, acc, s, b, |v| Activation::Relu.apply(v)),
        Activation::Clip { min, max } => {
            epilogue_with(dst, acc, s, b, |v| Activation::Clip { min, max }.apply(v))
        }
        Activation::Gelu => epilogue_with(dst, acc, s, b, |v| Activation::Gelu.apply(v)),
    }
}

#[inline(always)]
pub(super) fn epilogue_with(
    dst: &mut [f32],
    acc: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: impl Fn(f32) -> f32,
) {
    struct Act<F>(F);
    impl<F: Fn(f32) -> f32> Act<F> {
        #[inline(always)]
        fn apply(&self, v: f32) -> f32 {
            (self.0)(v)
        }
    }
    let act = Act(act);
    match (s, b) {
        (Some(s), Some(b)) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = act.apply(a * s + b);
            }
        }
        (Some(s), None) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = act.apply(a * s);
            }
        }
        (None, Some(b)) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = act.apply(a + b);
            }
        }
        (None, None) => {
            for (d, &a) in dst.iter_mut().zip(acc) {
                *d = act.apply(a);
            }
        }
    }
}

/// The plain loop nest, for geometries whose padded row chunk does not fit the stack buffer.
#[allow(clippy::too_many_arguments)]
pub(super) fn plane_generic<T: DwInput>(
    g: &ConvGeom,
    x: &[T],
    za: f32,
    w: &[f32],
    s: Option<f32>,
    b: Option<f32>,
    act: Activation,
    out: &mut [f32],
) {
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let mut a = 0.0f32;
            for ky in 0..g.kh {
                let Some(iy) = g.in_y(oy, ky) else { continue };
                for kx in 0..g.kw {
                    if let Some(ix) = g.in_x(ox, kx) {
                        a += x[iy * g.w + ix].centered(za) * w[ky * g.kw + kx];
                    }
                }
            }
            epilogue(
                &mut out[oy * g.ow + ox..oy * g.ow + ox + 1],
                &[a],
                s,
                b,
                act,
            );
        }
    }
}
