//! Data-movement ops: Constant, Identity, Reshape, Flatten, Transpose, Cast.
//! Reshape, Flatten and Identity are views: emission aliases their output to the input buffer.
use super::{OutInfo, axis, numel, req};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{Attr, DType, Graph, Node, TensorData};
use kiln_runtime::ops::{cast as rc, transpose as rt};

pub fn infer_constant(n: &Node) -> Result<Vec<OutInfo>> {
    let mut found = None;
    for (k, a) in &n.attrs {
        let v = match (k.as_str(), a) {
            ("value", Attr::Tensor(t)) => (t.shape.clone(), t.data.clone()),
            ("value_float", Attr::Float(f)) => (vec![], TensorData::F32(vec![*f])),
            ("value_floats", Attr::Floats(f)) => (vec![f.len()], TensorData::F32(f.clone())),
            ("value_int", Attr::Int(i)) => (vec![], TensorData::I64(vec![*i])),
            ("value_ints", Attr::Ints(i)) => (vec![i.len()], TensorData::I64(i.clone())),
            ("sparse_value" | "value_string" | "value_strings", _) => {
                unsupported!("Constant with attribute `{k}` is not supported")
            }
            _ => bail!("Constant has an invalid attribute `{k}`"),
        };
        if found.replace(v).is_some() {
            bail!("Constant must have exactly one value attribute");
        }
    }
    let Some((shape, data)) = found else {
        bail!("Constant has no value attribute")
    };
    Ok(vec![OutInfo::konst(shape, data)])
}

pub fn infer_identity(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    Ok(vec![match &x.konst {
        Some(k) => OutInfo::konst(x.shape.clone(), k.clone()),
        None => OutInfo::new(x.dtype, x.shape.clone()),
    }])
}

/// Output shape of Reshape with ONNX's 0 (copy) and -1 (infer) rules.
pub fn reshape_shape(input: &[usize], spec: &[i64], allowzero: bool) -> Result<Vec<usize>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 => {
                if infer_at.replace(i).is_some() {
                    bail!("Reshape shape {spec:?} has more than one -1");
                }
                out.push(1);
            }
            0 if !allowzero => match input.get(i) {
                Some(&v) => out.push(v),
                None => {
                    bail!("Reshape shape {spec:?} copies dimension {i} the input {input:?} lacks")
                }
            },
            d if d >= 0 => out.push(d as usize),
            d => bail!("Reshape shape {spec:?} has invalid dimension {d}"),
        }
    }
    let total = numel(input);
    if let Some(i) = infer_at {
        let rest = numel(&out);
        if rest == 0 || !total.is_multiple_of(rest) {
            bail!("cannot reshape {input:?} into {spec:?}");
        }
        out[i] = total / rest;
    }
    if numel(&out) != total {
        bail!("cannot reshape {input:?} ({total} elements) into {spec:?}");
    }
    Ok(out)
}

fn view(x: &crate::ir::Value, shape: Vec<usize>) -> OutInfo {
    match &x.konst {
        Some(k) => OutInfo::konst(shape, k.clone()),
        None => OutInfo::new(x.dtype, shape),
    }
}

pub fn infer_reshape(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let spec = if g.opset < 5 {
        n.attr_ints("shape")?
            .ok_or_else(|| Error::invalid("Reshape-1 needs a `shape` attribute"))?
    } else {
        let s = req(n, 1)?;
        match &g.values[s].konst {
            Some(k) => k.as_i64()?,
            None => unsupported!(
                "Reshape's target shape `{}` is computed at run time; kiln needs it at compile time",
                g.values[s].name
            ),
        }
    };
    let allowzero = n.attr_i("allowzero")?.unwrap_or(0) != 0;
    Ok(vec![view(x, reshape_shape(&x.shape, &spec, allowzero)?)])
}

pub fn infer_flatten(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let rank = x.shape.len() as i64;
    let a = n.attr_i("axis")?.unwrap_or(1);
    if a < -rank || a > rank {
        bail!("Flatten axis {a} is out of range for rank {rank}");
    }
    let a = if a < 0 { a + rank } else { a } as usize;
    Ok(vec![view(
        x,
        vec![numel(&x.shape[..a]), numel(&x.shape[a..])],
    )])
}

pub fn transpose_perm(n: &Node, rank: usize) -> Result<Vec<usize>> {
    let perm = match n.attr_ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<Vec<_>>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        bail!("Transpose perm {perm:?} is not a permutation of 0..{rank}");
    }
    Ok(perm)
}

pub fn infer_transpose(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let perm = transpose_perm(n, x.shape.len())?;
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    if let Some(k) = &x.konst {
        let d = crate::each_data_map!(k, v => {
            let mut out = v.clone();
            rt::transpose(v, &x.shape, &perm, &mut out);
            out
        });
        return Ok(vec![OutInfo::konst(shape, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}

pub fn cast_target(n: &Node) -> Result<DType> {
    let to = n
        .attr_i("to")?
        .ok_or_else(|| Error::invalid("Cast needs a `to` attribute"))?;
    DType::from_onnx(to as i32).ok_or_else(|| {
        Error::unsupported(format!(
            "Cast to {} is not supported",
            DType::onnx_name(to as i32)
        ))
    })
}

pub fn infer_cast(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let to = cast_target(n)?;
    if let Some(k) = &x.konst {
        return Ok(vec![OutInfo::konst(x.shape.clone(), cast_data(k, to))]);
    }
    Ok(vec![OutInfo::new(to, x.shape.clone())])
}

/// Compile-time Cast with the runtime's semantics.
pub fn cast_data(k: &TensorData, to: DType) -> TensorData {
    macro_rules! to {
        ($v:expr) => {{
            let v = $v;
            match to {
                DType::F32 => TensorData::F32(conv(v)),
                DType::F64 => TensorData::F64(conv(v)),
                DType::I8 => TensorData::I8(conv(v)),
                DType::U8 => TensorData::U8(conv(v)),
                DType::I16 => TensorData::I16(conv(v)),
                DType::U16 => TensorData::U16(conv(v)),
                DType::I32 => TensorData::I32(conv(v)),
                DType::U32 => TensorData::U32(conv(v)),
                DType::I64 => TensorData::I64(conv(v)),
                DType::U64 => TensorData::U64(conv(v)),
                DType::Bool => TensorData::Bool(conv(v)),
            }
        }};
    }
    fn conv<T: Copy + rc::CastTo<U>, U: Copy + Default>(v: &[T]) -> Vec<U> {
        let mut out = vec![U::default(); v.len()];
        rc::cast(v, &mut out);
        out
    }
    crate::each_data!(k, v => to!(v.as_slice()))
}
