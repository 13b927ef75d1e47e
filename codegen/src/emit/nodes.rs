//! One block of straight-line Rust per node: fused ops (`KilnOp`) through `fused`, every other
//! op through its registry entry (`OpDef::emit`, beside the op's inference).
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::Ctx;
use crate::error::{Result, bail, unsupported};
use crate::ir::Node;
use kiln_runtime::gemm::Activation;

pub(super) fn act_tokens(rt: &TokenStream, act: &Activation) -> TokenStream {
    match act {
        Activation::None => quote!(#rt::gemm::Activation::None),
        Activation::Relu => quote!(#rt::gemm::Activation::Relu),
        Activation::Gelu => quote!(#rt::gemm::Activation::Gelu),
        Activation::Clip { min, max } => {
            quote!(#rt::gemm::Activation::Clip { min: #min, max: #max })
        }
    }
}

/// An `f32` expression; NaN and infinities have no literal form (quote's would panic).
pub(crate) fn f32_tokens(v: f32) -> TokenStream {
    f32_lit(v)
}

pub(crate) fn f32_lit(v: f32) -> TokenStream {
    if v.is_nan() {
        quote!(f32::NAN)
    } else if v == f32::INFINITY {
        quote!(f32::INFINITY)
    } else if v == f32::NEG_INFINITY {
        quote!(f32::NEG_INFINITY)
    } else {
        quote!(#v)
    }
}

pub fn emit_node(c: &Ctx, n: &Node, weights: Option<&Ident>) -> Result<TokenStream> {
    if let Some(k) = &n.kiln {
        return super::fused::emit(c, n, k, weights);
    }
    match crate::ops::lookup(&n.domain, &n.op) {
        Some(def) => (def.emit)(c, n),
        None => unsupported!("operator `{}` has no code generator", n.op),
    }
}

/// Value id of input `i` of `n`.
pub(crate) fn inp(n: &Node, i: usize) -> Result<usize> {
    match n.input(i) {
        Some(v) => Ok(v),
        None => bail!("missing input #{i}"),
    }
}

/// The `emit` of ops that a pass always lowers to a fused op (Conv → `KilnOp::Conv`, …).
pub(crate) fn lowered(_: &Ctx, n: &Node) -> Result<TokenStream> {
    unsupported!("operator `{}` has no code generator", n.op)
}

/// The `emit` of ops that are always folded at compile time (Shape, Constant).
pub(crate) fn folded(_: &Ctx, n: &Node) -> Result<TokenStream> {
    bail!("internal: {} should have been folded", n.op)
}

/// A scalar zero point as an `i32` expression (its first element; 0 when absent).
pub(super) fn scalar_zero_point(c: &Ctx, z: Option<usize>) -> TokenStream {
    match z {
        Some(z) => {
            let z = c.src(z);
            quote!((#z)[0] as i32)
        }
        None => quote!(0),
    }
}

/// Zero points as an `&[i32]` expression: constants inline, a run-time scalar as a one-element
/// slice, `&[0]` when absent; `None` for per-channel values computed at run time.
pub(super) fn zero_points(c: &Ctx, z: Option<usize>) -> Result<Option<TokenStream>> {
    let Some(z) = z else {
        return Ok(Some(quote!(&[0])));
    };
    let v = &c.g.values[z];
    Ok(match &v.konst {
        Some(d) => {
            let v: Vec<i32> = d.as_i64()?.into_iter().map(|v| v as i32).collect();
            Some(quote!(&[#(#v),*]))
        }
        None if v.numel() == 1 => {
            let z = c.src(z);
            Some(quote!(&[(#z)[0] as i32]))
        }
        None => None,
    })
}

/// The name a user recognises for value `v`: a graph input it is a view of, else its own.
pub(crate) fn root_name(c: &Ctx, v: usize) -> String {
    c.g.values[c.plan.root(v)].name.clone()
}
