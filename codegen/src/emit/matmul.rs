//! Emission of the float and integer matrix products (MatMul, Gemm, MatMulInteger), referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::Ctx;
use super::nodes::inp;
use super::nodes::{f32_lit, scalar_zero_point, zero_points};
use crate::error::{Result, unsupported};
use crate::ir::{Dim, Node, numel};
pub(crate) fn matmul(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    Ok({
        let (a, b) = (inp(n, 0)?, inp(n, 1)?);
        let (xa, sa, xb, sb, y, so) = (
            c.src(a),
            c.shape(a),
            c.src(b),
            c.shape(b),
            c.dst(out),
            c.shape(out),
        );
        quote! { #rt::ops::matmul::matmul(isa, #xa, #sa, #xb, #sb, #y, #so); }
    })
}

pub(crate) fn gemm(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (m, k, nn) = crate::ops::gemm_dims(g, n)?;
        let ta = n.attr_i("transA")?.unwrap_or(0) != 0;
        let tb = n.attr_i("transB")?.unwrap_or(0) != 0;
        let alpha = f32_lit(n.attr_f("alpha")?.unwrap_or(1.0));
        let beta = f32_lit(n.attr_f("beta")?.unwrap_or(1.0));
        let (xa, xb, y) = (c.src(inp(n, 0)?), c.src(inp(n, 1)?), c.dst(out));
        let cterm = match n.input(2) {
            Some(cv) => {
                let (xc, sc) = (c.src(cv), c.shape(cv));
                quote!(Some((#xc, #sc)))
            }
            None => quote!(None),
        };
        let (m, k, nn) = (c.dim(&m), c.dim(&k), c.dim(&nn));
        quote! { #rt::ops::gemm::gemm(isa, #ta, #tb, #m, #k, #nn, #alpha, #xa, #xb, #beta, #cterm, #y); }
    })
}

pub(crate) fn matmul_integer(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (a, b) = (inp(n, 0)?, inp(n, 1)?);
        let (sa, sb) = (&g.values[a].shape, &g.values[b].shape);
        if sb.len() > 2 {
            unsupported!(
                "MatMulInteger with a batched B {} is not supported",
                g.show_shape(sb)
            );
        }
        let k = sa.last().cloned().unwrap_or(Dim::constant(1));
        let m = numel(&sa[..sa.len().saturating_sub(1)]);
        let nn = if sb.len() == 2 {
            sb[1].clone()
        } else {
            Dim::constant(1)
        };
        let azp = scalar_zero_point(c, n.input(2));
        let Some(bzp) = zero_points(c, n.input(3))? else {
            unsupported!(
                "MatMulInteger with a per-column B zero point computed at run time is not supported"
            );
        };
        let (xa, xb, y) = (c.src(a), c.src(b), c.dst(out));
        let (m, k, nn) = (c.dim(&m), c.dim(&k), c.dim(&nn));
        quote! { #rt::gemm::matmul_integer_ref(#xa, #azp, #xb, #bzp, #m, #k, #nn, #y); }
    })
}
