//! onnxruntime's quantized contrib ops (`com.microsoft`), as its quantization tools and graph
//! optimizer write them. Each is compiled as the standard ops that define it (an
//! [`ExpandFn`](super::registry::ExpandFn), run by inference), so the existing fusions claim
//! them: `DynamicQuantizeMatMul` and `MatMulIntegerToFloat` become the
//! `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales) [→ Add bias]` chain that
//! `passes::fuse_quant` turns into `QuantizeDyn` + an int8 `QGemm`. See docs/contrib.md.
use super::OpDef;
use super::registry::contrib_expand;
use crate::error::{Result, bail, unsupported};
use crate::ir::{Attr, DType, Graph, Node, TensorData, from_static, numel};

const DQ_MATMUL: &str = "f32 A quantized at run time to uint8 (DynamicQuantizeLinear's rule) × constant int8/uint8 B (2-D, scale/zero point per tensor or per column): the int8 GEMM with scales and bias in its epilogue; otherwise MatMulInteger + float scaling";
const QLINEAR_BINARY: &str = "u8/i8, per-tensor parameters; `quantize(dequantize(A) op dequantize(B))`, broadcasting; run as DequantizeLinear, Add/Mul and QuantizeLinear (float)";
const QLINEAR_UNARY: &str =
    "u8/i8, per-tensor parameters; one 256-entry lookup table per call site (the QDQ glue fusion)";
const QLINEAR_POOL: &str = "u8/i8, per-tensor parameters, NCHW or `channels_last`; every AveragePool attribute; dequantize → float pool → quantize";
const QLINEAR_CONCAT: &str =
    "u8/i8, per-tensor parameters per input; dequantize → Concat → quantize";
const QLINEAR_SOFTMAX: &str = "u8/i8, per-tensor parameters; `opset` < 13 and ≥ 13 semantics (when they differ from the model's opset: last axis only); dequantize → Softmax → quantize";
const QGEMM: &str = "u8/i8 A and B (B per tensor or per column), int32 C, alpha, transA/transB, 8-bit or float output; 8-bit output with alpha 1 and constant B: the packed int8 GEMM with a requantizing epilogue (like QLinearMatMul); float output: weight-only GEMM on the dequantized B";
const MATMUL_NBITS: &str = "bits 4 and 8, constant B/scales/zero points (packed uint8 or integral float; default 2^(bits−1)), any K (partial last block), optional bias; the weight-only kernel keeps 4-bit weights packed two per byte and dequantizes in the GEMM; g_idx and GPU-prepacked layouts refused";
const MM_INT_TO_FLOAT: &str = "u8/i8 × u8/i8 with per-tensor A scale/zero point, B's per tensor or per column, optional bias; after a DynamicQuantizeLinear and with a constant 2-D B: the int8 GEMM (`QGemm`); otherwise MatMulInteger + float scaling";

/// The contrib ops of this family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    contrib_expand("DynamicQuantizeMatMul", DQ_MATMUL, expand_dq_matmul),
    contrib_expand(
        "MatMulIntegerToFloat",
        MM_INT_TO_FLOAT,
        expand_mm_int_to_float,
    ),
    contrib_expand("MatMulNBits", MATMUL_NBITS, expand_matmul_nbits),
    contrib_expand("QGemm", QGEMM, expand_qgemm),
    contrib_expand("QLinearAdd", QLINEAR_BINARY, expand_qlinear_binary),
    contrib_expand("QLinearMul", QLINEAR_BINARY, expand_qlinear_binary),
    contrib_expand("QLinearSigmoid", QLINEAR_UNARY, expand_qlinear_unary),
    contrib_expand("QLinearLeakyRelu", QLINEAR_UNARY, expand_qlinear_unary),
    contrib_expand(
        "QLinearGlobalAveragePool",
        QLINEAR_POOL,
        expand_qlinear_pool,
    ),
    contrib_expand("QLinearAveragePool", QLINEAR_POOL, expand_qlinear_pool),
    contrib_expand("QLinearConcat", QLINEAR_CONCAT, expand_qlinear_concat),
    contrib_expand("QLinearSoftmax", QLINEAR_SOFTMAX, expand_qlinear_softmax),
];

/// Builds the nodes of an expansion; values and nodes are named after the composite node.
struct Ex<'a> {
    g: &'a mut Graph,
    base: String,
    nodes: Vec<Node>,
}

impl<'a> Ex<'a> {
    fn new(g: &'a mut Graph, n: &Node) -> Self {
        Ex {
            g,
            base: n.name.clone(),
            nodes: Vec::new(),
        }
    }

    /// A new value (typed by inference).
    fn value(&mut self, what: &str) -> usize {
        let name = format!("{}:{what}{}", self.base, self.g.values.len());
        self.g.add_value(name, DType::F32, vec![])
    }

    /// A node `op(inputs)` with one output: `out`, or a new value.
    fn node(
        &mut self,
        op: &str,
        inputs: &[Option<usize>],
        attrs: Vec<(&str, Attr)>,
        out: Option<usize>,
    ) -> usize {
        let o = out.unwrap_or_else(|| self.value(&op.to_ascii_lowercase()));
        self.nodes.push(Node {
            name: format!("{}:{op}{}", self.base, self.nodes.len()),
            op: op.into(),
            domain: String::new(),
            inputs: inputs.to_vec(),
            outputs: vec![o],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            kiln: None,
        });
        o
    }

    /// A constant.
    fn konst(&mut self, what: &str, shape: &[usize], data: TensorData, int4: bool) -> usize {
        let v = self.value(what);
        let val = &mut self.g.values[v];
        val.dtype = data.dtype();
        val.shape = from_static(shape);
        val.konst = Some(data);
        val.int4 = int4;
        v
    }
}

/// Checks that input `i` of `n` (if present) holds a single value.
fn scalar_input(g: &Graph, n: &Node, i: usize, what: &str) -> Result<()> {
    if let Some(v) = n.input(i)
        && numel(&g.values[v].shape) != 1
    {
        unsupported!(
            "{what} `{}` of shape {} is not per tensor; {} supports one value here",
            g.values[v].name,
            g.show_shape(&g.values[v].shape),
            n.op
        );
    }
    Ok(())
}

fn required(n: &Node, i: usize, what: &str) -> Result<usize> {
    match n.input(i) {
        Some(v) => Ok(v),
        None => bail!("{} needs input {i} ({what})", n.op),
    }
}

/// `MatMulInteger(a, b, a_zp, b_zp) → Cast(float) → Mul(·, a_scale · b_scale) [→ Add bias]`,
/// written to `out`: the exact definition of both ops, in the form `fuse_quant` fuses.
#[allow(clippy::too_many_arguments)]
fn integer_to_float(
    ex: &mut Ex,
    a: usize,
    b: usize,
    a_scale: usize,
    b_scale: usize,
    a_zp: Option<usize>,
    b_zp: Option<usize>,
    bias: Option<usize>,
    out: usize,
) {
    let acc = ex.node(
        "MatMulInteger",
        &[Some(a), Some(b), a_zp, b_zp],
        vec![],
        None,
    );
    let f = ex.node("Cast", &[Some(acc)], vec![("to", Attr::Int(1))], None);
    let s = ex.node("Mul", &[Some(a_scale), Some(b_scale)], vec![], None);
    match bias {
        Some(bias) => {
            let y = ex.node("Mul", &[Some(f), Some(s)], vec![], None);
            ex.node("Add", &[Some(y), Some(bias)], vec![], Some(out));
        }
        None => {
            ex.node("Mul", &[Some(f), Some(s)], vec![], Some(out));
        }
    }
}

/// Checks the bias (input `i`): float32 with one value per column of B.
fn check_bias(g: &Graph, n: &Node, i: usize, b: usize) -> Result<()> {
    if let Some(v) = n.input(i) {
        let (bv, last) = (&g.values[v], g.values[b].shape.last());
        if bv.dtype != DType::F32 || bv.shape.len() != 1 || Some(&bv.shape[0]) != last {
            bail!(
                "bias `{}` ({:?} {}) must be float32 of shape [N], N = B's last dim",
                bv.name,
                bv.dtype,
                g.show_shape(&bv.shape)
            );
        }
    }
    Ok(())
}

/// `DynamicQuantizeMatMul(A, B, b_scale, b_zero_point?, bias?)`: A (float) quantized to uint8
/// with DynamicQuantizeLinear's rule, then as MatMulIntegerToFloat.
fn expand_dq_matmul(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (a, b, bs) = (
        required(n, 0, "A")?,
        required(n, 1, "B")?,
        required(n, 2, "b_scale")?,
    );
    if g.values[a].dtype != DType::F32 {
        unsupported!(
            "DynamicQuantizeMatMul of {:?} A is not supported (float32)",
            g.values[a].dtype
        );
    }
    check_bias(g, n, 4, b)?;
    let mut ex = Ex::new(g, n);
    let aq = ex.value("a_q");
    let (a_s, a_zp) = (ex.value("a_scale"), ex.value("a_zero_point"));
    ex.nodes.push(Node {
        name: format!("{}:DynamicQuantizeLinear", ex.base),
        op: "DynamicQuantizeLinear".into(),
        domain: String::new(),
        inputs: vec![Some(a)],
        outputs: vec![aq, a_s, a_zp],
        attrs: Default::default(),
        kiln: None,
    });
    integer_to_float(
        &mut ex,
        aq,
        b,
        a_s,
        bs,
        Some(a_zp),
        n.input(3),
        n.input(4),
        n.outputs[0],
    );
    Ok(ex.nodes)
}

/// `MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?)`:
/// `(A − a_zp)(B − b_zp) · a_scale · b_scale + bias`.
fn expand_mm_int_to_float(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (a, b, a_s, b_s) = (
        required(n, 0, "A")?,
        required(n, 1, "B")?,
        required(n, 2, "a_scale")?,
        required(n, 3, "b_scale")?,
    );
    scalar_input(g, n, 2, "a_scale")?;
    scalar_input(g, n, 4, "a_zero_point")?;
    for v in [a_s, b_s] {
        if g.values[v].dtype != DType::F32 {
            unsupported!(
                "scale `{}` is {:?}; MatMulIntegerToFloat is supported with float32 scales",
                g.values[v].name,
                g.values[v].dtype
            );
        }
    }
    check_bias(g, n, 6, b)?;
    let mut ex = Ex::new(g, n);
    integer_to_float(
        &mut ex,
        a,
        b,
        a_s,
        b_s,
        n.input(4),
        n.input(5),
        n.input(6),
        n.outputs[0],
    );
    Ok(ex.nodes)
}

/// `DequantizeLinear(x, scale, zero_point?)` (per tensor unless `attrs` say otherwise).
fn dq(ex: &mut Ex, x: usize, s: usize, zp: Option<usize>, attrs: Vec<(&str, Attr)>) -> usize {
    ex.node("DequantizeLinear", &[Some(x), Some(s), zp], attrs, None)
}

/// `QuantizeLinear(y, scale, zero_point)` into `out`, the zero point defaulting to 0 of `t`
/// (the input's type: onnxruntime's QLinear ops keep it).
fn q(ex: &mut Ex, y: usize, s: usize, zp: Option<usize>, t: DType, out: usize) {
    let zp = zp.unwrap_or_else(|| ex.konst("zero_point", &[], super::int_data(t, &[0]), false));
    ex.node(
        "QuantizeLinear",
        &[Some(y), Some(s), Some(zp)],
        vec![],
        Some(out),
    );
}

/// The 8-bit type of input `i`, checked.
fn q8_input(g: &Graph, n: &Node, i: usize) -> Result<(usize, DType)> {
    let v = required(n, i, "a quantized tensor")?;
    let t = g.values[v].dtype;
    if !matches!(t, DType::U8 | DType::I8) {
        unsupported!(
            "{} input `{}` is {t:?}; uint8 and int8 are supported",
            n.op,
            g.values[v].name
        );
    }
    Ok((v, t))
}

/// QLinearAdd / QLinearMul `(A, A_s, A_zp?, B, B_s, B_zp?, C_s, C_zp?)`.
fn expand_qlinear_binary(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (a, t) = q8_input(g, n, 0)?;
    let (b, _) = q8_input(g, n, 3)?;
    for (i, what) in [(1, "A_scale"), (2, "A_zero_point"), (4, "B_scale")] {
        scalar_input(g, n, i, what)?;
    }
    for (i, what) in [(5, "B_zero_point"), (6, "C_scale"), (7, "C_zero_point")] {
        scalar_input(g, n, i, what)?;
    }
    let (a_s, b_s, c_s) = (
        required(n, 1, "A_scale")?,
        required(n, 4, "B_scale")?,
        required(n, 6, "C_scale")?,
    );
    let mut ex = Ex::new(g, n);
    let af = dq(&mut ex, a, a_s, n.input(2), vec![]);
    let bf = dq(&mut ex, b, b_s, n.input(5), vec![]);
    let op = if n.op == "QLinearAdd" { "Add" } else { "Mul" };
    let y = ex.node(op, &[Some(af), Some(bf)], vec![], None);
    q(&mut ex, y, c_s, n.input(7), t, n.outputs[0]);
    Ok(ex.nodes)
}

/// QLinearSigmoid / QLinearLeakyRelu `(X, X_s, X_zp?, Y_s, Y_zp?)`.
fn expand_qlinear_unary(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (x, t) = q8_input(g, n, 0)?;
    for (i, what) in [
        (1, "X_scale"),
        (2, "X_zero_point"),
        (3, "Y_scale"),
        (4, "Y_zero_point"),
    ] {
        scalar_input(g, n, i, what)?;
    }
    let (xs, ys) = (required(n, 1, "X_scale")?, required(n, 3, "Y_scale")?);
    let (op, attrs) = if n.op == "QLinearSigmoid" {
        ("Sigmoid", vec![])
    } else {
        let alpha = n.attr_f("alpha")?.unwrap_or(0.01);
        ("LeakyRelu", vec![("alpha", Attr::Float(alpha))])
    };
    let mut ex = Ex::new(g, n);
    let xf = dq(&mut ex, x, xs, n.input(2), vec![]);
    let y = ex.node(op, &[Some(xf)], attrs, None);
    q(&mut ex, y, ys, n.input(4), t, n.outputs[0]);
    Ok(ex.nodes)
}

/// QLinearSoftmax `(X, X_s, x_zp?, y_s, y_zp)` with the `opset` and `axis` of the Softmax it
/// replaced: the Softmax kiln emits follows the model's opset, so the two semantics must
/// agree (they always do for the last axis).
fn expand_qlinear_softmax(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (x, t) = q8_input(g, n, 0)?;
    for (i, what) in [
        (1, "X_scale"),
        (2, "x_zero_point"),
        (3, "y_scale"),
        (4, "y_zero_point"),
    ] {
        scalar_input(g, n, i, what)?;
    }
    let (xs, ys) = (required(n, 1, "X_scale")?, required(n, 3, "y_scale")?);
    let rank = g.values[x].shape.len();
    let Some(opset) = n.attr_i("opset")? else {
        bail!("QLinearSoftmax needs its `opset` attribute");
    };
    let a = n.attr_i("axis")?.unwrap_or(if opset < 13 { 1 } else { -1 });
    let a = super::axis(a, rank.max(1))?;
    if a + 1 != rank.max(1) && (opset < 13) != (g.opset < 13) {
        unsupported!(
            "QLinearSoftmax with opset {opset} semantics on axis {a} of a rank-{rank} input in a model of opset {} is not supported (the last axis is)",
            g.opset
        );
    }
    let mut ex = Ex::new(g, n);
    let xf = dq(&mut ex, x, xs, n.input(2), vec![]);
    let y = ex.node(
        "Softmax",
        &[Some(xf)],
        vec![("axis", Attr::Int(a as i64))],
        None,
    );
    q(&mut ex, y, ys, n.input(4), t, n.outputs[0]);
    Ok(ex.nodes)
}

/// QLinearGlobalAveragePool / QLinearAveragePool `(X, x_s, x_zp, y_s, y_zp?)`, NCHW or
/// (`channels_last`) NHWC around a channels-first pool.
fn expand_qlinear_pool(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (x, t) = q8_input(g, n, 0)?;
    for (i, what) in [
        (1, "x_scale"),
        (2, "x_zero_point"),
        (3, "y_scale"),
        (4, "y_zero_point"),
    ] {
        scalar_input(g, n, i, what)?;
    }
    let (xs, ys) = (required(n, 1, "x_scale")?, required(n, 3, "y_scale")?);
    let rank = g.values[x].shape.len();
    if rank < 3 {
        bail!(
            "{} needs an input of rank ≥ 3, found {}",
            n.op,
            g.show_shape(&g.values[x].shape)
        );
    }
    let last = n.attr_i("channels_last")?.unwrap_or(0) != 0;
    let global = n.op == "QLinearGlobalAveragePool";
    let attrs: Vec<(&str, Attr)> = n
        .attrs
        .iter()
        .filter(|(k, _)| !global && k.as_str() != "channels_last")
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let mut ex = Ex::new(g, n);
    let mut xf = dq(&mut ex, x, xs, n.input(2), vec![]);
    let to_first: Vec<i64> = [0, rank as i64 - 1]
        .into_iter()
        .chain(1..rank as i64 - 1)
        .collect();
    if last {
        xf = ex.node(
            "Transpose",
            &[Some(xf)],
            vec![("perm", Attr::Ints(to_first))],
            None,
        );
    }
    let op = if global {
        "GlobalAveragePool"
    } else {
        "AveragePool"
    };
    let mut y = ex.node(op, &[Some(xf)], attrs, None);
    if last {
        let to_last: Vec<i64> = [0].into_iter().chain(2..rank as i64).chain([1]).collect();
        y = ex.node(
            "Transpose",
            &[Some(y)],
            vec![("perm", Attr::Ints(to_last))],
            None,
        );
    }
    q(&mut ex, y, ys, n.input(4), t, n.outputs[0]);
    Ok(ex.nodes)
}

/// QLinearConcat `(Y_s, Y_zp, (X, X_s, X_zp)…)`.
fn expand_qlinear_concat(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let ys = required(n, 0, "Y_scale")?;
    scalar_input(g, n, 0, "Y_scale")?;
    scalar_input(g, n, 1, "Y_zero_point")?;
    let m = n.inputs.len().saturating_sub(2);
    if n.inputs.len() < 5 || !m.is_multiple_of(3) {
        bail!(
            "QLinearConcat has {} inputs; it takes Y_scale, Y_zero_point and (tensor, scale, zero point) triples",
            n.inputs.len()
        );
    }
    let mut t = None;
    for j in 0..m / 3 {
        let (_, tj) = q8_input(g, n, 2 + 3 * j)?;
        required(n, 3 + 3 * j, "scale")?;
        scalar_input(g, n, 3 + 3 * j, "scale")?;
        scalar_input(g, n, 4 + 3 * j, "zero point")?;
        if t.is_some_and(|t| t != tj) {
            bail!("QLinearConcat inputs have different types");
        }
        t = Some(tj);
    }
    let axis = n.attr_i("axis")?.unwrap_or(0);
    let mut ex = Ex::new(g, n);
    let parts: Vec<Option<usize>> = (0..m / 3)
        .map(|j| {
            let (x, s) = (n.inputs[2 + 3 * j].unwrap(), n.inputs[3 + 3 * j].unwrap());
            Some(dq(&mut ex, x, s, n.input(4 + 3 * j), vec![]))
        })
        .collect();
    let y = ex.node("Concat", &parts, vec![("axis", Attr::Int(axis))], None);
    q(&mut ex, y, ys, n.input(1), t.unwrap(), n.outputs[0]);
    Ok(ex.nodes)
}

/// QGemm `(A, a_s, a_zp, B, b_s, b_zp?, C?, y_s?, y_zp?)`: `alpha·A'B'` over dequantized
/// operands plus C (int32, scale `alpha·a_s·b_s`, zero point 0), quantized to y when y_s is
/// given. `fuse_qdq` turns it into the int8 GEMM when alpha is 1 and B constant.
fn expand_qgemm(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let (a, t) = q8_input(g, n, 0)?;
    let (b, _) = q8_input(g, n, 3)?;
    for (i, what) in [
        (1, "a_scale"),
        (2, "a_zero_point"),
        (7, "y_scale"),
        (8, "y_zero_point"),
    ] {
        scalar_input(g, n, i, what)?;
    }
    let (a_s, b_s) = (required(n, 1, "a_scale")?, required(n, 4, "b_scale")?);
    let trans_b = n.attr_i("transB")?.unwrap_or(0) != 0;
    let alpha = n.attr_f("alpha")?.unwrap_or(1.0);
    let per_col = numel(&g.values[b_s].shape) != 1;
    if let Some(c) = n.input(6)
        && g.values[c].dtype != DType::I32
    {
        bail!("QGemm C must be int32, found {:?}", g.values[c].dtype);
    }
    let mut ex = Ex::new(g, n);
    let af = dq(&mut ex, a, a_s, n.input(2), vec![]);
    let b_attrs = if per_col {
        vec![("axis", Attr::Int(if trans_b { 0 } else { 1 }))]
    } else {
        vec![]
    };
    let bf = dq(&mut ex, b, b_s, n.input(5), b_attrs);
    let mut inputs = vec![Some(af), Some(bf)];
    if let Some(c) = n.input(6) {
        let mut cs = ex.node("Mul", &[Some(a_s), Some(b_s)], vec![], None);
        if alpha != 1.0 {
            let al = ex.konst("alpha", &[], TensorData::F32(vec![alpha]), false);
            cs = ex.node("Mul", &[Some(cs), Some(al)], vec![], None);
        }
        let c_rank = ex.g.values[c].shape.len() as i64;
        let c_attrs = if per_col {
            vec![("axis", Attr::Int(c_rank - 1))]
        } else {
            vec![]
        };
        inputs.push(Some(dq(&mut ex, c, cs, None, c_attrs)));
    }
    let attrs: Vec<(&str, Attr)> = ["alpha", "transA", "transB"]
        .into_iter()
        .filter_map(|k| n.attrs.get(k).map(|v| (k, v.clone())))
        .collect();
    match n.input(7) {
        Some(ys) => {
            let y = ex.node("Gemm", &inputs, attrs, None);
            q(&mut ex, y, ys, n.input(8), t, n.outputs[0]);
        }
        None => {
            ex.node("Gemm", &inputs, attrs, Some(n.outputs[0]));
        }
    }
    Ok(ex.nodes)
}

/// The constant data of input `i` of `n`, or a compile error naming it.
fn const_input<'g>(g: &'g Graph, n: &Node, i: usize, what: &str) -> Result<&'g TensorData> {
    let v = required(n, i, what)?;
    match &g.values[v].konst {
        Some(k) => Ok(k),
        None => unsupported!(
            "{} `{}` is computed at run time; kiln supports {} with a constant {what}",
            what,
            g.values[v].name,
            n.op
        ),
    }
}

/// MatMulNBits `(A, B, scales, zero_points?, g_idx?, bias?)` with `bits` 4 or 8: the packed
/// `[N, k_blocks, blob]` weights become a `[K, N]` constant quantized block-wise along K
/// (4-bit values keep their int4 flag), dequantized by a blocked DequantizeLinear into a
/// MatMul — which `fuse_qdq` turns into the weight-only kernel that keeps the integers
/// (two 4-bit values per byte) and dequantizes inside the GEMM.
fn expand_matmul_nbits(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let get = |k: &str| -> Result<usize> {
        match n.attr_i(k)? {
            Some(v) if v > 0 => Ok(v as usize),
            other => bail!("MatMulNBits attribute `{k}` is {other:?}; it must be positive"),
        }
    };
    let (kk, nn, bits, bs) = (get("K")?, get("N")?, get("bits")?, get("block_size")?);
    if bits != 4 && bits != 8 {
        unsupported!("MatMulNBits with bits = {bits} is not supported (4 and 8 are)");
    }
    if n.input(4).is_some() {
        unsupported!("MatMulNBits with g_idx (act-order) is not supported");
    }
    if n.attr_i("weight_prepacked")?.unwrap_or(0) != 0 {
        unsupported!("MatMulNBits with weight_prepacked ≠ 0 (a GPU layout) is not supported");
    }
    let a = required(n, 0, "A")?;
    if g.values[a].dtype != DType::F32 {
        unsupported!(
            "MatMulNBits on {:?} A is not supported (float32)",
            g.values[a].dtype
        );
    }
    let kb = kk.div_ceil(bs);
    let blob = bs * bits / 8;
    let TensorData::U8(w) = const_input(g, n, 1, "B")? else {
        bail!("MatMulNBits B must be uint8");
    };
    if w.len() != nn * kb * blob {
        bail!(
            "MatMulNBits B has {} bytes; N={nn}, K={kk}, block_size={bs}, bits={bits} need {}",
            w.len(),
            nn * kb * blob
        );
    }
    let TensorData::F32(sc) = const_input(g, n, 2, "scales")? else {
        unsupported!("MatMulNBits scales must be float32");
    };
    if sc.len() != nn * kb {
        bail!(
            "MatMulNBits scales have {} values, expected N·k_blocks = {}",
            sc.len(),
            nn * kb
        );
    }
    // Zero point of (column j, block b): packed like B, float (integral values only) or the
    // default 2^(bits−1).
    let zp: Vec<i32> = match n.input(3) {
        None => vec![1 << (bits - 1); nn * kb],
        Some(_) => match const_input(g, n, 3, "zero_points")? {
            TensorData::U8(z) => {
                let row = (kb * bits).div_ceil(8);
                if z.len() != nn * row {
                    bail!(
                        "MatMulNBits zero_points have {} bytes, expected {}",
                        z.len(),
                        nn * row
                    );
                }
                (0..nn * kb)
                    .map(|i| {
                        let (j, b) = (i / kb, i % kb);
                        if bits == 8 {
                            z[j * row + b] as i32
                        } else {
                            ((z[j * row + b / 2] >> (4 * (b % 2))) & 15) as i32
                        }
                    })
                    .collect()
            }
            TensorData::F32(z) if z.len() == nn * kb && z.iter().all(|v| v.fract() == 0.0) => {
                z.iter().map(|&v| v as i32).collect()
            }
            _ => unsupported!(
                "MatMulNBits zero points must be packed uint8 or integral float32 of shape [N, k_blocks]"
            ),
        },
    };
    if zp.iter().any(|&z| z < 0 || z >= 1 << bits) {
        bail!("MatMulNBits zero points out of the {bits}-bit range");
    }
    let mut q = vec![0u8; kk * nn];
    for j in 0..nn {
        for k in 0..kk {
            let byte = w[(j * kb + k / bs) * blob + (k % bs) * bits / 8];
            q[k * nn + j] = if bits == 8 {
                byte
            } else {
                (byte >> (4 * (k % 2))) & 15
            };
        }
    }
    let tr = |v: &[f32]| -> Vec<f32> { (0..kb * nn).map(|i| v[(i % nn) * kb + i / nn]).collect() };
    let scales = tr(sc);
    let zps: Vec<u8> = (0..kb * nn)
        .map(|i| zp[(i % nn) * kb + i / nn] as u8)
        .collect();
    let int4 = bits == 4;
    let mut ex = Ex::new(g, n);
    let wq = ex.konst("b_q", &[kk, nn], TensorData::U8(q), int4);
    let ws = ex.konst("b_scale", &[kb, nn], TensorData::F32(scales), false);
    let wz = ex.konst("b_zero_point", &[kb, nn], TensorData::U8(zps), int4);
    let attrs = vec![("axis", Attr::Int(0)), ("block_size", Attr::Int(bs as i64))];
    let wf = dq(&mut ex, wq, ws, Some(wz), attrs);
    match n.input(5) {
        Some(bias) => {
            let y = ex.node("MatMul", &[Some(a), Some(wf)], vec![], None);
            ex.node("Add", &[Some(y), Some(bias)], vec![], Some(n.outputs[0]));
        }
        None => {
            ex.node("MatMul", &[Some(a), Some(wf)], vec![], Some(n.outputs[0]));
        }
    }
    Ok(ex.nodes)
}
