//! Emission of LayerNormalization and BatchNormalization, referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::Ctx;
use super::nodes::f32_lit;
use super::nodes::inp;
use crate::error::{Result, unsupported};
use crate::ir::{Node, numel};
pub(crate) fn layer_norm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        if n.outputs[1..].iter().any(|&o| c.plan.storage[o].is_some()) {
            unsupported!("LayerNormalization's Mean/InvStdDev outputs are not supported");
        }
        let (outer, len) = crate::ops::layer_norm_dims(g, n)?;
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
