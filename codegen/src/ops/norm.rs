//! LayerNormalization (with its Mean/InvStdDev outputs) and RMSNormalization.
use super::{OpDef, OutInfo, axis, op, req};
use crate::error::{Result, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::layernorm as rl;

const LAYER_NORMALIZATION_NOTES: &str = "any axis; Mean and InvStdDev outputs; the decomposed ReduceMean/Sub/Pow/… pattern is fused into it";
const RMS_NOTES: &str = "f32; any axis; the scale covers the normalised axes";

/// LayerNormalization and RMSNormalization (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "LayerNormalization",
        LAYER_NORMALIZATION_NOTES,
        |cx, n| infer_layer_norm(cx.g, n),
        crate::emit::norm::layer_norm,
    ),
    op(
        "RMSNormalization",
        RMS_NOTES,
        |cx, n| infer_rms_norm(cx.g, n),
        crate::emit::norm::rms_norm,
    ),
];

/// RMSNormalization geometry `(outer, len)`; the scale must cover exactly the normalised axes.
pub fn rms_norm_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim)> {
    let x = &g.values[req(n, 0)?];
    let a = axis(n.attr_i("axis")?.unwrap_or(-1), x.shape.len())?;
    let len = numel(&x.shape[a..]);
    let p = &g.values[req(n, 1)?];
    if p.numel() != len || p.dtype != DType::F32 {
        unsupported!(
            "RMSNormalization scale of shape {} must be float32 covering the normalised axes {}",
            g.show_shape(&p.shape),
            g.show_shape(&x.shape[a..])
        );
    }
    Ok((numel(&x.shape[..a]), len))
}

fn infer_rms_norm(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "RMSNormalization on {:?} is not supported (float32 only)",
            x.dtype
        );
    }
    if n.attr_i("stash_type")?.unwrap_or(1) != 1 {
        unsupported!("RMSNormalization with stash_type != 1 is not supported");
    }
    rms_norm_dims(g, n)?;
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
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
    // Mean and InvStdDev: one value per normalised row, the normalised axes kept as 1s.
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
