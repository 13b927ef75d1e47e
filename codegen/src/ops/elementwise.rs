//! Broadcasting binary ops (Add, Sub, Mul, Div, Pow, Equal), unary activations and math
//! (Relu, Sigmoid, Tanh, Sqrt, Erf, LeakyRelu, HardSigmoid, HardSwish, Elu, Selu, Softplus), Clip,
//! Where and Softmax.
use proc_macro2::TokenStream;
use quote::quote;

use super::{Assumed, OpDef, OutInfo, all_const, axis, broadcast, kiln_op, op, req, static_dims};
use crate::emit::Ctx;
use crate::emit::nodes::inp;
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::{elementwise as ew, math, softmax as sm};

const ARITH: &str = "multidirectional broadcasting; all numeric types; integer ops wrap, and integer division by 0 gives 0; Pow by a constant 2 is exact `x·x`";
const LOGIC: &str = "broadcasting; on shape values they fold at compile time";
const BASIC: &str = "Relu: f32/f64/ints; the others f32; Clip bounds must be constants";
const ACT: &str = "f32 (f64 through f32); attributes as in the spec";

const COMPARE: &str = "broadcasting; all numeric types; bool output";
const BOOL_LOGIC: &str = "bool tensors; broadcasting";
const MATH: &str = "f32 (f64 through f32); Round halves to even; the same bits on every CPU (scalar `no_std` math, kiln_runtime::ops::math)";
const PREDICATE: &str = "f32/f64 in, bool out; IsInf's detect_positive/detect_negative";

const SOFTMAX_NOTES: &str = "opset < 13 (2-D coercion) and ≥ 13 (single axis) semantics";

/// The elementwise ops and Softmax (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("Add", ARITH, binary, emit_binary),
    op("Sub", ARITH, binary, emit_binary),
    op("Mul", ARITH, binary, emit_binary),
    op("Div", ARITH, binary, emit_binary),
    op("Pow", ARITH, binary, emit_binary),
    op("Equal", LOGIC, binary, emit_binary),
    op("Less", COMPARE, binary, emit_binary),
    op("LessOrEqual", COMPARE, binary, emit_binary),
    op("Greater", COMPARE, binary, emit_binary),
    op("GreaterOrEqual", COMPARE, binary, emit_binary),
    op("And", BOOL_LOGIC, binary, emit_binary),
    op("Or", BOOL_LOGIC, binary, emit_binary),
    op("Xor", BOOL_LOGIC, binary, emit_binary),
    op("Not", BOOL_LOGIC, |cx, n| infer_not(cx.g, n), emit_not),
    op(
        "Where",
        LOGIC,
        |cx, n| infer_where(cx.g, &mut cx.assumed, n),
        emit_where,
    ),
    op("Relu", BASIC, unary, emit_unary),
    op("Sigmoid", BASIC, unary, emit_unary),
    op("Tanh", BASIC, unary, emit_unary),
    op("Sqrt", BASIC, unary, emit_unary),
    op("Erf", BASIC, unary, emit_unary),
    op("Clip", BASIC, |cx, n| infer_clip(cx.g, n), emit_clip),
    op("LeakyRelu", ACT, unary, emit_unary),
    op("HardSigmoid", ACT, unary, emit_unary),
    op("HardSwish", ACT, unary, emit_unary),
    op("Elu", ACT, unary, emit_unary),
    op("Selu", ACT, unary, emit_unary),
    op("Softplus", ACT, unary, emit_unary),
    op("Abs", MATH, unary, emit_unary),
    op("Neg", MATH, unary, emit_unary),
    op("Sign", MATH, unary, emit_unary),
    op("Ceil", MATH, unary, emit_unary),
    op("Floor", MATH, unary, emit_unary),
    op("Round", MATH, unary, emit_unary),
    op("Reciprocal", MATH, unary, emit_unary),
    op("Exp", MATH, unary, emit_unary),
    op("Log", MATH, unary, emit_unary),
    op("Softsign", MATH, unary, emit_unary),
    op(
        "IsNaN",
        PREDICATE,
        |cx, n| infer_predicate(cx.g, n),
        emit_predicate,
    ),
    op(
        "IsInf",
        PREDICATE,
        |cx, n| infer_predicate(cx.g, n),
        emit_predicate,
    ),
    op(
        "Softmax",
        SOFTMAX_NOTES,
        |cx, n| infer_softmax(cx.g, n),
        emit_softmax,
    ),
    kiln_op("Gelu", unary, emit_gelu),
];

fn binary(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    infer_binary(cx.g, &mut cx.assumed, n)
}

fn unary(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    infer_unary(cx.g, n)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    And,
    Or,
    Xor,
}

impl BinaryOp {
    pub fn from_op(op: &str) -> Option<Self> {
        Some(match op {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Pow" => BinaryOp::Pow,
            "Equal" => BinaryOp::Equal,
            "Less" => BinaryOp::Less,
            "LessOrEqual" => BinaryOp::LessOrEqual,
            "Greater" => BinaryOp::Greater,
            "GreaterOrEqual" => BinaryOp::GreaterOrEqual,
            "And" => BinaryOp::And,
            "Or" => BinaryOp::Or,
            "Xor" => BinaryOp::Xor,
            _ => return None,
        })
    }
    /// Boolean operands (And, Or, Xor).
    pub fn is_logic(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor)
    }
    /// A bool result: comparisons and logic.
    pub fn bool_out(self) -> bool {
        !matches!(
            self,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Pow
        )
    }
    /// The comparison and logic ops' element function, the same for every type.
    fn predicate(self) -> Option<TokenStream> {
        Some(match self {
            BinaryOp::Equal => quote!(a == b),
            BinaryOp::Less => quote!(a < b),
            BinaryOp::LessOrEqual => quote!(a <= b),
            BinaryOp::Greater => quote!(a > b),
            BinaryOp::GreaterOrEqual => quote!(a >= b),
            BinaryOp::And => quote!(a & b),
            BinaryOp::Or => quote!(a | b),
            BinaryOp::Xor => quote!(a ^ b),
            _ => return None,
        })
    }
    /// The element function as a Rust closure for generated code. Integer arithmetic wraps
    /// (two's complement, as onnxruntime does) and integer division by zero yields 0 rather
    /// than trapping: ONNX leaves it undefined and generated code must never panic.
    /// `exponent`: Pow's constant scalar exponent, if known (x² and √x get exact fast paths).
    pub fn closure(self, dt: DType, rt: &TokenStream, exponent: Option<f32>) -> TokenStream {
        let t: TokenStream = dt.rust().parse().unwrap();
        let body = if let Some(p) = self.predicate() {
            p
        } else if dt.is_float() {
            match self {
                BinaryOp::Add => quote!(a + b),
                BinaryOp::Sub => quote!(a - b),
                BinaryOp::Mul => quote!(a * b),
                BinaryOp::Div => quote!(a / b),
                // x·x is the correctly rounded x², as a correctly rounded pow gives.
                BinaryOp::Pow if exponent == Some(2.0) => quote!({
                    let _ = b;
                    a * a
                }),
                BinaryOp::Pow if exponent == Some(1.0) => quote!({
                    let _ = b;
                    a
                }),
                BinaryOp::Pow if exponent == Some(0.5) && dt == DType::F32 => {
                    quote!({ let _ = b; #rt::ops::math::sqrt(a) })
                }
                BinaryOp::Pow if dt == DType::F32 => quote!(#rt::ops::math::powf(a, b)),
                BinaryOp::Pow => quote!(#rt::ops::math::powf(a as f32, b as f32) as #t),
                _ => unreachable!("comparisons and logic are handled above"),
            }
        } else {
            match self {
                BinaryOp::Add => quote!(a.wrapping_add(b)),
                BinaryOp::Sub => quote!(a.wrapping_sub(b)),
                BinaryOp::Mul => quote!(a.wrapping_mul(b)),
                BinaryOp::Div => quote!(if b == 0 { 0 } else { a.wrapping_div(b) }),
                BinaryOp::Pow => quote!(if b < 0 { 0 } else { a.wrapping_pow(b as u32) }),
                _ => unreachable!("comparisons and logic are handled above"),
            }
        };
        quote!(|a: #t, b: #t| #body)
    }
}

/// Compile-time twin of `BinaryOp::closure` for arithmetic ops.
trait Arith: Copy + Send + Sync {
    fn apply(op: BinaryOp, a: Self, b: Self) -> Self;
}
macro_rules! arith_float {
    ($($t:ty),*) => {$(impl Arith for $t {
        fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
            match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                BinaryOp::Pow if b == 2.0 => a * a,
                BinaryOp::Pow => math::powf(a as f32, b as f32) as $t,
                _ => unreachable!("comparisons and logic are folded separately"),
            }
        }
    })*};
}
macro_rules! arith_int {
    ($($t:ty),*) => {$(impl Arith for $t {
        #[allow(unused_comparisons)]
        fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
            match op {
                BinaryOp::Add => a.wrapping_add(b),
                BinaryOp::Sub => a.wrapping_sub(b),
                BinaryOp::Mul => a.wrapping_mul(b),
                BinaryOp::Div => if b == 0 { 0 } else { a.wrapping_div(b) },
                BinaryOp::Pow => if b < 0 { 0 } else { a.wrapping_pow(b as u32) },
                _ => unreachable!("comparisons and logic are folded separately"),
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
        let mut out = vec![T::default(); so.iter().product()];
        ew::binary(a, sa, b, sb, &mut out, so, |x, y| T::apply(op, x, y));
        out
    }
    fn cmp<T: PartialOrd + Copy + Send + Sync>(
        op: BinaryOp,
        a: &[T],
        sa: &[usize],
        b: &[T],
        sb: &[usize],
        so: &[usize],
    ) -> TensorData {
        let mut out = vec![false; so.iter().product()];
        let f = |x: T, y: T| match op {
            BinaryOp::Less => x < y,
            BinaryOp::LessOrEqual => x <= y,
            BinaryOp::Greater => x > y,
            BinaryOp::GreaterOrEqual => x >= y,
            _ => x == y,
        };
        ew::binary(a, sa, b, sb, &mut out, so, f);
        TensorData::Bool(out)
    }
    use TensorData as D;
    if op.is_logic() {
        let (D::Bool(x), D::Bool(y)) = (a, b) else {
            return None;
        };
        let mut out = vec![false; so.iter().product()];
        let f = |p: bool, q: bool| match op {
            BinaryOp::And => p & q,
            BinaryOp::Or => p | q,
            _ => p ^ q,
        };
        ew::binary(x, sa, y, sb, &mut out, so, f);
        return Some(D::Bool(out));
    }
    if op.bool_out() {
        return Some(crate::each_data!(a, x => {
            let y: &[_] = match_same(x, b)?;
            cmp(op, x, sa, y, sb, so)
        }));
    }
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

/// `b`'s data if it has the same element type as `x`.
fn match_same<'a, T: 'static>(_x: &[T], b: &'a TensorData) -> Option<&'a [T]> {
    let any: &dyn std::any::Any = match b {
        TensorData::F32(v) => v,
        TensorData::F64(v) => v,
        TensorData::I8(v) => v,
        TensorData::U8(v) => v,
        TensorData::I16(v) => v,
        TensorData::U16(v) => v,
        TensorData::I32(v) => v,
        TensorData::U32(v) => v,
        TensorData::I64(v) => v,
        TensorData::U64(v) => v,
        TensorData::Bool(v) => v,
    };
    any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
}

/// Symbolic integer arithmetic on shape values (e.g. `seq_len - 1`, `batch · 12`).
fn sym_binary(op: BinaryOp, a: &[Dim], b: &[Dim]) -> Option<Vec<Dim>> {
    let n = a.len().max(b.len());
    if a.len() != n && a.len() != 1 || b.len() != n && b.len() != 1 {
        return None;
    }
    (0..n)
        .map(|i| {
            let (x, y) = (&a[i.min(a.len() - 1)], &b[i.min(b.len() - 1)]);
            match op {
                BinaryOp::Add => Some(x.add(y)),
                BinaryOp::Sub => Some(x.sub(y)),
                BinaryOp::Mul => Some(x.mul(y)),
                BinaryOp::Div => match (x.as_const(), y.as_const()) {
                    (Some(p), Some(q)) if q != 0 => Some(Dim::constant(p.wrapping_div(q))),
                    _ => x.div_exact(y),
                },
                _ => None,
            }
        })
        .collect()
}

/// Compile-time `a == b` on shape values, when decidable (dims are never negative).
fn sym_equal(a: &Dim, b: &Dim) -> Option<bool> {
    if a == b {
        return Some(true);
    }
    match (a.as_const(), b.as_const()) {
        (Some(x), Some(y)) => Some(x == y),
        (None, Some(c)) if c < 0 && a.nonneg() => Some(false),
        (Some(c), None) if c < 0 && b.nonneg() => Some(false),
        _ => None,
    }
}

pub fn infer_binary(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let op = BinaryOp::from_op(&n.op).expect("dispatched by op name");
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if a.dtype != b.dtype {
        bail!(
            "inputs have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    if op.is_logic() && a.dtype != DType::Bool {
        bail!("{} needs bool inputs, found {:?}", n.op, a.dtype);
    }
    if a.dtype == DType::Bool && !matches!(op, BinaryOp::Equal) && !op.is_logic() {
        bail!("{} on bool tensors is not defined", n.op);
    }
    let shape = broadcast(g, eq, &a.shape, &b.shape)?;
    let out_dt = if op.bool_out() { DType::Bool } else { a.dtype };
    if all_const(g, n)
        && let (Some(sa), Some(sb), Some(so)) = (
            a.static_shape(),
            b.static_shape(),
            crate::ir::static_shape(&shape),
        )
        && super::foldable(g, n, &so)
    {
        let (ka, kb) = (a.konst.as_ref().unwrap(), b.konst.as_ref().unwrap());
        if let Some(d) = fold_binary(op, ka, &sa, kb, &sb, &so) {
            return Ok(vec![OutInfo::konst(so, d)]);
        }
    }
    // Shape arithmetic on symbolic integer values.
    if shape.len() <= 1
        && !a.dtype.is_float()
        && matches!(
            op,
            BinaryOp::Equal | BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div
        )
        && let (Some(va), Some(vb)) = (a.int_values(), b.int_values())
    {
        if op == BinaryOp::Equal {
            let n = va.len().max(vb.len());
            let eq: Option<Vec<bool>> = (0..n)
                .map(|i| sym_equal(&va[i.min(va.len() - 1)], &vb[i.min(vb.len() - 1)]))
                .collect();
            if let (Some(eq), Some(so)) = (eq, crate::ir::static_shape(&shape)) {
                return Ok(vec![OutInfo::konst(so, TensorData::Bool(eq))]);
            }
        } else if let Some(v) = sym_binary(op, &va, &vb) {
            return Ok(vec![OutInfo::values(a.dtype, shape, v)]);
        }
    }
    Ok(vec![OutInfo::new(out_dt, shape)])
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Relu,
    Sigmoid,
    Tanh,
    Sqrt,
    Erf,
    /// kiln's fused GELU (erf form), produced by the GELU fusion.
    Gelu,
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    Elu {
        alpha: f32,
    },
    Selu {
        alpha: f32,
        gamma: f32,
    },
    Softplus,
    Abs,
    Neg,
    Sign,
    Ceil,
    Floor,
    Round,
    Reciprocal,
    Exp,
    Log,
    Softsign,
}

impl UnaryOp {
    /// The op of a parameterless activation name (`Relu`, `Sigmoid`, …, `Gelu`); ops with
    /// attributes need [`UnaryOp::from_node`].
    pub fn from_op(op: &str) -> Option<Self> {
        Some(match op {
            "Relu" => UnaryOp::Relu,
            "Sigmoid" => UnaryOp::Sigmoid,
            "Tanh" => UnaryOp::Tanh,
            "Sqrt" => UnaryOp::Sqrt,
            "Erf" => UnaryOp::Erf,
            "Gelu" => UnaryOp::Gelu,
            "HardSwish" => UnaryOp::HardSwish,
            "Softplus" => UnaryOp::Softplus,
            "Abs" => UnaryOp::Abs,
            "Neg" => UnaryOp::Neg,
            "Sign" => UnaryOp::Sign,
            "Ceil" => UnaryOp::Ceil,
            "Floor" => UnaryOp::Floor,
            "Round" => UnaryOp::Round,
            "Reciprocal" => UnaryOp::Reciprocal,
            "Exp" => UnaryOp::Exp,
            "Log" => UnaryOp::Log,
            "Softsign" => UnaryOp::Softsign,
            _ => return None,
        })
    }
    /// The op of a node, with its attributes (ONNX defaults when absent).
    pub fn from_node(n: &Node) -> Result<Option<Self>> {
        let f =
            |name: &str, default: f32| -> Result<f32> { Ok(n.attr_f(name)?.unwrap_or(default)) };
        Ok(Some(match n.op.as_str() {
            // ONNX's Gelu (opset 20, maybe tanh) is ops::activation's, not kiln's fused one.
            "Gelu" if n.domain != "kiln" => return Ok(None),
            "LeakyRelu" => UnaryOp::LeakyRelu {
                alpha: f("alpha", 0.01)?,
            },
            "HardSigmoid" => UnaryOp::HardSigmoid {
                alpha: f("alpha", 0.2)?,
                beta: f("beta", 0.5)?,
            },
            "Elu" => UnaryOp::Elu {
                alpha: f("alpha", 1.0)?,
            },
            "Selu" => UnaryOp::Selu {
                alpha: f("alpha", 1.673_263_2)?,
                gamma: f("gamma", 1.050_701)?,
            },
            op => return Ok(Self::from_op(op)),
        }))
    }
    pub(crate) fn math_fn(self) -> &'static str {
        match self {
            UnaryOp::Relu => "relu",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Erf => "erf",
            UnaryOp::Gelu => "gelu_erf",
            UnaryOp::LeakyRelu { .. } => "leaky_relu",
            UnaryOp::HardSigmoid { .. } => "hard_sigmoid",
            UnaryOp::HardSwish => "hard_swish",
            UnaryOp::Elu { .. } => "elu",
            UnaryOp::Selu { .. } => "selu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Abs => "abs",
            UnaryOp::Neg => "neg",
            UnaryOp::Sign => "sign",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Floor => "floor",
            UnaryOp::Round => "round_even",
            UnaryOp::Reciprocal => "recip",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "ln",
            UnaryOp::Softsign => "softsign",
        }
    }
    /// The attribute arguments after `x` of the runtime function.
    pub(crate) fn params(self) -> Vec<f32> {
        match self {
            UnaryOp::LeakyRelu { alpha } | UnaryOp::Elu { alpha } => vec![alpha],
            UnaryOp::HardSigmoid { alpha, beta } => vec![alpha, beta],
            UnaryOp::Selu { alpha, gamma } => vec![alpha, gamma],
            _ => vec![],
        }
    }
    pub fn closure(self, dt: DType, rt: &TokenStream) -> TokenStream {
        let t: TokenStream = dt.rust().parse().unwrap();
        let f = quote::format_ident!("{}", self.math_fn());
        let params: Vec<TokenStream> = self.params().into_iter().map(f32_tokens).collect();
        match (self, dt) {
            // Same semantics as the fused GEMM epilogue: NaN → 0.
            (UnaryOp::Relu, DType::F32 | DType::F64) => {
                quote!(|x: #t| if x > 0.0 { x } else { 0.0 })
            }
            (UnaryOp::Relu, _) => quote!(|x: #t| if x > 0 { x } else { 0 }),
            (_, DType::F32) if params.is_empty() => quote!(#rt::ops::math::#f),
            (_, DType::F32) => quote!(|x: f32| #rt::ops::math::#f(x, #(#params),*)),
            _ => quote!(|x: #t| #rt::ops::math::#f(x as f32, #(#params),*) as #t),
        }
    }
    /// The op on one value, with the runtime function the generated code calls.
    pub(crate) fn eval(self, x: f32) -> f32 {
        match self {
            UnaryOp::Relu => {
                if x > 0.0 {
                    x
                } else {
                    0.0
                }
            }
            UnaryOp::Sigmoid => math::sigmoid(x),
            UnaryOp::Tanh => math::tanh(x),
            UnaryOp::Sqrt => math::sqrt(x),
            UnaryOp::Erf => math::erf(x),
            UnaryOp::Gelu => kiln_runtime::ops::gelu::gelu_scalar(x),
            UnaryOp::LeakyRelu { alpha } => math::leaky_relu(x, alpha),
            UnaryOp::HardSigmoid { alpha, beta } => math::hard_sigmoid(x, alpha, beta),
            UnaryOp::HardSwish => math::hard_swish(x),
            UnaryOp::Elu { alpha } => math::elu(x, alpha),
            UnaryOp::Selu { alpha, gamma } => math::selu(x, alpha, gamma),
            UnaryOp::Softplus => math::softplus(x),
            UnaryOp::Abs => math::abs(x),
            UnaryOp::Neg => math::neg(x),
            UnaryOp::Sign => math::sign(x),
            UnaryOp::Ceil => math::ceil(x),
            UnaryOp::Floor => math::floor(x),
            UnaryOp::Round => math::round_even(x),
            UnaryOp::Reciprocal => math::recip(x),
            UnaryOp::Exp => math::exp(x),
            UnaryOp::Log => math::ln(x),
            UnaryOp::Softsign => math::softsign(x),
        }
    }
}

/// An `f32` expression (NaN and infinities have no literal).
fn f32_tokens(v: f32) -> TokenStream {
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

fn relu<T: PartialOrd + Default + Copy>(x: T) -> T {
    // NaN → 0, like the generated closure and the fused epilogue.
    if x > T::default() { x } else { T::default() }
}

pub fn infer_unary(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let op = UnaryOp::from_node(n)?.expect("dispatched by op name");
    let x = &g.values[req(n, 0)?];
    if let Some(out) = super::int_unary::infer(op, x) {
        return Ok(out);
    }
    let float_only = !matches!(op, UnaryOp::Relu);
    if float_only && !matches!(x.dtype, DType::F32 | DType::F64) || x.dtype == DType::Bool {
        unsupported!("{} on {:?} tensors is not supported", n.op, x.dtype);
    }
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape()) {
        use TensorData as D;
        let d = match (op, k) {
            (UnaryOp::Relu, D::F64(v)) => Some(D::F64(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I32(v)) => Some(D::I32(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I64(v)) => Some(D::I64(v.iter().map(|&x| relu(x)).collect())),
            (UnaryOp::Relu, D::I8(v)) => Some(D::I8(v.iter().map(|&x| relu(x)).collect())),
            (_, D::F32(v)) => Some(D::F32(v.iter().map(|&x| op.eval(x)).collect())),
            _ => None,
        };
        if let Some(d) = d {
            return Ok(vec![OutInfo::konst(s, d)]);
        }
    }
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

/// Clip bounds: inputs 1 and 2 (opset ≥ 11, constant) or attributes (older opsets).
pub fn clip_bounds(g: &Graph, n: &Node) -> Result<(f32, f32)> {
    if g.opset < 11 {
        return Ok((
            n.attr_f("min")?.unwrap_or(f32::NEG_INFINITY),
            n.attr_f("max")?.unwrap_or(f32::INFINITY),
        ));
    }
    let bound = |i: usize, default: f32| -> Result<f32> {
        match n.input(i) {
            None => Ok(default),
            Some(v) => match &g.values[v].konst {
                Some(k) if k.len() == 1 => Ok(k.as_f32()[0]),
                _ => unsupported!("Clip bounds must be constant scalars"),
            },
        }
    };
    Ok((bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?))
}

pub fn infer_clip(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        unsupported!(
            "Clip on {:?} tensors is not supported (float32 only)",
            x.dtype
        );
    }
    let (lo, hi) = clip_bounds(g, n)?;
    if let (Some(TensorData::F32(v)), Some(s)) = (&x.konst, x.static_shape()) {
        let d = v.iter().map(|&x| clip(x, lo, hi)).collect();
        return Ok(vec![OutInfo::konst(s, TensorData::F32(d))]);
    }
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}

/// `min(max(x, lo), hi)` with NaN → lo, like the GEMM epilogue's Clip.
pub fn clip(x: f32, lo: f32, hi: f32) -> f32 {
    let y = if x > lo { x } else { lo };
    if y < hi { y } else { hi }
}

pub fn infer_where(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let (c, a, b) = (
        &g.values[req(n, 0)?],
        &g.values[req(n, 1)?],
        &g.values[req(n, 2)?],
    );
    if c.dtype != DType::Bool {
        bail!("Where condition must be bool, found {:?}", c.dtype);
    }
    if a.dtype != b.dtype {
        bail!(
            "Where branches have different element types ({:?} and {:?})",
            a.dtype,
            b.dtype
        );
    }
    let ca = broadcast(g, eq, &c.shape, &a.shape)?;
    let shape = broadcast(g, eq, &ca, &b.shape)?;
    if let Some(TensorData::Bool(cv)) = &c.konst
        && shape.len() <= 1
        && let (Some(va), Some(vb)) = (a.int_values(), b.int_values())
    {
        let n = cv.len().max(va.len()).max(vb.len());
        let pick = |v: &Vec<Dim>, i: usize| v[i.min(v.len() - 1)].clone();
        let vals = (0..n)
            .map(|i| {
                if cv[i.min(cv.len() - 1)] {
                    pick(&va, i)
                } else {
                    pick(&vb, i)
                }
            })
            .collect();
        return Ok(vec![OutInfo::values(a.dtype, shape, vals)]);
    }
    if let (Some(TensorData::Bool(cv)), Some(ka), Some(kb), Some(so)) = (
        &c.konst,
        &a.konst,
        &b.konst,
        crate::ir::static_shape(&shape),
    ) && super::foldable(g, n, &so)
    {
        let (sc, sa, sb) = (
            static_dims(g, &c.shape, "Where")?,
            static_dims(g, &a.shape, "Where")?,
            static_dims(g, &b.shape, "Where")?,
        );
        if ka.dtype() != kb.dtype() {
            bail!("Where branches have different element types");
        }
        let d = crate::each_data_map!(ka, x => {
            let y = match_same(x, kb).unwrap_or_default();
            let mut out = x.clone();
            out.resize(so.iter().product(), Default::default());
            ew::where_select(cv, &sc, x, &sa, y, &sb, &mut out, &so);
            out
        });
        return Ok(vec![OutInfo::konst(so, d)]);
    }
    Ok(vec![OutInfo::new(a.dtype, shape)])
}

/// Softmax geometry `(outer, axis_len, inner)` for the node's opset semantics.
pub fn softmax_dims(g: &Graph, n: &Node) -> Result<(Dim, Dim, Dim)> {
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
        Ok((numel(&x.shape[..a]), numel(&x.shape[a..]), Dim::constant(1)))
    } else {
        let a = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
        Ok((
            numel(&x.shape[..a]),
            x.shape[a].clone(),
            numel(&x.shape[a + 1..]),
        ))
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
    if let (Some(TensorData::F32(v)), Some(s), Some(o), Some(l), Some(i)) = (
        &x.konst,
        x.static_shape(),
        outer.as_usize(),
        len.as_usize(),
        inner.as_usize(),
    ) {
        let mut out = vec![0.0; v.len()];
        sm::softmax(v, &mut out, o, l, i);
        return Ok(vec![OutInfo::konst(s, TensorData::F32(out))]);
    }
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}

/// `Not`: bool in, bool out.
fn infer_not(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::Bool {
        bail!("Not needs a bool input, found {:?}", x.dtype);
    }
    if let (Some(TensorData::Bool(v)), Some(s)) = (&x.konst, x.static_shape()) {
        return Ok(vec![OutInfo::konst(
            s,
            TensorData::Bool(v.iter().map(|&b| !b).collect()),
        )]);
    }
    Ok(vec![OutInfo::new(DType::Bool, x.shape.clone())])
}

/// IsNaN, IsInf: which values of a float tensor are NaN / (signed) infinities.
#[derive(Clone, Copy)]
enum Predicate {
    IsNaN,
    IsInf { positive: bool, negative: bool },
}

impl Predicate {
    /// Decodes (and validates) the node's attributes once.
    fn decode(n: &Node) -> Result<Self> {
        let flag = |name: &str| -> Result<bool> {
            match n.attr_i(name)?.unwrap_or(1) {
                0 => Ok(false),
                1 => Ok(true),
                v => bail!("attribute `{name}` must be 0 or 1, found {v}"),
            }
        };
        Ok(match n.op.as_str() {
            "IsInf" => Predicate::IsInf {
                positive: flag("detect_positive")?,
                negative: flag("detect_negative")?,
            },
            _ => Predicate::IsNaN,
        })
    }
    fn eval(self, x: f64) -> bool {
        match self {
            Predicate::IsNaN => x.is_nan(),
            Predicate::IsInf { positive, negative } => {
                (positive && x == f64::INFINITY) || (negative && x == f64::NEG_INFINITY)
            }
        }
    }
}

fn infer_predicate(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let p = Predicate::decode(n)?;
    let x = &g.values[req(n, 0)?];
    if !matches!(x.dtype, DType::F32 | DType::F64) {
        unsupported!(
            "{} on {:?} tensors is not supported (f32/f64)",
            n.op,
            x.dtype
        );
    }
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape()) {
        let v: Vec<bool> = match k {
            TensorData::F32(v) => v.iter().map(|&x| p.eval(x as f64)).collect(),
            TensorData::F64(v) => v.iter().map(|&x| p.eval(x)).collect(),
            _ => unreachable!("checked float above"),
        };
        return Ok(vec![OutInfo::konst(s, TensorData::Bool(v))]);
    }
    Ok(vec![OutInfo::new(DType::Bool, x.shape.clone())])
}

// ---- emission ----------------------------------------------------------------------------

/// Broadcasting binary ops; a residual Add read by a quantized convolution also gathers the
/// range of its result.
pub(crate) fn emit_binary(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let b = BinaryOp::from_op(&n.op).expect("dispatched by op name");
    let (a, bb) = (inp(n, 0)?, inp(n, 1)?);
    let exponent = match (b, g.values[bb].konst.as_ref()) {
        (BinaryOp::Pow, Some(k)) if k.len() == 1 => Some(k.as_f32()[0]),
        _ => None,
    };
    let f = b.closure(g.values[a].dtype, rt, exponent);
    let (sa, sb, so) = if n.attrs.contains_key(crate::passes::NHWC_ATTR) {
        // NHWC operands (passes::layout): shapes as stored, [N, H, W, C]; the operands
        // broadcasting over pixels keep their bytes and read as [N, 1, 1, C].
        let nhwc = |v: usize| {
            let s = &g.values[v].shape;
            let mut d = vec![crate::ir::Dim::constant(1); 4 - s.len()];
            d.extend(s.iter().cloned());
            c.dims(&[d[0].clone(), d[2].clone(), d[3].clone(), d[1].clone()])
        };
        (nhwc(a), nhwc(bb), nhwc(out))
    } else {
        (c.shape(a), c.shape(bb), c.shape(out))
    };
    let (xa, xb, y) = (c.src(a), c.src(bb), c.dst(out));
    let same = |v: usize| g.values[v].shape == g.values[out].shape;
    if b == BinaryOp::Add
        && g.values[out].dtype == crate::ir::DType::F32
        && same(a)
        && same(bb)
        && c.ranged[out]
    {
        // A residual Add read by a quantized convolution: gather its range while adding.
        let _ = c.range(out); // taken care of here
        let r = quote::format_ident!("r{}", out);
        return Ok(quote! { #rt::ops::elementwise::add_range(isa, #xa, #xb, #y, &#r); });
    }
    Ok(quote! { #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so, #f); })
}

/// kiln's fused GELU (`passes::fuse_patterns`): the vectorised kernel on f32.
fn emit_gelu(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    if c.g.values[inp(n, 0)?].dtype == DType::F32 {
        let (x, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
        return Ok(quote! { #rt::ops::gelu::gelu(isa, #x, #y); });
    }
    emit_unary(c, n)
}

/// Unary math and activations: one closure over the elements.
pub(crate) fn emit_unary(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let u = UnaryOp::from_node(n)?.expect("dispatched by op name");
    let x = inp(n, 0)?;
    let dt = g.values[x].dtype;
    let f = super::int_unary::closure(u, dt).unwrap_or_else(|| u.closure(dt, rt));
    let (xs, y) = (c.src(x), c.dst(out));
    Ok(quote! { #rt::ops::elementwise::unary(#xs, #y, #f); })
}

pub(crate) fn emit_softmax(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (outer, len, inner) = crate::ops::softmax_dims(g, n)?;
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
        quote! { #rt::ops::softmax::softmax(#x, #y, #o, #l, #i); }
    })
}

pub(crate) fn emit_clip(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let out = n.outputs[0];
    Ok({
        let (lo, hi) = crate::ops::clip_bounds(g, n)?;
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        let lo = if lo == f32::NEG_INFINITY {
            quote!(f32::NEG_INFINITY)
        } else {
            quote!(#lo)
        };
        let hi = if hi == f32::INFINITY {
            quote!(f32::INFINITY)
        } else {
            quote!(#hi)
        };
        quote! { #rt::ops::elementwise::unary(#x, #y, |v: f32| { let v = if v > #lo { v } else { #lo }; if v < #hi { v } else { #hi } }); }
    })
}

pub(crate) fn emit_where(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    Ok({
        let (cv, a, b) = (inp(n, 0)?, inp(n, 1)?, inp(n, 2)?);
        let (xc, sc, xa, sa, xb, sb) = (
            c.src(cv),
            c.shape(cv),
            c.src(a),
            c.shape(a),
            c.src(b),
            c.shape(b),
        );
        let (y, so) = (c.dst(out), c.shape(out));
        quote! { #rt::ops::elementwise::where_select(#xc, #sc, #xa, #sa, #xb, #sb, #y, #so); }
    })
}

fn emit_not(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (x, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::elementwise::unary(#x, #y, |v: bool| !v); })
}

fn emit_predicate(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let xi = inp(n, 0)?;
    let t = crate::emit::rust_ty(c.g.values[xi].dtype);
    let f = match Predicate::decode(n)? {
        Predicate::IsNaN => quote!(|v: #t| v.is_nan()),
        Predicate::IsInf { positive, negative } => {
            quote!(|v: #t| (#positive && v == #t::INFINITY) || (#negative && v == #t::NEG_INFINITY))
        }
    };
    let (x, y) = (c.src(xi), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::elementwise::unary(#x, #y, #f); })
}
