//! onnxruntime's quantized contrib ops (`com.microsoft`), as its quantization tools and graph
//! optimizer write them. Each is compiled as the standard ops that define it (an
//! [`ExpandFn`](super::registry::ExpandFn), run by inference), so the existing fusions claim
//! them: `DynamicQuantizeMatMul` and `MatMulIntegerToFloat` become the
//! `DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scales) [→ Add bias]` chain that
//! `passes::fuse_quant` turns into `QuantizeDyn` + an int8 `QGemm`. See docs/contrib.md.
use super::OpDef;
use super::registry::contrib_expand;
use crate::error::{Result, bail, unsupported};
use crate::ir::{Attr, DType, Graph, Node, numel};

const DQ_MATMUL: &str = "f32 A quantized at run time to uint8 (DynamicQuantizeLinear's rule) × constant int8/uint8 B (2-D, scale/zero point per tensor or per column): the int8 GEMM with scales and bias in its epilogue; otherwise MatMulInteger + float scaling";
const MM_INT_TO_FLOAT: &str = "u8/i8 × u8/i8 with per-tensor A scale/zero point, B's per tensor or per column, optional bias; after a DynamicQuantizeLinear and with a constant 2-D B: the int8 GEMM (`QGemm`); otherwise MatMulInteger + float scaling";

/// The contrib ops of this family (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    contrib_expand("DynamicQuantizeMatMul", DQ_MATMUL, expand_dq_matmul),
    contrib_expand(
        "MatMulIntegerToFloat",
        MM_INT_TO_FLOAT,
        expand_mm_int_to_float,
    ),
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
