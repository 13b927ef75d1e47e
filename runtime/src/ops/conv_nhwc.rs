//! The int8 depthwise convolution on NHWC activations, vectorised over channels.
//!
//! Used when codegen keeps the activations between fused int8 convolutions in NHWC (design
//! decision 19): the NCHW kernel of [`super::conv::depthwise`] vectorises along one plane's
//! row, which on mobile networks is 7–56 outputs wide, while channel counts are 16–960 and
//! contiguous in NHWC.
//!
//! The input is the quantized u8 tensor (NHWC, as DynamicQuantizeLinear writes it); each tap
//! multiplies `x − za` (exact small integers as f32) by the centered weights `w − wz`.
//! Products of int8 values and their sums over fewer than 258 taps are exact in f32 (as in the
//! NCHW kernel, see `conv.rs`), so the result is ConvInteger's integer sum times the scales,
//! bit-identical to the NCHW kernel's. The AVX-512 interior kernel accumulates `x·w` and
//! subtracts `za·Σw` once per output (also exact), so a tap costs a widening load, a
//! conversion and an FMA; the u8 input is a quarter of the memory traffic of an f32 copy.
use super::conv::ConvGeom;
use crate::gemm::Activation;
use crate::isa::Isa;
use crate::quantize::Range;

/// Most kernel taps per output pixel (7×7 is 49; the exactness bound is 258).
pub const MAX_TAPS: usize = 64;
/// Kernel rows of the integer 3-wide kernel (`x86::interior16_vnni`).
#[cfg(target_arch = "x86_64")]
const MAX_KH: usize = 8;

/// Depthwise convolution, one input channel per output channel (`groups = c_in = c_out`),
/// NHWC in and out: `y[b][oy][ox][c] = act(Σ (xq[b][iy][ix][c] − za)·w[tap][c] ·
/// (a_scale·w_scale[c]) + bias[c])` over the taps inside the image, with `xq` the quantized
/// input, `w` the centered weights `w − wz` laid out `[kh·kw][c]`, `w_scale` per channel.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_nhwc(
    isa: Isa,
    g: &ConvGeom,
    xq: &[u8],
    za: u8,
    w: &[f32],
    a_scale: f32,
    w_scale: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    y: &mut [f32],
    range: Option<&Range>,
) {
    g.validate();
    let c = g.c_out;
    assert!(
        g.c_in == c && g.groups == c,
        "depthwise_nhwc: not one channel per group"
    );
    assert!(g.kh * g.kw <= MAX_TAPS, "depthwise_nhwc: too many taps");
    assert!(xq.len() >= g.input_len(), "depthwise_nhwc: input too short");
    assert!(
        y.len() >= g.output_len(),
        "depthwise_nhwc: output too short"
    );
    assert!(
        w.len() >= g.kh * g.kw * c,
        "depthwise_nhwc: weights too short"
    );
    assert!(w_scale.len() >= c, "depthwise_nhwc: scales too short");
    if let Some(b) = bias {
        assert!(b.len() >= c, "depthwise_nhwc: bias too short");
    }
    let row = g.ow * c;
    if row == 0 {
        return;
    }
    let y = &mut y[..g.batch * g.oh * row];
    let min_rows = crate::par::MIN_ELEMS.div_ceil(row * g.kh * g.kw / 4 + 1);
    let isa = isa.resolve();
    // VPDPBUSD over the three taps of a kernel row: stride-1/2, undilated 3-wide kernels whose
    // centered weights are i8 (symmetric int8 weights), on AVX-512 VNNI + VBMI.
    #[cfg(target_arch = "x86_64")]
    let vnni = isa == Isa::Avx512Vnni
        && crate::isa::x86::has_avx512vbmi()
        && g.sw <= 2
        && g.dw == 1
        && g.kw == 3
        && g.kh <= MAX_KH
        && c.is_multiple_of(16)
        && w[..g.kh * g.kw * c].iter().all(|&v| v as i8 as f32 == v); // an integer in [-128, 127] (`as` saturates)
    #[cfg(not(target_arch = "x86_64"))]
    let vnni = false;
    let p = Params {
        g,
        xq,
        za,
        w,
        a_scale,
        w_scale,
        bias,
        act,
        vnni,
    };
    crate::par::rows_mut(y, row, min_rows, |r0, ys| {
        // The min/max of the piece's rows, gathered as each row is finished (in registers on
        // AVX-512, else a pass over the row while it is in L1).
        let mut mm = range.map(|_| (0f32, 0f32));
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `resolve` only returns families the CPU has; AVX-512 VNNI implies F.
            Isa::Avx512Vnni => unsafe { x86::rows_avx512(&p, r0, ys, mm.as_mut()) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above; AVX2 and AVX-VNNI imply AVX2.
            Isa::Avx2 | Isa::AvxVnni => unsafe { x86::rows_avx2(&p, r0, ys, mm.as_mut()) },
            _ => rows::<false>(&p, r0, ys, mm.as_mut()),
        }
        if let (Some(range), Some(mm)) = (range, mm) {
            range.include(mm);
        }
    });
}

/// The arguments of [`depthwise_nhwc`] after validation.
struct Params<'a> {
    g: &'a ConvGeom,
    xq: &'a [u8],
    za: u8,
    w: &'a [f32],
    a_scale: f32,
    w_scale: &'a [f32],
    bias: Option<&'a [f32]>,
    act: Activation,
    /// The integer interior kernel applies (see `x86::interior16_vnni`).
    vnni: bool,
}

/// Output rows `r0…` (row = one image row of all channels) into `ys`. Inlined into each ISA
/// wrapper so that the channel loops are compiled for its vector width.
/// With `mm`, also widens it by every value written (NaN skipped).
#[inline(always)]
fn rows<const AVX512: bool>(
    p: &Params,
    r0: usize,
    ys: &mut [f32],
    mut mm: Option<&mut (f32, f32)>,
) {
    let g = p.g;
    let c = g.c_out;
    for (i, yr) in ys.chunks_exact_mut(g.ow * c).enumerate() {
        let r = r0 + i;
        let (b, oy) = (r / g.oh, r % g.oh);
        let xb = &p.xq[b * g.h * g.w * c..][..g.h * g.w * c];
        out_row::<AVX512>(
            g,
            xb,
            p.za,
            oy,
            p.w,
            p.a_scale,
            p.w_scale,
            p.bias,
            p.act,
            p.vnni,
            yr,
            mm.as_deref_mut(),
        );
    }
}

/// One output row: the raw sums of every pixel ([`pixels`]; interior pixels share one tap
/// list), then one epilogue pass over the row.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn out_row<const AVX512: bool>(
    g: &ConvGeom,
    x: &[u8],
    za: u8,
    oy: usize,
    w: &[f32],
    a_scale: f32,
    w_scale: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    vnni: bool,
    yr: &mut [f32],
    mm: Option<&mut (f32, f32)>,
) {
    let c = g.c_out;
    // Interior columns: every kernel column inside the image, so one tap list (offsets
    // relative to the window's first column) serves them all.
    let (ox_lo, ox_hi) = g.interior_x();
    let mut rel = [(0usize, 0usize); MAX_TAPS];
    let mut nr = 0;
    for ky in 0..g.kh {
        let Some(iy) = g.in_y(oy, ky) else { continue };
        for kx in 0..g.kw {
            rel[nr] = ((iy * g.w + kx * g.dw) * c, (ky * g.kw + kx) * c);
            nr += 1;
        }
    }
    let rel = &rel[..nr];
    let step = g.sw * c;
    #[allow(unused_mut)]
    let mut c_done = 0;
    #[cfg(target_arch = "x86_64")]
    if AVX512 && ox_hi > ox_lo {
        // The kernel's bounds: every interior load and store is inside these slices.
        let last = (ox_hi - 1) * g.sw - g.pw;
        let xmax = rel.iter().map(|r| r.0).max().unwrap_or(0) + last * c + c;
        let wmax = rel.iter().map(|r| r.1).max().unwrap_or(0) + c;
        assert!(xmax <= x.len() && wmax <= w.len() && ox_hi * c <= yr.len());
        c_done = if vnni {
            // The kernel rows inside the image: (input row offset, weight offset of kx = 0).
            let mut krows = [(0usize, 0usize); MAX_KH];
            let mut nk = 0;
            for ky in 0..g.kh {
                if let Some(iy) = g.in_y(oy, ky) {
                    krows[nk] = (iy * g.w * c, ky * 3 * c);
                    nk += 1;
                }
            }
            // The windows read input pixels ox·sw − pw … (ox_hi − 1)·sw − pw + 2 (a stride-1
            // pair's window reaches one pixel past its first pixel's taps, which is the second
            // pixel's last tap): inside the image row.
            assert!(ox_lo * g.sw >= g.pw && (ox_hi - 1) * g.sw + 2 < g.w + g.pw);
            // SAFETY: `vnni` implies the AVX-512 VNNI + VBMI CPU check, stride 1, dilation 1,
            // kw = 3, kh <= MAX_KH, c % 16 == 0 and i8-valued weights (see `depthwise_nhwc`);
            // the asserts above bound every access (see `x86::interior16_vnni`).
            unsafe {
                x86::interior16_vnni(x, za, &krows[..nk], w, c, (ox_lo, ox_hi), (g.sw, g.pw), yr)
            }
        } else {
            // SAFETY: AVX512 is only true inside the AVX-512 wrapper (CPU checked by
            // `resolve`); the assert above bounds every access (see `x86::interior16`).
            unsafe { x86::interior16(x, za, rel, w, c, (ox_lo, ox_hi), (g.sw, g.pw), yr) }
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = vnni;
    if c_done < c {
        let mut ox = ox_lo;
        while ox + 4 <= ox_hi {
            let base = (ox * g.sw - g.pw) * c;
            let yp = &mut yr[ox * c..(ox + 4) * c];
            pixels::<4>(x, za, base, step, rel, w, (c_done, c), yp);
            ox += 4;
        }
        for ox in ox..ox_hi {
            let base = (ox * g.sw - g.pw) * c;
            let yp = &mut yr[ox * c..(ox + 1) * c];
            pixels::<1>(x, za, base, step, rel, w, (c_done, c), yp);
        }
    }
    // Border columns: the taps inside the image, per pixel.
    let mut taps = [(0usize, 0usize); MAX_TAPS];
    for ox in (0..ox_lo).chain(ox_hi..g.ow) {
        let mut nt = 0;
        for ky in 0..g.kh {
            let Some(iy) = g.in_y(oy, ky) else { continue };
            for kx in 0..g.kw {
                let Some(ix) = g.in_x(ox, kx) else { continue };
                taps[nt] = ((iy * g.w + ix) * c, (ky * g.kw + kx) * c);
                nt += 1;
            }
        }
        pixels::<1>(
            x,
            za,
            0,
            0,
            &taps[..nt],
            w,
            (0, c),
            &mut yr[ox * c..(ox + 1) * c],
        );
    }
    #[cfg(target_arch = "x86_64")]
    if AVX512 && act != Activation::Gelu {
        assert!(w_scale.len() >= c && bias.is_none_or(|b| b.len() >= c));
        // SAFETY: AVX512 is only true inside the AVX-512 wrapper (CPU checked by `resolve`);
        // yr holds whole pixels of c channels and the per-channel arrays have c entries.
        let r = unsafe { x86::epilogue_avx512(yr, c, a_scale, w_scale, bias, act) };
        if let Some(mm) = mm {
            *mm = (mm.0.min(r.0), mm.1.max(r.1));
        }
        return;
    }
    match act {
        Activation::None => epilogue(yr, c, a_scale, w_scale, bias, |v| v),
        Activation::Relu => epilogue(yr, c, a_scale, w_scale, bias, |v| Activation::Relu.apply(v)),
        Activation::Clip { min, max } => epilogue(yr, c, a_scale, w_scale, bias, |v| {
            Activation::Clip { min, max }.apply(v)
        }),
        Activation::Gelu => epilogue(yr, c, a_scale, w_scale, bias, |v| Activation::Gelu.apply(v)),
    }
    if let Some(mm) = mm {
        let (lo, hi) =
            crate::quantize::min_max_rows(crate::isa::Isa::current(), yr, 1, yr.len(), yr.len());
        *mm = (mm.0.min(lo), mm.1.max(hi));
    }
}

/// `yp[p·c + ch] = Σ_taps (x[base + p·step + xo + ch] − za)·w[wo + ch]` for `P` pixels (`step` bytes
/// apart in `x`) and channels `c_start..c`: channel blocks of 64 (one pixel at a time: four independent
/// vectors already), then 16 and 8 for all `P` pixels at once (P independent sums, each weight
/// load shared), then single channels. Taps in order, so every sum is the same sequence of
/// operations.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixels<const P: usize>(
    x: &[u8],
    za: u8,
    base: usize,
    step: usize,
    taps: &[(usize, usize)],
    w: &[f32],
    (c_start, c): (usize, usize),
    yp: &mut [f32],
) {
    let za = za as f32;
    let mut c0 = c_start;
    while c0 + 64 <= c {
        for p in 0..P {
            let xp = &x[base + p * step..];
            let mut acc = [0f32; 64];
            for &(xo, wo) in taps {
                let xs: &[u8; 64] = xp[xo + c0..][..64].try_into().unwrap();
                let ws: &[f32; 64] = w[wo + c0..][..64].try_into().unwrap();
                for j in 0..64 {
                    acc[j] += (xs[j] as f32 - za) * ws[j];
                }
            }
            yp[p * c + c0..][..64].copy_from_slice(&acc);
        }
        c0 += 64;
    }
    macro_rules! block {
        ($l:expr) => {
            while c0 + $l <= c {
                let mut acc = [[0f32; $l]; P];
                for &(xo, wo) in taps {
                    let ws: &[f32; $l] = w[wo + c0..][..$l].try_into().unwrap();
                    for (p, acc) in acc.iter_mut().enumerate() {
                        let o = base + p * step + xo + c0;
                        let xs: &[u8; $l] = x[o..][..$l].try_into().unwrap();
                        for j in 0..$l {
                            acc[j] += (xs[j] as f32 - za) * ws[j];
                        }
                    }
                }
                for (p, acc) in acc.iter().enumerate() {
                    yp[p * c + c0..][..$l].copy_from_slice(acc);
                }
                c0 += $l;
            }
        };
    }
    block!(16);
    block!(8);
    for ch in c0..c {
        for p in 0..P {
            let mut acc = 0f32;
            for &(xo, wo) in taps {
                acc += (x[base + p * step + xo + ch] as f32 - za) * w[wo + ch];
            }
            yp[p * c + ch] = acc;
        }
    }
}

/// `y = act(acc·(a_scale·w_scale[c]) + bias[c])` over a row of pixels with `c` channels each:
/// the NCHW kernel's epilogue per channel (the scale product in the same order, so the same
/// bits). `w_scale` has `c` entries. The activation is matched by the caller, once per row.
#[inline(always)]
fn epilogue(
    y: &mut [f32],
    c: usize,
    a_scale: f32,
    w_scale: &[f32],
    bias: Option<&[f32]>,
    act: impl Fn(f32) -> f32,
) {
    let ws = &w_scale[..c];
    match bias {
        Some(b) => {
            let b = &b[..c];
            for px in y.chunks_exact_mut(c) {
                for ((d, &s), &b) in px.iter_mut().zip(ws).zip(b) {
                    *d = act(*d * (a_scale * s) + b);
                }
            }
        }
        None => {
            for px in y.chunks_exact_mut(c) {
                for (d, &s) in px.iter_mut().zip(ws) {
                    *d = act(*d * (a_scale * s));
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{MAX_KH, Params};

    /// # Safety
    /// CPU has avx512f.
    #[target_feature(enable = "avx512f,avx2")]
    pub(super) unsafe fn rows_avx512(
        p: &Params,
        r0: usize,
        ys: &mut [f32],
        mm: Option<&mut (f32, f32)>,
    ) {
        super::rows::<true>(p, r0, ys, mm)
    }

    /// [`super::epilogue`] with 16-lane vectors (the same operations in the same order, so the
    /// same bits; the activation as in the GEMM kernels) that also returns the row's
    /// `(min(0, min y), max(0, max y))`, NaN skipped, from the registers it stores.
    ///
    /// # Safety
    /// CPU has avx512f; `y.len()` is a multiple of `c`, `w_scale` and `bias` (if any) have at
    /// least `c` entries; `act` is not GELU.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn epilogue_avx512(
        y: &mut [f32],
        c: usize,
        a_scale: f32,
        w_scale: &[f32],
        bias: Option<&[f32]>,
        act: crate::gemm::Activation,
    ) -> (f32, f32) {
        use crate::kernels::x86_64::avx512vnni::act_512;
        use core::arch::x86_64::*;
        let av = _mm512_set1_ps(a_scale);
        let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let yp = y.as_mut_ptr();
        let mut px = 0;
        while px < y.len() {
            let mut c0 = 0;
            while c0 < c {
                let k = ((1u32 << (c - c0).min(16)) - 1) as __mmask16;
                // SAFETY (loads and store): lanes c0..min(c0+16, c) of the pixel at px and of
                // the per-channel arrays, all in bounds (caller); masked-off lanes untouched.
                unsafe {
                    let s = _mm512_mul_ps(av, _mm512_maskz_loadu_ps(k, w_scale.as_ptr().add(c0)));
                    let mut v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, yp.add(px + c0)), s);
                    if let Some(b) = bias {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, b.as_ptr().add(c0)));
                    }
                    let v = act_512(v, act);
                    _mm512_mask_storeu_ps(yp.add(px + c0), k, v);
                    // VMINPS(v, acc) keeps acc for a NaN v; masked-off lanes keep acc.
                    lo = _mm512_mask_min_ps(lo, k, v, lo);
                    hi = _mm512_mask_max_ps(hi, k, v, hi);
                }
                c0 += 16;
            }
            px += c;
        }
        (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi))
    }

    /// Interior pixels `ox_lo..ox_hi` of one output row (every tap of `rel` inside the image),
    /// all whole blocks of 16 channels: four pixels at a time, per tap a widening load of 16
    /// bytes, a conversion and an FMA of `x·w`, then `− za·Σw` once (all exact integer values
    /// in f32, so the same bits as summing `(x − za)·w`). Returns the channels done (a
    /// multiple of 16).
    ///
    /// # Safety
    /// CPU has avx512f. For every pixel `ox` in the range, `(ox·sw − pw)·c + rel[t].0 + c ≤
    /// x.len()` and `rel[t].1 + c ≤ w.len()` for every tap, and `ox_hi·c ≤ yr.len()` (the
    /// caller asserts these for the last pixel, the largest offsets).
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn interior16(
        x: &[u8],
        za: u8,
        rel: &[(usize, usize)],
        w: &[f32],
        c: usize,
        (ox_lo, ox_hi): (usize, usize),
        (sw, pw): (usize, usize),
        yr: &mut [f32],
    ) -> usize {
        use core::arch::x86_64::*;
        let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), yr.as_mut_ptr());
        let step = sw * c;
        let c16 = c / 16 * 16;
        let zav = _mm512_set1_ps(za as f32);
        // SAFETY (all blocks below): offsets are within the bounds the caller guarantees,
        // since c0 + 16 ≤ c and ox < ox_hi.
        unsafe {
            let ld =
                |p: *const u8| _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())));
            // za·Σw per block of 16 channels (the same for every interior pixel).
            let zw = |c0: usize| {
                let mut s = _mm512_setzero_ps();
                for &(_, wo) in rel {
                    s = _mm512_add_ps(s, _mm512_loadu_ps(wp.add(wo + c0)));
                }
                _mm512_mul_ps(s, zav)
            };
            let mut ox = ox_lo;
            // Pixels outer, channel blocks inner: the window's input columns stay in L1 while
            // all channels of a group of pixels are done (weights are reloaded, from L1).
            while ox + 4 <= ox_hi {
                let base = (ox * sw - pw) * c;
                for c0 in (0..c16).step_by(16) {
                    let (mut a0, mut a1, mut a2, mut a3) = (
                        _mm512_setzero_ps(),
                        _mm512_setzero_ps(),
                        _mm512_setzero_ps(),
                        _mm512_setzero_ps(),
                    );
                    for &(xo, wo) in rel {
                        let wv = _mm512_loadu_ps(wp.add(wo + c0));
                        let p = xp.add(base + xo + c0);
                        a0 = _mm512_fmadd_ps(ld(p), wv, a0);
                        a1 = _mm512_fmadd_ps(ld(p.add(step)), wv, a1);
                        a2 = _mm512_fmadd_ps(ld(p.add(2 * step)), wv, a2);
                        a3 = _mm512_fmadd_ps(ld(p.add(3 * step)), wv, a3);
                    }
                    let z = zw(c0);
                    let o = yp.add(ox * c + c0);
                    _mm512_storeu_ps(o, _mm512_sub_ps(a0, z));
                    _mm512_storeu_ps(o.add(c), _mm512_sub_ps(a1, z));
                    _mm512_storeu_ps(o.add(2 * c), _mm512_sub_ps(a2, z));
                    _mm512_storeu_ps(o.add(3 * c), _mm512_sub_ps(a3, z));
                }
                ox += 4;
            }
            while ox < ox_hi {
                let base = (ox * sw - pw) * c;
                for c0 in (0..c16).step_by(16) {
                    let mut a0 = _mm512_setzero_ps();
                    for &(xo, wo) in rel {
                        let wv = _mm512_loadu_ps(wp.add(wo + c0));
                        a0 = _mm512_fmadd_ps(ld(xp.add(base + xo + c0)), wv, a0);
                    }
                    _mm512_storeu_ps(yp.add(ox * c + c0), _mm512_sub_ps(a0, zw(c0)));
                }
                ox += 1;
            }
        }
        c16
    }

    /// [`interior16`] with integer products for stride-1/2, undilated 3-wide kernels whose
    /// centered weights are i8: per kernel row and 16 channels, input pixels `ox·sw − pw …
    /// ox·sw − pw + 3` form one 64-byte window (16 channels each); VPERMB gathers, per
    /// channel, the three taps of pixel `ox` (and with stride 1, one pixel on, of `ox + 1`)
    /// into one dword whose fourth byte meets a zero weight, and one VPDPBUSD adds the row's
    /// three products. Stride 1, two pixels per window: 5 vector ops (channel count 16) to 8
    /// for 6 tap-pixels × 16 channels, where the f32 kernel needs 18. The sums are exact integers, `za·Σw` is subtracted in
    /// i32 and the conversion to f32 is exact, so the bits equal [`interior16`]'s.
    ///
    /// # Safety
    /// CPU has avx512f/bw/vnni/vbmi; `c % 16 == 0`; the weights `w[wo + kx·c + ch]` (kx < 3) of
    /// each kernel row `(xo, wo)` of `krows` are integers in [−128, 127]; `sw` is 1 or 2; for
    /// every pixel ox in `ox_lo..ox_hi`, `ox·sw ≥ pw` and bytes `xo + (ox·sw − pw)·c … xo +
    /// (ox·sw − pw + 3)·c` lie in `x`, with stride 1 for all but the last pixel also the next
    /// `c` bytes; `ox_hi·c ≤ yr.len()`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
    pub(super) unsafe fn interior16_vnni(
        x: &[u8],
        za: u8,
        krows: &[(usize, usize)],
        w: &[f32],
        c: usize,
        (ox_lo, ox_hi): (usize, usize),
        (sw, pw): (usize, usize),
        yr: &mut [f32],
    ) -> usize {
        use core::arch::x86_64::*;
        let (xp, wp, yp) = (x.as_ptr(), w.as_ptr(), yr.as_mut_ptr());
        // Stride 2: one pixel per window (the next pixel's taps start two pixels on).
        let pairs = sw == 1;
        // Byte 4·ch + j of the operand = window byte 16·j + ch (tap j of pixel ox; j = 3 is
        // pixel ox + 2, whose weight is 0); for pixel ox + 1 one pixel (16 bytes) further.
        let mut idx = [[0u8; 64]; 2];
        for ch in 0..16 {
            for j in 0..4 {
                idx[0][4 * ch + j] = (16 * j + ch) as u8;
                idx[1][4 * ch + j] = (16 * (j + 1).min(3) + ch) as u8;
            }
        }
        // SAFETY (all blocks below): 64-byte index arrays; the other accesses are in the
        // bounds the caller guarantees (c0 + 16 ≤ c, pixels in ox_lo..ox_hi).
        unsafe {
            let i0 = _mm512_loadu_si512(idx[0].as_ptr().cast());
            let i1 = _mm512_loadu_si512(idx[1].as_ptr().cast());
            let zab = _mm512_set1_epi32(i32::from_ne_bytes([za; 4]));
            let byte = _mm512_set1_epi32(0xff);
            // Channels c0..c0+16 of `n` consecutive pixels from `p`, one per 128-bit lane
            // (the lanes past `n` zero).
            let window = |p: *const u8, n: usize| {
                if c == 16 && n == 4 {
                    _mm512_loadu_si512(p.cast())
                } else if c == 16 {
                    _mm512_maskz_loadu_epi8(0xffff_ffff_ffff, p.cast())
                } else {
                    let mut v = _mm512_castsi128_si512(_mm_loadu_si128(p.cast()));
                    v = _mm512_inserti32x4::<1>(v, _mm_loadu_si128(p.add(c).cast()));
                    v = _mm512_inserti32x4::<2>(v, _mm_loadu_si128(p.add(2 * c).cast()));
                    if n == 4 {
                        _mm512_inserti32x4::<3>(v, _mm_loadu_si128(p.add(3 * c).cast()))
                    } else {
                        _mm512_mask_mov_epi64(_mm512_setzero_si512(), 0x3f, v)
                    }
                }
            };
            for c0 in (0..c).step_by(16) {
                // Per kernel row: the three taps' i8 weights packed per channel; and za·Σw.
                let mut wv = [_mm512_setzero_si512(); MAX_KH];
                let mut zs = _mm512_setzero_si512();
                for (r, &(_, wo)) in krows.iter().enumerate() {
                    let t = |k: usize| {
                        let v = _mm512_cvtps_epi32(_mm512_loadu_ps(wp.add(wo + k * c + c0)));
                        _mm512_and_si512(v, byte)
                    };
                    wv[r] = _mm512_or_si512(
                        _mm512_or_si512(t(0), _mm512_slli_epi32::<8>(t(1))),
                        _mm512_slli_epi32::<16>(t(2)),
                    );
                    zs = _mm512_dpbusd_epi32(zs, zab, wv[r]);
                }
                let mut ox = ox_lo;
                while pairs && ox + 2 <= ox_hi {
                    let (mut a0, mut a1) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    for (r, &(xo, _)) in krows.iter().enumerate() {
                        let win = window(xp.add(xo + (ox - pw) * c + c0), 4);
                        a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i0, win), wv[r]);
                        a1 = _mm512_dpbusd_epi32(a1, _mm512_permutexvar_epi8(i1, win), wv[r]);
                    }
                    let o = yp.add(ox * c + c0);
                    _mm512_storeu_ps(o, _mm512_cvtepi32_ps(_mm512_sub_epi32(a0, zs)));
                    _mm512_storeu_ps(o.add(c), _mm512_cvtepi32_ps(_mm512_sub_epi32(a1, zs)));
                    ox += 2;
                }
                while ox < ox_hi {
                    let mut a0 = _mm512_setzero_si512();
                    for (r, &(xo, _)) in krows.iter().enumerate() {
                        let win = window(xp.add(xo + (ox * sw - pw) * c + c0), 3);
                        a0 = _mm512_dpbusd_epi32(a0, _mm512_permutexvar_epi8(i0, win), wv[r]);
                    }
                    let o = yp.add(ox * c + c0);
                    _mm512_storeu_ps(o, _mm512_cvtepi32_ps(_mm512_sub_epi32(a0, zs)));
                    ox += 1;
                }
            }
        }
        c
    }

    /// # Safety
    /// CPU has avx2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn rows_avx2(
        p: &Params,
        r0: usize,
        ys: &mut [f32],
        mm: Option<&mut (f32, f32)>,
    ) {
        super::rows::<false>(p, r0, ys, mm)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::ops::conv::conv_integer_ref;
    use std::vec;
    use std::vec::Vec;

    fn isas() -> Vec<Isa> {
        let mut v = vec![Isa::Scalar];
        for i in [Isa::Avx2, Isa::Avx512Vnni] {
            if i.resolve() == i {
                v.push(i);
            }
        }
        v
    }

    /// Against ConvInteger's integer definition (the reference loops), over strides, dilations,
    /// pads, kernel sizes and channel counts that exercise every channel block.
    #[test]
    fn matches_conv_integer() {
        let cases = [
            // (c, h, w, kh, kw, s, d, p)
            (16, 9, 11, 3, 3, 1, 1, 1),
            (24, 8, 8, 3, 3, 2, 1, 1),
            (96, 7, 5, 5, 5, 2, 1, 2),
            (3, 6, 7, 3, 3, 1, 2, 2),
            (77, 5, 6, 7, 7, 1, 1, 3),
            (8, 4, 4, 1, 1, 1, 1, 0),
            (72, 10, 3, 3, 3, 1, 1, 0),
            // 3-wide, stride 1 or 2, c % 16 == 0: the integer kernel when the weights are i8
            // (the second pass below, weight zero point 0), odd and even interior widths.
            (32, 7, 9, 3, 3, 1, 1, 1),
            (48, 6, 6, 3, 3, 1, 1, 0),
            (16, 8, 12, 5, 3, 1, 1, 1),
            (16, 4, 3, 3, 3, 1, 1, 1),
            (32, 9, 10, 3, 3, 2, 1, 1),
            (16, 7, 8, 3, 3, 2, 1, 0),
        ];
        let cases = cases.iter().flat_map(|&c| [(c, 3i8), (c, 0i8)]);
        for (ci, ((c, h, w, kh, kw, s, d, p), wz)) in cases.enumerate() {
            let oh = (h + 2 * p - d * (kh - 1) - 1) / s + 1;
            let ow = (w + 2 * p - d * (kw - 1) - 1) / s + 1;
            let g = ConvGeom {
                batch: 2,
                c_in: c,
                h,
                w,
                c_out: c,
                oh,
                ow,
                kh,
                kw,
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                ph: p,
                pw: p,
                groups: c,
            };
            let za = 117u8;
            let xq: Vec<u8> = (0..g.input_len())
                .map(|i| ((i * 31 + ci * 7) % 256) as u8)
                .collect();
            let wq: Vec<i8> = (0..c * kh * kw)
                .map(|i| ((i * 53 + 11) % 255) as i32 - 127)
                .map(|v| v as i8)
                .collect();
            let mut want = vec![0i32; g.output_len()];
            conv_integer_ref(&g, &xq, za as i32, &wq, &[wz], &mut want);
            // NCHW u8 → NHWC u8; weights [c][kh][kw] → [tap][c], centered.
            let mut xn = vec![0u8; g.input_len()];
            for b in 0..2 {
                for ch in 0..c {
                    for i in 0..h * w {
                        xn[(b * h * w + i) * c + ch] = xq[(b * c + ch) * h * w + i];
                    }
                }
            }
            let mut wt = vec![0f32; c * kh * kw];
            for ch in 0..c {
                for t in 0..kh * kw {
                    wt[t * c + ch] = (wq[ch * kh * kw + t] as i32 - wz as i32) as f32;
                }
            }
            let ws: Vec<f32> = (0..c).map(|i| 0.01 + i as f32 * 1e-3).collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.25 - 3.0).collect();
            let acts = [
                Activation::Clip {
                    min: -50.0,
                    max: 60.0,
                },
                Activation::Relu,
                Activation::None,
            ];
            for (isa, act) in isas().into_iter().flat_map(|i| acts.map(|a| (i, a))) {
                let mut y = vec![f32::NAN; g.output_len()];
                let range = crate::quantize::Range::new();
                depthwise_nhwc(
                    isa,
                    &g,
                    &xn,
                    za,
                    &wt,
                    0.5,
                    &ws,
                    Some(&bias),
                    act,
                    &mut y,
                    Some(&range),
                );
                let fold = y
                    .iter()
                    .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
                assert_eq!(range.get(), fold, "range, case {ci} {isa:?}");
                for b in 0..2 {
                    for ch in 0..c {
                        for i in 0..oh * ow {
                            let acc = want[(b * c + ch) * oh * ow + i] as f32;
                            let e = act.apply(acc * (0.5 * ws[ch]) + bias[ch]);
                            let got = y[(b * oh * ow + i) * c + ch];
                            assert_eq!(got.to_bits(), e.to_bits(), "case {ci} {isa:?}");
                        }
                    }
                }
            }
        }
    }
}
