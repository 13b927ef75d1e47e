//! Float convolution by GEMM (im2col into sgemm's packed-B layout), its bias/activation
//! epilogue, and the transposed convolution.
use super::*;

/// Builds the packed B operand of `matmul::sgemm` for image `b`, group `grp` of the float
/// path: `col[K][P]` (K ordered `(c, ky, kx)` like ONNX weights, P = output pixels) as
/// `[P/16 panels][K][16]`, zero outside the image and in the last panel's tail.
///
/// Written run by run: for each K row and output row, the pixels between two panel boundaries
/// are one contiguous destination, filled from a contiguous (stride 1) or strided stretch of
/// one input row, with zeros where the window leaves the image. Threads take panel ranges.
pub fn im2col_f32_panels(g: &ConvGeom, b: usize, grp: usize, x: &[f32], col: &mut [f32]) {
    use crate::ops::matmul::SNR;
    g.validate();
    let (cg, k, p) = (g.cg(), g.k(), g.pixels());
    let panels = p.div_ceil(SNR);
    assert!(x.len() >= g.input_len(), "im2col_f32: input too short");
    assert!(col.len() >= panels * k * SNR, "im2col_f32: col too short");
    let img = &x[(b * g.c_in + grp * cg) * g.h * g.w..][..cg * g.h * g.w];
    let col = &mut col[..panels * k * SNR];
    if k == 0 || p == 0 {
        return;
    }
    // Fills panels [p0, p0 + n) (a chunk of `col` starting at panel p0).
    let fill = |p0: usize, chunk: &mut [f32]| {
        let n = chunk.len() / (k * SNR);
        let (q0, q1) = (p0 * SNR, ((p0 + n) * SNR).min(p));
        if q1 < (p0 + n) * SNR {
            // The last panel's tail (pixels ≥ P): zero for every K row.
            let last = &mut chunk[(n - 1) * k * SNR..];
            for row in last.chunks_exact_mut(SNR) {
                row[q1 - (p0 + n - 1) * SNR..].fill(0.0);
            }
        }
        let mut kidx = 0;
        for c in 0..cg {
            let plane = &img[c * g.h * g.w..(c + 1) * g.h * g.w];
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let (lo, hi) = g.valid_x(kx);
                    let off = kx * g.dw; // ix = ox·sw + off − pw
                    for oy in q0 / g.ow..q1.div_ceil(g.ow) {
                        let iy = g.in_y(oy, ky);
                        let (ra, rb) = ((oy * g.ow).max(q0), ((oy + 1) * g.ow).min(q1));
                        let mut q = ra;
                        while q < rb {
                            let j = q % SNR;
                            let len = (SNR - j).min(rb - q);
                            let pi = q / SNR - p0;
                            let dst = &mut chunk[(pi * k + kidx) * SNR + j..][..len];
                            let ox = q - oy * g.ow;
                            match iy {
                                None => dst.fill(0.0),
                                Some(iy) => {
                                    let xr = &plane[iy * g.w..(iy + 1) * g.w];
                                    let a = lo.clamp(ox, ox + len);
                                    let e = hi.clamp(a, ox + len);
                                    dst[..a - ox].fill(0.0);
                                    dst[e - ox..].fill(0.0);
                                    let d = &mut dst[a - ox..e - ox];
                                    if g.sw == 1 {
                                        // An element loop, not copy_from_slice: runs are at
                                        // most 16 floats and a memmove call costs more.
                                        let s0 = a + off - g.pw;
                                        for (v, &xv) in d.iter_mut().zip(&xr[s0..s0 + (e - a)]) {
                                            *v = xv;
                                        }
                                    } else {
                                        for (t, v) in d.iter_mut().enumerate() {
                                            *v = xr[(a + t) * g.sw + off - g.pw];
                                        }
                                    }
                                }
                            }
                            q += len;
                        }
                    }
                    kidx += 1;
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        let n = crate::par::pieces(panels, crate::par::MIN_ELEMS.div_ceil(k * SNR));
        if n > 1 {
            use rayon::prelude::*;
            let per = panels.div_ceil(n);
            col.par_chunks_mut(per * k * SNR)
                .enumerate()
                .with_max_len(1)
                .for_each(|(i, chunk)| fill(i * per, chunk));
            return;
        }
    }
    fill(0, col);
}

/// In place over `rows` rows of `len` values: `y = act(y + bias[r])` (no add without a bias).
pub fn bias_act_rows(
    y: &mut [f32],
    rows: usize,
    len: usize,
    bias: Option<&[f32]>,
    act: Activation,
) {
    assert!(y.len() >= rows * len, "bias_act_rows: too short");
    if let Some(b) = bias {
        assert!(b.len() >= rows, "bias_act_rows: bias too short");
    }
    if act == Activation::None && bias.is_none() {
        return;
    }
    for r in 0..rows {
        let row = &mut y[r * len..(r + 1) * len];
        match bias {
            Some(b) => {
                let b = b[r];
                for v in row.iter_mut() {
                    *v = act.apply(*v + b);
                }
            }
            None => {
                for v in row.iter_mut() {
                    *v = act.apply(*v);
                }
            }
        }
    }
}

/// A per-channel affine map over `[outer][c][inner]` (inference BatchNormalization not folded
/// into a convolution): `y = x·scale[ch] + shift[ch]`.
pub fn channel_affine(
    x: &[f32],
    outer: usize,
    c: usize,
    inner: usize,
    scale: &[f32],
    shift: &[f32],
    y: &mut [f32],
) {
    let n = outer * c * inner;
    assert!(x.len() >= n && y.len() >= n, "channel_affine: too short");
    assert!(
        scale.len() >= c && shift.len() >= c,
        "channel_affine: parameters too short"
    );
    if inner == 0 {
        return;
    }
    for (i, (yr, xr)) in y[..n]
        .chunks_exact_mut(inner)
        .zip(x[..n].chunks_exact(inner))
        .enumerate()
    {
        let (s, t) = (scale[i % c], shift[i % c]);
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = v * s + t;
        }
    }
}

/// The float GEMM path for one whole convolution: for every image and group, im2col into
/// `col` (at least `ceil(P/16)·16·K` f32) and `W_g · col` into NCHW `y`, then bias and
/// activation. `w` is ONNX's `[c_out][c_in/g][kh][kw]`.
#[allow(clippy::too_many_arguments)]
pub fn conv_f32_gemm(
    isa: Isa,
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    col: &mut [f32],
    y: &mut [f32],
) {
    use crate::ops::matmul::{FloatAct, PackedF32, sgemm};
    g.validate();
    let (k, p, og) = (g.k(), g.pixels(), g.og());
    assert!(w.len() >= g.c_out * k, "conv_f32_gemm: weights too short");
    assert!(y.len() >= g.output_len(), "conv_f32_gemm: output too short");
    if p == 0 || g.c_out == 0 {
        return;
    }
    for b in 0..g.batch {
        for grp in 0..g.groups {
            let rows = &mut y[(b * g.c_out + grp * og) * p..][..og * p];
            if k == 0 {
                rows.fill(0.0);
                continue;
            }
            im2col_f32_panels(g, b, grp, x, col);
            let packed = PackedF32 {
                k,
                n: p,
                data: &col[..p.div_ceil(crate::ops::matmul::SNR) * crate::ops::matmul::SNR * k],
                bias: None,
            };
            sgemm(
                isa,
                og,
                &w[grp * og * k..],
                k,
                packed,
                FloatAct::None,
                rows,
                p,
            );
        }
    }
    for b in 0..g.batch {
        let ys = &mut y[b * g.c_out * p..][..g.c_out * p];
        bias_act_rows(ys, g.c_out, p, bias, act);
    }
}

/// `ConvTranspose` (f32) for a geometry read the other way round: `h, w` are the *input*
/// sizes, `oh, ow` the output sizes, `ph, pw` the padding cropped from the top/left of the full
/// output, and input pixel `(iy, ix)` tap `(ky, kx)` lands on output `(iy·sh + ky·dh − ph,
/// ix·sw + kx·dw − pw)`. Per image and group: pack `x_g` (`cg × H·W`) into `xp` as sgemm's
/// B panels, `col = Wt_g · x_g` (`Wt_g` is `[og·kh·kw][cg]`, the weights transposed at compile
/// time), then scatter-add `col` into `y` (col2im), then bias. `xp` holds at least
/// `⌈HW/16⌉·16·cg` floats, `col` at least `og·kh·kw·H·W`.
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose_f32(
    isa: Isa,
    g: &ConvGeom,
    x: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    xp: &mut [f32],
    col: &mut [f32],
    y: &mut [f32],
) {
    use crate::ops::matmul::{FloatAct, PackedF32, SNR, sgemm};
    g.validate();
    let (cg, og) = (g.cg(), g.og());
    let hw = g.h * g.w;
    let taps = g.kh * g.kw;
    let rows = og * taps;
    let panels = hw.div_ceil(SNR);
    assert!(x.len() >= g.input_len(), "conv_transpose: input too short");
    assert!(
        wt.len() >= g.groups * rows * cg,
        "conv_transpose: weights too short"
    );
    assert!(
        y.len() >= g.output_len(),
        "conv_transpose: output too short"
    );
    assert!(
        xp.len() >= panels * SNR * cg,
        "conv_transpose: xp too short"
    );
    assert!(col.len() >= rows * hw, "conv_transpose: col too short");
    if let Some(b) = bias {
        assert!(b.len() >= g.c_out, "conv_transpose: bias too short");
    }
    let y = &mut y[..g.output_len()];
    y.fill(0.0);
    let ohw = g.oh * g.ow;
    for b in 0..g.batch {
        for grp in 0..g.groups {
            if hw == 0 || rows == 0 {
                continue;
            }
            let xg = &x[(b * g.c_in + grp * cg) * hw..][..cg * hw];
            for p in 0..panels {
                for c in 0..cg {
                    let dst = &mut xp[(p * cg + c) * SNR..][..SNR];
                    let src = &xg[c * hw + p * SNR..c * hw + ((p + 1) * SNR).min(hw)];
                    dst[..src.len()].copy_from_slice(src);
                    dst[src.len()..].fill(0.0);
                }
            }
            let packed = PackedF32 {
                k: cg,
                n: hw,
                data: &xp[..panels * SNR * cg],
                bias: None,
            };
            if cg == 0 {
                col[..rows * hw].fill(0.0);
            } else {
                sgemm(
                    isa,
                    rows,
                    &wt[grp * rows * cg..],
                    cg,
                    packed,
                    FloatAct::None,
                    col,
                    hw,
                );
            }
            for o in 0..og {
                let yc = &mut y[(b * g.c_out + grp * og + o) * ohw..][..ohw];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let r = (o * g.kh + ky) * g.kw + kx;
                        let cr = &col[r * hw..(r + 1) * hw];
                        for iy in 0..g.h {
                            let Some(oy) = (iy * g.sh + ky * g.dh)
                                .checked_sub(g.ph)
                                .filter(|&v| v < g.oh)
                            else {
                                continue;
                            };
                            for ix in 0..g.w {
                                if let Some(ox) = (ix * g.sw + kx * g.dw)
                                    .checked_sub(g.pw)
                                    .filter(|&v| v < g.ow)
                                {
                                    yc[oy * g.ow + ox] += cr[iy * g.w + ix];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if let Some(bb) = bias
        && ohw > 0
    {
        for (i, plane) in y.chunks_exact_mut(ohw).enumerate() {
            let v = bb[i % g.c_out];
            for e in plane {
                *e += v;
            }
        }
    }
}
