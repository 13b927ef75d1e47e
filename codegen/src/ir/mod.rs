//! The compiler's graph: typed values with shapes (static or symbolic, see [`Dim`]), constants,
//! and nodes in topological order. ONNX nodes keep their op type and attributes; fusion passes
//! replace groups of them with kiln's own ops ([`KilnOp`]), which carry prepacked weights.
mod dim;
mod subgraph;
mod tensor;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use dim::{Dim, SymId, from_static, numel, static_shape};
pub use subgraph::{Capture, Subgraph};
pub use tensor::{DType, Tensor, TensorData};

use crate::error::{Error, Result};
pub use crate::ops::conv::ConvSpec;
use kiln_runtime::gemm::Activation;
use kiln_runtime::ops::matmul::PackedF32Owned;
use kiln_runtime::pack::PackedI8Owned;

pub type ValueId = usize;

/// Largest number of elements kiln accepts for any value with static dims: a guard against
/// absurd dims in corrupt or hostile files (real models are far below it). Zero and symbolic
/// dims count as 1 here, so that no product of an accepted shape's static dims can overflow.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Checks the static dims of `shape` against [`MAX_ELEMENTS`]; `what` names the value.
pub fn check_shape(shape: &[Dim], what: &str) -> Result<()> {
    let mut bound: usize = 1;
    for d in shape {
        bound = match bound.checked_mul(d.as_usize().unwrap_or(1).max(1)) {
            Some(b) if b <= MAX_ELEMENTS => b,
            _ => {
                let dims: Vec<String> = shape
                    .iter()
                    .map(|d| d.as_usize().map_or("?".into(), |v| v.to_string()))
                    .collect();
                return Err(Error::unsupported(format!(
                    "{what} of shape [{}] is too large (kiln's limit is 2^31 elements)",
                    dims.join(", ")
                ))
                .with_hint("check the model's dimensions: they are likely corrupt"));
            }
        };
    }
    Ok(())
}
pub type NodeId = usize;

#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
    /// Known at compile time (initializer, Constant, or folded).
    pub konst: Option<TensorData>,
    /// Integer contents known symbolically at compile time (shape arithmetic: the output of
    /// `Shape`, `Gather` on it, `Concat` of such values…). Only for rank ≤ 1 integer tensors.
    pub sym: Option<Vec<Dim>>,
    /// A constant INT4/UINT4 tensor (values widened to I8/U8 in `konst`).
    pub int4: bool,
    /// For a float constant folded from a dequantization of quantized constants, the integers
    /// and parameters it came from (fusions use them instead of the floats).
    pub dq: Option<Box<DqOrigin>>,
}

/// `value = (q − zero_point) · scale` per tensor, per axis or per block (see
/// `kiln_runtime::qlinear`): a float constant's quantized form.
#[derive(Clone, Debug, PartialEq)]
pub struct DqOrigin {
    /// I8 or U8 (also for int4, see `int4`), or I32 (biases).
    pub q: TensorData,
    pub int4: bool,
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    /// `None`: per tensor; else the quantization axis.
    pub axis: Option<usize>,
    /// Block size along `axis` (0: one parameter per index of the axis).
    pub block: usize,
}

impl Value {
    pub fn numel(&self) -> Dim {
        numel(&self.shape)
    }
    /// The shape when every dim is a constant.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        static_shape(&self.shape)
    }
    /// The integer contents if known at compile time, constant or symbolic.
    pub fn int_values(&self) -> Option<Vec<Dim>> {
        if let Some(s) = &self.sym {
            return Some(s.clone());
        }
        match &self.konst {
            Some(k) if !self.dtype.is_float() => k
                .as_i64()
                .ok()
                .map(|v| v.into_iter().map(Dim::constant).collect()),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    Strings(Vec<String>),
    Tensor(Tensor),
    /// A subgraph (`If`'s branches, `Loop`'s and `Scan`'s bodies).
    Graph(Subgraph),
    /// Lists of graphs, sparse tensors, type protos: kept by name only so errors can mention them.
    Other(&'static str),
}

/// kiln's fused ops. Their inputs/outputs are ordinary values so planning and emission treat
/// them like any other node.
#[derive(Clone, Debug)]
pub enum KilnOp {
    /// Dynamic quantization of an [m, k] f32 matrix fused with A packing.
    /// inputs: \[x\]; outputs: \[a (u8, m·padded_k), row_term (i32, m), scale (f32, \[\]), zero_point (u8, \[\])\]
    QuantizeDyn { m: Dim, k: usize },
    /// Fused int8 GEMM with prepacked weights, scales, bias and activation.
    /// inputs: [a, row_term, scale, zero_point] from a QuantizeDyn; outputs: [y (f32)]
    QGemm {
        m: Dim,
        weights: Box<PackedI8Owned>,
        act: Activation,
    },
    /// Float GEMM with prepacked weights and fused bias/activation. inputs: \[x\]; outputs: \[y\]
    SGemm {
        m: Dim,
        weights: Box<PackedF32Owned>,
        relu: bool,
    },
    /// Dynamically quantized convolution (DynamicQuantizeLinear + ConvInteger + scales + bias
    /// + activation). inputs: [x (f32)]; outputs: [y, scratch…] (see [`QConvKind`]).
    QConv {
        spec: ConvSpec,
        act: Activation,
        kind: QConvKind,
        layout: QConvLayout,
    },
    /// Float convolution. inputs: [x, w, b?] (w, b constant unless `Reference`);
    /// outputs: \[y\] plus, for `Gemm`, the im2col scratch.
    Conv {
        spec: ConvSpec,
        act: Activation,
        algo: ConvAlgo,
    },
    /// A region of f32 elementwise ops over one tensor, one pass (`passes::fuse_elementwise`).
    /// inputs: \[x\]; outputs: \[y\] (x's shape); the last step's value is y.
    Elementwise { steps: Vec<ElemStep> },
    /// Unfused ConvInteger (direct loops). inputs/outputs as in ONNX.
    ConvInteger { spec: ConvSpec },
    /// Float ConvTranspose (GEMM + col2im). inputs: [x, wt, b?] with `wt` the weights
    /// transposed per group to `[og·kh·kw][cg]` at compile time; outputs: [y, xp, col] (the
    /// packed input panels and the GEMM result, scratch).
    ConvTranspose { spec: ConvSpec },
    /// Integer matmul with a requantized 8-bit output: `QLinearMatMul`, or a static QDQ group
    /// `DequantizeLinear → MatMul → QuantizeLinear` rewritten into one. inputs as
    /// QLinearMatMul `[a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp]`, with `b`/`b_zp` absent when the
    /// weights are `packed` (constant 2-D B: int8 GEMM); outputs `[y, acc (i32)]`, plus
    /// `[a_packed (u8), row_term (i32)]` when packed.
    QMatMul {
        batches: Dim,
        w_batches: Dim,
        m: Dim,
        k: Dim,
        n: Dim,
        packed: Option<Box<PackedI8Owned>>,
    },
    /// `QLinearConv` (or a static QDQ Conv group). inputs as ONNX
    /// `[x, x_s, x_zp, w, w_s, w_zp, y_s, y_zp, bias]`, `w`/`w_zp` absent when `packed`;
    /// outputs `[y, acc (i32)]`, plus `[q (u8 NHWC), a (u8), row_term (i32)]` when packed
    /// (constant weights, several input channels per group: im2col + int8 GEMM per group;
    /// the bool is `direct`, see `QConvKind::Gemm`).
    QLinearConv {
        spec: ConvSpec,
        packed: Option<(Vec<PackedI8Owned>, bool)>,
        /// Depthwise with constant weights: `w − w_zp` per output channel × kh × kw (exact in
        /// f32) for the exact-f32 depthwise kernel; outputs `[y, acc (f32)]`, `w`/`w_zp` absent.
        depthwise: Option<Vec<f32>>,
    },
    /// Weight-only quantization: `y = x · dequant(W)` in f32 with W kept quantized (8-bit or
    /// 4-bit packed) and dequantized inside the kernel. inputs: \[x\]; outputs: \[y\].
    DqMatMul { m: Dim, w: Box<DqWeightsOwned> },
    /// A static-quantization chain `DequantizeLinear → [Add|Sub|Mul by a constant,
    /// BatchNormalization, Relu, Clip, elementwise activations]… → QuantizeLinear` as one 8-bit → 8-bit pass
    /// (`kiln_runtime::qlinear::qdq_map`). inputs: \[x_q\]; outputs: \[y_q\].
    QdqMap {
        outer: Dim,
        ch: usize,
        inner: Dim,
        x_scale: f32,
        x_zp: i32,
        steps: Vec<MapStepOwned>,
        y_scale: f32,
        y_zp: i32,
        /// 8-bit in and out: `ch` tables of 256 bytes computed from the steps
        /// (`passes::qdq_lut`), applied by `kiln_runtime::qlut::qdq_lut` instead of the steps.
        lut: Option<Vec<u8>>,
    },
    /// Fused scaled-dot-product attention (`passes::fuse_attention`). inputs: [q4, k4, v4,
    /// mask?] with q4 `[batch, sq, heads, dh]`, k4/v4 `[batch, skv, heads, dh]`, the mask
    /// broadcastable to `[batch, heads, sq, skv]`; outputs: [out4 `[batch, sq, heads, dh]`,
    /// scratch (f32)].
    Attention {
        batch: Dim,
        heads: usize,
        sq: Dim,
        skv: Dim,
        dh: usize,
        scale: AttnScale,
    },
    /// LSTM/GRU/RNN (`ops::recurrent`). inputs as ONNX `[X, W, R, B, sequence_lens,
    /// initial_h, initial_c, P]` (W and R absent when packed); outputs the ONNX ones the node
    /// declares, then the scratch (f32).
    Recurrent(Box<crate::ops::RecurrentOp>),
}

/// How [`KilnOp::Attention`] scales the raw scores (`kiln_runtime::ops::attention::ScoreScale`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttnScale {
    None,
    Div(f32),
    Mul(f32),
}

/// One step of a [`KilnOp::QdqMap`] (see `kiln_runtime::qlinear::MapStep`).
#[derive(Clone, Debug, PartialEq)]
pub enum MapStepOwned {
    Add(Vec<f32>),
    Sub(Vec<f32>),
    Mul(Vec<f32>),
    Affine(Vec<f32>, Vec<f32>),
    Relu,
    Clip(f32, f32),
    /// An elementwise op computed by its `kiln_runtime::ops::math` function.
    Unary(crate::ops::UnaryOp),
}

/// Quantized constant weights of a [`KilnOp::DqMatMul`] (see `kiln_runtime::ops::dq_matmul`).
#[derive(Clone, Debug)]
pub struct DqWeightsOwned {
    pub k: usize,
    pub n: usize,
    /// 8-bit: one byte per weight (`signed`: i8 bits); 4-bit: two per byte, low nibble first.
    pub data: Vec<u8>,
    pub bits: u8,
    pub signed: bool,
    /// Parameter grid: `(k / bk) * grid_n + n / bn`.
    pub bk: usize,
    pub bn: usize,
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    pub bias: Option<Vec<f32>>,
}

/// An operand of one step of a fused elementwise region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElemOperand {
    /// The region's input element.
    Input,
    /// The result of an earlier step.
    Step(usize),
    Scalar(f32),
}

/// One op of a fused elementwise region, on f32 values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ElemStep {
    Binary(crate::ops::BinaryOp, ElemOperand, ElemOperand),
    Unary(crate::ops::UnaryOp, ElemOperand),
    Clip(f32, f32, ElemOperand),
}

/// How a float convolution runs (chosen at compile time per layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// `W · im2col(x)` with `ops::matmul::sgemm`, NCHW out.
    Gemm,
    /// One input channel per group: the direct depthwise kernel.
    Depthwise,
    /// Weights known only at run time: direct loops.
    Reference,
}

/// Storage order of a [`KilnOp::QConv`]'s input and output (`passes::layout`): NCHW as in
/// ONNX, or NHWC (same logical shape, channels innermost).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QConvLayout {
    pub x_nhwc: bool,
    pub y_nhwc: bool,
}

/// The int8 convolution's algorithm and its compile-time data.
#[derive(Clone, Debug)]
pub enum QConvKind {
    /// Quantize to NHWC, im2col (skipped when `direct`), one int8 GEMM per group with packed
    /// weights (K ordered ky, kx, c), NHWC → NCHW. Scratch outputs: [q (u8, input size),
    /// a (u8, rows·padded K; empty when direct), row_term (i32, rows), nhwc (f32, rows·Cout)].
    Gemm {
        groups: Vec<PackedI8Owned>,
        direct: bool,
    },
    /// Quantize, exact f32 accumulation of centered products. `w` = (w − wz) per output
    /// channel × kh × kw; `scale` = W_s per channel (times the activation scale at run time).
    /// Scratch outputs: [q (u8, input size), y_nhwc (f32)]. NHWC input
    /// (`QConvLayout::x_nhwc`, one channel per group) runs `conv_nhwc::depthwise_nhwc`, and
    /// y_nhwc holds its result when the output must be NCHW (else it is empty).
    Depthwise {
        w: Vec<f32>,
        scale: Vec<f32>,
        bias: Option<Vec<f32>>,
    },
}

#[derive(Clone, Debug)]
pub struct Node {
    /// ONNX node name, or a generated one (`<op>_<first output>`) when empty.
    pub name: String,
    pub op: String,
    pub domain: String,
    /// `None` for an omitted optional input (empty name).
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
    pub attrs: BTreeMap<String, Attr>,
    pub kiln: Option<KilnOp>,
}

impl Node {
    pub fn err(&self, e: Error) -> Error {
        e.at_node(&self.name, &self.op, &self.domain)
    }
    pub fn input(&self, i: usize) -> Option<ValueId> {
        self.inputs.get(i).copied().flatten()
    }
    pub fn attr_i(&self, name: &str) -> Result<Option<i64>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.attr_type_error(name, "an int", other)),
        }
    }
    pub fn attr_f(&self, name: &str) -> Result<Option<f32>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Float(v)) => Ok(Some(*v)),
            Some(other) => Err(self.attr_type_error(name, "a float", other)),
        }
    }
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.attr_type_error(name, "a list of ints", other)),
        }
    }
    pub fn attr_floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.attr_type_error(name, "a list of floats", other)),
        }
    }
    pub fn attr_strings(&self, name: &str) -> Result<Option<Vec<String>>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Strings(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.attr_type_error(name, "a list of strings", other)),
        }
    }
    fn attr_type_error(&self, name: &str, want: &str, found: &Attr) -> Error {
        Error::invalid(format!(
            "attribute `{name}` must be {want}, found {}",
            attr_kind(found)
        ))
        .with_hint(format!(
            "the model does not follow the ONNX spec of {} (onnx.checker.check_model reports \
             this too): fix the exporter or re-export the model",
            self.op
        ))
    }
}

fn attr_kind(a: &Attr) -> &'static str {
    match a {
        Attr::Float(_) => "a float",
        Attr::Int(_) => "an int",
        Attr::String(_) => "a string",
        Attr::Floats(_) => "a list of floats",
        Attr::Ints(_) => "a list of ints",
        Attr::Strings(_) => "a list of strings",
        Attr::Tensor(_) => "a tensor",
        Attr::Graph(_) => "a graph",
        Attr::Other(k) => k,
    }
}

#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub file: PathBuf,
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// Opset version of the default (ai.onnx) domain.
    pub opset: i64,
    /// Names of the symbolic dims (`Dim` symbols index this), e.g. `batch_size`.
    pub syms: Vec<String>,
    /// Run-time conditions on symbolic dims: `dim <= max`, checked after binding the inputs.
    pub checks: Vec<DimCheck>,
    /// Symbols defined by a floor division of other dims (conv/pool output sizes on a symbolic
    /// height or width), computed after the inputs are bound, in this order.
    pub derived: Vec<Derived>,
    /// Dims that differ as expressions but that a node needs equal, checked at run time
    /// (`Error::DimsDiffer`).
    pub eq_checks: Vec<EqCheck>,
    /// What constant folding may still create beyond its inputs (see `ops::foldable`).
    pub fold_budget: FoldBudget,
}

/// Elements that constant folding may still create graph-wide beyond the sizes of the folded
/// ops' constant inputs: a 4 KB model of 40 `ConstantOfShape([2^25])` nodes asked for 16 GB.
/// Folds that do not amplify (e.g. dequantizing or transposing weights) cost nothing, so
/// memory stays proportional to the model file plus this budget.
#[derive(Clone, Debug)]
pub struct FoldBudget(std::cell::Cell<usize>);

/// The graph-wide amplification budget: 2^27 elements (at most 1 GiB of i64).
pub const FOLD_BUDGET: usize = 1 << 27;

impl Default for FoldBudget {
    fn default() -> Self {
        FoldBudget(std::cell::Cell::new(FOLD_BUDGET))
    }
}

impl FoldBudget {
    /// Takes `n` elements from the budget if it has them.
    pub fn take(&self, n: usize) -> bool {
        let left = self.0.get();
        if n > left {
            return false;
        }
        self.0.set(left - n);
        true
    }
}

/// Two dims a node needs equal (see [`Graph::eq_checks`]).
#[derive(Clone, Debug, PartialEq)]
pub struct EqCheck {
    pub a: Dim,
    pub b: Dim,
    pub node: String,
}

/// A symbol whose value is `floor(num / den)` (`den > 0`); `num` must be ≥ 0 at run time (it is
/// negative only when an input is smaller than a window, reported as `Error::DimTooSmall`).
#[derive(Clone, Debug, PartialEq)]
pub struct Derived {
    pub sym: SymId,
    pub num: Dim,
    pub den: i64,
    /// The node whose window needs `num ≥ 0`.
    pub node: String,
}

/// A bound a symbolic dim must respect at run time (e.g. a sequence no longer than the
/// position-embedding table), reported as `Error::DimTooLarge`.
#[derive(Clone, Debug, PartialEq)]
pub struct DimCheck {
    pub dim: Dim,
    pub max: usize,
    pub node: String,
}

impl Graph {
    /// For every value, the nodes that consume it (in node order), plus `usize::MAX` once for
    /// each use as a graph output.
    pub fn consumers(&self) -> Vec<Vec<NodeId>> {
        let mut c = vec![Vec::new(); self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for v in n.inputs.iter().flatten() {
                if !c[*v].contains(&i) {
                    c[*v].push(i);
                }
            }
        }
        for &o in &self.outputs {
            c[o].push(usize::MAX);
        }
        c
    }
    /// The node producing each value, if any.
    pub fn producers(&self) -> Vec<Option<NodeId>> {
        let mut p = vec![None; self.values.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &o in &n.outputs {
                p[o] = Some(i);
            }
        }
        p
    }
    pub fn konst(&self, v: ValueId) -> Option<&TensorData> {
        self.values[v].konst.as_ref()
    }
    pub fn add_value(&mut self, name: String, dtype: DType, shape: Vec<Dim>) -> ValueId {
        self.values.push(Value {
            name,
            dtype,
            shape,
            konst: None,
            sym: None,
            int4: false,
            dq: None,
        });
        self.values.len() - 1
    }
    /// The symbol for a named dim, created on first use.
    pub fn sym(&mut self, name: &str) -> Dim {
        let id = match self.syms.iter().position(|s| s == name) {
            Some(i) => i,
            None => {
                self.syms.push(name.to_string());
                self.syms.len() - 1
            }
        };
        Dim::sym(id as SymId)
    }
    /// `floor(num / den)` as a dim (`den > 0`): exact quotients stay polynomials, anything else
    /// becomes a derived symbol computed at run time (one per distinct expression). `node`
    /// names who needs `num ≥ 0` (checked at run time for derived symbols, at compile time for
    /// constants).
    pub fn floor_div(&mut self, num: &Dim, den: i64, node: &str) -> Result<Dim> {
        if den <= 0 {
            return Err(Error::invalid(format!("division of a dim by {den}")));
        }
        if let Some(c) = num.as_const() {
            if c < 0 {
                return Err(Error::invalid(format!(
                    "the input is smaller than the window: a size works out to floor({c} / {den})"
                )));
            }
            return Ok(Dim::constant(c.div_euclid(den)));
        }
        if let Some(q) = num.div_const(den)
            && num.nonneg()
        {
            return Ok(q);
        }
        if let Some(d) = self.derived.iter().find(|d| d.num == *num && d.den == den) {
            return Ok(Dim::sym(d.sym));
        }
        let name = if den == 1 {
            format!("({})", self.show(num))
        } else {
            format!("floor(({}) / {den})", self.show(num))
        };
        let id = self.syms.len() as SymId;
        self.syms.push(name);
        self.derived.push(Derived {
            sym: id,
            num: num.clone(),
            den,
            node: node.to_string(),
        });
        Ok(Dim::sym(id))
    }
    /// `ceil(num / den)` (`den > 0`), via [`Graph::floor_div`].
    pub fn ceil_div(&mut self, num: &Dim, den: i64, node: &str) -> Result<Dim> {
        self.floor_div(&num.add(&Dim::constant(den - 1)), den, node)
    }
    /// Whether symbol `s` is derived (not bound from an input).
    pub fn is_derived(&self, s: SymId) -> bool {
        self.derived.iter().any(|d| d.sym == s)
    }
    /// Shows a dim with the model's symbol names.
    pub fn show(&self, d: &Dim) -> String {
        d.display(&self.syms).to_string()
    }
    pub fn show_shape(&self, s: &[Dim]) -> String {
        let parts: Vec<String> = s.iter().map(|d| self.show(d)).collect();
        format!("[{}]", parts.join(", "))
    }
}
