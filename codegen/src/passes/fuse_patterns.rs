//! Recognises float subgraphs that exporters emit for one logical op and replaces them with a
//! single node, so they run as one pass over memory:
//! - GELU (erf form): `x → Div(·, √2) | Mul(·, 1/√2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, ½)`
//!   (the ½ may also multiply x first) → kiln `Gelu`, which `fuse_quant` can then move into
//!   the preceding int8 GEMM's epilogue.
//! - LayerNorm: `μ = ReduceMean(x) → d = Sub(x, μ) → Pow(d, 2) | Mul(d, d) → ReduceMean → Add(ε)
//!   → Sqrt → Div(d, ·) → Mul(γ) → Add(β)` over the last axis → ONNX `LayerNormalization`.
//! - The residual Add in front of a LayerNorm (decomposed or native): `LayerNormalization(Add(a,
//!   b))` with a, b of the sum's shape and the sum read only by the LayerNorm → one
//!   LayerNormalization that forms the sum in its first pass ([`RESIDUAL`]).
//!
//! Matching is on the graph after inference, so constants are known; the replaced nodes'
//! outputs lose their readers and dead-code elimination removes them.
use std::collections::BTreeMap;

use super::Uses;
use crate::ir::{Attr, DType, Graph, Node, TensorData};

/// kiln's attribute on a `LayerNormalization` that absorbed the residual Add producing its
/// input: the input is `inputs[0] + inputs[3]` (emitted as `layernorm::add_layer_norm`).
pub(crate) const RESIDUAL: &str = "kiln_residual";

pub fn run(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut replace: BTreeMap<usize, Node> = BTreeMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.kiln.is_some() {
            continue;
        }
        let found = match n.op.as_str() {
            "Erf" => gelu(g, &uses, i),
            "ReduceMean" => layer_norm(g, &uses, i),
            _ => None,
        };
        if let Some((at, node)) = found {
            replace.entry(at).or_insert(node);
        }
    }
    for (at, node) in replace {
        // Placed where the pattern's last node was, so every input is already computed.
        g.nodes[at] = node;
    }
    residual_add(g);
}

/// Moves the residual Add into the LayerNorm that alone reads its sum (see the module docs).
/// The Add is left without readers for `dce`; the LayerNorm keeps its place, after the Add's
/// operands.
fn residual_add(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut fused = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op != "LayerNormalization" || n.kiln.is_some() || n.attrs.contains_key(RESIDUAL) {
            continue;
        }
        // Only the normalised output may be read (Mean/InvStdDev are unsupported anyway).
        if n.outputs[1..]
            .iter()
            .any(|&o| !uses.consumers[o].is_empty())
        {
            continue;
        }
        let Some(x) = n.input(0) else { continue };
        let Some(p) = uses.producers[x] else { continue };
        let add = &g.nodes[p];
        if add.op != "Add" || add.kiln.is_some() || uses.sole_consumer(x) != Some(i) {
            continue;
        }
        let (Some(a), Some(b)) = (add.input(0), add.input(1)) else {
            continue;
        };
        let plain =
            |v: usize| g.values[v].dtype == DType::F32 && g.values[v].shape == g.values[x].shape;
        if add.inputs.len() == 2 && plain(a) && plain(b) && plain(x) {
            fused.push((i, a, b));
        }
    }
    for (i, a, b) in fused {
        let n = &mut g.nodes[i];
        n.inputs[0] = Some(a);
        n.inputs.resize(3, None);
        n.inputs.push(Some(b));
        n.attrs.insert(RESIDUAL.into(), Attr::Int(1));
    }
}

/// The single scalar value of a constant float, if `v` is one.
fn scalar(g: &Graph, v: usize) -> Option<f32> {
    match g.values[v].konst.as_ref()? {
        TensorData::F32(d) if d.len() == 1 => Some(d[0]),
        _ => None,
    }
}

/// If node `n` is a binary `op` with `v` as one operand, the other operand.
fn other(n: &Node, op: &str, v: usize) -> Option<usize> {
    if n.op != op || n.kiln.is_some() || n.inputs.len() != 2 {
        return None;
    }
    match (n.input(0)?, n.input(1)?) {
        (a, b) if a == v => Some(b),
        (a, b) if b == v => Some(a),
        _ => None,
    }
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * b.abs()
}

fn gelu(g: &Graph, uses: &Uses, erf: usize) -> Option<(usize, Node)> {
    let e = &g.nodes[erf];
    let pre = uses.producers[e.input(0)?]?;
    let p = &g.nodes[pre];
    // x / √2 or x · (1/√2)
    let x = match p.op.as_str() {
        "Div" if scalar(g, p.input(1)?).is_some_and(|c| close(c, std::f32::consts::SQRT_2)) => {
            p.input(0)?
        }
        "Mul" => {
            let (a, b) = (p.input(0)?, p.input(1)?);
            if scalar(g, b).is_some_and(|c| close(c, std::f32::consts::FRAC_1_SQRT_2)) {
                a
            } else if scalar(g, a).is_some_and(|c| close(c, std::f32::consts::FRAC_1_SQRT_2)) {
                b
            } else {
                return None;
            }
        }
        _ => return None,
    };
    if uses.sole_consumer(p.outputs[0]) != Some(erf) {
        return None;
    }
    // 1 + erf(·)
    let add = uses.sole_consumer(e.outputs[0])?;
    let one = other(&g.nodes[add], "Add", e.outputs[0])?;
    if scalar(g, one) != Some(1.0) {
        return None;
    }
    let t = g.nodes[add].outputs[0];
    let m1 = uses.sole_consumer(t)?;
    let lhs = other(&g.nodes[m1], "Mul", t)?;
    let (last, out) = if lhs == x {
        // x·(1+erf) then ·½
        let m2 = uses.sole_consumer(g.nodes[m1].outputs[0])?;
        let half = other(&g.nodes[m2], "Mul", g.nodes[m1].outputs[0])?;
        if scalar(g, half) != Some(0.5) {
            return None;
        }
        (m2, g.nodes[m2].outputs[0])
    } else {
        // (x·½)·(1+erf)
        let hp = uses.producers[lhs]?;
        let half = other(&g.nodes[hp], "Mul", x)?;
        if scalar(g, half) != Some(0.5) || uses.sole_consumer(lhs) != Some(m1) {
            return None;
        }
        (m1, g.nodes[m1].outputs[0])
    };
    if g.values[out].shape != g.values[x].shape {
        return None;
    }
    Some((
        last,
        Node {
            name: format!("{}:gelu", e.name),
            op: "Gelu".into(),
            domain: "kiln".into(),
            inputs: vec![Some(x)],
            outputs: vec![out],
            attrs: Default::default(),
            kiln: None,
        },
    ))
}

/// Reduction over exactly the last axis with keepdims.
fn mean_last_axis(g: &Graph, n: &Node) -> bool {
    let Some(x) = n.input(0) else { return false };
    let r = g.values[x].shape.len() as i64;
    let axes = if g.opset >= 18 {
        n.input(1)
            .and_then(|a| g.values[a].konst.as_ref())
            .and_then(|k| k.as_i64().ok())
    } else {
        n.attr_ints("axes").ok().flatten()
    };
    let keep = n.attr_i("keepdims").ok().flatten().unwrap_or(1) != 0;
    keep && matches!(axes.as_deref(), Some([a]) if *a == -1 || *a == r - 1)
}

fn layer_norm(g: &Graph, uses: &Uses, rm: usize) -> Option<(usize, Node)> {
    let n = &g.nodes[rm];
    if !mean_last_axis(g, n) {
        return None;
    }
    let x = n.input(0)?;
    let mu = n.outputs[0];
    let last_dim = g.values[x].shape.last()?.as_usize()?;
    // d = x − μ: μ must feed only Sub nodes of this pattern (typically exactly one).
    let sub = uses.sole_consumer(mu)?;
    let sn = &g.nodes[sub];
    if sn.op != "Sub" || sn.input(0)? != x || sn.input(1)? != mu {
        return None;
    }
    let d = sn.outputs[0];
    // d feeds the square and the final Div.
    let dc: Vec<usize> = uses.consumers[d].clone();
    if dc.len() != 2 || dc.contains(&usize::MAX) {
        return None;
    }
    let (sq, div) = {
        let is_sq = |i: usize| {
            let c = &g.nodes[i];
            (c.op == "Pow"
                && c.input(0) == Some(d)
                && c.input(1).and_then(|e| scalar(g, e)) == Some(2.0))
                || (c.op == "Mul" && c.input(0) == Some(d) && c.input(1) == Some(d))
        };
        if is_sq(dc[0]) {
            (dc[0], dc[1])
        } else if is_sq(dc[1]) {
            (dc[1], dc[0])
        } else {
            return None;
        }
    };
    let var_n = uses.sole_consumer(g.nodes[sq].outputs[0])?;
    if g.nodes[var_n].op != "ReduceMean" || !mean_last_axis(g, &g.nodes[var_n]) {
        return None;
    }
    let add_eps = uses.sole_consumer(g.nodes[var_n].outputs[0])?;
    let eps = scalar(
        g,
        other(&g.nodes[add_eps], "Add", g.nodes[var_n].outputs[0])?,
    )?;
    let sqrt = uses.sole_consumer(g.nodes[add_eps].outputs[0])?;
    if g.nodes[sqrt].op != "Sqrt" || uses.sole_consumer(g.nodes[sqrt].outputs[0]) != Some(div) {
        return None;
    }
    let dn = &g.nodes[div];
    if dn.op != "Div" || dn.input(0)? != d || dn.input(1)? != g.nodes[sqrt].outputs[0] {
        return None;
    }
    let mul = uses.sole_consumer(dn.outputs[0])?;
    let gamma = flat(g, other(&g.nodes[mul], "Mul", dn.outputs[0])?, last_dim)?;
    let mut last = mul;
    let mut out = g.nodes[mul].outputs[0];
    let mut beta = None;
    if let Some(add) = uses.sole_consumer(out)
        && let Some(b) = other(&g.nodes[add], "Add", out)
        && let Some(b) = flat(g, b, last_dim)
    {
        beta = Some(b);
        last = add;
        out = g.nodes[add].outputs[0];
    }
    if g.values[out].shape != g.values[x].shape {
        return None;
    }
    let mut attrs = BTreeMap::new();
    attrs.insert("axis".to_string(), Attr::Int(-1));
    attrs.insert("epsilon".to_string(), Attr::Float(eps));
    let mut inputs = vec![Some(x), Some(gamma)];
    if let Some(b) = beta {
        inputs.push(Some(b));
    }
    Some((
        last,
        Node {
            name: format!("{}:layernorm", n.name),
            op: "LayerNormalization".into(),
            domain: String::new(),
            inputs,
            outputs: vec![out],
            attrs,
            kiln: None,
        },
    ))
}

/// γ/β must be `[len]`-shaped float constants for LayerNormalization; others are skipped.
fn flat(g: &Graph, v: usize, len: usize) -> Option<usize> {
    let val = &g.values[v];
    let ok =
        matches!(&val.konst, Some(TensorData::F32(c)) if c.len() == len) && val.shape.len() == 1;
    ok.then_some(v)
}
