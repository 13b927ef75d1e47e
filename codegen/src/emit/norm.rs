//! Emission of LayerNormalization and BatchNormalization, referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::Ctx;
use super::nodes::f32_lit;
use super::nodes::inp;
use crate::error::Result;
use crate::ir::{Node, numel};
pub(crate) fn layer_norm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (outer, len) = crate::ops::layer_norm_dims(g, n)?;
        if n.outputs.len() > 1 {
            return layer_norm_stats(c, n);
        }
        let eps = n.attr_f("epsilon")?.unwrap_or(1e-5);
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        let gamma = c.src(inp(n, 1)?);
        let beta = match n.input(2) {
            Some(b) => {
                let b = c.src(b);
                quote!(Some(#b))
            }
            None => quote!(None),
        };
        let (o, l) = (c.dim(&outer), c.dim(&len));
        if n.attrs.contains_key(crate::passes::RESIDUAL) {
            // x + inputs[3], fused by `fuse_patterns`.
            let r = c.src(inp(n, 3)?);
            let range = c.range(out);
            quote! { #rt::ops::layernorm::add_layer_norm(#x, #r, #gamma, #beta, #o, #l, #eps, #y, #range); }
        } else {
            let range = c.range(out);
            quote! { #rt::ops::layernorm::layer_norm(#x, #gamma, #beta, #o, #l, #eps, #y, #range); }
        }
    })
}

/// LayerNormalization with its Mean/InvStdDev outputs (`kiln_runtime::ops::norm`).
fn layer_norm_stats(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let eps = n.attr_f("epsilon")?.unwrap_or(1e-5);
    let (_, len) = crate::ops::layer_norm_dims(c.g, n)?;
    let (x, y, gamma) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]), c.src(inp(n, 1)?));
    let opt = |v: Option<usize>, dst: bool| match v {
        Some(v) if dst => {
            let d = c.dst(v);
            quote!(Some(#d))
        }
        Some(v) => {
            let s = c.src(v);
            quote!(Some(#s))
        }
        None => quote!(None),
    };
    let beta = opt(n.input(2), false);
    let (mean, inv) = (
        opt(n.outputs.get(1).copied(), true),
        opt(n.outputs.get(2).copied(), true),
    );
    let l = c.dim(&len);
    Ok(quote! {
        #rt::ops::norm::norm(isa, #x, None, None, #gamma, #beta,
            #rt::ops::norm::NormSpec { len: #l, epsilon: #eps, rms: false }, #y,
            #rt::ops::norm::NormOutputs { mean: #mean, inv_std: #inv, sum: None });
    })
}

pub(crate) fn rms_norm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let eps = n.attr_f("epsilon")?.unwrap_or(1e-5);
    let (_, len) = crate::ops::norm::rms_norm_dims(c.g, n)?;
    let (x, y, gamma) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]), c.src(inp(n, 1)?));
    let l = c.dim(&len);
    Ok(quote! {
        #rt::ops::norm::norm(isa, #x, None, None, #gamma, None,
            #rt::ops::norm::NormSpec { len: #l, epsilon: #eps, rms: true }, #y,
            Default::default());
    })
}

pub(crate) fn batch_norm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (scale, shift) = crate::ops::conv::batch_norm_affine(g, n)?;
        let xi = inp(n, 0)?;
        let shape = &g.values[xi].shape;
        let inner = c.dim(&numel(&shape[2..]));
        let (outer, ch) = (c.dim(&shape[0]), c.dim(&shape[1]));
        let (s, t) = (
            scale.iter().map(|&v| f32_lit(v)),
            shift.iter().map(|&v| f32_lit(v)),
        );
        let (x, y) = (c.src(xi), c.dst(out));
        quote! { #rt::ops::conv::channel_affine(#x, #outer, #ch, #inner, &[#(#s),*], &[#(#t),*], #y); }
    })
}
