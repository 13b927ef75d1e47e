//! ONNX `Resize` (and `Upsample`): nearest over any axes, linear over the last one or two.
//!
//! Source coordinates are computed in `f64` from the `f32` scale, as the ONNX reference does,
//! so nearest-neighbour ties round the same way. Per output column the source index (and
//! weight) is computed once per block of `BLOCK` columns into a small stack table and reused
//! for every row, so the row loops are plain gathers.
//!
//! Nearest upsampling by an integer factor `f` along the last axis (source column `o / f`, as
//! asymmetric + floor and the rounding modes of half_pixel give for integer scales — checked
//! per call against the general index function, not assumed from the attributes) writes each
//! input row as every element repeated `f` times, `LANES` inputs at a time, in a function
//! compiled for the CPU's vector width; repeated output rows are copies of the row before.

use super::elementwise::MAX_DIMS;
use crate::isa::Isa;

/// Columns per stack table (small enough for embedded stacks: ≈ 1.5 KiB for linear).
const BLOCK: usize = 64;

/// ONNX `coordinate_transformation_mode`: where output position `x` samples the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coord {
    /// `(x + 0.5) / scale - 0.5`
    HalfPixel,
    /// Like `HalfPixel`, recentred when `out ≠ in · scale` (opset 19).
    HalfPixelSymmetric,
    /// `HalfPixel`, but 0 when the output length is 1.
    PytorchHalfPixel,
    /// `x · (in - 1) / (out - 1)` (0 when the output length is 1).
    AlignCorners,
    /// `x / scale`
    Asymmetric,
    /// `(x + 0.5) / scale`
    TfHalfPixelForNearest,
}

/// ONNX `nearest_mode`: how a fractional source coordinate picks an input element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Upsample / Resize-10: floor when upsampling (scale ≥ 1), ceil when downsampling.
    Simple,
}

/// One resized axis: input and output lengths and the scale (`out / in` when the model gave
/// sizes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Axis {
    pub input: usize,
    pub output: usize,
    pub scale: f64,
}

impl Axis {
    /// Unchanged axes are copied as is, whatever the coordinate mode (as the ONNX reference
    /// skips them).
    fn identity(&self) -> bool {
        self.scale == 1.0 && self.input == self.output
    }
}

#[inline]
fn floor(x: f64) -> f64 {
    // |x| is far below 2^52 for any coordinate; `f64::floor` is std-only.
    let t = x as i64 as f64;
    if t > x { t - 1.0 } else { t }
}

/// The input coordinate output position `o` maps to.
#[inline]
pub fn source_coord(mode: Coord, o: usize, a: &Axis) -> f64 {
    let (x, s) = (o as f64, a.scale);
    match mode {
        Coord::HalfPixel => (x + 0.5) / s - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = a.output as f64 / (s * a.input as f64);
            let center = a.input as f64 / 2.0;
            center * (1.0 - adjustment) + (x + 0.5) / s - 0.5
        }
        Coord::PytorchHalfPixel => {
            if a.output > 1 {
                (x + 0.5) / s - 0.5
            } else {
                0.0
            }
        }
        Coord::AlignCorners => {
            if a.output > 1 {
                x * (a.input as f64 - 1.0) / (a.output as f64 - 1.0)
            } else {
                0.0
            }
        }
        Coord::Asymmetric => x / s,
        Coord::TfHalfPixelForNearest => (x + 0.5) / s,
    }
}

/// The nearest input index of output position `o` (clamped to the input).
#[inline]
fn nearest_index(coord: Coord, mode: Nearest, o: usize, a: &Axis) -> usize {
    if a.identity() {
        return o;
    }
    let x = source_coord(coord, o, a);
    let fl = floor(x);
    let r = x - fl;
    let up = match mode {
        Nearest::RoundPreferFloor => r > 0.5,
        Nearest::RoundPreferCeil => r >= 0.5,
        Nearest::Floor => false,
        Nearest::Ceil => r > 0.0,
        Nearest::Simple => a.scale < 1.0 && r > 0.0,
    };
    let i = if up { fl + 1.0 } else { fl };
    if i <= 0.0 {
        0
    } else {
        (i as usize).min(a.input - 1)
    }
}

/// The two input indices and the weight of the second for linear interpolation.
#[inline]
fn linear_taps(coord: Coord, o: usize, a: &Axis) -> (usize, usize, f32) {
    if a.identity() {
        return (o, o, 0.0);
    }
    let x = source_coord(coord, o, a).clamp(0.0, (a.input - 1) as f64);
    let i0 = floor(x);
    let i0u = i0 as usize;
    (i0u, (i0u + 1).min(a.input - 1), (x - i0) as f32)
}

/// Nearest-neighbour resize of `x` (shape `axes[..].input`) into `out` (shape
/// `axes[..].output`). An empty input leaves `out` untouched. Panics if the lengths do not
/// match or the rank is 0 or above `MAX_DIMS` (codegen checks these).
pub fn nearest<T: Copy>(x: &[T], out: &mut [T], axes: &[Axis], coord: Coord, mode: Nearest) {
    nearest_isa(Isa::current(), x, out, axes, coord, mode)
}

/// The integer factor `f ≥ 2` by which axis `a` repeats each input element (output `o`
/// reads input `o / f`), if it does.
fn repeat_factor(coord: Coord, mode: Nearest, a: &Axis) -> Option<usize> {
    if a.input == 0 || !a.output.is_multiple_of(a.input) || a.output / a.input < 2 {
        return None;
    }
    let f = a.output / a.input;
    (0..a.output)
        .all(|o| nearest_index(coord, mode, o, a) == o / f)
        .then_some(f)
}

/// Inputs per step of the repeating row writer.
const LANES: usize = 16;

/// Writes `row` repeated element-wise `F` times (`FL = F · LANES`, `FH = FL / 2`) into each of the
/// `out.len() / ow` output rows of `out` (`ow = F · row.len()`), `LANES` inputs at a time:
/// each chunk is built once and stored to every row; the last chunk ends at the row's end
/// (overlapping the one before).
#[inline(always)]
fn repeat_rows_n<T: Copy, const F: usize, const FL: usize, const FH: usize>(
    row: &[T],
    out: &mut [T],
    ow: usize,
) {
    let n = row.len();
    if n < LANES {
        for o in out.chunks_exact_mut(ow) {
            for (j, &v) in row.iter().enumerate() {
                for k in 0..F {
                    o[j * F + k] = v;
                }
            }
        }
        return;
    }
    // Whole chunks of LANES inputs, then half chunks; the last half chunk ends at the row's
    // end (overlapping the one before).
    let mut at = 0;
    while at + LANES <= n {
        let x: &[T; LANES] = row[at..at + LANES].try_into().unwrap();
        // Built whole, then stored: one permute per output register.
        let mut v = [x[0]; FL];
        for (l, v) in v.iter_mut().enumerate() {
            *v = x[l / F];
        }
        for o in out.chunks_exact_mut(ow) {
            let o: &mut [T; FL] = (&mut o[at * F..(at + LANES) * F]).try_into().unwrap();
            *o = v;
        }
        at += LANES;
    }
    while at < n {
        let at_h = at.min(n - LANES / 2);
        let x: &[T; LANES / 2] = row[at_h..at_h + LANES / 2].try_into().unwrap();
        let mut v = [x[0]; FH];
        for (l, v) in v.iter_mut().enumerate() {
            *v = x[l / F];
        }
        for o in out.chunks_exact_mut(ow) {
            o[at_h * F..(at_h + LANES / 2) * F].copy_from_slice(&v);
        }
        at = at_h + LANES / 2;
    }
}

/// `out[k·ow + o] = row[o / f]` for every output row `k` of `out`.
#[inline(always)]
fn repeat_rows<T: Copy>(row: &[T], f: usize, out: &mut [T], ow: usize) {
    match f {
        2 => repeat_rows_n::<T, 2, { 2 * LANES }, LANES>(row, out, ow),
        3 => repeat_rows_n::<T, 3, { 3 * LANES }, { 3 * LANES / 2 }>(row, out, ow),
        4 => repeat_rows_n::<T, 4, { 4 * LANES }, { 2 * LANES }>(row, out, ow),
        8 => repeat_rows_n::<T, 8, { 8 * LANES }, { 4 * LANES }>(row, out, ow),
        _ => {
            for o in out.chunks_exact_mut(ow) {
                for (o, &v) in o.chunks_exact_mut(f).zip(row) {
                    o.fill(v);
                }
            }
        }
    }
}

/// The repeating path of [`nearest`]: last axis repeats each input `f` times.
#[inline(always)]
fn nearest_repeat<T: Copy>(
    x: &[T],
    out: &mut [T],
    axes: &[Axis],
    coord: Coord,
    mode: Nearest,
    f: usize,
) {
    let r = axes.len();
    let mut strides = [0usize; MAX_DIMS];
    let mut s = 1;
    for d in (0..r).rev() {
        strides[d] = s;
        s *= axes[d].input;
    }
    let (iw, ow) = (axes[r - 1].input, axes[r - 1].output);
    let mut zero = [0usize; MAX_DIMS];
    // Per outer axis: the factor when it repeats each input (index `o / f`; 1: unchanged),
    // so that the per-row index needs no floating point.
    let mut div = [0usize; MAX_DIMS];
    for d in 0..r - 1 {
        zero[d] = nearest_index(coord, mode, 0, &axes[d]);
        div[d] = if axes[d].identity() {
            1
        } else {
            repeat_factor(coord, mode, &axes[d]).unwrap_or(0)
        };
    }
    let index = |d: usize, o: usize| match div[d] {
        0 => nearest_index(coord, mode, o, &axes[d]),
        f => o / f,
    };
    if r >= 2 && axes[..r - 2].iter().all(Axis::identity) {
        // Planes of the unchanged leading axes: per output row, its source row, and the run
        // of following output rows with the same source, written together.
        let (ih, oh) = (axes[r - 2].input, axes[r - 2].output);
        let planes = x.len() / (ih * iw);
        for (xp, op) in x
            .chunks_exact(ih * iw)
            .zip(out.chunks_exact_mut(oh * ow))
            .take(planes)
        {
            if div[r - 2] >= 1 {
                // Rows repeat `fh` times (1: unchanged): input row h gives output rows
                // `h·fh..(h+1)·fh`.
                let fh = div[r - 2];
                for (h, rows) in op.chunks_exact_mut(fh * ow).enumerate() {
                    repeat_rows(&xp[h * iw..(h + 1) * iw], f, rows, ow);
                }
                continue;
            }
            let mut o = 0;
            while o < oh {
                let h = index(r - 2, o);
                let mut run = 1;
                while o + run < oh && index(r - 2, o + run) == h {
                    run += 1;
                }
                let row = &xp[h * iw..(h + 1) * iw];
                repeat_rows(row, f, &mut op[o * ow..(o + run) * ow], ow);
                o += run;
            }
        }
        return;
    }
    let mut idx = [0usize; MAX_DIMS];
    let mut src = zero;
    let mut prev = usize::MAX;
    let rows = out.len() / ow;
    let mut ri = 0;
    while ri < rows {
        let base: usize = (0..r - 1).map(|d| src[d] * strides[d]).sum();
        let at = ri * ow;
        // Output rows from this one that read the same source row, when the next-to-last
        // axis repeats by an integer factor: written together.
        let run = match r {
            1 => 1,
            _ if div[r - 2] > 1 => {
                let (i, fh) = (idx[r - 2], div[r - 2]);
                (fh - i % fh).min(axes[r - 2].output - i)
            }
            _ => 1,
        };
        if base == prev && run == 1 {
            // Upsampling repeats source rows: copy the row just written.
            out.copy_within(at - ow..at, at);
        } else {
            repeat_rows(&x[base..base + iw], f, &mut out[at..at + run * ow], ow);
            prev = base;
        }
        // Odometer over the outer output axes, `run` rows on; only changed axes are remapped.
        for _ in 0..run {
            let mut d = r - 1;
            while d > 0 {
                d -= 1;
                idx[d] += 1;
                if idx[d] < axes[d].output {
                    src[d] = index(d, idx[d]);
                    break;
                }
                idx[d] = 0;
                src[d] = zero[d];
            }
        }
        ri += run;
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use super::{Axis, Coord, Nearest};

    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn nearest_repeat_avx512<T: Copy>(
        x: &[T],
        out: &mut [T],
        axes: &[Axis],
        coord: Coord,
        mode: Nearest,
        f: usize,
    ) {
        super::nearest_repeat(x, out, axes, coord, mode, f)
    }

    /// # Safety
    /// CPU has avx512f, avx512bw and avx512vl.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
    pub(super) unsafe fn linear_avx512(
        x: &[f32],
        planes: usize,
        h: Axis,
        w: Axis,
        coord: Coord,
        out: &mut [f32],
    ) {
        super::linear_rows(x, planes, h, w, coord, out)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn linear_avx2(
        x: &[f32],
        planes: usize,
        h: Axis,
        w: Axis,
        coord: Coord,
        out: &mut [f32],
    ) {
        super::linear_rows(x, planes, h, w, coord, out)
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn nearest_repeat_avx2<T: Copy>(
        x: &[T],
        out: &mut [T],
        axes: &[Axis],
        coord: Coord,
        mode: Nearest,
        f: usize,
    ) {
        super::nearest_repeat(x, out, axes, coord, mode, f)
    }
}

/// [`nearest`] on the vector width of `isa` (resolved against the CPU).
fn nearest_isa<T: Copy>(
    isa: Isa,
    x: &[T],
    out: &mut [T],
    axes: &[Axis],
    coord: Coord,
    mode: Nearest,
) {
    let r = axes.len();
    assert!((1..=MAX_DIMS).contains(&r), "resize: rank");
    assert_eq!(
        x.len(),
        axes.iter().map(|a| a.input).product::<usize>(),
        "resize: input length"
    );
    assert_eq!(
        out.len(),
        axes.iter().map(|a| a.output).product::<usize>(),
        "resize: output length"
    );
    if x.is_empty() || out.is_empty() {
        return;
    }
    if let Some(f) = repeat_factor(coord, mode, &axes[r - 1]) {
        match isa.resolve() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `resolve` only returns families the CPU has; the AVX-512 family has
            // avx512f/bw/vl, the AVX2 ones avx2.
            Isa::Avx512Vnni => unsafe { x86::nearest_repeat_avx512(x, out, axes, coord, mode, f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Isa::Avx2 | Isa::AvxVnni => unsafe {
                x86::nearest_repeat_avx2(x, out, axes, coord, mode, f)
            },
            _ => nearest_repeat(x, out, axes, coord, mode, f),
        }
        return;
    }
    nearest_generic(x, out, axes, coord, mode)
}

/// [`nearest`] by per-column index tables (every case; the reference for the fast path).
fn nearest_generic<T: Copy>(x: &[T], out: &mut [T], axes: &[Axis], coord: Coord, mode: Nearest) {
    let r = axes.len();
    let mut strides = [0usize; MAX_DIMS];
    let mut s = 1;
    for d in (0..r).rev() {
        strides[d] = s;
        s *= axes[d].input;
    }
    let last = &axes[r - 1];
    let ow = last.output;
    // Source index of output index 0 on each outer axis (where the odometer restarts).
    let mut zero = [0usize; MAX_DIMS];
    for d in 0..r - 1 {
        zero[d] = nearest_index(coord, mode, 0, &axes[d]);
    }
    let mut table = [0usize; BLOCK];
    let mut c0 = 0;
    while c0 < ow {
        let cn = (ow - c0).min(BLOCK);
        for (j, t) in table[..cn].iter_mut().enumerate() {
            *t = nearest_index(coord, mode, c0 + j, last);
        }
        let mut idx = [0usize; MAX_DIMS];
        let mut src = zero;
        let mut prev = usize::MAX;
        let rows = out.len() / ow;
        for ri in 0..rows {
            let base: usize = (0..r - 1).map(|d| src[d] * strides[d]).sum();
            let at = ri * ow + c0;
            if base == prev {
                // Upsampling repeats source rows: copy the row just written.
                out.copy_within(at - ow..at - ow + cn, at);
            } else {
                let s_row = &x[base..base + last.input];
                for (o, &i) in out[at..at + cn].iter_mut().zip(&table[..cn]) {
                    *o = s_row[i];
                }
                prev = base;
            }
            // Odometer over the outer output axes; only changed axes are remapped.
            let mut d = r - 1;
            while d > 0 {
                d -= 1;
                idx[d] += 1;
                if idx[d] < axes[d].output {
                    src[d] = nearest_index(coord, mode, idx[d], &axes[d]);
                    break;
                }
                idx[d] = 0;
                src[d] = zero[d];
            }
        }
        c0 += cn;
    }
}

/// Bilinear resize of `planes` planes of `h.input × w.input` into `h.output × w.output` (a
/// 1-D resize is `h` = identity with length 1). Weights are computed in `f64`, then the value
/// as `(1-wy)·((1-wx)·a + wx·b) + wy·((1-wx)·c + wx·d)` in `f32`. An empty input leaves `out`
/// untouched.
///
/// The width interpolation `(1-wx)·a + wx·b` of an input row is the same for every output row
/// that reads it, so it is computed once per input row (kept for the next output rows) and
/// each output row is one vectorised blend of two such rows: the same operations on the same
/// values as the formula, so the same bits.
pub fn linear(x: &[f32], planes: usize, h: Axis, w: Axis, coord: Coord, out: &mut [f32]) {
    linear_isa(Isa::current(), x, planes, h, w, coord, out)
}

/// Output columns per block of [`linear`] (its tables and two interpolated rows: 10 KiB).
const LBLOCK: usize = 512;

/// [`linear`] on the vector width of `isa` (resolved against the CPU).
fn linear_isa(isa: Isa, x: &[f32], planes: usize, h: Axis, w: Axis, coord: Coord, out: &mut [f32]) {
    assert_eq!(x.len(), planes * h.input * w.input, "resize: input length");
    assert_eq!(
        out.len(),
        planes * h.output * w.output,
        "resize: output length"
    );
    if x.is_empty() || out.is_empty() {
        return;
    }
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `resolve` only returns families the CPU has; the AVX-512 family has
        // avx512f/bw/vl, the AVX2 ones avx2.
        Isa::Avx512Vnni => unsafe { x86::linear_avx512(x, planes, h, w, coord, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2 | Isa::AvxVnni => unsafe { x86::linear_avx2(x, planes, h, w, coord, out) },
        _ => linear_rows(x, planes, h, w, coord, out),
    }
}

/// The body of [`linear`] (inlined into each ISA's wrapper).
#[inline(always)]
fn linear_rows(x: &[f32], planes: usize, h: Axis, w: Axis, coord: Coord, out: &mut [f32]) {
    let (iw, ow) = (w.input, w.output);
    // Per output column of the block: source columns, weight of the second and of the first.
    let mut t0 = [0u32; LBLOCK];
    let mut t1 = [0u32; LBLOCK];
    let mut tw = [0f32; LBLOCK];
    let mut tw1 = [0f32; LBLOCK];
    // Two width-interpolated input rows (slot = row mod 2: an output row reads rows h0 and
    // h0 + 1, or h0 twice).
    let mut rows = [[0f32; LBLOCK]; 2];
    let mut c0 = 0;
    while c0 < ow {
        let cn = (ow - c0).min(LBLOCK);
        for j in 0..cn {
            let (i0, i1, wx) = linear_taps(coord, c0 + j, &w);
            (t0[j], t1[j], tw[j], tw1[j]) = (i0 as u32, i1 as u32, wx, 1.0 - wx);
        }
        for (p, plane) in out.chunks_exact_mut(h.output * ow).enumerate().take(planes) {
            let xp = &x[p * h.input * iw..(p + 1) * h.input * iw];
            // Which input row each slot holds.
            let mut held = [usize::MAX; 2];
            for (oh, row) in plane.chunks_exact_mut(ow).enumerate() {
                let (h0, h1, wy) = linear_taps(coord, oh, &h);
                for r in [h0, h1] {
                    if held[r % 2] != r {
                        let src = &xp[r * iw..(r + 1) * iw];
                        let dst = &mut rows[r % 2][..cn];
                        for (j, d) in dst.iter_mut().enumerate() {
                            *d = tw1[j] * src[t0[j] as usize] + tw[j] * src[t1[j] as usize];
                        }
                        held[r % 2] = r;
                    }
                }
                let (top, bot) = (&rows[h0 % 2][..cn], &rows[h1 % 2][..cn]);
                let wy1 = 1.0 - wy;
                for ((d, &a), &b) in row[c0..c0 + cn].iter_mut().zip(top).zip(bot) {
                    *d = wy1 * a + wy * b;
                }
            }
        }
        c0 += cn;
    }
}

/// [`linear`] by the direct formula per output element (the reference for the fast path).
#[cfg(test)]
fn linear_direct(x: &[f32], planes: usize, h: Axis, w: Axis, coord: Coord, out: &mut [f32]) {
    let (iw, ow) = (w.input, w.output);
    for (p, plane) in out.chunks_exact_mut(h.output * ow).enumerate().take(planes) {
        let xp = &x[p * h.input * iw..(p + 1) * h.input * iw];
        for (oh, row) in plane.chunks_exact_mut(ow).enumerate() {
            let (h0, h1, wy) = linear_taps(coord, oh, &h);
            let (ra, rb) = (&xp[h0 * iw..(h0 + 1) * iw], &xp[h1 * iw..(h1 + 1) * iw]);
            for (o, d) in row.iter_mut().enumerate() {
                let (i0, i1, wx) = linear_taps(coord, o, &w);
                let top = (1.0 - wx) * ra[i0] + wx * ra[i1];
                let bot = (1.0 - wx) * rb[i0] + wx * rb[i1];
                *d = (1.0 - wy) * top + wy * bot;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    fn ax(input: usize, output: usize, scale: f64) -> Axis {
        Axis {
            input,
            output,
            scale,
        }
    }

    #[test]
    fn nearest_upsample_2x() {
        // [1, 1, 2, 2] → [1, 1, 4, 4], asymmetric + floor: each pixel repeated.
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let axes = [ax(1, 1, 1.0), ax(1, 1, 1.0), ax(2, 4, 2.0), ax(2, 4, 2.0)];
        let mut out = [0.0; 16];
        nearest(&x, &mut out, &axes, Coord::Asymmetric, Nearest::Floor);
        #[rustfmt::skip]
        let want = [1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 3.0, 3.0, 4.0, 4.0];
        assert_eq!(out, want);
    }

    #[test]
    fn nearest_modes_and_ties() {
        // in 4 → out 6 (scale 1.5), half_pixel: x = (o + 0.5)/1.5 - 0.5 =
        // -1/6, 0.5, 7/6, 11/6, 2.5, 19/6.
        let x = [10, 11, 12, 13];
        let a = [ax(4, 6, 1.5)];
        let mut out = [0; 6];
        nearest(
            &x,
            &mut out,
            &a,
            Coord::HalfPixel,
            Nearest::RoundPreferFloor,
        );
        assert_eq!(out, [10, 10, 11, 12, 12, 13]);
        nearest(&x, &mut out, &a, Coord::HalfPixel, Nearest::RoundPreferCeil);
        assert_eq!(out, [10, 11, 11, 12, 13, 13]);
        nearest(&x, &mut out, &a, Coord::HalfPixel, Nearest::Floor);
        assert_eq!(out, [10, 10, 11, 11, 12, 13]);
        nearest(&x, &mut out, &a, Coord::HalfPixel, Nearest::Ceil);
        assert_eq!(out, [10, 11, 12, 12, 13, 13]);
    }

    /// The repeating path against the index tables, for every coordinate mode, nearest mode,
    /// integer factor, several ranks and widths (the bits must match: nearest only copies).
    #[test]
    fn repeat_path_matches_tables() {
        let coords = [
            Coord::HalfPixel,
            Coord::HalfPixelSymmetric,
            Coord::PytorchHalfPixel,
            Coord::AlignCorners,
            Coord::Asymmetric,
            Coord::TfHalfPixelForNearest,
        ];
        let modes = [
            Nearest::RoundPreferFloor,
            Nearest::RoundPreferCeil,
            Nearest::Floor,
            Nearest::Ceil,
            Nearest::Simple,
        ];
        let mut taken = 0;
        for &coord in &coords {
            for &mode in &modes {
                for f in [2usize, 3, 4, 5, 8] {
                    for (h, w, lead) in [
                        (1, 1, 1),
                        (3, 5, 1),
                        (2, 16, 2),
                        (4, 17, 1),
                        (5, 40, 1),
                        (2, 33, 2),
                    ] {
                        // `lead = 2`: the leading axis is resized too (the odometer path).
                        let axes = [
                            ax(2, 2 * lead, lead as f64),
                            ax(h, h * f, f as f64),
                            ax(w, w * f, f as f64),
                        ];
                        taken += usize::from(repeat_factor(coord, mode, &axes[2]).is_some());
                        let x: Vec<f32> = (0..2 * h * w).map(|i| i as f32 * 0.5 - 3.0).collect();
                        let mut want = vec![0.0; 2 * lead * h * f * w * f];
                        nearest_generic(&x, &mut want, &axes, coord, mode);
                        for isa in Isa::all_available() {
                            let mut got = vec![7.0; want.len()];
                            nearest_isa(isa, &x, &mut got, &axes, coord, mode);
                            assert_eq!(got, want, "{coord:?} {mode:?} f={f} {h}x{w} [{isa}]");
                        }
                        let xu: Vec<u8> = (0..2 * h * w).map(|i| i as u8).collect();
                        let mut want = vec![0u8; 2 * lead * h * f * w * f];
                        nearest_generic(&xu, &mut want, &axes, coord, mode);
                        let mut got = vec![9u8; want.len()];
                        nearest(&xu, &mut got, &axes, coord, mode);
                        assert_eq!(got, want, "u8 {coord:?} {mode:?} f={f} {h}x{w}");
                    }
                }
            }
        }
        assert!(taken > 300, "the repeating path was taken {taken} times");
    }

    /// The row-cached bilinear path against the per-element formula, bit for bit, for every
    /// coordinate mode, up- and downscaling, odd sizes and rows wider than a block.
    #[test]
    fn linear_rows_match_direct_formula() {
        let coords = [
            Coord::HalfPixel,
            Coord::HalfPixelSymmetric,
            Coord::PytorchHalfPixel,
            Coord::AlignCorners,
            Coord::Asymmetric,
            Coord::TfHalfPixelForNearest,
        ];
        let shapes = [
            (ax(40, 80, 2.0), ax(40, 80, 2.0)),
            (ax(7, 14, 2.0), ax(9, 18, 2.0)),
            (ax(5, 3, 0.6), ax(11, 4, 0.4)),
            (ax(1, 1, 1.0), ax(300, 1100, 1100.0 / 300.0)),
            (ax(6, 13, 13.0 / 6.0), ax(1, 5, 5.0)),
            (ax(3, 3, 1.0), ax(17, 17, 1.0)),
        ];
        for coord in coords {
            for (h, w) in shapes {
                let planes = 3;
                let x: Vec<f32> = (0..planes * h.input * w.input)
                    .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0)
                    .collect();
                let mut want = vec![0.0; planes * h.output * w.output];
                linear_direct(&x, planes, h, w, coord, &mut want);
                for isa in Isa::all_available() {
                    let mut got = vec![9.0; want.len()];
                    linear_isa(isa, &x, planes, h, w, coord, &mut got);
                    let (a, b): (Vec<u32>, Vec<u32>) = (
                        got.iter().map(|v| v.to_bits()).collect(),
                        want.iter().map(|v| v.to_bits()).collect(),
                    );
                    assert_eq!(a, b, "{coord:?} {h:?} {w:?} [{isa}]");
                }
            }
        }
    }

    /// Bilinear by the textbook formula, in f64, on clamped coordinates.
    fn bilinear_ref(x: &[f32], h: Axis, w: Axis, coord: Coord) -> Vec<f32> {
        let mut out = vec![];
        let clampc =
            |a: &Axis, o: usize| source_coord(coord, o, a).clamp(0.0, (a.input - 1) as f64);
        for oh in 0..h.output {
            for ow in 0..w.output {
                let (y, xx) = (clampc(&h, oh), clampc(&w, ow));
                let mut acc = 0.0f64;
                for ih in 0..h.input {
                    for iw in 0..w.input {
                        let wy = (1.0 - (y - ih as f64).abs()).max(0.0);
                        let wx = (1.0 - (xx - iw as f64).abs()).max(0.0);
                        acc += wy * wx * x[ih * w.input + iw] as f64;
                    }
                }
                out.push(acc as f32);
            }
        }
        out
    }

    #[test]
    fn bilinear_matches_reference() {
        let x: Vec<f32> = (0..4 * 5).map(|i| ((i * 13) % 7) as f32 - 2.5).collect();
        for coord in [
            Coord::HalfPixel,
            Coord::PytorchHalfPixel,
            Coord::AlignCorners,
            Coord::Asymmetric,
            Coord::HalfPixelSymmetric,
        ] {
            for (h, w) in [
                (ax(4, 8, 2.0), ax(5, 10, 2.0)),
                (ax(4, 3, 0.75), ax(5, 3, 0.6)),
                (ax(4, 1, 0.25), ax(5, 7, 1.4)),
            ] {
                let mut out = vec![0.0; h.output * w.output];
                linear(&x, 1, h, w, coord, &mut out);
                let want = bilinear_ref(&x, h, w, coord);
                for (a, b) in out.iter().zip(&want) {
                    assert!((a - b).abs() <= 1e-5, "{coord:?} {h:?} {w:?}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn wide_rows_cross_blocks() {
        let n = 3 * BLOCK + 5;
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let (h, w) = (ax(1, 1, 1.0), ax(n, 2 * n, 2.0));
        let mut out = vec![0.0; 2 * n];
        linear(&x, 1, h, w, Coord::Asymmetric, &mut out);
        for (o, v) in out.iter().enumerate() {
            let want = (o as f32 / 2.0).min((n - 1) as f32);
            assert_eq!(*v, want);
        }
        let mut out = vec![0.0; 2 * n];
        nearest(&x, &mut out, &[w], Coord::Asymmetric, Nearest::Floor);
        for (o, v) in out.iter().enumerate() {
            assert_eq!(*v, (o / 2) as f32);
        }
    }

    /// Rough throughput; run with
    /// `cargo test -p kiln-runtime --release --lib -- --ignored --nocapture resize_speed`.
    #[test]
    #[ignore]
    fn resize_speed() {
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
        // FPN upsampling: 128 x 40x40 → 80x80.
        let x: Vec<f32> = (0..128 * 1600).map(|i| (i % 97) as f32).collect();
        let mut out = vec![0.0; 128 * 6400];
        let axes = [
            ax(1, 1, 1.0),
            ax(128, 128, 1.0),
            ax(40, 80, 2.0),
            ax(40, 80, 2.0),
        ];
        let dt = time(&mut || nearest(&x, &mut out, &axes, Coord::Asymmetric, Nearest::Floor));
        std::println!("nearest x2 128x40x40: {:.1} us", dt * 1e6);
        let dt = time(&mut || linear(&x, 128, axes[2], axes[3], Coord::HalfPixel, &mut out));
        std::println!("bilinear x2 128x40x40: {:.1} us", dt * 1e6);
    }
}
