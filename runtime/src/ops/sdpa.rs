//! Scaled dot-product attention in the general form of ONNX `Attention` (opset 23–25) and
//! onnxruntime's `MultiHeadAttention`/`Attention`: any head layout (`[batch, seq, heads, d]`
//! or `[batch, heads, seq, d]`, per tensor), grouped-query heads (`kv_heads` dividing
//! `heads`), a value head size different from the query's, float or bool masks of any
//! broadcast, causal and sliding-window masks with a past offset or per-batch valid lengths
//! (`nonpad_kv_seqlen`), softcap, and the `qk_matmul_output` of each mode.
//!
//! Same structure and kernels as the fused [`super::attention`] op: one task per (batch,
//! head, block of [`MB`] query rows) packs its K/V head once (the f32 GEMM's panel layout,
//! `attention::pack_kt` / `pack_v`), computes its score
//! block with `ops::matmul::block`, exponentiates each row in place with the softmax's exp
//! (`e^(s − max)`), multiplies by V and scales each output row by `1 / Σ e`.
//!
//! Per score row, in this order (the ONNX reference's): `s·scale`; `cap·tanh(s / cap)` with a
//! softcap; `+ bias` where the bias is the float mask (or 0 / −inf for a bool mask; −inf past
//! the mask's last column) plus −inf at the positions the causal, window and valid-length
//! rules exclude. A row whose bias is −inf everywhere has no key to attend: its probabilities
//! and its output are 0 (the ONNX rule), not NaN.

use super::attention::{MB, SLOTS, pack_kt, pack_v};
use super::matmul::{SNR, block};
use crate::isa::Isa;

/// Where a tensor's head rows are: element `c` of row `i` of head `h` of batch `b` is at
/// `b·batch + h·head + i·row + c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub batch: usize,
    pub head: usize,
    pub row: usize,
}

impl Strides {
    /// `[batch, seq, heads, d]` (a 3-D `[batch, seq, heads·d]` tensor).
    pub const fn bshd(seq: usize, heads: usize, d: usize) -> Strides {
        Strides {
            batch: seq * heads * d,
            head: d,
            row: heads * d,
        }
    }
    /// `[batch, heads, seq, d]`.
    pub const fn bhsd(heads: usize, seq: usize, d: usize) -> Strides {
        Strides {
            batch: heads * seq * d,
            head: seq * d,
            row: d,
        }
    }
    fn at(&self, b: usize, h: usize, i: usize) -> usize {
        b * self.batch + h * self.head + i * self.row
    }
}

/// Sizes of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdpaDims {
    pub batch: usize,
    pub heads: usize,
    /// K/V heads; query head `h` reads K/V head `h / (heads / kv_heads)`.
    pub kv_heads: usize,
    pub sq: usize,
    pub skv: usize,
    /// Query/key head size.
    pub dk: usize,
    /// Value (and output) head size.
    pub dv: usize,
}

impl SdpaDims {
    /// f32 scratch one task slot needs: packed K^T, packed V, a score block and an output
    /// block.
    pub const fn slot_len(&self) -> usize {
        let (pk, pd) = (self.skv.div_ceil(SNR) * SNR, self.dv.div_ceil(SNR) * SNR);
        pk * self.dk + pd * self.skv + MB * self.skv + MB * self.dv
    }
    /// Scratch for [`SLOTS`] task slots (what codegen allocates).
    pub const fn scratch_len(&self) -> usize {
        self.slot_len() * SLOTS
    }
}

/// The mask's values.
#[derive(Clone, Copy, Debug)]
pub enum MaskData<'a> {
    /// Added to the scores.
    F32(&'a [f32]),
    /// `true` attends, `false` is −inf.
    Bool(&'a [bool]),
}

/// A mask broadcast to `[batch, heads, sq, cols]` by strides (0 on broadcast dims); key
/// columns at or past `cols` are −inf (the ONNX rule for a mask shorter than the keys).
#[derive(Clone, Copy, Debug)]
pub struct SdpaMask<'a> {
    pub data: MaskData<'a>,
    pub strides: [usize; 4],
    pub cols: usize,
}

/// What `qk_matmul_output` holds (`[batch, heads, sq, skv]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkMode {
    /// The scaled (and softcapped) scores: modes 0 and 1 of the ONNX reference.
    Scores,
    /// Plus the bias (mode 2).
    Biased,
    /// The softmax probabilities (mode 3).
    Probs,
}

/// Options of one call.
#[derive(Clone, Copy, Debug)]
pub struct SdpaOpts<'a> {
    pub scale: f32,
    /// `cap·tanh(s / cap)` when > 0.
    pub softcap: f32,
    pub mask: Option<SdpaMask<'a>>,
    /// Query `i` attends key `j` only if `j ≤ i + offset`.
    pub causal: bool,
    /// Sliding window: `i + offset − j ≤ left` and `j − (i + offset) ≤ right` (−1: unbounded).
    pub left: i64,
    pub right: i64,
    /// The past length (the offset of query 0 among the keys) when `nonpad` is None.
    pub past: usize,
    /// Valid keys per batch (`nonpad_kv_seqlen`): keys from `nonpad[b]` on are excluded and
    /// the offset is `nonpad[b] − sq`.
    pub nonpad: Option<&'a [i64]>,
}

/// The layouts of Q, K, V and the output.
#[derive(Clone, Copy, Debug)]
pub struct SdpaLayout {
    pub q: Strides,
    pub k: Strides,
    pub v: Strides,
    pub out: Strides,
}

/// A pointer shared by tasks that write disjoint parts of its buffer.
#[derive(Clone, Copy)]
struct SharedPtr(*mut f32);
// SAFETY: tasks write disjoint (batch, head, row block) regions of the output and of the
// qk output (see `sdpa`), and both buffers outlive the parallel section (borrowed for the
// whole call).
unsafe impl Send for SharedPtr {}
// SAFETY: as above.
unsafe impl Sync for SharedPtr {}

/// Attention (see the module docs) of `q`, `k`, `v` in layout `l` into `out`, and the score
/// rows into `qk` (`[batch, heads, sq, skv]`) if given. `scratch` holds at least one slot of
/// `d.slot_len()` floats; with several slots, tasks run on up to that many threads.
///
/// Panics if a slice is shorter than the dims require or `kv_heads` does not divide `heads`.
#[allow(clippy::too_many_arguments)]
pub fn sdpa(
    isa: Isa,
    d: SdpaDims,
    l: SdpaLayout,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: SdpaOpts<'_>,
    out: &mut [f32],
    mut qk: Option<(QkMode, &mut [f32])>,
    scratch: &mut [f32],
) {
    let SdpaDims {
        batch,
        heads,
        kv_heads,
        sq,
        skv,
        dk,
        dv,
    } = d;
    assert!(
        kv_heads > 0 && heads.is_multiple_of(kv_heads),
        "sdpa: kv_heads"
    );
    if batch * heads * sq == 0 {
        return;
    }
    let end = |s: &Strides, h: usize, rows: usize, w: usize| {
        s.at(batch - 1, h - 1, rows.saturating_sub(1)) + w
    };
    assert!(q.len() >= end(&l.q, heads, sq, dk), "sdpa: q too short");
    assert!(
        out.len() >= end(&l.out, heads, sq, dv),
        "sdpa: out too short"
    );
    if skv > 0 {
        assert!(k.len() >= end(&l.k, kv_heads, skv, dk), "sdpa: k too short");
        assert!(v.len() >= end(&l.v, kv_heads, skv, dv), "sdpa: v too short");
    }
    if let Some((_, qk)) = &qk {
        assert!(qk.len() >= batch * heads * sq * skv, "sdpa: qk too short");
    }
    if let Some(m) = &o.mask {
        let [sb, sh, si, sj] = m.strides;
        let cols = m.cols.min(skv);
        let last =
            (batch - 1) * sb + (heads - 1) * sh + (sq - 1) * si + cols.saturating_sub(1) * sj;
        let len = match m.data {
            MaskData::F32(x) => x.len(),
            MaskData::Bool(x) => x.len(),
        };
        assert!(cols == 0 || len > last, "sdpa: mask too short");
    }
    if let Some(np) = o.nonpad {
        assert!(np.len() >= batch, "sdpa: nonpad_kv_seqlen too short");
    }
    if skv == 0 || dv == 0 {
        // No key to attend: every row is fully masked, its output 0.
        for b in 0..batch {
            for h in 0..heads {
                for i in 0..sq {
                    let at = l.out.at(b, h, i);
                    out[at..at + dv].fill(0.0);
                }
            }
        }
        return;
    }
    let slot = d.slot_len();
    let slots = scratch.len() / slot;
    assert!(slots >= 1, "sdpa: scratch too short");
    let isa = isa.resolve();
    let row_blocks = sq.div_ceil(MB);
    let tasks = batch * heads * row_blocks;
    let n = crate::par::pieces(tasks, 1).min(slots);
    let per = tasks.div_ceil(n);
    let outp = SharedPtr(out.as_mut_ptr());
    let qk_mode = qk.as_ref().map(|(m, _)| *m);
    let qkp = SharedPtr(
        qk.as_mut()
            .map_or(core::ptr::null_mut(), |(_, x)| x.as_mut_ptr()),
    );
    let run = |piece: usize, s: &mut [f32]| {
        let mut packed = usize::MAX;
        for t in piece * per..tasks.min((piece + 1) * per) {
            let (bh, rb) = (t / row_blocks, t % row_blocks);
            let (b, h) = (bh / heads, bh % heads);
            let g = h / (heads / kv_heads);
            let kv = b * kv_heads + g;
            let tk = Task {
                b,
                h,
                g,
                rb,
                pack: packed != kv,
            };
            task(isa, &d, &l, q, k, v, &o, tk, s, outp, qk_mode, qkp);
            packed = kv;
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

/// One task: batch `b`, query head `h` (K/V head `g`), row block `rb`; packs K/V first if
/// `pack`.
#[derive(Clone, Copy)]
struct Task {
    b: usize,
    h: usize,
    g: usize,
    rb: usize,
    pack: bool,
}

#[allow(clippy::too_many_arguments)]
fn task(
    isa: Isa,
    d: &SdpaDims,
    l: &SdpaLayout,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &SdpaOpts<'_>,
    t: Task,
    slot: &mut [f32],
    out: SharedPtr,
    qk_mode: Option<QkMode>,
    qk: SharedPtr,
) {
    let SdpaDims {
        heads,
        sq,
        skv,
        dk,
        dv,
        ..
    } = *d;
    let Task { b, h, g, rb, pack } = t;
    let (pk, pd) = (skv.div_ceil(SNR) * SNR, dv.div_ceil(SNR) * SNR);
    let (kt, rest) = slot.split_at_mut(pk * dk);
    let (vp, rest) = rest.split_at_mut(pd * skv);
    let (sc, ob) = rest.split_at_mut(MB * skv);
    if pack {
        pack_kt(k, &|j| l.k.at(b, g, j), skv, dk, kt);
        pack_v(v, &|j| l.v.at(b, g, j), skv, dv, vp);
    }
    let i0 = rb * MB;
    let mb = MB.min(sq - i0);
    let s = &mut sc[..mb * skv];
    block(
        isa,
        mb,
        dk,
        &q[l.q.at(b, h, i0)..],
        l.q.row,
        kt,
        skv,
        None,
        false,
        false,
        s,
        skv,
    );
    let mut sums = [0.0f32; MB];
    for (r, row) in s.chunks_exact_mut(skv).enumerate() {
        let i = i0 + r;
        // SAFETY (both qk rows): row i of head h of batch b of the `[batch, heads, sq, skv]`
        // qk output (length asserted in `sdpa`); only this task writes it.
        let qk_row = |m: QkMode| {
            (qk_mode == Some(m)).then(|| unsafe {
                core::slice::from_raw_parts_mut(qk.0.add(((b * heads + h) * sq + i) * skv), skv)
            })
        };
        score_row(row, o);
        if let Some(dst) = qk_row(QkMode::Scores) {
            dst.copy_from_slice(row);
        }
        let any = bias_row(row, o, b, h, i, sq);
        if let Some(dst) = qk_row(QkMode::Biased) {
            dst.copy_from_slice(row);
        }
        sums[r] = if any {
            super::softmax::exp_row_inplace(isa, row)
        } else {
            row.fill(0.0);
            1.0
        };
        if let Some(dst) = qk_row(QkMode::Probs) {
            let rcp = 1.0 / sums[r];
            for (y, &x) in dst.iter_mut().zip(row.iter()) {
                *y = x * rcp;
            }
        }
    }
    let ob = &mut ob[..mb * dv];
    block(isa, mb, skv, s, skv, vp, dv, None, false, false, ob, dv);
    for (r, row) in ob.chunks_exact(dv).enumerate() {
        let rcp = 1.0 / sums[r];
        let dst = l.out.at(b, h, i0 + r);
        // SAFETY: `dst..dst + dv` is inside `out` (asserted in `sdpa`), and only this task
        // writes it: tasks own distinct (b, h, row block) triples, which map to disjoint rows.
        let dst = unsafe { core::slice::from_raw_parts_mut(out.0.add(dst), dv) };
        for (y, &x) in dst.iter_mut().zip(row) {
            *y = x * rcp;
        }
    }
}

/// `s·scale`, then the softcap.
fn score_row(row: &mut [f32], o: &SdpaOpts<'_>) {
    let c = o.scale;
    row.iter_mut().for_each(|x| *x *= c);
    if o.softcap > 0.0 {
        let cap = o.softcap;
        row.iter_mut()
            .for_each(|x| *x = super::math::tanh(*x / cap) * cap);
    }
}

/// Adds the bias of row `i` (mask, causal, window, valid length); returns whether any key
/// keeps a bias above −inf.
fn bias_row(row: &mut [f32], o: &SdpaOpts<'_>, b: usize, h: usize, i: usize, sq: usize) -> bool {
    let skv = row.len();
    // The first and one past the last key the structural rules allow.
    let (mut lo, mut hi) = (0i64, skv as i64);
    let offset = match o.nonpad {
        Some(np) => {
            hi = hi.min(np[b]);
            np[b] - sq as i64
        }
        None => o.past as i64,
    };
    let p = i as i64 + offset;
    if o.causal {
        hi = hi.min(p + 1);
    }
    if o.left >= 0 {
        lo = lo.max(p - o.left);
    }
    if o.right >= 0 {
        hi = hi.min(p + o.right + 1);
    }
    let (lo, hi) = (
        lo.clamp(0, skv as i64) as usize,
        hi.clamp(0, skv as i64) as usize,
    );
    let hi = hi.max(lo);
    row[..lo].fill(f32::NEG_INFINITY);
    row[hi..].fill(f32::NEG_INFINITY);
    let Some(m) = &o.mask else {
        return lo < hi;
    };
    let [sb, sh, si, sj] = m.strides;
    let base = b * sb + h * sh + i * si;
    let cols = m.cols.min(hi);
    let mut any = false;
    match m.data {
        MaskData::F32(x) => {
            for (j, s) in row.iter_mut().enumerate().take(cols).skip(lo) {
                let a = x[base + j * sj];
                *s += a;
                any |= a != f32::NEG_INFINITY;
            }
        }
        MaskData::Bool(x) => {
            for (j, s) in row.iter_mut().enumerate().take(cols).skip(lo) {
                if x[base + j * sj] {
                    any = true;
                } else {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
    }
    row[cols.max(lo)..hi].fill(f32::NEG_INFINITY);
    any
}

/// The key/value cache: `present[b, h] = concat(past[b, h], cur[b, h])` along the sequence,
/// `present` `[batch, heads, past_len + cur_len, d]`, `past` `[batch, heads, past_len, d]`,
/// `cur` in layout `cs`.
///
/// Panics if a slice is shorter than the dims require.
#[allow(clippy::too_many_arguments)]
pub fn kv_cache(
    past: Option<&[f32]>,
    cur: &[f32],
    cs: Strides,
    batch: usize,
    heads: usize,
    past_len: usize,
    cur_len: usize,
    d: usize,
    present: &mut [f32],
) {
    let total = past_len + cur_len;
    assert_eq!(
        present.len(),
        batch * heads * total * d,
        "kv_cache: present length"
    );
    let pl = if past.is_some() { past_len } else { 0 };
    assert_eq!(pl, past_len, "kv_cache: past_len without past");
    for b in 0..batch {
        for h in 0..heads {
            let dst = &mut present[(b * heads + h) * total * d..][..total * d];
            let (pd, cd) = dst.split_at_mut(past_len * d);
            if let Some(p) = past {
                pd.copy_from_slice(&p[(b * heads + h) * past_len * d..][..past_len * d]);
            }
            for (i, row) in cd.chunks_exact_mut(d).enumerate() {
                let at = cs.at(b, h, i);
                row.copy_from_slice(&cur[at..at + d]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
