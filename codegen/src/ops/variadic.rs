//! The variadic elementwise ops (Max, Min, Sum, Mean): one or more inputs broadcast together.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, broadcast, op};
use crate::emit::Ctx;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Node, TensorData};
use kiln_runtime::ops::elementwise as ew;

const VARIADIC: &str = "1 or more inputs, broadcasting; Max/Min all numeric types (NaN propagates), Sum/Mean floats (Sum on integers wraps); folded on constants";

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
    // Constant inputs (shape arithmetic such as T5's bucket clamp `Min(x, full_like(x, 15))`)
    // are evaluated now, with the run-time broadcast and accumulate functions.
    if let Some(so) = crate::ir::static_shape(&shape)
        && super::foldable(cx.g, n, &so)
    {
        let ks: Option<Vec<&TensorData>> =
            ins.iter().map(|&v| cx.g.values[v].konst.as_ref()).collect();
        let shapes: Option<Vec<Vec<usize>>> =
            ins.iter().map(|&v| cx.g.values[v].static_shape()).collect();
        if let (Some(ks), Some(shapes)) = (ks, shapes)
            && let Some(d) = fold(&n.op, &ks, &shapes, &so)
        {
            return Ok(vec![OutInfo::konst(so, d)]);
        }
    }
    Ok(vec![OutInfo::new(dt, shape)])
}

/// What the generated closures of `emit_variadic` compute, for folding.
trait Elem: Copy + Default + PartialOrd {
    fn nan(self) -> bool;
    fn add(self, b: Self) -> Self;
    fn div_count(self, k: usize) -> Self;
}
macro_rules! elem_float {
    ($($t:ty),*) => {$(impl Elem for $t {
        fn nan(self) -> bool { self.is_nan() }
        fn add(self, b: Self) -> Self { self + b }
        fn div_count(self, k: usize) -> Self { self / (k as f64 as $t) }
    })*};
}
macro_rules! elem_int {
    ($($t:ty),*) => {$(impl Elem for $t {
        fn nan(self) -> bool { false }
        fn add(self, b: Self) -> Self { self.wrapping_add(b) }
        fn div_count(self, _: usize) -> Self { unreachable!("Mean is refused on integers") }
    })*};
}
elem_float!(f32, f64);
elem_int!(i8, u8, i16, u16, i32, u32, i64, u64);

fn fold_typed<T: Elem>(op: &str, xs: &[&[T]], shapes: &[Vec<usize>], so: &[usize]) -> Vec<T> {
    let f = |a: T, b: T| match op {
        // Neither is NaN in the second test, so `b <= a` is `!(b > a)`, as emitted.
        "Max" if a.nan() || !b.nan() && b <= a => a,
        "Min" if a.nan() || !b.nan() && b >= a => a,
        "Max" | "Min" => b,
        _ => a.add(b),
    };
    let mut y = vec![T::default(); so.iter().product()];
    ew::unary_broadcast(xs[0], &shapes[0], &mut y, so);
    for (x, s) in xs[1..].iter().zip(&shapes[1..]) {
        ew::accumulate(&mut y, so, x, s, f);
    }
    if op == "Mean" {
        y.iter_mut().for_each(|v| *v = v.div_count(xs.len()));
    }
    y
}

/// `op` over constant inputs of one element type; `None` for bool or mixed data.
fn fold(op: &str, ks: &[&TensorData], shapes: &[Vec<usize>], so: &[usize]) -> Option<TensorData> {
    macro_rules! by_type {
        ($($var:ident),*) => {
            match ks[0] {
                $(TensorData::$var(_) => {
                    let xs: Option<Vec<&[_]>> = ks
                        .iter()
                        .map(|k| match k {
                            TensorData::$var(v) => Some(&v[..]),
                            _ => None,
                        })
                        .collect();
                    Some(TensorData::$var(fold_typed(op, &xs?, shapes, so)))
                })*
                TensorData::Bool(_) => None,
            }
        };
    }
    by_type!(F32, F64, I8, U8, I16, U16, I32, U32, I64, U64)
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
