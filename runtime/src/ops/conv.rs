//! Convolutions (ONNX `Conv`, `ConvInteger`, and kiln's fused int8 convolution), NCHW.
//!
//! Algorithms, chosen per layer by codegen (docs/design.md, decision 13):
//! - **int8 GEMM** (the fused `DynamicQuantizeLinear → ConvInteger → scale → bias → act`): the
//!   input is quantized once into NHWC u8 ([`quantize_nhwc`]), im2col copies `C/g`-byte runs
//!   per kernel tap into the int8 GEMM's packed A layout ([`im2col_u8`]; taps in padding get
//!   the zero point, so they contribute exactly 0), the GEMM (`gemm::qgemm_f32`, weights
//!   prepacked at compile time with K ordered `(ky, kx, c)`) applies scale, bias and
//!   activation and writes NHWC, and one transpose gives NCHW — or none, when codegen keeps
//!   the activations NHWC (decision 19: the input is then quantized in place order and the
//!   depthwise layers run [`super::conv_nhwc`]).
//! - **depthwise** (one input channel per group, int8 or f32): a direct kernel over output rows
//!   ([`depthwise`]). For int8 the products `(a − za)(w − wz)` are at most 255² and a window
//!   has far fewer than 2^24 / 255² = 258 taps, so an f32 accumulation of them is exact: the
//!   result is bit-identical to integer accumulation.
//! - **float GEMM**: `W[Cout/g][K] · col[K][P]` with `col` built by [`im2col_f32_panels`] in
//!   the packed-B layout of `matmul::sgemm` (so the result is NCHW directly), then bias and
//!   activation per output channel ([`bias_act_rows`]).
//! - **references** ([`conv_ref_f32`], [`conv_integer_ref`]): direct loops for weights only
//!   known at run time, and the executable spec the fast paths are tested against.
//!
//! 1-D convolutions use the same code with `h = kh = oh = 1`. Sizes are checked with `assert!`;
//! nothing allocates.
use crate::gemm::Activation;
use crate::isa::Isa;
use crate::pack::padded_k;
use crate::quantize::QParams;

mod depthwise;
mod float;
pub use depthwise::*;
pub use float::*;

/// Geometry of one 2-D convolution (batch × channels × height × width, NCHW). `ph`/`pw` are the
/// padding before the first row/column; the padding after is implied by `oh`/`ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub oh: usize,
    pub ow: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub ph: usize,
    pub pw: usize,
    pub groups: usize,
}

impl ConvGeom {
    /// Input channels per group.
    pub const fn cg(&self) -> usize {
        self.c_in / self.groups
    }
    /// Output channels per group.
    pub const fn og(&self) -> usize {
        self.c_out / self.groups
    }
    /// GEMM depth: `cg · kh · kw`.
    pub const fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output pixels per image.
    pub const fn pixels(&self) -> usize {
        self.oh * self.ow
    }
    /// GEMM rows of the int8 path: output pixels of the whole batch.
    pub const fn rows(&self) -> usize {
        self.batch * self.oh * self.ow
    }
    /// 1×1 kernel, stride 1, no padding: the output pixels are the input pixels.
    pub const fn pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.oh == self.h
            && self.ow == self.w
    }
    pub const fn input_len(&self) -> usize {
        self.batch * self.c_in * self.h * self.w
    }
    pub const fn output_len(&self) -> usize {
        self.batch * self.c_out * self.oh * self.ow
    }

    pub(crate) fn validate(&self) {
        assert!(
            self.groups > 0
                && self.c_in.is_multiple_of(self.groups)
                && self.c_out.is_multiple_of(self.groups),
            "conv: channels not divisible by groups"
        );
        assert!(
            self.sh > 0 && self.sw > 0 && self.dh > 0 && self.dw > 0,
            "conv: zero stride or dilation"
        );
    }

    /// Input row read by output row `oy` at kernel row `ky`, or `None` in the padding.
    #[inline(always)]
    pub(crate) fn in_y(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky * self.dh)
            .checked_sub(self.ph)
            .filter(|&v| v < self.h)
    }
    #[inline(always)]
    pub(crate) fn in_x(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.sw + kx * self.dw)
            .checked_sub(self.pw)
            .filter(|&v| v < self.w)
    }
    /// Output columns `[lo, hi)` whose input column for kernel column `kx` is inside the image.
    #[inline(always)]
    fn valid_x(&self, kx: usize) -> (usize, usize) {
        let off = kx * self.dw; // ix = ox·sw + off − pw
        let lo = if self.pw > off {
            (self.pw - off).div_ceil(self.sw)
        } else {
            0
        };
        let hi = if self.w + self.pw > off {
            ((self.w + self.pw - off - 1) / self.sw + 1).min(self.ow)
        } else {
            0
        };
        (lo.min(hi), hi)
    }
    /// Output columns `[lo, hi)` whose every kernel column is inside the image (`lo ≤ hi`).
    #[inline(always)]
    pub(crate) fn interior_x(&self) -> (usize, usize) {
        let lo = self.pw.div_ceil(self.sw).min(self.ow);
        (lo, self.valid_x(self.kw - 1).1.max(lo))
    }
}

/// Quantizes NCHW `x` (`batch` images of `c` × `hw`) into NHWC u8 `out`, with exactly the
/// rounding of `quantize::quantize_u8`: blocks of pixels are quantized channel row by channel
/// row with the SIMD row kernel into a tile on the stack, then the tile is transposed into the
/// NHWC rows. Blocks are split across threads.
pub fn quantize_nhwc(
    isa: Isa,
    x: &[f32],
    batch: usize,
    c: usize,
    hw: usize,
    qp: QParams,
    out: &mut [u8],
) {
    const TILE: usize = 16 * 1024;
    let per = c * hw;
    assert!(
        x.len() >= batch * per && out.len() >= batch * per,
        "quantize_nhwc: buffer too short"
    );
    if per == 0 {
        return;
    }
    let isa = isa.resolve();
    // Pixels per block: as many as fit the tile, a multiple of 16 when possible.
    let pb = {
        let n = (TILE / c).max(1).min(hw);
        if n >= 16 { n / 16 * 16 } else { n }
    };
    let one = |b: usize, blk: usize, os: &mut [u8]| {
        let mut tile = [0u8; TILE];
        let xs = &x[b * per..(b + 1) * per];
        let (p0, p1) = (blk * pb, ((blk + 1) * pb).min(hw));
        let n = p1 - p0;
        for ch in 0..c {
            crate::quantize::quantize_row(
                isa,
                &xs[ch * hw + p0..ch * hw + p1],
                qp,
                &mut tile[ch * n..(ch + 1) * n],
            );
        }
        // os holds pixels p0..p1 of image b (n rows of c bytes).
        transpose_u8(&tile[..c * n], c, n, os);
    };
    let out = &mut out[..batch * per];
    #[cfg(feature = "rayon")]
    {
        if crate::par::pieces(batch * per, crate::par::MIN_ELEMS) > 1 && batch * hw.div_ceil(pb) > 1
        {
            use rayon::prelude::*;
            out.par_chunks_mut(per).enumerate().for_each(|(b, img)| {
                img.par_chunks_mut(pb * c)
                    .enumerate()
                    .for_each(|(blk, os)| one(b, blk, os));
            });
            return;
        }
    }
    for (b, img) in out.chunks_mut(per).enumerate() {
        for (blk, os) in img.chunks_mut(pb * c).enumerate() {
            one(b, blk, os);
        }
    }
}

/// `dst[j·rows + i] = src[i·cols + j]` for a `rows × cols` byte matrix: 16×16 blocks through
/// SSE2 registers on x86_64 (four unpack stages, ~4 instructions per 16 bytes instead of a
/// strided byte gather each), scalar edges.
fn transpose_u8(src: &[u8], rows: usize, cols: usize, dst: &mut [u8]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    // Few channels (an RGB or gray image into a stem convolution): interleave whole rows,
    // no 16×16 blocks exist and the per-byte edge indexing below was 5–8 % of small CNNs.
    match rows {
        1 => return dst[..cols].copy_from_slice(&src[..cols]),
        2 => return interleave::<2>(src, cols, dst),
        3 => return interleave::<3>(src, cols, dst),
        4 => return interleave::<4>(src, cols, dst),
        _ => {}
    }
    // The full 16×16 blocks [0, fr) × [0, fc) (none without SIMD).
    #[cfg(target_arch = "x86_64")]
    let (fr, fc) = (rows / 16 * 16, cols / 16 * 16);
    #[cfg(not(target_arch = "x86_64"))]
    let (fr, fc) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    {
        for i0 in (0..fr).step_by(16) {
            for j0 in (0..fc).step_by(16) {
                // SAFETY: SSE2 is part of x86_64; rows i0..i0+16 of src hold columns j0..j0+16
                // and rows j0..j0+16 of dst columns i0..i0+16 (i0 + 16 ≤ rows, j0 + 16 ≤ cols,
                // lengths asserted above).
                unsafe {
                    t16x16_u8(
                        src.as_ptr().add(i0 * cols + j0),
                        cols,
                        dst.as_mut_ptr().add(j0 * rows + i0),
                        rows,
                    )
                };
            }
        }
    }
    let edge = |i: usize, j: usize, dst: &mut [u8]| dst[j * rows + i] = src[i * cols + j];
    for i in 0..fr {
        for j in fc..cols {
            edge(i, j, dst);
        }
    }
    for i in fr..rows {
        for j in 0..cols {
            edge(i, j, dst);
        }
    }
}

/// `dst[j·R + i] = src[i·cols + j]` for `R` rows (the transpose of [`transpose_u8`] for a
/// compile-time row count).
#[inline]
fn interleave<const R: usize>(src: &[u8], cols: usize, dst: &mut [u8]) {
    let rows: [&[u8]; R] = core::array::from_fn(|i| &src[i * cols..(i + 1) * cols]);
    for (j, d) in dst[..R * cols].chunks_exact_mut(R).enumerate() {
        for i in 0..R {
            d[i] = rows[i][j];
        }
    }
}

/// 16×16 byte transpose: `d[r·ld + c] = s[c·ls + r]`.
///
/// # Safety
/// `s` readable for 16 rows of 16 bytes at stride `ls`, `d` writable likewise at stride `ld`.
#[cfg(target_arch = "x86_64")]
unsafe fn t16x16_u8(s: *const u8, ls: usize, d: *mut u8, ld: usize) {
    use core::arch::x86_64::*;
    // SAFETY: the caller's contract covers the 16 loads and 16 stores (unaligned).
    unsafe {
        let mut v: [__m128i; 16] = core::array::from_fn(|k| _mm_loadu_si128(s.add(k * ls).cast()));
        // Stage k interleaves rows 2^k apart at element width 2^k bytes; after four stages
        // row r holds column r.
        for _ in 0..4 {
            let mut w = [_mm_setzero_si128(); 16];
            for k in 0..8 {
                w[2 * k] = _mm_unpacklo_epi8(v[k], v[k + 8]);
                w[2 * k + 1] = _mm_unpackhi_epi8(v[k], v[k + 8]);
            }
            v = w;
        }
        for (k, x) in v.iter().enumerate() {
            _mm_storeu_si128(d.add(k * ld).cast(), *x);
        }
    }
}

/// im2col for group `grp` of the int8 path: from NHWC u8 `q` (the whole batch) into `a`, the
/// int8 GEMM's A layout (`rows()` × `padded_k(k())`, K ordered `(ky, kx, c)`, padding bytes 0),
/// and, if given, `row_term[r] = Σ_k a[r][k] − K·za` (wrapping; not needed when every weight
/// zero point is 0, see `gemm`). Taps in the padding read `za`.
pub fn im2col_u8(
    g: &ConvGeom,
    grp: usize,
    q: &[u8],
    za: u8,
    a: &mut [u8],
    row_term: Option<&mut [i32]>,
) {
    g.validate();
    let (cg, k) = (g.cg(), g.k());
    let pk = padded_k(k);
    let rows = g.rows();
    assert!(q.len() >= g.input_len(), "im2col_u8: input too short");
    assert!(a.len() >= rows * pk, "im2col_u8: A too short");
    if let Some(rt) = &row_term {
        assert!(rt.len() >= rows, "im2col_u8: row_term too short");
    }
    assert!(grp < g.groups, "im2col_u8: group out of range");
    let kza = (k as i32).wrapping_mul(za as i32);
    let c0 = grp * cg;
    // Output columns whose kw taps are all inside the image: with one group and no dilation
    // they are one contiguous NHWC run per kernel row (small channel counts made this kw
    // tiny copies).
    let (ox_lo, ox_hi) = g.interior_x();
    let runs = cg == g.c_in && g.dw == 1;
    let row_len = g.kw * cg;
    // Output image rows `(b, oy)` from `ir0` on, each `ow` GEMM rows, into `a` and `rt`: per
    // kernel row, one tight loop over the row's pixels (the same run length for all interior
    // pixels), then the padding bytes and row sums per pixel.
    let fill_rows = |a: &mut [u8], mut rt: Option<&mut [i32]>, ir0: usize| {
        let img_row = g.ow * pk;
        for (i, arow) in a.chunks_exact_mut(img_row).enumerate() {
            let (b, oy) = ((ir0 + i) / g.oh, (ir0 + i) % g.oh);
            for ky in 0..g.kh {
                let off = ky * row_len;
                let Some(iy) = g.in_y(oy, ky) else {
                    for dst in arow.chunks_exact_mut(pk) {
                        fill_run(&mut dst[off..off + row_len], za);
                    }
                    continue;
                };
                let base = (b * g.h + iy) * g.w;
                if runs && ox_hi > ox_lo {
                    // Interior pixels: one run each, `sw·C` bytes apart in q and `pk` apart
                    // in A; the bounds of the first and last run cover all of them.
                    let s0 = (base + ox_lo * g.sw - g.pw) * g.c_in;
                    let n = ox_hi - ox_lo;
                    let step = g.sw * g.c_in;
                    assert!(s0 + (n - 1) * step + row_len <= q.len());
                    assert!((ox_hi - 1) * pk + off + row_len <= arow.len() && off + row_len <= pk);
                    // SAFETY: the asserts bound every run read and written below; q and A do
                    // not overlap (distinct borrows).
                    unsafe {
                        copy_runs(
                            q.as_ptr().add(s0),
                            step,
                            arow.as_mut_ptr().add(ox_lo * pk + off),
                            pk,
                            n,
                            row_len,
                        );
                    }
                }
                // The other pixels (all of them without runs), tap by tap.
                let (skip_lo, skip_hi) = if runs { (ox_lo, ox_hi) } else { (0, 0) };
                for ox in (0..skip_lo).chain(skip_hi..g.ow) {
                    let dst = &mut arow[ox * pk..(ox + 1) * pk];
                    for kx in 0..g.kw {
                        let o = off + kx * cg;
                        match g.in_x(ox, kx) {
                            None => fill_run(&mut dst[o..o + cg], za),
                            Some(ix) => {
                                let s = (base + ix) * g.c_in + c0;
                                copy_run(&mut dst[o..o + cg], &q[s..s + cg]);
                            }
                        }
                    }
                }
            }
            match rt.as_deref_mut() {
                Some(rt) => {
                    let trow = &mut rt[i * g.ow..(i + 1) * g.ow];
                    for (dst, t) in arow.chunks_exact_mut(pk).zip(trow.iter_mut()) {
                        zero_padding(dst, k);
                        *t = sum_u8(&dst[..k]).wrapping_sub(kza);
                    }
                }
                None if k < pk => {
                    for dst in arow.chunks_exact_mut(pk) {
                        zero_padding(dst, k);
                    }
                }
                None => {}
            }
        }
    };
    let a = &mut a[..rows * pk];
    let row_term = row_term.map(|r| &mut r[..rows]);
    if g.ow == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        let img_rows = g.batch * g.oh;
        let n = crate::par::pieces(img_rows, crate::par::MIN_ELEMS.div_ceil(pk * g.ow));
        if n > 1 {
            use rayon::prelude::*;
            let per = img_rows.div_ceil(n);
            let a = a.par_chunks_mut(per * g.ow * pk).with_max_len(1);
            match row_term {
                Some(rt) => a
                    .zip(rt.par_chunks_mut(per * g.ow))
                    .enumerate()
                    .for_each(|(i, (a, rt))| fill_rows(a, Some(rt), i * per)),
                None => a.enumerate().for_each(|(i, a)| fill_rows(a, None, i * per)),
            }
            return;
        }
    }
    fill_rows(a, row_term, 0);
}

/// Copies `n` runs of `len` bytes, the i-th from `src + i·src_step` to `dst + i·dst_step`.
/// Runs up to 64 bytes are two overlapping fixed-size moves each (the size class chosen once
/// for all runs), not `memmove` calls: an RGB stem's runs are 9–21 bytes.
///
/// # Safety
/// Every run must be readable at `src + i·src_step` and writable at `dst + i·dst_step`, and
/// the source and destination ranges must not overlap.
#[inline(always)]
unsafe fn copy_runs(
    src: *const u8,
    src_step: usize,
    dst: *mut u8,
    dst_step: usize,
    n: usize,
    len: usize,
) {
    use core::ptr::copy_nonoverlapping as cp;
    macro_rules! two {
        ($w:expr) => {
            for i in 0..n {
                // SAFETY: per the function's contract; `$w ≤ len`, so both moves stay inside
                // the run.
                unsafe {
                    let (s, d) = (src.add(i * src_step), dst.add(i * dst_step));
                    cp(s, d, $w);
                    cp(s.add(len - $w), d.add(len - $w), $w);
                }
            }
        };
    }
    match len {
        0 => {}
        1..=3 => {
            for i in 0..n {
                // SAFETY: per the function's contract.
                unsafe { cp(src.add(i * src_step), dst.add(i * dst_step), len) };
            }
        }
        4..=7 => two!(4),
        8..=15 => two!(8),
        16..=31 => two!(16),
        32..=64 => two!(32),
        _ => {
            for i in 0..n {
                // SAFETY: per the function's contract.
                unsafe { cp(src.add(i * src_step), dst.add(i * dst_step), len) };
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of im2col (a few channels × kernel width:
/// 3–48 bytes on RGB stems), as two overlapping fixed-size moves instead of a `memmove` call.
#[inline(always)]
fn copy_run(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    assert_eq!(dst.len(), n);
    macro_rules! two {
        ($w:expr) => {{
            let a: [u8; $w] = src[..$w].try_into().unwrap();
            let b: [u8; $w] = src[n - $w..].try_into().unwrap();
            dst[..$w].copy_from_slice(&a);
            dst[n - $w..].copy_from_slice(&b);
        }};
    }
    match n {
        0 => {}
        1..=3 => {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d = v;
            }
        }
        4..=7 => two!(4),
        8..=15 => two!(8),
        16..=31 => two!(16),
        32..=64 => two!(32),
        _ => dst.copy_from_slice(src),
    }
}

/// Zeroes `row[k..]`, the 0–3 padding bytes of a `padded_k` row, as one masked dword write
/// (a byte loop there became a `memset` call per row).
#[inline(always)]
fn zero_padding(row: &mut [u8], k: usize) {
    let pk = row.len();
    if k < pk {
        debug_assert!(pk.is_multiple_of(4) && pk - k < 4);
        let t = &mut row[pk - 4..];
        let keep = (k + 4 - pk) as u32; // real bytes in the last dword: 1..=3
        let v = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) & ((1u32 << (8 * keep)) - 1);
        t.copy_from_slice(&v.to_le_bytes());
    }
}

/// `dst.fill(v)` for short runs, like [`copy_run`].
#[inline(always)]
fn fill_run(dst: &mut [u8], v: u8) {
    let n = dst.len();
    if n > 64 {
        dst.fill(v);
        return;
    }
    let src = [v; 64];
    copy_run(dst, &src[..n]);
}

/// `row_term` of an A matrix used as is (1×1, stride 1, no padding, one group, `k` already a
/// multiple of 4): `Σ_k a[r][k] − K·za` for each of the `rows` rows of `k` bytes.
pub fn row_terms(a: &[u8], rows: usize, k: usize, za: u8, row_term: &mut [i32]) {
    assert!(
        a.len() >= rows * k && row_term.len() >= rows,
        "row_terms: too short"
    );
    let kza = (k as i32).wrapping_mul(za as i32);
    // Rows done by the two-row SIMD path (x86_64 only).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut r = 0;
    #[cfg(target_arch = "x86_64")]
    if k.is_multiple_of(8) && k > 0 {
        // Two rows per step, PSADBW over 16-byte chunks (and an 8-byte tail), both sums
        // combined in one register: the 1×1 layers of small CNNs have rows of 16–96 bytes,
        // where the per-row loop set-up of `sum_u8` cost more than the sums.
        use core::arch::x86_64::*;
        let (k16, tail) = (k / 16 * 16, !k.is_multiple_of(16));
        while r + 2 <= rows {
            let (ra, rb) = (&a[r * k..(r + 1) * k], &a[(r + 1) * k..(r + 2) * k]);
            // SAFETY: SSE2 is part of x86_64; every load reads 16 (or, for the tail, 8) bytes
            // inside `ra` / `rb`, whose lengths are k.
            let (sa, sb) = unsafe {
                let z = _mm_setzero_si128();
                let (mut sa, mut sb) = (z, z);
                for c in (0..k16).step_by(16) {
                    let va = _mm_loadu_si128(ra.as_ptr().add(c).cast());
                    let vb = _mm_loadu_si128(rb.as_ptr().add(c).cast());
                    sa = _mm_add_epi64(sa, _mm_sad_epu8(va, z));
                    sb = _mm_add_epi64(sb, _mm_sad_epu8(vb, z));
                }
                if tail {
                    let va = _mm_loadl_epi64(ra.as_ptr().add(k16).cast());
                    let vb = _mm_loadl_epi64(rb.as_ptr().add(k16).cast());
                    sa = _mm_add_epi64(sa, _mm_sad_epu8(va, z));
                    sb = _mm_add_epi64(sb, _mm_sad_epu8(vb, z));
                }
                // [a0 + a1, b0 + b1]
                let s = _mm_add_epi64(_mm_unpacklo_epi64(sa, sb), _mm_unpackhi_epi64(sa, sb));
                (
                    _mm_cvtsi128_si64(s) as i32,
                    _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s)) as i32,
                )
            };
            row_term[r] = sa.wrapping_sub(kza);
            row_term[r + 1] = sb.wrapping_sub(kza);
            r += 2;
        }
    }
    for (r, t) in row_term[..rows].iter_mut().enumerate().skip(r) {
        *t = sum_u8(&a[r * k..(r + 1) * k]).wrapping_sub(kza);
    }
}

/// `Σ x` as a wrapping i32 (exact below 2^31 / 255 ≈ 8.4 M bytes). On x86_64 16 bytes per
/// PSADBW (SSE2, baseline), instead of the widening adds the compiler emits for a byte fold.
fn sum_u8(x: &[u8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    let (mut sum, rest) = {
        use core::arch::x86_64::*;
        let chunks = x.chunks_exact(16);
        let rest = chunks.remainder();
        // SAFETY: SSE2 is part of x86_64; each chunk is exactly 16 readable bytes.
        let sum = unsafe {
            let mut acc = _mm_setzero_si128();
            for c in chunks {
                let v = _mm_loadu_si128(c.as_ptr().cast());
                acc = _mm_add_epi64(acc, _mm_sad_epu8(v, _mm_setzero_si128()));
            }
            (_mm_cvtsi128_si64(acc) as u64)
                .wrapping_add(_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)) as u64)
        };
        (sum, rest)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (mut sum, rest) = (0u64, x);
    for &v in rest {
        sum = sum.wrapping_add(v as u64);
    }
    sum as i32
}

/// Direct float convolution (weights known only at run time; the reference of the fast
/// paths): `y = Σ x·w + bias`, summed in `(c, ky, kx)` order.
pub fn conv_ref_f32(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
    g.validate();
    let (cg, og) = (g.cg(), g.og());
    assert!(x.len() >= g.input_len(), "conv: input too short");
    assert!(w.len() >= g.c_out * g.k(), "conv: weights too short");
    assert!(y.len() >= g.output_len(), "conv: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= g.c_out, "conv: bias too short");
    }
    for b in 0..g.batch {
        for co in 0..g.c_out {
            let grp = co / og;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = 0.0f32;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_y(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_x(ox, kx) else { continue };
                                let xv = x[((b * g.c_in + ci) * g.h + iy) * g.w + ix];
                                let wv = w[((co * cg + c) * g.kh + ky) * g.kw + kx];
                                s += xv * wv;
                            }
                        }
                    }
                    if let Some(bb) = bias {
                        s += bb[co];
                    }
                    y[((b * g.c_out + co) * g.oh + oy) * g.ow + ox] = s;
                }
            }
        }
    }
}

/// Direct `ConvInteger`: `y = Σ (x − xz)(w − wz[co])` in wrapping i32, padding contributing 0
/// (ONNX pads with the zero point). `wz` has 1 or `c_out` entries.
pub fn conv_integer_ref<A: Copy + Into<i32>, B: Copy + Into<i32>, Z: Copy + Into<i32>>(
    g: &ConvGeom,
    x: &[A],
    xz: i32,
    w: &[B],
    wz: &[Z],
    y: &mut [i32],
) {
    g.validate();
    let (cg, og) = (g.cg(), g.og());
    assert!(x.len() >= g.input_len(), "conv_integer: input too short");
    assert!(
        w.len() >= g.c_out * g.k(),
        "conv_integer: weights too short"
    );
    assert!(y.len() >= g.output_len(), "conv_integer: output too short");
    assert!(
        wz.len() == 1 || wz.len() >= g.c_out,
        "conv_integer: weight zero points"
    );
    for b in 0..g.batch {
        for co in 0..g.c_out {
            let grp = co / og;
            let z: i32 = wz[if wz.len() == 1 { 0 } else { co }].into();
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut s = 0i32;
                    for c in 0..cg {
                        let ci = grp * cg + c;
                        for ky in 0..g.kh {
                            let Some(iy) = g.in_y(oy, ky) else { continue };
                            for kx in 0..g.kw {
                                let Some(ix) = g.in_x(ox, kx) else { continue };
                                let xv: i32 = x[((b * g.c_in + ci) * g.h + iy) * g.w + ix].into();
                                let wv: i32 = w[((co * cg + c) * g.kh + ky) * g.kw + kx].into();
                                s = s.wrapping_add(
                                    xv.wrapping_sub(xz).wrapping_mul(wv.wrapping_sub(z)),
                                );
                            }
                        }
                    }
                    y[((b * g.c_out + co) * g.oh + oy) * g.ow + ox] = s;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests;
