//! `kiln quantize`: dynamic quantization of a float model, written with prost.
//!
//! The output uses standard ONNX ops only and has the shape onnxruntime's `quantize_dynamic`
//! gives MatMul layers, so onnxruntime runs it and kiln fuses it:
//! ```text
//! x ─ DynamicQuantizeLinear ─ x_quantized, x_scale, x_zero_point      (one per activation tensor)
//! s = Mul(x_scale, W_scale)
//! y = Mul(Cast<float>(MatMulInteger(x_quantized, W_quantized, x_zero_point, W_zero_point)), s)
//! ```
//! Gemm with a constant weight (transA = 0, alpha = beta = 1) first becomes MatMul [+ Add C],
//! with a transposed copy of the weight when transB = 1. Conv layers with constant weights
//! (unless `--no-conv`) become (as quantize_dynamic makes them, per-tensor weights)
//! ```text
//! y = Add(Mul(Cast<float>(ConvInteger(x_quantized, W_quantized, x_zero_point, W_zero_point)), s),
//!         Reshape(B, [1, -1, 1, …]))
//! ```
//!
//! Weight parameters follow the same arithmetic as onnxruntime 1.32's `quantize_data`, so the
//! integers, scales and zero points come out identical (the tests check this against models
//! quantized by onnxruntime):
//! - the range is `[min(w, 0), max(w, 0)]`, made symmetric (`±max|w|`) for int8 weights;
//! - the integer range is int8 `[-127, 127]` (symmetric) or uint8 `[0, 255]`, and with
//!   `reduce_range` int8 `[-64, 64]` or uint8 `[0, 127]`;
//! - `scale = (rmax − rmin) / (qmax − qmin)` in f64, stored as f32 (1.0 if below f32's smallest
//!   normal, with zero point 0);
//! - zero point: the middle of the integer range when symmetric, else `round(qmin − rmin/scale)`
//!   (f64, ties to even);
//! - `q = clamp(round(w / scale_f32) + zp)` in f32, ties to even, clamped to the full type range.
use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};

use kiln_codegen::ir::TensorData;
use kiln_codegen::onnx::proto::{self, AttributeProto, NodeProto, TensorProto};
use prost::Message;

use crate::model::{CliError, CliResult, ModelFile, attr_f, attr_i, op};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightType {
    Int8,
    Uint8,
}

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub weight_type: WeightType,
    pub per_channel: bool,
    pub reduce_range: bool,
    pub include_gemm: bool,
    /// Quantize Conv (→ ConvInteger; the default, as onnxruntime's quantize_dynamic does). Conv
    /// weights are always per tensor: onnxruntime's ConvInteger rejects per-channel weight zero
    /// points, and its quantize_dynamic does the same.
    pub include_conv: bool,
    pub exclude: Vec<String>,
    pub progress: bool,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            weight_type: WeightType::Int8,
            per_channel: true,
            reduce_range: false,
            include_gemm: true,
            include_conv: true,
            exclude: Vec::new(),
            progress: false,
        }
    }
}

/// What `quantize` did, for the summary line and tests.
#[derive(Debug, Default)]
pub struct QuantizeReport {
    /// (node name, op type) of the quantized layers: MatMul, Gemm or Conv.
    pub quantized: Vec<(String, String)>,
    /// (node name, op type, reason) for the layers that could have been quantized but stay float.
    pub skipped: Vec<(String, String, String)>,
    pub activations: usize,
    pub float_weight_bytes: u64,
    pub quant_weight_bytes: u64,
    pub opset_raised: Option<(i64, i64)>,
}

/// Quantization parameters of one weight tensor (or one column of it).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// (qmin, qmax) used to choose the scale.
pub fn q_range(wt: WeightType, symmetric: bool, reduce_range: bool) -> (i32, i32) {
    match (wt, reduce_range, symmetric) {
        (WeightType::Int8, true, _) => (-64, 64),
        (WeightType::Uint8, true, _) => (0, 127),
        (WeightType::Int8, false, true) => (-127, 127),
        (WeightType::Int8, false, false) => (-128, 127),
        (WeightType::Uint8, false, _) => (0, 255),
    }
}

/// The scale and zero point for values `data` (see the module docs).
pub fn choose_params(data: &[f32], wt: WeightType, symmetric: bool, reduce_range: bool) -> QParams {
    let (mut rmin, mut rmax) = data.iter().fold((0f32, 0f32), |(lo, hi), &v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    });
    if symmetric {
        let a = rmin.abs().max(rmax.abs());
        rmin = -a;
        rmax = a;
    }
    let (qmin, qmax) = q_range(wt, symmetric, reduce_range);
    let scale = (rmax as f64 - rmin as f64) / (qmax - qmin) as f64;
    if scale < f32::MIN_POSITIVE as f64 {
        return QParams {
            scale: 1.0,
            zero_point: 0,
        };
    }
    let zero_point = if symmetric {
        ((qmin + qmax) as f64 / 2.0).round_ties_even() as i32
    } else {
        (qmin as f64 - rmin as f64 / scale).round_ties_even() as i32
    };
    QParams {
        scale: scale as f32,
        zero_point,
    }
}

/// Quantizes one value with `p`, clamped to the full range of the weight type.
pub fn quantize_value(v: f32, p: QParams, wt: WeightType) -> i32 {
    let (lo, hi) = match wt {
        WeightType::Int8 => (-128f32, 127f32),
        WeightType::Uint8 => (0f32, 255f32),
    };
    ((v / p.scale).round_ties_even() + p.zero_point as f32).clamp(lo, hi) as i32
}

/// Quantizes a row-major [K, N] weight: per tensor, or per column (axis 1) when `per_channel`.
/// Returns the integers (row-major) and one `QParams` per tensor or per column.
pub fn quantize_weight(
    w: &[f32],
    k: usize,
    n: usize,
    wt: WeightType,
    per_channel: bool,
    reduce_range: bool,
) -> (Vec<i32>, Vec<QParams>) {
    let symmetric = wt == WeightType::Int8;
    if !per_channel {
        let p = choose_params(w, wt, symmetric, reduce_range);
        return (
            w.iter().map(|&v| quantize_value(v, p, wt)).collect(),
            vec![p],
        );
    }
    let mut q = vec![0i32; k * n];
    let mut params = Vec::with_capacity(n);
    let mut col = vec![0f32; k];
    for j in 0..n {
        for i in 0..k {
            col[i] = w[i * n + j];
        }
        let p = choose_params(&col, wt, symmetric, reduce_range);
        for i in 0..k {
            q[i * n + j] = quantize_value(col[i], p, wt);
        }
        params.push(p);
    }
    (q, params)
}

fn float_tensor(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(1),
        float_data: vals.to_vec(),
        ..Default::default()
    }
}

fn int_tensor(name: &str, dims: &[i64], wt: WeightType, vals: &[i32]) -> TensorProto {
    TensorProto {
        name: Some(name.to_string()),
        dims: dims.to_vec(),
        data_type: Some(match wt {
            WeightType::Int8 => 3,
            WeightType::Uint8 => 2,
        }),
        raw_data: Some(vals.iter().map(|&v| v as u8).collect()),
        ..Default::default()
    }
}

fn node(name: &str, op_type: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.to_string()),
        op_type: Some(op_type.to_string()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.to_string()),
        r#type: Some(proto::attribute_proto::AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

/// Decoded float initializer: (dims, values).
fn float_init(
    inits: &HashMap<String, TensorProto>,
    name: &str,
    base: &kiln_codegen::onnx::DataDirs,
) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = inits.get(name)?;
    if t.data_type != Some(1) {
        return None;
    }
    let t = kiln_codegen::onnx::tensor_from_proto(t, base).ok()?;
    match t.data {
        TensorData::F32(v) => Some((t.shape, v)),
        _ => None,
    }
}

/// Quantizes `model` in place.
pub fn quantize_model(mf: &mut ModelFile, opts: &QuantizeOptions) -> CliResult<QuantizeReport> {
    let base = mf.data_dirs().clone();
    let opset_raised = raise_opset(mf);
    let graph = mf.proto.graph.as_mut().expect("checked in read");
    inline_external_data(graph, &base)?;
    let mut pass = Pass {
        opts,
        inits: graph
            .initializer
            .iter()
            .map(|t| (t.name.clone().unwrap_or_default(), t.clone()))
            .collect(),
        base,
        exclude: opts.exclude.iter().map(String::as_str).collect(),
        new_inits: Vec::new(),
        from_gemm: HashSet::new(),
        report: QuantizeReport {
            opset_raised,
            ..Default::default()
        },
        out: Vec::new(),
        act_done: HashSet::new(),
        w_done: HashSet::new(),
    };
    // 1. Gemm → MatMul [+ Add], the form quantize_dynamic quantizes.
    let nodes = pass.gemms_to_matmuls(std::mem::take(&mut graph.node));
    // 2. Which layers get quantized (their weight: a constant float initializer).
    let plan: Vec<_> = nodes.iter().map(|n| pass.weight_of(n)).collect();
    let total = plan.iter().filter(|p| p.is_some()).count();
    // 3. Rewrite.
    pass.out.reserve(nodes.len() + 5 * total);
    let mut progress = Progress::new(opts.progress && total >= 8, total);
    for (n, w) in nodes.into_iter().zip(plan) {
        match w {
            Some((dims, data)) => {
                pass.rewrite(n, &dims, &data);
                progress.tick();
            }
            None => pass.out.push(n),
        }
    }
    progress.finish();
    // 4. Initializers: drop float weights nobody reads any more, add the new ones.
    prune_initializers(graph, pass.out, pass.new_inits);
    Ok(pass.report)
}

/// DynamicQuantizeLinear needs opset 11: as onnxruntime does, raise older models to 11.
fn raise_opset(mf: &mut ModelFile) -> Option<(i64, i64)> {
    let opset = mf.opset("").unwrap_or(1);
    if opset >= 11 {
        return None;
    }
    for o in &mut mf.proto.opset_import {
        if matches!(o.domain.as_deref().unwrap_or(""), "" | "ai.onnx") {
            o.version = Some(11);
        }
    }
    if mf.opset("").is_none() {
        mf.proto.opset_import.push(proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(11),
        });
    }
    Some((opset, 11))
}

/// Inlines external data, so the written model stands alone wherever it is written.
fn inline_external_data(
    graph: &mut proto::GraphProto,
    base: &kiln_codegen::onnx::DataDirs,
) -> CliResult<()> {
    for t in &mut graph.initializer {
        if t.data_location == Some(proto::tensor_proto::DataLocation::External as i32) {
            let name = t.name.clone().unwrap_or_default();
            let dec = kiln_codegen::onnx::tensor_from_proto(t, base).map_err(|e| {
                CliError::new(format!(
                    "cannot read external data of `{name}`: {}",
                    crate::model::one_line_codegen_error(&e)
                ))
            })?;
            t.raw_data = Some(dec.data.to_le_bytes());
            t.external_data.clear();
            t.data_location = None;
            t.float_data.clear();
        }
    }
    Ok(())
}

/// The state of one quantization run.
struct Pass<'o> {
    opts: &'o QuantizeOptions,
    base: kiln_codegen::onnx::DataDirs,
    exclude: HashSet<&'o str>,
    inits: HashMap<String, TensorProto>,
    new_inits: Vec<TensorProto>,
    /// Names of the MatMuls made from Gemms (reported as Gemm).
    from_gemm: HashSet<String>,
    report: QuantizeReport,
    /// The rewritten nodes.
    out: Vec<NodeProto>,
    /// Activations already quantized and weights already written (shared by several layers).
    act_done: HashSet<String>,
    w_done: HashSet<String>,
}

impl Pass<'_> {
    fn is_default_op(n: &NodeProto, o: &str) -> bool {
        op(n) == o && crate::model::domain(n).is_empty()
    }

    fn skip(&mut self, name: String, op: &str, why: impl Into<String>) {
        self.report.skipped.push((name, op.into(), why.into()));
    }

    fn gemms_to_matmuls(&mut self, nodes: Vec<NodeProto>) -> Vec<NodeProto> {
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            let name = crate::model::node_name(&n);
            let convertible = self.opts.include_gemm
                && Self::is_default_op(&n, "Gemm")
                && !self.exclude.contains(name.as_str())
                && attr_i(&n, "transA").unwrap_or(0) == 0
                && attr_f(&n, "alpha").unwrap_or(1.0) == 1.0
                && (attr_f(&n, "beta").unwrap_or(1.0) == 1.0
                    || n.input.get(2).is_none_or(|c| c.is_empty()))
                && n.input.len() >= 2;
            let weight = if convertible {
                float_init(&self.inits, &n.input[1], &self.base).filter(|(d, _)| d.len() == 2)
            } else {
                None
            };
            match weight {
                Some((dims, w)) => self.gemm_to_matmul(n, &name, &dims, &w, &mut out),
                None => {
                    if Self::is_default_op(&n, "Gemm") && !self.exclude.contains(name.as_str()) {
                        self.skip(
                            name,
                            "Gemm",
                            "Gemm with transA, alpha ≠ 1, beta ≠ 1 or a non-constant weight \
                             stays float",
                        );
                    }
                    out.push(n);
                }
            }
        }
        out
    }

    /// `Gemm(x, W, C)` → `Add(MatMul(x, W'), C)`, W' a transposed copy when transB = 1.
    fn gemm_to_matmul(
        &mut self,
        n: NodeProto,
        name: &str,
        dims: &[usize],
        w: &[f32],
        out: &mut Vec<NodeProto>,
    ) {
        let y = n.output[0].clone();
        let mut b = n.input[1].clone();
        if attr_i(&n, "transB").unwrap_or(0) != 0 {
            let (rows, cols) = (dims[0], dims[1]); // [N, K]
            let tname = format!("{b}_Transposed");
            if !self.inits.contains_key(&tname) {
                let mut t = vec![0f32; rows * cols];
                for r in 0..rows {
                    for c in 0..cols {
                        t[c * rows + r] = w[r * cols + c];
                    }
                }
                let tp = TensorProto {
                    name: Some(tname.clone()),
                    dims: vec![cols as i64, rows as i64],
                    data_type: Some(1),
                    raw_data: Some(t.iter().flat_map(|v| v.to_le_bytes()).collect()),
                    ..Default::default()
                };
                self.inits.insert(tname.clone(), tp.clone());
                self.new_inits.push(tp);
            }
            b = tname;
        }
        let has_c = n.input.get(2).is_some_and(|c| !c.is_empty());
        let mm_out = if has_c {
            format!("{y}_MatMul")
        } else {
            y.clone()
        };
        self.from_gemm.insert(format!("{name}_MatMul"));
        out.push(node(
            &format!("{name}_MatMul"),
            "MatMul",
            &[&n.input[0], &b],
            &[&mm_out],
        ));
        if has_c {
            out.push(node(
                &format!("{name}_Add"),
                "Add",
                &[&mm_out, &n.input[2]],
                &[&y],
            ));
        }
    }

    /// The float weight of a layer to quantize, or `None` (with the reason reported when the
    /// node is a Conv or MatMul that stays float).
    fn weight_of(&mut self, n: &NodeProto) -> Option<(Vec<usize>, Vec<f32>)> {
        if Self::is_default_op(n, "Conv") {
            return self.conv_weight(n);
        }
        if Self::is_default_op(n, "MatMul") && n.input.len() == 2 {
            return self.matmul_weight(n);
        }
        None
    }

    fn conv_weight(&mut self, n: &NodeProto) -> Option<(Vec<usize>, Vec<f32>)> {
        let name = crate::model::node_name(n);
        if !self.opts.include_conv {
            self.skip(name, "Conv", "--no-conv");
            return None;
        }
        if self.exclude.contains(name.as_str()) {
            self.skip(name, "Conv", "excluded (--exclude)");
            return None;
        }
        let bias_ok = n
            .input
            .get(2)
            .is_none_or(|b| b.is_empty() || float_init(&self.inits, b, &self.base).is_some());
        match n
            .input
            .get(1)
            .and_then(|wn| float_init(&self.inits, wn, &self.base))
        {
            Some((d, v))
                if (3..=4).contains(&d.len()) && v.iter().all(|x| x.is_finite()) && bias_ok =>
            {
                Some((d, v))
            }
            _ => {
                self.skip(
                    name,
                    "Conv",
                    "Conv whose weight (and bias) are not float32 initializers of a 1-D/2-D \
                     convolution stays float",
                );
                None
            }
        }
    }

    fn matmul_weight(&mut self, n: &NodeProto) -> Option<(Vec<usize>, Vec<f32>)> {
        let name = crate::model::node_name(n);
        if self.exclude.contains(name.as_str()) {
            self.skip(name, "MatMul", "excluded (--exclude)");
            return None;
        }
        if self.inits.contains_key(&n.input[0]) {
            self.skip(name, "MatMul", "both inputs are constants");
            return None;
        }
        match float_init(&self.inits, &n.input[1], &self.base) {
            Some((d, v)) if d.len() == 2 && v.iter().all(|x| x.is_finite()) => return Some((d, v)),
            Some((d, _)) if d.len() != 2 => self.skip(
                name,
                "MatMul",
                format!("weight has rank {} (kiln quantizes 2-D weights)", d.len()),
            ),
            Some(_) => self.skip(name, "MatMul", "weight contains NaN or infinity"),
            None => self.skip(
                name,
                "MatMul",
                "second input is not a float32 initializer (activation × activation stays float)",
            ),
        }
        None
    }

    /// Replaces one layer by its dynamically quantized form.
    fn rewrite(&mut self, n: NodeProto, dims: &[usize], data: &[f32]) {
        let name = crate::model::node_name(&n);
        let (x, wname) = (n.input[0].clone(), n.input[1].clone());
        let is_conv = op(&n) == "Conv";
        if self.act_done.insert(x.clone()) {
            self.out.push(node(
                &format!("{x}_QuantizeLinear"),
                "DynamicQuantizeLinear",
                &[&x],
                &[
                    &format!("{x}_quantized"),
                    &format!("{x}_scale"),
                    &format!("{x}_zero_point"),
                ],
            ));
            self.report.activations += 1;
        }
        if self.w_done.insert(wname.clone()) {
            self.quantize_weights(&wname, dims, data, is_conv);
        }
        self.integer_layer(&n, &name, dims.len(), is_conv);
        let kind = if is_conv {
            "Conv"
        } else if self.from_gemm.contains(&name) {
            "Gemm"
        } else {
            "MatMul"
        };
        self.report.quantized.push((name, kind.to_string()));
    }

    /// Writes `{w}_quantized`, `{w}_scale` and `{w}_zero_point`.
    fn quantize_weights(&mut self, wname: &str, dims: &[usize], data: &[f32], is_conv: bool) {
        let opts = self.opts;
        // Conv weights are quantized per tensor (their layout is irrelevant then).
        let (k, ncols) = if is_conv {
            (data.len(), 1)
        } else {
            (dims[0], dims[1])
        };
        let per_channel = opts.per_channel && !is_conv;
        let (q, params) = quantize_weight(
            data,
            k,
            ncols,
            opts.weight_type,
            per_channel,
            opts.reduce_range,
        );
        let pdims: Vec<i64> = if per_channel {
            vec![ncols as i64]
        } else {
            vec![]
        };
        let scales: Vec<f32> = params.iter().map(|p| p.scale).collect();
        let zps: Vec<i32> = params.iter().map(|p| p.zero_point).collect();
        self.new_inits
            .push(float_tensor(&format!("{wname}_scale"), &pdims, &scales));
        let mut zt = int_tensor(
            &format!("{wname}_zero_point"),
            &pdims,
            opts.weight_type,
            &zps,
        );
        // Zero points as typed int32 values (as the ONNX helpers write them).
        zt.int32_data = zps.clone();
        zt.raw_data = None;
        self.new_inits.push(zt);
        let qdims: Vec<i64> = if is_conv {
            dims.iter().map(|&d| d as i64).collect()
        } else {
            vec![k as i64, ncols as i64]
        };
        self.new_inits.push(int_tensor(
            &format!("{wname}_quantized"),
            &qdims,
            opts.weight_type,
            &q,
        ));
        self.report.float_weight_bytes += (data.len() * 4) as u64;
        self.report.quant_weight_bytes += (q.len() + 5 * params.len()) as u64;
    }

    /// MatMulInteger/ConvInteger → Cast → Mul by the scales [→ Add the reshaped Conv bias].
    fn integer_layer(&mut self, n: &NodeProto, name: &str, rank: usize, is_conv: bool) {
        let (x, wname, y) = (&n.input[0], &n.input[1], &n.output[0]);
        let (xq, xs, xz) = (
            format!("{x}_quantized"),
            format!("{x}_scale"),
            format!("{x}_zero_point"),
        );
        let (wq, ws, wz) = (
            format!("{wname}_quantized"),
            format!("{wname}_scale"),
            format!("{wname}_zero_point"),
        );
        let qname = format!("{name}_quant");
        let smul = format!("{qname}_scales_mul");
        let smul_out = format!("{smul}:0");
        let acc = format!("{y}_output_quantized");
        let cast_out = format!("{acc}_cast_output");
        let bias = if is_conv {
            n.input.get(2).filter(|b| !b.is_empty()).cloned()
        } else {
            None
        };
        if let Some(b) = &bias {
            // The bias becomes [1, M, 1, …] so that it broadcasts over the channel axis.
            let shape_name = format!("{y}_bias_reshape_shape");
            let mut shape = vec![1i64, -1];
            shape.resize(rank, 1);
            self.new_inits.push(TensorProto {
                name: Some(shape_name.clone()),
                dims: vec![shape.len() as i64],
                data_type: Some(7),
                raw_data: Some(shape.iter().flat_map(|v| v.to_le_bytes()).collect()),
                ..Default::default()
            });
            self.out.push(node(
                "",
                "Reshape",
                &[b, &shape_name],
                &[&format!("{y}_bias_reshape_output")],
            ));
        }
        self.out.push(node(&smul, "Mul", &[&xs, &ws], &[&smul_out]));
        let int_op = if is_conv {
            "ConvInteger"
        } else {
            "MatMulInteger"
        };
        let mut qn = node(&qname, int_op, &[&xq, &wq, &xz, &wz], &[&acc]);
        if is_conv {
            // The convolution's geometry carries over unchanged.
            qn.attribute = n.attribute.clone();
        }
        self.out.push(qn);
        let mut cast = node(&format!("{acc}_cast"), "Cast", &[&acc], &[&cast_out]);
        cast.attribute.push(int_attr("to", 1));
        self.out.push(cast);
        let scaled = if bias.is_some() {
            format!("{y}quant_scaled_output")
        } else {
            y.clone()
        };
        self.out.push(node(
            &format!("{qname}_output_scale_mul"),
            "Mul",
            &[&cast_out, &smul_out],
            &[&scaled],
        ));
        if bias.is_some() {
            self.out.push(node(
                &format!("{y}_bias_add"),
                "Add",
                &[&scaled, &format!("{y}_bias_reshape_output")],
                &[y],
            ));
        }
    }
}

/// Keeps the initializers the new nodes read (dropping float weights nobody reads any more,
/// and their graph inputs) and adds the new ones that are read.
fn prune_initializers(
    graph: &mut proto::GraphProto,
    out_nodes: Vec<NodeProto>,
    new_inits: Vec<TensorProto>,
) {
    let mut used: HashSet<String> = HashSet::new();
    for n in &out_nodes {
        used.extend(n.input.iter().cloned());
        collect_subgraph_inputs(n, &mut used);
    }
    used.extend(graph.output.iter().filter_map(|o| o.name.clone()));
    let old_inits = std::mem::take(&mut graph.initializer);
    let mut dropped: HashSet<String> = HashSet::new();
    for t in old_inits {
        let name = t.name.clone().unwrap_or_default();
        if used.contains(&name) {
            graph.initializer.push(t);
        } else {
            dropped.insert(name);
        }
    }
    graph.initializer.extend(
        new_inits
            .into_iter()
            .filter(|t| used.contains(t.name.as_deref().unwrap_or(""))),
    );
    graph
        .input
        .retain(|vi| !dropped.contains(vi.name.as_deref().unwrap_or("")));
    graph.node = out_nodes;
}

/// Names read inside subgraphs (If/Loop bodies) count as uses too.
fn collect_subgraph_inputs(n: &NodeProto, used: &mut HashSet<String>) {
    for a in &n.attribute {
        for g in a.g.iter().chain(&a.graphs) {
            for sn in &g.node {
                used.extend(sn.input.iter().cloned());
                collect_subgraph_inputs(sn, used);
            }
        }
    }
}

/// Encodes the model, refusing what protobuf cannot hold.
pub fn encode(mf: &ModelFile) -> CliResult<Vec<u8>> {
    let len = mf.proto.encoded_len();
    if len > i32::MAX as usize {
        return Err(CliError::new(format!(
            "the quantized model would be {len} bytes, beyond protobuf's 2 GB limit"
        )));
    }
    Ok(mf.proto.encode_to_vec())
}

/// The summary `kiln quantize` prints: one line per op type quantized and one per (op type,
/// reason) left in float, with a few node names, so a large model's report stays short.
pub fn summary(report: &QuantizeReport) -> Vec<String> {
    use std::collections::BTreeMap;
    let mut done: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, kind) in &report.quantized {
        *done.entry(kind).or_default() += 1;
    }
    let mut lines = Vec::new();
    if !done.is_empty() {
        let per: Vec<String> = done.iter().map(|(k, n)| format!("{n} {k}")).collect();
        lines.push(format!("  int8: {}", per.join(", ")));
    }
    let mut kept: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (name, kind, why) in &report.skipped {
        kept.entry((kind, why)).or_default().push(name);
    }
    for ((kind, why), names) in kept {
        let mut shown = names.iter().take(3).copied().collect::<Vec<_>>().join(", ");
        if names.len() > 3 {
            shown.push_str(", …");
        }
        lines.push(format!(
            "  kept float: {} {kind} ({shown}): {why}",
            names.len()
        ));
    }
    lines
}

/// A one-line progress bar on stderr (only when stderr is a terminal).
struct Progress {
    on: bool,
    total: usize,
    done: usize,
}

impl Progress {
    fn new(want: bool, total: usize) -> Self {
        Progress {
            on: want && std::io::stderr().is_terminal(),
            total,
            done: 0,
        }
    }
    fn tick(&mut self) {
        self.done += 1;
        if self.on {
            let width = 30;
            let filled = width * self.done / self.total.max(1);
            let mut e = std::io::stderr();
            let _ = write!(
                e,
                "\r  quantizing [{}{}] {}/{}",
                "#".repeat(filled),
                "-".repeat(width - filled),
                self.done,
                self.total
            );
            let _ = e.flush();
        }
    }
    fn finish(&mut self) {
        if self.on && self.done > 0 {
            let _ = writeln!(std::io::stderr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_int8_maps_absmax_to_127() {
        let p = choose_params(&[-0.5, 1.27, 0.3], WeightType::Int8, true, false);
        assert_eq!(p.zero_point, 0);
        assert_eq!(p.scale, (2.54f64 / 254.0) as f32);
        assert_eq!(quantize_value(1.27, p, WeightType::Int8), 127);
    }

    #[test]
    fn reduce_range_uses_7_bits() {
        let p = choose_params(&[-1.0, 1.0], WeightType::Int8, true, true);
        assert_eq!(quantize_value(1.0, p, WeightType::Int8), 64);
        assert_eq!(quantize_value(-1.0, p, WeightType::Int8), -64);
        let p = choose_params(&[-1.0, 3.0], WeightType::Uint8, false, true);
        assert_eq!(quantize_value(3.0, p, WeightType::Uint8), 127);
        assert_eq!(quantize_value(-1.0, p, WeightType::Uint8), 0);
    }

    #[test]
    fn all_zero_weights_get_scale_one() {
        let p = choose_params(&[0.0; 4], WeightType::Uint8, false, false);
        assert_eq!(
            p,
            QParams {
                scale: 1.0,
                zero_point: 0
            }
        );
    }

    #[test]
    fn per_channel_is_per_column() {
        // Column 0 spans ±1, column 1 spans ±100: separate scales.
        let w = [1.0, 100.0, -1.0, -100.0];
        let (q, p) = quantize_weight(&w, 2, 2, WeightType::Int8, true, false);
        assert_eq!(p.len(), 2);
        assert_eq!(q, vec![127, 127, -127, -127]);
    }
}
