//! What kiln's compiler made of the model: fusions, the kernel per layer, the workspace.
//! Everything here is read off the compiled graph (`kiln_codegen::compile_file`), so the report
//! cannot drift from what the generated code does.
use super::*;
use kiln_codegen::ir::{ConvAlgo, Dim, Graph, Node, QConvKind};
use kiln_codegen::ops::conv::ConvSpec;

/// How often each fusion fired.
#[derive(Default)]
struct Counts {
    qdyn: usize,
    qgemm: usize,
    sgemm: usize,
    gelu: usize,
    gelu_epilogue: usize,
    ln: usize,
    act_fused: usize,
    attention: usize,
    qconv: usize,
    sconv: usize,
    qlinear: usize,
    qlinear_conv: usize,
    dq_mm: usize,
    qdq_map: usize,
}

pub(super) fn kiln_plan(mf: &ModelFile, isa: Isa) -> KilnPlan {
    let compiled = match kiln_codegen::compile_file(&mf.path, &mf.codegen_options()) {
        Ok(c) => c,
        Err(e) => return KilnPlan::Error(crate::model::one_line_codegen_error(&e)),
    };
    let g = &compiled.graph;
    let mut layers = Vec::new();
    let mut other_ops: BTreeMap<String, usize> = BTreeMap::new();
    let mut c = Counts::default();
    for n in &g.nodes {
        if let Some(l) = describe(g, n, isa, &mut c, &mut other_ops) {
            layers.push(l);
        }
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
        fusions: fusions(&c),
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

/// One compiled node: counts its fusion, and returns its layer row if it is a GEMM or conv.
fn describe(
    g: &Graph,
    n: &Node,
    isa: Isa,
    c: &mut Counts,
    other_ops: &mut BTreeMap<String, usize>,
) -> Option<KLayer> {
    let fused_act = |c: &mut Counts, act: Activation| {
        if act != Activation::None {
            c.act_fused += 1;
        }
    };
    match &n.kiln {
        Some(KilnOp::QuantizeDyn { .. }) => c.qdyn += 1,
        Some(KilnOp::QGemm { m, weights, act }) => {
            c.qgemm += 1;
            fused_act(c, *act);
            if *act == Activation::Gelu {
                c.gelu_epilogue += 1;
            }
            let mut ep: Vec<String> = vec!["zero points".into(), "scales".into()];
            if weights.bias.is_some() {
                ep.push("bias".into());
            }
            ep.extend(Some(act_name(*act)).filter(|a| !a.is_empty()));
            return Some(KLayer {
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
            c.sgemm += 1;
            if *relu {
                c.act_fused += 1;
            }
            let ep: Vec<&str> = [(weights.bias.is_some(), "bias"), (*relu, "ReLU")]
                .into_iter()
                .filter_map(|(on, s)| on.then_some(s))
                .collect();
            return Some(KLayer {
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
            c.qconv += 1;
            fused_act(c, *act);
            return Some(qconv_layer(g, n, isa, spec, *act, kind, layout));
        }
        Some(KilnOp::Conv { spec, act, algo }) => {
            c.sconv += 1;
            fused_act(c, *act);
            return Some(conv_layer(g, n, isa, spec, *act, algo));
        }
        Some(KilnOp::ConvTranspose { spec }) => {
            let rows = ConvSpec {
                oh: spec.h.clone(),
                ow: spec.w.clone(),
                ..spec.clone()
            };
            return Some(KLayer {
                node: n.name.clone(),
                kind: format!("ConvTranspose {}×{} f32", spec.kernel[0], spec.kernel[1]),
                m: conv_rows(g, &rows),
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
            c.qlinear += 1;
            let rows = g.show(&batches.mul(m));
            let (k, nn) = (k.as_usize().unwrap_or(0), nn.as_usize().unwrap_or(0));
            return Some(qmatmul_layer(n, isa, rows, k, nn, packed.as_deref()));
        }
        Some(KilnOp::QLinearConv {
            spec,
            packed,
            depthwise,
        }) => {
            c.qlinear_conv += 1;
            return Some(qlinear_conv_layer(
                g,
                n,
                isa,
                spec,
                packed,
                depthwise.is_some(),
            ));
        }
        Some(KilnOp::DqMatMul { m, w }) => {
            c.dq_mm += 1;
            return Some(KLayer {
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
        Some(KilnOp::QdqMap { .. }) => c.qdq_map += 1,
        Some(KilnOp::Elementwise { steps }) => {
            *other_ops
                .entry(format!("Elementwise (fused, {} ops)", steps.len()))
                .or_insert(0) += 1;
        }
        Some(KilnOp::Attention { .. }) => c.attention += 1,
        Some(KilnOp::Recurrent(o)) => return Some(recurrent_layer(g, n, isa, o)),
        Some(KilnOp::ConvInteger { .. }) => {
            *other_ops
                .entry("ConvInteger (unfused, direct)".into())
                .or_insert(0) += 1;
        }
        None => return unfused(n, c, other_ops),
    }
    None
}

/// An LSTM/GRU/RNN: its row is the input projection (one GEMM per direction over every
/// timestep); the per-step `h·Rᵀ` products are in the epilogue's words.
fn recurrent_layer(g: &Graph, n: &Node, isa: Isa, o: &kiln_codegen::ops::RecurrentOp) -> KLayer {
    let packed = if o.packed.is_some() {
        "prepacked"
    } else {
        "packed at run time"
    };
    KLayer {
        node: n.name.clone(),
        kind: format!(
            "{} (f32, {} direction(s), weights {packed})",
            n.op,
            o.dirs()
        ),
        m: g.show(&o.seq.mul(&o.batch)),
        k: o.input,
        n: o.gates() * o.hidden,
        epilogue: format!("per step h·Rᵀ (K = {}) + gates", o.hidden),
        avx2_safe: None,
        kernel: format!("f32 GEMM ({})", isa.name()),
    }
}

/// A QLinearMatMul (or a static-QDQ MatMul).
fn qmatmul_layer(
    n: &Node,
    isa: Isa,
    m: String,
    k: usize,
    nn: usize,
    packed: Option<&kiln_runtime::pack::PackedI8Owned>,
) -> KLayer {
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
    KLayer {
        node: n.name.clone(),
        kind: kind.into(),
        m,
        k,
        n: nn,
        epilogue: "zero points + requantize (round half even, saturate)".into(),
        avx2_safe: safe,
        kernel,
    }
}

/// A dynamically quantized convolution.
fn qconv_layer(
    g: &Graph,
    n: &Node,
    isa: Isa,
    spec: &ConvSpec,
    act: Activation,
    kind: &QConvKind,
    layout: &kiln_codegen::ir::QConvLayout,
) -> KLayer {
    let mut ep: Vec<String> = vec!["zero points".into(), "scales".into()];
    let (kind_s, kernel, bias, safe) = match kind {
        QConvKind::Gemm { groups, direct } => {
            let safe = groups.iter().all(|w| w.avx2_safe);
            (
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
                qgemm_kernel(isa, safe),
                groups[0].bias.is_some(),
                Some(safe),
            )
        }
        QConvKind::Depthwise { bias, .. } => (
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
    ep.extend(Some(act_name(act)).filter(|a| !a.is_empty()));
    // Activation storage order in → out (passes::layout).
    let order = |nhwc: bool| if nhwc { "NHWC" } else { "NCHW" };
    KLayer {
        node: n.name.clone(),
        kind: format!(
            "{kind_s}, {}→{}",
            order(layout.x_nhwc),
            order(layout.y_nhwc)
        ),
        m: conv_rows(g, spec),
        k: spec.k(),
        n: spec.c_out,
        epilogue: ep.join(" + "),
        avx2_safe: safe,
        kernel,
    }
}

/// A float convolution.
fn conv_layer(
    g: &Graph,
    n: &Node,
    isa: Isa,
    spec: &ConvSpec,
    act: Activation,
    algo: &ConvAlgo,
) -> KLayer {
    let an = act_name(act);
    KLayer {
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
            ConvAlgo::Gemm => format!("f32 GEMM W·im2col ({})", isa.name()),
            ConvAlgo::Depthwise => "depthwise direct (f32)".into(),
            ConvAlgo::Reference => "direct loops (weights known only at run time)".into(),
        },
    }
}

/// A QLinearConv (or a static-QDQ convolution).
fn qlinear_conv_layer(
    g: &Graph,
    n: &Node,
    isa: Isa,
    spec: &ConvSpec,
    packed: &Option<(Vec<kiln_runtime::pack::PackedI8Owned>, bool)>,
    depthwise: bool,
) -> KLayer {
    let (kind, kernel, safe) = match packed {
        Some((groups, direct)) => {
            let safe = groups.iter().all(|w| w.avx2_safe);
            (
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
                qgemm_kernel(isa, safe),
                Some(safe),
            )
        }
        None if depthwise => (
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
    KLayer {
        node: n.name.clone(),
        kind,
        m: conv_rows(g, spec),
        k: spec.k(),
        n: spec.c_out,
        epilogue: "zero points + bias + requantize".into(),
        avx2_safe: safe,
        kernel,
    }
}

/// A node the passes left as an ONNX op: counted by op type (kiln's own GELU and the
/// LayerNorms it recomposed count as fusions); an unfused MatMulInteger gets a layer row.
fn unfused(n: &Node, c: &mut Counts, other_ops: &mut BTreeMap<String, usize>) -> Option<KLayer> {
    if n.domain == "kiln" && n.op == "Gelu" {
        c.gelu += 1;
    }
    if n.op == "LayerNormalization" && n.name.ends_with(":layernorm") {
        c.ln += 1;
    }
    let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
        n.op.clone()
    } else {
        format!("{}:{}", n.domain, n.op)
    };
    *other_ops.entry(key).or_insert(0) += 1;
    (n.op == "MatMulInteger").then(|| KLayer {
        node: n.name.clone(),
        kind: "MatMulInteger (unfused)".into(),
        m: "-".into(),
        k: 0,
        n: 0,
        epilogue: "-".into(),
        avx2_safe: None,
        kernel: "generic integer matmul (pattern not fusable, e.g. K > 33025)".into(),
    })
}

/// The fusion lines of the report, in a fixed order, for the fusions that fired.
fn fusions(c: &Counts) -> Vec<(String, usize)> {
    let rows: [(&str, usize); 14] = [
        (
            "DynamicQuantizeLinear → MatMulInteger → Cast → Mul [→ Add] [→ act] ⇒ QuantizeDyn + QGemm",
            c.qgemm,
        ),
        (
            "QuantizeDyn passes (one per quantized tensor, shared by its matmuls)",
            if c.qgemm > 0 { c.qdyn } else { 0 },
        ),
        (
            "DynamicQuantizeLinear → ConvInteger → Cast → Mul [→ Add] [→ BatchNorm] [→ act] ⇒ QConv",
            c.qconv,
        ),
        (
            "QLinearMatMul, or DequantizeLinear → MatMul → QuantizeLinear (static QDQ) ⇒ int8 GEMM + requantize",
            c.qlinear,
        ),
        (
            "QLinearConv, or DequantizeLinear → Conv → QuantizeLinear (static QDQ) ⇒ integer conv + requantize",
            c.qlinear_conv,
        ),
        (
            "DequantizeLinear → [Add/Sub/Mul const, BatchNorm, Relu, Clip, Sigmoid, HardSwish…]… → QuantizeLinear ⇒ one 8-bit → 8-bit pass",
            c.qdq_map,
        ),
        (
            "MatMul on DequantizeLinear'd (or Cast → Mul) constant weights [+ bias] ⇒ DqMatMul (weight-only)",
            c.dq_mm,
        ),
        (
            "float Conv [+ BatchNorm folded into the weights] [+ Relu/Clip] ⇒ compiled Conv",
            c.sconv,
        ),
        (
            "float MatMul/Gemm [+ bias] [+ ReLU] ⇒ prepacked SGemm",
            c.sgemm,
        ),
        (
            "decomposed GELU (Div, Erf, Add, Mul, Mul) ⇒ one pass",
            c.gelu + c.gelu_epilogue,
        ),
        ("GELU moved into a QGemm epilogue", c.gelu_epilogue),
        (
            "attention (head transposes, Q·Kᵀ, scale, mask, Softmax, ·V) ⇒ one fused op",
            c.attention,
        ),
        ("decomposed LayerNorm (9 ops) ⇒ LayerNormalization", c.ln),
        ("activations applied in a GEMM epilogue", c.act_fused),
    ];
    rows.into_iter()
        .filter(|&(_, n)| n > 0)
        .map(|(s, n)| (s.to_string(), n))
        .collect()
}

/// GEMM rows of a convolution as `batch·height·width`, each factor kept whole (a product of
/// floor expressions multiplied out is unreadable).
fn conv_rows(g: &Graph, spec: &ConvSpec) -> String {
    let f = |d: &Dim| {
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
