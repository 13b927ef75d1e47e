//! DynamicQuantizeLinear (standalone; the fused form is `KilnOp::QuantizeDyn`) and
//! DequantizeLinear (folded for constants, e.g. quantized embedding tables; per-tensor at run
//! time).
use super::{OutInfo, axis, req};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Graph, Node, TensorData};

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

/// DequantizeLinear parameters: (scale per slice, zero point per slice, axis) where a
/// per-tensor quantization has one slice.
pub fn dequant_params(g: &Graph, n: &Node) -> Result<(Vec<f32>, Vec<i64>, Option<usize>)> {
    let x = &g.values[req(n, 0)?];
    let s = &g.values[req(n, 1)?];
    let Some(scale) = &s.konst else {
        unsupported!("DequantizeLinear with a run-time scale is not supported");
    };
    let scale = scale.as_f32();
    let zp: Vec<i64> = match n.input(2) {
        None => vec![0; scale.len()],
        Some(z) => match &g.values[z].konst {
            Some(k) => k.as_i64()?,
            None => unsupported!("DequantizeLinear with a run-time zero point is not supported"),
        },
    };
    if zp.len() != scale.len() {
        bail!("DequantizeLinear scale and zero point have different sizes");
    }
    if n.attrs.contains_key("block_size") && n.attr_i("block_size")?.unwrap_or(0) != 0 {
        unsupported!("blocked DequantizeLinear is not supported yet");
    }
    let ax = if scale.len() == 1 {
        None
    } else {
        let a = axis(n.attr_i("axis")?.unwrap_or(1), x.shape.len())?;
        if x.shape[a] != scale.len() {
            bail!(
                "DequantizeLinear has {} scales for axis {a} of size {}",
                scale.len(),
                g.show(&x.shape[a])
            );
        }
        Some(a)
    };
    Ok((scale, zp, ax))
}

pub fn infer_dequantize(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if !matches!(x.dtype, DType::I8 | DType::U8 | DType::I32) {
        unsupported!(
            "DequantizeLinear of {:?} is not supported (int8, uint8, int32)",
            x.dtype
        );
    }
    let (scale, zp, ax) = dequant_params(g, n)?;
    if let (Some(k), Some(xs)) = (&x.konst, x.static_shape()) {
        let q = k.as_i64()?;
        let inner: usize = ax.map(|a| xs[a + 1..].iter().product()).unwrap_or(1);
        let groups = scale.len();
        let out = q
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = if groups == 1 { 0 } else { (i / inner) % groups };
                // ONNX: y = (x - zp) * scale, the subtraction exact in int32.
                ((v - zp[c]) as i32 as f32) * scale[c]
            })
            .collect();
        return Ok(vec![OutInfo::konst(xs, TensorData::F32(out))]);
    }
    if ax.is_some() {
        unsupported!("per-axis DequantizeLinear of a run-time tensor is not supported yet");
    }
    Ok(vec![OutInfo::new(DType::F32, x.shape.clone())])
}
