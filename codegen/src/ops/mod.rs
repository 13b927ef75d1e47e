//! Per-op knowledge: attribute validation, shape/dtype inference and compile-time evaluation
//! (constant folding), one file per family. Each op's emission is its `OpDef::emit` (for the
//! elementwise family in its file here, for the others in `emit/<family>.rs`). The registry
//! ([`registry`]: one line per op in its family's `OPS`) is the single source of truth for what
//! kiln accepts; the README's supported-ops table is generated from it.
mod activation;
mod attention;
pub(crate) mod control;
pub mod conv;
mod einsum;
mod elementwise;
mod index;
mod int_unary;
mod loops;
mod loss;
mod lpnorm;
mod math;
mod matmul;
pub(crate) mod norm;
mod norm_contrib;
mod quant;
mod quant_contrib;
pub(crate) mod recurrent;
mod reduce;
pub mod registry;
mod sample;
mod select;
mod shape;
mod symbolic;
mod tensor;
mod trig;
mod variadic;
mod vision;

use crate::error::{Error, Result, bail};
use crate::ir::{DType, Dim, Graph, Node, TensorData, from_static};

pub(crate) use attention::lower_all as attention_lower;
pub(crate) use elementwise::{BinaryOp, UnaryOp, clip_bounds, softmax_dims};
pub(crate) use matmul::gemm_dims;
pub(crate) use norm::layer_norm_dims;
pub(crate) use quant::{conv_proxy, propagate_dq, q_layout, qmatmul_dims};
pub use recurrent::RecurrentOp;
pub(crate) use reduce::reduce_dims;
pub use registry::{InferCx, OpDef, lookup, supported};
pub(crate) use registry::{kiln_op, op};
pub(crate) use shape::{concat_axis, slice_params, transpose_perm};
pub(crate) use symbolic::fill_value as symbolic_fill_value;
pub(crate) use vision::{AxisScale, PoolPads, pad_params, pool_attrs, resize_params, split_params};

/// The inferred type of one output, with its value when it could be computed at compile time
/// (`konst`: fully known data; `sym`: integer contents known as symbolic dims).
pub struct OutInfo {
    pub dtype: DType,
    pub shape: Vec<Dim>,
    pub konst: Option<TensorData>,
    pub sym: Option<Vec<Dim>>,
    /// Run-time bounds on symbolic dims this node relies on (`dim ≤ max`).
    pub checks: Vec<(Dim, usize)>,
    /// For a folded dequantization: the quantized constant it came from.
    pub dq: Option<Box<crate::ir::DqOrigin>>,
}

impl OutInfo {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Self {
        OutInfo {
            dtype,
            shape,
            konst: None,
            sym: None,
            checks: Vec::new(),
            dq: None,
        }
    }
    pub fn konst(shape: Vec<usize>, data: TensorData) -> Self {
        OutInfo {
            dtype: data.dtype(),
            shape: from_static(&shape),
            konst: Some(data),
            sym: None,
            checks: Vec::new(),
            dq: None,
        }
    }
    /// Integer contents known at compile time; constant values become `konst`.
    pub fn values(dtype: DType, shape: Vec<Dim>, vals: Vec<Dim>) -> Self {
        let consts: Option<Vec<i64>> = vals.iter().map(Dim::as_const).collect();
        match (consts, crate::ir::static_shape(&shape)) {
            (Some(c), Some(s)) => OutInfo::konst(s, int_data(dtype, &c)),
            _ => OutInfo {
                dtype,
                shape,
                konst: None,
                sym: Some(vals),
                checks: Vec::new(),
                dq: None,
            },
        }
    }
}

/// Integer data of `dtype` from i64 values.
pub fn int_data(dtype: DType, v: &[i64]) -> TensorData {
    match dtype {
        DType::I32 => TensorData::I32(v.iter().map(|&x| x as i32).collect()),
        DType::I8 => TensorData::I8(v.iter().map(|&x| x as i8).collect()),
        DType::U8 => TensorData::U8(v.iter().map(|&x| x as u8).collect()),
        DType::I16 => TensorData::I16(v.iter().map(|&x| x as i16).collect()),
        DType::U16 => TensorData::U16(v.iter().map(|&x| x as u16).collect()),
        DType::U32 => TensorData::U32(v.iter().map(|&x| x as u32).collect()),
        DType::U64 => TensorData::U64(v.iter().map(|&x| x as u64).collect()),
        DType::Bool => TensorData::Bool(v.iter().map(|&x| x != 0).collect()),
        DType::F32 => TensorData::F32(v.iter().map(|&x| x as f32).collect()),
        DType::F64 => TensorData::F64(v.iter().map(|&x| x as f64).collect()),
        DType::I64 => TensorData::I64(v.to_vec()),
    }
}

/// Infers output types/shapes of an ONNX node and folds it when its inputs are known. Equalities
/// of symbolic dims the node relies on are returned beside its outputs.
pub fn infer(g: &mut Graph, n: &Node) -> Result<(Vec<OutInfo>, Assumed)> {
    let Some(def) = lookup(&n.domain, &n.op) else {
        return Err(unsupported_op(n));
    };
    let mut cx = InferCx {
        g,
        assumed: Assumed::default(),
    };
    let outs = (def.infer)(&mut cx, n)?;
    Ok((outs, cx.assumed))
}

fn unsupported_op(n: &Node) -> Error {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return unknown_domain(n);
    }
    Error::unsupported(format!("operator `{}` is not supported", n.op))
        .with_hint(UNSUPPORTED_HINT.to_string())
}

/// What a user can do now about an op kiln lacks (docs/guide.md §6 has the details).
const UNSUPPORTED_HINT: &str = "run `kiln inspect model.onnx` to list every op of the model \
     that kiln lacks. If this node only computes shapes, fix the input dims \
     (onnx.tools.update_model_dims) and fold constants, so that it disappears; otherwise \
     re-export the model without it (another opset or exporter option). See \
     docs/guide.md, \"Unsupported ops\"";

fn unknown_domain(n: &Node) -> Error {
    let qop = [
        "QLinearAdd",
        "QLinearMul",
        "QLinearConcat",
        "QLinearGlobalAveragePool",
        "QLinearAveragePool",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearSoftmax",
        "QLinearReduceMean",
        "QLinearWhere",
        "QGemm",
    ];
    let hint = if n.domain == "com.microsoft" && qop.contains(&n.op.as_str()) {
        format!(
            "`{}` is an onnxruntime QOperator extension (domain com.microsoft), not standard \
             ONNX. kiln compiles the standard QLinearMatMul/QLinearConv/QuantizeLinear/\
             DequantizeLinear. Re-quantize with quantize_static(..., \
             quant_format=QuantFormat.QDQ) (kiln compiles QDQ models, fusing MatMul/Conv into \
             integer kernels), or with QuantFormat.QOperator and \
             op_types_to_quantize=[\"MatMul\", \"Conv\"] so that only standard QLinear ops are \
             written",
            n.op
        )
    } else if n.domain == "com.microsoft" {
        format!(
            "`{}` is an onnxruntime contrib op (domain com.microsoft), specific to that runtime. \
             Re-export or re-quantize the float model with standard ONNX ops (e.g. \
             onnxruntime.quantization.quantize_dynamic without graph optimisation applied first, \
             and without `optimize_model`)",
            n.op
        )
    } else {
        "kiln compiles the standard ONNX domain (ai.onnx) only: export the model without \
         custom ops (docs/guide.md, \"Unsupported ops\")"
            .to_string()
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

/// Pairs of symbolic dims an op needs equal but that differ as expressions (e.g. an upsampled
/// `2·floor(H/8)` and a skip connection's `floor(H/4)`): they are equal only for some input
/// sizes, so the generated code checks them after binding the inputs. Collected in the
/// [`InferCx`] while one node is inferred; `passes::infer` turns them into `Graph::eq_checks`.
#[derive(Clone, Debug, Default)]
pub struct Assumed(pub Vec<(Dim, Dim)>);

impl Assumed {
    /// `a` and `b` must be equal: true if they are, or if either is symbolic (then the
    /// equality is recorded and checked at run time).
    pub(crate) fn equal(&mut self, a: &Dim, b: &Dim) -> bool {
        if a == b {
            return true;
        }
        if a.is_const() && b.is_const() {
            return false;
        }
        self.0.push((a.clone(), b.clone()));
        true
    }
}

/// numpy/ONNX multidirectional broadcasting over (possibly symbolic) dims. Two different
/// symbolic dims (neither the constant 1) are assumed equal and checked at run time.
pub(crate) fn broadcast(g: &Graph, eq: &mut Assumed, a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>> {
    let r = a.len().max(b.len());
    let one = Dim::constant(1);
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.len() >= r {
            &a[i + a.len() - r]
        } else {
            &one
        };
        let db = if i + b.len() >= r {
            &b[i + b.len() - r]
        } else {
            &one
        };
        out.push(if da == db || *db == 1 {
            da.clone()
        } else if *da == 1 {
            db.clone()
        } else if eq.equal(da, db) {
            da.clone()
        } else {
            bail!(
                "shapes {} and {} cannot be broadcast together",
                g.show_shape(a),
                g.show_shape(b)
            );
        });
    }
    Ok(out)
}

/// Static dims or an error naming what needed them.
pub(crate) fn static_dims(g: &Graph, shape: &[Dim], what: &str) -> Result<Vec<usize>> {
    match crate::ir::static_shape(shape) {
        Some(s) => Ok(s),
        None => Err(Error::unsupported(format!(
            "{what} needs a static shape, found {}",
            g.show_shape(shape)
        ))),
    }
}

/// All inputs present are compile-time constants.
/// Largest value folded at compile time (64 Mi elements). Bigger results of constant inputs
/// (a broadcast or Expand of small constants can be huge) are computed at run time instead of
/// allocating gigabytes in the compiler.
pub(crate) const MAX_FOLD_ELEMENTS: usize = 1 << 26;

/// Whether a value of static shape `shape`, computed by `n` from its constant inputs, may be
/// folded: at most [`MAX_FOLD_ELEMENTS`], and what it adds beyond the inputs' sizes fits the
/// graph's [`FoldBudget`](crate::ir::FoldBudget) (which this takes from). Otherwise the op
/// runs at run time (or is refused where it cannot).
pub(crate) fn foldable(g: &Graph, n: &Node, shape: &[usize]) -> bool {
    let Some(out) = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&e| e <= MAX_FOLD_ELEMENTS)
    else {
        return false;
    };
    let ins: usize = n
        .inputs
        .iter()
        .flatten()
        .filter_map(|&v| g.values[v].konst.as_ref().map(TensorData::len))
        .sum();
    g.fold_budget.take(out.saturating_sub(ins))
}

pub(crate) fn all_const(g: &Graph, n: &Node) -> bool {
    n.inputs
        .iter()
        .flatten()
        .all(|&v| g.values[v].konst.is_some())
}
