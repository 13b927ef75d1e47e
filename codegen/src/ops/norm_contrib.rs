//! onnxruntime's normalisation and activation contrib ops, as its transformer optimizer writes
//! them: `SkipLayerNormalization`, `SkipSimplifiedLayerNormalization`,
//! `SimplifiedLayerNormalization` (which onnxruntime registers in the default domain; accepted
//! in both), `Gelu`, `BiasGelu`, `FastGelu`, `QuickGelu`, `BiasAdd`. Kernels:
//! `kiln_runtime::ops::norm` and `kiln_runtime::ops::bias_act`. See docs/contrib.md.
use proc_macro2::TokenStream;
use quote::quote;

use super::registry::contrib_op;
use super::{OpDef, OutInfo, axis, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, numel};

const SKIP_LN: &str = "f32; `input + skip (+ bias)` normalised over the last axis; skip `[batch, seq, hidden]`, `[1, seq, hidden]` or `[seq, hidden]`; all four outputs (mean, inv_std_var, input_skip_bias_sum)";
const SIMPLIFIED: &str = "f32 RMS normalisation (onnxruntime registers it in the default domain; both accepted); any axis; inv_std_var output";
const GELU: &str = "f32; erf GELU (`BiasGelu`: of `A + B`), kiln's GELU kernel";
const FAST_GELU: &str = "f32; tanh approximation, optional bias";
const QUICK_GELU: &str = "f32; `x·sigmoid(alpha·x)`, alpha default 1.702";
const BIAS_ADD: &str = "f32; `X + bias + skip` (bias over the last axis)";

/// The contrib ops of this family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    contrib_op(
        "SkipLayerNormalization",
        SKIP_LN,
        |cx, n| infer_norm(cx.g, n),
        emit_norm,
    ),
    contrib_op(
        "SkipSimplifiedLayerNormalization",
        SKIP_LN,
        |cx, n| infer_norm(cx.g, n),
        emit_norm,
    ),
    contrib_op(
        "SimplifiedLayerNormalization",
        SIMPLIFIED,
        |cx, n| infer_norm(cx.g, n),
        emit_norm,
    ),
    op(
        "SimplifiedLayerNormalization",
        SIMPLIFIED,
        |cx, n| infer_norm(cx.g, n),
        emit_norm,
    ),
    contrib_op("Gelu", GELU, |cx, n| infer_act(cx.g, n), emit_act),
    contrib_op("BiasGelu", GELU, |cx, n| infer_act(cx.g, n), emit_act),
    contrib_op("FastGelu", FAST_GELU, |cx, n| infer_act(cx.g, n), emit_act),
    contrib_op(
        "QuickGelu",
        QUICK_GELU,
        |cx, n| infer_act(cx.g, n),
        emit_act,
    ),
    contrib_op("BiasAdd", BIAS_ADD, |cx, n| infer_act(cx.g, n), emit_act),
];

/// A normalisation node: rows of `len`, which inputs are skip/gamma/beta/bias, RMS or not.
struct Norm {
    len: Dim,
    axis: usize,
    skip: Option<usize>,
    gamma: usize,
    beta: Option<usize>,
    bias: Option<usize>,
    rms: bool,
}

fn decode_norm(g: &Graph, n: &Node) -> Result<Norm> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 || x.shape.is_empty() {
        unsupported!(
            "{} on {:?} {} is not supported (float32, rank ≥ 1)",
            n.op,
            x.dtype,
            g.show_shape(&x.shape)
        );
    }
    let rank = x.shape.len();
    let (axis, skip, gamma, beta, bias, rms) = match n.op.as_str() {
        "SkipLayerNormalization" => (
            rank - 1,
            n.input(1),
            req(n, 2)?,
            n.input(3),
            n.input(4),
            false,
        ),
        "SkipSimplifiedLayerNormalization" => {
            (rank - 1, n.input(1), req(n, 2)?, None, n.input(3), true)
        }
        _ => {
            if n.attr_i("stash_type")?.unwrap_or(1) != 1 {
                unsupported!("SimplifiedLayerNormalization with stash_type != 1 is not supported");
            }
            let a = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
            (a, None, req(n, 1)?, None, None, true)
        }
    };
    let len = numel(&x.shape[axis..]);
    for (v, what) in [(Some(gamma), "gamma"), (beta, "beta"), (bias, "bias")] {
        if let Some(v) = v {
            let p = &g.values[v];
            if p.dtype != DType::F32 || p.numel() != len {
                bail!(
                    "{what} {} must be float32 with {} elements",
                    g.show_shape(&p.shape),
                    g.show(&len)
                );
            }
        }
    }
    if let Some(s) = skip {
        let s = &g.values[s];
        let tail = s.shape.len().min(x.shape.len());
        let ok = s.dtype == DType::F32
            && s.shape.len() <= rank
            && s.shape[s.shape.len() - tail..] == x.shape[rank - tail..]
            || (s.shape.len() == rank && s.shape[0] == 1usize && s.shape[1..] == x.shape[1..]);
        if !ok {
            bail!(
                "skip {} does not match input {}",
                g.show_shape(&s.shape),
                g.show_shape(&x.shape)
            );
        }
    }
    Ok(Norm {
        len,
        axis,
        skip,
        gamma,
        beta,
        bias,
        rms,
    })
}

fn infer_norm(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let d = decode_norm(g, n)?;
    let x = &g.values[req(n, 0)?];
    let stat: Vec<Dim> = x
        .shape
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if i < d.axis {
                s.clone()
            } else {
                Dim::constant(1)
            }
        })
        .collect();
    let mut outs = vec![OutInfo::new(DType::F32, x.shape.clone())];
    if n.op == "SimplifiedLayerNormalization" {
        outs.push(OutInfo::new(DType::F32, stat));
    } else {
        outs.push(OutInfo::new(DType::F32, stat.clone()));
        outs.push(OutInfo::new(DType::F32, stat));
        outs.push(OutInfo::new(DType::F32, x.shape.clone()));
    }
    outs.truncate(n.outputs.len().max(1));
    Ok(outs)
}

fn emit_norm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let d = decode_norm(c.g, n)?;
    let src = |v: Option<usize>| match v {
        Some(v) => {
            let s = c.src(v);
            quote!(Some(#s))
        }
        None => quote!(None),
    };
    let dst = |i: usize| match n.outputs.get(i) {
        Some(&v) => {
            let s = c.dst(v);
            quote!(Some(#s))
        }
        None => quote!(None),
    };
    let (mean, inv, sum) = if n.op == "SimplifiedLayerNormalization" {
        (quote!(None), dst(1), quote!(None))
    } else {
        (dst(1), dst(2), dst(3))
    };
    let (x, y, gamma) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]), c.src(d.gamma));
    let (skip, beta, bias) = (src(d.skip), src(d.beta), src(d.bias));
    // onnxruntime's defaults: 1e-12 for the Skip* ops, 1e-5 for SimplifiedLayerNormalization.
    let eps = n
        .attr_f("epsilon")?
        .unwrap_or(if d.skip.is_some() { 1e-12 } else { 1e-5 });
    let (len, rms) = (c.dim(&d.len), d.rms);
    Ok(quote! {
        #rt::ops::norm::norm(isa, #x, #skip, #bias, #gamma, #beta,
            #rt::ops::norm::NormSpec { len: #len, epsilon: #eps, rms: #rms }, #y,
            #rt::ops::norm::NormOutputs { mean: #mean, inv_std: #inv, sum: #sum });
    })
}

/// (bias input, skip input) of an activation op.
fn act_inputs(g: &Graph, n: &Node) -> Result<(Option<usize>, Option<usize>)> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 || x.shape.is_empty() {
        unsupported!(
            "{} on {:?} {} is not supported (float32, rank ≥ 1)",
            n.op,
            x.dtype,
            g.show_shape(&x.shape)
        );
    }
    let (bias, skip) = match n.op.as_str() {
        "BiasGelu" => (Some(req(n, 1)?), None),
        "FastGelu" => (n.input(1), None),
        "BiasAdd" => (Some(req(n, 1)?), Some(req(n, 2)?)),
        _ => (None, None),
    };
    let last = x.shape.last().expect("rank ≥ 1");
    if let Some(b) = bias {
        let b = &g.values[b];
        if b.dtype != DType::F32 || b.numel() != *last {
            bail!(
                "bias {} must be float32 with {} elements (the last dim)",
                g.show_shape(&b.shape),
                g.show(last)
            );
        }
    }
    if let Some(s) = skip {
        let s = &g.values[s];
        if s.dtype != DType::F32 || s.shape != x.shape {
            bail!(
                "skip {} must be float32 of the input's shape {}",
                g.show_shape(&s.shape),
                g.show_shape(&x.shape)
            );
        }
    }
    Ok((bias, skip))
}

fn infer_act(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    act_inputs(g, n)?;
    let x = &g.values[req(n, 0)?];
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}

fn emit_act(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (bias, skip) = act_inputs(c.g, n)?;
    let m = quote!(#rt::ops::bias_act);
    let act = match n.op.as_str() {
        "Gelu" | "BiasGelu" => quote!(#m::Act::Gelu),
        "FastGelu" => quote!(#m::Act::FastGelu),
        "QuickGelu" => {
            let a = n.attr_f("alpha")?.unwrap_or(1.702);
            quote!(#m::Act::QuickGelu(#a))
        }
        _ => quote!(#m::Act::Identity),
    };
    let opt = |v: Option<usize>| match v {
        Some(v) => {
            let s = c.src(v);
            quote!(Some(#s))
        }
        None => quote!(None),
    };
    let (x, y, b, s) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]), opt(bias), opt(skip));
    Ok(quote! { #m::bias_act(isa, #x, #b, #s, #act, #y); })
}
