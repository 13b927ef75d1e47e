//! Indexing ops: GatherElements, GatherND, ScatterElements, Scatter (its opset 9–10 form) and
//! ScatterND, with every reduction. Folded when data and indices are constants (with the
//! runtime functions the generated code calls); out-of-range indices are an `Err` at run time
//! naming the input and the index. Emission calls `kiln_runtime::ops::scatter`.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, axis, foldable, op, req};
use crate::emit::nodes::inp;
use crate::emit::{Ctx, lit};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{Attr, DType, Dim, Graph, Node, TensorData, Value, numel};
use kiln_runtime::ops::scatter::{self as rs, Reduction};

const GATHER_ELEMENTS_NOTES: &str =
    "any type, int32/int64 indices (negative count from the end), rank ≤ 8";
const SCATTER_NOTES: &str = "any type, int32/int64 indices, rank ≤ 8; reductions none, add, mul, max, min; duplicate indices apply in order";
const GATHER_ND_NOTES: &str = "any type, int32/int64 indices, `batch_dims`, rank ≤ 8";

/// The indexing ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "GatherElements",
        GATHER_ELEMENTS_NOTES,
        |cx, n| elements(cx.g, n),
        emit_elements,
    ),
    op(
        "ScatterElements",
        SCATTER_NOTES,
        |cx, n| elements(cx.g, n),
        emit_elements,
    ),
    op(
        "Scatter",
        SCATTER_NOTES,
        |cx, n| elements(cx.g, n),
        emit_elements,
    ),
    op(
        "ScatterND",
        SCATTER_NOTES,
        |cx, n| scatter_nd(cx.g, n),
        emit_scatter_nd,
    ),
    op(
        "GatherND",
        GATHER_ND_NOTES,
        |cx, n| gather_nd(cx.g, n),
        emit_gather_nd,
    ),
];

/// `$m!(vec, Variant)` on the data's variant (a scatter needs data and updates of one type).
macro_rules! per_type {
    ($d:expr, $m:ident) => {
        match $d {
            TensorData::F32(v) => $m!(v, F32),
            TensorData::F64(v) => $m!(v, F64),
            TensorData::I8(v) => $m!(v, I8),
            TensorData::U8(v) => $m!(v, U8),
            TensorData::I16(v) => $m!(v, I16),
            TensorData::U16(v) => $m!(v, U16),
            TensorData::I32(v) => $m!(v, I32),
            TensorData::U32(v) => $m!(v, U32),
            TensorData::I64(v) => $m!(v, I64),
            TensorData::U64(v) => $m!(v, U64),
            TensorData::Bool(v) => $m!(v, Bool),
        }
    };
}

fn reduction(n: &Node) -> Result<Reduction> {
    Ok(match n.attrs.get("reduction") {
        None => Reduction::None,
        Some(Attr::String(s)) => match s.as_str() {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            other => bail!(
                "{} reduction `{other}` is not none, add, mul, max or min",
                n.op
            ),
        },
        Some(_) => bail!("{} `reduction` must be a string", n.op),
    })
}

fn reduction_tokens(rt: &TokenStream, r: Reduction) -> TokenStream {
    let v = match r {
        Reduction::None => quote!(None),
        Reduction::Add => quote!(Add),
        Reduction::Mul => quote!(Mul),
        Reduction::Max => quote!(Max),
        Reduction::Min => quote!(Min),
    };
    quote!(#rt::ops::scatter::Reduction::#v)
}

fn check_indices(n: &Node, idx: &Value) -> Result<()> {
    if !matches!(idx.dtype, DType::I32 | DType::I64) {
        bail!(
            "{} indices must be int32 or int64, found {:?}",
            n.op,
            idx.dtype
        );
    }
    Ok(())
}

fn check_rank(n: &Node, rank: usize) -> Result<()> {
    if rank > 8 {
        unsupported!("{} of rank {rank} is not supported (at most 8)", n.op);
    }
    if rank == 0 {
        bail!("{} needs data of rank ≥ 1", n.op);
    }
    Ok(())
}

/// Constant indices as i64 and the static shapes of data, indices and output.
type ConstParts = (Vec<i64>, Vec<usize>, Vec<usize>, Vec<usize>);

/// Constant indices as i64, with the shapes of data and indices, when everything is static.
fn const_parts(g: &Graph, n: &Node, out_shape: &[Dim]) -> Option<ConstParts> {
    let (d, i) = (&g.values[n.input(0)?], &g.values[n.input(1)?]);
    let ids = i.konst.as_ref()?.as_i64().ok()?;
    let os = crate::ir::static_shape(out_shape)?;
    (d.konst.is_some() && foldable(g, n, &os)).then_some((
        ids,
        d.static_shape()?,
        i.static_shape()?,
        os,
    ))
}

fn fold_err(n: &Node, e: kiln_runtime::Error) -> Error {
    Error::invalid(format!("{}: {e}", n.op))
}

/// GatherElements, ScatterElements, Scatter: an axis, indices of the data's rank.
fn elements(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (d, idx) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    check_indices(n, idx)?;
    check_rank(n, d.shape.len())?;
    if idx.shape.len() != d.shape.len() {
        bail!(
            "{} indices {} must have the data's rank ({})",
            n.op,
            g.show_shape(&idx.shape),
            g.show_shape(&d.shape)
        );
    }
    let ax = axis(n.attr_i("axis")?.unwrap_or(0), d.shape.len())?;
    let gather = n.op == "GatherElements";
    let out_shape = if gather {
        idx.shape.clone()
    } else {
        d.shape.clone()
    };
    if !gather {
        let u = &g.values[req(n, 2)?];
        if u.shape != idx.shape || u.dtype != d.dtype {
            bail!(
                "{} updates {} must match the indices {} and the data's type",
                n.op,
                g.show_shape(&u.shape),
                g.show_shape(&idx.shape)
            );
        }
        reduction(n)?;
    }
    let Some((ids, ds, is, os)) = const_parts(g, n, &out_shape) else {
        return Ok(vec![OutInfo::new(d.dtype, out_shape)]);
    };
    let dk = d.konst.as_ref().expect("const_parts");
    let data = if gather {
        crate::each_data_map!(dk, v => {
            let mut o = vec![Default::default(); os.iter().product()];
            rs::gather_elements(v, &ds, &ids, &is, ax, &mut o).map_err(|e| fold_err(n, e))?;
            o
        })
    } else {
        let Some(uk) = g.values[req(n, 2)?].konst.as_ref() else {
            return Ok(vec![OutInfo::new(d.dtype, out_shape)]);
        };
        let r = reduction(n)?;
        macro_rules! sc {
            ($v:ident, $var:ident) => {{
                let TensorData::$var(u) = uk else {
                    bail!("{} updates type", n.op)
                };
                let mut o = $v.clone();
                rs::scatter_elements($v, &ds, &ids, &is, u, ax, r, &mut o)
                    .map_err(|e| fold_err(n, e))?;
                TensorData::$var(o)
            }};
        }
        per_type!(dk, sc)
    };
    Ok(vec![OutInfo::konst(os, data)])
}

fn emit_elements(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (d, i) = (inp(n, 0)?, inp(n, 1)?);
    let ax = lit(axis(
        n.attr_i("axis")?.unwrap_or(0),
        c.g.values[d].shape.len(),
    )?);
    let (xd, sd, xi, si, y) = (
        c.src(d),
        c.shape(d),
        c.src(i),
        c.shape(i),
        c.dst(n.outputs[0]),
    );
    let (iname, node) = (c.g.values[c.plan.root(i)].name.clone(), &n.name);
    let call = if n.op == "GatherElements" {
        quote!(#rt::ops::scatter::gather_elements(#xd, #sd, #xi, #si, #ax, #y))
    } else {
        let u = c.src(inp(n, 2)?);
        let r = reduction_tokens(rt, reduction(n)?);
        quote!(#rt::ops::scatter::scatter_elements(#xd, #sd, #xi, #si, #u, #ax, #r, #y))
    };
    Ok(quote! { #call.map_err(|e| e.at(#iname, #node))?; })
}

/// GatherND/ScatterND's tuple length `q` (the indices' last dim, static).
fn tuple_len(g: &Graph, n: &Node, d: &Value, idx: &Value, batch: usize) -> Result<usize> {
    let q = idx.shape.last().and_then(Dim::as_usize);
    match q {
        Some(q) if q >= 1 && batch + q <= d.shape.len() => Ok(q),
        _ => bail!(
            "{} indices {} need a static last dim in 1..={} (data {})",
            n.op,
            g.show_shape(&idx.shape),
            d.shape.len() - batch,
            g.show_shape(&d.shape)
        ),
    }
}

fn gather_nd_parts(g: &Graph, n: &Node) -> Result<(usize, usize, Vec<Dim>, Dim)> {
    let (d, idx) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    check_indices(n, idx)?;
    check_rank(n, d.shape.len())?;
    let b = n.attr_i("batch_dims")?.unwrap_or(0);
    if b < 0 || b as usize >= idx.shape.len().min(d.shape.len()) {
        bail!("GatherND batch_dims {b} must be below both ranks");
    }
    let b = b as usize;
    let q = tuple_len(g, n, d, idx, b)?;
    let r = idx.shape.len();
    let mut shape = idx.shape[..r - 1].to_vec();
    shape.extend(d.shape[b + q..].iter().cloned());
    let per_batch = numel(&idx.shape[b..r - 1]);
    Ok((b, q, shape, per_batch))
}

fn gather_nd(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let d = &g.values[req(n, 0)?];
    let (b, q, shape, per_batch) = gather_nd_parts(g, n)?;
    if let (Some((ids, ds, _, os)), Some(pb)) = (const_parts(g, n, &shape), per_batch.as_usize()) {
        let dk = d.konst.as_ref().expect("const_parts");
        let data = crate::each_data_map!(dk, v => {
            let mut o = vec![Default::default(); os.iter().product()];
            rs::gather_nd(v, &ds, &ids, q, b, pb, &mut o).map_err(|e| fold_err(n, e))?;
            o
        });
        return Ok(vec![OutInfo::konst(os, data)]);
    }
    Ok(vec![OutInfo::new(d.dtype, shape)])
}

fn emit_gather_nd(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (d, i) = (inp(n, 0)?, inp(n, 1)?);
    let (b, q, _, per_batch) = gather_nd_parts(c.g, n)?;
    let (xd, sd, xi, y) = (c.src(d), c.shape(d), c.src(i), c.dst(n.outputs[0]));
    let (b, q, pb) = (lit(b), lit(q), c.dim(&per_batch));
    let (iname, node) = (c.g.values[c.plan.root(i)].name.clone(), &n.name);
    Ok(quote! {
        #rt::ops::scatter::gather_nd(#xd, #sd, #xi, #q, #b, #pb, #y).map_err(|e| e.at(#iname, #node))?;
    })
}

fn scatter_nd(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (d, idx, u) = (
        &g.values[req(n, 0)?],
        &g.values[req(n, 1)?],
        &g.values[req(n, 2)?],
    );
    check_indices(n, idx)?;
    check_rank(n, d.shape.len())?;
    let q = tuple_len(g, n, d, idx, 0)?;
    let mut want = idx.shape[..idx.shape.len() - 1].to_vec();
    want.extend(d.shape[q..].iter().cloned());
    if u.shape != want || u.dtype != d.dtype {
        bail!(
            "ScatterND updates {} must have shape {} and the data's type",
            g.show_shape(&u.shape),
            g.show_shape(&want)
        );
    }
    let r = reduction(n)?;
    if let (Some((ids, ds, _, os)), Some(uk)) = (const_parts(g, n, &d.shape), &u.konst) {
        let dk = d.konst.as_ref().expect("const_parts");
        macro_rules! sc {
            ($v:ident, $var:ident) => {{
                let TensorData::$var(uv) = uk else {
                    bail!("ScatterND updates type")
                };
                let mut o = $v.clone();
                rs::scatter_nd($v, &ds, &ids, q, uv, r, &mut o).map_err(|e| fold_err(n, e))?;
                TensorData::$var(o)
            }};
        }
        let data = per_type!(dk, sc);
        return Ok(vec![OutInfo::konst(os, data)]);
    }
    Ok(vec![OutInfo::new(d.dtype, d.shape.clone())])
}

fn emit_scatter_nd(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (d, i, u) = (inp(n, 0)?, inp(n, 1)?, inp(n, 2)?);
    let q = tuple_len(c.g, n, &c.g.values[d], &c.g.values[i], 0)?;
    let r = reduction_tokens(rt, reduction(n)?);
    let (xd, sd, xi, xu, y) = (
        c.src(d),
        c.shape(d),
        c.src(i),
        c.src(u),
        c.dst(n.outputs[0]),
    );
    let (iname, node, q) = (c.g.values[c.plan.root(i)].name.clone(), &n.name, lit(q));
    Ok(quote! {
        #rt::ops::scatter::scatter_nd(#xd, #sd, #xi, #q, #xu, #r, #y).map_err(|e| e.at(#iname, #node))?;
    })
}
