//! Graph passes, in this order:
//! 1. `infer`   — dtypes and static shapes for every value; nodes whose inputs are all constant
//!    are evaluated at compile time (constant folding) and disappear. Then `fold_expand` moves
//!    `Expand`s below elementwise ops and reductions or into broadcasting binary ops.
//! 2. `fuse_patterns` — exporter decompositions of GELU (erf) and LayerNorm become one node
//!    each, and a residual Add read only by a LayerNorm moves into it; `fuse_attention` — head
//!    transposes, scores, scale, mask, softmax and the weighted sum of values become one
//!    `Attention` node; then `dce` drops the replaced nodes so that single-consumer checks
//!    below hold.
//! 3. `fuse_qdq` — static QDQ groups (DequantizeLinear → MatMul/Conv → QuantizeLinear) become
//!    QLinearMatMul/QLinearConv and every QLinear op an integer kiln op; the float glue between
//!    them (DequantizeLinear → Add/BatchNorm/Relu… → QuantizeLinear) becomes one 8-bit pass; float
//!    MatMul/Gemm with dequantized constant weights become weight-only `DqMatMul`s, and Gathers
//!    from dequantized tables gather the integers. Before 4–6, so that those do not claim the
//!    MatMul/Conv first.
//! 4. `fuse_quant` — onnxruntime's dynamic-quantization pattern
//!    `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales) [→ Add bias] [→ Relu]` becomes
//!    `QuantizeDyn` (once per DynamicQuantizeLinear, shared by all its MatMulIntegers) + one
//!    `QGemm` per MatMulInteger with packed weights. Needs shapes and constants from 1.
//! 5. `fuse_conv` — BatchNorm folding, the dynamic-quantization pattern around `ConvInteger`
//!    → `QConv`, and the per-layer algorithm choice for every other convolution.
//! 6. `fuse_float` — MatMul/Gemm with constant weights become prepacked `SGemm`s with the bias
//!    Add and Relu folded in. After 3–5 so that quantized chains are claimed first.
//! 7. `dce` — drops nodes whose outputs nobody reads (the absorbed Cast/Mul/Add nodes, scale
//!    products, unused DynamicQuantizeLinear outputs); then `fuse_elementwise` merges chains of
//!    elementwise ops into one pass.
//! 8. `layout` — the 4-D values between int8 convolutions that are stored NHWC (no transposes
//!    between `QConv`s); after every fusion, since it looks at the final nodes.
mod dce;
mod fold_expand;
mod fuse_attention;
mod fuse_conv;
mod fuse_elementwise;
mod fuse_float;
mod fuse_patterns;
pub(crate) use fuse_patterns::RESIDUAL;
mod fuse_qdq;
mod fuse_quant;
mod infer;
mod layout;
mod qdq_lut;

pub(crate) use layout::NHWC_ATTR;

use crate::error::Result;
use crate::ir::Graph;

pub fn run(g: &mut Graph) -> Result<()> {
    infer::run(g)?;
    fold_expand::run(g);
    fuse_patterns::run(g);
    fuse_attention::run(g);
    dce::run(g);
    fuse_qdq::run(g)?;
    fuse_quant::run(g)?;
    fuse_conv::run(g)?;
    fuse_float::run(g)?;
    crate::ops::recurrent::lower_all(g)?;
    crate::ops::attention_lower(g)?;
    dce::run(g);
    fuse_elementwise::run(g)?;
    layout::run(g);
    crate::ops::control::lower_all(g)?;
    Ok(())
}

/// Helpers for pattern matching over a graph snapshot.
pub(crate) struct Uses {
    pub consumers: Vec<Vec<usize>>,
    pub producers: Vec<Option<usize>>,
}

impl Uses {
    pub fn of(g: &Graph) -> Self {
        Uses {
            consumers: g.consumers(),
            producers: g.producers(),
        }
    }
    /// The single consuming node of `v`, if `v` has exactly one use and is not a graph output.
    pub fn sole_consumer(&self, v: usize) -> Option<usize> {
        match self.consumers[v].as_slice() {
            [c] if *c != usize::MAX => Some(*c),
            _ => None,
        }
    }
}
