//! The loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (forward only, every
//! `reduction`, optional class weights, `ignore_index`, SCE's `log_prob` output). Kernels in
//! `kiln_runtime::ops::loss`; a target outside the classes is an `Err` at run time.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::{inp, root_name};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Node, numel};

const NLL_NOTES: &str = "f32/f64 input, int32/int64 target; reduction none/sum/mean, class weights, `ignore_index`; a target outside the classes is an `Err` at run time";
const SCE_NOTES: &str = "f32; as NegativeLogLikelihoodLoss of the log-softmax over axis 1, with the optional `log_prob` output";

/// The loss ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "NegativeLogLikelihoodLoss",
        NLL_NOTES,
        infer_loss,
        emit_loss,
    ),
    op("SoftmaxCrossEntropyLoss", SCE_NOTES, infer_loss, emit_loss),
];

/// The validated attributes: `reduction` (as the runtime enum's variant) and `ignore_index`.
fn attrs(n: &Node) -> Result<(proc_macro2::Ident, Option<i64>)> {
    let r = super::vision::attr_str(n, "reduction")?.unwrap_or_else(|| "mean".into());
    let v = match r.as_str() {
        "none" => "None",
        "sum" => "Sum",
        "mean" => "Mean",
        other => {
            bail!("attribute `reduction` must be \"none\", \"sum\" or \"mean\", found {other:?}")
        }
    };
    Ok((quote::format_ident!("{v}"), n.attr_i("ignore_index")?))
}

fn infer_loss(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let (red, _) = attrs(n)?;
    let sce = n.op == "SoftmaxCrossEntropyLoss";
    let g = &*cx.g;
    let (x, t) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    match x.dtype {
        DType::F32 => {}
        DType::F64 if !sce => {}
        dt => unsupported!(
            "{} on {dt:?} tensors is not supported ({})",
            n.op,
            if sce {
                "float32 only"
            } else {
                "float32 and float64"
            }
        ),
    }
    if !matches!(t.dtype, DType::I32 | DType::I64) {
        bail!("the target must be int32 or int64, found {:?}", t.dtype);
    }
    if x.shape.len() < 2 {
        bail!(
            "the input must have rank ≥ 2 ([N, C, d1…]), found {}",
            g.show_shape(&x.shape)
        );
    }
    let mut want = vec![x.shape[0].clone()];
    want.extend_from_slice(&x.shape[2..]);
    let same = t.shape.len() == want.len()
        && t.shape
            .iter()
            .zip(&want)
            .all(|(a, b)| cx.assumed.equal(a, b));
    if !same {
        bail!(
            "the target's shape {} does not match the input's {} without its class axis",
            g.show_shape(&t.shape),
            g.show_shape(&x.shape)
        );
    }
    if let Some(w) = n.input(2) {
        let w = &g.values[w];
        if w.dtype != x.dtype || w.shape.len() != 1 || !cx.assumed.equal(&w.shape[0], &x.shape[1]) {
            bail!(
                "the weight must be a {:?} vector of {} classes, found {:?} {}",
                x.dtype,
                g.show_shape(&x.shape[1..2]),
                w.dtype,
                g.show_shape(&w.shape)
            );
        }
    }
    let loss_shape: Vec<Dim> = if red == "None" { want } else { vec![] };
    let mut outs = vec![OutInfo::new(x.dtype, loss_shape)];
    if sce && n.outputs.len() > 1 {
        outs.push(OutInfo::new(x.dtype, x.shape.clone()));
    }
    if n.outputs.len() > outs.len() {
        bail!(
            "{} has {} outputs, at most {}",
            n.op,
            n.outputs.len(),
            outs.len()
        );
    }
    Ok(outs)
}

fn emit_loss(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (red, ignore) = attrs(n)?;
    let (xi, ti) = (inp(n, 0)?, inp(n, 1)?);
    let s = &c.g.values[xi].shape;
    let (nn, cc, dd) = (c.dim(&s[0]), c.dim(&s[1]), c.dim(&numel(&s[2..])));
    let (x, t, y) = (c.src(xi), c.src(ti), c.dst(n.outputs[0]));
    let w = match n.input(2) {
        Some(w) => {
            let w = c.src(w);
            quote!(Some(#w))
        }
        None => quote!(None),
    };
    let ignore = match ignore {
        Some(v) => quote!(Some(#v)),
        None => quote!(None),
    };
    let (tname, node) = (root_name(c, ti), &n.name);
    let args = quote!(#x, #t, #w, (#nn, #cc, #dd), #ignore, #rt::ops::loss::Reduction::#red, #y);
    let call = if n.op == "SoftmaxCrossEntropyLoss" {
        let lp = match n.outputs.get(1) {
            Some(&v) => {
                let lp = c.dst(v);
                quote!(Some(#lp))
            }
            None => quote!(None),
        };
        quote!(#rt::ops::loss::softmax_cross_entropy(#args, #lp))
    } else {
        quote!(#rt::ops::loss::nll_loss(#args))
    };
    Ok(quote! { #call.map_err(|e| e.at(#tname, #node))?; })
}
