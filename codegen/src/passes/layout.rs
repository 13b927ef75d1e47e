//! Activation layout: which 4-D values between fused int8 convolutions are stored NHWC.
//!
//! The int8 convolution computes in NHWC (its GEMM rows are output pixels, and the quantized
//! input it reads is NHWC), but ONNX values are NCHW, so a `QConv` between two others used to
//! transpose its input on the way in and its output on the way out — on MobileNet-like
//! networks those transposes cost more than the convolutions. Here a value keeps its logical
//! NCHW shape in the IR (shape inference and the planner are unchanged) but is *stored*
//! `[N, H, W, C]` when every op touching it can work on that order:
//! - its producer is a `QConv`, or a layout-agnostic op or `MaxPool` whose tensor inputs are
//!   all NHWC;
//! - every consumer is a `QConv` (as its input), a layout-agnostic op or a 2-D f32 `MaxPool`
//!   whose output is NHWC,
//!   `GlobalAveragePool`/`GlobalMaxPool` (whose `[N, C, 1, 1]` output is the same bytes in
//!   both orders) or `Shape`; it is not a graph output.
//!
//! Layout-agnostic ops compute each output element from the input elements at the same
//! position: fused `Elementwise` regions, unary activations, and Add/Sub/Mul/Div whose tensor
//! operands all have the output's shape, the other operands broadcasting over the pixels
//! (scalars, per-channel `[C, 1, 1]` constants, squeeze-excite scales `[N, C, 1, 1]`: the same
//! bytes in both orders; the op broadcasts them as `[N, 1, 1, C]`).
//!
//! The NHWC set is the largest one closed under those rules: start from every candidate and
//! drop values that break a rule until nothing changes. Results do not depend on the layout
//! (the same products and sums), except the global pools' summation order.
use super::Uses;
use crate::ir::{Attr, Graph, KilnOp, Node, QConvKind, ValueId};
use crate::ops::{BinaryOp, UnaryOp};

/// Attribute set on a global pool node whose input is NHWC.
pub const NHWC_ATTR: &str = "kiln.nhwc";

/// Layout-agnostic (see the module doc): `Some(tensor inputs)` if `n` is.
fn agnostic(g: &Graph, n: &Node) -> Option<Vec<ValueId>> {
    if n.outputs.len() != 1 {
        return None;
    }
    let out = n.outputs[0];
    let rank4 = g.values[out].shape.len() == 4;
    if !rank4 {
        return None;
    }
    match &n.kiln {
        Some(KilnOp::Elementwise { .. }) => return Some(vec![n.input(0)?]),
        Some(_) => return None,
        None => {}
    }
    if !(n.domain.is_empty() || n.domain == "ai.onnx") {
        return None;
    }
    if n.op == "MaxPool" {
        // 2-D f32 max pooling has an NHWC kernel (`pool::max_pool_nhwc`), same bits.
        let x = n.input(0)?;
        let v = &g.values[x];
        return (v.dtype == crate::ir::DType::F32 && v.shape.len() == 4).then(|| vec![x]);
    }
    if n.op == "Clip" || matches!(UnaryOp::from_node(n), Ok(Some(_))) {
        let x = n.input(0)?;
        // Clip's bounds must be constants (inputs 1 and 2).
        let consts = n.inputs[1..]
            .iter()
            .flatten()
            .all(|&v| g.values[v].konst.is_some());
        return (consts && g.values[x].shape == g.values[out].shape).then(|| vec![x]);
    }
    if let Some(b) = BinaryOp::from_op(&n.op) {
        if !matches!(
            b,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        ) {
            return None;
        }
        let mut tensors = Vec::new();
        for v in n.inputs.iter() {
            let v = (*v)?;
            let val = &g.values[v];
            if val.konst.is_none() && val.shape == g.values[out].shape {
                tensors.push(v);
            } else if !channel_broadcast(&val.shape) {
                return None;
            }
        }
        return (!tensors.is_empty()).then_some(tensors);
    }
    None
}

/// An operand that broadcasts over the pixels (`[C, 1, 1]`, `[N, C, 1, 1]`, a scalar…): its
/// bytes are the same in NCHW and NHWC order, so an NHWC binary op reads it as `[N, 1, 1, C]`.
fn channel_broadcast(shape: &[crate::ir::Dim]) -> bool {
    shape.len() <= 4 && shape.iter().rev().take(2).all(|d| d.as_usize() == Some(1))
}

fn qconv(n: &Node) -> Option<(&QConvKind, bool)> {
    match &n.kiln {
        Some(KilnOp::QConv { spec, kind, .. }) => {
            // The NHWC depthwise kernel takes one channel per group.
            let ok = match kind {
                QConvKind::Gemm { .. } => true,
                QConvKind::Depthwise { .. } => spec.og() == 1,
            };
            Some((kind, ok))
        }
        _ => None,
    }
}

pub fn run(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut nhwc = vec![false; g.values.len()];
    for n in &g.nodes {
        let out = n.outputs[0];
        if matches!(qconv(n), Some((_, true))) || agnostic(g, n).is_some() {
            nhwc[out] = g.values[out].shape.len() == 4;
        }
    }
    loop {
        let mut changed = false;
        for v in 0..g.values.len() {
            if !nhwc[v] {
                continue;
            }
            let Some(p) = uses.producers[v] else {
                nhwc[v] = false;
                changed = true;
                continue;
            };
            let pn = &g.nodes[p];
            let producer_ok = match qconv(pn) {
                Some((QConvKind::Gemm { .. }, _)) => true,
                // The depthwise kernel writes NHWC only from an NHWC input.
                Some((QConvKind::Depthwise { .. }, ok)) => {
                    ok && pn.input(0).is_some_and(|x| nhwc[x])
                }
                None => agnostic(g, pn).is_some_and(|ts| ts.iter().all(|&t| nhwc[t])),
            };
            let consumers_ok = uses.consumers[v].iter().all(|&c| {
                if c == usize::MAX {
                    return false; // graph output: NCHW
                }
                let cn = &g.nodes[c];
                if let Some((_, ok)) = qconv(cn) {
                    return ok
                        && cn.input(0) == Some(v)
                        && cn.inputs[1..].iter().flatten().all(|&i| i != v);
                }
                if cn.kiln.is_none()
                    && matches!(cn.op.as_str(), "GlobalAveragePool" | "GlobalMaxPool")
                    && g.values[v].shape.len() == 4
                {
                    return true;
                }
                if cn.kiln.is_none() && cn.op == "Shape" {
                    return true;
                }
                agnostic(g, cn).is_some() && nhwc[cn.outputs[0]]
            });
            if !(producer_ok && consumers_ok) {
                nhwc[v] = false;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    // Record the decision on the nodes that read or write memory in a layout-specific way.
    for i in 0..g.nodes.len() {
        let (x, y) = (g.nodes[i].input(0), g.nodes[i].outputs[0]);
        let x_nhwc = x.is_some_and(|x| nhwc[x]);
        let y_nhwc = nhwc[y];
        let n = &mut g.nodes[i];
        if matches!(n.op.as_str(), "GlobalAveragePool" | "GlobalMaxPool") && n.kiln.is_none() {
            if x_nhwc {
                n.attrs.insert(NHWC_ATTR.into(), Attr::Int(1));
            }
            continue;
        }
        // Binary ops broadcast with their shapes permuted to NHWC; MaxPool has its own kernel.
        if n.kiln.is_none() && (BinaryOp::from_op(&n.op).is_some() || n.op == "MaxPool") {
            if y_nhwc {
                n.attrs.insert(NHWC_ATTR.into(), Attr::Int(1));
            }
            continue;
        }
        let Some(KilnOp::QConv { layout, kind, .. }) = &mut n.kiln else {
            continue;
        };
        layout.x_nhwc = x_nhwc;
        layout.y_nhwc = y_nhwc;
        let outs = n.outputs.clone();
        match kind {
            // Output straight into y: no NHWC scratch for the transpose.
            QConvKind::Gemm { .. } if y_nhwc => {
                g.values[outs[4]].shape = vec![crate::ir::Dim::constant(0)];
            }
            // The NHWC kernel's result buffer, when y must be NCHW.
            QConvKind::Depthwise { .. } if x_nhwc && !y_nhwc => {
                g.values[outs[2]].shape = vec![g.values[y].numel()];
            }
            _ => {}
        }
    }
}
