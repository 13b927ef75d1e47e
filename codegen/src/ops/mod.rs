//! Per-op knowledge: attribute validation, shape/dtype inference and compile-time evaluation
//! (constant folding). Emission lives in `emit/`. The op list below is the single source of
//! truth for what kiln accepts; the README's supported-ops table mirrors it.
mod elementwise;
mod matmul;
mod quant;
mod shape;

use crate::error::{Error, Result, bail};
use crate::ir::{DType, Graph, Node, TensorData};

pub(crate) use elementwise::{BinaryOp, UnaryOp, softmax_dims};
pub(crate) use matmul::gemm_dims;
pub(crate) use shape::transpose_perm;

/// Every ONNX (default-domain) op kiln compiles.
pub const SUPPORTED: &[&str] = &[
    "Add",
    "Cast",
    "Constant",
    "Div",
    "DynamicQuantizeLinear",
    "Flatten",
    "Gemm",
    "Identity",
    "MatMul",
    "MatMulInteger",
    "Mul",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sub",
    "Tanh",
    "Transpose",
];

/// The inferred type of one output, with its value when it could be computed at compile time.
pub struct OutInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub konst: Option<TensorData>,
}

impl OutInfo {
    pub fn new(dtype: DType, shape: Vec<usize>) -> Self {
        OutInfo {
            dtype,
            shape,
            konst: None,
        }
    }
    pub fn konst(shape: Vec<usize>, data: TensorData) -> Self {
        OutInfo {
            dtype: data.dtype(),
            shape,
            konst: Some(data),
        }
    }
}

/// Infers output types/shapes of an ONNX node and folds it when all inputs are constants.
pub fn infer(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return Err(unknown_domain(n));
    }
    let outs = match n.op.as_str() {
        "Add" | "Sub" | "Mul" | "Div" => elementwise::infer_binary(g, n)?,
        "Relu" | "Sigmoid" | "Tanh" => elementwise::infer_unary(g, n)?,
        "Softmax" => elementwise::infer_softmax(g, n)?,
        "Cast" => shape::infer_cast(g, n)?,
        "Constant" => shape::infer_constant(n)?,
        "Identity" => shape::infer_identity(g, n)?,
        "Reshape" => shape::infer_reshape(g, n)?,
        "Flatten" => shape::infer_flatten(g, n)?,
        "Transpose" => shape::infer_transpose(g, n)?,
        "MatMul" => matmul::infer_matmul(g, n)?,
        "Gemm" => matmul::infer_gemm(g, n)?,
        "MatMulInteger" => matmul::infer_matmul_integer(g, n)?,
        "DynamicQuantizeLinear" => quant::infer_dql(g, n)?,
        other => {
            return Err(
                Error::unsupported(format!("operator `{other}` is not supported")).with_hint(
                    format!(
                        "kiln supports: {}. Please open an issue with the model if you need it",
                        SUPPORTED.join(", ")
                    ),
                ),
            );
        }
    };
    Ok(outs)
}

fn unknown_domain(n: &Node) -> Error {
    let hint = if n.domain == "com.microsoft" {
        format!(
            "`{}` is an onnxruntime contrib op (domain com.microsoft), specific to that runtime. \
             Re-export or re-quantize the float model with standard ONNX ops (e.g. \
             onnxruntime.quantization.quantize_dynamic without graph optimisation applied first, \
             and without `optimize_model`)",
            n.op
        )
    } else {
        "kiln compiles the standard ONNX domain (ai.onnx) only".to_string()
    };
    Error::unsupported(format!(
        "operator `{}` of domain `{}` is not supported",
        n.op, n.domain
    ))
    .with_hint(hint)
}

// ---- helpers shared by the op files -------------------------------------------------------

/// Value id of required input `i`.
pub(crate) fn req(n: &Node, i: usize) -> Result<usize> {
    match n.input(i) {
        Some(v) => Ok(v),
        None => bail!("missing required input #{i}"),
    }
}

/// Normalises a possibly negative axis against `rank` (valid: -rank..rank).
pub(crate) fn axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r {
        bail!("axis {a} is out of range for rank {rank}");
    }
    Ok(v as usize)
}

/// numpy/ONNX multidirectional broadcasting.
pub(crate) fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            bail!("shapes {a:?} and {b:?} cannot be broadcast together");
        };
    }
    Ok(out)
}

pub(crate) fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// All inputs present are compile-time constants.
pub(crate) fn all_const(g: &Graph, n: &Node) -> bool {
    n.inputs
        .iter()
        .flatten()
        .all(|&v| g.values[v].konst.is_some())
}
