//! BitwiseAnd/Or/Xor/Not, Mod (both `fmod` semantics, every numeric type) and LogSoftmax (its Softmax geometry,
//! opset < 13 coercion to 2-D included). Element semantics of Mod are
//! `kiln_runtime::ops::modulo`, which generated code and constant folding share.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, all_const, broadcast, op, req};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Graph, Node, TensorData};
use kiln_runtime::ops::modulo::Modulo;
use kiln_runtime::ops::{elementwise as ew, softmax as sm};

const MOD: &str = "broadcasting; `fmod` 1 (sign of the dividend) and 0 (sign of the divisor, numpy's `mod`) on every numeric type; integer division by 0 gives 0";
const BITWISE: &str = "integer types; broadcasting (BitwiseNot: one input)";
const BITSHIFT: &str = "integer types, broadcasting; `direction` LEFT (wrapping) or RIGHT (arithmetic on signed types); a shift that is negative or ≥ the bit width gives 0 (RIGHT of a negative signed value: -1), as opset 28 specifies";
const LOG_SOFTMAX: &str = "f32; opset < 13 (2-D coercion) and ≥ 13 (single axis) semantics";

/// Mod and LogSoftmax (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("Mod", MOD, infer_mod, emit_mod),
    op("BitwiseAnd", BITWISE, infer_bitwise, emit_bitwise),
    op("BitwiseOr", BITWISE, infer_bitwise, emit_bitwise),
    op("BitwiseXor", BITWISE, infer_bitwise, emit_bitwise),
    op("BitwiseNot", BITWISE, infer_bitwise, emit_bitwise),
    op("BitShift", BITSHIFT, infer_bitshift, emit_bitshift),
    op(
        "LogSoftmax",
        LOG_SOFTMAX,
        |cx, n| infer_log_softmax(cx.g, n),
        emit_log_softmax,
    ),
];

/// Mod's `fmod` attribute, validated.
fn fmod_attr(n: &Node) -> Result<bool> {
    match n.attr_i("fmod")?.unwrap_or(0) {
        0 => Ok(false),
        1 => Ok(true),
        v => bail!("attribute `fmod` must be 0 or 1, found {v}"),
    }
}

fn infer_mod(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let fmod = fmod_attr(n)?;
    let g = &*cx.g;
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != b.dtype {
        bail!(
            "inputs have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    if a.dtype == DType::Bool {
        unsupported!("Mod on bool tensors is not defined");
    }
    let shape = broadcast(g, &mut cx.assumed, &a.shape, &b.shape)?;
    if all_const(g, n)
        && let (Some(sa), Some(sb), Some(so)) = (
            a.static_shape(),
            b.static_shape(),
            crate::ir::static_shape(&shape),
        )
        && super::foldable(g, n, &so)
    {
        let (ka, kb) = (a.konst.as_ref().unwrap(), b.konst.as_ref().unwrap());
        if let Some(d) = fold_mod(fmod, ka, &sa, kb, &sb, &so) {
            return Ok(vec![OutInfo::konst(so, d)]);
        }
    }
    Ok(vec![OutInfo::new(a.dtype, shape)])
}

fn fold_mod(
    fmod: bool,
    a: &TensorData,
    sa: &[usize],
    b: &TensorData,
    sb: &[usize],
    so: &[usize],
) -> Option<TensorData> {
    fn go<T: Modulo + Default + Send + Sync>(
        fmod: bool,
        a: &[T],
        sa: &[usize],
        b: &[T],
        sb: &[usize],
        so: &[usize],
    ) -> Vec<T> {
        let mut out = vec![T::default(); so.iter().product()];
        let f = if fmod { T::fmod } else { T::floor_mod };
        ew::binary(a, sa, b, sb, &mut out, so, f);
        out
    }
    use TensorData as D;
    Some(match (a, b) {
        (D::F32(x), D::F32(y)) => D::F32(go(fmod, x, sa, y, sb, so)),
        (D::F64(x), D::F64(y)) => D::F64(go(fmod, x, sa, y, sb, so)),
        (D::I8(x), D::I8(y)) => D::I8(go(fmod, x, sa, y, sb, so)),
        (D::U8(x), D::U8(y)) => D::U8(go(fmod, x, sa, y, sb, so)),
        (D::I16(x), D::I16(y)) => D::I16(go(fmod, x, sa, y, sb, so)),
        (D::U16(x), D::U16(y)) => D::U16(go(fmod, x, sa, y, sb, so)),
        (D::I32(x), D::I32(y)) => D::I32(go(fmod, x, sa, y, sb, so)),
        (D::U32(x), D::U32(y)) => D::U32(go(fmod, x, sa, y, sb, so)),
        (D::I64(x), D::I64(y)) => D::I64(go(fmod, x, sa, y, sb, so)),
        (D::U64(x), D::U64(y)) => D::U64(go(fmod, x, sa, y, sb, so)),
        _ => return None,
    })
}

fn emit_mod(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    let (a, b) = (inp(n, 0)?, inp(n, 1)?);
    let t = crate::emit::rust_ty(c.g.values[a].dtype);
    let f = if fmod_attr(n)? {
        quote!(fmod)
    } else {
        quote!(floor_mod)
    };
    let (xa, sa, xb, sb) = (c.src(a), c.shape(a), c.src(b), c.shape(b));
    let (y, so) = (c.dst(out), c.shape(out));
    Ok(quote! {
        #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so,
            <#t as #rt::ops::modulo::Modulo>::#f);
    })
}

fn infer_log_softmax(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "LogSoftmax on {:?} tensors is not supported (float32 only)",
            x.dtype
        );
    }
    let (outer, len, inner) = super::softmax_dims(g, n)?;
    if let (Some(TensorData::F32(v)), Some(s), Some(o), Some(l), Some(i)) = (
        &x.konst,
        x.static_shape(),
        outer.as_usize(),
        len.as_usize(),
        inner.as_usize(),
    ) {
        let mut out = vec![0.0; v.len()];
        sm::log_softmax(v, &mut out, o, l, i);
        return Ok(vec![OutInfo::konst(s, TensorData::F32(out))]);
    }
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}

fn emit_log_softmax(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (outer, len, inner) = super::softmax_dims(c.g, n)?;
    let (x, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
    let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
    Ok(quote! { #rt::ops::softmax::log_softmax(#x, #y, #o, #l, #i); })
}

/// `a op b` (or `!a`) on integers, for folding; `op` is the ONNX name.
fn bit<T>(op: &str, a: T, b: T) -> T
where
    T: core::ops::BitAnd<Output = T>
        + core::ops::BitOr<Output = T>
        + core::ops::BitXor<Output = T>
        + core::ops::Not<Output = T>,
{
    match op {
        "BitwiseAnd" => a & b,
        "BitwiseOr" => a | b,
        "BitwiseXor" => a ^ b,
        _ => !a,
    }
}

fn infer_bitwise(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let g = &*cx.g;
    let not = n.op == "BitwiseNot";
    let a = &g.values[req(n, 0)?];
    let b = if not { a } else { &g.values[req(n, 1)?] };
    if a.dtype != b.dtype {
        bail!(
            "inputs have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    if a.dtype.is_float() || a.dtype == DType::Bool {
        unsupported!(
            "{} on {:?} tensors is not defined (integer types only)",
            n.op,
            a.dtype
        );
    }
    let shape = broadcast(g, &mut cx.assumed, &a.shape, &b.shape)?;
    if all_const(g, n)
        && let (Some(sa), Some(sb), Some(so)) = (
            a.static_shape(),
            b.static_shape(),
            crate::ir::static_shape(&shape),
        )
        && super::foldable(g, n, &so)
    {
        let (ka, kb) = (a.konst.as_ref().unwrap(), b.konst.as_ref().unwrap());
        let op = n.op.as_str();
        use TensorData as D;
        macro_rules! go {
            ($($v:ident),*) => {
                match (ka, kb) {
                    $((D::$v(x), D::$v(y)) => {
                        let mut out = vec![Default::default(); so.iter().product()];
                        ew::binary(x, &sa, y, &sb, &mut out, &so, |p, q| bit(op, p, q));
                        Some(D::$v(out))
                    })*
                    _ => None,
                }
            };
        }
        if let Some(d) = go!(I8, U8, I16, U16, I32, U32, I64, U64) {
            return Ok(vec![OutInfo::konst(so, d)]);
        }
    }
    Ok(vec![OutInfo::new(a.dtype, shape)])
}

fn emit_bitwise(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    let a = inp(n, 0)?;
    let t = crate::emit::rust_ty(c.g.values[a].dtype);
    let (xa, y) = (c.src(a), c.dst(out));
    if n.op == "BitwiseNot" {
        return Ok(quote! { #rt::ops::elementwise::unary(#xa, #y, |v: #t| !v); });
    }
    let f = match n.op.as_str() {
        "BitwiseAnd" => quote!(|p: #t, q: #t| p & q),
        "BitwiseOr" => quote!(|p: #t, q: #t| p | q),
        _ => quote!(|p: #t, q: #t| p ^ q),
    };
    let b = inp(n, 1)?;
    let (sa, xb, sb, so) = (c.shape(a), c.src(b), c.shape(b), c.shape(out));
    Ok(quote! { #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so, #f); })
}

/// BitShift's `direction`, validated: true for LEFT.
fn shift_left(n: &Node) -> Result<bool> {
    match super::vision::attr_str(n, "direction")?.as_deref() {
        Some("LEFT") => Ok(true),
        Some("RIGHT") => Ok(false),
        Some(d) => bail!("attribute `direction` must be \"LEFT\" or \"RIGHT\", found {d:?}"),
        None => bail!("attribute `direction` is required (\"LEFT\" or \"RIGHT\")"),
    }
}

fn infer_bitshift(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    shift_left(n)?;
    let g = &*cx.g;
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != b.dtype {
        bail!(
            "inputs have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    if a.dtype.is_float() || a.dtype == DType::Bool {
        unsupported!(
            "BitShift on {:?} tensors is not defined (integer types only)",
            a.dtype
        );
    }
    let shape = broadcast(g, &mut cx.assumed, &a.shape, &b.shape)?;
    Ok(vec![OutInfo::new(a.dtype, shape)])
}

/// One closure per direction over `T::BITS`: an amount outside `[0, BITS)` gives 0 to the
/// left, and the sign fill (`x >> (BITS-1) >> 1`: 0, or -1 for a negative signed `x`) to
/// the right.
fn emit_bitshift(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    let (a, b) = (inp(n, 0)?, inp(n, 1)?);
    let t = crate::emit::rust_ty(c.g.values[a].dtype);
    let f = if shift_left(n)? {
        quote!(|p: #t, q: #t| {
            let s = q as i128;
            if (0..<#t>::BITS as i128).contains(&s) { p.wrapping_shl(s as u32) } else { 0 }
        })
    } else {
        quote!(|p: #t, q: #t| {
            let s = q as i128;
            if (0..<#t>::BITS as i128).contains(&s) { p >> s } else { p >> (<#t>::BITS - 1) >> 1 }
        })
    };
    let (xa, sa, xb, sb) = (c.src(a), c.shape(a), c.src(b), c.shape(b));
    let (y, so) = (c.dst(out), c.shape(out));
    Ok(quote! { #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so, #f); })
}
