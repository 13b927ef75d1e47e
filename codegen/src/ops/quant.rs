//! DynamicQuantizeLinear (standalone; the fused form is `KilnOp::QuantizeDyn`).
use super::{OutInfo, req};
use crate::error::{Result, bail};
use crate::ir::{DType, Graph, Node};

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
