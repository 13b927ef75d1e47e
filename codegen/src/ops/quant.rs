//! Quantization ops: DynamicQuantizeLinear (standalone; the fused form is
//! `KilnOp::QuantizeDyn`), QuantizeLinear and DequantizeLinear (per tensor, per axis, blocked;
//! folded for constants, which keeps the integers as the value's `DqOrigin`), QLinearMatMul and
//! QLinearConv (lowered to `KilnOp::QMatMul` / `KilnOp::QLinearConv` by `passes::fuse_qdq`).
use super::{OpDef, OutInfo, axis, op, req};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{DType, Dim, DqOrigin, Graph, Node, TensorData, numel};

const DYNAMIC_QUANTIZE_LINEAR_NOTES: &str = "fused with the matmuls it feeds; standalone too. onnxruntime semantics: all-zero input gives scale 1, NaN is skipped (see docs/numerics.md)";
const DEQUANTIZE_LINEAR_NOTES: &str = "u8/i8/u16/i16/i32 (and int4/uint4 constants) → f32; per tensor, per axis, blocked (opset 21); constant inputs are folded and keep their integers for the weight-only kernels; float8/float4/int2 are a compile error";
const QUANTIZE_LINEAR_NOTES: &str = "f32 → u8/i8/u16/i16 (zero point type or `output_dtype`), round half to even, saturate; per tensor, per axis, blocked; scales and zero points constant or computed at run time; int4/float8/int2 outputs are a compile error";
const Q_LINEAR_MAT_MUL_NOTES: &str = "u8/i8 × u8/i8 → u8/i8, weight per tensor or per column; constant 2-D B: packed int8 GEMM + requantizing epilogue; otherwise direct integer loops (B 2-D or with A's batch dims)";
const Q_LINEAR_CONV_NOTES: &str = "u8/i8, 1-D and 2-D with every Conv attribute, weight per tensor or per channel, int32 bias; constant weights: NHWC + im2col + int8 GEMM per group + requantize; depthwise or run-time weights: direct integer loops";

/// The quantization ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "DynamicQuantizeLinear",
        DYNAMIC_QUANTIZE_LINEAR_NOTES,
        |cx, n| infer_dql(cx.g, n),
        crate::emit::quant::dynamic_quantize,
    ),
    op(
        "DequantizeLinear",
        DEQUANTIZE_LINEAR_NOTES,
        |cx, n| infer_dequantize(cx.g, n),
        crate::emit::quant::qdq,
    ),
    op(
        "QuantizeLinear",
        QUANTIZE_LINEAR_NOTES,
        |cx, n| infer_quantize(cx.g, n),
        crate::emit::quant::qdq,
    ),
    op(
        "QLinearMatMul",
        Q_LINEAR_MAT_MUL_NOTES,
        |cx, n| infer_qlinear_matmul(cx.g, n),
        crate::emit::nodes::lowered,
    ),
    op(
        "QLinearConv",
        Q_LINEAR_CONV_NOTES,
        |cx, n| infer_qlinear_conv(cx.g, n),
        crate::emit::nodes::lowered,
    ),
];

pub fn infer_dql(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.dtype != DType::F32 {
        bail!(
            "DynamicQuantizeLinear input must be float32, found {:?}",
            x.dtype
        );
    }
    Ok(vec![
        OutInfo::new(DType::U8, x.shape.clone()),
        OutInfo::new(DType::F32, vec![]),
        OutInfo::new(DType::U8, vec![]),
    ])
}

/// Where a Q/DQ node's parameters apply: `outer × len × inner` around the axis.
#[derive(Clone, Debug)]
pub struct QLayout {
    pub outer: Dim,
    pub len: Dim,
    pub inner: Dim,
    /// 0 unless blocked.
    pub block: usize,
    /// `None`: per tensor.
    pub axis: Option<usize>,
}

fn tensor_err(what: &str, name: &str, msg: String) -> Error {
    Error::invalid(format!("{what} `{name}`: {msg}")).with_hint(
        "the quantization parameters are malformed; re-quantize the model (e.g. with \
         onnxruntime.quantization) or fix the exporter",
    )
}

/// Checks constant scales: every one positive and finite.
pub fn check_scales(g: &Graph, v: usize) -> Result<()> {
    if let Some(k) = &g.values[v].konst {
        let name = &g.values[v].name;
        if !matches!(k, TensorData::F32(_)) {
            unsupported!(
                "scale `{name}` is {:?}; kiln supports float32 scales",
                k.dtype()
            );
        }
        for (i, s) in k.as_f32().iter().enumerate() {
            if !(s.is_finite() && *s > 0.0) {
                return Err(tensor_err(
                    "scale",
                    name,
                    format!("element {i} is {s}; scales must be positive and finite"),
                ));
            }
        }
    } else if g.values[v].dtype != DType::F32 {
        unsupported!(
            "scale `{}` is {:?}; kiln supports float32 scales",
            g.values[v].name,
            g.values[v].dtype
        );
    }
    Ok(())
}

/// The parameter layout of QuantizeLinear/DequantizeLinear node `n` for input `x` and scale
/// `s` (per tensor: one element and no block size; per axis: a 1-D scale as long as the axis;
/// blocked: the input's shape with the axis dim `ceil(len / block_size)`), and the zero point's
/// shape checked against the scale's.
pub fn q_layout(g: &Graph, n: &Node, x: usize, s: usize, zp: Option<usize>) -> Result<QLayout> {
    let xs = &g.values[x].shape;
    let ss = &g.values[s].shape;
    let sname = &g.values[s].name;
    let block = n.attr_i("block_size")?.unwrap_or(0);
    if block < 0 {
        bail!("block_size is {block}; it must be positive (or 0 for per-axis)");
    }
    let block = block as usize;
    if let Some(z) = zp
        && g.values[z].shape != *ss
        && !(numel(&g.values[z].shape) == 1 && numel(ss) == 1)
    {
        return Err(tensor_err(
            "zero point",
            &g.values[z].name,
            format!(
                "shape {} differs from the scale's {}",
                g.show_shape(&g.values[z].shape),
                g.show_shape(ss)
            ),
        ));
    }
    let one = Dim::constant(1);
    if block == 0 && numel(ss) == one {
        return Ok(QLayout {
            outer: one.clone(),
            len: numel(xs),
            inner: one,
            block: 0,
            axis: None,
        });
    }
    let a = axis(n.attr_i("axis")?.unwrap_or(1), xs.len().max(1))?;
    if xs.is_empty() {
        return Err(tensor_err(
            "scale",
            sname,
            "a per-axis scale needs an input of rank ≥ 1".into(),
        ));
    }
    let layout = QLayout {
        outer: numel(&xs[..a]),
        len: xs[a].clone(),
        inner: numel(&xs[a + 1..]),
        block,
        axis: Some(a),
    };
    if block == 0 {
        if ss.len() != 1 || ss[0] != xs[a] {
            return Err(tensor_err(
                "scale",
                sname,
                format!(
                    "shape {} does not match axis {a} of the input {} (per-axis scales are 1-D, one per index of the axis)",
                    g.show_shape(ss),
                    g.show_shape(xs)
                ),
            ));
        }
    } else {
        let Some(len) = xs[a].as_usize() else {
            unsupported!("blocked quantization along a symbolic axis is not supported");
        };
        let ok = ss.len() == xs.len()
            && ss.iter().zip(xs).enumerate().all(|(i, (sd, xd))| {
                if i == a {
                    *sd == len.div_ceil(block)
                } else {
                    sd == xd
                }
            });
        if !ok {
            return Err(tensor_err(
                "scale",
                sname,
                format!(
                    "shape {} does not match the input {} with block_size {block} on axis {a} (expected the input's shape with dim {a} = {})",
                    g.show_shape(ss),
                    g.show_shape(xs),
                    len.div_ceil(block)
                ),
            ));
        }
    }
    Ok(layout)
}

fn layout_static(l: &QLayout) -> Option<kiln_runtime::qlinear::QAxis> {
    Some(kiln_runtime::qlinear::QAxis {
        outer: l.outer.as_usize()?,
        len: l.len.as_usize()?,
        inner: l.inner.as_usize()?,
        block: l.block,
    })
}

/// The output type of QuantizeLinear: the zero point's, else `output_dtype`, else uint8.
fn q_out_type(g: &Graph, n: &Node) -> Result<DType> {
    let attr = n.attr_i("output_dtype")?.unwrap_or(0);
    let from_attr = if attr == 0 {
        None
    } else {
        match DType::from_onnx(attr as i32) {
            Some(d @ (DType::U8 | DType::I8 | DType::U16 | DType::I16)) => Some(d),
            _ => unsupported!(
                "QuantizeLinear to {} is not supported",
                DType::onnx_name(attr as i32)
            ),
        }
    };
    let t = match n.input(2) {
        Some(z) => {
            let zv = &g.values[z];
            if zv.int4 {
                unsupported!("QuantizeLinear to int4/uint4 at run time is not supported");
            }
            if from_attr.is_some_and(|d| d != zv.dtype) {
                bail!(
                    "output_dtype {:?} differs from the zero point's type {:?}",
                    from_attr.unwrap(),
                    zv.dtype
                );
            }
            zv.dtype
        }
        None => from_attr.unwrap_or(DType::U8),
    };
    if !matches!(t, DType::U8 | DType::I8 | DType::U16 | DType::I16) {
        unsupported!("QuantizeLinear to {t:?} is not supported (uint8, int8, uint16, int16)");
    }
    Ok(t)
}

pub fn infer_quantize(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, s) = (req(n, 0)?, req(n, 1)?);
    let xv = &g.values[x];
    if xv.dtype != DType::F32 {
        unsupported!(
            "QuantizeLinear of {:?} is not supported (float32)",
            xv.dtype
        );
    }
    check_scales(g, s)?;
    let t = q_out_type(g, n)?;
    let l = q_layout(g, n, x, s, n.input(2))?;
    if n.inputs
        .iter()
        .flatten()
        .all(|&v| g.values[v].konst.is_some())
        && let (Some(xs), Some(ax)) = (xv.static_shape(), layout_static(&l))
    {
        let xd = xv.konst.as_ref().unwrap().as_f32();
        let sd = g.values[s].konst.as_ref().unwrap().as_f32();
        let zp: Option<Vec<i64>> = match n.input(2) {
            Some(z) => Some(g.values[z].konst.as_ref().unwrap().as_i64()?),
            None => None,
        };
        use kiln_runtime::qlinear::quantize_linear as q;
        macro_rules! fold {
            ($t:ty, $v:ident) => {{
                let z: Option<Vec<$t>> = zp.map(|z| z.iter().map(|&v| v as $t).collect());
                let mut y = vec![<$t>::default(); xd.len()];
                q(&xd, ax, &sd, z.as_deref(), &mut y);
                TensorData::$v(y)
            }};
        }
        let data = match t {
            DType::U8 => fold!(u8, U8),
            DType::I8 => fold!(i8, I8),
            DType::U16 => fold!(u16, U16),
            _ => fold!(i16, I16),
        };
        return Ok(vec![OutInfo::konst(xs, data)]);
    }
    Ok(vec![OutInfo::new(t, xv.shape.clone())])
}

pub fn infer_dequantize(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, s) = (req(n, 0)?, req(n, 1)?);
    let xv = &g.values[x];
    if !matches!(
        xv.dtype,
        DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32
    ) {
        unsupported!(
            "DequantizeLinear of {:?} is not supported (int4, uint4, int8, uint8, int16, uint16, int32)",
            xv.dtype
        );
    }
    check_scales(g, s)?;
    if let Some(z) = n.input(2)
        && (g.values[z].dtype != xv.dtype || g.values[z].int4 != xv.int4)
    {
        return Err(tensor_err(
            "zero point",
            &g.values[z].name.clone(),
            format!(
                "type {:?} differs from the input's {:?}",
                g.values[z].dtype, xv.dtype
            ),
        ));
    }
    let l = q_layout(g, n, x, s, n.input(2))?;
    if let Some(o) = n.attr_i("output_dtype")?
        && o != 0
        && o != 1
    {
        unsupported!(
            "DequantizeLinear to {} is not supported (float32)",
            DType::onnx_name(o as i32)
        );
    }
    if n.inputs
        .iter()
        .flatten()
        .all(|&v| g.values[v].konst.is_some())
        && let (Some(xs), Some(ax)) = (xv.static_shape(), layout_static(&l))
    {
        let q = xv.konst.clone().unwrap();
        let sd = g.values[s].konst.as_ref().unwrap().as_f32();
        let zp: Vec<i32> = match n.input(2) {
            Some(z) => g.values[z]
                .konst
                .as_ref()
                .unwrap()
                .as_i64()?
                .into_iter()
                .map(|v| v as i32)
                .collect(),
            None => vec![0; sd.len()],
        };
        let qi: Vec<i32> = q.as_i64()?.into_iter().map(|v| v as i32).collect();
        let mut y = vec![0f32; qi.len()];
        kiln_runtime::qlinear::dequantize_linear(&qi, ax, &sd, Some(&zp), &mut y);
        let mut info = OutInfo::konst(xs, TensorData::F32(y));
        info.dq = Some(Box::new(DqOrigin {
            q,
            int4: xv.int4,
            scale: sd,
            zero_point: zp,
            axis: l.axis,
            block: l.block,
        }));
        return Ok(vec![info]);
    }
    // A constant int4 input (widened to one byte per value) with run-time parameters runs like
    // int8; int4 tensors computed at run time cannot occur (no op produces them).
    Ok(vec![OutInfo::new(DType::F32, xv.shape.clone())])
}

/// Checks a per-tensor parameter (one element) of a QLinear op.
fn per_tensor(g: &Graph, n: &Node, i: usize, what: &str) -> Result<usize> {
    let v = req(n, i)?;
    if numel(&g.values[v].shape) != 1 {
        unsupported!(
            "{what} `{}` of shape {} is not per tensor; {} needs one value",
            g.values[v].name,
            g.show_shape(&g.values[v].shape),
            n.op
        );
    }
    Ok(v)
}

fn q8(g: &Graph, v: usize, what: &str) -> Result<DType> {
    let t = g.values[v].dtype;
    if !matches!(t, DType::U8 | DType::I8) || g.values[v].int4 {
        unsupported!(
            "{what} `{}` is {:?}; QLinearMatMul/QLinearConv take uint8 or int8",
            g.values[v].name,
            t
        );
    }
    Ok(t)
}

/// Common checks of QLinearMatMul / QLinearConv inputs
/// `[x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp]`; returns the output type and the
/// number of weight scales.
fn qlinear_common(g: &Graph, n: &Node) -> Result<DType> {
    let (x, w) = (req(n, 0)?, req(n, 3)?);
    let xt = q8(g, x, "input")?;
    let wt = q8(g, w, "weight")?;
    for (i, what) in [(1, "scale"), (6, "scale")] {
        let v = per_tensor(g, n, i, what)?;
        check_scales(g, v)?;
    }
    check_scales(g, req(n, 4)?)?;
    let xz = per_tensor(g, n, 2, "zero point")?;
    if g.values[xz].dtype != xt {
        bail!("the input zero point's type differs from the input's ({xt:?})");
    }
    if let Some(wz) = n.input(5) {
        if g.values[wz].dtype != wt {
            bail!("the weight zero point's type differs from the weight's ({wt:?})");
        }
        if g.values[wz].shape != g.values[req(n, 4)?].shape
            && numel(&g.values[wz].shape) != numel(&g.values[req(n, 4)?].shape)
        {
            bail!("the weight scale and zero point have different shapes");
        }
    }
    let yz = per_tensor(g, n, 7, "zero point")?;
    q8(g, yz, "output zero point")
}

/// QLinearMatMul: `[.., m, k] × [k, n]` or batched `[b.., m, k] × [b.., k, n]` (same batch
/// dims); the weight scale/zero point per tensor or per output column.
pub fn infer_qlinear_matmul(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let yt = qlinear_common(g, n)?;
    let (a, b) = (&g.values[req(n, 0)?], &g.values[req(n, 3)?]);
    let dims = qmatmul_dims(g, &a.shape, &b.shape)?;
    let ns = numel(&g.values[req(n, 4)?].shape);
    if ns != 1 && ns != dims.n {
        bail!(
            "QLinearMatMul has {} weight scales for {} output columns",
            g.show(&ns),
            g.show(&dims.n)
        );
    }
    let mut shape = a.shape[..a.shape.len() - 1].to_vec();
    shape.push(dims.n.clone());
    Ok(vec![OutInfo::new(yt, shape)])
}

/// Dims of a (batched) integer matmul: `batches` of `m × k` by `w_batches` (1 or `batches`) of
/// `k × n`.
pub struct QMatMulDims {
    pub batches: Dim,
    pub w_batches: Dim,
    pub m: Dim,
    pub k: Dim,
    pub n: Dim,
}

pub fn qmatmul_dims(g: &Graph, a: &[Dim], b: &[Dim]) -> Result<QMatMulDims> {
    if a.len() < 2 || b.len() < 2 {
        unsupported!(
            "QLinearMatMul needs inputs of rank ≥ 2, found {} and {}",
            g.show_shape(a),
            g.show_shape(b)
        );
    }
    let (ra, rb) = (a.len(), b.len());
    if a[ra - 1] != b[rb - 2] {
        bail!(
            "QLinearMatMul inner dims differ: {} x {}",
            g.show_shape(a),
            g.show_shape(b)
        );
    }
    let w_batches = numel(&b[..rb - 2]);
    if rb > 2 && (ra != rb || a[..ra - 2] != b[..rb - 2]) {
        unsupported!(
            "QLinearMatMul with broadcast batch dims ({} x {}) is not supported: B must be 2-D or have A's batch dims",
            g.show_shape(a),
            g.show_shape(b)
        );
    }
    Ok(QMatMulDims {
        batches: numel(&a[..ra - 2]),
        w_batches,
        m: a[ra - 2].clone(),
        k: a[ra - 1].clone(),
        n: b[rb - 1].clone(),
    })
}

pub fn infer_qlinear_conv(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let yt = qlinear_common(g, n)?;
    let spec = super::conv::conv_spec(g, &conv_proxy(n))?;
    let ns = numel(&g.values[req(n, 4)?].shape);
    if ns != 1 && ns != spec.c_out {
        bail!(
            "QLinearConv has {} weight scales for {} output channels",
            g.show(&ns),
            spec.c_out
        );
    }
    if let Some(b) = n.input(8) {
        let bv = &g.values[b];
        if bv.dtype != DType::I32 || numel(&bv.shape) != spec.c_out {
            bail!(
                "QLinearConv bias `{}` must be int32 of shape [{}], found {:?} {}",
                bv.name,
                spec.c_out,
                bv.dtype,
                g.show_shape(&bv.shape)
            );
        }
    }
    Ok(vec![OutInfo::new(yt, spec.out_shape())])
}

/// A Conv-shaped view (inputs `[x, w]`, same attributes) of a QLinearConv node.
pub fn conv_proxy(n: &Node) -> Node {
    let mut p = n.clone();
    p.inputs = vec![n.input(0), n.input(3)];
    p
}

/// The quantized form of a float constant folded from `Cast(int8/uint8 constant)`, then
/// `Sub(·, zero point)` and `Mul(·, scale)` (the chain some exporters write instead of
/// DequantizeLinear), per tensor or along one axis. Only forms whose folded floats equal
/// `(q − zp) as f32 · scale` bit for bit are recognised (a Sub after a Mul, or a second Mul,
/// are not).
pub fn propagate_dq(g: &Graph, n: &Node) -> Option<DqOrigin> {
    if !n.domain.is_empty() && n.domain != "ai.onnx" {
        return None;
    }
    let out = &g.values[*n.outputs.first()?];
    if out.dtype != DType::F32 {
        return None;
    }
    let oshape = out.static_shape()?;
    match n.op.as_str() {
        "Cast" => {
            let x = &g.values[n.input(0)?];
            match x.konst.as_ref()? {
                q @ (TensorData::I8(_) | TensorData::U8(_)) => Some(DqOrigin {
                    q: q.clone(),
                    int4: x.int4,
                    scale: vec![1.0],
                    zero_point: vec![0],
                    axis: None,
                    block: 0,
                }),
                _ => None,
            }
        }
        "Sub" | "Mul" => {
            let (a, b) = (n.input(0)?, n.input(1)?);
            let (d, c) = if g.values[a].dq.is_some() {
                (a, b)
            } else if n.op == "Mul" && g.values[b].dq.is_some() {
                (b, a)
            } else {
                return None;
            };
            let o = g.values[d].dq.as_deref()?;
            if g.values[d].static_shape()? != oshape
                || o.block != 0
                || !o.scale.iter().all(|&s| s == 1.0)
            {
                return None;
            }
            let TensorData::F32(cd) = g.values[c].konst.as_ref()? else {
                return None;
            };
            let cshape = g.values[c].static_shape()?;
            let rank = oshape.len();
            if cshape.len() > rank {
                return None;
            }
            let off = rank - cshape.len();
            let non1: Vec<usize> = (0..cshape.len())
                .filter(|&i| cshape[i] != 1)
                .map(|i| i + off)
                .collect();
            let cax = match non1.as_slice() {
                [] => None,
                [ax] if cshape[ax - off] == oshape[*ax] => Some(*ax),
                _ => return None,
            };
            let axis = match (o.axis, cax) {
                (None, x) => x,
                (Some(a), None) => Some(a),
                (Some(a), Some(b)) if a == b => Some(a),
                _ => return None,
            };
            let len = axis.map_or(1, |a| oshape[a]);
            let cvals: Vec<f32> = if cd.len() == len {
                cd.clone()
            } else {
                vec![cd[0]; len]
            };
            let mut zp: Vec<i32> = if o.zero_point.len() == len {
                o.zero_point.clone()
            } else {
                vec![o.zero_point[0]; len]
            };
            let mut scale = vec![1.0f32; len];
            if n.op == "Sub" {
                for (z, &c) in zp.iter_mut().zip(&cvals) {
                    if c.fract() != 0.0 || c.abs() > 255.0 {
                        return None;
                    }
                    *z += c as i32;
                }
            } else {
                scale = cvals;
            }
            Some(DqOrigin {
                q: o.q.clone(),
                int4: o.int4,
                scale,
                zero_point: zp,
                axis,
                block: 0,
            })
        }
        _ => None,
    }
}
