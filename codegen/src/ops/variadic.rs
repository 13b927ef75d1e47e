//! The variadic elementwise ops (Max, Min, Sum, Mean): one or more inputs broadcast together.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, broadcast, op};
use crate::emit::Ctx;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Node};

const VARIADIC: &str = "1 or more inputs, broadcasting; Max/Min all numeric types (NaN propagates), Sum/Mean floats (Sum on integers wraps); not folded";

/// The variadic ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("Max", VARIADIC, infer_variadic, emit_variadic),
    op("Min", VARIADIC, infer_variadic, emit_variadic),
    op("Sum", VARIADIC, infer_variadic, emit_variadic),
    op("Mean", VARIADIC, infer_variadic, emit_variadic),
];

/// Max, Min, Sum, Mean: one or more inputs of one numeric type broadcast together.
fn infer_variadic(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let ins: Vec<usize> = n.inputs.iter().flatten().copied().collect();
    let Some(&first) = ins.first() else {
        bail!("{} needs at least one input", n.op);
    };
    let dt = cx.g.values[first].dtype;
    let mut shape = cx.g.values[first].shape.clone();
    for &v in &ins[1..] {
        let x = &cx.g.values[v];
        if x.dtype != dt {
            bail!(
                "inputs have different element types ({dt:?} and {:?})",
                x.dtype
            );
        }
        shape = broadcast(cx.g, &mut cx.assumed, &shape, &x.shape)?;
    }
    let float_only = matches!(n.op.as_str(), "Mean");
    if dt == DType::Bool || (float_only && !dt.is_float()) {
        unsupported!("{} on {:?} tensors is not supported", n.op, dt);
    }
    Ok(vec![OutInfo::new(dt, shape)])
}

/// Max, Min, Sum, Mean: the first input broadcast into the output, each further one folded in
/// with `accumulate`, Mean divided by the input count at the end.
fn emit_variadic(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    let ins: Vec<usize> = n.inputs.iter().flatten().copied().collect();
    let dt = c.g.values[out].dtype;
    let t = crate::emit::rust_ty(dt);
    let f = match (n.op.as_str(), dt.is_float()) {
        // NaN propagates, as numpy's maximum/minimum (the ONNX reference) does.
        ("Max", true) => {
            quote!(|a: #t, b: #t| if a.is_nan() || !(b > a) && !b.is_nan() { a } else { b })
        }
        ("Min", true) => {
            quote!(|a: #t, b: #t| if a.is_nan() || !(b < a) && !b.is_nan() { a } else { b })
        }
        ("Max", false) => quote!(|a: #t, b: #t| if b > a { b } else { a }),
        ("Min", false) => quote!(|a: #t, b: #t| if b < a { b } else { a }),
        (_, true) => quote!(|a: #t, b: #t| a + b),
        (_, false) => quote!(|a: #t, b: #t| a.wrapping_add(b)),
    };
    let (y, so) = (c.dst(out), c.shape(out));
    let (x0, s0) = (c.src(ins[0]), c.shape(ins[0]));
    let rest = ins[1..].iter().map(|&v| {
        let (x, s) = (c.src(v), c.shape(v));
        quote!(#rt::ops::elementwise::accumulate(&mut *y, #so, #x, #s, #f);)
    });
    let mean = if n.op == "Mean" {
        let k = ins.len() as f64;
        quote!(#rt::ops::elementwise::unary_inplace(&mut *y, |v: #t| v / (#k as #t));)
    } else {
        quote!()
    };
    Ok(quote! {{
        let y = #y;
        #rt::ops::elementwise::unary_broadcast(#x0, #s0, &mut *y, #so);
        #(#rest)*
        #mean
    }})
}
