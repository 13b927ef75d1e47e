//! Regions of f32 elementwise ops over one tensor become one pass.
//!
//! Exporters spell activations and affine steps as chains of tiny ops: paddle2onnx writes
//! HardSwish as `Add(x, 3) → Clip(0, 6) → Mul(x, ·) → Div(6)` and wraps convolutions in
//! `Mul(scalar) → Add(scalar)`, eight passes over a feature map per layer. A region is a set of
//! such nodes (Add/Sub/Mul/Div whose other operand is a scalar constant or another value of the
//! region, Clip with constant bounds, and the unary activations) that all read, directly or
//! through each other, one tensor `x` and produce values of `x`'s shape that nobody outside the
//! region reads, except its last value. It becomes one `Elementwise` node whose closure
//! evaluates the ops in their order, each rounded to f32 as before: the results are
//! bit-identical to the separate passes.
use std::collections::HashMap;

use super::Uses;
use crate::error::Result;
use crate::ir::{DType, ElemOperand, ElemStep, Graph, KilnOp, Node, ValueId};
use crate::ops::{BinaryOp, UnaryOp};

/// What one candidate node computes, with its tensor operands still as value ids.
enum Cand {
    Binary(BinaryOp, Operand, Operand),
    Unary(UnaryOp, ValueId),
    Clip(f32, f32, ValueId),
}

enum Operand {
    Value(ValueId),
    Scalar(f32),
}

fn scalar(g: &Graph, v: ValueId) -> Option<f32> {
    let k = g.values[v].konst.as_ref()?;
    (k.len() == 1 && k.dtype() == DType::F32).then(|| k.as_f32()[0])
}

fn candidate(g: &Graph, n: &Node) -> Option<Cand> {
    if n.kiln.is_some() || !(n.domain.is_empty() || n.domain == "ai.onnx") || n.outputs.len() != 1 {
        return None;
    }
    let out = n.outputs[0];
    if g.values[out].dtype != DType::F32 || g.values[out].konst.is_some() {
        return None;
    }
    let operand = |i: usize| -> Option<Operand> {
        let v = n.input(i)?;
        match scalar(g, v) {
            Some(s) => Some(Operand::Scalar(s)),
            None if g.values[v].konst.is_none() && g.values[v].dtype == DType::F32 => {
                Some(Operand::Value(v))
            }
            None => None,
        }
    };
    if let Some(b) = BinaryOp::from_op(&n.op) {
        if !matches!(
            b,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        ) {
            return None;
        }
        let (a, c) = (operand(0)?, operand(1)?);
        if matches!((&a, &c), (Operand::Scalar(_), Operand::Scalar(_))) {
            return None;
        }
        return Some(Cand::Binary(b, a, c));
    }
    if n.op == "Clip" {
        let (lo, hi) = crate::ops::clip_bounds(g, n).ok()?;
        let x = n.input(0)?;
        return (g.values[x].dtype == DType::F32).then_some(Cand::Clip(lo, hi, x));
    }
    let u = UnaryOp::from_node(n).ok()??;
    if matches!(u, UnaryOp::Gelu) {
        return None; // has its own vectorised pass
    }
    let x = n.input(0)?;
    (g.values[x].dtype == DType::F32).then_some(Cand::Unary(u, x))
}

pub fn run(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    // region id of each value produced inside a region; per region: root, nodes.
    let mut region_of: HashMap<ValueId, usize> = HashMap::new();
    let mut regions: Vec<(ValueId, Vec<usize>)> = Vec::new();
    let mut cands: HashMap<usize, Cand> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        let Some(c) = candidate(g, n) else { continue };
        let tensors: Vec<ValueId> = match &c {
            Cand::Binary(_, a, b) => [a, b]
                .into_iter()
                .filter_map(|o| match o {
                    Operand::Value(v) => Some(*v),
                    Operand::Scalar(_) => None,
                })
                .collect(),
            Cand::Unary(_, x) | Cand::Clip(_, _, x) => vec![*x],
        };
        let out = n.outputs[0];
        let mut rs: Vec<usize> = tensors
            .iter()
            .filter_map(|v| region_of.get(v).copied())
            .collect();
        rs.dedup();
        let ext: Vec<ValueId> = tensors
            .iter()
            .copied()
            .filter(|v| !region_of.contains_key(v))
            .collect();
        let target = match (rs.as_slice(), ext.as_slice()) {
            ([r], []) => Some(*r),
            ([r], [x, ..]) if ext.iter().all(|e| e == x) && regions[*r].0 == *x => Some(*r),
            ([], [x, ..]) if ext.iter().all(|e| e == x) => {
                regions.push((*x, Vec::new()));
                Some(regions.len() - 1)
            }
            _ => None,
        };
        let Some(r) = target else { continue };
        // Same shape as the root: no broadcasting inside a region.
        if g.values[out].shape != g.values[regions[r].0].shape {
            if regions[r].1.is_empty() {
                regions.pop();
            }
            continue;
        }
        regions[r].1.push(i);
        region_of.insert(out, r);
        cands.insert(i, c);
    }

    let mut replace: HashMap<usize, Node> = HashMap::new();
    let mut remove: Vec<usize> = Vec::new();
    for (root, nodes) in regions {
        let keep = leak_free_prefix(&nodes, g, &uses);
        if keep < 2 {
            continue;
        }
        let inside = &nodes[..keep];
        let mut slot: HashMap<ValueId, usize> = HashMap::new();
        let mut steps = Vec::with_capacity(keep);
        let op_of = |v: ValueId, slot: &HashMap<ValueId, usize>| -> ElemOperand {
            if v == root {
                ElemOperand::Input
            } else {
                ElemOperand::Step(slot[&v])
            }
        };
        for (k, &i) in inside.iter().enumerate() {
            let step = match &cands[&i] {
                Cand::Binary(b, a, c) => {
                    let f = |o: &Operand| match o {
                        Operand::Value(v) => op_of(*v, &slot),
                        Operand::Scalar(s) => ElemOperand::Scalar(*s),
                    };
                    ElemStep::Binary(*b, f(a), f(c))
                }
                Cand::Unary(u, x) => ElemStep::Unary(*u, op_of(*x, &slot)),
                Cand::Clip(lo, hi, x) => ElemStep::Clip(*lo, *hi, op_of(*x, &slot)),
            };
            steps.push(step);
            slot.insert(g.nodes[i].outputs[0], k);
        }
        let last = *inside.last().unwrap();
        let first_name = g.nodes[inside[0]].name.clone();
        replace.insert(
            last,
            Node {
                name: format!("{first_name}:elementwise"),
                op: "Elementwise".into(),
                domain: "kiln".into(),
                inputs: vec![Some(root)],
                outputs: vec![g.nodes[last].outputs[0]],
                attrs: Default::default(),
                kiln: Some(KilnOp::Elementwise { steps }),
            },
        );
        remove.extend(&inside[..keep - 1]);
    }
    if replace.is_empty() {
        return Ok(());
    }
    let remove: std::collections::HashSet<usize> = remove.into_iter().collect();
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(r) = replace.remove(&i) {
            g.nodes.push(r);
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
    }
    Ok(())
}

/// The length of the longest prefix of `nodes` (a region, in graph order) whose values, except
/// the last one's, are read only by nodes of that prefix. Linear in the region's uses: a region
/// can hold thousands of nodes.
fn leak_free_prefix(nodes: &[usize], g: &Graph, uses: &Uses) -> usize {
    let pos: HashMap<usize, usize> = nodes.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    // need[k]: the shortest prefix that holds every reader of node k's value (MAX: a reader
    // outside the region, or a graph output).
    let need = nodes.iter().map(|&i| {
        uses.consumers[g.nodes[i].outputs[0]]
            .iter()
            .map(|c| pos.get(c).map_or(usize::MAX, |&p| p + 1))
            .max()
            .unwrap_or(0)
    });
    // A prefix of length `keep` is leak-free when need[k] <= keep for every k < keep - 1.
    let mut worst = Vec::with_capacity(nodes.len()); // worst[k] = max(need[..=k])
    for n in need {
        worst.push(worst.last().copied().unwrap_or(0).max(n));
    }
    (2..=nodes.len())
        .rev()
        .find(|&keep| worst[keep - 2] <= keep)
        .unwrap_or(0)
}
