//! `kiln inspect`: what a model is, how it was quantized, and what kiln will make of it.
//!
//! The analysis has two halves. The first reads the ONNX graph as stored (it works on models
//! kiln cannot compile): the summary, the quantization forms, one record per quantized
//! matmul/conv, and unsupported ops. The second runs kiln's compiler and reports its decisions:
//! fusions, the kernel per layer and the workspace.
use std::collections::BTreeMap;

use kiln_codegen::ir::{DType, KilnOp, TensorData};
use kiln_codegen::onnx::proto::NodeProto;
use kiln_runtime::Isa;
use kiln_runtime::gemm::Activation;
use serde_json::{Value as Json, json};

use crate::model::{
    GraphIndex, ModelFile, attr_i, dims_text, domain, elem_bits, elem_name, node_name, numel, op,
    tensor_type,
};

// ---- the report ---------------------------------------------------------------------------

pub struct Report {
    pub file: String,
    pub file_bytes: usize,
    pub ir_version: i64,
    pub producer: String,
    pub opsets: Vec<(String, i64)>,
    pub inputs: Vec<Io>,
    pub outputs: Vec<Io>,
    pub nodes: usize,
    pub op_counts: BTreeMap<String, usize>,
    pub parameters: u64,
    /// dtype name → (tensors, elements, bytes)
    pub weights_by_dtype: BTreeMap<String, (usize, u64, u64)>,
    pub forms: Vec<String>,
    pub layers: Vec<QLayer>,
    pub unsupported: Vec<Unsupported>,
    pub kiln: KilnPlan,
}

pub struct Io {
    pub name: String,
    pub dtype: String,
    pub dims: Option<Vec<String>>,
}

pub struct QLayer {
    pub node: String,
    pub op: String,
    pub form: String,
    pub activation: String,
    pub weight: String,
    pub weight_shape: Vec<usize>,
    pub granularity: String,
    pub symmetric: Option<bool>,
    pub zero_points: String,
    pub weight_range: Option<(i32, i32)>,
    pub reduced_range: Option<bool>,
    pub avx2: Avx2,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Avx2 {
    /// No adjacent weight pair can saturate VPMADDUBSW with any u8 activation.
    Safe,
    /// `columns` of `of` output columns have a pair that can saturate.
    CouldSaturate {
        columns: usize,
        of: usize,
    },
    NotApplicable(String),
}

pub struct Unsupported {
    pub domain: String,
    pub op: String,
    pub nodes: Vec<String>,
    pub advice: String,
}

pub enum KilnPlan {
    Error(String),
    Compiled(Box<Compiled>),
}

pub struct Compiled {
    pub source_nodes: usize,
    pub compiled_nodes: usize,
    pub fusions: Vec<(String, usize)>,
    pub layers: Vec<KLayer>,
    pub other_ops: BTreeMap<String, usize>,
    pub isa: Isa,
    pub workspace_bytes: usize,
    pub naive_workspace_bytes: usize,
    pub symbolic_buffers: usize,
    /// With symbolic dims: the workspace and the naive sum as formulas of the dims (bytes).
    pub workspace_formula: Option<(String, String)>,
    pub weight_blob_bytes: usize,
}

pub struct KLayer {
    pub node: String,
    pub kind: String,
    pub m: String,
    pub k: usize,
    pub n: usize,
    pub epilogue: String,
    pub avx2_safe: Option<bool>,
    pub kernel: String,
}

// ---- analysis -----------------------------------------------------------------------------

pub fn inspect(mf: &ModelFile, isa: Isa) -> Report {
    let g = mf.graph();
    let idx = GraphIndex::new(g, mf.data_dirs());
    let mut opsets: Vec<(String, i64)> = mf
        .proto
        .opset_import
        .iter()
        .map(|o| {
            let d = o.domain.clone().unwrap_or_default();
            let d = if d.is_empty() { "ai.onnx".into() } else { d };
            (d, o.version.unwrap_or(1))
        })
        .collect();
    opsets.sort();
    let inits: std::collections::HashSet<&str> = g
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let io = |vi: &kiln_codegen::onnx::proto::ValueInfoProto| Io {
        name: vi.name.clone().unwrap_or_default(),
        dtype: tensor_type(vi)
            .map(|t| elem_name(t.elem_type.unwrap_or(0)))
            .unwrap_or("non-tensor")
            .to_string(),
        dims: dims_text(vi),
    };
    let inputs = g
        .input
        .iter()
        .filter(|vi| !inits.contains(vi.name.as_deref().unwrap_or("")))
        .map(io)
        .collect();
    let outputs = g.output.iter().map(io).collect();
    let mut op_counts = BTreeMap::new();
    for n in &g.node {
        let key = if domain(n).is_empty() {
            op(n).to_string()
        } else {
            format!("{}:{}", domain(n), op(n))
        };
        *op_counts.entry(key).or_insert(0) += 1;
    }
    let mut parameters = 0u64;
    let mut weights_by_dtype: BTreeMap<String, (usize, u64, u64)> = BTreeMap::new();
    let consts = g.initializer.iter().chain(g.node.iter().filter_map(|n| {
        (op(n) == "Constant")
            .then(|| n.attribute.iter().find_map(|a| a.t.as_ref()))
            .flatten()
    }));
    for t in consts {
        let code = t.data_type.unwrap_or(0);
        let e = numel(t);
        parameters += e;
        let w = weights_by_dtype
            .entry(elem_name(code).to_string())
            .or_default();
        w.0 += 1;
        w.1 += e;
        w.2 += (e * elem_bits(code)).div_ceil(8);
    }

    let mut layers = Vec::new();
    for n in &g.node {
        if let Some(l) = analyse_layer(&idx, n) {
            layers.push(l);
        }
    }
    let mut forms: Vec<String> = Vec::new();
    let mut add_form = |f: &str| {
        if !forms.iter().any(|x| x == f) {
            forms.push(f.to_string());
        }
    };
    for l in &layers {
        add_form(&l.form);
    }
    for n in &g.node {
        match (domain(n), op(n)) {
            ("", "DynamicQuantizeLinear") => add_form("dynamic (DynamicQuantizeLinear)"),
            ("", "QuantizeLinear") => add_form("static QDQ (QuantizeLinear/DequantizeLinear)"),
            ("", "Gather") => {
                if let Some(p) = n.input.first().and_then(|d| idx.producer_of(d))
                    && op(p) == "DequantizeLinear"
                    && p.input.first().is_some_and(|x| idx.is_const(x))
                {
                    add_form("weight-only embedding table (DequantizeLinear → Gather)");
                }
            }
            _ => {}
        }
    }
    if forms.is_empty() {
        forms.push("none (float model)".into());
    }

    let mut unsupported: Vec<Unsupported> = Vec::new();
    for n in &g.node {
        let (d, o) = (domain(n), op(n));
        if kiln_codegen::ops::lookup(d, o).is_some() {
            continue;
        }
        let name = node_name(n);
        let dn = if d.is_empty() { "ai.onnx" } else { d };
        match unsupported.iter_mut().find(|u| u.domain == dn && u.op == o) {
            Some(u) => u.nodes.push(name),
            None => unsupported.push(Unsupported {
                domain: dn.into(),
                op: o.into(),
                nodes: vec![name],
                advice: advice(d, o),
            }),
        }
    }
    unsupported.sort_by(|a, b| (&a.domain, &a.op).cmp(&(&b.domain, &b.op)));

    Report {
        file: mf.path.display().to_string(),
        file_bytes: mf.bytes_len,
        ir_version: mf.proto.ir_version.unwrap_or(0),
        producer: format!(
            "{} {}",
            mf.proto.producer_name.as_deref().unwrap_or(""),
            mf.proto.producer_version.as_deref().unwrap_or("")
        )
        .trim()
        .to_string(),
        opsets,
        inputs,
        outputs,
        nodes: g.node.len(),
        op_counts,
        parameters,
        weights_by_dtype,
        forms,
        layers,
        unsupported,
        kiln: kiln_plan(mf, isa),
    }
}

/// Integer weights of a constant: (shape, values, is_unsigned).
fn int_weights(idx: &GraphIndex, name: &str) -> Option<(Vec<usize>, Vec<i32>, bool)> {
    let (shape, data) = idx.const_data(name)?;
    match data {
        TensorData::I8(v) => Some((shape, v.into_iter().map(i32::from).collect(), false)),
        TensorData::U8(v) => Some((shape, v.into_iter().map(i32::from).collect(), true)),
        _ => None,
    }
}

fn const_len(idx: &GraphIndex, name: Option<&String>) -> Option<usize> {
    let t = idx.consts.get(name.filter(|s| !s.is_empty())?.as_str())?;
    Some(numel(t) as usize)
}

fn const_ints(idx: &GraphIndex, name: Option<&String>) -> Option<Vec<i64>> {
    let (_, d) = idx.const_data(name.filter(|s| !s.is_empty())?)?;
    if matches!(d.dtype(), DType::F32 | DType::F64) {
        return None;
    }
    d.as_i64().ok()
}

/// How the weight of a layer is laid out relative to kiln's `[K][N]`.
#[derive(Clone, Copy)]
enum Layout {
    /// [K, N] (MatMul B)
    KN,
    /// [N, K…] (Gemm transB, Conv weights)
    NK,
}

/// The quantization record of one node, if it is a quantized matmul/conv.
fn analyse_layer(idx: &GraphIndex, n: &NodeProto) -> Option<QLayer> {
    let d = domain(n);
    let o = op(n);
    let inp = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
    let elem = |v: Option<&String>| {
        v.and_then(|v| idx.elem_type(v))
            .map_or("?".to_string(), |c| elem_name(c).to_string())
    };
    // (form, activation, weight name, scale name, zero point name, layout, block size)
    let (form, act, w, scale, zp, layout, block): (
        String,
        String,
        &String,
        Option<&String>,
        Option<&String>,
        Layout,
        i64,
    ) = match (d, o) {
        ("", "MatMulInteger") | ("", "ConvInteger") => {
            let dyn_q = inp(0)
                .and_then(|a| idx.producer_of(a))
                .is_some_and(|p| op(p) == "DynamicQuantizeLinear");
            let form = if dyn_q {
                "dynamic (DynamicQuantizeLinear)".to_string()
            } else {
                format!("integer ops ({o} without DynamicQuantizeLinear)")
            };
            let scale = matmul_integer_scale(idx, n);
            let layout = if o == "ConvInteger" {
                Layout::NK
            } else {
                Layout::KN
            };
            (form, elem(inp(0)), inp(1)?, scale, inp(3), layout, 0)
        }
        ("", "QLinearMatMul") | ("", "QLinearConv") => {
            let layout = if o == "QLinearConv" {
                Layout::NK
            } else {
                Layout::KN
            };
            (
                "QOperator (QLinear*)".into(),
                elem(inp(0)),
                inp(3)?,
                inp(4),
                inp(5),
                layout,
                0,
            )
        }
        ("com.microsoft", "MatMulIntegerToFloat") => (
            "dynamic (onnxruntime contrib op)".into(),
            elem(inp(0)),
            inp(1)?,
            inp(3),
            inp(5),
            Layout::KN,
            0,
        ),
        ("com.microsoft", "DynamicQuantizeMatMul") => (
            "dynamic (onnxruntime contrib op)".into(),
            "uint8 (quantized inside the op)".into(),
            inp(1)?,
            inp(2),
            inp(3),
            Layout::KN,
            0,
        ),
        ("com.microsoft", "QGemm") => {
            let layout = if attr_i(n, "transB").unwrap_or(0) != 0 {
                Layout::NK
            } else {
                Layout::KN
            };
            (
                "QOperator (onnxruntime QGemm)".into(),
                elem(inp(0)),
                inp(3)?,
                inp(4),
                inp(5),
                layout,
                0,
            )
        }
        ("com.microsoft", "MatMulNBits") => {
            return Some(QLayer {
                node: node_name(n),
                op: format!("{d}:{o}"),
                form: "weight-only (onnxruntime MatMulNBits)".into(),
                activation: "float32".into(),
                weight: format!("{}-bit", attr_i(n, "bits").unwrap_or(4)),
                weight_shape: vec![
                    attr_i(n, "K").unwrap_or(0) as usize,
                    attr_i(n, "N").unwrap_or(0) as usize,
                ],
                granularity: format!(
                    "blocked (block size {})",
                    attr_i(n, "block_size").unwrap_or(0)
                ),
                symmetric: None,
                zero_points: if inp(3).is_some() {
                    "present"
                } else {
                    "none (implicit mid-point)"
                }
                .into(),
                weight_range: None,
                reduced_range: None,
                avx2: Avx2::NotApplicable("kiln does not run 4-bit weights".into()),
            });
        }
        ("", "MatMul") | ("", "Gemm") | ("", "Conv") => {
            let wv = inp(1)?;
            let p = idx.producer_of(wv)?;
            let layout = if o == "Conv" || (o == "Gemm" && attr_i(n, "transB").unwrap_or(0) != 0) {
                Layout::NK
            } else {
                Layout::KN
            };
            let act_dq = inp(0)
                .and_then(|a| idx.producer_of(a))
                .filter(|p| op(p) == "DequantizeLinear");
            match op(p) {
                "DequantizeLinear" if p.input.first().is_some_and(|x| idx.is_const(x)) => {
                    let (form, act) = match act_dq {
                        Some(a) => (
                            "static QDQ (QuantizeLinear/DequantizeLinear)".to_string(),
                            elem(a.input.first()),
                        ),
                        None => (
                            "weight-only (DequantizeLinear on constant weights)".to_string(),
                            elem(inp(0)),
                        ),
                    };
                    let block = attr_i(p, "block_size").unwrap_or(0);
                    (
                        form,
                        act,
                        p.input.first()?,
                        p.input.get(1),
                        p.input.get(2),
                        layout,
                        block,
                    )
                }
                "Mul" => {
                    // weight-only: Mul(Cast(int constant), scale constant), either order
                    let (cast, sc) =
                        p.input
                            .iter()
                            .fold((None, None), |(c, s), i| match idx.producer_of(i) {
                                Some(q) if op(q) == "Cast" => (Some(q), s),
                                _ if idx.is_const(i) => (c, Some(i)),
                                _ => (c, s),
                            });
                    let cast = cast?;
                    let wi = cast.input.first().filter(|x| idx.is_const(x))?;
                    int_weights(idx, wi)?;
                    (
                        "weight-only (Cast → Mul on constant weights)".into(),
                        elem(inp(0)),
                        wi,
                        sc,
                        None,
                        layout,
                        0,
                    )
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    let (shape, vals, unsigned) = match int_weights(idx, w) {
        Some(x) => x,
        None => {
            return Some(QLayer {
                node: node_name(n),
                op: qualified(d, o),
                form,
                activation: act,
                weight: elem(Some(w)),
                weight_shape: vec![],
                granularity: "unknown (weights are not constant)".into(),
                symmetric: None,
                zero_points: "?".into(),
                weight_range: None,
                reduced_range: None,
                avx2: Avx2::NotApplicable("weights are computed at run time".into()),
            });
        }
    };
    let n_scale = const_len(idx, scale).unwrap_or(1);
    let zps = const_ints(idx, zp);
    let n_params = n_scale.max(zps.as_ref().map_or(1, Vec::len));
    let granularity = if block > 0 {
        format!("blocked (block size {block})")
    } else if n_params > 1 {
        format!("per-channel ({n_params} channels)")
    } else {
        "per-tensor".into()
    };
    let mid = if unsigned { 128 } else { 0 };
    let zps = zps.unwrap_or_else(|| vec![0]);
    let symmetric = zps.iter().all(|&z| z == mid);
    let (zmin, zmax) = (
        zps.iter().copied().min().unwrap_or(0),
        zps.iter().copied().max().unwrap_or(0),
    );
    let zero_points = if zmin == zmax {
        format!("{zmin}")
    } else {
        format!("{zmin}..{zmax}")
    };
    let (wmin, wmax) = (
        vals.iter().copied().min().unwrap_or(0),
        vals.iter().copied().max().unwrap_or(0),
    );
    let reduced = if unsigned {
        wmin >= 0 && wmax <= 127
    } else {
        wmin >= -64 && wmax <= 64
    };
    let act_u8 = act.starts_with("uint8");
    let avx2 = if !act_u8 {
        Avx2::NotApplicable(format!("activations are {act}, not uint8"))
    } else if shape.len() < 2 {
        Avx2::NotApplicable("weight is not a matrix".into())
    } else {
        let stored: Vec<i32> = vals
            .iter()
            .map(|&v| if unsigned { v - 128 } else { v })
            .collect();
        let (k, ncols, kn) = match layout {
            Layout::KN => {
                let k = shape[shape.len() - 2];
                let ncols = shape[shape.len() - 1];
                // Batched B: every [K,N] slice stacks as more columns.
                let batches = vals.len() / (k * ncols).max(1);
                (k, ncols * batches, true)
            }
            Layout::NK => (shape[1..].iter().product(), shape[0], false),
        };
        let unsafe_cols = avx2_unsafe_columns(&stored, k, ncols, kn);
        if unsafe_cols == 0 {
            Avx2::Safe
        } else {
            Avx2::CouldSaturate {
                columns: unsafe_cols,
                of: ncols,
            }
        }
    };
    Some(QLayer {
        node: node_name(n),
        op: qualified(d, o),
        form,
        activation: act,
        weight: if unsigned { "uint8" } else { "int8" }.into(),
        weight_shape: shape,
        granularity,
        symmetric: Some(symmetric),
        zero_points,
        weight_range: Some((wmin, wmax)),
        reduced_range: Some(reduced),
        avx2,
    })
}

fn qualified(d: &str, o: &str) -> String {
    if d.is_empty() {
        o.to_string()
    } else {
        format!("{d}:{o}")
    }
}

/// The weight scale of a MatMulInteger in onnxruntime's dynamic chain:
/// `Cast → Mul(·, Mul(x_scale, W_scale))`, W_scale constant.
fn matmul_integer_scale<'a>(idx: &GraphIndex<'a>, n: &'a NodeProto) -> Option<&'a String> {
    let cast = idx.sole_consumer(n.output.first()?)?;
    if op(cast) != "Cast" {
        return None;
    }
    let mul = idx.sole_consumer(cast.output.first()?)?;
    if op(mul) != "Mul" {
        return None;
    }
    for i in &mul.input {
        if i == &cast.output[0] {
            continue;
        }
        if idx.is_const(i) {
            return Some(i);
        }
        if let Some(p) = idx.producer_of(i)
            && op(p) == "Mul"
        {
            return p.input.iter().find(|x| idx.is_const(x));
        }
    }
    None
}

/// Columns with an adjacent k pair (k = 2p, 2p+1, zero padded) that can make VPMADDUBSW
/// saturate for some u8 activations: `255·(w0⁺ + w1⁺) > 32767` or `255·(w0⁻ + w1⁻) < −32768`.
/// `stored` holds kiln's stored weights (u8 weights shifted by −128). This is the rule of
/// `kiln_runtime::pack::avx2_safe`, per column.
pub fn avx2_unsafe_columns(stored: &[i32], k: usize, n: usize, kn_layout: bool) -> usize {
    let at = |kk: usize, nn: usize| -> i32 {
        if kk >= k {
            return 0;
        }
        if kn_layout {
            stored[kk * n + nn]
        } else {
            stored[nn * k + kk]
        }
    };
    (0..n)
        .filter(|&nn| {
            (0..k.div_ceil(2)).any(|p| {
                let (w0, w1) = (at(2 * p, nn), at(2 * p + 1, nn));
                255 * (w0.max(0) + w1.max(0)) > i16::MAX as i32
                    || 255 * (w0.min(0) + w1.min(0)) < i16::MIN as i32
            })
        })
        .count()
}

/// What to do about an op kiln does not compile.
pub fn advice(d: &str, o: &str) -> String {
    const ORT_FUSED: &[&str] = &[
        "DynamicQuantizeMatMul",
        "MatMulIntegerToFloat",
        "QGemm",
        "QAttention",
        "FusedMatMul",
        "FusedGemm",
        "FusedConv",
        "Attention",
        "MultiHeadAttention",
        "SkipLayerNormalization",
        "SkipSimplifiedLayerNormalization",
        "EmbedLayerNormalization",
        "BiasGelu",
        "FastGelu",
        "Gelu",
        "QuickGelu",
        "BiasAdd",
        "BiasSoftmax",
        "QOrderedMatMul",
    ];
    match d {
        "com.microsoft" if o == "MatMulNBits" => {
            "onnxruntime's 4-bit weight-only format, which kiln \
             does not run: quantize the float model with `kiln quantize` instead"
                .into()
        }
        "com.microsoft" if ORT_FUSED.contains(&o) => format!(
            "`{o}` is written by onnxruntime's graph optimizer (an \"optimized\" model saved from \
             a session, or optimize_model / the transformers optimizer): start from the original \
             float export and run `kiln quantize` on it (or quantize_dynamic without optimization)"
        ),
        "com.microsoft" if o.starts_with("QLinear") || o == "QGemm" => format!(
            "`{o}` is onnxruntime's QOperator extension, not standard ONNX: re-quantize with \
             quantize_static(..., quant_format=QuantFormat.QDQ), which kiln compiles into integer \
             kernels"
        ),
        "com.microsoft" => format!(
            "`{o}` is an onnxruntime contrib op: re-export the model with standard ONNX ops only"
        ),
        "" => "not implemented in kiln: if it only computes shapes, fix the input dims \
               (onnx.tools.update_model_dims) and fold constants; otherwise re-export without \
               it (docs/guide.md, \"Unsupported ops\")"
            .into(),
        other => format!(
            "custom op of domain `{other}`: kiln compiles the standard ONNX domain only; export \
             the model without custom ops"
        ),
    }
}

fn act_name(a: Activation) -> String {
    // Comparisons rather than a match: the runtime's activation list grows.
    if a == Activation::None {
        String::new()
    } else if a == Activation::Relu {
        "ReLU".into()
    } else if a == Activation::Gelu {
        "GELU".into()
    } else {
        format!("{a:?}")
    }
}

/// The int8 kernel a QGemm runs on `isa`.
pub fn qgemm_kernel(isa: Isa, avx2_safe: bool) -> String {
    // By name rather than a match: the runtime's ISA list grows (Arm, WebAssembly).
    match isa.name() {
        "avx512vnni" => "VPDPBUSD, 512-bit (AVX-512 VNNI)".into(),
        "avxvnni" => "VPDPBUSD, 256-bit (AVX-VNNI)".into(),
        "avx2" if avx2_safe => "VPMADDUBSW (AVX2; proven not to saturate)".into(),
        "avx2" => "sign-extend + VPMADDWD (AVX2, exact; VPMADDUBSW could saturate)".into(),
        "scalar" => "scalar int8".into(),
        other => format!("{other} int8 kernel"),
    }
}

fn kiln_plan(mf: &ModelFile, isa: Isa) -> KilnPlan {
    let compiled = match kiln_codegen::compile_file(&mf.path, &mf.codegen_options()) {
        Ok(c) => c,
        Err(e) => return KilnPlan::Error(crate::model::one_line_codegen_error(&e)),
    };
    let g = &compiled.graph;
    let mut layers = Vec::new();
    let mut other_ops: BTreeMap<String, usize> = BTreeMap::new();
    let (mut qdyn, mut qgemm, mut sgemm, mut gelu, mut ln, mut act_fused) = (0, 0, 0, 0, 0, 0);
    let (mut gelu_epilogue, mut attention) = (0, 0);
    let (mut qconv, mut sconv) = (0, 0);
    let (mut qlinear, mut qlinear_conv, mut dq_mm, mut qdq_map) = (0, 0, 0, 0);
    for n in &g.nodes {
        match &n.kiln {
            Some(KilnOp::QuantizeDyn { .. }) => qdyn += 1,
            Some(KilnOp::QGemm { m, weights, act }) => {
                qgemm += 1;
                if *act != Activation::None {
                    act_fused += 1;
                }
                if *act == Activation::Gelu {
                    gelu_epilogue += 1;
                }
                let mut ep: Vec<String> = vec!["zero points".into(), "scales".into()];
                if weights.bias.is_some() {
                    ep.push("bias".into());
                }
                let an = act_name(*act);
                if !an.is_empty() {
                    ep.push(an);
                }
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: "QGemm (u8×i8→i32)".into(),
                    m: g.show(m),
                    k: weights.k,
                    n: weights.n,
                    epilogue: ep.join(" + "),
                    avx2_safe: Some(weights.avx2_safe),
                    kernel: qgemm_kernel(isa, weights.avx2_safe),
                });
            }
            Some(KilnOp::SGemm { m, weights, relu }) => {
                sgemm += 1;
                if *relu {
                    act_fused += 1;
                }
                let mut ep = Vec::new();
                if weights.bias.is_some() {
                    ep.push("bias");
                }
                if *relu {
                    ep.push("ReLU");
                }
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: "SGemm (f32, prepacked)".into(),
                    m: g.show(m),
                    k: weights.k,
                    n: weights.n,
                    epilogue: if ep.is_empty() {
                        "-".into()
                    } else {
                        ep.join(" + ")
                    },
                    avx2_safe: None,
                    kernel: format!("f32 GEMM ({})", isa.name()),
                });
            }
            Some(KilnOp::QConv {
                spec,
                act,
                kind,
                layout,
            }) => {
                qconv += 1;
                if *act != Activation::None {
                    act_fused += 1;
                }
                let mut ep: Vec<String> = vec!["zero points".into(), "scales".into()];
                let (kind_s, kernel, bias, safe) = match kind {
                    kiln_codegen::ir::QConvKind::Gemm { groups, direct } => (
                        format!(
                            "QConv {}×{} {} (u8×i8→i32)",
                            spec.kernel[0],
                            spec.kernel[1],
                            if *direct {
                                "direct GEMM"
                            } else {
                                "im2col + GEMM"
                            }
                        ),
                        qgemm_kernel(isa, groups.iter().all(|w| w.avx2_safe)),
                        groups[0].bias.is_some(),
                        Some(groups.iter().all(|w| w.avx2_safe)),
                    ),
                    kiln_codegen::ir::QConvKind::Depthwise { bias, .. } => (
                        format!("QConv {}×{} depthwise", spec.kernel[0], spec.kernel[1]),
                        if layout.x_nhwc {
                            "depthwise NHWC, vectorised over channels (exact f32 accumulation)"
                        } else {
                            "depthwise direct (exact f32 accumulation of int8 products)"
                        }
                        .into(),
                        bias.is_some(),
                        None,
                    ),
                };
                if bias {
                    ep.push("bias".into());
                }
                let an = act_name(*act);
                if !an.is_empty() {
                    ep.push(an);
                }
                // Activation storage order in → out (passes::layout).
                let order = |nhwc: bool| if nhwc { "NHWC" } else { "NCHW" };
                let kind_s = format!(
                    "{kind_s}, {}→{}",
                    order(layout.x_nhwc),
                    order(layout.y_nhwc)
                );
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: kind_s,
                    m: conv_rows(g, spec),
                    k: spec.k(),
                    n: spec.c_out,
                    epilogue: ep.join(" + "),
                    avx2_safe: safe,
                    kernel,
                });
            }
            Some(KilnOp::Conv { spec, act, algo }) => {
                sconv += 1;
                if *act != Activation::None {
                    act_fused += 1;
                }
                let an = act_name(*act);
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: format!("Conv {}×{} f32 ({algo:?})", spec.kernel[0], spec.kernel[1]),
                    m: conv_rows(g, spec),
                    k: spec.k(),
                    n: spec.c_out,
                    epilogue: if an.is_empty() {
                        "bias".into()
                    } else {
                        format!("bias + {an}")
                    },
                    avx2_safe: None,
                    kernel: match algo {
                        kiln_codegen::ir::ConvAlgo::Gemm => {
                            format!("f32 GEMM W·im2col ({})", isa.name())
                        }
                        kiln_codegen::ir::ConvAlgo::Depthwise => "depthwise direct (f32)".into(),
                        kiln_codegen::ir::ConvAlgo::Reference => {
                            "direct loops (weights known only at run time)".into()
                        }
                    },
                });
            }
            Some(KilnOp::ConvTranspose { spec }) => {
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: format!("ConvTranspose {}×{} f32", spec.kernel[0], spec.kernel[1]),
                    m: conv_rows(
                        g,
                        &kiln_codegen::ops::conv::ConvSpec {
                            oh: spec.h.clone(),
                            ow: spec.w.clone(),
                            ..spec.clone()
                        },
                    ),
                    k: spec.cg(),
                    n: spec.og() * spec.kernel[0] * spec.kernel[1],
                    epilogue: "col2im + bias".into(),
                    avx2_safe: None,
                    kernel: format!("f32 GEMM + col2im ({})", isa.name()),
                });
            }
            Some(KilnOp::QMatMul {
                batches,
                m,
                k,
                n: nn,
                packed,
                ..
            }) => {
                qlinear += 1;
                let (kind, kernel, safe) = match packed {
                    Some(w) => (
                        "QLinearMatMul (8-bit in → i32 → requantized 8-bit out)",
                        qgemm_kernel(isa, w.avx2_safe),
                        Some(w.avx2_safe),
                    ),
                    None => (
                        "QLinearMatMul (run-time B)",
                        "direct integer loops".into(),
                        None,
                    ),
                };
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: kind.into(),
                    m: g.show(&batches.mul(m)),
                    k: k.as_usize().unwrap_or(0),
                    n: nn.as_usize().unwrap_or(0),
                    epilogue: "zero points + requantize (round half even, saturate)".into(),
                    avx2_safe: safe,
                    kernel,
                });
            }
            Some(KilnOp::QLinearConv {
                spec,
                packed,
                depthwise,
            }) => {
                qlinear_conv += 1;
                let (kind, kernel, safe) = match packed {
                    Some((groups, direct)) => (
                        format!(
                            "QLinearConv {}×{} {} (8-bit in → requantized 8-bit out)",
                            spec.kernel[0],
                            spec.kernel[1],
                            if *direct {
                                "direct GEMM"
                            } else {
                                "im2col + GEMM"
                            }
                        ),
                        qgemm_kernel(isa, groups.iter().all(|w| w.avx2_safe)),
                        Some(groups.iter().all(|w| w.avx2_safe)),
                    ),
                    None if depthwise.is_some() => (
                        format!(
                            "QLinearConv {}×{} depthwise",
                            spec.kernel[0], spec.kernel[1]
                        ),
                        "depthwise direct (exact f32 accumulation of int8 products)".into(),
                        None,
                    ),
                    None => (
                        format!("QLinearConv {}×{} direct", spec.kernel[0], spec.kernel[1]),
                        "direct integer loops (run-time weights)".into(),
                        None,
                    ),
                };
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind,
                    m: conv_rows(g, spec),
                    k: spec.k(),
                    n: spec.c_out,
                    epilogue: "zero points + bias + requantize".into(),
                    avx2_safe: safe,
                    kernel,
                });
            }
            Some(KilnOp::DqMatMul { m, w }) => {
                dq_mm += 1;
                layers.push(KLayer {
                    node: n.name.clone(),
                    kind: format!(
                        "DqMatMul (weight-only {}-bit {}, dequantized in the kernel)",
                        w.bits,
                        if w.signed { "signed" } else { "unsigned" }
                    ),
                    m: g.show(m),
                    k: w.k,
                    n: w.n,
                    epilogue: if w.bias.is_some() { "bias" } else { "-" }.into(),
                    avx2_safe: None,
                    kernel: format!("f32 GEMM on dequantized blocks ({})", isa.name()),
                });
            }
            Some(KilnOp::QdqMap { .. }) => qdq_map += 1,
            Some(KilnOp::Elementwise { steps }) => {
                *other_ops
                    .entry(format!("Elementwise (fused, {} ops)", steps.len()))
                    .or_insert(0) += 1;
            }
            Some(KilnOp::Attention { .. }) => {
                attention += 1;
            }
            Some(KilnOp::ConvInteger { .. }) => {
                *other_ops
                    .entry("ConvInteger (unfused, direct)".into())
                    .or_insert(0) += 1;
            }
            None => {
                if n.domain == "kiln" && n.op == "Gelu" {
                    gelu += 1;
                }
                if n.op == "LayerNormalization" && n.name.ends_with(":layernorm") {
                    ln += 1;
                }
                let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                    n.op.clone()
                } else {
                    format!("{}:{}", n.domain, n.op)
                };
                if n.op == "MatMulInteger" {
                    layers.push(KLayer {
                        node: n.name.clone(),
                        kind: "MatMulInteger (unfused)".into(),
                        m: "-".into(),
                        k: 0,
                        n: 0,
                        epilogue: "-".into(),
                        avx2_safe: None,
                        kernel: "generic integer matmul (pattern not fusable, e.g. K > 33025)"
                            .into(),
                    });
                }
                *other_ops.entry(key).or_insert(0) += 1;
            }
        }
    }
    let mut fusions = Vec::new();
    if qgemm > 0 {
        fusions.push((
            "DynamicQuantizeLinear → MatMulInteger → Cast → Mul [→ Add] [→ act] ⇒ QuantizeDyn + QGemm"
                .to_string(),
            qgemm,
        ));
        fusions.push((
            "QuantizeDyn passes (one per quantized tensor, shared by its matmuls)".to_string(),
            qdyn,
        ));
    }
    if qconv > 0 {
        fusions.push((
            "DynamicQuantizeLinear → ConvInteger → Cast → Mul [→ Add] [→ BatchNorm] [→ act] ⇒ QConv"
                .to_string(),
            qconv,
        ));
    }
    if qlinear > 0 {
        fusions.push((
            "QLinearMatMul, or DequantizeLinear → MatMul → QuantizeLinear (static QDQ) ⇒ int8 GEMM + requantize"
                .to_string(),
            qlinear,
        ));
    }
    if qlinear_conv > 0 {
        fusions.push((
            "QLinearConv, or DequantizeLinear → Conv → QuantizeLinear (static QDQ) ⇒ integer conv + requantize"
                .to_string(),
            qlinear_conv,
        ));
    }
    if qdq_map > 0 {
        fusions.push((
            "DequantizeLinear → [Add/Sub/Mul const, BatchNorm, Relu, Clip, Sigmoid, HardSwish…]… → QuantizeLinear ⇒ one 8-bit → 8-bit pass"
                .to_string(),
            qdq_map,
        ));
    }
    if dq_mm > 0 {
        fusions.push((
            "MatMul on DequantizeLinear'd (or Cast → Mul) constant weights [+ bias] ⇒ DqMatMul (weight-only)"
                .to_string(),
            dq_mm,
        ));
    }
    if sconv > 0 {
        fusions.push((
            "float Conv [+ BatchNorm folded into the weights] [+ Relu/Clip] ⇒ compiled Conv"
                .to_string(),
            sconv,
        ));
    }
    if sgemm > 0 {
        fusions.push((
            "float MatMul/Gemm [+ bias] [+ ReLU] ⇒ prepacked SGemm".to_string(),
            sgemm,
        ));
    }
    if gelu + gelu_epilogue > 0 {
        fusions.push((
            "decomposed GELU (Div, Erf, Add, Mul, Mul) ⇒ one pass".to_string(),
            gelu + gelu_epilogue,
        ));
    }
    if gelu_epilogue > 0 {
        fusions.push((
            "GELU moved into a QGemm epilogue".to_string(),
            gelu_epilogue,
        ));
    }
    if attention > 0 {
        fusions.push((
            "attention (head transposes, Q·Kᵀ, scale, mask, Softmax, ·V) ⇒ one fused op"
                .to_string(),
            attention,
        ));
    }
    if ln > 0 {
        fusions.push((
            "decomposed LayerNorm (9 ops) ⇒ LayerNormalization".to_string(),
            ln,
        ));
    }
    if act_fused > 0 {
        fusions.push((
            "activations applied in a GEMM epilogue".to_string(),
            act_fused,
        ));
    }
    let symbolic_buffers = compiled
        .plan
        .slots
        .iter()
        .filter(|s| s.static_capacity().is_none())
        .count();
    KilnPlan::Compiled(Box::new(Compiled {
        source_nodes: mf.graph().node.len(),
        compiled_nodes: g.nodes.len(),
        fusions,
        layers,
        other_ops,
        isa,
        workspace_bytes: compiled.plan.planned_bytes(),
        naive_workspace_bytes: compiled.plan.naive_bytes,
        symbolic_buffers,
        workspace_formula: (symbolic_buffers > 0).then(|| {
            (
                compiled.plan.workspace().show(g),
                g.show(&compiled.plan.naive_dim),
            )
        }),
        weight_blob_bytes: compiled.blob().len(),
    }))
}

// ---- JSON ---------------------------------------------------------------------------------

pub fn to_json(r: &Report) -> Json {
    let io = |v: &Vec<Io>| -> Json {
        v.iter()
            .map(|i| json!({"name": i.name, "dtype": i.dtype, "dims": i.dims}))
            .collect()
    };
    let layers: Vec<Json> = r
        .layers
        .iter()
        .map(|l| {
            let (avx2, cols) = match &l.avx2 {
                Avx2::Safe => (json!("safe"), Json::Null),
                Avx2::CouldSaturate { columns, of } => (
                    json!("could_saturate"),
                    json!({"columns": columns, "of": of}),
                ),
                Avx2::NotApplicable(why) => (json!("not_applicable"), json!(why)),
            };
            json!({
                "node": l.node, "op": l.op, "form": l.form,
                "activation": l.activation, "weight": l.weight, "weight_shape": l.weight_shape,
                "granularity": l.granularity, "symmetric": l.symmetric,
                "zero_points": l.zero_points,
                "weight_range": l.weight_range.map(|(a, b)| vec![a, b]),
                "reduced_range_7bit": l.reduced_range,
                "avx2_vpmaddubsw": avx2, "avx2_detail": cols,
            })
        })
        .collect();
    let kiln = match &r.kiln {
        KilnPlan::Error(e) => json!({"compiles": false, "error": e}),
        KilnPlan::Compiled(c) => json!({
            "compiles": true,
            "isa": c.isa.name(),
            "source_nodes": c.source_nodes,
            "compiled_nodes": c.compiled_nodes,
            "fusions": c.fusions.iter().map(|(f, n)| json!({"fusion": f, "count": n})).collect::<Vec<_>>(),
            "layers": c.layers.iter().map(|l| json!({
                "node": l.node, "kind": l.kind, "m": l.m, "k": l.k, "n": l.n,
                "epilogue": l.epilogue, "avx2_safe": l.avx2_safe, "kernel": l.kernel,
            })).collect::<Vec<_>>(),
            "other_ops": c.other_ops,
            "workspace_bytes": c.workspace_bytes,
            "naive_workspace_bytes": c.naive_workspace_bytes,
            "symbolic_buffers": c.symbolic_buffers,
            "workspace_formula": c.workspace_formula.as_ref().map(|f| &f.0),
            "naive_workspace_formula": c.workspace_formula.as_ref().map(|f| &f.1),
            "weight_blob_bytes": c.weight_blob_bytes,
        }),
    };
    json!({
        "file": r.file,
        "file_bytes": r.file_bytes,
        "ir_version": r.ir_version,
        "producer": r.producer,
        "opsets": r.opsets.iter().map(|(d, v)| json!({"domain": d, "version": v})).collect::<Vec<_>>(),
        "inputs": io(&r.inputs),
        "outputs": io(&r.outputs),
        "nodes": r.nodes,
        "op_counts": r.op_counts,
        "parameters": r.parameters,
        "weights_by_dtype": r.weights_by_dtype.iter().map(|(d, (t, e, b))| (d.clone(), json!({"tensors": t, "elements": e, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        "quantization_forms": r.forms,
        "quantized_layers": layers,
        "unsupported_ops": r.unsupported.iter().map(|u| json!({"domain": u.domain, "op": u.op, "nodes": u.nodes, "advice": u.advice})).collect::<Vec<_>>(),
        "kiln": kiln,
    })
}

// ---- text ---------------------------------------------------------------------------------

pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn head(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn bad(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// A cell: text plus a colour applied after padding.
type Cell = (String, Option<&'static str>);

fn table(out: &mut String, st: &Style, header: &[&str], rows: &[Vec<Cell>]) {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.0.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let s = cells.join("  ");
        format!("  {}\n", s.trim_end())
    };
    out.push_str(&line(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| st.dim(&format!("{h:<w$}", w = w[i])))
            .collect(),
    ));
    for r in rows {
        out.push_str(&line(
            r.iter()
                .enumerate()
                .map(|(i, (t, code))| {
                    let pad = format!("{t:<w$}", w = w[i]);
                    match code {
                        Some(c) => st.paint(c, &pad),
                        None => pad,
                    }
                })
                .collect(),
        ));
    }
}

pub fn bytes(n: u64) -> String {
    if n >= 10 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 10 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

fn c(s: impl Into<String>) -> Cell {
    (s.into(), None)
}

pub fn to_text(r: &Report, st: &Style) -> String {
    let mut o = String::new();
    o.push_str(&format!("{} {}\n", st.head("model"), r.file));
    o.push_str(&format!(
        "  {} bytes · IR {} · producer {} · opsets {}\n",
        r.file_bytes,
        r.ir_version,
        if r.producer.is_empty() {
            "?"
        } else {
            &r.producer
        },
        r.opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    o.push_str(&format!(
        "  {} nodes: {}\n",
        r.nodes,
        r.op_counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let show_io = |o: &mut String, what: &str, v: &[Io]| {
        for i in v {
            let dims = match &i.dims {
                Some(d) => format!("[{}]", d.join(", ")),
                None => "(unknown rank)".into(),
            };
            o.push_str(&format!("  {what:<6} {} {} {dims}\n", i.name, i.dtype));
        }
    };
    show_io(&mut o, "input", &r.inputs);
    show_io(&mut o, "output", &r.outputs);
    o.push_str(&format!(
        "  {} parameters: {}\n",
        r.parameters,
        r.weights_by_dtype
            .iter()
            .map(|(d, (t, _, b))| format!("{d} {} in {t} tensors", bytes(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    o.push_str(&format!("\n{}\n", st.head("quantization")));
    for f in &r.forms {
        o.push_str(&format!("  {f}\n"));
    }
    if !r.layers.is_empty() {
        o.push('\n');
        let rows: Vec<Vec<Cell>> = r
            .layers
            .iter()
            .map(|l| {
                let (avx2, code): (String, Option<&'static str>) = match &l.avx2 {
                    Avx2::Safe => ("safe".into(), Some("32")),
                    Avx2::CouldSaturate { columns, of } => {
                        (format!("could saturate ({columns}/{of} cols)"), Some("33"))
                    }
                    Avx2::NotApplicable(_) => ("n/a".into(), None),
                };
                let yn = |b: Option<bool>| match b {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                };
                vec![
                    c(short_name(&l.node)),
                    c(&l.op),
                    c(short_act(&l.activation)),
                    c(format!(
                        "{} {}",
                        l.weight,
                        l.weight_shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("×")
                    )),
                    c(&l.granularity),
                    c(format!("{} (zp {})", yn(l.symmetric), l.zero_points)),
                    c(match l.weight_range {
                        Some((a, b)) => format!("{} [{a}, {b}]", yn(l.reduced_range)),
                        None => "?".into(),
                    }),
                    (avx2, code),
                ]
            })
            .collect();
        table(
            &mut o,
            st,
            &[
                "layer",
                "op",
                "act",
                "weight",
                "granularity",
                "symmetric",
                "7-bit [range]",
                "AVX2 VPMADDUBSW",
            ],
            &rows,
        );
        let forms: Vec<&str> = r.layers.iter().map(|l| l.form.as_str()).collect();
        let mut uniq = forms.clone();
        uniq.dedup();
        if uniq.len() > 1 {
            for l in &r.layers {
                o.push_str(&format!("  {}: {}\n", l.node, l.form));
            }
        }
        if r.layers
            .iter()
            .any(|l| matches!(l.avx2, Avx2::CouldSaturate { .. }))
        {
            o.push_str(&st.dim(
                "  could saturate: a fast AVX2 kernel (VPMADDUBSW) would give wrong results for some \
                 inputs;\n  kiln proves this per layer and uses its exact AVX2 path there, so no \
                 reduce_range is needed\n",
            ));
        }
    }

    o.push_str(&format!("\n{}\n", st.head("unsupported ops")));
    if r.unsupported.is_empty() {
        o.push_str(&format!(
            "  {}\n",
            st.good("none: every op is one kiln compiles")
        ));
    }
    for u in &r.unsupported {
        let mut names = u
            .nodes
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if u.nodes.len() > 4 {
            names.push_str(&format!(", … ({} nodes)", u.nodes.len()));
        }
        o.push_str(&format!(
            "  {} ({}) — {}\n    {}\n",
            st.bad(&u.op),
            u.domain,
            names,
            u.advice
        ));
    }

    o.push_str(&format!("\n{}\n", st.head("what kiln will do")));
    match &r.kiln {
        KilnPlan::Error(e) => {
            o.push_str(&format!("  {} {e}\n", st.bad("does not compile:")));
        }
        KilnPlan::Compiled(k) => {
            o.push_str(&format!(
                "  {} ONNX nodes → {} kernel calls; kernels for {} (this CPU, or KILN_ISA / --isa)\n",
                k.source_nodes,
                k.compiled_nodes,
                k.isa.name()
            ));
            for (f, n) in &k.fusions {
                o.push_str(&format!("  {} {f}\n", st.good(&format!("{n:>3}×"))));
            }
            if !k.layers.is_empty() {
                o.push('\n');
                let rows: Vec<Vec<Cell>> = k
                    .layers
                    .iter()
                    .map(|l| {
                        vec![
                            c(short_name(&l.node)),
                            c(&l.kind),
                            c(format!("{}×{}×{}", l.m, l.k, l.n)),
                            c(&l.epilogue),
                            (
                                l.kernel.clone(),
                                match l.avx2_safe {
                                    Some(false) if k.isa.name() == "avx2" => Some("33"),
                                    _ => None,
                                },
                            ),
                        ]
                    })
                    .collect();
                table(
                    &mut o,
                    st,
                    &["layer", "kind", "M×K×N", "epilogue", "kernel"],
                    &rows,
                );
            }
            if !k.other_ops.is_empty() {
                o.push_str(&format!(
                    "  other ops: {}\n",
                    k.other_ops
                        .iter()
                        .map(|(a, b)| format!("{a} {b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            o.push_str(&workspace_line(k));
        }
    }
    o
}

/// The workspace line: bytes for static shapes; with symbolic dims the formula in bytes
/// (the generated `workspace_bytes(dims…)` computes it), or where to find it when it is long.
fn workspace_line(k: &Compiled) -> String {
    let blob = bytes(k.weight_blob_bytes as u64);
    match &k.workspace_formula {
        None => format!(
            "  workspace {} after buffer reuse (naive {}); weights blob {blob}\n",
            bytes(k.workspace_bytes as u64),
            bytes(k.naive_workspace_bytes as u64),
        ),
        Some((w, naive)) if w.len() + naive.len() <= 160 => format!(
            "  workspace {w} bytes after buffer reuse (naive {naive}); weights blob {blob}\n"
        ),
        Some(_) => format!(
            "  workspace: a function of the dims, too long to show (`workspace_bytes(…)` in \
             the generated code computes it; `--json` has the formula): {} of fixed-size \
             buffers plus {} sized by the dims; weights blob {blob}\n",
            bytes(k.workspace_bytes as u64),
            k.symbolic_buffers,
        ),
    }
}

/// Long graph paths (`/model/encoder/layer.2/…/MatMul`) keep their informative tail.
fn short_name(s: &str) -> String {
    let n = s.chars().count();
    if n <= 48 {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(n - 47).collect::<String>())
    }
}

fn short_act(a: &str) -> String {
    a.split(' ').next().unwrap_or(a).to_string()
}

/// GEMM rows of a convolution as `batch·height·width`, each factor kept whole (a product of
/// floor expressions multiplied out is unreadable).
fn conv_rows(g: &kiln_codegen::ir::Graph, spec: &kiln_codegen::ops::conv::ConvSpec) -> String {
    let f = |d: &kiln_codegen::ir::Dim| {
        let s = g.show(d);
        if s.contains(' ') { format!("({s})") } else { s }
    };
    let mut parts = vec![f(&spec.batch)];
    if spec.spatial == 2 {
        parts.push(f(&spec.oh));
    }
    parts.push(f(&spec.ow));
    parts.join("·")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_runtime::pack::{PackedI8Owned, Weights};

    /// The per-column rule agrees with the packer's per-layer proof.
    #[test]
    fn avx2_rule_matches_the_packer() {
        let mut seed = 0x2545F491u32;
        let mut rnd = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for case in 0..200 {
            let (k, n) = (1 + (rnd() % 9) as usize, 1 + (rnd() % 20) as usize);
            let spread = [40, 64, 65, 127][case % 4];
            let w: Vec<i8> = (0..k * n)
                .map(|_| ((rnd() % (2 * spread + 1)) as i32 - spread as i32) as i8)
                .collect();
            let packed = PackedI8Owned::pack(Weights::I8(&w), k, n, &[0], &[1.0], None);
            let stored: Vec<i32> = w.iter().map(|&v| v as i32).collect();
            assert_eq!(
                packed.avx2_safe,
                avx2_unsafe_columns(&stored, k, n, true) == 0,
                "k={k} n={n} {w:?}"
            );
            // The transposed layout gives the same answer.
            let mut t = vec![0i32; k * n];
            for kk in 0..k {
                for nn in 0..n {
                    t[nn * k + kk] = stored[kk * n + nn];
                }
            }
            assert_eq!(
                avx2_unsafe_columns(&stored, k, n, true),
                avx2_unsafe_columns(&t, k, n, false)
            );
        }
    }
}
