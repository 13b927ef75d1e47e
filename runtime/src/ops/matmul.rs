//! Float GEMM: [`sgemm`] against weights prepacked at compile time ([`PackedF32`]) and ONNX
//! [`matmul`] of two activations (1-D promotion, batch broadcasting), both SIMD-dispatched.
//!
//! Why this shape: B is consumed in panels of [`SNR`] = 16 columns laid out `[K][16]`, so one
//! panel row is one 64-byte line (one zmm, two ymm) and the micro-kernel streams it linearly
//! while A values are broadcast. Kernels (`x86_64-f32-<isa>-<MR>x<NR>`):
//! - scalar 4×16: portable reference; the compiler vectorizes the 16-wide inner loop;
//! - AVX2+FMA 6×16: 12 ymm accumulators + 2 B + 1 broadcast = 15 of 16 registers;
//! - AVX-512 12×32 (two panels): 24 zmm accumulators + 2 B + 1 broadcast of 32 registers, enough
//!   independent FMA chains to cover the 4-cycle latency of Zen 4/5 and Intel's two FMA ports.
//!
//! Edge rows use the same kernels instantiated for fewer rows; edge columns are computed on the
//! zero-padded panel and only the valid columns are stored (masked stores on AVX-512).
//! [`matmul`] packs blocks of B (`KC`×32) into a stack buffer (32 KiB) and accumulates K blocks
//! into the output, so it never allocates.
//!
//! Numerics: every path accumulates in `f32` in increasing k order per output, starting from the
//! bias (or C's values), one FMA per product (`matmul` restarts the sum per `KC` block through
//! memory, which is exact). So every x86_64 ISA gives the same bits, and aarch64 (NEON FMLA)
//! the same as x86_64; targets without a hardware FMA round product and sum separately
//! (`block_scalar`).

use crate::isa::Isa;

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

/// Columns per packed f32 panel.
pub const SNR: usize = 16;

/// K block of [`matmul`]'s stack-packed B.
const KC: usize = 256;
/// Column block of [`matmul`]'s stack-packed B (two panels).
const NC: usize = 2 * SNR;

/// Borrowed packed f32 weights of a `[K][N]` matrix: `data` is `[padded_n/SNR][K][SNR]` (zero
/// padding), `bias` (if any) has at least `n` entries (codegen pads it to `padded_n`).
#[derive(Clone, Copy, Debug)]
pub struct PackedF32<'a> {
    pub k: usize,
    pub n: usize,
    pub data: &'a [f32],
    pub bias: Option<&'a [f32]>,
}

impl PackedF32<'_> {
    /// `n` rounded up to a whole number of panels.
    pub const fn padded_n(&self) -> usize {
        self.n.div_ceil(SNR) * SNR
    }
}

/// Owned packed weights (packing at run time, tests).
#[cfg(feature = "alloc")]
#[derive(Clone, Debug, PartialEq)]
pub struct PackedF32Owned {
    pub k: usize,
    pub n: usize,
    pub data: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

#[cfg(feature = "alloc")]
impl PackedF32Owned {
    /// Packs `b` (`[K][N]` row-major, or `[N][K]` if `transposed`) and an optional bias of `n`.
    pub fn pack(b: &[f32], k: usize, n: usize, transposed: bool, bias: Option<&[f32]>) -> Self {
        assert_eq!(b.len(), k * n, "PackedF32Owned::pack: b length");
        let pn = n.div_ceil(SNR) * SNR;
        let mut data = alloc::vec![0.0f32; pn * k];
        for (p, panel) in data.chunks_exact_mut(k * SNR).enumerate() {
            for (kk, row) in panel.chunks_exact_mut(SNR).enumerate() {
                for (j, d) in row.iter_mut().enumerate() {
                    let col = p * SNR + j;
                    if col < n {
                        *d = if transposed {
                            b[col * k + kk]
                        } else {
                            b[kk * n + col]
                        };
                    }
                }
            }
        }
        let bias = bias.map(|bs| {
            assert_eq!(bs.len(), n, "PackedF32Owned::pack: bias length");
            let mut v = alloc::vec![0.0f32; pn];
            v[..n].copy_from_slice(bs);
            v
        });
        PackedF32Owned { k, n, data, bias }
    }

    pub fn as_ref(&self) -> PackedF32<'_> {
        PackedF32 {
            k: self.k,
            n: self.n,
            data: &self.data,
            bias: self.bias.as_deref(),
        }
    }
}

/// Activation applied to the GEMM result while it is in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatAct {
    None,
    Relu,
}

/// `out[m*ldc+n] = act(sum_k a[m*lda+k]*B[k][n] + bias[n])` for `m < m`, `n < b.n`.
///
/// Panics if a slice is too short for the given dims and strides.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    isa: Isa,
    m: usize,
    a: &[f32],
    lda: usize,
    b: PackedF32<'_>,
    act: FloatAct,
    out: &mut [f32],
    ldc: usize,
) {
    assert!(
        b.data.len() >= b.padded_n() * b.k,
        "sgemm: packed data too short"
    );
    block(
        isa,
        m,
        b.k,
        a,
        lda,
        b.data,
        b.n,
        b.bias,
        false,
        act == FloatAct::Relu,
        out,
        ldc,
    );
}

/// ONNX `MatMul` (numpy `matmul`): 1-D operands are promoted (`[K]` → `[1,K]` for `a`,
/// `[K,1]` for `b`, the added dim removed from the output), batch dims broadcast.
/// `out_shape` is the result shape given by codegen. No heap allocation.
///
/// Panics on inconsistent shapes or lengths.
pub fn matmul(
    isa: Isa,
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    out: &mut [f32],
    out_shape: &[usize],
) {
    use super::elementwise::{broadcast_rows, numel};
    assert!(
        !a_shape.is_empty() && !b_shape.is_empty(),
        "matmul: rank-0 operand"
    );
    assert_eq!(a.len(), numel(a_shape), "matmul: a length");
    assert_eq!(b.len(), numel(b_shape), "matmul: b length");
    let (ra, rb) = (a_shape.len(), b_shape.len());
    let (m, k, a_batch) = if ra == 1 {
        (1, a_shape[0], &a_shape[..0])
    } else {
        (a_shape[ra - 2], a_shape[ra - 1], &a_shape[..ra - 2])
    };
    let (kb, n, b_batch) = if rb == 1 {
        (b_shape[0], 1, &b_shape[..0])
    } else {
        (b_shape[rb - 2], b_shape[rb - 1], &b_shape[..rb - 2])
    };
    assert_eq!(k, kb, "matmul: inner dims differ");
    // Broadcast batch shape (rank <= 8 in practice; computed on the stack).
    let br = a_batch.len().max(b_batch.len());
    assert!(br <= 16, "matmul: more than 16 batch dims");
    let mut batch = [1usize; 16];
    for (d, bd) in batch[..br].iter_mut().enumerate() {
        let x = if d + a_batch.len() >= br {
            a_batch[d + a_batch.len() - br]
        } else {
            1
        };
        let y = if d + b_batch.len() >= br {
            b_batch[d + b_batch.len() - br]
        } else {
            1
        };
        assert!(
            x == y || x == 1 || y == 1,
            "matmul: batch dims do not broadcast"
        );
        *bd = if x == 1 { y } else { x };
    }
    let batch = &batch[..br];
    let total = numel(batch) * m * n;
    assert_eq!(out.len(), total, "matmul: output length");
    assert_eq!(numel(out_shape), total, "matmul: out_shape");
    if total == 0 {
        return;
    }
    if k == 0 {
        out.fill(0.0);
        return;
    }
    let isa = isa.resolve();
    // Batches of at least ~0.5 M FMA per piece when split across threads.
    let min_batches = (1usize << 19).div_ceil(m * n * k);
    broadcast_rows(batch, [a_batch, b_batch], |o, [oa, ob], len, [sa, sb]| {
        let dst = &mut out[o * m * n..(o + len) * m * n];
        crate::par::rows_mut(dst, m * n, min_batches, |j0, dst| {
            for (jj, c) in dst.chunks_exact_mut(m * n).enumerate() {
                let j = j0 + jj;
                let ai = (oa + j * sa) * m * k;
                let bi = (ob + j * sb) * k * n;
                gemm_rowmajor(isa, m, k, n, &a[ai..ai + m * k], &b[bi..bi + k * n], c);
            }
        });
    });
}

/// C[m][n] = A[m][k] · B[k][n], all row-major and dense; packs B blocks on the stack.
fn gemm_rowmajor(isa: Isa, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    let mut buf = [0.0f32; KC * NC];
    for n0 in (0..n).step_by(NC) {
        let nc = NC.min(n - n0);
        let np = nc.div_ceil(SNR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            // Pack B[k0..k0+kc][n0..n0+nc] as np panels of [kc][SNR], zero padded.
            for p in 0..np {
                let c0 = n0 + p * SNR;
                let w = SNR.min(n - c0);
                let panel = &mut buf[p * kc * SNR..(p + 1) * kc * SNR];
                for (kk, row) in panel.chunks_exact_mut(SNR).enumerate() {
                    let src = (k0 + kk) * n + c0;
                    row[..w].copy_from_slice(&b[src..src + w]);
                    row[w..].fill(0.0);
                }
            }
            block(
                isa,
                m,
                kc,
                &a[k0..],
                k,
                &buf[..np * kc * SNR],
                nc,
                None,
                k0 > 0,
                false,
                &mut c[n0..],
                n,
            );
        }
    }
}

/// Quantized constant weights of a weight-only `MatMul` (`y = x · dequant(W)`), kept at their
/// quantized size: `W[k][n] = (q[k][n] − zero_point[p]) as f32 · scale[p]` with
/// `p = (k / bk) · ceil(n_total / bn) + n / bn` (per tensor: `bk = k`, `bn = n`; per column:
/// `bk = k`, `bn = 1`; blocked along K: `bk = block`, `bn = 1`; …).
#[derive(Clone, Copy, Debug)]
pub struct DqWeights<'a> {
    pub k: usize,
    pub n: usize,
    /// Row-major `[k][n]`: 8-bit, one byte per weight (`signed`: i8 bits), or 4-bit, two per
    /// byte, element `i` in the low nibble of byte `i / 2` when `i` is even.
    pub data: &'a [u8],
    pub bits: u8,
    pub signed: bool,
    pub bk: usize,
    pub bn: usize,
    pub scale: &'a [f32],
    pub zero_point: &'a [i32],
    pub bias: Option<&'a [f32]>,
}

impl DqWeights<'_> {
    /// The quantized integer at `(k, n)`.
    #[inline(always)]
    pub fn q(&self, k: usize, n: usize) -> i32 {
        let i = k * self.n + n;
        if self.bits == 4 {
            let v = (self.data[i / 2] >> (4 * (i % 2))) & 0xf;
            if self.signed {
                (((v << 4) as i8) >> 4) as i32
            } else {
                v as i32
            }
        } else if self.signed {
            self.data[i] as i8 as i32
        } else {
            self.data[i] as i32
        }
    }
    /// The dequantized weight at `(k, n)`: exactly ONNX `DequantizeLinear`.
    #[inline(always)]
    pub fn get(&self, k: usize, n: usize) -> f32 {
        let p = (k / self.bk) * self.n.div_ceil(self.bn) + n / self.bn;
        self.q(k, n).wrapping_sub(self.zero_point[p]) as f32 * self.scale[p]
    }
    /// `out[j] = get(k, c0 + j)` for `j < out.len()` (≤ 16 columns of one row), with the
    /// integer decode and the parameter lookup hoisted out of the per-element work.
    #[inline(always)]
    fn dequant_row(&self, k: usize, c0: usize, prow: usize, out: &mut [f32]) {
        let wd = out.len();
        debug_assert!(wd <= SNR);
        let base = k * self.n + c0;
        if wd == SNR && self.bn == 1 && (self.bits == 8 || base.is_multiple_of(2)) {
            // The common case (a whole panel row, per-column or blocked-along-K parameters):
            // fixed-size arrays, so the decode and the multiply vectorise.
            let sc: &[f32; SNR] = self.scale[prow + c0..prow + c0 + SNR].try_into().unwrap();
            let zp: &[i32; SNR] = self.zero_point[prow + c0..prow + c0 + SNR]
                .try_into()
                .unwrap();
            let mut q = [0i32; SNR];
            if self.bits == 8 {
                let src: &[u8; SNR] = self.data[base..base + SNR].try_into().unwrap();
                if self.signed {
                    for j in 0..SNR {
                        q[j] = src[j] as i8 as i32;
                    }
                } else {
                    for j in 0..SNR {
                        q[j] = src[j] as i32;
                    }
                }
            } else {
                let src: &[u8; SNR / 2] =
                    self.data[base / 2..base / 2 + SNR / 2].try_into().unwrap();
                for j in 0..SNR / 2 {
                    let b = src[j];
                    (q[2 * j], q[2 * j + 1]) = if self.signed {
                        (((b << 4) as i8 >> 4) as i32, (b as i8 >> 4) as i32)
                    } else {
                        ((b & 0xf) as i32, (b >> 4) as i32)
                    };
                }
            }
            for j in 0..SNR {
                out[j] = q[j].wrapping_sub(zp[j]) as f32 * sc[j];
            }
            return;
        }
        let mut q = [0i32; SNR];
        match (self.bits, self.signed) {
            (8, true) => {
                for (d, &b) in q.iter_mut().zip(&self.data[base..base + wd]) {
                    *d = b as i8 as i32;
                }
            }
            (8, false) => {
                for (d, &b) in q.iter_mut().zip(&self.data[base..base + wd]) {
                    *d = b as i32;
                }
            }
            (_, signed) if base.is_multiple_of(2) => {
                // Whole bytes: two values each, low nibble first.
                for (j, &b) in self.data[base / 2..(base + wd).div_ceil(2)]
                    .iter()
                    .enumerate()
                {
                    let (lo, hi) = if signed {
                        (((b << 4) as i8 >> 4) as i32, (b as i8 >> 4) as i32)
                    } else {
                        ((b & 0xf) as i32, (b >> 4) as i32)
                    };
                    q[2 * j] = lo;
                    if 2 * j + 1 < SNR {
                        q[2 * j + 1] = hi;
                    }
                }
            }
            (_, signed) => {
                for (j, d) in q.iter_mut().enumerate().take(wd) {
                    let i = base + j;
                    let v = (self.data[i / 2] >> (4 * (i % 2))) & 0xf;
                    *d = if signed {
                        (((v << 4) as i8) >> 4) as i32
                    } else {
                        v as i32
                    };
                }
            }
        }
        if self.bn == 1 {
            let (sc, zp) = (
                &self.scale[prow + c0..prow + c0 + wd],
                &self.zero_point[prow + c0..prow + c0 + wd],
            );
            for j in 0..wd {
                out[j] = q[j].wrapping_sub(zp[j]) as f32 * sc[j];
            }
        } else if c0 / self.bn == (c0 + wd - 1) / self.bn {
            let pi = prow + c0 / self.bn;
            let (sc, zp) = (self.scale[pi], self.zero_point[pi]);
            for j in 0..wd {
                out[j] = q[j].wrapping_sub(zp) as f32 * sc;
            }
        } else {
            for j in 0..wd {
                let pi = prow + (c0 + j) / self.bn;
                out[j] = q[j].wrapping_sub(self.zero_point[pi]) as f32 * self.scale[pi];
            }
        }
    }
    fn assert_valid(&self) {
        let (bk, bn) = (self.bk.max(1), self.bn.max(1));
        let params = self.k.div_ceil(bk) * self.n.div_ceil(bn);
        assert!(self.bk > 0 && self.bn > 0, "DqWeights: block sizes");
        assert!(self.bits == 4 || self.bits == 8, "DqWeights: bits");
        let bytes = if self.bits == 4 {
            (self.k * self.n).div_ceil(2)
        } else {
            self.k * self.n
        };
        assert!(self.data.len() >= bytes, "DqWeights: data too short");
        assert!(
            self.scale.len() >= params && self.zero_point.len() >= params,
            "DqWeights: parameters too short"
        );
        assert!(
            self.bias.is_none_or(|b| b.len() >= self.n),
            "DqWeights: bias"
        );
    }
}

/// Dequantizes rows `k0..k0+kc` of the `np` panels starting at column `n0` into `buf` (the
/// packed `[np][kc][16]` layout, zero padded). The same code compiled for AVX-512 / AVX2 when
/// the family has it (the decode and multiply vectorise; the result is identical: integer
/// decode, one i32 → f32 conversion and one multiply per weight).
#[allow(clippy::too_many_arguments)]
fn dequant_panels(
    isa: Isa,
    w: &DqWeights<'_>,
    k0: usize,
    kc: usize,
    n0: usize,
    np: usize,
    gn: usize,
    buf: &mut [f32],
) {
    #[inline(always)]
    fn body(
        w: &DqWeights<'_>,
        k0: usize,
        kc: usize,
        n0: usize,
        np: usize,
        gn: usize,
        buf: &mut [f32],
    ) {
        for p in 0..np {
            let c0 = n0 + p * SNR;
            let wd = SNR.min(w.n - c0);
            let panel = &mut buf[p * kc * SNR..(p + 1) * kc * SNR];
            // Parameter row of k: (k / bk) · grid_n, tracked without a division per row.
            let (mut kb, mut rem) = (k0 / w.bk, k0 % w.bk);
            for (kk, row) in panel.chunks_exact_mut(SNR).enumerate() {
                w.dequant_row(k0 + kk, c0, kb * gn, &mut row[..wd]);
                row[wd..].fill(0.0);
                rem += 1;
                if rem == w.bk {
                    (kb, rem) = (kb + 1, 0);
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        fn avx512(
            w: &DqWeights<'_>,
            k0: usize,
            kc: usize,
            n0: usize,
            np: usize,
            gn: usize,
            buf: &mut [f32],
        ) {
            body(w, k0, kc, n0, np, gn, buf)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(
            w: &DqWeights<'_>,
            k0: usize,
            kc: usize,
            n0: usize,
            np: usize,
            gn: usize,
            buf: &mut [f32],
        ) {
            body(w, k0, kc, n0, np, gn, buf)
        }
        match isa {
            // SAFETY: `isa` is resolved (the CPU has the family); AVX-512 VNNI implies F, BW, VL.
            Isa::Avx512Vnni => return unsafe { avx512(w, k0, kc, n0, np, gn, buf) },
            // SAFETY: as above; every x86 SIMD family includes AVX2.
            Isa::Avx2 | Isa::AvxVnni => return unsafe { avx2(w, k0, kc, n0, np, gn, buf) },
            _ => {}
        }
    }
    let _ = isa;
    body(w, k0, kc, n0, np, gn, buf)
}

/// Weight-only quantized matmul: `out[m][n] = Σ_k x[m][k] · W[k][n] + bias[n]` (`x` row-major
/// `m × k`, `out` `m × n`), with W dequantized inside the kernel: each `KC × 32` block of W is
/// dequantized once per call into a stack buffer in the packed panel layout and fed to the same
/// f32 kernels as [`sgemm`]. No heap allocation. Numerics: those of `MatMul` on the dequantized
/// weights (which are exact `DequantizeLinear` values), within float summation order.
pub fn dq_matmul(isa: Isa, m: usize, x: &[f32], w: DqWeights<'_>, out: &mut [f32]) {
    w.assert_valid();
    let (k, n) = (w.k, w.n);
    assert!(x.len() >= m * k, "dq_matmul: x too short");
    assert!(out.len() >= m * n, "dq_matmul: out too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for r in 0..m {
            for c in 0..n {
                out[r * n + c] = w.bias.map_or(0.0, |b| b[c]);
            }
        }
        return;
    }
    let isa = isa.resolve();
    let gn = n.div_ceil(w.bn);
    let mut buf = [0.0f32; KC * NC];
    for n0 in (0..n).step_by(NC) {
        let nc = NC.min(n - n0);
        let np = nc.div_ceil(SNR);
        for k0 in (0..k).step_by(KC) {
            let kc = KC.min(k - k0);
            dequant_panels(isa, &w, k0, kc, n0, np, gn, &mut buf);
            block(
                isa,
                m,
                kc,
                &x[k0..],
                k,
                &buf[..np * kc * SNR],
                nc,
                w.bias.map(|b| &b[n0..]),
                k0 > 0,
                false,
                &mut out[n0..],
                n,
            );
        }
    }
}

/// Shared safe entry to the kernels: C[0..m][0..n] (=|+=) A[0..m][0..kc] · panels, + bias,
/// relu. `bp` holds `ceil(n/16)` panels of `[kc][16]` back to back. With `accumulate`, C's
/// current values are the starting sums and `bias` is ignored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn block(
    isa: Isa,
    m: usize,
    kc: usize,
    a: &[f32],
    lda: usize,
    bp: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    accumulate: bool,
    relu: bool,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let np = n.div_ceil(SNR);
    assert!(bp.len() >= np * kc * SNR, "gemm: packed B too short");
    assert!(
        a.len() >= (m - 1) * lda + kc,
        "gemm: a too short for m, lda, k"
    );
    assert!(
        c.len() >= (m - 1) * ldc + n,
        "gemm: out too short for m, ldc, n"
    );
    assert!(
        m == 1 || (lda >= kc && ldc >= n),
        "gemm: leading dimension too small"
    );
    if let Some(bs) = bias {
        assert!(bs.len() >= n, "gemm: bias too short");
    }
    let args = Args {
        m,
        kc,
        lda,
        n,
        bias,
        accumulate,
        relu,
        ldc,
    };
    match isa.resolve() {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => {
            // SAFETY: resolve() returned Avx512Vnni, so the CPU has avx512f (and AVX2/FMA);
            // the asserts above bound every A, B and C access the kernel makes.
            unsafe { x86::block_avx512(&args, a.as_ptr(), bp.as_ptr(), c.as_mut_ptr()) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::AvxVnni => {
            // SAFETY: resolve() returned an AVX2 family, so the CPU has avx2 and fma; the
            // asserts above bound every access.
            unsafe { x86::block_avx2(&args, a.as_ptr(), bp.as_ptr(), c.as_mut_ptr()) }
        }
        _ => block_scalar(&args, a, bp, c),
    }
}

/// Dims of one `block` call (shared by all kernel families).
struct Args<'a> {
    m: usize,
    kc: usize,
    lda: usize,
    n: usize,
    bias: Option<&'a [f32]>,
    accumulate: bool,
    relu: bool,
    ldc: usize,
}

impl Args<'_> {
    /// Bias of panel `p` (zero padded), or zeros.
    #[inline]
    fn panel_bias(&self, p: usize) -> [f32; SNR] {
        let mut t = [0.0; SNR];
        if let Some(bs) = self.bias {
            let c0 = p * SNR;
            let w = SNR.min(self.n - c0);
            t[..w].copy_from_slice(&bs[c0..c0 + w]);
        }
        t
    }
}

/// Portable 4×16 kernel (`generic-f32-scalar-4x16`). Each product is accumulated with one
/// rounding (FMA), as the AVX2 and AVX-512 kernels do, so every x86_64 ISA gives the same
/// bits: the FMA instruction when the CPU has it, [`super::fma::fma32`] otherwise. aarch64
/// uses NEON's FMLA. Targets without a hardware FMA (wasm32, thumbv7em builds without it)
/// multiply and add separately, because a software FMA there would cost ~10× (numerics.md).
fn block_scalar(g: &Args<'_>, a: &[f32], bp: &[f32], c: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::x86::has_fma() {
        // SAFETY: the CPU has FMA (checked above).
        return unsafe { x86::block_scalar_fma(g, a, bp, c) };
    }
    #[cfg(target_arch = "x86_64")]
    return block_scalar_with(g, a, bp, c, |row, av, brow| {
        for (x, &bv) in row.iter_mut().zip(brow) {
            *x = super::fma::fma32(av, bv, *x);
        }
    });
    #[cfg(target_arch = "aarch64")]
    return block_scalar_with(g, a, bp, c, |row, av, brow| {
        use core::arch::aarch64::*;
        for (x, b) in row.chunks_exact_mut(4).zip(brow.chunks_exact(4)) {
            // SAFETY: x and b are 4 floats each; NEON is part of the aarch64 baseline.
            unsafe {
                let v = vfmaq_f32(
                    vld1q_f32(x.as_ptr()),
                    vdupq_n_f32(av),
                    vld1q_f32(b.as_ptr()),
                );
                vst1q_f32(x.as_mut_ptr(), v);
            }
        }
    });
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    block_scalar_with(g, a, bp, c, |row, av, brow| {
        for (x, &bv) in row.iter_mut().zip(brow) {
            *x += av * bv;
        }
    })
}

/// The portable kernel's loops; `madd(row, a, b_row)` does `row[j] += a·b_row[j]` for the 16
/// columns of one panel row (inlined into each caller, so the target features of
/// [`x86::block_scalar_fma`] reach it).
#[inline(always)]
fn block_scalar_with(
    g: &Args<'_>,
    a: &[f32],
    bp: &[f32],
    c: &mut [f32],
    madd: impl Fn(&mut [f32; SNR], f32, &[f32]),
) {
    const MR: usize = 4;
    for p in 0..g.n.div_ceil(SNR) {
        let bias = g.panel_bias(p);
        let w = SNR.min(g.n - p * SNR);
        let panel = &bp[p * g.kc * SNR..(p + 1) * g.kc * SNR];
        for r0 in (0..g.m).step_by(MR) {
            let mr = MR.min(g.m - r0);
            let mut acc = [[0.0f32; SNR]; MR];
            for (r, row) in acc.iter_mut().enumerate().take(mr) {
                if g.accumulate {
                    let ci = (r0 + r) * g.ldc + p * SNR;
                    row[..w].copy_from_slice(&c[ci..ci + w]);
                } else {
                    *row = bias;
                }
            }
            for (kk, brow) in panel.chunks_exact(SNR).enumerate() {
                for (r, row) in acc.iter_mut().enumerate().take(mr) {
                    madd(row, a[(r0 + r) * g.lda + kk], brow);
                }
            }
            for (r, row) in acc.iter().enumerate().take(mr) {
                let ci = (r0 + r) * g.ldc + p * SNR;
                for (o, &v) in c[ci..ci + w].iter_mut().zip(row) {
                    *o = if g.relu && v < 0.0 { 0.0 } else { v };
                }
            }
        }
    }
}

// AVX-512 intrinsics and `target_feature(enable = "avx512f")` are stable since Rust 1.89, so
// this module needs rustc >= 1.89 whatever the workspace `rust-version` (1.85) says; the
// AVX-512 int8 kernels have the same requirement, so the declared MSRV should become 1.89.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use super::{Args, SNR};
    use core::arch::x86_64::*;

    /// Rows per cache block of A: the kernels sweep every panel over these rows before moving
    /// on, so the rows stay in L2 (72 rows × K=768 × 4 B = 221 KB).
    const MC: usize = 72;

    /// The portable kernel with the FMA instruction (4 × 128-bit per panel row).
    ///
    /// # Safety
    /// CPU has fma.
    #[target_feature(enable = "fma")]
    pub(super) unsafe fn block_scalar_fma(g: &Args<'_>, a: &[f32], bp: &[f32], c: &mut [f32]) {
        super::block_scalar_with(g, a, bp, c, |row, av, brow| {
            for (x, b) in row.chunks_exact_mut(4).zip(brow.chunks_exact(4)) {
                // SAFETY: x and b are 4 floats each; the caller has FMA.
                unsafe {
                    let v = _mm_fmadd_ps(
                        _mm_set1_ps(av),
                        _mm_loadu_ps(b.as_ptr()),
                        _mm_loadu_ps(x.as_ptr()),
                    );
                    _mm_storeu_ps(x.as_mut_ptr(), v);
                }
            }
        })
    }

    /// AVX2+FMA driver (`x86_64-f32-avx2-6x16`).
    ///
    /// # Safety
    /// CPU has avx2+fma; `block`'s asserts hold for `a`, `bp`, `c`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(g: &Args<'_>, a: *const f32, bp: *const f32, c: *mut f32) {
        let np = g.n.div_ceil(SNR);
        for m0 in (0..g.m).step_by(MC) {
            let mb = MC.min(g.m - m0);
            for p in 0..np {
                let bias = g.panel_bias(p);
                let w = SNR.min(g.n - p * SNR);
                // SAFETY: panel p lies within bp (bp.len() >= np*kc*16); rows m0.. and columns
                // p*16.. lie within a and c by the caller's bounds.
                unsafe {
                    let b = bp.add(p * g.kc * SNR);
                    let mut r = 0;
                    while r < mb {
                        let ap = a.add((m0 + r) * g.lda);
                        let cp = c.add((m0 + r) * g.ldc + p * SNR);
                        let rows = (mb - r).min(6);
                        match rows {
                            6 => tile_avx2::<6>(g, ap, b, cp, w, &bias),
                            5 => tile_avx2::<5>(g, ap, b, cp, w, &bias),
                            4 => tile_avx2::<4>(g, ap, b, cp, w, &bias),
                            3 => tile_avx2::<3>(g, ap, b, cp, w, &bias),
                            2 => tile_avx2::<2>(g, ap, b, cp, w, &bias),
                            _ => tile_avx2::<1>(g, ap, b, cp, w, &bias),
                        }
                        r += rows;
                    }
                }
            }
        }
    }

    /// MR×16 tile: `w` valid columns at `c`, MR rows of A at `a` (stride lda), panel at `b`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile_avx2<const MR: usize>(
        g: &Args<'_>,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        w: usize,
        bias: &[f32; SNR],
    ) {
        // SAFETY: the caller guarantees MR rows of kc floats at a (stride lda), kc*16 floats
        // at b and MR rows of w floats at c (stride ldc); full 16-wide accesses to c happen
        // only when w == 16, partial ones go through a stack buffer.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; MR];
            for (r, row) in acc.iter_mut().enumerate() {
                if g.accumulate {
                    let cr = c.add(r * g.ldc);
                    if w == SNR {
                        row[0] = _mm256_loadu_ps(cr);
                        row[1] = _mm256_loadu_ps(cr.add(8));
                    } else {
                        let mut t = [0.0f32; SNR];
                        core::ptr::copy_nonoverlapping(cr, t.as_mut_ptr(), w);
                        row[0] = _mm256_loadu_ps(t.as_ptr());
                        row[1] = _mm256_loadu_ps(t.as_ptr().add(8));
                    }
                } else {
                    row[0] = _mm256_loadu_ps(bias.as_ptr());
                    row[1] = _mm256_loadu_ps(bias.as_ptr().add(8));
                }
            }
            for k in 0..g.kc {
                let b0 = _mm256_loadu_ps(b.add(k * SNR));
                let b1 = _mm256_loadu_ps(b.add(k * SNR + 8));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_set1_ps(*a.add(r * g.lda + k));
                    row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(av, b1, row[1]);
                }
            }
            let zero = _mm256_setzero_ps();
            for (r, row) in acc.iter_mut().enumerate() {
                if g.relu {
                    row[0] = _mm256_max_ps(row[0], zero);
                    row[1] = _mm256_max_ps(row[1], zero);
                }
                let cr = c.add(r * g.ldc);
                if w == SNR {
                    _mm256_storeu_ps(cr, row[0]);
                    _mm256_storeu_ps(cr.add(8), row[1]);
                } else {
                    let mut t = [0.0f32; SNR];
                    _mm256_storeu_ps(t.as_mut_ptr(), row[0]);
                    _mm256_storeu_ps(t.as_mut_ptr().add(8), row[1]);
                    core::ptr::copy_nonoverlapping(t.as_ptr(), cr, w);
                }
            }
        }
    }

    /// AVX-512 driver (`x86_64-f32-avx512-12x32`, 12×16 for an odd last panel).
    ///
    /// # Safety
    /// CPU has avx512f; `block`'s asserts hold for `a`, `bp`, `c`.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn block_avx512(g: &Args<'_>, a: *const f32, bp: *const f32, c: *mut f32) {
        let np = g.n.div_ceil(SNR);
        for m0 in (0..g.m).step_by(MC) {
            let mb = MC.min(g.m - m0);
            let mut p = 0;
            while p < np {
                let two = p + 1 < np;
                let mut bias = [0.0f32; 2 * SNR];
                bias[..SNR].copy_from_slice(&g.panel_bias(p));
                if two {
                    bias[SNR..].copy_from_slice(&g.panel_bias(p + 1));
                }
                let w = (2 * SNR).min(g.n - p * SNR);
                // SAFETY: panels p (and p+1 when `two`) lie within bp; rows m0.. and columns
                // p*16..p*16+w lie within a and c by the caller's bounds.
                unsafe {
                    let b = bp.add(p * g.kc * SNR);
                    let mut r = 0;
                    while r < mb {
                        let ap = a.add((m0 + r) * g.lda);
                        let cp = c.add((m0 + r) * g.ldc + p * SNR);
                        let rows = (mb - r).min(12);
                        macro_rules! go {
                            ($($mr:literal)*) => {
                                match (rows, two) {
                                    $(($mr, true) => tile_avx512::<$mr, 2>(g, ap, b, cp, w, &bias),
                                      ($mr, false) => tile_avx512::<$mr, 1>(g, ap, b, cp, w, &bias),)*
                                    _ => unreachable!(),
                                }
                            };
                        }
                        go!(1 2 3 4 5 6 7 8 9 10 11 12);
                        r += rows;
                    }
                }
                p += if two { 2 } else { 1 };
            }
        }
    }

    /// MR×(16·NP) tile with masked loads/stores for the `w` valid columns.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn tile_avx512<const MR: usize, const NP: usize>(
        g: &Args<'_>,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        w: usize,
        bias: &[f32; 2 * SNR],
    ) {
        let pstride = g.kc * SNR;
        let mut masks = [0 as __mmask16; NP];
        for (v, mk) in masks.iter_mut().enumerate() {
            let valid = w.saturating_sub(v * SNR).min(SNR);
            *mk = ((1u32 << valid) - 1) as __mmask16;
        }
        // SAFETY: the caller guarantees MR rows of kc floats at a (stride lda), NP panels of
        // kc*16 floats from b, and MR rows of w floats at c (stride ldc); C is only touched
        // through masks that select the w valid columns (masked-off lanes are not accessed),
        // and the second vector's address uses wrapping_add so it is never formed out of
        // bounds when its mask is empty.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NP]; MR];
            for (r, row) in acc.iter_mut().enumerate() {
                for (v, x) in row.iter_mut().enumerate() {
                    *x = if g.accumulate {
                        _mm512_maskz_loadu_ps(masks[v], c.wrapping_add(r * g.ldc + v * SNR))
                    } else {
                        _mm512_loadu_ps(bias.as_ptr().add(v * SNR))
                    };
                }
            }
            for k in 0..g.kc {
                let mut bv = [_mm512_setzero_ps(); NP];
                for (v, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(b.add(v * pstride + k * SNR));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * g.lda + k));
                    for (x, &bb) in row.iter_mut().zip(&bv) {
                        *x = _mm512_fmadd_ps(av, bb, *x);
                    }
                }
            }
            let zero = _mm512_setzero_ps();
            for (r, row) in acc.iter().enumerate() {
                for (v, &x) in row.iter().enumerate() {
                    let x = if g.relu { _mm512_max_ps(x, zero) } else { x };
                    _mm512_mask_storeu_ps(c.wrapping_add(r * g.ldc + v * SNR), masks[v], x);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests;
