//! `Expand` moved out of the way of elementwise ops and reductions, so that it copies as little
//! as possible or disappears.
//!
//! Why: exporters write broadcasts explicitly. Sentence-transformers' mean pooling, in every
//! embedding model, is `Unsqueeze(mask) → Expand([b, s, hidden]) → Cast(float)` followed by
//! `Mul(tokens, ·) → ReduceSum(axis 1)` and `ReduceSum(·, axis 1) → Clip → Div`: run as
//! written that materialises the mask `hidden` times (as int64, then again as float) and sums
//! `hidden` identical copies of it. Three rewrites, applied until none matches:
//!
//! 1. `U(Expand(x))` → `Expand(U(x))` for an elementwise op `U` with one tensor input (`Cast`,
//!    `Clip` with constant bounds, `Relu`, `Neg`, …): the same values, computed once per
//!    element of `x` instead of per copy.
//! 2. `B(a, Expand(x))` → `B(a, x)` for a broadcasting binary op whose output shape stays the
//!    same: the op broadcasts `x` itself.
//! 3. `ReduceSum(Expand(x))` → `Expand(ReduceSum(x))` when no reduced axis is one `Expand`
//!    broadcasts: each output element is the sum of the same values (ONNX leaves the order of a
//!    reduction's additions open, and kiln's order depends on the reduced tensor's layout).
//!
//! Rewrites 1 and 3 need the `Expand`'s output to have no other reader, so nothing is
//! computed twice; the `Expand`s left without readers are removed by `dce`.
use super::Uses;
use crate::ir::{DType, Dim, Graph, TensorData};

/// Elementwise ops with one tensor input (other inputs, if any, must be constants).
const UNARY: &[&str] = &[
    "Cast",
    "Clip",
    "Relu",
    "Neg",
    "Abs",
    "Sqrt",
    "Reciprocal",
    "Exp",
    "Log",
    "Sigmoid",
    "Tanh",
    "Erf",
    "Floor",
    "Ceil",
    "Not",
];

/// Broadcasting binary ops.
const BINARY: &[&str] = &["Add", "Sub", "Mul", "Div"];

pub fn run(g: &mut Graph) {
    // Each rewrite changes the graph and returns, so one `Uses` per round stays valid (built
    // per node it made this pass quadratic: 20 000 nodes took minutes).
    if !g.nodes.iter().any(|n| n.op == "Expand") {
        return;
    }
    loop {
        let uses = Uses::of(g);
        if !(push_through_unary(g, &uses)
            || fold_into_binary(g, &uses)
            || swap_with_reduce_sum(g, &uses))
        {
            break;
        }
    }
}

/// The `Expand` node producing input `i` of node `n` (with `sole`: if that value has no other
/// reader).
fn expand_input(g: &Graph, uses: &Uses, n: usize, i: usize, sole: bool) -> Option<usize> {
    let v = g.nodes[n].input(i)?;
    let e = uses.producers[v]?;
    let en = &g.nodes[e];
    let x = en.input(0)?;
    let xv = &g.values[x];
    (en.op == "Expand"
        && en.kiln.is_none()
        && (!sole || uses.sole_consumer(v) == Some(n))
        && g.values[v].konst.is_none()
        && g.values[v].sym.is_none()
        && xv.konst.is_none()
        && xv.sym.is_none()
        && xv.shape.len() == g.values[v].shape.len())
    .then_some(e)
}

/// For rewrites 1 and 3: node `n` if it is an `op_ok` op whose input 0 is an `Expand`'s
/// output read by nothing else and whose other inputs are constants (Clip's bounds,
/// ReduceSum's axes), as `(expand node, x, expand's output, n's output)`.
fn expand_below(
    g: &Graph,
    uses: &Uses,
    n: usize,
    op_ok: impl Fn(&str) -> bool,
) -> Option<(usize, usize, usize, usize)> {
    let nd = &g.nodes[n];
    if nd.kiln.is_some() || !op_ok(&nd.op) || nd.outputs.len() != 1 {
        return None;
    }
    if nd
        .inputs
        .iter()
        .skip(1)
        .flatten()
        .any(|&v| g.values[v].konst.is_none())
    {
        return None;
    }
    let e = expand_input(g, uses, n, 0, true).filter(|&e| e < n)?;
    Some((
        e,
        g.nodes[e].inputs[0]?,
        g.nodes[e].outputs[0],
        nd.outputs[0],
    ))
}

/// Moves `Expand` node `e` (x → ev) below node `n` (ev → nv): `n` now reads x and writes ev,
/// re-typed to `n`'s result on x (`dtype`, `shape`); the Expand reads ev (and `shape_in`, if
/// given, as its shape operand) and writes nv. The two nodes swap places: `n` only needs x
/// and constants, and nothing between them read ev (its only reader was `n`).
fn move_below(
    g: &mut Graph,
    (e, x, ev, nv): (usize, usize, usize, usize),
    n: usize,
    dtype: DType,
    shape: Vec<Dim>,
    shape_in: Option<usize>,
) {
    g.values[ev].dtype = dtype;
    g.values[ev].shape = shape;
    g.nodes[n].inputs[0] = Some(x);
    g.nodes[n].outputs[0] = ev;
    g.nodes[e].inputs[0] = Some(ev);
    if let Some(sv) = shape_in {
        g.nodes[e].inputs[1] = Some(sv);
    }
    g.nodes[e].outputs[0] = nv;
    g.nodes.swap(e, n);
}

/// Rewrite 1.
fn push_through_unary(g: &mut Graph, uses: &Uses) -> bool {
    for u in 0..g.nodes.len() {
        if let Some(found) = expand_below(g, uses, u, |op| UNARY.contains(&op)) {
            let (x, uv) = (found.1, found.3);
            let (dtype, shape) = (g.values[uv].dtype, g.values[x].shape.clone());
            move_below(g, found, u, dtype, shape, None);
            return true;
        }
    }
    false
}

/// Rewrite 2.
fn fold_into_binary(g: &mut Graph, uses: &Uses) -> bool {
    for b in 0..g.nodes.len() {
        let n = &g.nodes[b];
        if n.kiln.is_some() || !BINARY.contains(&n.op.as_str()) || n.inputs.len() != 2 {
            continue;
        }
        let out = g.values[n.outputs[0]].shape.clone();
        for i in 0..2 {
            let Some(e) = expand_input(g, uses, b, i, false) else {
                continue;
            };
            let (Some(x), Some(other)) = (g.nodes[e].input(0), g.nodes[b].input(1 - i)) else {
                continue;
            };
            if same_broadcast(&g.values[other].shape, &g.values[x].shape, &out) {
                g.nodes[b].inputs[i] = Some(x);
                return true;
            }
        }
    }
    false
}

/// Whether broadcasting shapes `a` and `x` gives exactly `out`, without assuming two
/// different symbolic dims equal.
fn same_broadcast(a: &[Dim], x: &[Dim], out: &[Dim]) -> bool {
    let r = a.len().max(x.len());
    if out.len() != r {
        return false;
    }
    let one = Dim::constant(1);
    (0..r).all(|i| {
        let da = if i + a.len() >= r {
            &a[i + a.len() - r]
        } else {
            &one
        };
        let dx = if i + x.len() >= r {
            &x[i + x.len() - r]
        } else {
            &one
        };
        let d = if da == dx || *dx == 1 {
            da
        } else if *da == 1 {
            dx
        } else {
            return false;
        };
        *d == out[i]
    })
}

/// Rewrite 3.
fn swap_with_reduce_sum(g: &mut Graph, uses: &Uses) -> bool {
    for r in 0..g.nodes.len() {
        let Some(found) = expand_below(g, uses, r, |op| op == "ReduceSum") else {
            continue;
        };
        let (x, rv) = (found.1, found.3);
        // The reduction of x: same axes; the reduced extents must be the same as on the
        // expanded value (x's dims are each 1 or the expanded dim, so equal products mean
        // equal dims).
        let Ok((_, len_e, _, _)) = crate::ops::reduce_dims(g, &g.nodes[r]) else {
            continue;
        };
        let mut on_x = g.nodes[r].clone();
        on_x.inputs[0] = Some(x);
        let Ok((_, len_x, _, shape_x)) = crate::ops::reduce_dims(g, &on_x) else {
            continue;
        };
        let target = g.values[rv].shape.clone();
        if len_x != len_e || shape_x.len() != target.len() {
            continue;
        }
        // Expand's shape operand (emission uses the output's shape; this keeps the graph
        // well-formed): 1 where the reduced x already has the dim, else the static dim.
        let Some(dims): Option<Vec<i64>> = shape_x
            .iter()
            .zip(&target)
            .map(|(dx, dt)| {
                if dx == dt {
                    Some(1)
                } else {
                    dt.as_usize().map(|d| d as i64)
                }
            })
            .collect()
        else {
            continue;
        };
        let sv = g.add_value(
            format!("{}_kiln_shape", g.values[rv].name),
            DType::I64,
            vec![Dim::from(dims.len())],
        );
        g.values[sv].konst = Some(TensorData::I64(dims));
        let dtype = g.values[rv].dtype;
        move_below(g, found, r, dtype, shape_x, Some(sv));
        return true;
    }
    false
}
