//! Reductions (ReduceMean, ReduceSum) and LayerNormalization.
use super::{OpDef, OutInfo, axis, op, req};
use crate::error::{Result, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::{layernorm as rl, reduce as rr};

const REDUCE: &str = "one run of adjacent axes (attribute or, from opset 13/18, input), keepdims";

const LAYER_NORMALIZATION_NOTES: &str =
    "any axis; the decomposed ReduceMean/Sub/Pow/… pattern is fused into it";

/// LayerNormalization and the reductions (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "LayerNormalization",
        LAYER_NORMALIZATION_NOTES,
        |cx, n| infer_layer_norm(cx.g, n),
        crate::emit::norm::layer_norm,
    ),
    op(
        "ReduceMean",
        REDUCE,
        |cx, n| infer_reduce(cx.g, n),
        crate::emit::norm::reduce,
    ),
    op(
        "ReduceSum",
        REDUCE,
        |cx, n| infer_reduce(cx.g, n),
        crate::emit::norm::reduce,
    ),
];

/// Reduction geometry: `(outer, len, inner, output shape)`. The reduced axes must be one
/// contiguous run (what normalisation and pooling graphs use).
pub fn reduce_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim, Dim, Vec<Dim>)> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    // ReduceSum takes axes as an input from opset 13, the others from opset 18.
    let axes_from_input = if n.op == "ReduceSum" {
        g.opset >= 13
    } else {
        g.opset >= 18
    };
    let axes: Option<Vec<i64>> = if axes_from_input {
        match n.input(1) {
            None => None,
            Some(v) => match &g.values[v].konst {
                Some(k) => Some(k.as_i64()?),
                None => unsupported!("{} axes computed at run time are not supported", n.op),
            },
        }
    } else {
        n.attr_ints("axes")?
    };
    let keep = n.attr_i("keepdims")?.unwrap_or(1) != 0;
    let noop_empty = n.attr_i("noop_with_empty_axes")?.unwrap_or(0) != 0;
    let mut ax: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a.iter().map(|&a| axis(a, r)).collect::<Result<_>>()?,
        _ if noop_empty => Vec::new(),
        _ => (0..r).collect(),
    };
    ax.sort_unstable();
    ax.dedup();
    if ax.is_empty() {
        return Ok((
            numel(&x.shape),
            Dim::constant(1),
            Dim::constant(1),
            x.shape.clone(),
        ));
    }
    if ax.windows(2).any(|w| w[1] != w[0] + 1) {
        unsupported!("{} over non-adjacent axes {ax:?} is not supported", n.op);
    }
    let (first, last) = (ax[0], *ax.last().unwrap());
    let outer = numel(&x.shape[..first]);
    let len = numel(&x.shape[first..=last]);
    let inner = numel(&x.shape[last + 1..]);
    let shape: Vec<Dim> = x
        .shape
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            if ax.contains(&i) {
                keep.then(|| Dim::constant(1))
            } else {
                Some(d.clone())
            }
        })
        .collect();
    Ok((outer, len, inner, shape))
}

pub fn infer_reduce(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "{} on {:?} tensors is not supported (float32 only)",
            n.op,
            x.dtype
        );
    }
    let (outer, len, inner, shape) = reduce_dims(g, n)?;
    if let (Some(TensorData::F32(v)), Some(os), Some(o), Some(l), Some(i)) = (
        &x.konst,
        crate::ir::static_shape(&shape),
        outer.as_usize(),
        len.as_usize(),
        inner.as_usize(),
    ) {
        let mut out = vec![0.0; o * i];
        if n.op == "ReduceSum" {
            rr::reduce_sum(v, &mut out, o, l, i);
        } else {
            rr::reduce_mean(v, &mut out, o, l, i);
        }
        return Ok(vec![OutInfo::konst(os, TensorData::F32(out))]);
    }
    Ok(vec![OutInfo::new(DType::F32, shape)])
}

/// LayerNormalization geometry `(outer, len)`; gamma/beta must cover exactly the normalised axes.
pub fn layer_norm_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim)> {
    let x = &g.values[req(n, 0)?];
    let a = axis(n.attr_i("axis")?.unwrap_or(-1), x.shape.len())?;
    let len = numel(&x.shape[a..]);
    for i in [1, 2] {
        if let Some(v) = n.input(i) {
            let p = &g.values[v];
            if p.numel() != len || p.dtype != DType::F32 {
                unsupported!(
                    "LayerNormalization {} of shape {} must be float32 covering the normalised axes {}",
                    if i == 1 { "scale" } else { "bias" },
                    g.show_shape(&p.shape),
                    g.show_shape(&x.shape[a..])
                );
            }
        }
    }
    Ok((numel(&x.shape[..a]), len))
}

pub fn infer_layer_norm(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "LayerNormalization on {:?} is not supported (float32 only)",
            x.dtype
        );
    }
    if n.attr_i("stash_type")?.unwrap_or(1) != 1 {
        unsupported!("LayerNormalization with stash_type != 1 is not supported");
    }
    let (outer, len) = layer_norm_dims(g, n)?;
    let eps = n.attr_f("epsilon")?.unwrap_or(1e-5);
    if let (Some(TensorData::F32(v)), Some(s), Some(o), Some(l)) =
        (&x.konst, x.static_shape(), outer.as_usize(), len.as_usize())
    {
        let gamma = n
            .input(1)
            .and_then(|v| g.values[v].konst.as_ref())
            .map(|k| k.as_f32());
        let beta = n
            .input(2)
            .and_then(|v| g.values[v].konst.as_ref())
            .map(|k| k.as_f32());
        if let Some(gamma) = gamma {
            let mut out = vec![0.0; v.len()];
            rl::layer_norm(v, &gamma, beta.as_deref(), o, l, eps, &mut out, None);
            return Ok(vec![OutInfo::konst(s, TensorData::F32(out))]);
        }
    }
    // Mean and InvStdDev (training artefacts) are typed so that unused ones pass; emission
    // rejects a graph that reads them.
    let a = axis(n.attr_i("axis")?.unwrap_or(-1), x.shape.len())?;
    let stat: Vec<Dim> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, d)| if i < a { d.clone() } else { Dim::constant(1) })
        .collect();
    let mut outs = vec![
        OutInfo::new(DType::F32, x.shape.clone()),
        OutInfo::new(DType::F32, stat.clone()),
        OutInfo::new(DType::F32, stat),
    ];
    outs.truncate(n.outputs.len().max(1));
    Ok(outs)
}
