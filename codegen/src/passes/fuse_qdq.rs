//! Static and weight-only quantization (docs/design.md, decision 15).
//!
//! 1. *Static QDQ groups.* `quantize_static(..., QuantFormat.QDQ)` writes every quantized op as
//!    ```text
//!    x_q ─ DequantizeLinear ─ MatMul|Conv(·, DequantizeLinear(W_q) [, DequantizeLinear(B_i32)]) ─ QuantizeLinear ─ y_q
//!    ```
//!    Inference folds the weight's DequantizeLinear and keeps the integers (`Value::dq`); here
//!    the group becomes the equivalent `QLinearMatMul` / `QLinearConv` (per-tensor activation
//!    parameters, weights per tensor or per output channel, an int32 bias whose scale is
//!    `x_s·W_s`), so QDQ and QOperator models share one integer pipeline. Groups that do not
//!    fit stay as they are and run in float (dequantize, float op, quantize).
//! 2. *Lowering.* Every `QLinearMatMul` becomes a `QMatMul` (constant 2-D B: packed for the int8
//!    GEMM; else direct integer loops) and every `QLinearConv` a `KilnOp::QLinearConv`
//!    (constant weights with several channels per group: NHWC + im2col + int8 GEMM per group;
//!    else direct loops); both requantize their i32 accumulators to the 8-bit output.
//! 3. *Weight-only.* A float `MatMul` whose 2-D weight is a dequantized constant (int8, uint8,
//!    int4, uint4; per tensor, per axis or blocked) becomes a `DqMatMul`, which keeps the
//!    integers in the binary and dequantizes them inside the kernel; a following bias `Add`
//!    joins it.
use super::Uses;
use super::fuse_conv::{direct_a, pack_groups};
use crate::error::Result;
use crate::ir::{
    DType, Dim, DqOrigin, DqWeightsOwned, Graph, KilnOp, MapStepOwned, Node, TensorData,
    from_static, numel,
};
use crate::ops::{conv_proxy, qmatmul_dims};
use kiln_runtime::pack::{PackedI8Owned, Weights, padded_k};

pub fn run(g: &mut Graph) -> Result<()> {
    rewrite_qdq(g);
    super::dce::run(g);
    fuse_glue(g);
    super::dce::run(g);
    lower_qlinear(g)?;
    weight_only(g);
    gather_quantized(g);
    conv_weight_only(g);
    Ok(())
}

/// Weight-only `Conv(x, DequantizeLinear(W_q))`: the integers stay in the binary (int4 widened
/// to one byte) and a DequantizeLinear recomputes the float weights into a buffer at the start
/// of each call (a small cost next to the convolution's MACs); `fuse_conv` then runs the usual
/// GEMM or depthwise algorithm on them.
fn conv_weight_only(g: &mut Graph) {
    let mut edits: Vec<(usize, Node)> = Vec::new(); // (insert before node, DequantizeLinear)
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some() || !n.domain.is_empty() || n.op != "Conv" {
            continue;
        }
        let Some(w) = n.input(1) else { continue };
        let Some(o) = g.values[w].dq.as_deref().cloned() else {
            continue;
        };
        let Some(ws) = g.values[w].static_shape() else {
            continue;
        };
        if !matches!(o.q, TensorData::I8(_) | TensorData::U8(_)) {
            continue;
        }
        let name = g.values[w].name.clone();
        let wq = new_const(g, format!("{name}:q"), ws.clone(), o.q.clone());
        let ps: Vec<usize> = match (o.axis, o.block) {
            (None, _) => vec![],
            (Some(_), 0) => vec![o.scale.len()],
            (Some(a), b) => {
                let mut p = ws.clone();
                p[a] = ws[a].div_ceil(b);
                p
            }
        };
        let zd: Vec<i64> = o.zero_point.iter().map(|&z| z as i64).collect();
        let sc = new_const(
            g,
            format!("{name}:scale"),
            ps.clone(),
            TensorData::F32(o.scale),
        );
        let zp = new_const(
            g,
            format!("{name}:zp"),
            ps,
            crate::ops::int_data(o.q.dtype(), &zd),
        );
        let wf = g.add_value(format!("{name}:dequantized"), DType::F32, from_static(&ws));
        let mut attrs = std::collections::BTreeMap::new();
        if let Some(a) = o.axis {
            attrs.insert("axis".to_string(), crate::ir::Attr::Int(a as i64));
            if o.block > 0 {
                attrs.insert(
                    "block_size".to_string(),
                    crate::ir::Attr::Int(o.block as i64),
                );
            }
        }
        g.nodes[i].inputs[1] = Some(wf);
        edits.push((
            i,
            Node {
                name: format!("{}:dequantize_weights", n.name),
                op: "DequantizeLinear".into(),
                domain: String::new(),
                inputs: vec![Some(wq), Some(sc), Some(zp)],
                outputs: vec![wf],
                attrs,
                kiln: None,
            },
        ));
    }
    if edits.is_empty() {
        return;
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        for e in edits.iter().filter(|e| e.0 == i) {
            g.nodes.push(e.1.clone());
        }
        g.nodes.push(n);
    }
}

/// `Gather(DequantizeLinear(table_q), idx)` → `DequantizeLinear(Gather(table_q, idx))`: a
/// quantized embedding table stays quantized in the binary (int4 tables widened to one byte per
/// value) and only the gathered rows are dequantized, per tensor or along an axis other than
/// the gathered one.
fn gather_quantized(g: &mut Graph) {
    let mut edits: Vec<(usize, Node)> = Vec::new(); // (insert after node, DequantizeLinear)
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some() || !n.domain.is_empty() || n.op != "Gather" {
            continue;
        }
        let (Some(d), Some(idx)) = (n.input(0), n.input(1)) else {
            continue;
        };
        let Some(o) = g.values[d].dq.as_deref().cloned() else {
            continue;
        };
        let rank = g.values[d].shape.len();
        let Ok(ga) = crate::ops::axis(n.attr_i("axis").ok().flatten().unwrap_or(0), rank.max(1))
        else {
            continue;
        };
        if !matches!(o.q, TensorData::I8(_) | TensorData::U8(_)) || o.block != 0 {
            continue;
        }
        let ir = g.values[idx].shape.len();
        let Some(ds) = g.values[d].static_shape() else {
            continue;
        };
        // Per-row scales of a [V, D] table gathered along its rows: gather the scales too and
        // dequantize each row as one block of the last axis.
        let per_row = o.axis == Some(ga) && ga == 0 && rank == 2;
        let out_axis = match o.axis {
            None => None,
            Some(a) if a < ga => Some(a),
            Some(a) if a > ga => Some(a - 1 + ir),
            _ if per_row => Some(ir),
            _ => continue,
        };
        let out = n.outputs[0];
        let name = g.values[d].name.clone();
        let wq = new_const(g, format!("{name}:q"), ds.clone(), o.q.clone());
        let ps: Vec<usize> = if o.axis.is_some() {
            vec![o.scale.len()]
        } else {
            vec![]
        };
        let ps = if per_row { vec![ds[0], 1] } else { ps };
        let zd: Vec<i64> = o.zero_point.iter().map(|&z| z as i64).collect();
        let mut ws = new_const(
            g,
            format!("{name}:scale"),
            ps.clone(),
            TensorData::F32(o.scale),
        );
        let mut wz = new_const(
            g,
            format!("{name}:zp"),
            ps,
            crate::ops::int_data(o.q.dtype(), &zd),
        );
        let oname = g.values[out].name.clone();
        let oshape = g.values[out].shape.clone();
        let gq = g.add_value(format!("{oname}:q"), o.q.dtype(), oshape.clone());
        let node = &mut g.nodes[i];
        node.inputs[0] = Some(wq);
        node.outputs = vec![gq];
        let mut attrs = std::collections::BTreeMap::new();
        if let Some(a) = out_axis {
            attrs.insert("axis".to_string(), crate::ir::Attr::Int(a as i64));
        }
        if per_row {
            attrs.insert("block_size".to_string(), crate::ir::Attr::Int(ds[1] as i64));
            let mut pshape = oshape.clone();
            *pshape.last_mut().unwrap() = Dim::constant(1);
            let gs = g.add_value(format!("{oname}:scale"), DType::F32, pshape.clone());
            let gz = g.add_value(format!("{oname}:zp"), o.q.dtype(), pshape);
            for (src, dst, what) in [(ws, gs, "scale"), (wz, gz, "zp")] {
                edits.push((
                    i,
                    Node {
                        name: format!("{}:gather_{what}", n.name),
                        op: "Gather".into(),
                        domain: String::new(),
                        inputs: vec![Some(src), Some(idx)],
                        outputs: vec![dst],
                        attrs: Default::default(),
                        kiln: None,
                    },
                ));
            }
            (ws, wz) = (gs, gz);
        }
        edits.push((
            i,
            Node {
                name: format!("{}:dequantize", n.name),
                op: "DequantizeLinear".into(),
                domain: String::new(),
                inputs: vec![Some(gq), Some(ws), Some(wz)],
                outputs: vec![out],
                attrs,
                kiln: None,
            },
        ));
    }
    if edits.is_empty() {
        return;
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        g.nodes.push(n);
        for e in edits.iter().filter(|e| e.0 == i) {
            g.nodes.push(e.1.clone());
        }
    }
}

fn new_const(g: &mut Graph, name: String, shape: Vec<usize>, data: TensorData) -> usize {
    let v = g.add_value(name, data.dtype(), from_static(&shape));
    g.values[v].konst = Some(data);
    v
}

fn scalar_const(g: &Graph, v: usize) -> bool {
    g.values[v].konst.as_ref().is_some_and(|k| k.len() == 1)
}

/// A zero point value: the given one, or a new constant 0 of `dtype`.
fn zp_or_zero(g: &mut Graph, zp: Option<usize>, dtype: DType, name: &str) -> usize {
    zp.unwrap_or_else(|| {
        let d = crate::ops::int_data(dtype, &[0]);
        new_const(g, format!("{name}:zero_point"), vec![], d)
    })
}

/// `v = DequantizeLinear(x_q, scale, zp)` with a run-time 8-bit `x_q` and constant per-tensor
/// parameters: `(x_q, scale, zp)`.
fn dq_input(g: &Graph, uses: &Uses, v: usize) -> Option<(usize, usize, Option<usize>)> {
    let n = &g.nodes[uses.producers[v]?];
    if n.op != "DequantizeLinear" || !n.domain.is_empty() || n.kiln.is_some() {
        return None;
    }
    let xq = n.input(0)?;
    let xv = &g.values[xq];
    if xv.konst.is_some() || xv.int4 || !matches!(xv.dtype, DType::U8 | DType::I8) {
        return None;
    }
    let s = n.input(1)?;
    if !scalar_const(g, s) || n.attr_i("block_size").ok()?.unwrap_or(0) != 0 {
        return None;
    }
    let z = n.input(2);
    if z.is_some_and(|z| !scalar_const(g, z)) {
        return None;
    }
    Some((xq, s, z))
}

/// `v`'s only consumer is `QuantizeLinear(v, scale, zp)` to 8 bits with constant per-tensor
/// parameters: `(node, scale, zp, output)`.
fn q_output(g: &Graph, uses: &Uses, v: usize) -> Option<(usize, usize, Option<usize>, usize)> {
    let qi = uses.sole_consumer(v)?;
    let n = &g.nodes[qi];
    if n.op != "QuantizeLinear" || !n.domain.is_empty() || n.kiln.is_some() || n.input(0)? != v {
        return None;
    }
    let s = n.input(1)?;
    let z = n.input(2);
    if !scalar_const(g, s) || z.is_some_and(|z| !scalar_const(g, z)) {
        return None;
    }
    let out = n.outputs[0];
    if !matches!(g.values[out].dtype, DType::U8 | DType::I8) {
        return None;
    }
    Some((qi, s, z, out))
}

/// The 8-bit integers of a dequantized constant weight, quantized per tensor or along `axis`
/// (no blocks): `(q, scales, zero points)`.
fn weight_origin(g: &Graph, w: usize, axis: usize) -> Option<&DqOrigin> {
    let o = g.values[w].dq.as_deref()?;
    let ok = matches!(o.q, TensorData::I8(_) | TensorData::U8(_))
        && !o.int4
        && o.block == 0
        && (o.axis.is_none() || o.axis == Some(axis));
    ok.then_some(o)
}

/// Constants `[W_q, W_s, W_zp]` for a QLinear node from a weight's origin.
fn weight_consts(g: &mut Graph, w: usize, o: &DqOrigin) -> [usize; 3] {
    let shape = g.values[w].static_shape().unwrap_or_default();
    let name = g.values[w].name.clone();
    let ps: Vec<usize> = if o.axis.is_some() {
        vec![o.scale.len()]
    } else {
        vec![]
    };
    let zd: Vec<i64> = o.zero_point.iter().map(|&z| z as i64).collect();
    let zdata = crate::ops::int_data(o.q.dtype(), &zd);
    [
        new_const(g, format!("{name}:q"), shape, o.q.clone()),
        new_const(
            g,
            format!("{name}:scale"),
            ps.clone(),
            TensorData::F32(o.scale.clone()),
        ),
        new_const(g, format!("{name}:zp"), ps, zdata),
    ]
}

fn rewrite_qdq(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut replace: Vec<(usize, Node, usize)> = Vec::new(); // (op node, new node, Q node)
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some()
            || !n.domain.is_empty()
            || !matches!(n.op.as_str(), "MatMul" | "Conv" | "Gemm")
        {
            continue;
        }
        let (Some(x), Some(w)) = (n.input(0), n.input(1)) else {
            continue;
        };
        let Some((xq, xs, xz)) = dq_input(g, &uses, x) else {
            continue;
        };
        let Some((qi, ys, yz, out)) = q_output(g, &uses, n.outputs[0]) else {
            continue;
        };
        let is_conv = n.op == "Conv";
        let gemm = n.op == "Gemm";
        let trans_b = gemm && n.attr_i("transB").ok().flatten().unwrap_or(0) != 0;
        if gemm
            && (n.attr_i("transA").ok().flatten().unwrap_or(0) != 0
                || n.attr_f("alpha").ok().flatten().unwrap_or(1.0) != 1.0
                || n.attr_f("beta").ok().flatten().unwrap_or(1.0) != 1.0
                || g.values[x].shape.len() != 2)
        {
            continue;
        }
        if !is_conv && (g.values[w].shape.len() != 2 || g.values[x].shape.len() < 2) {
            continue;
        }
        let w_axis = if is_conv || trans_b { 0 } else { 1 };
        let Some(o) = weight_origin(g, w, w_axis).cloned() else {
            continue;
        };
        let o = if trans_b {
            let ws = g.values[w].static_shape().unwrap_or_default();
            transpose_origin(&o, ws[0], ws[1])
        } else {
            o
        };
        // Bias (Conv's B, Gemm's C): int32, zero point 0, scale x_s·W_s per output channel
        // (what quantizers write), one value per channel.
        let mut bias = None;
        let n_out = g.values[n.outputs[0]].shape.get(1).and_then(Dim::as_usize);
        if (is_conv || gemm)
            && let Some(b) = n.input(2)
        {
            let xs_v = g.values[xs].konst.as_ref().unwrap().as_f32()[0];
            let ok = g.values[b].dq.as_deref().is_some_and(|bo| {
                let TensorData::I32(_) = bo.q else {
                    return false;
                };
                let c = bo.q.len();
                Some(c) == n_out
                    && bo.zero_point.iter().all(|&z| z == 0)
                    && (0..c).all(|j| {
                        let want = xs_v * o.scale[if o.scale.len() == 1 { 0 } else { j }];
                        let have = bo.scale[if bo.scale.len() == 1 { 0 } else { j }];
                        (have - want).abs() <= 1e-6 * want.abs()
                    })
            });
            if !ok {
                continue;
            }
            let bo = g.values[b].dq.clone().unwrap();
            let name = format!("{}:bias_i32", g.values[b].name);
            bias = Some(new_const(g, name, vec![bo.q.len()], bo.q.clone()));
        }
        let xzv = zp_or_zero(g, xz, g.values[xq].dtype, &g.values[xq].name.clone());
        let yzv = zp_or_zero(g, yz, g.values[out].dtype, &g.values[out].name.clone());
        let [wq, ws, wz] = weight_consts(g, w, &o);
        if trans_b {
            // The constants hold Wᵀ ([K][N]); give the value that shape.
            let s = g.values[w].shape.clone();
            g.values[wq].shape = vec![s[1].clone(), s[0].clone()];
        }
        let mut inputs = vec![
            Some(xq),
            Some(xs),
            Some(xzv),
            Some(wq),
            Some(ws),
            Some(wz),
            Some(ys),
            Some(yzv),
        ];
        if let Some(b) = bias {
            inputs.push(Some(b));
        }
        let node = Node {
            name: n.name.clone(),
            op: if is_conv {
                "QLinearConv"
            } else {
                "QLinearMatMul"
            }
            .into(),
            domain: String::new(),
            inputs,
            outputs: vec![out],
            attrs: if is_conv {
                n.attrs.clone()
            } else {
                Default::default()
            },
            kiln: None,
        };
        replace.push((i, node, qi));
    }
    if replace.is_empty() {
        return;
    }
    let remove: std::collections::HashSet<usize> = replace.iter().map(|r| r.2).collect();
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(r) = replace.iter().position(|r| r.0 == i) {
            g.nodes.push(replace[r].1.clone());
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
    }
}

/// A constant operand of an elementwise op on a tensor of `shape`: a scalar, or one value per
/// index of one axis (right-aligned broadcasting); `(values, axis)`.
fn channel_const(g: &Graph, v: usize, shape: &[Dim]) -> Option<(Vec<f32>, Option<usize>)> {
    let TensorData::F32(d) = g.values[v].konst.as_ref()? else {
        return None;
    };
    let cs = g.values[v].static_shape()?;
    if cs.len() > shape.len() || d.is_empty() {
        return None;
    }
    let off = shape.len() - cs.len();
    let non1: Vec<usize> = (0..cs.len()).filter(|&i| cs[i] != 1).collect();
    match non1.as_slice() {
        [] => Some((vec![d[0]], None)),
        [p] if shape[p + off].as_usize() == Some(cs[*p]) => Some((d.clone(), Some(p + off))),
        _ => None,
    }
}

fn scalar_of(g: &Graph, v: Option<usize>) -> Option<f64> {
    match v {
        None => Some(0.0),
        Some(v) => {
            let k = g.values[v].konst.as_ref()?;
            Some(match k {
                TensorData::F32(d) => d[0] as f64,
                other => other.as_i64().ok()?[0] as f64,
            })
        }
    }
}

/// `DequantizeLinear → [Add|Sub|Mul by a constant, BatchNormalization, Relu, Clip, elementwise activations]… →
/// QuantizeLinear` (the float glue static QDQ graphs keep between their quantized MatMuls and
/// Convs: bias Adds, BatchNorms, activations) becomes one `QdqMap` pass, 8-bit to 8-bit.
fn fuse_glue(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut replace: Vec<(usize, Node)> = Vec::new();
    let mut remove: std::collections::HashSet<usize> = std::collections::HashSet::new();
    for i in 0..g.nodes.len() {
        let dn = g.nodes[i].clone();
        if dn.op != "DequantizeLinear" || !dn.domain.is_empty() || dn.kiln.is_some() {
            continue;
        }
        let d_out = dn.outputs[0];
        let Some((xq, xs, xz)) = dq_input(g, &uses, d_out) else {
            continue;
        };
        let shape = g.values[d_out].shape.clone();
        let (mut cur, mut steps, mut chain, mut axis) = (d_out, Vec::new(), Vec::new(), None);
        let mut ok_axis = true;
        let q = loop {
            let Some(ci) = uses.sole_consumer(cur) else {
                break None;
            };
            let cn = g.nodes[ci].clone();
            if cn.kiln.is_some() || !cn.domain.is_empty() {
                break None;
            }
            if cn.op == "QuantizeLinear" {
                break q_output(g, &uses, cur);
            }
            let o = cn.outputs[0];
            if cn.outputs.len() != 1
                || g.values[o].shape != shape
                || g.values[o].dtype != DType::F32
            {
                break None;
            }
            let mut set_axis = |a: Option<usize>| match (axis, a) {
                (_, None) => {}
                (None, Some(a)) => axis = Some(a),
                (Some(b), Some(a)) => ok_axis &= a == b,
            };
            let step = match cn.op.as_str() {
                "Relu" => MapStepOwned::Relu,
                "Clip" => match crate::ops::clip_bounds(g, &cn) {
                    Ok((lo, hi)) => MapStepOwned::Clip(lo, hi),
                    Err(_) => break None,
                },
                "Add" | "Sub" | "Mul" => {
                    let (Some(a), Some(b)) = (cn.input(0), cn.input(1)) else {
                        break None;
                    };
                    if cn.op == "Sub" && a != cur {
                        break None;
                    }
                    let other = if a == cur { b } else { a };
                    let Some((vals, ax)) = channel_const(g, other, &shape) else {
                        break None;
                    };
                    set_axis(ax);
                    match cn.op.as_str() {
                        "Add" => MapStepOwned::Add(vals),
                        "Sub" => MapStepOwned::Sub(vals),
                        _ => MapStepOwned::Mul(vals),
                    }
                }
                "BatchNormalization" if shape.len() >= 2 => {
                    match crate::ops::conv::batch_norm_affine(g, &cn) {
                        Ok((s, t)) if shape[1].as_usize() == Some(s.len()) => {
                            set_axis(Some(1));
                            MapStepOwned::Affine(s, t)
                        }
                        _ => break None,
                    }
                }
                _ => match crate::ops::UnaryOp::from_node(&cn) {
                    // Gelu's float path is a SIMD kernel, not the scalar function.
                    Ok(Some(u)) if !matches!(u, crate::ops::UnaryOp::Gelu) => {
                        MapStepOwned::Unary(u)
                    }
                    _ => break None,
                },
            };
            steps.push(step);
            chain.push(ci);
            cur = o;
        };
        let Some((qi, ys, yz, out)) = q else { continue };
        if steps.is_empty() || !ok_axis {
            continue;
        }
        let (Some(x_scale), Some(x_zp), Some(y_scale), Some(y_zp)) = (
            scalar_of(g, Some(xs)),
            scalar_of(g, xz),
            scalar_of(g, Some(ys)),
            scalar_of(g, yz),
        ) else {
            continue;
        };
        let (outer, ch, inner) = match axis {
            None => (numel(&shape), 1, Dim::constant(1)),
            Some(a) => match shape[a].as_usize() {
                Some(c) => (numel(&shape[..a]), c, numel(&shape[a + 1..])),
                None => continue,
            },
        };
        let byte = |v: usize| match g.values[v].dtype {
            DType::U8 => Some(false),
            DType::I8 => Some(true),
            _ => None,
        };
        let lut = match (byte(xq), byte(out)) {
            (Some(xs8), Some(ys8)) if ch * 256 <= super::qdq_lut::MAX_LUT_BYTES => {
                Some(super::qdq_lut::build(
                    &steps,
                    ch,
                    (x_scale as f32, x_zp as i32, xs8),
                    (y_scale as f32, y_zp as i32, ys8),
                ))
            }
            _ => None,
        };
        let node = Node {
            name: g.nodes[qi].name.clone(),
            op: "QdqMap".into(),
            domain: "kiln".into(),
            inputs: vec![Some(xq)],
            outputs: vec![out],
            attrs: Default::default(),
            kiln: Some(KilnOp::QdqMap {
                outer,
                ch,
                inner,
                x_scale: x_scale as f32,
                x_zp: x_zp as i32,
                steps,
                y_scale: y_scale as f32,
                y_zp: y_zp as i32,
                lut,
            }),
        };
        remove.extend(chain);
        replace.push((qi, node));
    }
    if replace.is_empty() {
        return;
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(r) = replace.iter().position(|r| r.0 == i) {
            g.nodes.push(replace[r].1.clone());
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
    }
}

fn zero_points_i32(g: &Graph, z: Option<usize>) -> Option<Vec<i32>> {
    match z {
        None => Some(vec![0]),
        Some(z) => Some(
            g.values[z]
                .konst
                .as_ref()?
                .as_i64()
                .ok()?
                .into_iter()
                .map(|v| v as i32)
                .collect(),
        ),
    }
}

fn lower_qlinear(g: &mut Graph) -> Result<()> {
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some() || !n.domain.is_empty() {
            continue;
        }
        match n.op.as_str() {
            "QLinearMatMul" => {
                let (a, b) = (n.input(0).unwrap(), n.input(3).unwrap());
                let d = qmatmul_dims(g, &g.values[a].shape, &g.values[b].shape)
                    .map_err(|e| n.err(e))?;
                let base = g.values[n.outputs[0]].name.clone();
                let rows = d.batches.mul(&d.m);
                let (k, nn) = (d.k.as_usize(), d.n.as_usize());
                let zps = zero_points_i32(g, n.input(5));
                let packed = match (&g.values[b].konst, k, nn, zps) {
                    (
                        Some(w @ (TensorData::I8(_) | TensorData::U8(_))),
                        Some(k),
                        Some(nn),
                        Some(z),
                    ) if g.values[b].shape.len() == 2 && k > 0 && k <= super::fuse_quant::MAX_K => {
                        let ones = vec![1.0f32; nn];
                        let wt = match w {
                            TensorData::I8(v) => Weights::I8(v),
                            TensorData::U8(v) => Weights::U8(v),
                            _ => unreachable!(),
                        };
                        Some(Box::new(PackedI8Owned::pack(wt, k, nn, &z, &ones, None)))
                    }
                    _ => None,
                };
                let acc = g.add_value(format!("{base}:acc"), DType::I32, vec![rows.mul(&d.n)]);
                let mut outputs = vec![n.outputs[0], acc];
                let node = &mut g.nodes[i];
                if let Some(p) = &packed {
                    let pk = padded_k(p.k);
                    node.inputs[3] = None;
                    if node.inputs.len() > 5 {
                        node.inputs[5] = None;
                    }
                    let ap = g.add_value(
                        format!("{base}:a"),
                        DType::U8,
                        vec![rows.mul(&Dim::from(pk))],
                    );
                    let rt = g.add_value(format!("{base}:rowterm"), DType::I32, vec![rows.clone()]);
                    outputs.push(ap);
                    outputs.push(rt);
                }
                let node = &mut g.nodes[i];
                node.outputs = outputs;
                node.kiln = Some(KilnOp::QMatMul {
                    batches: d.batches,
                    w_batches: d.w_batches,
                    m: d.m,
                    k: d.k,
                    n: d.n,
                    packed,
                });
            }
            "QLinearConv" => {
                let spec = crate::ops::conv::conv_spec(g, &conv_proxy(&n)).map_err(|e| n.err(e))?;
                let w = n.input(3).unwrap();
                let base = g.values[n.outputs[0]].name.clone();
                let zps = zero_points_i32(g, n.input(5));
                let packed = match (&g.values[w].konst, zps) {
                    (Some(wd @ (TensorData::I8(_) | TensorData::U8(_))), Some(z))
                        if !spec.depthwise()
                            && spec.k() > 0
                            && spec.k() <= super::fuse_quant::MAX_K =>
                    {
                        let ones = vec![1.0f32; spec.c_out];
                        Some((pack_groups(&spec, wd, &z, &ones, None), direct_a(&spec)))
                    }
                    _ => None,
                };
                // Depthwise, constant weights: centered weights for the exact f32 kernel
                // (≤ 258 taps keeps every window sum below 2^24: exact).
                let xt = g.values[n.input(0).unwrap()].dtype;
                let depthwise = match (&g.values[w].konst, zero_points_i32(g, n.input(5))) {
                    (Some(wd @ (TensorData::I8(_) | TensorData::U8(_))), Some(z))
                        if packed.is_none()
                            && spec.depthwise()
                            && spec.kernel[0] * spec.kernel[1] <= 258
                            && matches!(xt, DType::U8 | DType::I8) =>
                    {
                        let wv = wd.as_i64().unwrap_or_default();
                        let per = spec.kernel[0] * spec.kernel[1];
                        Some(
                            wv.iter()
                                .enumerate()
                                .map(|(i, &v)| {
                                    let co = i / per;
                                    (v as i32 - z[if z.len() == 1 { 0 } else { co }]) as f32
                                })
                                .collect::<Vec<f32>>(),
                        )
                    }
                    _ => None,
                };
                let rows = spec.batch.mul(&spec.pixels());
                let mut outputs = vec![n.outputs[0]];
                if let Some((_, direct)) = &packed {
                    let acc = g.add_value(
                        format!("{base}:acc"),
                        DType::I32,
                        vec![rows.mul(&Dim::from(spec.c_out))],
                    );
                    let xlen = g.values[n.input(0).unwrap()].numel();
                    let q = g.add_value(format!("{base}:q"), DType::U8, vec![xlen]);
                    let a_len = if *direct {
                        Dim::constant(0)
                    } else {
                        rows.mul(&Dim::from(padded_k(spec.k())))
                    };
                    let a = g.add_value(format!("{base}:a"), DType::U8, vec![a_len]);
                    let rt = g.add_value(format!("{base}:rowterm"), DType::I32, vec![rows]);
                    outputs.extend([acc, q, a, rt]);
                    let node = &mut g.nodes[i];
                    node.inputs[3] = None;
                    if node.inputs.len() > 5 {
                        node.inputs[5] = None;
                    }
                } else if depthwise.is_some() {
                    let olen = g.values[n.outputs[0]].numel();
                    let acc = g.add_value(format!("{base}:acc"), DType::F32, vec![olen]);
                    outputs.push(acc);
                    let node = &mut g.nodes[i];
                    node.inputs[3] = None;
                    if node.inputs.len() > 5 {
                        node.inputs[5] = None;
                    }
                } else {
                    let olen = g.values[n.outputs[0]].numel();
                    let acc = g.add_value(format!("{base}:acc"), DType::I32, vec![olen]);
                    outputs.push(acc);
                }
                let node = &mut g.nodes[i];
                node.outputs = outputs;
                node.kiln = Some(KilnOp::QLinearConv {
                    spec,
                    packed,
                    depthwise,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parameter grid `(bk, bn)` of a `[K][N]` weight quantized per tensor, per axis or blocked.
fn grid(o: &DqOrigin, k: usize, n: usize) -> Option<(usize, usize)> {
    Some(match (o.axis, o.block) {
        (None, _) => (k.max(1), n.max(1)),
        (Some(0), 0) => (1, n.max(1)),
        (Some(1), 0) => (k.max(1), 1),
        (Some(0), b) => (b, 1),
        (Some(1), b) => (1, b),
        _ => return None,
    })
}

/// The origin of `Wᵀ` for a `[r][c]` weight (quantized along axis 0 or 1, or per tensor).
fn transpose_origin(o: &DqOrigin, r: usize, c: usize) -> DqOrigin {
    fn tr<T: Copy>(v: &[T], r: usize, c: usize) -> Vec<T> {
        (0..c * r).map(|i| v[(i % r) * c + i / r]).collect()
    }
    let q = match &o.q {
        TensorData::I8(v) => TensorData::I8(tr(v, r, c)),
        TensorData::U8(v) => TensorData::U8(tr(v, r, c)),
        other => other.clone(),
    };
    // Blocked parameters have the weight's rank: transpose their grid too.
    let (scale, zero_point) = match (o.axis, o.block) {
        (Some(a), b) if b > 0 => {
            let (pr, pc) = if a == 0 {
                (r.div_ceil(b), c)
            } else {
                (r, c.div_ceil(b))
            };
            (tr(&o.scale, pr, pc), tr(&o.zero_point, pr, pc))
        }
        _ => (o.scale.clone(), o.zero_point.clone()),
    };
    DqOrigin {
        q,
        int4: o.int4,
        scale,
        zero_point,
        axis: o.axis.map(|a| 1 - a),
        block: o.block,
    }
}

fn weight_only(g: &mut Graph) {
    let uses = Uses::of(g);
    let mut remove = std::collections::HashSet::new();
    for i in 0..g.nodes.len() {
        let n = g.nodes[i].clone();
        if n.kiln.is_some() || !n.domain.is_empty() || !matches!(n.op.as_str(), "MatMul" | "Gemm") {
            continue;
        }
        let (Some(x), Some(w)) = (n.input(0), n.input(1)) else {
            continue;
        };
        let gemm = n.op == "Gemm";
        let trans_b = gemm && n.attr_i("transB").ok().flatten().unwrap_or(0) != 0;
        if gemm
            && (n.attr_i("transA").ok().flatten().unwrap_or(0) != 0
                || n.attr_f("alpha").ok().flatten().unwrap_or(1.0) != 1.0
                || n.attr_f("beta").ok().flatten().unwrap_or(1.0) != 1.0
                || g.values[x].shape.len() != 2)
        {
            continue;
        }
        let (xv, wv) = (&g.values[x], &g.values[w]);
        if xv.dtype != DType::F32 || xv.konst.is_some() || xv.shape.is_empty() {
            continue;
        }
        let Some(o) = wv.dq.as_deref() else { continue };
        let Some(ws) = wv.static_shape() else {
            continue;
        };
        if ws.len() != 2 || !matches!(o.q, TensorData::I8(_) | TensorData::U8(_)) {
            continue;
        }
        let o = &if trans_b {
            transpose_origin(o, ws[0], ws[1])
        } else {
            o.clone()
        };
        let (k, nn) = if trans_b {
            (ws[1], ws[0])
        } else {
            (ws[0], ws[1])
        };
        if xv.shape.last().and_then(Dim::as_usize) != Some(k) {
            continue;
        }
        // Gemm's C: a constant per-column bias (or none).
        let gemm_bias = match n.input(2) {
            Some(cv) if gemm => match super::fuse_quant::column_vector(g, cv, nn) {
                Some(b) => Some(b),
                None => continue,
            },
            _ => None,
        };
        let Some((bk, bn)) = grid(o, k, nn) else {
            continue;
        };
        let signed = matches!(o.q, TensorData::I8(_));
        let bytes: Vec<u8> = match &o.q {
            TensorData::I8(v) => v.iter().map(|&b| b as u8).collect(),
            TensorData::U8(v) => v.clone(),
            _ => unreachable!(),
        };
        let (data, bits) = if o.int4 {
            let mut d = vec![0u8; bytes.len().div_ceil(2)];
            for (j, b) in bytes.iter().enumerate() {
                d[j / 2] |= (b & 0xf) << (4 * (j % 2));
            }
            (d, 4)
        } else {
            (bytes, 8)
        };
        let m = numel(&xv.shape[..xv.shape.len() - 1]);
        let mut out = n.outputs[0];
        let mut bias = gemm_bias;
        if bias.is_none()
            && let Some(a) = uses.sole_consumer(out)
        {
            let an = &g.nodes[a];
            if an.op == "Add" && an.domain.is_empty() && an.kiln.is_none() {
                let other = if an.input(0) == Some(out) {
                    an.input(1)
                } else {
                    an.input(0)
                };
                if let Some(b) = other.and_then(|b| super::fuse_quant::column_vector(g, b, nn))
                    && g.values[an.outputs[0]].shape == g.values[out].shape
                {
                    bias = Some(b);
                    remove.insert(a);
                    out = an.outputs[0];
                }
            }
        }
        let w = DqWeightsOwned {
            k,
            n: nn,
            data,
            bits,
            signed,
            bk,
            bn,
            scale: o.scale.clone(),
            zero_point: o.zero_point.clone(),
            bias,
        };
        let node = &mut g.nodes[i];
        node.inputs = vec![Some(x)];
        node.outputs = vec![out];
        node.op = "DqMatMul".into();
        node.domain = "kiln".into();
        node.attrs.clear();
        node.kiln = Some(KilnOp::DqMatMul { m, w: Box::new(w) });
    }
    if !remove.is_empty() {
        let old = std::mem::take(&mut g.nodes);
        for (i, n) in old.into_iter().enumerate() {
            if !remove.contains(&i) {
                g.nodes.push(n);
            }
        }
    }
}
