//! Selection along one axis: Hardmax (opset < 13: the 2-D coercion at `axis`; ≥ 13: one axis)
//! and TopK (constant K, `largest`, `sorted`; ties go to the lower index). Kernels:
//! `kiln_runtime::ops::select`.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, axis, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, numel};

const HARDMAX: &str = "f32/f64 and integer types; opset < 13 (2-D coercion) and ≥ 13 (single axis) semantics; the first maximum wins";
const TOPK: &str = "all numeric types; K must be a constant (an initializer); `largest`, `sorted` (results are always sorted), negative axis; ties go to the lower index; NaN counts as the largest value";

/// The selection family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "Hardmax",
        HARDMAX,
        |cx, n| infer_hardmax(cx.g, n),
        emit_hardmax,
    ),
    op("TopK", TOPK, |cx, n| infer_top_k(cx.g, n), emit_top_k),
];

fn numeric(g: &Graph, n: &Node) -> Result<DType> {
    let x = &g.values[req(n, 0)?];
    if x.dtype == DType::Bool {
        unsupported!("{} on bool tensors is not supported", n.op);
    }
    if x.shape.is_empty() {
        bail!("{} needs an input of rank ≥ 1", n.op);
    }
    Ok(x.dtype)
}

/// `(outer, len, inner)` around Hardmax's axis, by the node's opset semantics.
fn hardmax_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim, Dim)> {
    let x = &g.values[req(n, 0)?];
    let rank = x.shape.len();
    if g.opset < 13 {
        let a = n.attr_i("axis")?.unwrap_or(1);
        let a = if a == rank as i64 {
            rank
        } else {
            axis(a, rank)?
        };
        return Ok((numel(&x.shape[..a]), numel(&x.shape[a..]), Dim::constant(1)));
    }
    let a = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
    Ok((
        numel(&x.shape[..a]),
        x.shape[a].clone(),
        numel(&x.shape[a + 1..]),
    ))
}

fn infer_hardmax(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let dt = numeric(g, n)?;
    hardmax_dims(g, n)?;
    Ok(vec![OutInfo::new(dt, g.values[req(n, 0)?].shape.clone())])
}

fn emit_hardmax(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (o, l, i) = hardmax_dims(c.g, n)?;
    let x = inp(n, 0)?;
    let t = crate::emit::rust_ty(c.g.values[x].dtype);
    let (xs, y) = (c.src(x), c.dst(n.outputs[0]));
    let (o, l, i) = (c.dim(&o), c.dim(&l), c.dim(&i));
    Ok(quote! {
        #rt::ops::select::hardmax(#xs, #y, (#o, #l, #i), 0 as #t, 1 as #t);
    })
}

/// TopK's attributes and constant K, decoded once.
struct TopK {
    axis: usize,
    k: usize,
    largest: bool,
}

fn decode_top_k(g: &Graph, n: &Node) -> Result<TopK> {
    numeric(g, n)?;
    let x = &g.values[req(n, 0)?];
    let rank = x.shape.len();
    let axis = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
    let flag = |name: &str| -> Result<bool> {
        match n.attr_i(name)?.unwrap_or(1) {
            0 => Ok(false),
            1 => Ok(true),
            v => bail!("attribute `{name}` must be 0 or 1, found {v}"),
        }
    };
    let (largest, _sorted) = (flag("largest")?, flag("sorted")?);
    let k = if g.opset < 10 {
        n.attr_i("k")?
            .ok_or_else(|| crate::error::Error::invalid("TopK (opset < 10) needs attribute `k`"))?
    } else {
        let kv = &g.values[req(n, 1)?];
        match kv.konst.as_ref().map(|d| d.as_i64()).transpose()? {
            Some(v) if v.len() == 1 => v[0],
            _ => unsupported!(
                "TopK's K is run-time data, so its output size is data-dependent; kiln needs K \
                 as a constant (an initializer)"
            ),
        }
    };
    if k < 0 {
        bail!("TopK's K must be ≥ 0, found {k}");
    }
    let k = k as usize;
    if let Some(len) = x.shape[axis].as_usize()
        && k > len
    {
        bail!("TopK's K = {k} exceeds the axis length {len}");
    }
    Ok(TopK { axis, k, largest })
}

fn infer_top_k(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let d = decode_top_k(g, n)?;
    let x = &g.values[req(n, 0)?];
    let mut shape = x.shape.clone();
    shape[d.axis] = Dim::constant(d.k as i64);
    Ok(vec![
        OutInfo::new(x.dtype, shape.clone()),
        OutInfo::new(DType::I64, shape),
    ])
}

fn emit_top_k(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let d = decode_top_k(c.g, n)?;
    let x = inp(n, 0)?;
    let s = &c.g.values[x].shape;
    let (o, l, i) = (
        c.dim(&numel(&s[..d.axis])),
        c.dim(&s[d.axis]),
        c.dim(&numel(&s[d.axis + 1..])),
    );
    let (xs, vals, idx) = (c.src(x), c.dst(n.outputs[0]), c.dst(n.outputs[1]));
    let (k, largest) = (d.k, d.largest);
    Ok(quote! {
        #rt::ops::select::top_k(#xs, (#o, #l, #i), #k, #largest, #vals, #idx);
    })
}
