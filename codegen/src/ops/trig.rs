//! Trigonometric and hyperbolic functions: Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Asinh,
//! Acosh, Atanh on f32 and f64. Element functions are `kiln_runtime::ops::trig` (scalar f64,
//! exact argument reduction, no platform libm), shared by generated code and constant folding.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, unsupported};
use crate::ir::{DType, Graph, Node, TensorData};
use kiln_runtime::ops::trig;

const TRIG: &str = "f32/f64; scalar `no_std` f64 evaluation with exact argument reduction (kiln_runtime::ops::trig), the same bits on every CPU";

/// The trigonometric family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("Sin", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Cos", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Tan", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Asin", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Acos", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Atan", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Sinh", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Cosh", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Asinh", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Acosh", TRIG, |cx, n| infer(cx.g, n), emit),
    op("Atanh", TRIG, |cx, n| infer(cx.g, n), emit),
];

/// The runtime functions of an op: (f32, f64, name of the f32 one; the f64 one adds `_f64`).
type Funcs = (fn(f32) -> f32, fn(f64) -> f64, &'static str);

fn funcs(op: &str) -> Funcs {
    match op {
        "Sin" => (trig::sin, trig::sin_f64, "sin"),
        "Cos" => (trig::cos, trig::cos_f64, "cos"),
        "Tan" => (trig::tan, trig::tan_f64, "tan"),
        "Asin" => (trig::asin, trig::asin_f64, "asin"),
        "Acos" => (trig::acos, trig::acos_f64, "acos"),
        "Atan" => (trig::atan, trig::atan_f64, "atan"),
        "Sinh" => (trig::sinh, trig::sinh_f64, "sinh"),
        "Cosh" => (trig::cosh, trig::cosh_f64, "cosh"),
        "Asinh" => (trig::asinh, trig::asinh_f64, "asinh"),
        "Acosh" => (trig::acosh, trig::acosh_f64, "acosh"),
        "Atanh" => (trig::atanh, trig::atanh_f64, "atanh"),
        other => unreachable!("{other} is not in this family"),
    }
}

fn infer(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (f32_fn, f64_fn, _) = funcs(&n.op);
    let x = &g.values[req(n, 0)?];
    if !matches!(x.dtype, DType::F32 | DType::F64) {
        unsupported!(
            "{} on {:?} tensors is not supported (f32, f64)",
            n.op,
            x.dtype
        );
    }
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape()) {
        let d = match k {
            TensorData::F32(v) => TensorData::F32(v.iter().map(|&x| f32_fn(x)).collect()),
            TensorData::F64(v) => TensorData::F64(v.iter().map(|&x| f64_fn(x)).collect()),
            _ => unreachable!("checked float above"),
        };
        return Ok(vec![OutInfo::konst(s, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

fn emit(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (_, _, name) = funcs(&n.op);
    let x = inp(n, 0)?;
    let f = match c.g.values[x].dtype {
        DType::F64 => quote::format_ident!("{name}_f64"),
        _ => quote::format_ident!("{name}"),
    };
    let (xs, y) = (c.src(x), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::elementwise::unary(#xs, #y, #rt::ops::trig::#f); })
}
