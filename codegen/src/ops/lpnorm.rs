//! LpNormalization: `x / ‖x‖_p` along `axis` (default −1), `p` 1 or 2 (default 2); kernel
//! `kiln_runtime::ops::lpnorm` (f64 accumulation, a zero norm gives 0).
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, axis, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Graph, Node, numel};

const LPNORM: &str =
    "f32/f64; `p` 1 or 2, any axis; the norm accumulated in f64; a zero norm gives 0";

/// The Lp-normalisation family (see `registry`).
pub(super) const OPS: &[OpDef] = &[op("LpNormalization", LPNORM, |cx, n| infer(cx.g, n), emit)];

/// `(axis, p)`, decoded and validated once.
fn decode(g: &Graph, n: &Node) -> Result<(usize, u32)> {
    let x = &g.values[req(n, 0)?];
    if !matches!(x.dtype, DType::F32 | DType::F64) {
        unsupported!(
            "LpNormalization on {:?} tensors is not supported (f32, f64)",
            x.dtype
        );
    }
    if x.shape.is_empty() {
        bail!("LpNormalization needs an input of rank ≥ 1");
    }
    let a = axis(n.attr_i("axis")?.unwrap_or(-1), x.shape.len())?;
    let p = match n.attr_i("p")?.unwrap_or(2) {
        1 => 1,
        2 => 2,
        p => bail!("LpNormalization's `p` must be 1 or 2, found {p}"),
    };
    Ok((a, p))
}

fn infer(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    decode(g, n)?;
    let x = &g.values[req(n, 0)?];
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

fn emit(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (a, p) = decode(c.g, n)?;
    let x = inp(n, 0)?;
    let v = &c.g.values[x];
    let f = if v.dtype == DType::F64 {
        quote!(lp_normalize_f64)
    } else {
        quote!(lp_normalize)
    };
    let (o, l, i) = (
        c.dim(&numel(&v.shape[..a])),
        c.dim(&v.shape[a]),
        c.dim(&numel(&v.shape[a + 1..])),
    );
    let (xs, y) = (c.src(x), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::lpnorm::#f(#xs, #y, (#o, #l, #i), #p); })
}
