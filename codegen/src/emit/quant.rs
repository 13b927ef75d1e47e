//! Emission of the standalone quantization ops (QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear), referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::nodes::inp;
use super::{Ctx, lit};
use crate::error::Result;
use crate::ir::Node;

pub(crate) fn qdq(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    let op = n.op.as_str();
    Ok({
        let (xi, si) = (inp(n, 0)?, inp(n, 1)?);
        let l = crate::ops::q_layout(g, n, xi, si, n.input(2))?;
        let qt = if op == "QuantizeLinear" { out } else { xi };
        let t = super::rust_ty(g.values[qt].dtype);
        let (o, len, i, b) = (
            c.dim(&l.outer),
            c.dim(&l.len),
            c.dim(&l.inner),
            lit(l.block),
        );
        let (x, sc, y) = (c.src(xi), c.src(si), c.dst(out));
        let zp = match n.input(2) {
            Some(z) => {
                let z = c.src(z);
                quote!(Some(#z))
            }
            None => quote!(None),
        };
        let f = if op == "QuantizeLinear" {
            quote!(quantize_linear)
        } else {
            quote!(dequantize_linear)
        };
        quote! {
            #rt::qlinear::#f::<#t>(#x, #rt::qlinear::QAxis { outer: #o, len: #len, inner: #i, block: #b }, #sc, #zp, #y);
        }
    })
}

pub(crate) fn dynamic_quantize(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    Ok({
        let x = c.src(inp(n, 0)?);
        let y = c.dst(n.outputs[0]);
        let mut tail = TokenStream::new();
        if let Some(&s) = n.outputs.get(1) {
            let s = c.dst(s);
            tail.extend(quote!((#s)[0] = qp.scale;));
        }
        if let Some(&z) = n.outputs.get(2) {
            let z = c.dst(z);
            tail.extend(quote!((#z)[0] = qp.zero_point;));
        }
        let qp = c.qparams(inp(n, 0)?, &x);
        quote! {{
            let qp = #qp;
            #rt::quantize::quantize_u8_isa(isa, #x, qp, #y);
            #tail
        }}
    })
}
