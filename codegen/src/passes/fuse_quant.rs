//! Fusion of onnxruntime's dynamic quantization (DESIGN.md decision 5).
//!
//! `quantize_dynamic` turns `y = x·W + b` into
//! ```text
//! x ─ DynamicQuantizeLinear ─┬─ x_q ─┐
//!                            ├─ x_zp ┼─ MatMulInteger(x_q, W_q, x_zp, W_zp) ─ Cast(float) ─┐
//!                            └─ x_s ─── Mul(x_s, W_s) ──────────────────────────────────── Mul ─ [Add b] ─ [Relu]
//! ```
//! (the scale product may be `Mul(W_s, x_s)` too, and W_s/W_zp per tensor or per column).
//! That becomes `QuantizeDyn(x)` — min/max, quantize and pack A in one pass, once per
//! DynamicQuantizeLinear however many MatMulIntegers read it — and one `QGemm` per
//! MatMulInteger whose epilogue applies zero points, `x_s·W_s[n]`, bias and activation.
use std::collections::HashMap;

use super::Uses;
use crate::error::Result;
use crate::ir::{DType, Dim, Graph, KilnOp, Node, TensorData};
use kiln_runtime::gemm::Activation;
use kiln_runtime::pack::{PackedI8Owned, Weights};

/// Largest K whose exact result `Σ(a−za)(b−zb)` is guaranteed to fit i32 (|term| ≤ 255·255).
pub const MAX_K: usize = (i32::MAX as usize) / (255 * 255);

struct Match {
    dql: usize,
    mmi: usize,
    /// Nodes absorbed into the QGemm (Cast, Mul, optional Add and Relu), in order.
    absorbed: Vec<usize>,
    out: usize,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Activation,
}

pub fn run(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    let mut matches = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op == "MatMulInteger"
            && n.kiln.is_none()
            && let Some(m) = match_one(g, &uses, i)
        {
            matches.push(m);
        }
    }
    if matches.is_empty() {
        return Ok(());
    }

    // One QuantizeDyn per DynamicQuantizeLinear, placed right after it.
    // Keyed by the quantized float value, so that duplicate DynamicQuantizeLinears of the same
    // tensor (Q, K and V projections) share one pass too.
    let mut qdyn: HashMap<usize, [usize; 4]> = HashMap::new();
    let mut inserts: Vec<(Option<usize>, Node)> = Vec::new(); // (insert after node index, node)
    let mut replace: HashMap<usize, Node> = HashMap::new(); // at the last absorbed node
    let mut remove: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for m in matches {
        let dq = &g.nodes[m.dql];
        let x = dq.inputs[0].unwrap();
        let xs = g.values[x].shape.clone();
        let k = xs
            .last()
            .and_then(Dim::as_usize)
            .expect("checked by match_one");
        let rows = crate::ir::numel(&xs[..xs.len() - 1]);
        let q = *qdyn.entry(x).or_insert_with(|| {
            let base = g.values[x].name.clone();
            let kp = kiln_runtime::pack::padded_k(k);
            let a = g.add_value(
                format!("{base}:q"),
                DType::U8,
                vec![rows.mul(&Dim::from(kp))],
            );
            let r = g.add_value(format!("{base}:rowterm"), DType::I32, vec![rows.clone()]);
            let s = g.add_value(format!("{base}:scale"), DType::F32, vec![]);
            let z = g.add_value(format!("{base}:zp"), DType::U8, vec![]);
            let node = Node {
                name: format!("{}:quantize", g.nodes[m.dql].name),
                op: "QuantizeDyn".into(),
                domain: "kiln".into(),
                inputs: vec![Some(x)],
                outputs: vec![a, r, s, z],
                attrs: Default::default(),
                kiln: Some(KilnOp::QuantizeDyn { m: rows.clone(), k }),
            };
            // Right after x is produced (before every DynamicQuantizeLinear of it).
            inserts.push((uses.producers[x], node));
            [a, r, s, z]
        });
        let mmi = &g.nodes[m.mmi];
        let w = mmi.inputs[1].unwrap();
        let wv = &g.values[w];
        let (kk, n) = (
            wv.shape[0].as_usize().unwrap(),
            wv.shape[1].as_usize().unwrap(),
        );
        let zps: Vec<i32> = match mmi.input(3) {
            Some(z) => g.values[z]
                .konst
                .as_ref()
                .unwrap()
                .as_i64()
                .unwrap()
                .iter()
                .map(|&v| v as i32)
                .collect(),
            None => vec![0],
        };
        let weights = match wv.konst.as_ref().unwrap() {
            TensorData::I8(d) => Weights::I8(d),
            TensorData::U8(d) => Weights::U8(d),
            _ => unreachable!("checked by match_one"),
        };
        let packed = PackedI8Owned::pack(weights, kk, n, &zps, &m.scales, m.bias.as_deref());
        let last = *m.absorbed.last().unwrap();
        let name = mmi.name.clone();
        replace.insert(
            last,
            Node {
                name,
                op: "QGemm".into(),
                domain: "kiln".into(),
                inputs: q.iter().map(|&v| Some(v)).collect(),
                outputs: vec![m.out],
                attrs: Default::default(),
                kiln: Some(KilnOp::QGemm {
                    m: rows,
                    weights: Box::new(packed),
                    act: m.act,
                }),
            },
        );
        remove.insert(m.mmi);
        remove.extend(&m.absorbed[..m.absorbed.len() - 1]);
    }

    let old = std::mem::take(&mut g.nodes);
    for (_, q) in inserts.iter().filter(|(at, _)| at.is_none()) {
        g.nodes.push(q.clone());
    }
    for (i, n) in old.into_iter().enumerate() {
        if let Some(r) = replace.remove(&i) {
            g.nodes.push(r);
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
        for (_, q) in inserts.iter().filter(|(at, _)| *at == Some(i)) {
            g.nodes.push(q.clone());
        }
    }
    Ok(())
}

fn match_one(g: &Graph, uses: &Uses, mmi: usize) -> Option<Match> {
    let n = &g.nodes[mmi];
    let (a, w) = (n.input(0)?, n.input(1)?);
    let dql = uses.producers[a]?;
    let dq = &g.nodes[dql];
    if dq.op != "DynamicQuantizeLinear" || dq.outputs[0] != a || dq.kiln.is_some() {
        return None;
    }
    // A's zero point must be the DynamicQuantizeLinear's.
    if n.input(2).is_none() || n.input(2) != dq.outputs.get(2).copied() {
        return None;
    }
    let x = dq.input(0)?;
    let k = g.values[x].shape.last()?.as_usize()?;
    let wv = &g.values[w];
    if wv.shape.len() != 2 || wv.shape[0] != k || k == 0 || k > MAX_K || g.values[x].shape.len() < 2
    {
        return None;
    }
    let ncols = wv.shape[1].as_usize()?;
    match wv.konst.as_ref()? {
        TensorData::I8(_) | TensorData::U8(_) => {}
        _ => return None,
    }
    if let Some(z) = n.input(3) {
        let zn = g.values[z].konst.as_ref()?.len();
        if zn != 1 && zn != ncols {
            return None;
        }
    }
    // MatMulInteger → Cast(to float)
    let cast = uses.sole_consumer(n.outputs[0])?;
    let cn = &g.nodes[cast];
    if cn.op != "Cast" || cn.attr_i("to").ok()?? != 1 {
        return None;
    }
    // Cast → Mul(·, scale product)
    let mul = uses.sole_consumer(cn.outputs[0])?;
    let mn = &g.nodes[mul];
    if mn.op != "Mul" {
        return None;
    }
    let other = if mn.input(0)? == cn.outputs[0] {
        mn.input(1)?
    } else {
        mn.input(0)?
    };
    let scales = scale_product(g, uses, other, *dq.outputs.get(1)?, ncols)?;
    let mut out = mn.outputs[0];
    if g.values[out].shape != g.values[n.outputs[0]].shape {
        return None; // the scale broadcast changed the shape: not a plain per-column scale
    }
    let mut absorbed = vec![cast, mul];
    // [→ Add(bias)]
    let mut bias = None;
    if let Some(add) = uses.sole_consumer(out) {
        let an = &g.nodes[add];
        if an.op == "Add" {
            let o = if an.input(0)? == out {
                an.input(1)?
            } else {
                an.input(0)?
            };
            if let Some(b) = column_vector(g, o, ncols)
                && g.values[an.outputs[0]].shape == g.values[out].shape
            {
                bias = Some(b);
                absorbed.push(add);
                out = an.outputs[0];
            }
        }
    }
    // [→ Relu]
    let mut act = Activation::None;
    if let Some(r) = uses.sole_consumer(out) {
        let a = match (g.nodes[r].op.as_str(), g.nodes[r].domain.as_str()) {
            ("Relu", "") => Some(Activation::Relu),
            ("Gelu", "kiln") => Some(Activation::Gelu),
            _ => None,
        };
        if let Some(a) = a {
            act = a;
            absorbed.push(r);
            out = g.nodes[r].outputs[0];
        }
    }
    Some(Match {
        dql,
        mmi,
        absorbed,
        out,
        scales,
        bias,
        act,
    })
}

/// The weight scale per column if `v` is `x_s · W_s` (either order) with constant W_s, or the
/// constant's values when `v` is `x_s` itself (then W_s = 1).
fn scale_product(
    g: &Graph,
    uses: &Uses,
    v: usize,
    x_scale: usize,
    ncols: usize,
) -> Option<Vec<f32>> {
    scale_product_with(g, uses, v, x_scale, ncols, |c| column_vector(g, c, ncols))
}

/// [`scale_product`] with the weight scale read by `vector` (per column for matmuls, per
/// output channel for convolutions).
pub(crate) fn scale_product_with(
    g: &Graph,
    uses: &Uses,
    v: usize,
    x_scale: usize,
    n: usize,
    vector: impl Fn(usize) -> Option<Vec<f32>>,
) -> Option<Vec<f32>> {
    if v == x_scale {
        return Some(vec![1.0; n]);
    }
    let p = uses.producers[v]?;
    let pn = &g.nodes[p];
    if pn.op != "Mul" || pn.kiln.is_some() {
        return None;
    }
    let (l, r) = (pn.input(0)?, pn.input(1)?);
    let c = if l == x_scale {
        r
    } else if r == x_scale {
        l
    } else {
        return None;
    };
    vector(c)
}

/// A constant f32 that broadcasts along the last axis only (scalar, [n], [1, n] …), expanded
/// to n values.
pub(crate) fn column_vector(g: &Graph, v: usize, ncols: usize) -> Option<Vec<f32>> {
    let val = &g.values[v];
    let TensorData::F32(d) = val.konst.as_ref()? else {
        return None;
    };
    let last = val.shape.last().map_or(Some(1), Dim::as_usize)?;
    if val.shape.iter().rev().skip(1).any(|s| *s != 1) {
        return None;
    }
    match (d.len(), last) {
        (1, 1) => Some(vec![d[0]; ncols]),
        (l, n) if l == ncols && n == ncols => Some(d.clone()),
        _ => None,
    }
}
