//! ONNX `LSTM`, `GRU` and `RNN` (float), all directions, both layouts, sequence lengths,
//! initial states, peepholes, clip and the spec's activation functions.
//!
//! Why this shape: the input projection `X·Wᵀ` of every timestep is one [`sgemm`] per
//! direction (M = seq·batch, the bulk of the work for short hidden sizes), so only `h·Rᵀ`
//! (M = batch) and the gate arithmetic stay inside the time loop. Weights come packed
//! ([`PackedF32`], done at compile time for constant weights) or raw (`[G·H][K]` as ONNX stores
//! them; packed here into the scratch buffer, one direction at a time). The GRU's recurrent
//! weights are two packed matrices, `[z r]` and `h`, because with `linear_before_reset = 0`
//! the `h` product takes `r ⊙ h` and must wait for `r`.
//!
//! Semantics follow onnxruntime where the spec is silent: gate pre-activations are clipped
//! to `[-clip, clip]` before their activation; positions at or beyond a batch entry's sequence
//! length are 0 in `Y` and its state stops there (`Y_h`/`Y_c` hold the last step computed); a
//! reverse direction runs each entry from its own last valid step.
use super::math;
use super::matmul::{FloatAct, PackedF32, SNR, sgemm};
use crate::error::Error;
use crate::isa::Isa;

/// An activation of the `activations` attribute (alpha/beta already resolved).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Sigmoid,
    Tanh,
    Relu,
    Affine(f32, f32),
    LeakyRelu(f32),
    ThresholdedRelu(f32),
    ScaledTanh(f32, f32),
    HardSigmoid(f32, f32),
    Elu(f32),
    Softsign,
    Softplus,
}

impl Act {
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Act::Sigmoid => math::sigmoid(x),
            Act::Tanh => math::tanh(x),
            Act::Relu => math::relu(x),
            Act::Affine(a, b) => a * x + b,
            Act::LeakyRelu(a) => math::leaky_relu(x, a),
            Act::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            Act::ScaledTanh(a, b) => a * math::tanh(b * x),
            Act::HardSigmoid(a, b) => math::hard_sigmoid(x, a, b),
            Act::Elu(a) => math::elu(x, a),
            Act::Softsign => math::softsign(x),
            Act::Softplus => math::softplus(x),
        }
    }
}

/// The cell type and its own attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Gates `i o f c`; `input_forget` couples the forget gate to `1 − i`.
    Lstm { input_forget: bool },
    /// Gates `z r h`.
    Gru { linear_before_reset: bool },
    /// One gate.
    Rnn,
}

impl Cell {
    /// Gates per hidden unit (rows of W per direction are `gates·hidden`).
    pub const fn gates(self) -> usize {
        match self {
            Cell::Lstm { .. } => 4,
            Cell::Gru { .. } => 3,
            Cell::Rnn => 1,
        }
    }
    /// Activations per direction (`f g h`, `f g`, `f`).
    pub const fn acts(self) -> usize {
        match self {
            Cell::Lstm { .. } => 3,
            Cell::Gru { .. } => 2,
            Cell::Rnn => 1,
        }
    }
    /// Packed recurrent matrices per direction (GRU: `[z r]` and `h`).
    pub const fn r_parts(self) -> usize {
        match self {
            Cell::Gru { .. } => 2,
            _ => 1,
        }
    }
    /// The columns of recurrent part `p` (see [`Cell::r_parts`]).
    pub const fn r_cols(self, p: usize, hidden: usize) -> usize {
        match self {
            Cell::Gru { .. } if p == 0 => 2 * hidden,
            Cell::Gru { .. } => hidden,
            _ => self.gates() * hidden,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    pub const fn count(self) -> usize {
        match self {
            Direction::Bidirectional => 2,
            _ => 1,
        }
    }
}

/// The node's attributes and dims.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    pub cell: Cell,
    pub direction: Direction,
    /// `layout = 1`: X, Y and the states are batch-major.
    pub batch_first: bool,
    pub seq: usize,
    pub batch: usize,
    pub input: usize,
    pub hidden: usize,
    /// `cell.acts()` per direction, direction 0 first.
    pub acts: &'a [Act],
    pub clip: Option<f32>,
}

/// The weights: packed per direction (`w[d]`; `r[d·r_parts + p]`), or as ONNX stores them
/// (`W [dirs][G·H][input]`, `R [dirs][G·H][hidden]`), then packed into the scratch.
#[derive(Clone, Copy, Debug)]
pub enum Weights<'a> {
    Packed {
        w: &'a [PackedF32<'a>],
        r: &'a [PackedF32<'a>],
    },
    Raw {
        w: &'a [f32],
        r: &'a [f32],
    },
}

/// The optional inputs, as ONNX lays them out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra<'a> {
    /// `[dirs][2·G·H]`: `Wb` then `Rb`.
    pub b: Option<&'a [f32]>,
    pub seq_lens: Option<&'a [i32]>,
    pub h0: Option<&'a [f32]>,
    pub c0: Option<&'a [f32]>,
    /// LSTM peepholes `[dirs][3·H]` (`i o f`).
    pub p: Option<&'a [f32]>,
}

/// The outputs the node has (absent ones are not computed).
pub struct Outputs<'a> {
    pub y: Option<&'a mut [f32]>,
    pub y_h: Option<&'a mut [f32]>,
    pub y_c: Option<&'a mut [f32]>,
}

fn padded(n: usize) -> usize {
    n.div_ceil(SNR) * SNR
}

/// f32 elements of scratch [`run`] needs (`raw`: the weights come unpacked).
pub const fn scratch_len(
    cell: Cell,
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    raw: bool,
) -> usize {
    let gh = cell.gates() * hidden;
    let mut n = seq * batch * gh + batch * (gh + 4 * hidden);
    if raw {
        n += packed_len(cell, input, hidden);
    }
    n
}

/// Packed W and R of one direction.
const fn packed_len(cell: Cell, input: usize, hidden: usize) -> usize {
    let gh = cell.gates() * hidden;
    let mut n = gh.div_ceil(SNR) * SNR * input;
    let mut p = 0;
    while p < cell.r_parts() {
        n += cell.r_cols(p, hidden).div_ceil(SNR) * SNR * hidden;
        p += 1;
    }
    n
}

/// Packs rows `rows` of the row-major `[n][k]` matrix `m` (i.e. `Bᵀ`) as a [`PackedF32`]
/// `[K][N]` into `out` (`padded(n)·k` elements), zero padded.
fn pack_rows(m: &[f32], k: usize, n: usize, out: &mut [f32]) {
    for (p, panel) in out[..padded(n) * k].chunks_exact_mut(k * SNR).enumerate() {
        for (kk, row) in panel.chunks_exact_mut(SNR).enumerate() {
            for (j, d) in row.iter_mut().enumerate() {
                let col = p * SNR + j;
                *d = if col < n { m[col * k + kk] } else { 0.0 };
            }
        }
    }
}

/// Runs the recurrent op. `x` is `[seq][batch][input]` (`[batch][seq][input]` when
/// `batch_first`); `Y` `[seq][dirs][batch][H]` (`[batch][seq][dirs][H]`), `Y_h`/`Y_c`
/// `[dirs][batch][H]` (`[batch][dirs][H]`). Returns `Err` for a sequence length outside
/// `0..=seq`. Panics if a slice is shorter than its dims say (codegen sizes them).
#[allow(clippy::result_large_err)]
pub fn run(
    isa: Isa,
    s: &Spec<'_>,
    x: &[f32],
    weights: Weights<'_>,
    extra: &Extra<'_>,
    mut out: Outputs<'_>,
    scratch: &mut [f32],
) -> Result<(), Error> {
    if let Some(lens) = extra.seq_lens
        && let Some(&bad) = lens[..s.batch]
            .iter()
            .find(|&&l| l < 0 || l as usize > s.seq)
    {
        return Err(Error::IndexOutOfRange {
            value: "sequence_lens",
            node: "recurrent",
            index: bad as i64,
            len: s.seq,
        });
    }
    let raw = matches!(weights, Weights::Raw { .. });
    let need = scratch_len(s.cell, s.seq, s.batch, s.input, s.hidden, raw);
    assert!(scratch.len() >= need, "recurrent: scratch too short");
    assert!(
        x.len() >= s.seq * s.batch * s.input,
        "recurrent: x too short"
    );
    if let Some(y) = out.y.as_deref_mut() {
        y.fill(0.0);
    }
    let dirs = s.direction.count();
    let (packed, work) = scratch.split_at_mut(if raw {
        packed_len(s.cell, s.input, s.hidden)
    } else {
        0
    });
    for d in 0..dirs {
        let reverse = s.direction == Direction::Reverse || d == 1;
        match weights {
            Weights::Packed { w, r } => {
                let rp = s.cell.r_parts();
                direction(
                    isa,
                    s,
                    d,
                    reverse,
                    x,
                    w[d],
                    &r[d * rp..],
                    extra,
                    &mut out,
                    work,
                )
            }
            Weights::Raw { w, r } => {
                let (w, r) = pack_direction(s, d, w, r, packed);
                direction(isa, s, d, reverse, x, w, &r, extra, &mut out, work)
            }
        }
    }
    Ok(())
}

/// Packs direction `d`'s raw W and R into `buf`.
fn pack_direction<'b>(
    s: &Spec<'_>,
    d: usize,
    w: &[f32],
    r: &[f32],
    buf: &'b mut [f32],
) -> (PackedF32<'b>, [PackedF32<'b>; 2]) {
    let (h, gh) = (s.hidden, s.cell.gates() * s.hidden);
    let (pw, mut rest) = buf.split_at_mut(padded(gh) * s.input);
    pack_rows(
        &w[d * gh * s.input..(d + 1) * gh * s.input],
        s.input,
        gh,
        pw,
    );
    let rd = &r[d * gh * h..(d + 1) * gh * h];
    let mut parts: [&[f32]; 2] = [&[], &[]];
    let mut row0 = 0;
    for (p, part) in parts.iter_mut().enumerate().take(s.cell.r_parts()) {
        let cols = s.cell.r_cols(p, h);
        let (pr, tail) = rest.split_at_mut(padded(cols) * h);
        pack_rows(&rd[row0 * h..(row0 + cols) * h], h, cols, pr);
        row0 += cols;
        *part = pr;
        rest = tail;
    }
    let mk = |k, n, data| PackedF32 {
        k,
        n,
        data,
        bias: None,
    };
    let r = [
        mk(h, s.cell.r_cols(0, h), parts[0]),
        mk(h, s.cell.r_cols(1, h), parts[1]),
    ];
    (mk(s.input, gh, &*pw), r)
}

/// Index of row `(t, b)` in X (and in the projected gates).
fn xrow(s: &Spec<'_>, t: usize, b: usize) -> usize {
    if s.batch_first {
        b * s.seq + t
    } else {
        t * s.batch + b
    }
}

/// Offset of state `(d, b)` in `initial_h`/`Y_h` and the like.
fn state_at(s: &Spec<'_>, d: usize, b: usize) -> usize {
    let dirs = s.direction.count();
    let i = if s.batch_first {
        b * dirs + d
    } else {
        d * s.batch + b
    };
    i * s.hidden
}

/// One direction: the input projection as one GEMM, then the time loop.
#[allow(clippy::too_many_arguments)]
fn direction(
    isa: Isa,
    s: &Spec<'_>,
    d: usize,
    reverse: bool,
    x: &[f32],
    w: PackedF32<'_>,
    r: &[PackedF32<'_>],
    extra: &Extra<'_>,
    out: &mut Outputs<'_>,
    work: &mut [f32],
) {
    let (h, gh, batch) = (s.hidden, s.cell.gates() * s.hidden, s.batch);
    let (gx, rest) = work.split_at_mut(s.seq * batch * gh);
    let (gr, rest) = rest.split_at_mut(batch * gh);
    let (hs, rest) = rest.split_at_mut(batch * h);
    let (cs, rest) = rest.split_at_mut(batch * h);
    let (rh, rest) = rest.split_at_mut(batch * h);
    let hh = &mut rest[..batch * h];
    sgemm(isa, s.seq * batch, x, s.input, w, FloatAct::None, gx, gh);
    add_bias(s, d, extra.b, gx);
    for b in 0..batch {
        let o = state_at(s, d, b);
        let init = |v: Option<&[f32]>, dst: &mut [f32]| match v {
            Some(v) => dst.copy_from_slice(&v[o..o + h]),
            None => dst.fill(0.0),
        };
        init(extra.h0, &mut hs[b * h..(b + 1) * h]);
        init(extra.c0, &mut cs[b * h..(b + 1) * h]);
    }
    let acts = &s.acts[d * s.cell.acts()..(d + 1) * s.cell.acts()];
    let rb = extra.b.map(|b| &b[d * 2 * gh + gh..(d + 1) * 2 * gh]);
    let peep = extra.p.map(|p| &p[d * 3 * h..(d + 1) * 3 * h]);
    let len = |b: usize| extra.seq_lens.map_or(s.seq, |l| l[b] as usize);
    for step in 0..s.seq {
        // Rows whose sequence has ended still go through the GEMM (M stays one block); their
        // state is left alone below.
        match s.cell {
            Cell::Gru {
                linear_before_reset,
            } => {
                let act = FloatAct::None;
                sgemm(isa, batch, hs, h, r[0], act, gr, gh);
                if linear_before_reset {
                    sgemm(isa, batch, hs, h, r[1], act, &mut gr[2 * h..], gh);
                }
            }
            _ => sgemm(isa, batch, hs, h, r[0], FloatAct::None, gr, gh),
        }
        let mut lbr0 = false;
        for b in 0..batch {
            let l = len(b);
            if step >= l {
                continue;
            }
            let t = if reverse { l - 1 - step } else { step };
            let g = &gx[xrow(s, t, b) * gh..][..gh];
            let gb = &mut gr[b * gh..(b + 1) * gh];
            let (hb, cb) = (&mut hs[b * h..(b + 1) * h], &mut cs[b * h..(b + 1) * h]);
            match s.cell {
                Cell::Lstm { input_forget } => {
                    lstm_cell(s, acts, input_forget, peep, g, gb, hb, cb)
                }
                Cell::Rnn => {
                    for j in 0..h {
                        hb[j] = acts[0].apply(clip(s, g[j] + gb[j]));
                    }
                }
                Cell::Gru {
                    linear_before_reset: true,
                } => gru_cell(s, acts, g, gb, None, rb.map(|r| &r[2 * h..]), hb),
                Cell::Gru { .. } => {
                    // Phase 1: z and r, and r ⊙ h for the h gate's product.
                    lbr0 = true;
                    let rhb = &mut rh[b * h..(b + 1) * h];
                    for j in 0..h {
                        gb[j] = acts[0].apply(clip(s, g[j] + gb[j]));
                        let rv = acts[0].apply(clip(s, g[h + j] + gb[h + j]));
                        rhb[j] = rv * hb[j];
                    }
                }
            }
        }
        if lbr0 {
            sgemm(isa, batch, rh, h, r[1], FloatAct::None, hh, h);
            for b in (0..batch).filter(|&b| step < len(b)) {
                let l = len(b);
                let t = if reverse { l - 1 - step } else { step };
                let g = &gx[xrow(s, t, b) * gh..][..gh];
                let gb = &mut gr[b * gh..(b + 1) * gh];
                let hb = &mut hs[b * h..(b + 1) * h];
                gru_cell(s, acts, g, gb, Some(&hh[b * h..(b + 1) * h]), None, hb);
            }
        }
        if let Some(y) = out.y.as_deref_mut() {
            let dirs = s.direction.count();
            for b in (0..batch).filter(|&b| step < len(b)) {
                let l = len(b);
                let t = if reverse { l - 1 - step } else { step };
                let i = if s.batch_first {
                    (b * s.seq + t) * dirs + d
                } else {
                    (t * dirs + d) * batch + b
                };
                y[i * h..(i + 1) * h].copy_from_slice(&hs[b * h..(b + 1) * h]);
            }
        }
    }
    for b in 0..batch {
        let o = state_at(s, d, b);
        if let Some(yh) = out.y_h.as_deref_mut() {
            yh[o..o + h].copy_from_slice(&hs[b * h..(b + 1) * h]);
        }
        if let Some(yc) = out.y_c.as_deref_mut() {
            yc[o..o + h].copy_from_slice(&cs[b * h..(b + 1) * h]);
        }
    }
}

/// Adds `Wb + Rb` to the projected gates; for a GRU with `linear_before_reset` the `h` gate's
/// `Rb` stays out (it is added inside `r ⊙ (h·Rhᵀ + Rbh)`).
fn add_bias(s: &Spec<'_>, d: usize, b: Option<&[f32]>, gx: &mut [f32]) {
    let Some(b) = b else { return };
    let gh = s.cell.gates() * s.hidden;
    let (wb, rb) = b[d * 2 * gh..(d + 1) * 2 * gh].split_at(gh);
    let keep_rbh = matches!(
        s.cell,
        Cell::Gru {
            linear_before_reset: true
        }
    );
    let mut bias = [0.0f32; 64];
    for c0 in (0..gh).step_by(64) {
        let n = 64.min(gh - c0);
        for (j, bv) in bias[..n].iter_mut().enumerate() {
            let col = c0 + j;
            let with_r = !(keep_rbh && col >= 2 * s.hidden);
            *bv = wb[col] + if with_r { rb[col] } else { 0.0 };
        }
        for row in gx.chunks_exact_mut(gh) {
            for (v, &bv) in row[c0..c0 + n].iter_mut().zip(&bias[..n]) {
                *v += bv;
            }
        }
    }
}

#[inline]
fn clip(s: &Spec<'_>, v: f32) -> f32 {
    match s.clip {
        Some(c) => v.clamp(-c, c),
        None => v,
    }
}

/// One LSTM step for one batch row: `g` the projected input gates, `gr` `h·Rᵀ`.
#[allow(clippy::too_many_arguments)]
fn lstm_cell(
    s: &Spec<'_>,
    acts: &[Act],
    input_forget: bool,
    peep: Option<&[f32]>,
    g: &[f32],
    gr: &[f32],
    hb: &mut [f32],
    cb: &mut [f32],
) {
    let h = s.hidden;
    let (f, gact, hact) = (acts[0], acts[1], acts[2]);
    let pe = |k: usize, j: usize| peep.map_or(0.0, |p| p[k * h + j]);
    for j in 0..h {
        let c_prev = cb[j];
        let i = f.apply(clip(s, g[j] + gr[j] + pe(0, j) * c_prev));
        let fg = if input_forget {
            1.0 - i
        } else {
            f.apply(clip(s, g[2 * h + j] + gr[2 * h + j] + pe(2, j) * c_prev))
        };
        let cc = gact.apply(clip(s, g[3 * h + j] + gr[3 * h + j]));
        let c = fg * c_prev + i * cc;
        let o = f.apply(clip(s, g[h + j] + gr[h + j] + pe(1, j) * c));
        cb[j] = c;
        hb[j] = o * hact.apply(c);
    }
}

/// One GRU step for one batch row. `hh`: `(r ⊙ h)·Rhᵀ` when `linear_before_reset = 0` (then
/// `gr[..h]` already holds z); otherwise `gr` is `h·Rᵀ` and `rbh` the h gate's recurrent bias.
fn gru_cell(
    s: &Spec<'_>,
    acts: &[Act],
    g: &[f32],
    gr: &[f32],
    hh: Option<&[f32]>,
    rbh: Option<&[f32]>,
    hb: &mut [f32],
) {
    let h = s.hidden;
    let (f, gact) = (acts[0], acts[1]);
    for j in 0..h {
        let (z, cand) = match hh {
            Some(hh) => (gr[j], g[2 * h + j] + hh[j]),
            None => {
                let z = f.apply(clip(s, g[j] + gr[j]));
                let r = f.apply(clip(s, g[h + j] + gr[h + j]));
                let rb = rbh.map_or(0.0, |b| b[j]);
                (z, g[2 * h + j] + r * (gr[2 * h + j] + rb))
            }
        };
        let c = gact.apply(clip(s, cand));
        hb[j] = (1.0 - z) * c + z * hb[j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-unit RNN with the identity (Affine 1, 0): h_t = w·x_t + r·h_{t−1} + wb + rb, by hand.
    #[test]
    fn rnn_by_hand_with_sequence_lengths_and_reverse() {
        let acts = [Act::Affine(1.0, 0.0); 2];
        let s = Spec {
            cell: Cell::Rnn,
            direction: Direction::Bidirectional,
            batch_first: false,
            seq: 3,
            batch: 2,
            input: 1,
            hidden: 1,
            acts: &acts,
            clip: None,
        };
        let x = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0]; // [t][b]
        let (w, r) = ([2.0, 1.0], [0.5, 0.25]);
        let b = [0.1, 0.0, 0.0, 0.2]; // dir 0: wb 0.1; dir 1: rb 0.2
        let lens = [3, 2];
        let extra = Extra {
            b: Some(&b),
            seq_lens: Some(&lens),
            ..Extra::default()
        };
        let (mut y, mut yh) = ([9.0f32; 12], [0.0f32; 4]);
        let mut scratch = [0.0f32; 4096];
        let outs = Outputs {
            y: Some(&mut y),
            y_h: Some(&mut yh),
            y_c: None,
        };
        let weights = Weights::Raw { w: &w, r: &r };
        run(Isa::Scalar, &s, &x, weights, &extra, outs, &mut scratch).unwrap();
        // Forward, batch 0: 2.1, 2·2+0.5·2.1+0.1 = 5.15, 6+2.575+0.1 = 8.675.
        // Forward, batch 1 (length 2): 20.1, 40+10.05+0.1 = 50.15, then 0.
        // Reverse, batch 0 from t=2: 3.2, 2+0.8+0.2 = 3.0, 1+0.75+0.2 = 1.95.
        // Reverse, batch 1 from t=1: 20.2, 10+5.05+0.2 = 15.25.
        let want = [
            2.1, 20.1, 1.95, 15.25, // t0: fwd b0 b1, rev b0 b1
            5.15, 50.15, 3.0, 20.2, // t1
            8.675, 0.0, 3.2, 0.0, // t2
        ];
        for (g, w) in y.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "y {y:?} want {want:?}");
        }
        assert_eq!(
            yh.map(|v| (v * 1000.0).round()),
            [8675.0, 50150.0, 1950.0, 15250.0]
        );
    }

    #[test]
    fn sequence_length_beyond_the_sequence_is_an_error() {
        let acts = [Act::Tanh];
        let s = Spec {
            cell: Cell::Rnn,
            direction: Direction::Forward,
            batch_first: false,
            seq: 2,
            batch: 1,
            input: 1,
            hidden: 1,
            acts: &acts,
            clip: None,
        };
        let extra = Extra {
            seq_lens: Some(&[3]),
            ..Extra::default()
        };
        let outs = Outputs {
            y: None,
            y_h: None,
            y_c: None,
        };
        let weights = Weights::Raw {
            w: &[1.0],
            r: &[1.0],
        };
        let e = run(
            Isa::Scalar,
            &s,
            &[1.0, 2.0],
            weights,
            &extra,
            outs,
            &mut [0.0; 1024],
        );
        assert!(matches!(
            e,
            Err(Error::IndexOutOfRange {
                index: 3,
                len: 2,
                ..
            })
        ));
    }
}
