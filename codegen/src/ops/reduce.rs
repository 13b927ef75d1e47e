//! Reductions: ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
//! ReduceLogSum, ReduceLogSumExp, ReduceSumSquare, and ArgMax/ArgMin. The reduced axes are one
//! run of adjacent axes, seen as `[outer][len][inner]`; the kernels are
//! `kiln_runtime::ops::reduction` (generic over the element type; constant folding calls the
//! same functions) and, for float32 sum/mean/max, the faster `kiln_runtime::ops::reduce`.
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::{OpDef, OutInfo, axis, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::reduction as red;

const REDUCE: &str = "axes as attribute or (from opset 13 for ReduceSum, 18 for the others) constant input, one run of adjacent axes; keepdims, noop_with_empty_axes, empty axes give the identity; f32/f64, and integers for Sum/Max/Min/Prod/L1/SumSquare (wrapping), bool for Max/Min";
const ARG: &str = "one axis, keepdims, select_last_index (NaN counts as the extreme, like numpy); all numeric types; i64 output";

const CUM: &str = "f32/f64, int32/int64, uint32/uint64 (integers wrap); `exclusive`, `reverse`; the axis must be a constant";

/// The reductions (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("ReduceMean", REDUCE, reduce, emit_reduce),
    op("ReduceSum", REDUCE, reduce, emit_reduce),
    op("ReduceMax", REDUCE, reduce, emit_reduce),
    op("ReduceMin", REDUCE, reduce, emit_reduce),
    op("ReduceProd", REDUCE, reduce, emit_reduce),
    op("ReduceL1", REDUCE, reduce, emit_reduce),
    op("ReduceL2", REDUCE, reduce, emit_reduce),
    op("ReduceLogSum", REDUCE, reduce, emit_reduce),
    op("ReduceLogSumExp", REDUCE, reduce, emit_reduce),
    op("ReduceSumSquare", REDUCE, reduce, emit_reduce),
    op("ArgMax", ARG, |cx, n| infer_arg(cx.g, n), emit_arg),
    op("ArgMin", ARG, |cx, n| infer_arg(cx.g, n), emit_arg),
    op("CumSum", CUM, |cx, n| infer_cum(cx.g, n), emit_cum),
    op("CumProd", CUM, |cx, n| infer_cum(cx.g, n), emit_cum),
];

/// CumSum/CumProd's axis (a constant scalar input), `exclusive` and `reverse`, validated.
fn cum_params(g: &Graph, n: &Node) -> Result<(usize, bool, bool)> {
    let x = &g.values[req(n, 0)?];
    let av = req(n, 1)?;
    let a = match &g.values[av].konst {
        Some(k) if k.len() == 1 && matches!(k.dtype(), DType::I32 | DType::I64) => k.as_i64()?[0],
        _ => unsupported!(
            "{}'s axis `{}` must be a constant int32/int64 scalar",
            n.op,
            g.values[av].name
        ),
    };
    let flag = |name: &str| -> Result<bool> {
        match n.attr_i(name)?.unwrap_or(0) {
            0 => Ok(false),
            1 => Ok(true),
            v => bail!("attribute `{name}` must be 0 or 1, found {v}"),
        }
    };
    Ok((
        axis(a, x.shape.len())?,
        flag("exclusive")?,
        flag("reverse")?,
    ))
}

fn infer_cum(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if !matches!(
        x.dtype,
        DType::F32 | DType::F64 | DType::I32 | DType::I64 | DType::U32 | DType::U64
    ) {
        unsupported!("{} on {:?} tensors is not supported", n.op, x.dtype);
    }
    cum_params(g, n)?;
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

fn emit_cum(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let xi = inp(n, 0)?;
    let (ax, exclusive, reverse) = cum_params(c.g, n)?;
    let (dt, s) = (c.g.values[xi].dtype, &c.g.values[xi].shape);
    let t = crate::emit::rust_ty(dt);
    let (o, l, i) = (
        c.dim(&numel(&s[..ax])),
        c.dim(&s[ax]),
        c.dim(&numel(&s[ax + 1..])),
    );
    let prod = n.op == "CumProd";
    let (id, f) = match (dt.is_float(), prod) {
        (true, false) => (quote!(0.0), quote!(|a: #t, b: #t| a + b)),
        (true, true) => (quote!(1.0), quote!(|a: #t, b: #t| a * b)),
        (false, false) => (quote!(0), quote!(|a: #t, b: #t| a.wrapping_add(b))),
        (false, true) => (quote!(1), quote!(|a: #t, b: #t| a.wrapping_mul(b))),
    };
    let (x, y) = (c.src(xi), c.dst(n.outputs[0]));
    Ok(quote! {
        #rt::ops::tensor::cumulate(#x, (#o, #l, #i), #exclusive, #reverse, #id, #f, #y);
    })
}

/// Which reduction a node computes: its `kiln_runtime::ops::reduction` function name, and
/// whether it needs a float element type.
fn kind(op: &str) -> (&'static str, bool) {
    match op {
        "ReduceSum" => ("sum", false),
        "ReduceMean" => ("mean", true),
        "ReduceMax" => ("max", false),
        "ReduceMin" => ("min", false),
        "ReduceProd" => ("prod", false),
        "ReduceL1" => ("l1", false),
        "ReduceL2" => ("l2", true),
        "ReduceLogSum" => ("log_sum", true),
        "ReduceLogSumExp" => ("log_sum_exp", true),
        _ => ("sum_square", false),
    }
}

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

fn reduce(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    infer_reduce(cx.g, n)
}

pub fn infer_reduce(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let (f, float) = kind(&n.op);
    let ok = match x.dtype {
        DType::F32 | DType::F64 => true,
        DType::Bool => matches!(f, "max" | "min"),
        _ => !float,
    };
    if !ok {
        let what = if float {
            "float32/float64"
        } else {
            "numeric (bool for ReduceMax/ReduceMin)"
        };
        unsupported!(
            "{} on {:?} tensors is not supported ({what} only)",
            n.op,
            x.dtype
        );
    }
    let (outer, len, inner, shape) = reduce_dims(g, n)?;
    if let (Some(k), Some(os), Some(o), Some(l), Some(i)) = (
        &x.konst,
        crate::ir::static_shape(&shape),
        outer.as_usize(),
        len.as_usize(),
        inner.as_usize(),
    ) && super::foldable(g, n, &os)
        && let Some(d) = fold_reduce(f, k, o, l, i)
    {
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}

/// Runs reduction `f` (a `reduction` function name) on constant data.
fn fold_reduce(f: &str, k: &TensorData, o: usize, l: usize, i: usize) -> Option<TensorData> {
    fn any<T: red::Elem + Default>(f: &str, x: &[T], o: usize, l: usize, i: usize) -> Vec<T> {
        let mut out = vec![T::default(); o * i];
        let k: fn(&[T], &mut [T], usize, usize, usize) = match f {
            "sum" => red::sum,
            "max" => red::max,
            "min" => red::min,
            "prod" => red::prod,
            "l1" => red::l1,
            _ => red::sum_square,
        };
        k(x, &mut out, o, l, i);
        out
    }
    fn float<T: red::Float + Default>(f: &str, x: &[T], o: usize, l: usize, i: usize) -> Vec<T> {
        let k: fn(&[T], &mut [T], usize, usize, usize) = match f {
            "mean" => red::mean,
            "l2" => red::l2,
            "log_sum" => red::log_sum,
            "log_sum_exp" => red::log_sum_exp,
            _ => return any(f, x, o, l, i),
        };
        let mut out = vec![T::default(); o * i];
        k(x, &mut out, o, l, i);
        out
    }
    use TensorData as D;
    Some(match k {
        D::F32(x) => D::F32(float(f, x, o, l, i)),
        D::F64(x) => D::F64(float(f, x, o, l, i)),
        D::I8(x) => D::I8(any(f, x, o, l, i)),
        D::U8(x) => D::U8(any(f, x, o, l, i)),
        D::I16(x) => D::I16(any(f, x, o, l, i)),
        D::U16(x) => D::U16(any(f, x, o, l, i)),
        D::I32(x) => D::I32(any(f, x, o, l, i)),
        D::U32(x) => D::U32(any(f, x, o, l, i)),
        D::I64(x) => D::I64(any(f, x, o, l, i)),
        D::U64(x) => D::U64(any(f, x, o, l, i)),
        D::Bool(x) => D::Bool(any(f, x, o, l, i)),
    })
}

fn emit_reduce(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (outer, len, inner, _) = reduce_dims(c.g, n)?;
    let xi = inp(n, 0)?;
    let (x, y) = (c.src(xi), c.dst(n.outputs[0]));
    let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
    let (f, _) = kind(&n.op);
    // float32 sum, mean and max have vectorised kernels.
    let fast = match f {
        "sum" => Some(quote!(reduce_sum)),
        "mean" => Some(quote!(reduce_mean)),
        "max" => Some(quote!(reduce_max)),
        _ => None,
    };
    if let (Some(k), DType::F32) = (fast, c.g.values[xi].dtype) {
        return Ok(quote! { #rt::ops::reduce::#k(#x, #y, #o, #l, #i); });
    }
    let f = format_ident!("{f}");
    Ok(quote! { #rt::ops::reduction::#f(#x, #y, #o, #l, #i); })
}

/// ArgMax/ArgMin geometry: `(outer, len, inner, output shape, select_last_index)`.
fn arg_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim, Dim, Vec<Dim>, bool)> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    if r == 0 {
        bail!("{} needs an input of rank >= 1", n.op);
    }
    let a = axis(n.attr_i("axis")?.unwrap_or(0), r)?;
    let keep = n.attr_i("keepdims")?.unwrap_or(1) != 0;
    let last = n.attr_i("select_last_index")?.unwrap_or(0) != 0;
    let mut shape = x.shape.clone();
    if keep {
        shape[a] = Dim::constant(1);
    } else {
        shape.remove(a);
    }
    Ok((
        numel(&x.shape[..a]),
        x.shape[a].clone(),
        numel(&x.shape[a + 1..]),
        shape,
        last,
    ))
}

fn infer_arg(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype == DType::Bool {
        unsupported!(
            "{} on bool tensors is not supported (numeric types only)",
            n.op
        );
    }
    let (outer, len, inner, shape, last) = arg_dims(g, n)?;
    if len.as_usize() == Some(0) {
        bail!("{} over an empty axis has no index to return", n.op);
    }
    if let (Some(k), Some(os), Some(o), Some(l), Some(i)) = (
        &x.konst,
        crate::ir::static_shape(&shape),
        outer.as_usize(),
        len.as_usize(),
        inner.as_usize(),
    ) && super::foldable(g, n, &os)
    {
        let mut out = vec![0i64; o * i];
        let max = n.op == "ArgMax";
        crate::each_data!(k, v => if max {
            red::argmax(v, &mut out, o, l, i, last)
        } else {
            red::argmin(v, &mut out, o, l, i, last)
        });
        return Ok(vec![OutInfo::konst(os, TensorData::I64(out))]);
    }
    Ok(vec![OutInfo::new(DType::I64, shape)])
}

fn emit_arg(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (outer, len, inner, _, last) = arg_dims(c.g, n)?;
    let (x, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
    let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
    let f = format_ident!("{}", n.op.to_lowercase());
    Ok(quote! { #rt::ops::reduction::#f(#x, #y, #o, #l, #i, #last); })
}
