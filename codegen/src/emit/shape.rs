//! Emission of the shape family (views, Transpose, Cast, Concat, Slice, Expand) and the symbolic ops (Gather, ConstantOfShape), referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::nodes::{inp, root_name};
use super::{Ctx, lit};
use crate::error::{Result, unsupported};
use crate::ir::Node;

pub(crate) fn view(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let out = n.outputs[0];
    Ok({
        // Only reached when the output is a graph output (otherwise it is an alias).
        if matches!(c.plan.storage[out], Some(crate::plan::Storage::Alias(_))) {
            quote!()
        } else {
            let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
            quote! { (#y).copy_from_slice(#x); }
        }
    })
}

pub(crate) fn transpose(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let xi = inp(n, 0)?;
        let perm = crate::ops::transpose_perm(n, g.values[xi].shape.len())?;
        let perm = perm.iter().map(|&p| lit(p));
        let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(out));
        quote! { #rt::ops::transpose::transpose(#x, #sx, &[#(#perm),*], #y); }
    })
}

pub(crate) fn cast(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    Ok({
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        quote! { #rt::ops::cast::cast(#x, #y); }
    })
}

pub(crate) fn concat(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let ax = lit(crate::ops::concat_axis(g, n)?);
        let parts = n.inputs.iter().flatten().map(|&v| {
            let (x, s) = (c.src(v), c.shape(v));
            // Typed through a function argument, not `as` (a cast does not infer the
            // literals of a static shape: `&[1, 2]` is `&[i32; 2]`) and not a block-local
            // binding (a symbolic shape is a temporary that must live to the call's end).
            quote!((#x, ::core::convert::identity::<&[usize]>(#s)))
        });
        let y = c.dst(out);
        quote! { #rt::ops::concat::concat(&[#(#parts),*], #ax, #y); }
    })
}

pub(crate) fn slice(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let p = crate::ops::slice_params(g, n)?;
        let xi = inp(n, 0)?;
        let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(out));
        let starts = p.starts.iter().map(|d| d.to_i64_tokens(&c.syms));
        let steps = &p.steps;
        let so = c.dims(&p.shape);
        quote! { #rt::ops::shape::slice(#x, #sx, &[#(#starts),*], &[#(#steps),*], #so, #y); }
    })
}

pub(crate) fn expand(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    Ok({
        let xi = inp(n, 0)?;
        let (x, sx, y, so) = (c.src(xi), c.shape(xi), c.dst(out), c.shape(out));
        quote! { #rt::ops::shape::expand(#x, #sx, #y, #so); }
    })
}

pub(crate) fn constant_of_shape(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    Ok({
        let v = crate::ops::symbolic_fill_value(n)?;
        let y = c.dst(out);
        let val = match v {
            crate::ir::TensorData::F32(x) => {
                let x = x[0];
                quote!(#x)
            }
            crate::ir::TensorData::I64(x) => {
                let x = x[0];
                quote!(#x)
            }
            crate::ir::TensorData::I32(x) => {
                let x = x[0];
                quote!(#x)
            }
            crate::ir::TensorData::Bool(x) => {
                let x = x[0];
                quote!(#x)
            }
            other => unsupported!(
                "ConstantOfShape of {:?} with a run-time shape",
                other.dtype()
            ),
        };
        quote! { #rt::ops::shape::fill(#y, #val); }
    })
}

pub(crate) fn gather(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (d, i) = (inp(n, 0)?, inp(n, 1)?);
        let ds = &g.values[d].shape;
        let ax = crate::ops::axis(n.attr_i("axis")?.unwrap_or(0), ds.len())?;
        let (xd, sd, xi, y) = (c.src(d), c.shape(d), c.src(i), c.dst(out));
        let (iname, node) = (root_name(c, i), &n.name);
        let ax = lit(ax);
        quote! { #rt::ops::gather::gather(#xd, #sd, #xi, #ax, #y).map_err(|e| e.at(#iname, #node))?; }
    })
}
