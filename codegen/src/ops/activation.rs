//! The ONNX activations beyond the elementwise family's: Gelu (opset 20, `approximate` none or
//! tanh), Swish (opset 24), Mish, Celu, ThresholdedRelu, Shrink, PRelu and SwiGLU (opset 28).
//! Element functions are `kiln_runtime::ops::activation` (Gelu's erf form on f32: the
//! vectorised `ops::gelu` kernel), shared by generated code and constant folding.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, broadcast, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{Attr, DType, Graph, Node, TensorData};
use kiln_runtime::ops::activation as act;

const GELU: &str = "f32/f64; `approximate` none (f32: kiln's vectorised GELU kernel) or tanh";
const ACT: &str = "f32/f64, evaluated in f64 and rounded once (the same bits on every CPU); attributes as in the spec";
const SHRINK: &str = "f32/f64; `lambd`, `bias`";
const PRELU: &str = "f32/f64/int32/int64; `slope` broadcasts to `X` (unidirectional)";
const SWIGLU: &str = "f32/f64; `Swish_alpha(A)·B`, `A` and `B` of one shape";

/// The activation family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("Gelu", GELU, |cx, n| infer(cx.g, n), emit),
    op("Swish", ACT, |cx, n| infer(cx.g, n), emit),
    op("Mish", ACT, |cx, n| infer(cx.g, n), emit),
    op("Celu", ACT, |cx, n| infer(cx.g, n), emit),
    op("ThresholdedRelu", ACT, |cx, n| infer(cx.g, n), emit),
    op("Shrink", SHRINK, |cx, n| infer(cx.g, n), emit),
    op("PRelu", PRELU, infer_prelu, emit),
    op("SwiGLU", SWIGLU, |cx, n| infer(cx.g, n), emit),
];

/// A node's activation with its attributes, decoded (and validated) once.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Gelu { tanh: bool },
    Swish { alpha: f32 },
    Mish,
    Celu { alpha: f32 },
    ThresholdedRelu { alpha: f32 },
    Shrink { lambd: f32, bias: f32 },
    PRelu,
    SwiGLU { alpha: f32 },
}

impl Act {
    fn decode(n: &Node) -> Result<Self> {
        let f =
            |name: &str, default: f32| -> Result<f32> { Ok(n.attr_f(name)?.unwrap_or(default)) };
        Ok(match n.op.as_str() {
            "Gelu" => Act::Gelu {
                tanh: match n.attrs.get("approximate") {
                    None => false,
                    Some(Attr::String(s)) if s == "none" => false,
                    Some(Attr::String(s)) if s == "tanh" => true,
                    Some(other) => {
                        bail!(
                            "attribute `approximate` must be \"none\" or \"tanh\", found {other:?}"
                        )
                    }
                },
            },
            "Swish" => Act::Swish {
                alpha: f("alpha", 1.0)?,
            },
            "Mish" => Act::Mish,
            "Celu" => {
                let alpha = f("alpha", 1.0)?;
                if alpha == 0.0 {
                    bail!("Celu's `alpha` must not be 0");
                }
                Act::Celu { alpha }
            }
            "ThresholdedRelu" => Act::ThresholdedRelu {
                alpha: f("alpha", 1.0)?,
            },
            "Shrink" => Act::Shrink {
                lambd: f("lambd", 0.5)?,
                bias: f("bias", 0.0)?,
            },
            "PRelu" => Act::PRelu,
            "SwiGLU" => Act::SwiGLU {
                alpha: f("alpha", 1.0)?,
            },
            other => unreachable!("{other} is not in this family"),
        })
    }

    /// One element (f64 inputs: the `_f64` functions; f32: the rounded ones). `b` is the
    /// second operand of PRelu (slope) and SwiGLU.
    fn eval_f32(self, x: f32, b: f32) -> f32 {
        match self {
            Act::Gelu { tanh: false } => kiln_runtime::ops::gelu::gelu_scalar(x),
            Act::Gelu { tanh: true } => act::gelu_tanh(x),
            Act::Swish { alpha } => act::swish(x, alpha),
            Act::Mish => act::mish(x),
            Act::Celu { alpha } => act::celu(x, alpha),
            Act::ThresholdedRelu { alpha } => act::thresholded_relu(x, alpha),
            Act::Shrink { lambd, bias } => act::shrink(x, lambd, bias),
            Act::PRelu => act::prelu(x, b),
            Act::SwiGLU { alpha } => act::swiglu(x, b, alpha),
        }
    }

    fn eval_f64(self, x: f64, b: f64) -> f64 {
        match self {
            Act::Gelu { tanh: false } => act::gelu_erf_f64(x),
            Act::Gelu { tanh: true } => act::gelu_tanh_f64(x),
            Act::Swish { alpha } => act::swish_f64(x, alpha as f64),
            Act::Mish => act::mish_f64(x),
            Act::Celu { alpha } => act::celu_f64(x, alpha as f64),
            Act::ThresholdedRelu { alpha } => act::thresholded_relu(x, alpha as f64),
            Act::Shrink { lambd, bias } => act::shrink_f64(x, lambd as f64, bias as f64),
            Act::PRelu => act::prelu(x, b),
            Act::SwiGLU { alpha } => act::swiglu_f64(x, b, alpha as f64),
        }
    }

    fn binary(self) -> bool {
        matches!(self, Act::PRelu | Act::SwiGLU { .. })
    }

    /// The element closure for generated code (`|x| …`, or `|x, b| …` for the binary ones).
    fn closure(self, dt: DType, rt: &TokenStream) -> TokenStream {
        let m = quote!(#rt::ops::activation);
        let f64 = dt == DType::F64;
        let sfx = |name: &str| {
            let s = if f64 {
                format!("{name}_f64")
            } else {
                name.to_string()
            };
            quote::format_ident!("{}", s)
        };
        let t = crate::emit::rust_ty(dt);
        // Attributes are f32; the f64 functions take them widened (exactly).
        let a = |v: f32| {
            if f64 {
                let v = v as f64;
                quote!(#v)
            } else {
                quote!(#v)
            }
        };
        match self {
            Act::Gelu { tanh: false } if f64 => quote!(|x: f64| #m::gelu_erf_f64(x)),
            Act::Gelu { tanh: false } => quote!(#rt::ops::math::gelu_erf),
            Act::Gelu { tanh: true } => {
                let f = sfx("gelu_tanh");
                quote!(|x: #t| #m::#f(x))
            }
            Act::Swish { alpha } => {
                let (f, alpha) = (sfx("swish"), a(alpha));
                quote!(|x: #t| #m::#f(x, #alpha))
            }
            Act::Mish => {
                let f = sfx("mish");
                quote!(|x: #t| #m::#f(x))
            }
            Act::Celu { alpha } => {
                let (f, alpha) = (sfx("celu"), a(alpha));
                quote!(|x: #t| #m::#f(x, #alpha))
            }
            Act::ThresholdedRelu { alpha } => {
                let alpha = a(alpha);
                quote!(|x: #t| #m::thresholded_relu(x, #alpha))
            }
            Act::Shrink { lambd, bias } => {
                let (f, lambd, bias) = (sfx("shrink"), a(lambd), a(bias));
                quote!(|x: #t| #m::#f(x, #lambd, #bias))
            }
            Act::PRelu => quote!(|x: #t, s: #t| #m::prelu(x, s)),
            Act::SwiGLU { alpha } => {
                let (f, alpha) = (sfx("swiglu"), a(alpha));
                quote!(|x: #t, b: #t| #m::#f(x, b, #alpha))
            }
        }
    }
}

fn check_dtype(g: &Graph, n: &Node, a: Act) -> Result<DType> {
    let x = &g.values[req(n, 0)?];
    let ok = match a {
        Act::PRelu => matches!(x.dtype, DType::F32 | DType::F64 | DType::I32 | DType::I64),
        _ => matches!(x.dtype, DType::F32 | DType::F64),
    };
    if !ok {
        unsupported!(
            "{} on {:?} tensors is not supported ({})",
            n.op,
            x.dtype,
            if a == Act::PRelu {
                "f32, f64, int32, int64"
            } else {
                "f32, f64"
            }
        );
    }
    if a.binary() {
        let b = &g.values[req(n, 1)?];
        if b.dtype != x.dtype {
            bail!(
                "inputs have different element types ({:?} and {:?})",
                x.dtype,
                b.dtype
            );
        }
    }
    Ok(x.dtype)
}

/// The unary activations and SwiGLU (whose operands have one shape).
fn infer(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let a = Act::decode(n)?;
    let dt = check_dtype(g, n, a)?;
    let x = &g.values[req(n, 0)?];
    let b = a.binary().then(|| &g.values[n.input(1).expect("checked")]);
    if let Some(b) = b
        && b.shape != x.shape
    {
        bail!(
            "SwiGLU's inputs must have one shape (no broadcasting), found {} and {}",
            g.show_shape(&x.shape),
            g.show_shape(&b.shape)
        );
    }
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape())
        && b.is_none_or(|b| b.konst.is_some())
    {
        let kb = b.and_then(|b| b.konst.as_ref());
        let d = match (k, kb) {
            (TensorData::F32(v), None) => {
                TensorData::F32(v.iter().map(|&x| a.eval_f32(x, 0.0)).collect())
            }
            (TensorData::F32(v), Some(TensorData::F32(w))) => {
                TensorData::F32(v.iter().zip(w).map(|(&x, &y)| a.eval_f32(x, y)).collect())
            }
            (TensorData::F64(v), None) => {
                TensorData::F64(v.iter().map(|&x| a.eval_f64(x, 0.0)).collect())
            }
            (TensorData::F64(v), Some(TensorData::F64(w))) => {
                TensorData::F64(v.iter().zip(w).map(|(&x, &y)| a.eval_f64(x, y)).collect())
            }
            _ => return Ok(vec![OutInfo::new(dt, x.shape.clone())]),
        };
        return Ok(vec![OutInfo::konst(s, d)]);
    }
    Ok(vec![OutInfo::new(dt, x.shape.clone())])
}

/// PRelu: `slope` broadcasts to `X`'s shape (unidirectionally), so the output is `X`'s shape.
fn infer_prelu(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let dt = check_dtype(cx.g, n, Act::PRelu)?;
    let g = &*cx.g;
    let (x, s) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    let out = broadcast(g, &mut cx.assumed, &x.shape, &s.shape)?;
    if out.len() != x.shape.len() || out != x.shape {
        bail!(
            "PRelu's slope {} does not broadcast to X {} (unidirectional broadcasting)",
            g.show_shape(&s.shape),
            g.show_shape(&x.shape)
        );
    }
    Ok(vec![OutInfo::new(dt, x.shape.clone())])
}

fn emit(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let a = Act::decode(n)?;
    let x = inp(n, 0)?;
    let dt = g.values[x].dtype;
    let (xs, y) = (c.src(x), c.dst(out));
    if a == (Act::Gelu { tanh: false }) && dt == DType::F32 {
        return Ok(quote! { #rt::ops::gelu::gelu(isa, #xs, #y); });
    }
    let f = a.closure(dt, rt);
    if a.binary() {
        let b = inp(n, 1)?;
        let (bs, sx, sb, so) = (c.src(b), c.shape(x), c.shape(b), c.shape(out));
        return Ok(quote! { #rt::ops::elementwise::binary(#xs, #sx, #bs, #sb, #y, #so, #f); });
    }
    Ok(quote! { #rt::ops::elementwise::unary(#xs, #y, #f); })
}
