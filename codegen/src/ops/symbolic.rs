//! Ops that mostly compute shapes: Shape, Gather (also the embedding lookup at run time) and
//! ConstantOfShape. On shape values they produce symbolic integers, folded at compile time.
use super::{OpDef, OutInfo, axis, op, req};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{Attr, DType, Dim, Graph, Node, TensorData};
use kiln_runtime::ops::gather as rg;

const GATHER_NOTES: &str = "run time and compile time (shape values); indices out of range are an `Err` naming the input and the index";
const SHAPE_NOTES: &str = "evaluated at compile time (symbolically)";
const CONSTANT_OF_SHAPE_NOTES: &str =
    "evaluated at compile time; of a run-time shape it fills at run time";

/// Shape arithmetic evaluated at compile time, symbolically (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "Gather",
        GATHER_NOTES,
        |cx, n| infer_gather(cx.g, n),
        crate::emit::shape::gather,
    ),
    op(
        "Shape",
        SHAPE_NOTES,
        |cx, n| infer_shape(cx.g, n),
        crate::emit::nodes::folded,
    ),
    op(
        "ConstantOfShape",
        CONSTANT_OF_SHAPE_NOTES,
        |cx, n| infer_constant_of_shape(cx.g, n),
        crate::emit::shape::constant_of_shape,
    ),
];

pub fn infer_shape(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len() as i64;
    let clampr = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clampr(n.attr_i("start")?.unwrap_or(0));
    let end = clampr(n.attr_i("end")?.unwrap_or(r));
    let dims: Vec<Dim> = if start < end {
        x.shape[start..end].to_vec()
    } else {
        Vec::new()
    };
    Ok(vec![OutInfo::values(
        DType::I64,
        vec![Dim::from(dims.len())],
        dims,
    )])
}

pub fn infer_gather(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (x, idx) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if !matches!(idx.dtype, DType::I64 | DType::I32) {
        bail!(
            "Gather indices must be int32 or int64, found {:?}",
            idx.dtype
        );
    }
    let ax = axis(n.attr_i("axis")?.unwrap_or(0), x.shape.len())?;
    let mut shape = x.shape[..ax].to_vec();
    shape.extend(idx.shape.iter().cloned());
    shape.extend(x.shape[ax + 1..].iter().cloned());
    // Picking entries of a shape vector.
    if x.shape.len() == 1
        && let Some(v) = x.int_values()
        && let Some(ik) = &idx.konst
    {
        let len = v.len() as i64;
        let picks: Result<Vec<Dim>> = ik
            .as_i64()?
            .into_iter()
            .map(|i| {
                let j = if i < 0 { i + len } else { i };
                if j < 0 || j >= len {
                    bail!("Gather index {i} is out of range for {len} elements");
                }
                Ok(v[j as usize].clone())
            })
            .collect();
        return Ok(vec![OutInfo::values(x.dtype, shape, picks?)]);
    }
    if let (Some(k), Some(ik), Some(xs), Some(os)) = (
        &x.konst,
        &idx.konst,
        x.static_shape(),
        crate::ir::static_shape(&shape),
    ) && super::foldable(g, n, &os)
    {
        let ids = ik.as_i64()?;
        let d = crate::each_data_map!(k, v => {
            let mut out = vec![Default::default(); os.iter().product()];
            rg::gather(v, &xs, &ids, ax, &mut out).map_err(|e| Error::invalid(format!("Gather: {e}")))?;
            out
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    if idx.dtype != DType::I64 {
        unsupported!("Gather with run-time int32 indices is not supported (int64 only)");
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}

/// ConstantOfShape's fill value and element type.
pub fn fill_value(n: &Node) -> Result<TensorData> {
    match n.attrs.get("value") {
        None => Ok(TensorData::F32(vec![0.0])),
        Some(Attr::Tensor(t)) if t.data.len() == 1 => Ok(t.data.clone()),
        Some(_) => bail!("ConstantOfShape `value` must be a one-element tensor"),
    }
}

pub fn infer_constant_of_shape(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let s = req(n, 0)?;
    let Some(dims) = g.values[s].int_values() else {
        unsupported!(
            "ConstantOfShape's shape `{}` depends on run-time data",
            g.values[s].name
        );
    };
    if dims.iter().any(|d| d.as_const().is_some_and(|c| c < 0)) {
        bail!("ConstantOfShape with a negative dimension");
    }
    let v = fill_value(n)?;
    if let Some(st) = crate::ir::static_shape(&dims) {
        if !super::foldable(g, n, &st) {
            unsupported!(
                "ConstantOfShape of shape {st:?} is too large to fold (kiln folds at most 2^26 \
                 elements per value and 2^27 created by folding per model)"
            );
        }
        let count: usize = st.iter().product();
        let d = crate::each_data_map!(&v, x => vec![x[0]; count]);
        return Ok(vec![OutInfo::konst(st, d)]);
    }
    Ok(vec![OutInfo::new(v.dtype(), dims)])
}
