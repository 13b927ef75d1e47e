//! Broadcasting binary arithmetic, unary activations and Softmax.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OutInfo, all_const, axis, broadcast, numel, req};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Graph, Node, TensorData};
use kiln_runtime::ops::{elementwise as ew, math, softmax as sm};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    pub fn from_op(op: &str) -> Option<Self> {
        Some(match op {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            _ => return None,
        })
    }
    /// The element function as a Rust closure for generated code. Integer arithmetic wraps
    /// (two's complement, as onnxruntime does) and integer division by zero yields 0 rather
    /// than trapping: ONNX leaves it undefined and generated code must never panic.
    pub fn closure(self, dt: DType) -> TokenStream {
        let t: TokenStream = dt.rust().parse().unwrap();
        let body = if dt.is_float() {
            match self {
                BinaryOp::Add => quote!(a + b),
                BinaryOp::Sub => quote!(a - b),
                BinaryOp::Mul => quote!(a * b),
                BinaryOp::Div => quote!(a / b),
            }
        } else {
            match self {
                BinaryOp::Add => quote!(a.wrapping_add(b)),
                BinaryOp::Sub => quote!(a.wrapping_sub(b)),
                BinaryOp::Mul => quote!(a.wrapping_mul(b)),
                BinaryOp::Div => quote!(if b == 0 { 0 } else { a.wrapping_div(b) }),
            }
        };
        quote!(|a: #t, b: #t| #body)
    }
}

/// Compile-time twin of `BinaryOp::closure`.
trait Arith: Copy {
    fn apply(op: BinaryOp, a: Self, b: Self) -> Self;
}
macro_rules! arith_float {
    ($($t:ty),*) => {$(impl Arith for $t {
        fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
            match op { BinaryOp::Add => a + b, BinaryOp::Sub => a - b, BinaryOp::Mul => a * b, BinaryOp::Div => a / b }
        }
    })*};
}
macro_rules! arith_int {
    ($($t:ty),*) => {$(impl Arith for $t {
        fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
            match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Sub => a.wrapping_sub(b),
                BinaryOp::Mul => a.wrapping_mul(b),
                BinaryOp::Div => if b == 0 { 0 } else { a.wrapping_div(b) },
            }
        }
    })*};
}
arith_float!(f32, f64);
arith_int!(i8, u8, i16, u16, i32, u32, i64, u64);

fn fold_binary(
    op: BinaryOp,
    a: &TensorData,
    sa: &[usize],
    b: &TensorData,
    sb: &[usize],
    so: &[usize],
) -> Option<TensorData> {
    fn go<T: Arith + Default>(
        op: BinaryOp,
        a: &[T],
        sa: &[usize],
        b: &[T],
        sb: &[usize],
        so: &[usize],
    ) -> Vec<T> {
        let mut out = vec![T::default(); numel(so)];
        ew::binary(a, sa, b, sb, &mut out, so, |x, y| T::apply(op, x, y));
        out
    }
    use TensorData as D;
    Some(match (a, b) {
        (D::F32(x), D::F32(y)) => D::F32(go(op, x, sa, y, sb, so)),
        (D::F64(x), D::F64(y)) => D::F64(go(op, x, sa, y, sb, so)),
        (D::I8(x), D::I8(y)) => D::I8(go(op, x, sa, y, sb, so)),
        (D::U8(x), D::U8(y)) => D::U8(go(op, x, sa, y, sb, so)),
        (D::I16(x), D::I16(y)) => D::I16(go(op, x, sa, y, sb, so)),
        (D::U16(x), D::U16(y)) => D::U16(go(op, x, sa, y, sb, so)),
        (D::I32(x), D::I32(y)) => D::I32(go(op, x, sa, y, sb, so)),
        (D::U32(x), D::U32(y)) => D::U32(go(op, x, sa, y, sb, so)),
        (D::I64(x), D::I64(y)) => D::I64(go(op, x, sa, y, sb, so)),
        (D::U64(x), D::U64(y)) => D::U64(go(op, x, sa, y, sb, so)),
        _ => return None,
    })
}

pub fn infer_binary(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let op = BinaryOp::from_op(&n.op).expect("dispatched by op name");
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != b.dtype {
        bail!(
            "inputs have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    if a.dtype == DType::Bool {
        bail!("arithmetic on bool tensors is not defined");
    }
    let shape = broadcast(&a.shape, &b.shape)?;
    if all_const(g, n) {
        let (ka, kb) = (a.konst.as_ref().unwrap(), b.konst.as_ref().unwrap());
        if let Some(d) = fold_binary(op, ka, &a.shape, kb, &b.shape, &shape) {
            return Ok(vec![OutInfo::konst(shape, d)]);
        }
    }
    Ok(vec![OutInfo::new(a.dtype, shape)])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
}

impl UnaryOp {
    pub fn from_op(op: &str) -> Option<Self> {
        Some(match op {
            "Relu" => UnaryOp::Relu,
            "Sigmoid" => UnaryOp::Sigmoid,
            "Tanh" => UnaryOp::Tanh,
            _ => return None,
        })
    }
    pub fn closure(self, dt: DType, rt: &TokenStream) -> TokenStream {
        let t: TokenStream = dt.rust().parse().unwrap();
        match (self, dt.is_float()) {
            // Same semantics as the fused GEMM epilogue: NaN → 0.
            (UnaryOp::Relu, true) => quote!(|x: #t| if x > 0.0 { x } else { 0.0 }),
            (UnaryOp::Relu, false) => quote!(|x: #t| if x > 0 { x } else { 0 }),
            (UnaryOp::Sigmoid, _) if dt == DType::F32 => quote!(#rt::ops::math::sigmoid),
            (UnaryOp::Tanh, _) if dt == DType::F32 => quote!(#rt::ops::math::tanh),
            (UnaryOp::Sigmoid, _) => quote!(|x: #t| (#rt::ops::math::sigmoid(x as f32)) as #t),
            (UnaryOp::Tanh, _) => quote!(|x: #t| (#rt::ops::math::tanh(x as f32)) as #t),
        }
    }
}

fn relu<T: PartialOrd + Default + Copy>(x: T) -> T {
    // NaN → 0, like the generated closure and the fused epilogue.
    if x > T::default() { x } else { T::default() }
}

pub fn infer_unary(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let op = UnaryOp::from_op(&n.op).expect("dispatched by op name");
    let x = &g.values[req(n, 0)?];
    let float_only = !matches!(op, UnaryOp::Relu);
    if float_only && !matches!(x.dtype, DType::F32 | DType::F64) || x.dtype == DType::Bool {
        unsupported!("{} on {:?} tensors is not supported", n.op, x.dtype);
    }
    if let Some(k) = &x.konst {
        use TensorData as D;
        let d = match (op, k) {
            (UnaryOp::Relu, D::F32(v)) => Some(D::F32(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::F64(v)) => Some(D::F64(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I32(v)) => Some(D::I32(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I64(v)) => Some(D::I64(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I8(v)) => Some(D::I8(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Sigmoid, D::F32(v)) => {
                Some(D::F32(v.iter().map(|&x| math::sigmoid(x)).collect()))
            }
            (UnaryOp::Tanh, D::F32(v)) => Some(D::F32(v.iter().map(|&x| math::tanh(x)).collect())),
            _ => None,
        };
        if let Some(d) = d {
            return Ok(vec![OutInfo::konst(x.shape.clone(), d)]);
        }
    }
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

/// Softmax geometry `(outer, axis_len, inner)` for the node's opset semantics.
pub fn softmax_dims(g: &Graph, n: &Node) -> Result<(usize, usize, usize)> {
    let x = &g.values[req(n, 0)?];
    let rank = x.shape.len();
    if rank == 0 {
        bail!("Softmax needs an input of rank >= 1");
    }
    if g.opset < 13 {
        // Opsets 1-12: the input is coerced to 2-D at `axis` (default 1).
        let a = n.attr_i("axis")?.unwrap_or(1);
        let a = if a == rank as i64 {
            rank
        } else {
            axis(a, rank)?
        };
        Ok((numel(&x.shape[..a]), numel(&x.shape[a..]), 1))
    } else {
        let a = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
        Ok((numel(&x.shape[..a]), x.shape[a], numel(&x.shape[a + 1..])))
    }
}

pub fn infer_softmax(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "Softmax on {:?} tensors is not supported (float32 only)",
            x.dtype
        );
    }
    let (outer, len, inner) = softmax_dims(g, n)?;
    if let Some(TensorData::F32(v)) = &x.konst {
        let mut out = vec![0.0; v.len()];
        sm::softmax(v, &mut out, outer, len, inner);
        return Ok(vec![OutInfo::konst(x.shape.clone(), TensorData::F32(out))]);
    }
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}
