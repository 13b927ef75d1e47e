//! Sampling at coordinates: ONNX `GridSample` (nearest, linear, cubic; zeros, border,
//! reflection padding; any number of spatial dims) and `AffineGrid` (the sampling grid of an
//! affine transform, 2-D and 3-D). Scalar `f32` code shared by every ISA, so all targets give
//! the same bits; the sums follow the order of the ONNX reference implementation per dim.
use super::math::{floor, round_even};

/// `GridSample`'s interpolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleMode {
    Nearest,
    Linear,
    Cubic,
}

/// `GridSample`'s handling of coordinates outside the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Outside pixels are 0.
    Zeros,
    /// Clamped to the edge pixel.
    Border,
    /// Mirrored at the borders (repeatedly, for far-out coordinates).
    Reflection,
}

/// Most spatial dims `grid_sample` handles (ONNX defines 2-D and 3-D; 1-D works too).
pub const MAX_SPATIAL: usize = 3;

/// Reflects `x` at `lo`/`hi` until it lies between them (the ONNX reference's `_gs_reflect`).
fn reflect(x: f32, lo: f32, hi: f32) -> f32 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    let below = x < lo;
    let dx = if below {
        lo - x
    } else if x > hi {
        x - hi
    } else {
        return x;
    };
    let n = (dx / rng) as i64;
    let r = dx - n as f32 * rng;
    // An even number of whole reflections ends moving away from the border crossed first.
    if below == (n % 2 == 0) {
        lo + r
    } else {
        hi - r
    }
}

/// Keys' cubic convolution weights (A = -0.75) of the 4 taps around fraction `t`.
fn cubic_coeffs(t: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let x = if t < 0.0 { -t } else { t };
    let (x1, y, y2) = (x + 1.0, 1.0 - x, 2.0 - x);
    [
        ((A * x1 - 5.0 * A) * x1 + 8.0 * A) * x1 - 4.0 * A,
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0,
        ((A + 2.0) * y - (A + 3.0)) * y * y + 1.0,
        ((A * y2 - 5.0 * A) * y2 + 8.0 * A) * y2 - 4.0 * A,
    ]
}

/// The input row a tap at integer position `i` reads along a dim of length `len`, or `None`
/// for a zero (zeros padding outside the input).
fn tap_index(i: i64, len: usize, pad: Padding, lo: f32, hi: f32) -> Option<usize> {
    let last = len as i64 - 1;
    match pad {
        Padding::Zeros => (0..=last).contains(&i).then_some(i as usize),
        Padding::Border => Some(i.clamp(0, last) as usize),
        Padding::Reflection => Some((reflect(i as f32, lo, hi) as i64).clamp(0, last) as usize),
    }
}

/// The taps (input index, weight) of normalized coordinate `g` along a dim of length `len`.
fn taps(
    g: f32,
    len: usize,
    mode: SampleMode,
    pad: Padding,
    align: bool,
) -> [(Option<usize>, f32); 4] {
    let lenf = len as f32;
    let (lo, hi, mut x) = if align {
        (0.0, lenf - 1.0, (g + 1.0) / 2.0 * (lenf - 1.0))
    } else {
        (-0.5, lenf - 0.5, ((g + 1.0) * lenf - 1.0) / 2.0)
    };
    if mode == SampleMode::Nearest {
        x = round_even(x);
    }
    if x < lo || x > hi {
        match pad {
            Padding::Border => x = x.clamp(0.0, lenf - 1.0),
            Padding::Reflection => x = reflect(x, lo, hi),
            Padding::Zeros => {}
        }
    }
    let tap = |i: i64| tap_index(i, len, pad, lo, hi);
    let mut t = [(None, 0.0); 4];
    match mode {
        SampleMode::Nearest => t[0] = (tap(x as i64), 1.0),
        SampleMode::Linear => {
            let x0 = floor(x);
            let w = x - x0;
            t[0] = (tap(x0 as i64), 1.0 - w);
            t[1] = (tap(x0 as i64 + 1), w);
        }
        SampleMode::Cubic => {
            let x0 = floor(x);
            let c = cubic_coeffs(x - x0);
            for (k, ck) in c.into_iter().enumerate() {
                t[k] = (tap(x0 as i64 - 1 + k as i64), ck);
            }
        }
    }
    t
}

/// ONNX `GridSample`: `x` is `[N, C, s₁…s_r]` (`xs`), `grid` `[N, o₁…o_q, r]` holding
/// normalized coordinates in reverse dim order (x = last input dim first), `out`
/// `[N, C, o₁…o_q]` with `out_points` = o₁·…·o_q. `r` ≤ [`MAX_SPATIAL`].
#[allow(clippy::too_many_arguments)]
pub fn grid_sample(
    x: &[f32],
    xs: &[usize],
    grid: &[f32],
    out_points: usize,
    mode: SampleMode,
    pad: Padding,
    align: bool,
    out: &mut [f32],
) {
    let r = xs.len() - 2;
    assert!(
        (1..=MAX_SPATIAL).contains(&r),
        "GridSample on {r} spatial dims"
    );
    let (n, c) = (xs[0], xs[1]);
    let sp = &xs[2..];
    let plane: usize = sp.iter().product();
    let ntaps = match mode {
        SampleMode::Nearest => 1,
        SampleMode::Linear => 2,
        SampleMode::Cubic => 4,
    };
    let mut t = [[(None, 0.0f32); 4]; MAX_SPATIAL];
    for b in 0..n {
        for p in 0..out_points {
            let g = &grid[(b * out_points + p) * r..][..r];
            for d in 0..r {
                t[d] = taps(g[r - 1 - d], sp[d], mode, pad, align);
            }
            for ch in 0..c {
                let img = &x[(b * c + ch) * plane..][..plane];
                out[(b * c + ch) * out_points + p] = interpolate(img, sp, &t[..r], ntaps);
            }
        }
    }
}

/// Σ over the tap grid of Π weights · pixel, the last dim innermost (missing pixels are 0).
fn interpolate(img: &[f32], sp: &[usize], t: &[[(Option<usize>, f32); 4]], ntaps: usize) -> f32 {
    let Some((first, rest)) = t.split_first() else {
        return img[0];
    };
    let stride: usize = sp[1..].iter().product();
    let mut acc = 0.0f32;
    for &(i, w) in &first[..ntaps] {
        let v = match i {
            Some(i) => interpolate(&img[i * stride..][..stride], &sp[1..], rest, ntaps),
            None => 0.0,
        };
        acc += w * v;
    }
    acc
}

/// ONNX `AffineGrid`: `theta` is `[N, r, r+1]`, `sizes` the output's spatial dims
/// (`[H, W]` or `[D, H, W]`), `out` `[N, sizes…, r]` holding `theta · (x, y[, z], 1)` at each
/// point's base coordinates in [-1, 1] (pixel centres, or corners with `align`).
pub fn affine_grid(theta: &[f32], n: usize, sizes: &[usize], align: bool, out: &mut [f32]) {
    let r = sizes.len();
    let base = |i: usize, len: usize| -> f32 {
        // Computed in f64 like the reference's `np.arange`, then rounded once.
        let (i, l) = (i as f64, len as f64);
        let v = if align {
            if len > 1 {
                -1.0 + i * (2.0 / (l - 1.0))
            } else {
                -1.0
            }
        } else {
            let step = 2.0 / l;
            -1.0 + step / 2.0 + i * step
        };
        v as f32
    };
    let points: usize = sizes.iter().product();
    let mut idx = [0usize; MAX_SPATIAL];
    let mut coord = [0f32; MAX_SPATIAL + 1];
    for b in 0..n {
        let th = &theta[b * r * (r + 1)..][..r * (r + 1)];
        for p in 0..points {
            let mut rem = p;
            for d in (0..r).rev() {
                idx[d] = rem % sizes[d];
                rem /= sizes[d];
            }
            // Homogeneous coordinates (x, y[, z], 1): x runs along the last dim.
            for k in 0..r {
                coord[k] = base(idx[r - 1 - k], sizes[r - 1 - k]);
            }
            coord[r] = 1.0;
            for row in 0..r {
                let m = &th[row * (r + 1)..][..r + 1];
                let mut s = 0.0f32;
                for k in 0..=r {
                    s += m[k] * coord[k];
                }
                out[(b * points + p) * r + row] = s;
            }
        }
    }
}

/// `RoiAlign`'s attributes.
#[derive(Clone, Copy, Debug)]
pub struct RoiAlignParams {
    /// Output height and width (pooled bins per roi).
    pub out_h: usize,
    pub out_w: usize,
    /// Samples per bin along each axis; 0: `ceil(roi size / bins)`, per roi.
    pub sampling_ratio: usize,
    pub spatial_scale: f32,
    /// Max of the samples instead of their average.
    pub max: bool,
    /// `half_pixel` coordinates (opset 16's default): shift by half a pixel, no minimum roi size.
    pub half_pixel: bool,
}

/// The 4 bilinear taps (flat offsets into one channel's plane, weights) of sample point (y, x);
/// all weights 0 for a point more than one pixel outside the image.
fn roi_taps(y: f32, x: f32, h: usize, w: usize) -> [(usize, f32); 4] {
    if h == 0 || w == 0 || y < -1.0 || y > h as f32 || x < -1.0 || x > w as f32 {
        return [(0, 0.0); 4];
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut y0, mut x0) = (y as usize, x as usize);
    let (y1, x1);
    if y0 >= h - 1 {
        (y0, y1) = (h - 1, h - 1);
        y = y0 as f32;
    } else {
        y1 = y0 + 1;
    }
    if x0 >= w - 1 {
        (x0, x1) = (w - 1, w - 1);
        x = x0 as f32;
    } else {
        x1 = x0 + 1;
    }
    let (ly, lx) = (y - y0 as f32, x - x0 as f32);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    [
        (y0 * w + x0, hy * hx),
        (y0 * w + x1, hy * lx),
        (y1 * w + x0, ly * hx),
        (y1 * w + x1, ly * lx),
    ]
}

/// ONNX `RoiAlign` (the ONNX reference's and onnxruntime's algorithm): `x` is `[N, C, H, W]`,
/// `rois` `[R, 4]` as (x1, y1, x2, y2) in input coordinates before `spatial_scale`,
/// `batch[r]` the image of roi `r`; `out` is `[R, C, out_h, out_w]`. Max mode takes, like
/// they do, the largest *weighted tap* of each sample point. Err when a batch index is
/// outside `[0, N)`.
pub fn roi_align(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    rois: &[f32],
    batch: &[i64],
    p: RoiAlignParams,
    out: &mut [f32],
) -> Result<(), crate::Error> {
    let bins = p.out_h * p.out_w;
    let off = if p.half_pixel { 0.5 } else { 0.0 };
    for (r, &b) in batch.iter().enumerate() {
        if b < 0 || b as usize >= n {
            return Err(crate::Error::IndexOutOfRange {
                value: "batch_indices",
                node: "RoiAlign",
                index: b,
                len: n,
            });
        }
        let img = &x[b as usize * c * h * w..][..c * h * w];
        let roi = &rois[r * 4..][..4];
        let (x0, y0) = (
            roi[0] * p.spatial_scale - off,
            roi[1] * p.spatial_scale - off,
        );
        let (mut rw, mut rh) = (
            roi[2] * p.spatial_scale - off - x0,
            roi[3] * p.spatial_scale - off - y0,
        );
        if !p.half_pixel {
            (rw, rh) = (rw.max(1.0), rh.max(1.0));
        }
        let (bh, bw) = (rh / p.out_h as f32, rw / p.out_w as f32);
        let grid = |size: f32, bins: usize| match p.sampling_ratio {
            0 => super::math::ceil(size / bins as f32).max(0.0) as usize,
            s => s,
        };
        let (gh, gw) = (grid(rh, p.out_h), grid(rw, p.out_w));
        let count = (gh * gw).max(1) as f32;
        let o = &mut out[r * c * bins..][..c * bins];
        for ph in 0..p.out_h {
            for pw in 0..p.out_w {
                let bin = ph * p.out_w + pw;
                for iy in 0..gh {
                    let yy = y0 + ph as f32 * bh + (iy as f32 + 0.5) * bh / gh as f32;
                    for ix in 0..gw {
                        let xx = x0 + pw as f32 * bw + (ix as f32 + 0.5) * bw / gw as f32;
                        let t = roi_taps(yy, xx, h, w);
                        let first = iy == 0 && ix == 0;
                        for ch in 0..c {
                            let plane = &img[ch * h * w..][..h * w];
                            let v = t.map(|(i, wt)| wt * plane[i]);
                            let dst = &mut o[ch * bins + bin];
                            if p.max {
                                let m = v[0].max(v[1]).max(v[2]).max(v[3]);
                                *dst = if first { m } else { dst.max(m) };
                            } else {
                                let s = v[0] + v[1] + v[2] + v[3];
                                *dst = if first { s } else { *dst + s };
                            }
                        }
                    }
                }
                if gh * gw == 0 {
                    for ch in 0..c {
                        o[ch * bins + bin] = 0.0;
                    }
                } else if !p.max {
                    for ch in 0..c {
                        o[ch * bins + bin] /= count;
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_mirrors_repeatedly() {
        // Borders (-0.5, 2.5): 3.0 is 0.5 past the top → 2.0; -1.5 is 1 below → 0.5.
        assert_eq!(reflect(3.0, -0.5, 2.5), 2.0);
        assert_eq!(reflect(-1.5, -0.5, 2.5), 0.5);
        // 4 past the top of a range of 3: one full reflection, then 1 up from the bottom.
        assert_eq!(reflect(6.5, -0.5, 2.5), 0.5);
        assert_eq!(reflect(1.25, -0.5, 2.5), 1.25);
    }

    /// A 1-D row [10, 20, 30] sampled by hand: pixel centres at -2/3, 0, 2/3.
    #[test]
    fn linear_1d_by_hand() {
        let x = [10.0, 20.0, 30.0];
        let grid = [0.0, 1.0 / 3.0, 1.0, -1.0];
        let mut o = [0.0; 4];
        let run = |pad, o: &mut [f32; 4]| {
            grid_sample(&x, &[1, 1, 3], &grid, 4, SampleMode::Linear, pad, false, o)
        };
        run(Padding::Zeros, &mut o);
        // x = 1, 1.5, 2.5 (half outside: 30/2), -0.5 (10/2).
        assert_eq!(o, [20.0, 25.0, 15.0, 5.0]);
        run(Padding::Border, &mut o);
        assert_eq!(o, [20.0, 25.0, 30.0, 10.0]);
    }

    /// The weights of a cubic tap set sum to 1 and interpolate exactly at a sample.
    #[test]
    fn cubic_weights() {
        assert_eq!(cubic_coeffs(0.0), [0.0, 1.0, 0.0, 0.0]);
        let s: f32 = cubic_coeffs(0.3).iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
    }

    /// Identity theta gives the base grid: pixel centres of a 2×3 image.
    #[test]
    fn affine_identity() {
        let theta = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let mut o = [0.0; 12];
        affine_grid(&theta, 1, &[2, 3], false, &mut o);
        let (a, b) = (2.0f32 / 3.0, 0.5f32);
        let want = [-a, -b, 0.0, -b, a, -b, -a, b, 0.0, b, a, b];
        for (g, w) in o.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{o:?}");
        }
    }
}
