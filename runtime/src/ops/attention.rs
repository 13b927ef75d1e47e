//! Fused scaled-dot-product attention: what exporters write as
//! `Transpose(Q), Transpose(K) → MatMul → Div|Mul(scalar) → Add(mask) → Softmax → MatMul(·, Transpose(V)) → Transpose`,
//! computed straight from and into the `[batch, seq, heads, head_dim]` layout the projections
//! produce (codegen's `fuse_attention` pass).
//!
//! Why: unfused, each layer of a BERT-like encoder transposes Q, K and V into head-major copies,
//! writes the full `[batch, heads, sq, skv]` score tensor four times (MatMul, Div, Add,
//! Softmax), re-packs K and V inside the generic batched MatMul, and transposes the result
//! back. Here one task per (batch, head, block of [`MB`] query rows) packs that head's K^T and V
//! once into the f32 GEMM's panel layout, computes the score block into scratch that stays in
//! L1/L2, scales and masks each row and exponentiates it in place (`e^(s − max)`), multiplies by
//! V, multiplies each output row by the reciprocal of its row's sum of exponentials and writes
//! the rows into the output's head columns.
//!
//! Numerics: the same kernels as the unfused ops (`ops::matmul::block` for both products,
//! `s / c + mask` (or `s · c + mask`) with one rounding each, the softmax's max and exp), except
//! where the softmax's normalisation happens: `(Σ_j e_j·v_j) · (1/Σ_j e_j)` per output instead
//! of `Σ_j (e_j · (1/Σ e))·v_j` (the same reciprocal, applied to the d outputs instead of the
//! s_kv probabilities). That saves a pass over every score row and differs from running the
//! ONNX nodes one by one in the last bits only; the tests compare the fused op with an f64
//! evaluation of the definition.

use super::matmul::{SNR, block};
use crate::isa::Isa;

/// Query rows per task (a 64 × 512 score block is 128 KiB: it stays in L2 next to the packed
/// K and V of one head).
pub const MB: usize = 64;

/// How the raw scores are scaled before the mask is added.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScoreScale {
    None,
    /// `s / c` (`Div` by a constant, as most exporters write `1/√d`)
    Div(f32),
    /// `s · c`
    Mul(f32),
}

/// An additive mask broadcast to `[batch, heads, sq, skv]`: element `(b, h, i, j)` is
/// `data[b·strides[0] + h·strides[1] + i·strides[2] + j·strides[3]]` (stride 0 on broadcast dims).
#[derive(Clone, Copy, Debug)]
pub struct Mask<'a> {
    pub data: &'a [f32],
    pub strides: [usize; 4],
}

/// Shape of one attention call. Q is `[batch, sq, heads, dh]`, K and V are
/// `[batch, skv, heads, dh]`, the output is `[batch, sq, heads, dh]`, all dense.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    pub batch: usize,
    pub heads: usize,
    pub sq: usize,
    pub skv: usize,
    pub dh: usize,
}

impl AttnDims {
    /// f32 scratch one task slot needs: packed K^T (`[⌈skv/16⌉][dh][16]`), packed V
    /// (`[⌈dh/16⌉][skv][16]`), a score block (`MB × skv`) and an output block (`MB × dh`).
    pub const fn slot_len(&self) -> usize {
        let (pk, pd) = (self.skv.div_ceil(SNR) * SNR, self.dh.div_ceil(SNR) * SNR);
        pk * self.dh + pd * self.skv + MB * self.skv + MB * self.dh
    }
}

/// Task slots codegen allocates scratch for: the op runs at most this many tasks at once.
pub const SLOTS: usize = 8;

/// The output pointer shared by tasks that write disjoint parts of it.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint (batch, rows, head) regions of the output (see `attention`),
// and the pointer outlives the parallel section (it borrows `out` for the whole call).
unsafe impl Send for OutPtr {}
// SAFETY: as above.
unsafe impl Sync for OutPtr {}

/// Fused attention (see the module docs). `scratch` holds at least one slot of
/// `d.slot_len()` floats; with several slots, tasks run on up to that many threads.
///
/// Panics if a slice is shorter than the dims require.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    isa: Isa,
    d: AttnDims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scale: ScoreScale,
    mask: Option<Mask<'_>>,
    out: &mut [f32],
    scratch: &mut [f32],
) {
    let AttnDims {
        batch,
        heads,
        sq,
        skv,
        dh,
    } = d;
    let hd = heads * dh;
    assert!(q.len() >= batch * sq * hd, "attention: q too short");
    assert!(k.len() >= batch * skv * hd, "attention: k too short");
    assert!(v.len() >= batch * skv * hd, "attention: v too short");
    assert!(out.len() >= batch * sq * hd, "attention: out too short");
    if let Some(m) = &mask {
        let [sb, sh, si, sj] = m.strides;
        let last = batch.saturating_sub(1) * sb
            + heads.saturating_sub(1) * sh
            + sq.saturating_sub(1) * si
            + skv.saturating_sub(1) * sj;
        assert!(
            batch * heads * sq * skv == 0 || m.data.len() > last,
            "attention: mask too short"
        );
    }
    if batch * heads * sq * dh == 0 {
        return;
    }
    if skv == 0 {
        // Softmax over an empty row is empty; the weighted sum of no values is 0.
        out[..batch * sq * hd].fill(0.0);
        return;
    }
    let slot = d.slot_len();
    let slots = scratch.len() / slot;
    assert!(slots >= 1, "attention: scratch too short");
    let isa = isa.resolve();
    let row_blocks = sq.div_ceil(MB);
    let tasks = batch * heads * row_blocks;
    // A task is ≥ 2·MB·skv·dh FMA (≥ ~0.3 M for MiniLM's heads): worth a hand-off each.
    let n = crate::par::pieces(tasks, 1).min(slots);
    let per = tasks.div_ceil(n);
    let outp = OutPtr(out.as_mut_ptr());
    let run = |piece: usize, s: &mut [f32]| {
        let mut packed = usize::MAX;
        for t in piece * per..tasks.min((piece + 1) * per) {
            let (bh, rb) = (t / row_blocks, t % row_blocks);
            task(isa, &d, q, k, v, scale, mask, bh, rb, packed != bh, s, outp);
            packed = bh;
        }
    };
    #[cfg(feature = "rayon")]
    if n > 1 {
        use rayon::prelude::*;
        scratch[..n * slot]
            .par_chunks_mut(slot)
            .enumerate()
            .with_max_len(1)
            .for_each(|(p, s)| run(p, s));
        return;
    }
    run(0, &mut scratch[..slot]);
}

/// One (batch·head `bh`, row block `rb`) task; packs the head's K^T and V first if `pack`.
#[allow(clippy::too_many_arguments)]
fn task(
    isa: Isa,
    d: &AttnDims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    scale: ScoreScale,
    mask: Option<Mask<'_>>,
    bh: usize,
    rb: usize,
    pack: bool,
    slot: &mut [f32],
    out: OutPtr,
) {
    let AttnDims {
        heads, sq, skv, dh, ..
    } = *d;
    let hd = heads * dh;
    let (b, h) = (bh / heads, bh % heads);
    let (pk, pd) = (skv.div_ceil(SNR) * SNR, dh.div_ceil(SNR) * SNR);
    let (kt, rest) = slot.split_at_mut(pk * dh);
    let (vp, rest) = rest.split_at_mut(pd * skv);
    let (sc, ob) = rest.split_at_mut(MB * skv);
    // Offset of row `j` of this head in K or V.
    let kv_at = |j: usize| (b * skv + j) * hd + h * dh;
    #[cfg(target_arch = "x86_64")]
    if pack && isa == Isa::Avx512Vnni {
        // SAFETY: `isa` is resolved, so the CPU has avx512f; K and V hold batch·skv·hd floats
        // (asserted in `attention`), so rows kv_at(0) + j·hd, j < skv, of dh floats are inside
        // both; kt and vp are the slot's panels of exactly the sizes the function writes.
        unsafe { x86::pack_kv_avx512(k, v, kv_at(0), hd, skv, dh, kt, vp) };
    } else if pack {
        pack_kv(k, v, kv_at, skv, dh, kt, vp);
    }
    #[cfg(not(target_arch = "x86_64"))]
    if pack {
        pack_kv(k, v, kv_at, skv, dh, kt, vp);
    }
    let i0 = rb * MB;
    let mb = MB.min(sq - i0);
    let qi = (b * sq + i0) * hd + h * dh;
    let s = &mut sc[..mb * skv];
    block(
        isa,
        mb,
        dh,
        &q[qi..],
        hd,
        kt,
        skv,
        None,
        false,
        false,
        s,
        skv,
    );
    // Each score row becomes e^(s − max) in place, its sum goes to `sums`; the output rows are
    // multiplied by its reciprocal after the product with V.
    let mut sums = [0.0f32; MB];
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512Vnni && mask.is_none_or(|m| m.strides[3] == 1) {
        // A mask row shared by all heads and query rows (the usual `[batch, skv]` padding mask)
        // that is all zeros (no padding: every sentence of one batch row is full length) is
        // skipped: adding ±0 leaves every score as it is (up to the sign of a zero score, which
        // the max subtraction erases), and it is one load and one add per score fewer.
        let mask = mask.filter(|m| {
            let [sb, sh, si, _] = m.strides;
            sh != 0 || si != 0 || m.data[b * sb..b * sb + skv].iter().any(|&x| x != 0.0)
        });
        let mrow = |r: usize| {
            mask.map_or(core::ptr::null(), |m| {
                let [sb, sh, si, _] = m.strides;
                m.data[b * sb + h * sh + (i0 + r) * si..].as_ptr()
            })
        };
        let base = s.as_mut_ptr();
        let mut r = 0;
        while r < mb {
            // SAFETY: `isa` is resolved, so the CPU has avx512f/avx2/fma; rows r .. r + 4 (or fewer)
            // are disjoint skv-float rows of `s`, and each mask row pointer starts skv
            // contiguous floats inside the mask (its length was asserted in `attention`).
            unsafe {
                use super::softmax::x86::exp_rows_pre_avx512;
                if r + 3 < mb {
                    let rows: [*mut f32; 4] = core::array::from_fn(|j| base.add((r + j) * skv));
                    let masks = core::array::from_fn(|j| mrow(r + j));
                    let s4 = exp_rows_pre_avx512::<4>(rows, skv, scale, masks);
                    sums[r..r + 4].copy_from_slice(&s4);
                    r += 4;
                } else if r + 1 < mb {
                    let rows = [base.add(r * skv), base.add((r + 1) * skv)];
                    let masks = [mrow(r), mrow(r + 1)];
                    let [s0, s1] = exp_rows_pre_avx512::<2>(rows, skv, scale, masks);
                    (sums[r], sums[r + 1]) = (s0, s1);
                    r += 2;
                } else {
                    let rows = [base.add(r * skv)];
                    [sums[r]] = exp_rows_pre_avx512::<1>(rows, skv, scale, [mrow(r)]);
                    r += 1;
                }
            }
        }
    } else {
        scale_mask_exp(isa, s, skv, scale, mask, b, h, i0, &mut sums);
    }
    #[cfg(not(target_arch = "x86_64"))]
    scale_mask_exp(isa, s, skv, scale, mask, b, h, i0, &mut sums);
    let o = &mut ob[..mb * dh];
    block(isa, mb, skv, s, skv, vp, dh, None, false, false, o, dh);
    for (r, row) in o.chunks_exact(dh).enumerate() {
        let rcp = 1.0 / sums[r];
        let dst = (b * sq + i0 + r) * hd + h * dh;
        // SAFETY: `dst..dst + dh` is inside `out` (asserted ≥ batch·sq·hd in `attention`), and
        // only this task writes it: tasks own distinct (b, h, row block) triples, and those
        // map to disjoint (row, head-column) ranges of the output.
        let dst = unsafe { core::slice::from_raw_parts_mut(out.0.add(dst), dh) };
        for (d, &x) in dst.iter_mut().zip(row) {
            *d = x * rcp;
        }
    }
}

/// Packs one head's K^T and V into the f32 GEMM's panel layout (portable path).
fn pack_kv(
    k: &[f32],
    v: &[f32],
    kv_at: impl Fn(usize) -> usize,
    skv: usize,
    dh: usize,
    kt: &mut [f32],
    vp: &mut [f32],
) {
    pack_kt(k, &kv_at, skv, dh, kt);
    pack_v(v, &kv_at, skv, dh, vp);
}

/// K^T as panels of 16 keys: `kt[p][c][j] = K[row 16p + j][c]` (zero past `skv`), where row
/// `j` of this head starts at `k[at(j)]` and holds `dh` values.
pub(crate) fn pack_kt(
    k: &[f32],
    at: &impl Fn(usize) -> usize,
    skv: usize,
    dh: usize,
    kt: &mut [f32],
) {
    for (p, panel) in kt.chunks_exact_mut(dh * SNR).enumerate() {
        let j0 = p * SNR;
        let w = SNR.min(skv - j0);
        for j in 0..w {
            let src = &k[at(j0 + j)..at(j0 + j) + dh];
            for (c, &x) in src.iter().enumerate() {
                panel[c * SNR + j] = x;
            }
        }
        for c in 0..dh {
            panel[c * SNR + w..(c + 1) * SNR].fill(0.0);
        }
    }
}

/// V as panels of 16 head columns: `vp[p][j][c] = V[row j][16p + c]` (zero past `dv`), rows
/// as in [`pack_kt`].
pub(crate) fn pack_v(
    v: &[f32],
    at: &impl Fn(usize) -> usize,
    skv: usize,
    dv: usize,
    vp: &mut [f32],
) {
    for (p, panel) in vp.chunks_exact_mut(skv * SNR).enumerate() {
        let c0 = p * SNR;
        let w = SNR.min(dv - c0);
        for (j, row) in panel.chunks_exact_mut(SNR).enumerate() {
            let src = at(j) + c0;
            row[..w].copy_from_slice(&v[src..src + w]);
            row[w..].fill(0.0);
        }
    }
}

/// Scale, mask and the unnormalised softmax of each score row, with the row sums (the portable
/// path).
#[allow(clippy::too_many_arguments)]
fn scale_mask_exp(
    isa: Isa,
    s: &mut [f32],
    skv: usize,
    scale: ScoreScale,
    mask: Option<Mask<'_>>,
    b: usize,
    h: usize,
    i0: usize,
    sums: &mut [f32; MB],
) {
    for (r, row) in s.chunks_exact_mut(skv).enumerate() {
        match scale {
            ScoreScale::None => {}
            ScoreScale::Div(c) => row.iter_mut().for_each(|x| *x /= c),
            ScoreScale::Mul(c) => row.iter_mut().for_each(|x| *x *= c),
        }
        if let Some(m) = &mask {
            let [sb, sh, si, sj] = m.strides;
            let base = b * sb + h * sh + (i0 + r) * si;
            if sj == 1 {
                for (x, &a) in row.iter_mut().zip(&m.data[base..base + skv]) {
                    *x += a;
                }
            } else {
                for (j, x) in row.iter_mut().enumerate() {
                    *x += m.data[base + j * sj];
                }
            }
        }
        sums[r] = super::softmax::exp_row_inplace(isa, row);
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::incompatible_msrv)]
mod x86 {
    use super::SNR;
    use core::arch::x86_64::*;

    /// Transposes the 16 × 16 block whose rows are `r` (four shuffle stages, 64 shuffles).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
        // Within each 128-bit lane, 4 × 4 transposes of rows 4i..4i+4: afterwards lane L of
        // u[4i + k] is column 4L + k of those rows.
        let t: [__m512; 16] = core::array::from_fn(|x| {
            let (a, b) = (r[x & !1], r[x | 1]);
            if x % 2 == 0 {
                _mm512_unpacklo_ps(a, b)
            } else {
                _mm512_unpackhi_ps(a, b)
            }
        });
        let u: [__m512; 16] = core::array::from_fn(|x| {
            let (i, k) = (x / 4, x % 4);
            let (a, b) = (t[4 * i + k / 2], t[4 * i + 2 + k / 2]);
            if k % 2 == 0 {
                _mm512_shuffle_ps::<0x44>(a, b)
            } else {
                _mm512_shuffle_ps::<0xEE>(a, b)
            }
        });
        // Across lanes: output row 4L + k is lane L of u[k], u[4 + k], u[8 + k], u[12 + k].
        let mut out = [_mm512_setzero_ps(); 16];
        for k in 0..4 {
            let v0 = _mm512_shuffle_f32x4::<0x44>(u[k], u[4 + k]);
            let v1 = _mm512_shuffle_f32x4::<0xEE>(u[k], u[4 + k]);
            let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + k], u[12 + k]);
            let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + k], u[12 + k]);
            out[k] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
            out[4 + k] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
            out[8 + k] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
            out[12 + k] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
        }
        out
    }

    /// [`super::pack_kv`] with 16 × 16 register transposes for K^T and one masked load and
    /// store per V row: the same values (the portable loop stores K^T one float at a time,
    /// which made packing a third of the op's non-GEMM time). Row j of this head's K and V
    /// starts at `head + j·hd`.
    ///
    /// # Safety
    /// CPU has avx512f; `skv ≥ 1`; `k` and `v` hold at least `head + (skv − 1)·hd + dh` floats;
    /// `kt` holds ⌈skv/16⌉·16·dh floats and `vp` ⌈dh/16⌉·16·skv.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn pack_kv_avx512(
        k: &[f32],
        v: &[f32],
        head: usize,
        hd: usize,
        skv: usize,
        dh: usize,
        kt: &mut [f32],
        vp: &mut [f32],
    ) {
        let end = head + (skv - 1) * hd + dh;
        debug_assert!(k.len() >= end && v.len() >= end);
        debug_assert!(kt.len() == skv.div_ceil(SNR) * SNR * dh);
        debug_assert!(vp.len() == dh.div_ceil(SNR) * SNR * skv);
        let lanes = |w: usize| ((1u32 << w) - 1) as __mmask16;
        let (kp, vsrc) = (k.as_ptr(), v.as_ptr());
        for (p, panel) in kt.chunks_exact_mut(dh * SNR).enumerate() {
            let j0 = p * SNR;
            let w = SNR.min(skv - j0);
            for c0 in (0..dh).step_by(16) {
                let cw = 16.min(dh - c0);
                if w == SNR && cw == 16 {
                    // Whole 16 × 16 blocks (all of them for head sizes that are multiples of
                    // 16, but the last partial panel): fixed trip counts, so the block stays
                    // in registers (the general path below builds it on the stack and
                    // copied it with a `memcpy` call).
                    let mut rows = [_mm512_setzero_ps(); 16];
                    for (j, r) in rows.iter_mut().enumerate() {
                        // SAFETY: key j0 + j < skv (w = 16) and columns c0..c0 + 16 ≤ dh.
                        *r = unsafe { _mm512_loadu_ps(kp.add(head + (j0 + j) * hd + c0)) };
                    }
                    let cols = transpose16(rows);
                    for (c, col) in cols.iter().enumerate() {
                        // SAFETY: row c0 + c < dh of this panel: 16 floats inside it.
                        unsafe { _mm512_storeu_ps(panel.as_mut_ptr().add((c0 + c) * SNR), *col) };
                    }
                    continue;
                }
                let rows: [__m512; 16] = core::array::from_fn(|j| {
                    if j < w {
                        // SAFETY: key j0 + j < skv; the mask selects columns c0..c0 + cw ≤ dh.
                        unsafe {
                            _mm512_maskz_loadu_ps(lanes(cw), kp.add(head + (j0 + j) * hd + c0))
                        }
                    } else {
                        _mm512_setzero_ps()
                    }
                });
                for (c, col) in transpose16(rows).iter().enumerate().take(cw) {
                    // SAFETY: row c0 + c < dh of this panel: 16 floats inside it.
                    unsafe { _mm512_storeu_ps(panel.as_mut_ptr().add((c0 + c) * SNR), *col) };
                }
            }
        }
        for (p, panel) in vp.chunks_exact_mut(skv * SNR).enumerate() {
            let c0 = p * SNR;
            let cm = lanes(SNR.min(dh - c0));
            for (j, row) in panel.chunks_exact_mut(SNR).enumerate() {
                // SAFETY: row j < skv, the mask selects columns < dh; `row` has 16 floats.
                unsafe {
                    let x = _mm512_maskz_loadu_ps(cm, vsrc.add(head + j * hd + c0));
                    _mm512_storeu_ps(row.as_mut_ptr(), x);
                }
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

    fn data(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 500.0 - 2.0
            })
            .collect()
    }

    /// Attention in f64, straight from the definition.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        d: AttnDims,
        q: &[f32],
        k: &[f32],
        v: &[f32],
        scale: ScoreScale,
        mask: Option<Mask<'_>>,
    ) -> Vec<f64> {
        let hd = d.heads * d.dh;
        let mut out = vec![0.0; d.batch * d.sq * hd];
        for b in 0..d.batch {
            for h in 0..d.heads {
                for i in 0..d.sq {
                    let mut s: Vec<f64> = (0..d.skv)
                        .map(|j| {
                            let mut acc = 0.0;
                            for c in 0..d.dh {
                                acc += q[(b * d.sq + i) * hd + h * d.dh + c] as f64
                                    * k[(b * d.skv + j) * hd + h * d.dh + c] as f64;
                            }
                            let acc = match scale {
                                ScoreScale::None => acc,
                                ScoreScale::Div(c) => acc / c as f64,
                                ScoreScale::Mul(c) => acc * c as f64,
                            };
                            acc + mask.map_or(0.0, |m| {
                                let [sb, sh, si, sj] = m.strides;
                                m.data[b * sb + h * sh + i * si + j * sj] as f64
                            })
                        })
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let mut sum = 0.0;
                    for x in s.iter_mut() {
                        *x = (*x - mx).exp();
                        sum += *x;
                    }
                    for c in 0..d.dh {
                        let mut acc = 0.0;
                        for j in 0..d.skv {
                            acc += s[j] / sum * v[(b * d.skv + j) * hd + h * d.dh + c] as f64;
                        }
                        out[(b * d.sq + i) * hd + h * d.dh + c] = acc;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_f64_reference_on_every_isa() {
        let cases = [
            (1, 2, 5, 5, 16),
            (2, 3, 70, 70, 32),
            (1, 1, 3, 33, 8),
            (2, 2, 130, 17, 20),
            (1, 4, 1, 300, 64),
            // MiniLM's heads, and a sequence longer than one row block (MB) with two of them.
            (1, 12, 128, 128, 32),
            (2, 2, 300, 300, 64),
        ];
        for (ci, &(batch, heads, sq, skv, dh)) in cases.iter().enumerate() {
            let d = AttnDims {
                batch,
                heads,
                sq,
                skv,
                dh,
            };
            let hd = heads * dh;
            let q = data(batch * sq * hd, 1 + ci as u32);
            let k = data(batch * skv * hd, 2 + ci as u32);
            let v = data(batch * skv * hd, 3 + ci as u32);
            // A [batch, 1, 1, skv] mask with some keys masked out, and a per-query one.
            let pad: Vec<f32> = (0..batch * skv)
                .map(|i| if i % 7 == 3 { -10000.0 } else { 0.0 })
                .collect();
            let full = data(sq * skv, 9);
            let masks = [
                None,
                Some(Mask {
                    data: &pad,
                    strides: [skv, 0, 0, 1],
                }),
                Some(Mask {
                    data: &full,
                    strides: [0, 0, skv, 1],
                }),
            ];
            let scales = [
                ScoreScale::Div((dh as f32).sqrt()),
                ScoreScale::Mul(0.3),
                ScoreScale::None,
            ];
            for (mi, mask) in masks.iter().enumerate() {
                let scale = scales[mi];
                let want = reference(d, &q, &k, &v, scale, *mask);
                for isa in Isa::all_available() {
                    for slots in [1, 3] {
                        let mut out = vec![f32::NAN; batch * sq * hd];
                        let mut scratch = vec![0.0; slots * d.slot_len()];
                        attention(isa, d, &q, &k, &v, scale, *mask, &mut out, &mut scratch);
                        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
                            assert!(
                                (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                "{isa} case {ci} mask {mi} slots {slots}: out[{i}] = {g}, want {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// Skipping an all-zero mask (see `task`) changes no bit: the exponentials and sums of score
    /// rows (with ±0 scores, and a row whose max is a zero) are the same with the ±0 mask added
    /// as without it.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn zero_mask_skip_is_exact() {
        if !Isa::Avx512Vnni.available() {
            return;
        }
        let mask: Vec<f32> = (0..40)
            .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
            .collect();
        let mut rows: Vec<Vec<f32>> =
            vec![data(40, 7), data(40, 8).iter().map(|v| -v.abs()).collect()];
        for r in rows.iter_mut() {
            r[1] = -0.0;
            r[2] = 0.0;
        }
        rows[1][5] = -0.0; // the max of row 1 is a zero
        for scale in [ScoreScale::None, ScoreScale::Div(2.5)] {
            for row in &rows {
                let (mut a, mut b) = (row.clone(), row.clone());
                // SAFETY: avx512 checked above; each row and the mask hold 40 floats.
                let (sa, sb) = unsafe {
                    use crate::ops::softmax::x86::exp_rows_pre_avx512;
                    (
                        exp_rows_pre_avx512::<1>([a.as_mut_ptr()], 40, scale, [mask.as_ptr()]),
                        exp_rows_pre_avx512::<1>([b.as_mut_ptr()], 40, scale, [core::ptr::null()]),
                    )
                };
                assert_eq!(sa[0].to_bits(), sb[0].to_bits());
                for (x, y) in a.iter().zip(&b) {
                    assert_eq!(x.to_bits(), y.to_bits(), "{scale:?}: {x} vs {y}");
                }
            }
        }
    }

    /// A NaN key makes every output of its head NaN (all queries see it), like the unfused
    /// Softmax; the other heads are untouched.
    #[test]
    fn nan_key_poisons_its_head_only() {
        let d = AttnDims {
            batch: 1,
            heads: 2,
            sq: 40,
            skv: 37,
            dh: 16,
        };
        let hd = d.heads * d.dh;
        let q = data(d.sq * hd, 11);
        let mut k = data(d.skv * hd, 12);
        let v = data(d.skv * hd, 13);
        k[5 * hd + 3] = f32::NAN; // key 5, head 0
        for isa in Isa::all_available() {
            let mut out = vec![0.0; d.sq * hd];
            let mut scratch = vec![0.0; d.slot_len()];
            let scale = ScoreScale::Div(4.0);
            attention(isa, d, &q, &k, &v, scale, None, &mut out, &mut scratch);
            for (i, &o) in out.iter().enumerate() {
                let head = (i % hd) / d.dh;
                assert_eq!(o.is_nan(), head == 0, "{isa}: out[{i}] = {o}");
            }
        }
    }
}
