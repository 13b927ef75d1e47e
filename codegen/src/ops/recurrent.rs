//! LSTM, GRU and RNN: attribute decoding, shape inference and the lowering to
//! [`KilnOp::Recurrent`] (weights packed at compile time when they are constants; emission in
//! `emit/recurrent.rs`, kernels in `kiln_runtime::ops::recurrent`).
use super::{InferCx, OpDef, OutInfo, op};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, KilnOp, Node, TensorData};
use kiln_runtime::ops::matmul::PackedF32Owned;
use kiln_runtime::ops::recurrent::{Act, Cell, Direction, scratch_len};

const NOTES: &str = "f32; forward, reverse, bidirectional; `layout` 0 and 1, `sequence_lens`, \
initial states, peepholes, `clip`, every activation of the spec, GRU's `linear_before_reset`, \
LSTM's `input_forget`, any subset of the outputs. The input projection of the whole sequence \
is one GEMM; constant weights are packed at compile time";

/// The recurrent ops (see `registry`). Emission is `KilnOp::Recurrent`'s (the lowering in
/// `passes` always applies).
pub(super) const OPS: &[OpDef] = &[
    op("LSTM", NOTES, infer, crate::emit::nodes::lowered),
    op("GRU", NOTES, infer, crate::emit::nodes::lowered),
    op("RNN", NOTES, infer, crate::emit::nodes::lowered),
];

/// A recurrent node's decoded attributes and dims.
#[derive(Clone, Debug)]
pub struct RecurrentOp {
    pub cell: Cell,
    pub direction: Direction,
    pub batch_first: bool,
    pub hidden: usize,
    pub input: usize,
    pub seq: Dim,
    pub batch: Dim,
    /// `cell.acts()` per direction.
    pub acts: Vec<Act>,
    pub clip: Option<f32>,
    /// The ONNX outputs (Y, Y_h[, Y_c]) the node declares; the scratch follows them.
    pub n_out: usize,
    /// W per direction, R per direction and part (`Cell::r_parts`), when both are constants.
    pub packed: Option<(Vec<PackedF32Owned>, Vec<PackedF32Owned>)>,
}

impl RecurrentOp {
    pub fn dirs(&self) -> usize {
        self.direction.count()
    }
    pub fn gates(&self) -> usize {
        self.cell.gates()
    }
}

/// The cell of op `name`, with its own attribute.
fn cell(n: &Node) -> Result<Cell> {
    Ok(match n.op.as_str() {
        "LSTM" => Cell::Lstm {
            input_forget: n.attr_i("input_forget")?.unwrap_or(0) != 0,
        },
        "GRU" => Cell::Gru {
            linear_before_reset: n.attr_i("linear_before_reset")?.unwrap_or(0) != 0,
        },
        _ => Cell::Rnn,
    })
}

/// The `activations` attribute with `activation_alpha`/`activation_beta` consumed in order by
/// the functions that take them (onnxruntime's rule), or the op's defaults.
fn activations(n: &Node, cell: Cell, dirs: usize) -> Result<Vec<Act>> {
    let names = match n.attr_strings("activations")? {
        Some(v) => v,
        None => {
            let d: &[&str] = match cell {
                Cell::Lstm { .. } => &["Sigmoid", "Tanh", "Tanh"],
                Cell::Gru { .. } => &["Sigmoid", "Tanh"],
                Cell::Rnn => &["Tanh"],
            };
            (0..dirs)
                .flat_map(|_| d.iter().map(|s| s.to_string()))
                .collect()
        }
    };
    if names.len() != cell.acts() * dirs {
        bail!(
            "attribute `activations` lists {} functions; {} takes {} per direction ({} in all)",
            names.len(),
            n.op,
            cell.acts(),
            cell.acts() * dirs
        );
    }
    let alphas = n.attr_floats("activation_alpha")?.unwrap_or_default();
    let betas = n.attr_floats("activation_beta")?.unwrap_or_default();
    let (mut ai, mut bi) = (alphas.iter(), betas.iter());
    let mut a = |d: f32| ai.next().copied().unwrap_or(d);
    let mut b = |d: f32| bi.next().copied().unwrap_or(d);
    names
        .iter()
        .map(|name| {
            Ok(match name.to_ascii_lowercase().as_str() {
                "sigmoid" => Act::Sigmoid,
                "tanh" => Act::Tanh,
                "relu" => Act::Relu,
                "affine" => Act::Affine(a(1.0), b(0.0)),
                "leakyrelu" => Act::LeakyRelu(a(0.01)),
                "thresholdedrelu" => Act::ThresholdedRelu(a(1.0)),
                "scaledtanh" => Act::ScaledTanh(a(1.0), b(1.0)),
                "hardsigmoid" => Act::HardSigmoid(a(0.2), b(0.5)),
                "elu" => Act::Elu(a(1.0)),
                "softsign" => Act::Softsign,
                "softplus" => Act::Softplus,
                other => unsupported!("activation function `{other}` is not supported"),
            })
        })
        .collect()
}

/// Decodes and checks the node (shapes of every input), without the packed weights.
pub(crate) fn decode(g: &Graph, n: &Node) -> Result<RecurrentOp> {
    let cell = cell(n)?;
    let direction = match super::vision::attr_str(n, "direction")?.as_deref() {
        None | Some("forward") => Direction::Forward,
        Some("reverse") => Direction::Reverse,
        Some("bidirectional") => Direction::Bidirectional,
        Some(d) => bail!("attribute `direction` is `{d}`; forward, reverse or bidirectional"),
    };
    let dirs = direction.count();
    let batch_first = match n.attr_i("layout")?.unwrap_or(0) {
        0 => false,
        1 => true,
        l => bail!("attribute `layout` is {l}; 0 or 1"),
    };
    let clip = n.attr_f("clip")?;
    if clip.is_some_and(|c| c.is_nan() || c < 0.0) {
        bail!("attribute `clip` must be a non-negative number");
    }
    let x = &g.values[super::req(n, 0)?];
    let (w, r) = (&g.values[super::req(n, 1)?], &g.values[super::req(n, 2)?]);
    for (v, what) in [(x, "X"), (w, "W"), (r, "R")] {
        if v.dtype != DType::F32 {
            unsupported!(
                "{} on {what} of {:?} is not supported (float32 only)",
                n.op,
                v.dtype
            );
        }
        if v.shape.len() != 3 {
            bail!("{what} must be 3-D, found {}", g.show_shape(&v.shape));
        }
    }
    let ws = super::static_dims(g, &w.shape, "W")?;
    let rs = super::static_dims(g, &r.shape, "R")?;
    let gates = cell.gates();
    let hidden = match n.attr_i("hidden_size")? {
        Some(h) if h > 0 => h as usize,
        Some(h) => bail!("attribute `hidden_size` is {h}; it must be positive"),
        None => rs[2],
    };
    let input = ws[2];
    if ws[..2] != [dirs, gates * hidden] || rs != [dirs, gates * hidden, hidden] {
        bail!(
            "W {} and R {} do not match {dirs} direction(s) × {gates} gates × hidden_size {hidden}",
            g.show_shape(&w.shape),
            g.show_shape(&r.shape)
        );
    }
    let (seq, batch) = if batch_first {
        (x.shape[1].clone(), x.shape[0].clone())
    } else {
        (x.shape[0].clone(), x.shape[1].clone())
    };
    if x.shape[2] != input {
        bail!(
            "X {} does not match W's input size {input}",
            g.show_shape(&x.shape)
        );
    }
    let d = |v: usize| Dim::constant(v as i64);
    let state = state_shape(batch_first, d(dirs), batch.clone(), d(hidden));
    let optional = [
        (3, "B", vec![d(dirs), d(2 * gates * hidden)], DType::F32),
        (4, "sequence_lens", vec![batch.clone()], DType::I32),
        (5, "initial_h", state.clone(), DType::F32),
        (6, "initial_c", state, DType::F32),
        (7, "P", vec![d(dirs), d(3 * hidden)], DType::F32),
    ];
    for (i, what, shape, dtype) in optional {
        let Some(v) = n.input(i) else { continue };
        if !matches!(cell, Cell::Lstm { .. }) && i >= 6 {
            bail!("{} has no input #{i}", n.op);
        }
        let v = &g.values[v];
        if v.dtype != dtype || v.shape != shape {
            bail!(
                "{what} must be {dtype:?} of shape {}, found {:?} of shape {}",
                g.show_shape(&shape),
                v.dtype,
                g.show_shape(&v.shape)
            );
        }
    }
    let max_out = if matches!(cell, Cell::Lstm { .. }) {
        3
    } else {
        2
    };
    if n.outputs.len() > max_out {
        bail!("{} has at most {max_out} outputs", n.op);
    }
    Ok(RecurrentOp {
        cell,
        direction,
        batch_first,
        hidden,
        input,
        seq,
        batch,
        acts: activations(n, cell, dirs)?,
        clip,
        n_out: n.outputs.len(),
        packed: None,
    })
}

fn state_shape(batch_first: bool, dirs: Dim, batch: Dim, hidden: Dim) -> Vec<Dim> {
    if batch_first {
        vec![batch, dirs, hidden]
    } else {
        vec![dirs, batch, hidden]
    }
}

/// Y, Y_h, Y_c shapes.
pub(crate) fn output_shapes(o: &RecurrentOp) -> [Vec<Dim>; 3] {
    let d = |v: usize| Dim::constant(v as i64);
    let y = if o.batch_first {
        vec![o.batch.clone(), o.seq.clone(), d(o.dirs()), d(o.hidden)]
    } else {
        vec![o.seq.clone(), d(o.dirs()), o.batch.clone(), d(o.hidden)]
    };
    let st = state_shape(o.batch_first, d(o.dirs()), o.batch.clone(), d(o.hidden));
    [y, st.clone(), st]
}

fn infer(cx: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let o = decode(cx.g, n)?;
    let shapes = output_shapes(&o);
    Ok(shapes
        .into_iter()
        .take(n.outputs.len())
        .map(|s| OutInfo::new(DType::F32, s))
        .collect())
}

/// Packs constant W/R per direction (and per part of R) for `kiln_runtime`'s sgemm.
fn pack(o: &RecurrentOp, w: &[f32], r: &[f32]) -> (Vec<PackedF32Owned>, Vec<PackedF32Owned>) {
    let (h, gh) = (o.hidden, o.gates() * o.hidden);
    let mut pw = Vec::new();
    let mut pr = Vec::new();
    for d in 0..o.dirs() {
        let wd = &w[d * gh * o.input..(d + 1) * gh * o.input];
        pw.push(PackedF32Owned::pack(wd, o.input, gh, true, None));
        let rd = &r[d * gh * h..(d + 1) * gh * h];
        let mut row0 = 0;
        for p in 0..o.cell.r_parts() {
            let cols = o.cell.r_cols(p, h);
            let part = &rd[row0 * h..(row0 + cols) * h];
            pr.push(PackedF32Owned::pack(part, h, cols, true, None));
            row0 += cols;
        }
    }
    (pw, pr)
}

/// Lowers every LSTM/GRU/RNN node to [`KilnOp::Recurrent`]: constant weights are packed (and
/// dropped from the inputs, so they are not embedded twice) and a scratch output is added.
pub(crate) fn lower_all(g: &mut Graph) -> Result<()> {
    for ni in 0..g.nodes.len() {
        let n = &g.nodes[ni];
        if n.kiln.is_some()
            || !n.domain.is_empty()
            || !matches!(n.op.as_str(), "LSTM" | "GRU" | "RNN")
        {
            continue;
        }
        let mut o = decode(g, n).map_err(|e| n.err(e))?;
        let (wv, rv) = (n.input(1), n.input(2));
        let konst = |v: Option<usize>| match v.and_then(|v| g.values[v].konst.as_ref()) {
            Some(TensorData::F32(d)) => Some(d.clone()),
            _ => None,
        };
        if let (Some(w), Some(r)) = (konst(wv), konst(rv)) {
            o.packed = Some(pack(&o, &w, &r));
        }
        let raw = o.packed.is_none();
        let fixed = scratch_len(o.cell, 0, 0, o.input, o.hidden, raw);
        let gh = (o.gates() * o.hidden) as i64;
        let len = o
            .seq
            .mul(&o.batch)
            .scale(gh)
            .add(&o.batch.scale(gh + 4 * o.hidden as i64))
            .add(&Dim::constant(fixed as i64));
        let name = format!("{}:scratch", g.nodes[ni].name);
        let scratch = g.add_value(name, DType::F32, vec![len]);
        let n = &mut g.nodes[ni];
        if !raw {
            n.inputs[1] = None;
            n.inputs[2] = None;
        }
        n.outputs.push(scratch);
        n.kiln = Some(KilnOp::Recurrent(Box::new(o)));
    }
    Ok(())
}
