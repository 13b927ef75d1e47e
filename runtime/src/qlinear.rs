//! Static (ONNX `QuantizeLinear` / `DequantizeLinear`) quantization and the requantizing
//! epilogue of the integer pipelines (`QLinearMatMul`, `QLinearConv`, and the static QDQ groups
//! codegen turns into them).
//!
//! Semantics (ONNX, opset 10–21; onnxruntime computes the same in f32):
//!
//! ```text
//! QuantizeLinear    y = saturate(round_half_even(x / scale) + zero_point)   (true division)
//! DequantizeLinear  y = (x − zero_point) as f32 · scale                      (difference in i32)
//! requantize        y = saturate(round_half_even((acc + bias) as f32 · m[c]) + y_zero_point),
//!                   m[c] = a_scale · b_scale[c] / y_scale                    (f32, this order)
//! ```
//!
//! `saturate` clamps to the output type's range; a NaN value becomes 0 (Rust's saturating `as`,
//! the same rule as `DynamicQuantizeLinear` in `quantize.rs`). The integer accumulation before
//! `requantize` is exact (wrapping i32), and the epilogue has one order of operations without
//! FMA, so the result does not depend on the ISA.
//!
//! Parameters are per tensor (one scale), per axis (one per index of the quantization axis), or
//! blocked (opset 21: `block_size` consecutive indices of the axis share a scale; the scale
//! tensor has the input's shape with the axis dim `ceil(len / block_size)`). [`QAxis`] describes
//! the input as `outer × len × inner` around the quantization axis.
use crate::isa::Isa;
use crate::quantize::round_half_even;

/// An integer element type of a quantized tensor.
pub trait QInt: Copy + Default + Send + Sync + 'static {
    /// `v` (an integer-valued f32, or NaN/±inf) saturated to the type; NaN → 0.
    fn from_f32_sat(v: f32) -> Self;
    fn to_i32(self) -> i32;
}

macro_rules! qint {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            #[inline(always)]
            fn from_f32_sat(v: f32) -> Self {
                // Written as selects so that it vectorises: the same value as the saturating
                // `v as $t` (NaN → 0).
                const LO: f32 = <$t>::MIN as f32;
                const HI: f32 = <$t>::MAX as f32;
                let c = if v > LO { v } else { LO };
                let c = if c < HI { c } else { HI };
                let c = if v.is_nan() { 0.0 } else { c };
                // SAFETY: `c` is finite and within the type's range (both bounds are exact in
                // f32 for 8- and 16-bit types), so it converts to i32 exactly.
                unsafe { c.to_int_unchecked::<i32>() as $t }
            }
            #[inline(always)]
            fn to_i32(self) -> i32 {
                self as i32
            }
        }
    )*};
}
qint!(u8, i8, u16, i16);

impl QInt for i32 {
    #[inline(always)]
    fn from_f32_sat(v: f32) -> Self {
        v as i32
    }
    #[inline(always)]
    fn to_i32(self) -> i32 {
        self
    }
}

/// An 8-bit activation type the int8 GEMM can read (as u8: i8 values are shifted by +128,
/// `a ^ 0x80`, with the zero point shifted alike, which leaves `a − za` unchanged).
pub trait QAct: QInt {
    fn to_u8_shifted(self) -> u8;
    /// The raw bytes of a slice (for byte-wise kernels such as `qlut::qdq_lut`).
    fn as_bytes(s: &[Self]) -> &[u8];
    fn as_bytes_mut(s: &mut [Self]) -> &mut [u8];
}
impl QAct for u8 {
    #[inline(always)]
    fn to_u8_shifted(self) -> u8 {
        self
    }
    fn as_bytes(s: &[u8]) -> &[u8] {
        s
    }
    fn as_bytes_mut(s: &mut [u8]) -> &mut [u8] {
        s
    }
}
impl QAct for i8 {
    #[inline(always)]
    fn to_u8_shifted(self) -> u8 {
        (self as u8) ^ 0x80
    }
    fn as_bytes(s: &[i8]) -> &[u8] {
        // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is valid
        // for both; the returned slice borrows `s` for its lifetime.
        unsafe { core::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
    }
    fn as_bytes_mut(s: &mut [i8]) -> &mut [u8] {
        // SAFETY: as in `as_bytes`; the exclusive borrow of `s` moves to the result.
        unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
    }
}

/// The shape of a quantized tensor around its quantization axis, and the parameter layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QAxis {
    /// Product of the dims before the axis (1 for per-tensor).
    pub outer: usize,
    /// The axis dim (the whole tensor for per-tensor).
    pub len: usize,
    /// Product of the dims after the axis.
    pub inner: usize,
    /// 0: per axis (or per tensor when the scale has one element); else the block size.
    pub block: usize,
}

impl QAxis {
    /// Per tensor over `n` elements.
    pub const fn tensor(n: usize) -> QAxis {
        QAxis {
            outer: 1,
            len: n,
            inner: 1,
            block: 0,
        }
    }
    /// Number of scales this layout needs (`per_tensor`: the scale has one element).
    pub const fn params(&self, per_tensor: bool) -> usize {
        if per_tensor {
            1
        } else if self.block == 0 {
            self.len
        } else {
            self.outer * self.len.div_ceil(self.block) * self.inner
        }
    }
    fn check(&self, n: usize, scales: usize, zps: Option<usize>, what: &str) {
        assert!(
            self.outer * self.len * self.inner == n,
            "{what}: shape does not match the data"
        );
        let per_tensor = scales == 1 && (self.block == 0 || self.params(false) == 1);
        assert!(
            scales == self.params(per_tensor),
            "{what}: wrong number of scales"
        );
        if let Some(z) = zps {
            assert!(z == scales, "{what}: zero point and scale sizes differ");
        }
    }
}

/// Parameter index of element `(o, a, i)`.
#[inline(always)]
fn pidx(ax: &QAxis, n_params: usize, o: usize, a: usize, i: usize) -> usize {
    if n_params == 1 {
        0
    } else if ax.block == 0 {
        a
    } else {
        (o * ax.len.div_ceil(ax.block) + a / ax.block) * ax.inner + i
    }
}

/// `QuantizeLinear`: `y = saturate(round_half_even(x / scale) + zp)`. `zp` `None` means 0.
pub fn quantize_linear<T: QInt>(
    x: &[f32],
    ax: QAxis,
    scale: &[f32],
    zp: Option<&[T]>,
    y: &mut [T],
) {
    ax.check(x.len(), scale.len(), zp.map(<[T]>::len), "quantize_linear");
    assert!(y.len() >= x.len(), "quantize_linear: output too short");
    let np = scale.len();
    let mut j = 0;
    for o in 0..ax.outer {
        for a in 0..ax.len {
            if np == 1 || ax.block == 0 {
                let p = pidx(&ax, np, o, a, 0);
                let (s, z) = (scale[p], zp.map_or(0.0, |z| z[p].to_i32() as f32));
                for (d, &v) in y[j..j + ax.inner].iter_mut().zip(&x[j..j + ax.inner]) {
                    *d = T::from_f32_sat(round_half_even(v / s) + z);
                }
            } else {
                for i in 0..ax.inner {
                    let p = pidx(&ax, np, o, a, i);
                    let z = zp.map_or(0.0, |z| z[p].to_i32() as f32);
                    y[j + i] = T::from_f32_sat(round_half_even(x[j + i] / scale[p]) + z);
                }
            }
            j += ax.inner;
        }
    }
}

/// `DequantizeLinear`: `y = (x − zp) · scale`, the difference in wrapping i32. `zp` `None`
/// means 0.
pub fn dequantize_linear<T: QInt>(
    x: &[T],
    ax: QAxis,
    scale: &[f32],
    zp: Option<&[T]>,
    y: &mut [f32],
) {
    ax.check(
        x.len(),
        scale.len(),
        zp.map(<[T]>::len),
        "dequantize_linear",
    );
    assert!(y.len() >= x.len(), "dequantize_linear: output too short");
    let np = scale.len();
    // Per tensor or per axis, one (scale, zero point) covers each run of `inner` elements: a
    // plain loop the compiler vectorises (the per-element parameter lookup below is ~10× slower;
    // it dominated MiniLM's embedding dequantization).
    if np == 1 || ax.block == 0 {
        let run = if np == 1 { x.len() } else { ax.inner };
        if run == 0 {
            return;
        }
        for (r, (xs, ys)) in x.chunks(run).zip(y.chunks_mut(run)).enumerate() {
            let p = if np == 1 { 0 } else { r % ax.len };
            let (s, z) = (scale[p], zp.map_or(0, |z| z[p].to_i32()));
            #[cfg(target_arch = "x86_64")]
            if Isa::current().resolve() == Isa::Avx512Vnni {
                // SAFETY: the resolved family has AVX-512 F/BW.
                unsafe { dequantize_run_avx512(xs, s, z, ys) };
                continue;
            }
            dequantize_run(xs, s, z, ys);
        }
        return;
    }
    let mut j = 0;
    for o in 0..ax.outer {
        for a in 0..ax.len {
            for i in 0..ax.inner {
                let p = pidx(&ax, np, o, a, i);
                let z = zp.map_or(0, |z| z[p].to_i32());
                y[j + i] = x[j + i].to_i32().wrapping_sub(z) as f32 * scale[p];
            }
            j += ax.inner;
        }
    }
}

/// `ys[i] = (xs[i] − z) · s` (the difference in wrapping i32) for one run of
/// [`dequantize_linear`] that shares its parameters.
#[inline(always)]
fn dequantize_run<T: QInt>(xs: &[T], s: f32, z: i32, ys: &mut [f32]) {
    for (d, &v) in ys.iter_mut().zip(xs) {
        *d = v.to_i32().wrapping_sub(z) as f32 * s;
    }
}

/// [`dequantize_run`] compiled for AVX-512, so that it vectorises 16 lanes wide instead of
/// the baseline's 4 (MiniLM dequantizes its gathered embedding rows every call): the same
/// operations, so the same values.
///
/// # Safety
/// The CPU has AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn dequantize_run_avx512<T: QInt>(xs: &[T], s: f32, z: i32, ys: &mut [f32]) {
    dequantize_run(xs, s, z, ys)
}

/// The requantizing epilogue over an `outer × ch × inner` i32 tensor (a GEMM result
/// `[rows, n]` is `outer = rows, ch = n, inner = 1`; an NCHW convolution output is
/// `outer = batch, ch = C, inner = H·W`):
/// `y = saturate(round_half_even((acc + bias[c]) as f32 · (a_scale · b_scale[c] / y_scale)) + y_zp)`.
/// `b_scale` has 1 or `ch` entries; `bias` (if any) `ch`.
#[allow(clippy::too_many_arguments)]
pub fn requantize<T: QInt>(
    isa: Isa,
    acc: &[i32],
    outer: usize,
    ch: usize,
    inner: usize,
    bias: Option<&[i32]>,
    a_scale: f32,
    b_scale: &[f32],
    y_scale: f32,
    y_zp: T,
    y: &mut [T],
) {
    let n = outer * ch * inner;
    assert!(
        acc.len() >= n && y.len() >= n,
        "requantize: buffers too short"
    );
    assert!(
        b_scale.len() == 1 || b_scale.len() == ch,
        "requantize: b_scale length"
    );
    assert!(
        bias.is_none_or(|b| b.len() == ch),
        "requantize: bias length"
    );
    let z = y_zp.to_i32() as f32;
    let mult = |c: usize| a_scale * b_scale[if b_scale.len() == 1 { 0 } else { c }] / y_scale;
    if inner == 1 {
        // GEMM output: the multipliers and biases of a block of columns once, then every row.
        const CB: usize = 64;
        for c0 in (0..ch).step_by(CB) {
            let cw = CB.min(ch - c0);
            let (mut m, mut b) = ([0f32; CB], [0i32; CB]);
            for j in 0..cw {
                m[j] = mult(c0 + j);
                b[j] = bias.map_or(0, |v| v[c0 + j]);
            }
            let blk = ColBlock {
                m: &m[..cw],
                b: &b[..cw],
                z,
            };
            requant_block(isa, &blk, acc, outer, ch, c0, y);
        }
        return;
    }
    let mut j = 0;
    for _ in 0..outer {
        for c in 0..ch {
            let (m, b) = (mult(c), bias.map_or(0, |b| b[c]));
            for (d, &v) in y[j..j + inner].iter_mut().zip(&acc[j..j + inner]) {
                *d = T::from_f32_sat(round_half_even(v.wrapping_add(b) as f32 * m) + z);
            }
            j += inner;
        }
    }
}

/// [`requantize`] for accumulators held exactly in f32 (the depthwise kernel's: integral values
/// below 2^24, so `as i32` is exact), over an `outer × ch × inner` tensor.
#[allow(clippy::too_many_arguments)]
pub fn requantize_f32acc<T: QInt>(
    acc: &[f32],
    outer: usize,
    ch: usize,
    inner: usize,
    bias: Option<&[i32]>,
    a_scale: f32,
    b_scale: &[f32],
    y_scale: f32,
    y_zp: T,
    y: &mut [T],
) {
    let n = outer * ch * inner;
    assert!(
        acc.len() >= n && y.len() >= n,
        "requantize_f32acc: buffers too short"
    );
    assert!(
        b_scale.len() == 1 || b_scale.len() == ch,
        "requantize: b_scale length"
    );
    assert!(
        bias.is_none_or(|b| b.len() == ch),
        "requantize: bias length"
    );
    let z = y_zp.to_i32() as f32;
    let mut j = 0;
    for _ in 0..outer {
        for c in 0..ch {
            let m = a_scale * b_scale[if b_scale.len() == 1 { 0 } else { c }] / y_scale;
            let b = bias.map_or(0, |b| b[c]);
            for (d, &v) in y[j..j + inner].iter_mut().zip(&acc[j..j + inner]) {
                *d = T::from_f32_sat(round_half_even((v as i32).wrapping_add(b) as f32 * m) + z);
            }
            j += inner;
        }
    }
}

/// Per-column multipliers, int32 biases and the output zero point of one block of columns.
struct ColBlock<'a> {
    m: &'a [f32],
    b: &'a [i32],
    z: f32,
}

impl ColBlock<'_> {
    #[inline(always)]
    fn run<T: QInt>(&self, src: &[i32], dst: &mut [T]) {
        let n = dst.len().min(src.len()).min(self.m.len()).min(self.b.len());
        let (src, dst, m, b) = (&src[..n], &mut dst[..n], &self.m[..n], &self.b[..n]);
        for j in 0..n {
            dst[j] =
                T::from_f32_sat(round_half_even(src[j].wrapping_add(b[j]) as f32 * m[j]) + self.z);
        }
    }
}

/// Requantizes `outer` rows of one column block (`blk`), compiled for the widest x86 vector
/// extension `isa` has so that the loop vectorises (the same scalar Rust, so the same results:
/// integer ops, one f32 multiply, exact rounding; no FMA contraction).
#[allow(clippy::too_many_arguments)]
fn requant_block<T: QInt>(
    isa: Isa,
    blk: &ColBlock<'_>,
    acc: &[i32],
    outer: usize,
    ch: usize,
    c0: usize,
    y: &mut [T],
) {
    #[inline(always)]
    fn body<T: QInt>(
        blk: &ColBlock<'_>,
        acc: &[i32],
        outer: usize,
        ch: usize,
        c0: usize,
        y: &mut [T],
    ) {
        let cw = blk.m.len();
        for r in 0..outer {
            blk.run(&acc[r * ch + c0..][..cw], &mut y[r * ch + c0..][..cw]);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        fn avx512<T: QInt>(
            b: &ColBlock<'_>,
            a: &[i32],
            o: usize,
            ch: usize,
            c0: usize,
            y: &mut [T],
        ) {
            body(b, a, o, ch, c0, y)
        }
        #[target_feature(enable = "avx2")]
        fn avx2<T: QInt>(b: &ColBlock<'_>, a: &[i32], o: usize, ch: usize, c0: usize, y: &mut [T]) {
            body(b, a, o, ch, c0, y)
        }
        match isa.resolve() {
            // SAFETY: `resolve` returned a family the CPU has; AVX-512 VNNI implies F, BW, VL.
            Isa::Avx512Vnni => return unsafe { avx512(blk, acc, outer, ch, c0, y) },
            // SAFETY: as above; every x86 SIMD family includes AVX2.
            Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2(blk, acc, outer, ch, c0, y) },
            _ => {}
        }
    }
    let _ = isa;
    body(blk, acc, outer, ch, c0, y)
}

/// Packs an `m × k` row-major quantized activation (u8, or i8 shifted by +128) into the int8
/// GEMM's A layout (`m × padded_k(k)`, padding 0) and writes
/// `row_term[r] = Σ_k a_u8 − k·za_u8` (wrapping). Returns the shifted zero point `za_u8`.
pub fn pack_a<T: QAct>(
    isa: Isa,
    a: &[T],
    m: usize,
    k: usize,
    za: T,
    out: &mut [u8],
    row_term: &mut [i32],
) -> i32 {
    let pk = crate::pack::padded_k(k);
    assert!(a.len() >= m * k, "pack_a: input too short");
    assert!(
        out.len() >= m * pk && row_term.len() >= m,
        "pack_a: output too short"
    );
    let zu = za.to_u8_shifted() as i32;
    let _ = isa; // one byte per element: the scalar loop is already memory-bound
    for r in 0..m {
        let dst = &mut out[r * pk..(r + 1) * pk];
        let mut s = 0i32;
        for (d, &v) in dst.iter_mut().zip(&a[r * k..(r + 1) * k]) {
            *d = v.to_u8_shifted();
            s = s.wrapping_add(*d as i32);
        }
        dst[k..].fill(0);
        row_term[r] = s.wrapping_sub((k as i32).wrapping_mul(zu));
    }
    zu
}

/// NCHW quantized activations (u8, or i8 shifted by +128) → NHWC u8 (the layout `QConv`'s
/// im2col reads). `hw` = pixels per image.
pub fn to_nhwc_u8<T: QAct>(x: &[T], batch: usize, c: usize, hw: usize, out: &mut [u8]) {
    assert!(
        x.len() >= batch * c * hw && out.len() >= batch * c * hw,
        "to_nhwc_u8: sizes"
    );
    for b in 0..batch {
        let (src, dst) = (
            &x[b * c * hw..(b + 1) * c * hw],
            &mut out[b * c * hw..(b + 1) * c * hw],
        );
        for ch in 0..c {
            for p in 0..hw {
                dst[p * c + ch] = src[ch * hw + p].to_u8_shifted();
            }
        }
    }
}

/// Requantizes an NHWC i32 GEMM result (`rows = batch·pixels`, `c` channels) into an NCHW
/// output: the layout change and the epilogue of [`requantize`] in one pass.
#[allow(clippy::too_many_arguments)]
pub fn requantize_nhwc_to_nchw<T: QInt>(
    acc: &[i32],
    batch: usize,
    hw: usize,
    c: usize,
    bias: Option<&[i32]>,
    a_scale: f32,
    b_scale: &[f32],
    y_scale: f32,
    y_zp: T,
    y: &mut [T],
) {
    let n = batch * hw * c;
    assert!(
        acc.len() >= n && y.len() >= n,
        "requantize_nhwc_to_nchw: sizes"
    );
    assert!(
        b_scale.len() == 1 || b_scale.len() == c,
        "requantize: b_scale length"
    );
    assert!(bias.is_none_or(|b| b.len() == c), "requantize: bias length");
    let z = y_zp.to_i32() as f32;
    for b in 0..batch {
        for ch in 0..c {
            let m = a_scale * b_scale[if b_scale.len() == 1 { 0 } else { ch }] / y_scale;
            let bb = bias.map_or(0, |v| v[ch]);
            let dst = &mut y[(b * c + ch) * hw..(b * c + ch + 1) * hw];
            for (p, d) in dst.iter_mut().enumerate() {
                let v = acc[(b * hw + p) * c + ch].wrapping_add(bb);
                *d = T::from_f32_sat(round_half_even(v as f32 * m) + z);
            }
        }
    }
}

/// Batched integer matmul of two quantized activations (`QLinearMatMul` between run-time
/// tensors, any u8/i8 mix): `out[b] = (a[b] − za)·(w[b'] − zb)` where `b' = b % w_batches`
/// (a 2-D B is one batch, broadcast), each `m × k` by `k × n`, wrapping i32. `zb` (if any)
/// has 1 or `n` entries.
#[allow(clippy::too_many_arguments)]
pub fn matmul_integer_batched<A: QInt, B: QInt>(
    a: &[A],
    za: i32,
    w: &[B],
    zb: Option<&[B]>,
    batches: usize,
    w_batches: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [i32],
) {
    assert!(
        w_batches >= 1 && batches.is_multiple_of(w_batches),
        "matmul_integer_batched: batches"
    );
    assert!(
        a.len() >= batches * m * k && w.len() >= w_batches * k * n,
        "matmul_integer_batched: inputs"
    );
    assert!(
        out.len() >= batches * m * n,
        "matmul_integer_batched: output"
    );
    for bi in 0..batches {
        let wb = &w[(bi % w_batches) * k * n..];
        let ab = &a[bi * m * k..];
        let ob = &mut out[bi * m * n..(bi + 1) * m * n];
        for r in 0..m {
            for c in 0..n {
                let z = zb.map_or(0, |z| z[if z.len() == 1 { 0 } else { c }].to_i32());
                let mut s = 0i32;
                for kk in 0..k {
                    let x = ab[r * k + kk].to_i32().wrapping_sub(za);
                    s = s.wrapping_add(x.wrapping_mul(wb[kk * n + c].to_i32().wrapping_sub(z)));
                }
                ob[r * n + c] = s;
            }
        }
    }
}

/// One float step of a fused `DequantizeLinear → … → QuantizeLinear` chain ([`qdq_map`]).
/// Per-channel constants have 1 or `ch` entries.
#[derive(Clone, Copy, Debug)]
pub enum MapStep<'a> {
    /// `v + c`
    Add(&'a [f32]),
    /// `v − c`
    Sub(&'a [f32]),
    /// `v · c`
    Mul(&'a [f32]),
    /// `v · s + t` (BatchNormalization's inference form)
    Affine(&'a [f32], &'a [f32]),
    /// `if v > 0 { v } else { 0 }`
    Relu,
    /// `min'(max'(v, lo), hi)` as in `gemm::Activation::Clip`
    Clip(f32, f32),
    /// An elementwise function of `ops::math` (the one the unfused op calls), with 0, 1 or 2
    /// attribute arguments.
    Unary(fn(f32) -> f32),
    Unary1(fn(f32, f32) -> f32, f32),
    Unary2(fn(f32, f32, f32) -> f32, f32, f32),
}

/// A static-quantization chain in one pass, 8-bit in and 8-bit out, with no float buffer:
/// `y = QuantizeLinear(steps(DequantizeLinear(x)))` per element, each step in exactly the f32
/// operations the unfused ops perform (so the result is bit-identical to running them one by
/// one). The tensor is `outer × ch × inner` around the channel axis of the per-channel
/// constants.
#[allow(clippy::too_many_arguments)]
pub fn qdq_map<A: QInt, Y: QInt>(
    x: &[A],
    outer: usize,
    ch: usize,
    inner: usize,
    x_scale: f32,
    x_zp: i32,
    steps: &[MapStep<'_>],
    y_scale: f32,
    y_zp: i32,
    y: &mut [Y],
) {
    let n = outer * ch * inner;
    assert!(x.len() >= n && y.len() >= n, "qdq_map: buffers too short");
    let pc = |v: &[f32], c: usize| v[if v.len() == 1 { 0 } else { c }];
    for st in steps {
        let ok = match st {
            MapStep::Add(v) | MapStep::Sub(v) | MapStep::Mul(v) => v.len() == 1 || v.len() == ch,
            MapStep::Affine(s, t) => {
                (s.len() == 1 || s.len() == ch) && (t.len() == 1 || t.len() == ch)
            }
            _ => true,
        };
        assert!(ok, "qdq_map: per-channel constant length");
    }
    let z = y_zp as f32;
    let mut j = 0;
    for _ in 0..outer {
        for c in 0..ch {
            for i in j..j + inner {
                let mut v = x[i].to_i32().wrapping_sub(x_zp) as f32 * x_scale;
                for st in steps {
                    v = match *st {
                        MapStep::Add(k) => v + pc(k, c),
                        MapStep::Sub(k) => v - pc(k, c),
                        MapStep::Mul(k) => v * pc(k, c),
                        MapStep::Affine(s, t) => v * pc(s, c) + pc(t, c),
                        MapStep::Relu => {
                            if v > 0.0 {
                                v
                            } else {
                                0.0
                            }
                        }
                        MapStep::Clip(lo, hi) => {
                            let v = if v > lo { v } else { lo };
                            if v < hi { v } else { hi }
                        }
                        MapStep::Unary(f) => f(v),
                        MapStep::Unary1(f, a) => f(v, a),
                        MapStep::Unary2(f, a, b) => f(v, a, b),
                    };
                }
                y[i] = Y::from_f32_sat(round_half_even(v / y_scale) + z);
            }
            j += inner;
        }
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn requant_quantize_ties_and_saturation() {
        let x = [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            1000.0,
            -1000.0,
            f32::NAN,
            0.25,
        ];
        let mut y = [0u8; 9];
        quantize_linear(&x, QAxis::tensor(9), &[1.0], Some(&[10u8]), &mut y);
        assert_eq!(y, [10, 12, 12, 10, 8, 255, 0, 0, 10]);
        let mut y = [0i8; 9];
        quantize_linear(&x, QAxis::tensor(9), &[0.5], None, &mut y);
        assert_eq!(y, [1, 3, 5, -1, -3, 127, -128, 0, 0]);
    }

    #[test]
    fn requant_quantize_axis_and_blocked() {
        // x [2, 4, 2], axis 1; per axis: scales [4]; blocked 3 along axis: scales [2, 2, 2].
        let x: Vec<f32> = (0..16).map(|v| v as f32 - 5.0).collect();
        let ax = QAxis {
            outer: 2,
            len: 4,
            inner: 2,
            block: 0,
        };
        let s = [1.0f32, 2.0, 4.0, 0.5];
        let z = [0i16, 1, -1, 3];
        let mut y = vec![0i16; 16];
        quantize_linear(&x, ax, &s, Some(&z), &mut y);
        for (j, &v) in x.iter().enumerate() {
            let a = (j / 2) % 4;
            assert_eq!(y[j] as f32, (v / s[a]).round_ties_even() + z[a] as f32);
        }
        let ab = QAxis { block: 3, ..ax };
        let s: Vec<f32> = (0..8).map(|i| 0.5 + i as f32 * 0.25).collect();
        let mut y = vec![0i8; 16];
        quantize_linear(&x, ab, &s, None, &mut y);
        let mut back = vec![0f32; 16];
        dequantize_linear(&y, ab, &s, None, &mut back);
        for j in 0..16 {
            let (o, a, i) = (j / 8, (j / 2) % 4, j % 2);
            let p = (o * 2 + a / 3) * 2 + i;
            assert_eq!(y[j] as f32, (x[j] / s[p]).round_ties_even());
            assert_eq!(back[j], y[j] as f32 * s[p]);
        }
    }

    #[test]
    fn requant_epilogue_matches_formula() {
        let acc: Vec<i32> = (-20..20).map(|v| v * 37).collect();
        let bs = [0.5f32, 0.25, 0.125, 1.0];
        let bias = [3, -4, 0, 100];
        let mut y = vec![0u8; 40];
        requantize(
            Isa::Scalar,
            &acc,
            10,
            4,
            1,
            Some(&bias),
            0.1,
            &bs,
            0.3,
            128u8,
            &mut y,
        );
        for j in 0..40 {
            let c = j % 4;
            let m = 0.1f32 * bs[c] / 0.3;
            let want = ((acc[j] + bias[c]) as f32 * m).round_ties_even() + 128.0;
            assert_eq!(y[j], want.clamp(0.0, 255.0) as u8);
        }
        // NHWC → NCHW variant agrees with requantize on the transposed accumulators.
        let (batch, hw, c) = (2, 5, 4);
        let mut nchw_acc = vec![0i32; 40];
        for b in 0..batch {
            for p in 0..hw {
                for ch in 0..c {
                    nchw_acc[(b * c + ch) * hw + p] = acc[(b * hw + p) * c + ch];
                }
            }
        }
        let (mut y1, mut y2) = (vec![0i8; 40], vec![0i8; 40]);
        requantize(
            Isa::Scalar,
            &nchw_acc,
            batch,
            c,
            hw,
            Some(&bias),
            0.1,
            &bs,
            0.3,
            -3i8,
            &mut y1,
        );
        requantize_nhwc_to_nchw(
            &acc,
            batch,
            hw,
            c,
            Some(&bias),
            0.1,
            &bs,
            0.3,
            -3i8,
            &mut y2,
        );
        assert_eq!(y1, y2);
    }

    #[test]
    fn requant_pack_a_i8_shift_is_exact() {
        let a: Vec<i8> = (0..15).map(|v| (v * 19 - 128) as i8).collect();
        let (m, k) = (3, 5);
        let mut out = vec![9u8; m * 8];
        let mut rt = vec![0i32; m];
        let zu = pack_a(Isa::Scalar, &a, m, k, -7i8, &mut out, &mut rt);
        assert_eq!(zu, 121);
        for r in 0..m {
            let mut s = 0;
            for kk in 0..k {
                assert_eq!(out[r * 8 + kk] as i32 - zu, a[r * k + kk] as i32 + 7);
                s += out[r * 8 + kk] as i32;
            }
            assert_eq!(&out[r * 8 + k..r * 8 + 8], &[0, 0, 0]);
            assert_eq!(rt[r], s - k as i32 * zu);
        }
    }

    #[test]
    fn requant_dq_matmul_matches_reference() {
        use crate::isa::Isa;
        use crate::ops::matmul::{DqWeights, dq_matmul};
        let (m, k, n) = (3usize, 300usize, 37usize);
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 201) as f32 / 50.0 - 2.0)
            .collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - 1.0).collect();
        let bytes: Vec<u8> = (0..k * n)
            .map(|i| ((i as u64).wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        for (bits, signed, bk, bn) in [
            (8u8, false, k, 1),
            (8, true, k, n),
            (4, true, 32, 1),
            (4, false, 1, n),
        ] {
            let params = k.div_ceil(bk) * n.div_ceil(bn);
            let scale: Vec<f32> = (0..params)
                .map(|i| 0.01 + (i % 13) as f32 * 0.003)
                .collect();
            let zp: Vec<i32> = (0..params)
                .map(|i| {
                    if signed {
                        (i % 5) as i32 - 2
                    } else {
                        (i % 7) as i32 + if bits == 8 { 120 } else { 5 }
                    }
                })
                .collect();
            let w = DqWeights {
                k,
                n,
                data: &bytes,
                bits,
                signed,
                bk,
                bn,
                scale: &scale,
                zero_point: &zp,
                bias: Some(&bias),
            };
            for isa in Isa::all_available() {
                let mut out = vec![0f32; m * n];
                dq_matmul(isa, m, &x, w, &mut out);
                for r in 0..m {
                    for c in 0..n {
                        let (mut want, mut mag) = (bias[c] as f64, bias[c].abs() as f64);
                        for kk in 0..k {
                            let q = w.q(kk, c);
                            let p = (kk / bk) * n.div_ceil(bn) + c / bn;
                            let wv = (q - zp[p]) as f32 * scale[p];
                            assert_eq!(wv, w.get(kk, c));
                            want += x[r * k + kk] as f64 * wv as f64;
                            mag += (x[r * k + kk] as f64 * wv as f64).abs();
                        }
                        let tol = (k + 2) as f64 * f32::EPSILON as f64 * mag;
                        let got = out[r * n + c] as f64;
                        assert!(
                            (got - want).abs() <= tol,
                            "{isa:?} bits {bits} ({r},{c}): {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn requant_qdq_map_equals_unfused_ops() {
        let x: Vec<u8> = (0..60).map(|v| (v * 37 % 256) as u8).collect();
        let (outer, ch, inner) = (2, 3, 10);
        let b = [0.5f32, -0.25, 1.0];
        let (s, t) = ([1.5f32, 0.5, -2.0], [0.1f32, 0.2, 0.3]);
        let steps = [
            MapStep::Add(&b),
            MapStep::Affine(&s, &t),
            MapStep::Relu,
            MapStep::Clip(0.0, 6.0),
        ];
        let mut y = vec![0i8; 60];
        qdq_map(&x, outer, ch, inner, 0.05, 100, &steps, 0.03, -10, &mut y);
        let ax = QAxis::tensor(60);
        let mut f = vec![0f32; 60];
        dequantize_linear(&x, ax, &[0.05], Some(&[100u8]), &mut f);
        for (i, v) in f.iter_mut().enumerate() {
            let c = (i / inner) % ch;
            let w = (*v + b[c]) * s[c] + t[c];
            *v = if w > 0.0 { w } else { 0.0 };
            *v = v.min(6.0);
        }
        let mut want = vec![0i8; 60];
        quantize_linear(&f, ax, &[0.03], Some(&[-10i8]), &mut want);
        assert_eq!(y, want);
    }

    /// Speed of the static and weight-only paths against their float / dynamic counterparts:
    /// `cargo test -p kiln-runtime --release --lib -- --ignored --nocapture requant_speed`.
    #[test]
    #[ignore]
    fn requant_speed() {
        use crate::gemm::{Activation, QGemm, qgemm_f32, qgemm_i32};
        use crate::isa::Isa;
        use crate::ops::matmul::{DqWeights, FloatAct, PackedF32Owned, dq_matmul, sgemm};
        use crate::pack::{PackedI8Owned, Weights, padded_k};
        use std::time::Instant;
        let time = |f: &mut dyn FnMut()| {
            let mut best = f64::MAX;
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..20 {
                    f();
                }
                best = best.min(t.elapsed().as_secs_f64() / 20.0);
            }
            best * 1e6
        };
        let isa = Isa::current();
        for (m, k, n) in [(1, 1024, 1024), (64, 1024, 1024)] {
            let wf: Vec<f32> = (0..k * n)
                .map(|i| ((i * 7919) % 255) as f32 / 127.0 - 1.0)
                .collect();
            let wq: Vec<i8> = (0..k * n).map(|i| ((i * 7919) % 255) as i8).collect();
            let x: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 / 8.0 - 1.0).collect();
            let xq: Vec<u8> = (0..m * k).map(|i| (i % 251) as u8).collect();
            let mut y = vec![0f32; m * n];
            let pf = PackedF32Owned::pack(&wf, k, n, false, None);
            let t_f32 = time(&mut || sgemm(isa, m, &x, k, pf.as_ref(), FloatAct::None, &mut y, n));
            let bytes: Vec<u8> = wq.iter().map(|&v| v as u8).collect();
            let sc = vec![0.01f32; n];
            let zp = vec![0i32; n];
            let w8 = DqWeights {
                k,
                n,
                data: &bytes,
                bits: 8,
                signed: true,
                bk: k,
                bn: 1,
                scale: &sc,
                zero_point: &zp,
                bias: None,
            };
            let t_dq8 = time(&mut || dq_matmul(isa, m, &x, w8, &mut y));
            let sb = vec![0.01f32; k.div_ceil(32) * n];
            let zb = vec![0i32; k.div_ceil(32) * n];
            let w4 = DqWeights {
                bits: 4,
                bk: 32,
                scale: &sb,
                zero_point: &zb,
                ..w8
            };
            let t_dq4 = time(&mut || dq_matmul(isa, m, &x, w4, &mut y));
            let p8 = PackedI8Owned::pack(Weights::I8(&wq), k, n, &[0], &sc, None);
            let pk = padded_k(k);
            let (mut a, mut rt) = (vec![0u8; m * pk], vec![0i32; m]);
            let mut acc = vec![0i32; m * n];
            let mut yq = vec![0u8; m * n];
            let t_static = time(&mut || {
                let zu = pack_a(isa, &xq, m, k, 128u8, &mut a, &mut rt);
                qgemm_i32(isa, m, &a, &rt, zu, p8.as_ref(), &mut acc, n);
                requantize(isa, &acc, m, n, 1, None, 0.02, &sc, 0.05, 128u8, &mut yq);
            });
            let (mut a2, mut rt2) = (vec![0u8; m * pk], vec![0i32; m]);
            let t_dyn = time(&mut || {
                let qp = crate::quantize::dynamic_qparams_isa(isa, &x);
                crate::quantize::quantize_pack_a(isa, &x, m, k, k, qp, &mut a2, &mut rt2);
                let p = QGemm {
                    m,
                    a: &a2,
                    row_term: &rt2,
                    a_zero_point: qp.zero_point as i32,
                    a_scale: qp.scale,
                    b: p8.as_ref(),
                    act: Activation::None,
                };
                qgemm_f32(isa, &p, &mut y, n);
            });
            let t_pack = time(&mut || {
                pack_a(isa, &xq, m, k, 128u8, &mut a, &mut rt);
            });
            let t_req = time(&mut || {
                requantize(isa, &acc, m, n, 1, None, 0.02, &sc, 0.05, 128u8, &mut yq);
            });
            let t_req_s = time(&mut || {
                requantize(
                    Isa::Scalar,
                    &acc,
                    m,
                    n,
                    1,
                    None,
                    0.02,
                    &sc,
                    0.05,
                    128u8,
                    &mut yq,
                );
            });
            std::println!(
                "  pack_a {t_pack:.1} µs, requantize {t_req:.1} µs (scalar build {t_req_s:.1} µs)"
            );
            std::println!(
                "{m}x{k}x{n} {isa:?}: f32 sgemm {t_f32:.1} µs | weight-only int8 {t_dq8:.1} µs, int4 blocked {t_dq4:.1} µs | static int8 (pack A + GEMM + requantize) {t_static:.1} µs | dynamic int8 {t_dyn:.1} µs"
            );
        }
    }
}
