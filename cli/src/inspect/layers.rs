//! The stored graph's quantized layers: forms, granularity, 7-bit weights, AVX2 safety.
use super::*;

pub(super) fn int_weights(idx: &GraphIndex, name: &str) -> Option<(Vec<usize>, Vec<i32>, bool)> {
    let (shape, data) = idx.const_data(name)?;
    match data {
        TensorData::I8(v) => Some((shape, v.into_iter().map(i32::from).collect(), false)),
        TensorData::U8(v) => Some((shape, v.into_iter().map(i32::from).collect(), true)),
        _ => None,
    }
}

pub(super) fn const_len(idx: &GraphIndex, name: Option<&String>) -> Option<usize> {
    let t = idx.consts.get(name.filter(|s| !s.is_empty())?.as_str())?;
    Some(numel(t) as usize)
}

pub(super) fn const_ints(idx: &GraphIndex, name: Option<&String>) -> Option<Vec<i64>> {
    let (_, d) = idx.const_data(name.filter(|s| !s.is_empty())?)?;
    if matches!(d.dtype(), DType::F32 | DType::F64) {
        return None;
    }
    d.as_i64().ok()
}

/// How the weight of a layer is laid out relative to kiln's `[K][N]`.
#[derive(Clone, Copy)]
pub(super) enum Layout {
    /// [K, N] (MatMul B)
    KN,
    /// [N, K…] (Gemm transB, Conv weights)
    NK,
}

/// Where a quantized layer's weights and parameters are: (form, activation type, weight,
/// scale, zero point, layout, block size).
type Source<'a> = (
    String,
    String,
    &'a String,
    Option<&'a String>,
    Option<&'a String>,
    Layout,
    i64,
);

/// The element type of a value, by name.
fn elem_of(idx: &GraphIndex, v: Option<&String>) -> String {
    v.and_then(|v| idx.elem_type(v))
        .map_or("?".to_string(), |c| elem_name(c).to_string())
}

/// The quantization record of one node, if it is a quantized matmul/conv.
pub(super) fn analyse_layer(idx: &GraphIndex, n: &NodeProto) -> Option<QLayer> {
    if (domain(n), op(n)) == ("com.microsoft", "MatMulNBits") {
        return Some(nbits_layer(n));
    }
    let src = source(idx, n)?;
    Some(weights_layer(idx, n, src))
}

/// The weights of an integer or QOperator op, of an onnxruntime contrib op, or of a float
/// op whose weights are dequantized constants.
fn source<'a>(idx: &GraphIndex<'a>, n: &'a NodeProto) -> Option<Source<'a>> {
    let o = op(n);
    let inp = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
    let elem = |v: Option<&String>| elem_of(idx, v);
    let nk_if = |c: bool| if c { Layout::NK } else { Layout::KN };
    Some(match (domain(n), o) {
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
            let layout = nk_if(o == "ConvInteger");
            (form, elem(inp(0)), inp(1)?, scale, inp(3), layout, 0)
        }
        ("", "QLinearMatMul") | ("", "QLinearConv") => (
            "QOperator (QLinear*)".into(),
            elem(inp(0)),
            inp(3)?,
            inp(4),
            inp(5),
            nk_if(o == "QLinearConv"),
            0,
        ),
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
        ("com.microsoft", "QGemm") => (
            "QOperator (onnxruntime QGemm)".into(),
            elem(inp(0)),
            inp(3)?,
            inp(4),
            inp(5),
            nk_if(attr_i(n, "transB").unwrap_or(0) != 0),
            0,
        ),
        ("", "MatMul") | ("", "Gemm") | ("", "Conv") => return float_op_source(idx, n),
        _ => return None,
    })
}

/// MatMul/Gemm/Conv on DequantizeLinear'd constant weights (static QDQ, or weight-only when
/// the activation is float), or on `Mul(Cast(int constant), scale)`.
fn float_op_source<'a>(idx: &GraphIndex<'a>, n: &'a NodeProto) -> Option<Source<'a>> {
    let o = op(n);
    let inp = |i: usize| n.input.get(i).filter(|s| !s.is_empty());
    let p = idx.producer_of(inp(1)?)?;
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
                    elem_of(idx, a.input.first()),
                ),
                None => (
                    "weight-only (DequantizeLinear on constant weights)".to_string(),
                    elem_of(idx, inp(0)),
                ),
            };
            let block = attr_i(p, "block_size").unwrap_or(0);
            Some((
                form,
                act,
                p.input.first()?,
                p.input.get(1),
                p.input.get(2),
                layout,
                block,
            ))
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
            let wi = cast?.input.first().filter(|x| idx.is_const(x))?;
            int_weights(idx, wi)?;
            Some((
                "weight-only (Cast → Mul on constant weights)".into(),
                elem_of(idx, inp(0)),
                wi,
                sc,
                None,
                layout,
                0,
            ))
        }
        _ => None,
    }
}

/// onnxruntime's 4-bit MatMulNBits: described from its attributes.
fn nbits_layer(n: &NodeProto) -> QLayer {
    let has_zp = n.input.get(3).is_some_and(|s| !s.is_empty());
    QLayer {
        node: node_name(n),
        op: format!("{}:{}", domain(n), op(n)),
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
        zero_points: if has_zp {
            "present"
        } else {
            "none (implicit mid-point)"
        }
        .into(),
        weight_range: None,
        reduced_range: None,
        avx2: Avx2::NotApplicable("kiln does not run 4-bit weights".into()),
    }
}

/// The record of a layer whose 8-bit weights are at `src`: granularity, symmetry, range, and
/// whether AVX2's VPMADDUBSW could saturate.
fn weights_layer(idx: &GraphIndex, n: &NodeProto, src: Source) -> QLayer {
    let (form, act, w, scale, zp, layout, block) = src;
    let (d, o) = (domain(n), op(n));
    let Some((shape, vals, unsigned)) = int_weights(idx, w) else {
        return QLayer {
            node: node_name(n),
            op: qualified(d, o),
            form,
            activation: act,
            weight: elem_of(idx, Some(w)),
            weight_shape: vec![],
            granularity: "unknown (weights are not constant)".into(),
            symmetric: None,
            zero_points: "?".into(),
            weight_range: None,
            reduced_range: None,
            avx2: Avx2::NotApplicable("weights are computed at run time".into()),
        };
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
    let avx2 = avx2_of(&act, &shape, &vals, unsigned, layout);
    QLayer {
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
    }
}

/// Whether AVX2's VPMADDUBSW (u8 × i8 pairs summed into i16) could saturate on these weights.
fn avx2_of(act: &str, shape: &[usize], vals: &[i32], unsigned: bool, layout: Layout) -> Avx2 {
    if !act.starts_with("uint8") {
        return Avx2::NotApplicable(format!("activations are {act}, not uint8"));
    }
    if shape.len() < 2 {
        return Avx2::NotApplicable("weight is not a matrix".into());
    }
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
    match avx2_unsafe_columns(&stored, k, ncols, kn) {
        0 => Avx2::Safe,
        unsafe_cols => Avx2::CouldSaturate {
            columns: unsafe_cols,
            of: ncols,
        },
    }
}

pub(super) fn qualified(d: &str, o: &str) -> String {
    if d.is_empty() {
        o.to_string()
    } else {
        format!("{d}:{o}")
    }
}

/// The weight scale of a MatMulInteger in onnxruntime's dynamic chain:
/// `Cast → Mul(·, Mul(x_scale, W_scale))`, W_scale constant.
pub(super) fn matmul_integer_scale<'a>(
    idx: &GraphIndex<'a>,
    n: &'a NodeProto,
) -> Option<&'a String> {
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

pub(super) fn act_name(a: Activation) -> String {
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
