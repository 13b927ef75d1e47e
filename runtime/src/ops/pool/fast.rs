//! The vectorised pooling path (see the notes below): `LANES` outputs at a time, plus the
//! small-plane "flat" path.
use super::*;

//
// 1-D and 2-D windows (kernel depth 1) with width stride 1 or 2. Outputs are computed `LANES`
// at a time: per window row and tap, one load of `LANES` consecutive elements (stride 1), or
// of `2·LANES` whose even elements are kept (stride 2; a permute), folded into a register.
// Chunks whose loads stay inside the input row read the input in place; they cover the row
// from its first output whose window starts inside the input, and the last one may overlap
// the one before (those outputs are recomputed, identically). The few outputs left at the
// borders (where windows reach into the padding) are folded one by one over their in-range
// taps. A row too narrow for one in-place chunk is computed from padded copies of its input
// rows (built once per band of output rows), in which the padding holds the fold's identity
// (`fill`: the lowest value for max, +0 for the average); with fewer than `LANES` outputs, one
// chunk is computed and its first outputs stored.
//
// Taps are folded in (height, width) order like the generic fold, skipping taps outside the
// input or folding the identity for them, which changes nothing: max2(a, lowest) = a, and
// a + 0.0 = a bit for bit because a sum that starts at +0 is never -0. So results are the
// generic fold's, bit for bit. The average's divisor `(outer · column) as f32` is computed as
// `outer as f32 * column as f32`, the same value while the kernel volume is below 2^24.

/// Width of the chunks (one AVX-512 register of f32; two AVX2 registers, four NEON / SSE /
/// simd128 ones).
pub(super) const LANES: usize = 16;
/// Elements of the padded row copies of narrow rows (16 KiB of f32).
pub(super) const EDGE_CAP: usize = 4096;
/// Most output columns per block.
pub(super) const MAX_BLOCK: usize = 1024;
/// Most chunks computed from padded copies in a block.
pub(super) const MAX_EDGES: usize = 4;

/// Elements one chunk's loads read, from its first tap (see `fold_chunk`).
#[inline(always)]
pub(super) fn chunk_reach(s: usize, kw: usize, dw: usize) -> usize {
    match (s, dw, kw) {
        (1, _, _) => LANES + (kw - 1) * dw,
        (_, 1, 3) => 2 * LANES + 1,
        (_, 1, _) => 2 * LANES + kw - 1 - (kw + 1) % 2,
        _ => 2 * LANES + (kw - 1) * dw,
    }
}

/// Output column block of a row starting at `c0`: `(c0, n, nc)` — outputs `c0..c0 + n` are
/// stored, computed as `nc = max(n, LANES)` columns from `c0`. A last block shorter than
/// `LANES` is moved back to end at `ow` (when the row has `LANES` outputs).
#[inline(always)]
pub(super) fn block_at(c0: usize, ow: usize) -> (usize, usize, usize) {
    let n = MAX_BLOCK.min(ow - c0);
    if n < LANES && ow >= LANES {
        (ow - LANES, LANES, LANES)
    } else {
        (c0, n, n.max(LANES))
    }
}

/// In-place chunks of a block of `nc` columns whose first output's first tap is input column
/// `x0`: chunk starts `lo, lo + LANES, …, hi` (block-relative) are those whose loads stay in
/// `0..iw`; `None` when there is none (the block then uses padded copies).
#[inline(always)]
pub(super) fn inner_chunks(
    nc: usize,
    x0: i64,
    s: usize,
    reach: usize,
    iw: usize,
) -> Option<(usize, usize)> {
    // First tap of output `o` is `x0 + o·s`: need it ≥ 0 and `+ reach ≤ iw`.
    let lo = ((-x0).max(0) as usize).div_ceil(s);
    let room = iw as i64 - reach as i64 - x0;
    if room < 0 {
        return None;
    }
    let hi = (room as usize / s).min(nc - LANES);
    (lo <= hi).then_some((lo, hi))
}

/// Whether the fast path takes this geometry: kernel depth 1, width stride 1 or 2, a kernel
/// volume below 2^24, and for every block without in-place chunks, padded copies of one
/// window's rows that fit `EDGE_CAP`.
pub(super) fn fast_geometry(g: &PoolGeom) -> bool {
    let s = g.stride[2];
    if g.kernel[0] != 1
        || !matches!(s, 1 | 2)
        || g.stride.iter().chain(&g.dilation).any(|&v| v == 0)
    {
        return false;
    }
    let span_h = (g.kernel[1] - 1).checked_mul(g.dilation[1]).map(|v| v + 1);
    let ext = (g.kernel[2] - 1).checked_mul(g.dilation[2]);
    let volume = g.kernel[1].checked_mul(g.kernel[2]);
    let (Some(span_h), Some(ext), Some(volume)) = (span_h, ext, volume) else {
        return false;
    };
    if volume >= 1 << 24 || ext >= EDGE_CAP {
        return false;
    }
    let reach = chunk_reach(s, g.kernel[2], g.dilation[2]);
    let need = span_h.min(g.in_dims[1]).max(1);
    let (iw, ow) = (g.in_dims[2], g.out_dims[2]);
    let mut c0 = 0;
    while c0 < ow {
        let (b0, n, nc) = block_at(c0, ow);
        let x0 = (b0 * s) as i64 - g.pad_begin[2] as i64;
        if inner_chunks(nc, x0, s, reach, iw).is_none() {
            let edges = nc.div_ceil(LANES);
            if edges > MAX_EDGES || edges * reach * need > EDGE_CAP {
                return false;
            }
        }
        c0 = b0 + n;
    }
    true
}

/// The row path's stack buffers (28 KiB for f32), set up once per group of planes.
pub(super) struct Scratch<T> {
    /// Padded copies of a band of input rows, for narrow blocks.
    edges: [T; EDGE_CAP],
    /// Per output column of the current block: the width-axis count as f32 (average).
    col: [f32; MAX_BLOCK],
    /// Per output column of the current block: its in-range taps `k0..k1` (for the outputs
    /// folded one by one).
    col_taps: [(u32, u32); MAX_BLOCK],
    /// Whether `col` and `col_taps` hold a whole row's tables (valid for every plane).
    cols_ready: bool,
}

/// The fast path of [`max_pool`] on a group of planes (inlined into each ISA's wrapper).
#[inline(always)]
pub(super) fn max_planes<T: Copy + PartialOrd>(g: &PoolGeom, xs: &[T], ys: &mut [T], lowest: T) {
    // `fin` is the identity on max's results, which are never NaN; spelled `max2(lowest, v)`
    // so that copying results out stays an inlined vector loop, not a `memcpy` call per row.
    planes_with(
        true,
        g,
        xs,
        ys,
        lowest,
        max2,
        |_, _| 0,
        move |v, _| max2(lowest, v),
    )
}

/// The fast path of [`avg_pool`] on a group of planes (inlined into each ISA's wrapper).
#[inline(always)]
pub(super) fn avg_planes(g: &PoolGeom, xs: &[f32], ys: &mut [f32], cip: bool) {
    planes_with(
        false,
        g,
        xs,
        ys,
        0.0,
        |a, b| a + b,
        |ax, o| avg_count(g, cip, ax, o),
        |v, d| v / d,
    )
}

/// Pools every plane of `xs` into `ys`: each output is `fin(fold, outer · column)` where
/// `fold` folds `f` over the window's taps starting from `fill`, and `outer` (as f32) is
/// `count(0, depth) · count(1, row)` and `column` `count(2, column)` (the average's divisor).
/// `separable`: `f` may fold the width first, then the height (max).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn planes_with<T: Copy>(
    separable: bool,
    g: &PoolGeom,
    xs: &[T],
    ys: &mut [T],
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
    count: impl Fn(usize, usize) -> usize + Copy,
    fin: impl Fn(T, f32) -> T + Copy,
) {
    if let Some(fl) = Flat::new(g) {
        // Common kernels get their tap loops unrolled (0: the size at run time).
        macro_rules! flat {
            ($kh:literal, $kw:literal) => {
                flat_planes::<T, $kh, $kw>(separable, g, &fl, xs, ys, fill, f, count, fin)
            };
        }
        return match (g.kernel[1], g.kernel[2]) {
            (3, 3) => flat!(3, 3),
            (5, 5) => flat!(5, 5),
            (2, 2) => flat!(2, 2),
            _ => flat!(0, 0),
        };
    }
    let (ip, op) = (g.in_plane(), g.out_plane());
    let mut sc = Scratch {
        edges: [fill; EDGE_CAP],
        col: [0.0; MAX_BLOCK],
        col_taps: [(0, 0); MAX_BLOCK],
        cols_ready: false,
    };
    macro_rules! run {
        ($s:literal, $k:literal) => {
            for (xp, yp) in xs.chunks_exact(ip.max(1)).zip(ys.chunks_exact_mut(op)) {
                pool_plane::<T, $s, $k>(g, &mut sc, xp, yp, fill, f, count, fin);
            }
        };
    }
    // Common kernel widths get the tap loop unrolled (0: the width at run time).
    match (g.stride[2], g.kernel[2]) {
        (1, 2) => run!(1, 2),
        (1, 3) => run!(1, 3),
        (1, 5) => run!(1, 5),
        (1, _) => run!(1, 0),
        (_, 2) => run!(2, 2),
        (_, 3) => run!(2, 3),
        (_, _) => run!(2, 0),
    }
}

// Small planes with stride 1 on both axes: the whole plane (one depth slice) is copied with
// its padding (the identity, as above) into a buffer of rows `w` wide, where every window is
// in range. Output (oh, o) then starts at buffer index `oh·w + o`, so the outputs of all rows
// are one run of "virtual" positions `0..oh·w` (the `w - ow` positions at the end of each row
// are discarded), computed in chunks with no borders and no per-row work; tap (i, k) is at
// offset `i·dh·w + k·dw`. The results are copied out row by row (dividing, for the average).
//
// Max is separable here: each padded row is first reduced over the kernel width (in place),
// then the window rows over the height. That is exact, ±0 included: the row-by-row fold keeps
// the first element equal to the maximum in (height, width) order; the width pass keeps each
// row's first one, and the height pass the first row whose maximum equals it — the same
// element. (The average's sum must keep its order, so it folds every tap.)

/// Capacity of the flat path's three buffers (elements; 12 KiB each for f32).
pub(super) const FLAT_CAP: usize = 3072;
/// Most output columns on the flat path.
pub(super) const FLAT_COLS: usize = 1024;

/// Layout of the flat path: buffer row width `w` (= output width + the kernel's width span)
/// and the rows of the padded plane (`rows`, = output height + the kernel's height span).
#[derive(Clone, Copy, Debug)]
pub(super) struct Flat {
    w: usize,
    rows: usize,
}

impl Flat {
    /// `None` unless kernel depth 1, stride 1 on height and width, and the padded plane plus
    /// the last chunks' reads fit `FLAT_CAP`.
    fn new(g: &PoolGeom) -> Option<Flat> {
        if g.kernel[0] != 1 || g.stride[1] != 1 || g.stride[2] != 1 {
            return None;
        }
        let span = |ax: usize| (g.kernel[ax] - 1).checked_mul(g.dilation[ax]);
        let w = g.out_dims[2].checked_add(span(2)?)?;
        let rows = g.out_dims[1].checked_add(span(1)?)?;
        let fl = Flat { w, rows };
        (fl.len(g)? <= FLAT_CAP && g.out_dims[2] <= FLAT_COLS).then_some(fl)
    }

    /// Virtual output positions computed (whole pairs of chunks).
    #[inline(always)]
    fn positions(&self, g: &PoolGeom) -> Option<usize> {
        Some(
            g.out_dims[1]
                .checked_mul(self.w)?
                .next_multiple_of(2 * LANES),
        )
    }

    /// Buffer elements read: the padded plane, and the last chunks' taps. (For max, the width
    /// pass runs over whole chunk pairs up to the height taps' reach.)
    fn len(&self, g: &PoolGeom) -> Option<usize> {
        let down = (g.kernel[1] - 1)
            .checked_mul(g.dilation[1])?
            .checked_mul(self.w)?;
        let across = (g.kernel[2] - 1) * g.dilation[2];
        let width_pass = self
            .positions(g)?
            .checked_add(down)?
            .next_multiple_of(2 * LANES);
        Some((self.rows * self.w).max(width_pass + across))
    }

    /// Positions the width pass of max computes.
    #[inline(always)]
    fn width_pass(&self, g: &PoolGeom) -> usize {
        let down = (g.kernel[1] - 1) * g.dilation[1] * self.w;
        (self.positions(g).unwrap_or(0) + down).next_multiple_of(2 * LANES)
    }
}

/// The flat path on every plane of `xs` (see above); `fill`, `f`, `count`, `fin` as for
/// [`planes_with`]; `separable`: fold the width, then the height (max only). Its stack
/// buffers take 44 KiB for f32 (the row path's 28 KiB).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn flat_planes<T: Copy, const KH: usize, const KW: usize>(
    separable: bool,
    g: &PoolGeom,
    fl: &Flat,
    xs: &[T],
    ys: &mut [T],
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
    count: impl Fn(usize, usize) -> usize + Copy,
    fin: impl Fn(T, f32) -> T + Copy,
) {
    let (ip, op) = (g.in_plane(), g.out_plane());
    let [id_, ih, iw] = g.in_dims;
    let [od_, oh_, ow] = g.out_dims;
    let w = fl.w;
    let positions = fl.positions(g).unwrap_or(0);
    let len = fl.len(g).unwrap_or(0);
    assert!(len <= FLAT_CAP && positions <= FLAT_CAP && ow <= FLAT_COLS);
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    let (dh, dw) = (g.dilation[1], g.dilation[2]);
    // The padded plane (its padding, written here, never changes: each plane only rewrites
    // the input's positions), the width pass of max, the virtual outputs.
    let mut buf = [fill; FLAT_CAP];
    let mut tmp = [fill; FLAT_CAP];
    let mut res = [fill; FLAT_CAP];
    let mut col = [0.0f32; FLAT_COLS];
    for (o, c) in col[..ow].iter_mut().enumerate() {
        *c = count(2, o) as f32;
    }
    // Height-axis counts (the same for every plane; at most the kernel height, < 2^24), for
    // the rows that fit the table.
    let mut row_count = [0u32; FLAT_COLS];
    for (oh, c) in row_count.iter_mut().enumerate().take(oh_) {
        *c = count(1, oh) as u32;
    }
    let row_count = |oh: usize| {
        if oh < FLAT_COLS {
            row_count[oh] as usize
        } else {
            count(1, oh)
        }
    };
    // Input row `r`, columns `c0..c1`, goes to buffer row `r + pad_top` from column `x0`.
    let pl = g.pad_begin[2];
    let (c0, c1) = (0, iw.min(w.saturating_sub(pl)));
    let rows = |r: usize| r + g.pad_begin[1] < fl.rows;
    for (xp, yp) in xs.chunks_exact(ip.max(1)).zip(ys.chunks_exact_mut(op)) {
        for od in 0..od_ {
            let d = (od * g.stride[0]) as i64 - g.pad_begin[0] as i64;
            let outer_d = count(0, od);
            if !(0..id_ as i64).contains(&d) {
                // No input slice (depth padding): every window is empty.
                for oh in 0..oh_ {
                    let outer = (outer_d * row_count(oh)) as f32;
                    let y = &mut yp[(od * oh_ + oh) * ow..][..ow];
                    for (y, &c) in y.iter_mut().zip(&col[..ow]) {
                        *y = fin(fill, outer * c);
                    }
                }
                continue;
            }
            let sl = &xp[d as usize * ih * iw..][..ih * iw];
            for r in (0..ih).take_while(|&r| rows(r)) {
                let at = (r + g.pad_begin[1]) * w + pl;
                let dst = &mut buf[at..at + (c1 - c0)];
                // `f(fill, x)` stands for `x` in a window: max2(lowest, x) is x, or lowest for
                // NaN, which max skips anyway; 0 + x is x, or +0 for -0, which leaves a sum
                // that starts at +0 unchanged. Through `f`, the copy stays an inlined vector
                // loop (a plain copy becomes a `memcpy` call, dearer than short rows).
                for (d, &x) in dst.iter_mut().zip(&sl[r * iw + c0..r * iw + c1]) {
                    *d = f(fill, x);
                }
            }
            // Chunk pairs read `j + (kh-1)·dh·w + (kw-1)·dw + 2·LANES ≤ len` (Flat::len).
            let src = if separable {
                let end = fl.width_pass(g);
                let mut j = 0;
                while j < end {
                    let v = fold_pair::<T, 1, KW>(&buf, j, 1, kw, 0, dw, fill, f);
                    store_pair(&mut tmp, j, v);
                    j += 2 * LANES;
                }
                &tmp
            } else {
                &buf
            };
            let mut j = 0;
            while j < positions {
                let v = if separable {
                    fold_pair::<T, KH, 1>(src, j, kh, 1, dh * w, dw, fill, f)
                } else {
                    fold_pair::<T, KH, KW>(src, j, kh, kw, dh * w, dw, fill, f)
                };
                store_pair(&mut res, j, v);
                j += 2 * LANES;
            }
            for oh in 0..oh_ {
                let outer = (outer_d * row_count(oh)) as f32;
                let y = &mut yp[(od * oh_ + oh) * ow..][..ow];
                for ((y, &v), &c) in y.iter_mut().zip(&res[oh * w..oh * w + ow]).zip(&col[..ow]) {
                    *y = fin(v, outer * c);
                }
            }
        }
    }
}

/// Two chunks of outputs at `src[j..]`: folds, from `fill`, the taps `(i, k)` at offsets
/// `i·row + k·dw` (`i < kh`, `k < kw`, in that order) into each of `2·LANES` consecutive
/// positions.
/// `KH`, `KW`: `kh`, `kw` as constants (0: use the arguments), so that common kernels unroll.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn fold_pair<T: Copy, const KH: usize, const KW: usize>(
    src: &[T; FLAT_CAP],
    j: usize,
    kh: usize,
    kw: usize,
    row: usize,
    dw: usize,
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
) -> [[T; LANES]; 2] {
    let kh = if KH == 0 { kh } else { KH };
    let kw = if KW == 0 { kw } else { KW };
    let mut v = [[fill; LANES]; 2];
    if kh == 0 || kw == 0 {
        return v;
    }
    assert!(j + (kh - 1) * row + (kw - 1) * dw + 2 * LANES <= FLAT_CAP);
    for i in 0..kh {
        for k in 0..kw {
            // SAFETY: `t + 2·LANES ≤ FLAT_CAP` by the assertion above; `[T; N]` has the
            // alignment of `T`.
            let x = unsafe { &*(src.as_ptr().add(j + i * row + k * dw) as *const [T; 2 * LANES]) };
            v[0] = lanes(|l| f(v[0][l], x[l]));
            v[1] = lanes(|l| f(v[1][l], x[LANES + l]));
        }
    }
    v
}

/// Stores two chunks at `dst[j..j + 2·LANES]`.
#[inline(always)]
pub(super) fn store_pair<T: Copy>(dst: &mut [T; FLAT_CAP], j: usize, v: [[T; LANES]; 2]) {
    let (lo, hi) = dst[j..j + 2 * LANES].split_at_mut(LANES);
    lo.copy_from_slice(&v[0]);
    hi.copy_from_slice(&v[1]);
}

/// One plane, width stride `S`, kernel width `K` (0: read from `g`); see the section comment.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn pool_plane<T: Copy, const S: usize, const K: usize>(
    g: &PoolGeom,
    sc: &mut Scratch<T>,
    plane: &[T],
    out: &mut [T],
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
    count: impl Fn(usize, usize) -> usize + Copy,
    fin: impl Fn(T, f32) -> T + Copy,
) {
    let [id_, ih, iw] = g.in_dims;
    let [od_, oh_, ow] = g.out_dims;
    let kw = if K == 0 { g.kernel[2] } else { K };
    let (sh, kh, dh, ph) = (g.stride[1], g.kernel[1], g.dilation[1], g.pad_begin[1]);
    let dw = g.dilation[2];
    let reach = chunk_reach(S, kw, dw);
    let Scratch {
        edges,
        col,
        col_taps,
        cols_ready,
    } = sc;
    let mut c0 = 0;
    while c0 < ow {
        let (b0, n, nc) = block_at(c0, ow);
        c0 = b0;
        let x0 = (c0 * S) as i64 - g.pad_begin[2] as i64;
        // The column tables of a row that is one block are the same for every plane.
        if !(*cols_ready && b0 == 0 && n == ow) {
            for (j, (c, t)) in col[..nc].iter_mut().zip(&mut col_taps[..nc]).enumerate() {
                *c = count(2, c0 + j) as f32;
                let (a, b) = taps(x0 + (j * S) as i64, kw, dw, 0, iw as i64);
                *t = (a as u32, b as u32);
            }
            *cols_ready = b0 == 0 && n == ow;
        }
        // In-place chunks `lo..=hi` (step LANES, the last at `hi`) and the outputs outside
        // them; or, for a narrow block, every chunk from padded copies.
        let inner = inner_chunks(nc, x0, S, reach, iw);
        let n_edges = if inner.is_some() {
            0
        } else {
            nc.div_ceil(LANES)
        };
        let band_rows = if n_edges == 0 {
            ih.max(1)
        } else {
            EDGE_CAP / (n_edges * reach)
        };
        for od in 0..od_ {
            let d = (od * g.stride[0]) as i64 - g.pad_begin[0] as i64;
            let slice = (0..id_ as i64).contains(&d).then(|| {
                let at = d as usize * ih * iw;
                &plane[at..at + ih * iw]
            });
            let mut oh0 = 0;
            while oh0 < oh_ {
                // Band: output rows `oh0..oh1` whose input rows `r0..r1` fit the padded
                // copies (every row when there are none). Windows start at or after `oh0`'s
                // start (with dilation and padding, a later window's first in-range row can
                // come before an earlier one's).
                let r0 = ((oh0 * sh) as i64 - ph as i64).clamp(0, ih as i64) as usize;
                // (A function, not a closure: closures are not always inlined into the ISA
                // wrappers, and would lose their target features.)
                let last = |oh: usize| last_row(oh, sh, kh, dh, ph, ih, slice.is_some());
                let mut oh1 = oh0 + 1;
                if n_edges == 0 {
                    oh1 = oh_;
                }
                while oh1 < oh_ && last(oh1).is_none_or(|r| r < r0 + band_rows) {
                    oh1 += 1;
                }
                if let (Some(slice), true) = (slice, n_edges > 0) {
                    let r1 = (oh0..oh1).filter_map(last).max().map_or(r0, |r| r + 1);
                    debug_assert!(r1 - r0 <= band_rows);
                    for (i, r) in (r0..r1).enumerate() {
                        let row = &slice[r * iw..(r + 1) * iw];
                        for e in 0..n_edges {
                            let at = (e * band_rows + i) * reach;
                            let o = (e * LANES).min(nc - LANES);
                            copy_padded(row, x0 + (o * S) as i64, fill, &mut edges[at..at + reach]);
                        }
                    }
                }
                for oh in oh0..oh1 {
                    let (first, nrows) = window_rows(oh, sh, kh, dh, ph, ih, slice.is_some());
                    let outer = (count(0, od) * count(1, oh)) as f32;
                    let y = &mut out[(od * oh_ + oh) * ow..][..ow];
                    // One chunk of LANES outputs from block column `o`, its rows read from
                    // `src[base + i·step..]` (a function, not a closure: closures are not
                    // always inlined into the ISA wrappers, and would lose their features).
                    let geom = ChunkGeom {
                        nrows,
                        reach,
                        kw,
                        dw,
                        outer,
                    };
                    let y = &mut y[c0..c0 + n];
                    match (inner, slice) {
                        (Some((lo, hi)), Some(sl)) => {
                            // Up to four chunks at a time (independent folds); the last
                            // starts at `hi`.
                            let step = dh * iw;
                            let base = |a: usize| first * iw + (x0 + (a * S) as i64) as usize;
                            let mut o = lo;
                            loop {
                                let left = (hi - o).div_ceil(LANES) + 1;
                                macro_rules! group {
                                    ($n:literal) => {{
                                        let at: [usize; $n] =
                                            core::array::from_fn(|k| (o + k * LANES).min(hi));
                                        let b = at.map(base);
                                        chunks::<T, S, K, $n>(
                                            &geom, sl, b, step, col, at, y, fill, f, fin,
                                        );
                                        (at[$n - 1] == hi, $n)
                                    }};
                                }
                                let (done, n_done) = match left {
                                    1 => group!(1),
                                    2 | 3 => group!(2),
                                    _ => group!(4),
                                };
                                if done {
                                    break;
                                }
                                o = (o + n_done * LANES).min(hi);
                            }
                        }
                        (None, Some(_)) => {
                            for e in 0..n_edges {
                                let o = (e * LANES).min(nc - LANES);
                                let base = (e * band_rows + first.saturating_sub(r0)) * reach;
                                let step = dh * reach;
                                chunk::<T, S, K>(&geom, edges, base, step, col, o, y, fill, f, fin);
                            }
                        }
                        // No input slice (depth padding): every window is empty.
                        (_, None) => {}
                    }
                    // Outputs outside the in-place chunks, tap by tap (all of them for an
                    // empty window).
                    let (lo, end) = match (inner, slice) {
                        (Some((lo, hi)), Some(_)) => (lo, hi + LANES),
                        (None, Some(_)) => (0, nc),
                        (_, None) => (0, 0),
                    };
                    for o in (0..lo).chain(end..n) {
                        let (k0, k1) = col_taps[o];
                        let mut v = fill;
                        if let Some(sl) = slice {
                            let c = x0 + (o * S) as i64;
                            for i in 0..nrows {
                                let row = (first + i * dh) * iw;
                                for k in k0 as usize..k1 as usize {
                                    v = f(v, sl[row + (c + (k * dw) as i64) as usize]);
                                }
                            }
                        }
                        y[o] = fin(v, outer * col[o]);
                    }
                }
                oh0 = oh1;
            }
        }
        c0 += n;
    }
}

/// Window rows of output row `oh` on an axis of `ih` rows: (first, count) of the in-range
/// ones; none when `any` is false.
#[inline(always)]
pub(super) fn window_rows(
    oh: usize,
    sh: usize,
    kh: usize,
    dh: usize,
    ph: usize,
    ih: usize,
    any: bool,
) -> (usize, usize) {
    let start = (oh * sh) as i64 - ph as i64;
    let (a, b) = taps(start, kh, dh, 0, ih as i64);
    if !any || a >= b {
        return (0, 0);
    }
    ((start + (a * dh) as i64) as usize, b - a)
}

/// The last in-range window row of output row `oh` (see [`window_rows`]).
#[inline(always)]
pub(super) fn last_row(
    oh: usize,
    sh: usize,
    kh: usize,
    dh: usize,
    ph: usize,
    ih: usize,
    any: bool,
) -> Option<usize> {
    let (first, n) = window_rows(oh, sh, kh, dh, ph, ih, any);
    (n > 0).then(|| first + (n - 1) * dh)
}

/// What `chunk` needs of the current output row: window rows, the loads' reach, kernel
/// width and dilation, and the divisor's row factor.
pub(super) struct ChunkGeom {
    nrows: usize,
    reach: usize,
    kw: usize,
    dw: usize,
    outer: f32,
}

/// Computes `LANES` outputs from block column `o` of the current row (`y`: the block's stored
/// outputs) whose window rows start at `src[base + i·step]`, `i < nrows`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn chunk<T: Copy, const S: usize, const K: usize>(
    cg: &ChunkGeom,
    src: &[T],
    base: usize,
    step: usize,
    col: &[f32; MAX_BLOCK],
    o: usize,
    y: &mut [T],
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
    fin: impl Fn(T, f32) -> T + Copy,
) {
    let mut v = [fill; LANES];
    if cg.nrows > 0 {
        // Every load of `fold_chunk` stays in `base + i·step ..+ reach`.
        assert!(base + (cg.nrows - 1) * step + cg.reach <= src.len());
        for i in 0..cg.nrows {
            // SAFETY: in bounds by the assertion above.
            v = unsafe { fold_chunk::<T, S, K>(src, base + i * step, v, cg.kw, cg.dw, f) };
        }
    }
    let d: &[f32; LANES] = col[o..o + LANES].try_into().unwrap();
    let res = lanes(|l| fin(v[l], cg.outer * d[l]));
    if y.len() >= LANES {
        let dst: &mut [T; LANES] = (&mut y[o..o + LANES]).try_into().unwrap();
        *dst = res;
    } else {
        let n = y.len();
        y.copy_from_slice(&res[..n]);
    }
}

/// [`chunk`] for `N` chunks at once (at block columns `o[j]`, first taps at
/// `src[base[j] + i·step]`): `N` independent fold chains, for the pipelines.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn chunks<T: Copy, const S: usize, const K: usize, const N: usize>(
    cg: &ChunkGeom,
    src: &[T],
    base: [usize; N],
    step: usize,
    col: &[f32; MAX_BLOCK],
    o: [usize; N],
    y: &mut [T],
    fill: T,
    f: impl Fn(T, T) -> T + Copy,
    fin: impl Fn(T, f32) -> T + Copy,
) {
    let mut v = [[fill; LANES]; N];
    if cg.nrows > 0 {
        // Every load of `fold_chunk` stays in `base[j] + i·step ..+ reach`.
        let last = (cg.nrows - 1) * step + cg.reach;
        assert!(base.iter().all(|&b| b + last <= src.len()));
        for i in 0..cg.nrows {
            for j in 0..N {
                // SAFETY: in bounds by the assertion above.
                v[j] = unsafe {
                    fold_chunk::<T, S, K>(src, base[j] + i * step, v[j], cg.kw, cg.dw, f)
                };
            }
        }
    }
    for j in 0..N {
        let d: &[f32; LANES] = col[o[j]..o[j] + LANES].try_into().unwrap();
        let res = lanes(|l| fin(v[j][l], cg.outer * d[l]));
        if y.len() >= LANES {
            let dst: &mut [T; LANES] = (&mut y[o[j]..o[j] + LANES]).try_into().unwrap();
            *dst = res;
        } else {
            // A row narrower than LANES: one chunk, its first outputs.
            let n = y.len();
            y.copy_from_slice(&res[..n]);
        }
    }
}

/// Folds the `kw` taps of one row into `v` for `LANES` outputs whose first tap is `src[r]`:
/// tap `k` of output `l` is `src[r + l·S + k·dw]`.
///
/// # Safety
/// `r + chunk_reach(S, kw, dw) ≤ src.len()`.
#[inline(always)]
pub(super) unsafe fn fold_chunk<T: Copy, const S: usize, const K: usize>(
    src: &[T],
    r: usize,
    mut v: [T; LANES],
    kw: usize,
    dw: usize,
    f: impl Fn(T, T) -> T + Copy,
) -> [T; LANES] {
    let kw = if K == 0 { kw } else { K };
    debug_assert!(r + chunk_reach(S, kw, dw) <= src.len());
    // SAFETY (every load below): reads `src[r + k .. r + k + S·LANES]` with
    // `k ≤ (kw-1)·dw`, or the one element `src[r + 2·LANES]` (kw = 3): inside
    // `r..r + chunk_reach` by the caller's guarantee; `[T; N]` has the alignment of `T`.
    let at = |k: usize| unsafe { src.as_ptr().add(r + k) };
    if S == 1 {
        for k in 0..kw {
            let c = unsafe { &*(at(k * dw) as *const [T; LANES]) };
            v = lanes(|l| f(v[l], c[l]));
        }
    } else if dw == 1 && kw == 3 {
        // Taps 0 and 1 are the even and odd elements of one load, tap 2 the even ones moved
        // down a lane, with the element after the load.
        let c = unsafe { &*(at(0) as *const [T; 2 * LANES]) };
        let e = lanes(|l| c[2 * l]);
        v = lanes(|l| f(v[l], e[l]));
        v = lanes(|l| f(v[l], c[2 * l + 1]));
        let next = unsafe { *at(2 * LANES) };
        let e2 = lanes(|l| if l + 1 < LANES { e[l + 1] } else { next });
        v = lanes(|l| f(v[l], e2[l]));
    } else if dw == 1 {
        // Taps 2j and 2j + 1 are the even and odd elements of one load.
        for j in 0..kw / 2 {
            let c = unsafe { &*(at(2 * j) as *const [T; 2 * LANES]) };
            v = lanes(|l| f(v[l], c[2 * l]));
            v = lanes(|l| f(v[l], c[2 * l + 1]));
        }
        if kw % 2 == 1 {
            let c = unsafe { &*(at(kw - 1) as *const [T; 2 * LANES]) };
            v = lanes(|l| f(v[l], c[2 * l]));
        }
    } else {
        for k in 0..kw {
            let c = unsafe { &*(at(k * dw) as *const [T; 2 * LANES]) };
            v = lanes(|l| f(v[l], c[2 * l]));
        }
    }
    v
}

/// `[g(0), g(1), …, g(LANES - 1)]`, always inlined (`core::array::from_fn` is not always, and an
/// outlined copy would lose the caller's target features).
#[inline(always)]
pub(super) fn lanes<T: Copy>(g: impl Fn(usize) -> T) -> [T; LANES] {
    let mut r = [g(0); LANES];
    for (l, v) in r.iter_mut().enumerate().skip(1) {
        *v = g(l);
    }
    r
}

/// `dst[j] = row[x0 + j]` where that is inside `row`, else `fill`.
#[inline(always)]
pub(super) fn copy_padded<T: Copy>(row: &[T], x0: i64, fill: T, dst: &mut [T]) {
    let n = dst.len() as i64;
    let a = (-x0).clamp(0, n) as usize;
    let b = (row.len() as i64 - x0).clamp(a as i64, n) as usize;
    dst[..a].fill(fill);
    let s0 = (x0 + a as i64) as usize;
    dst[a..b].copy_from_slice(&row[s0..s0 + (b - a)]);
    dst[b..].fill(fill);
}
