//! Emission of [`KilnOp::Recurrent`](crate::ir::KilnOp::Recurrent): one call of
//! `kiln_runtime::ops::recurrent::run` with the node's spec as literals.
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::nodes::{f32_lit, inp};
use super::{Ctx, lit};
use crate::error::Result;
use crate::ir::Node;
use crate::ops::RecurrentOp;
use kiln_runtime::ops::recurrent::{Act, Cell, Direction};

fn act_tokens(rt: &TokenStream, a: Act) -> TokenStream {
    let p = quote!(#rt::ops::recurrent::Act);
    let f = f32_lit;
    match a {
        Act::Sigmoid => quote!(#p::Sigmoid),
        Act::Tanh => quote!(#p::Tanh),
        Act::Relu => quote!(#p::Relu),
        Act::Affine(a, b) => {
            let (a, b) = (f(a), f(b));
            quote!(#p::Affine(#a, #b))
        }
        Act::LeakyRelu(a) => {
            let a = f(a);
            quote!(#p::LeakyRelu(#a))
        }
        Act::ThresholdedRelu(a) => {
            let a = f(a);
            quote!(#p::ThresholdedRelu(#a))
        }
        Act::ScaledTanh(a, b) => {
            let (a, b) = (f(a), f(b));
            quote!(#p::ScaledTanh(#a, #b))
        }
        Act::HardSigmoid(a, b) => {
            let (a, b) = (f(a), f(b));
            quote!(#p::HardSigmoid(#a, #b))
        }
        Act::Elu(a) => {
            let a = f(a);
            quote!(#p::Elu(#a))
        }
        Act::Softsign => quote!(#p::Softsign),
        Act::Softplus => quote!(#p::Softplus),
    }
}

/// The runtime `Spec` literal of `o`.
pub(super) fn spec_tokens(c: &Ctx, o: &RecurrentOp) -> TokenStream {
    let rt = c.rt;
    let m = quote!(#rt::ops::recurrent);
    let cell = match o.cell {
        Cell::Lstm { input_forget } => quote!(#m::Cell::Lstm { input_forget: #input_forget }),
        Cell::Gru {
            linear_before_reset,
        } => quote!(#m::Cell::Gru { linear_before_reset: #linear_before_reset }),
        Cell::Rnn => quote!(#m::Cell::Rnn),
    };
    let direction = match o.direction {
        Direction::Forward => quote!(#m::Direction::Forward),
        Direction::Reverse => quote!(#m::Direction::Reverse),
        Direction::Bidirectional => quote!(#m::Direction::Bidirectional),
    };
    let acts: Vec<_> = o.acts.iter().map(|&a| act_tokens(rt, a)).collect();
    let clip = match o.clip {
        Some(v) => {
            let v = f32_lit(v);
            quote!(Some(#v))
        }
        None => quote!(None),
    };
    let (bf, seq, batch) = (o.batch_first, c.dim(&o.seq), c.dim(&o.batch));
    let (input, hidden) = (lit(o.input), lit(o.hidden));
    quote! {
        #m::Spec {
            cell: #cell, direction: #direction, batch_first: #bf,
            seq: #seq, batch: #batch, input: #input, hidden: #hidden,
            acts: &[#(#acts),*], clip: #clip,
        }
    }
}

pub(super) fn emit(
    c: &Ctx,
    n: &Node,
    o: &RecurrentOp,
    weights: Option<&Ident>,
) -> Result<TokenStream> {
    let rt = c.rt;
    let m = quote!(#rt::ops::recurrent);
    let spec = spec_tokens(c, o);
    let x = c.src(inp(n, 0)?);
    let weights = match weights {
        Some(id) => quote!(#m::Weights::Packed { w: &#id.0, r: &#id.1 }),
        None => {
            let (w, r) = (c.src(inp(n, 1)?), c.src(inp(n, 2)?));
            quote!(#m::Weights::Raw { w: #w, r: #r })
        }
    };
    let opt = |i: usize| match n.input(i) {
        Some(v) => {
            let s = c.src(v);
            quote!(Some(#s))
        }
        None => quote!(None),
    };
    let (b, lens, h0, c0, p) = (opt(3), opt(4), opt(5), opt(6), opt(7));
    let out = |i: usize| {
        if i < o.n_out {
            let d = c.dst(n.outputs[i]);
            quote!(Some(#d))
        } else {
            quote!(None)
        }
    };
    let (y, yh, yc) = (out(0), out(1), out(2));
    let scratch = c.dst(n.outputs[o.n_out]);
    let (lens_name, node) = match n.input(4) {
        Some(v) => (super::nodes::root_name(c, v), n.name.clone()),
        None => (String::new(), n.name.clone()),
    };
    Ok(quote! {{
        let extra = #m::Extra { b: #b, seq_lens: #lens, h0: #h0, c0: #c0, p: #p };
        let outs = #m::Outputs { y: #y, y_h: #yh, y_c: #yc };
        #m::run(isa, &#spec, #x, #weights, &extra, outs, #scratch)
            .map_err(|e| e.at(#lens_name, #node))?;
    }})
}
