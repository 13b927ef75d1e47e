//! Data-movement ops: Constant, Identity, Reshape, Flatten, Squeeze, Unsqueeze, Transpose,
//! Concat, Slice, Expand, Cast. Reshape, Flatten, Squeeze, Unsqueeze and Identity are views:
//! emission aliases their output to the input buffer. All of them also work on symbolic
//! integer values (shape arithmetic), which folds them away at compile time.
use super::{Assumed, OpDef, OutInfo, axis, broadcast, op, req};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{Attr, DType, Dim, Graph, Node, TensorData, Value, numel};
use kiln_runtime::ops::{cast as rc, shape as rs, transpose as rt};

const VIEW: &str =
    "zero-copy views; Reshape's target shape must be a constant or computed from input dims";
const MOVE: &str = "run time and compile time (shape values)";

const TRANSPOSE_NOTES: &str = "any permutation";
const CAST_NOTES: &str = "between f32, f64, int8/16/32/64, uint8/16/32/64 and bool";
const CONSTANT_NOTES: &str = "folded at compile time";

/// Shape and data-movement ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "Reshape",
        VIEW,
        |cx, n| infer_reshape(cx.g, &mut cx.assumed, n),
        crate::emit::shape::view,
    ),
    op(
        "Flatten",
        VIEW,
        |cx, n| infer_flatten(cx.g, n),
        crate::emit::shape::view,
    ),
    op(
        "Identity",
        VIEW,
        |cx, n| infer_identity(cx.g, n),
        crate::emit::shape::view,
    ),
    op("Squeeze", VIEW, squeeze, crate::emit::shape::view),
    op("Unsqueeze", VIEW, squeeze, crate::emit::shape::view),
    op(
        "Transpose",
        TRANSPOSE_NOTES,
        |cx, n| infer_transpose(cx.g, n),
        crate::emit::shape::transpose,
    ),
    op(
        "Concat",
        MOVE,
        |cx, n| infer_concat(cx.g, &mut cx.assumed, n),
        crate::emit::shape::concat,
    ),
    op(
        "Slice",
        MOVE,
        |cx, n| infer_slice(cx.g, n),
        crate::emit::shape::slice,
    ),
    op(
        "Expand",
        MOVE,
        |cx, n| infer_expand(cx.g, &mut cx.assumed, n),
        crate::emit::shape::expand,
    ),
    op(
        "Cast",
        CAST_NOTES,
        |cx, n| infer_cast(cx.g, n),
        crate::emit::shape::cast,
    ),
    op(
        "Constant",
        CONSTANT_NOTES,
        |_, n| infer_constant(n),
        crate::emit::nodes::folded,
    ),
];

fn squeeze(cx: &mut super::InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    infer_squeeze(cx.g, &mut cx.assumed, n)
}

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

/// The same data under a new shape: keeps constants and symbolic values.
fn view(x: &Value, shape: Vec<Dim>) -> OutInfo {
    if let (Some(k), Some(s)) = (&x.konst, crate::ir::static_shape(&shape)) {
        return OutInfo::konst(s, k.clone());
    }
    if let Some(v) = &x.sym
        && shape.len() <= 1
    {
        return OutInfo::values(x.dtype, shape, v.clone());
    }
    OutInfo::new(x.dtype, shape)
}

pub fn infer_identity(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    Ok(vec![view(x, x.shape.clone())])
}

/// Output shape of Reshape with ONNX's 0 (copy) and -1 (infer) rules, on symbolic dims.
pub fn reshape_shape(
    g: &Graph,
    eq: &mut Assumed,
    input: &[Dim],
    spec: &[Dim],
    allowzero: bool,
) -> Result<Vec<Dim>> {
    let mut out = Vec::with_capacity(spec.len());
    let mut infer_at = None;
    for (i, d) in spec.iter().enumerate() {
        match d.as_const() {
            Some(-1) => {
                if infer_at.replace(i).is_some() {
                    bail!("Reshape shape {} has more than one -1", g.show_shape(spec));
                }
                out.push(Dim::constant(1));
            }
            Some(0) if !allowzero => match input.get(i) {
                Some(v) => out.push(v.clone()),
                None => bail!(
                    "Reshape shape {} copies dimension {i} the input {} lacks",
                    g.show_shape(spec),
                    g.show_shape(input)
                ),
            },
            Some(c) if c < 0 => bail!(
                "Reshape shape {} has invalid dimension {c}",
                g.show_shape(spec)
            ),
            _ => out.push(d.clone()),
        }
    }
    let total = numel(input);
    if let Some(i) = infer_at {
        let rest = numel(&out);
        match total.div_exact(&rest) {
            Some(q) if rest != 0 => out[i] = q,
            _ => bail!(
                "cannot reshape {} into {}",
                g.show_shape(input),
                g.show_shape(spec)
            ),
        }
    }
    if !eq.equal(&numel(&out), &total) {
        bail!(
            "cannot reshape {} into {}",
            g.show_shape(input),
            g.show_shape(spec)
        );
    }
    Ok(out)
}

pub fn infer_reshape(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let spec: Vec<Dim> = if g.opset < 5 {
        let s = n
            .attr_ints("shape")?
            .ok_or_else(|| Error::invalid("Reshape-1 needs a `shape` attribute"))?;
        s.into_iter().map(Dim::constant).collect()
    } else {
        let s = req(n, 1)?;
        match g.values[s].int_values() {
            Some(v) => v,
            None => {
                return Err(Error::unsupported(format!(
                    "Reshape's target shape `{}` depends on run-time data; kiln needs it at compile time (or as arithmetic on input dims)",
                    g.values[s].name
                ))
                .with_hint("make the shape a constant, or compute it from Shape() of a tensor"));
            }
        }
    };
    let allowzero = n.attr_i("allowzero")?.unwrap_or(0) != 0;
    Ok(vec![view(
        x,
        reshape_shape(g, eq, &x.shape, &spec, allowzero)?,
    )])
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

/// Squeeze/Unsqueeze axes: the `axes` input (opset ≥ 13) or attribute.
fn axes_arg(g: &Graph, n: &Node) -> Result<Option<Vec<i64>>> {
    if g.opset >= 13 {
        match n.input(1) {
            None => Ok(None),
            Some(v) => match &g.values[v].konst {
                Some(k) => Ok(Some(k.as_i64()?)),
                None => unsupported!("{} axes computed at run time are not supported", n.op),
            },
        }
    } else {
        n.attr_ints("axes")
    }
}

/// Output shape of Squeeze or Unsqueeze.
pub fn squeeze_shape(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<Dim>> {
    let x = &g.values[req(n, 0)?];
    let axes = axes_arg(g, n)?;
    if n.op == "Unsqueeze" {
        let Some(axes) = axes else {
            bail!("Unsqueeze needs axes")
        };
        let r = x.shape.len() + axes.len();
        let mut ax: Vec<usize> = axes.iter().map(|&a| axis(a, r)).collect::<Result<_>>()?;
        ax.sort_unstable();
        if ax.windows(2).any(|w| w[0] == w[1]) {
            bail!("Unsqueeze axes {axes:?} repeat an axis");
        }
        let mut it = x.shape.iter();
        Ok((0..r)
            .map(|i| {
                if ax.contains(&i) {
                    Dim::constant(1)
                } else {
                    it.next().cloned().unwrap_or_default()
                }
            })
            .collect())
    } else {
        let r = x.shape.len();
        let ax: Vec<usize> = match axes {
            Some(a) => a.iter().map(|&a| axis(a, r)).collect::<Result<_>>()?,
            None => {
                if x.shape.iter().any(|d| !d.is_const()) {
                    unsupported!(
                        "Squeeze without axes on symbolic shape {}",
                        g.show_shape(&x.shape)
                    );
                }
                (0..r).filter(|&i| x.shape[i] == 1).collect()
            }
        };
        for &a in &ax {
            if !eq.equal(&x.shape[a], &Dim::constant(1)) {
                bail!("Squeeze axis {a} has size {}, not 1", g.show(&x.shape[a]));
            }
        }
        Ok(x.shape
            .iter()
            .enumerate()
            .filter(|(i, _)| !ax.contains(i))
            .map(|(_, d)| d.clone())
            .collect())
    }
}

pub fn infer_squeeze(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    Ok(vec![view(x, squeeze_shape(g, eq, n)?)])
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
    let shape: Vec<Dim> = perm.iter().map(|&p| x.shape[p].clone()).collect();
    if let (Some(k), Some(xs), Some(os)) =
        (&x.konst, x.static_shape(), crate::ir::static_shape(&shape))
    {
        let d = crate::each_data_map!(k, v => {
            let mut out = v.clone();
            rt::transpose(v, &xs, &perm, &mut out);
            out
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}

pub fn concat_axis(g: &Graph, n: &Node) -> Result<usize> {
    let x = &g.values[req(n, 0)?];
    let a = n
        .attr_i("axis")?
        .ok_or_else(|| Error::invalid("Concat needs an `axis` attribute"))?;
    axis(a, x.shape.len())
}

pub fn infer_concat(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let first = &g.values[req(n, 0)?];
    let ax = concat_axis(g, n)?;
    let ins: Vec<&Value> = n.inputs.iter().flatten().map(|&v| &g.values[v]).collect();
    let mut shape = first.shape.clone();
    shape[ax] = Dim::constant(0);
    for v in &ins {
        if v.dtype != first.dtype || v.shape.len() != shape.len() {
            bail!("Concat inputs differ in element type or rank");
        }
        for (d, (a, b)) in v.shape.iter().zip(&first.shape).enumerate() {
            if d != ax && !eq.equal(a, b) {
                bail!(
                    "Concat inputs differ outside the axis: {} vs {}",
                    g.show_shape(&v.shape),
                    g.show_shape(&first.shape)
                );
            }
        }
        shape[ax] = shape[ax].add(&v.shape[ax]);
    }
    // Shape arithmetic: concatenating 1-D integer values.
    if shape.len() == 1 && !first.dtype.is_float() {
        let vals: Option<Vec<Vec<Dim>>> = ins.iter().map(|v| v.int_values()).collect();
        if let Some(vals) = vals {
            return Ok(vec![OutInfo::values(first.dtype, shape, vals.concat())]);
        }
    }
    if ins
        .iter()
        .all(|v| v.konst.is_some() && v.static_shape().is_some())
        && let Some(os) = crate::ir::static_shape(&shape)
        && super::foldable(g, n, &os)
    {
        let shapes: Vec<Vec<usize>> = ins.iter().map(|v| v.static_shape().unwrap()).collect();
        let k0 = first.konst.as_ref().unwrap();
        let d = crate::each_data_map!(k0, _x => {
            let parts: Vec<_> = ins.iter().map(|v| typed(v.konst.as_ref().unwrap(), _x)).collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::invalid("Concat inputs differ in element type"))?;
            let refs: Vec<(&[_], &[usize])> = parts.iter().zip(&shapes).map(|(p, s)| (*p, s.as_slice())).collect();
            let mut out = vec![Default::default(); os.iter().product()];
            kiln_runtime::ops::concat::concat(&refs, ax, &mut out);
            out
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(first.dtype, shape)])
}

/// `d`'s data as `&[T]` when it holds the element type of `_like`.
fn typed<'a, T: 'static>(d: &'a TensorData, _like: &[T]) -> Option<&'a [T]> {
    let any: &dyn std::any::Any = crate::each_data!(d, v => v as &dyn std::any::Any);
    any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
}

/// Resolved Slice: per input axis, the first index, the step and the number of elements.
pub struct SliceParams {
    pub starts: Vec<Dim>,
    pub steps: Vec<i64>,
    pub shape: Vec<Dim>,
    /// Run-time bounds the symbolic arguments must satisfy (`dim ≤ max`).
    pub checks: Vec<(Dim, usize)>,
}

pub fn slice_params(g: &Graph, n: &Node) -> Result<SliceParams> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    let vals = |i: usize, attr: &str| -> Result<Option<Vec<Dim>>> {
        if g.opset < 10 {
            return Ok(n
                .attr_ints(attr)?
                .map(|v| v.into_iter().map(Dim::constant).collect()));
        }
        match n.input(i) {
            None => Ok(None),
            Some(v) => match g.values[v].int_values() {
                Some(d) => Ok(Some(d)),
                None => unsupported!("Slice {attr} computed from run-time data are not supported"),
            },
        }
    };
    let starts = vals(1, "starts")?.ok_or_else(|| Error::invalid("Slice needs starts"))?;
    let ends = vals(2, "ends")?.ok_or_else(|| Error::invalid("Slice needs ends"))?;
    let axes: Vec<usize> = match vals(3, "axes")? {
        Some(a) => a
            .iter()
            .map(|d| {
                d.as_const()
                    .ok_or_else(|| Error::unsupported("symbolic Slice axes"))
                    .and_then(|a| axis(a, r))
            })
            .collect::<Result<_>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps: Vec<i64> = match vals(4, "steps")? {
        Some(s) => s
            .iter()
            .map(|d| {
                d.as_const()
                    .ok_or_else(|| Error::unsupported("symbolic Slice steps"))
            })
            .collect::<Result<_>>()?,
        None => vec![1; starts.len()],
    };
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!("Slice starts, ends, axes and steps must have the same length");
    }
    let mut p = SliceParams {
        starts: vec![Dim::constant(0); r],
        steps: vec![1; r],
        shape: x.shape.clone(),
        checks: Vec::new(),
    };
    for (j, &a) in axes.iter().enumerate() {
        let (st, en, step, dim) = (&starts[j], &ends[j], steps[j], &x.shape[a]);
        if step == 0 {
            bail!("Slice step cannot be 0");
        }
        match (st.as_const(), en.as_const(), dim.as_const()) {
            (Some(s), Some(e), Some(d)) => {
                // ONNX clamping rules.
                let clampv = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
                let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
                let (s, e) = if step > 0 {
                    (clampv(norm(s), 0, d), clampv(norm(e), 0, d))
                } else {
                    (clampv(norm(s), 0, d - 1), clampv(norm(e), -1, d - 1))
                };
                // ceil(distance / |step|) without overflow: steps may be ±i64::MAX or MIN.
                let dist = if step > 0 { e - s } else { s - e };
                let len = if dist > 0 {
                    ((dist as u64 - 1) / step.unsigned_abs() + 1) as i64
                } else {
                    0
                };
                p.starts[a] = Dim::constant(s);
                p.shape[a] = Dim::constant(len);
            }
            // Forward slice of a static axis up to a symbolic end (e.g. position ids [0, seq)):
            // the end must not exceed the axis, which is checked at run time.
            (Some(s), None, Some(d)) if step == 1 && s >= 0 && s <= d && en.nonneg() => {
                p.checks.push((en.clone(), d as usize));
                p.starts[a] = Dim::constant(s);
                p.shape[a] = en.sub(&Dim::constant(s));
            }
            // Start..end on a symbolic axis where end is "to the end" (INT_MAX or ≥ the axis).
            (Some(s), Some(e), None) if step == 1 && s >= 0 && e >= i32::MAX as i64 => {
                p.starts[a] = Dim::constant(s);
                p.shape[a] = dim.sub(&Dim::constant(s));
            }
            (Some(s), Some(e), None)
                if step == 1 && s < 0 && s > i64::MIN && e >= i32::MAX as i64 =>
            {
                // The last -s elements (assumes the axis holds at least that many).
                p.starts[a] = dim.add(&Dim::constant(s));
                p.shape[a] = Dim::constant(-s);
            }
            _ => unsupported!(
                "Slice of axis {a} (size {}) from {} to {} step {step} is not supported with symbolic sizes",
                g.show(dim),
                g.show(st),
                g.show(en)
            ),
        }
        p.steps[a] = step;
    }
    Ok(p)
}

pub fn infer_slice(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let p = slice_params(g, n)?;
    let mut info = if let (Some(v), 1) = (x.int_values(), x.shape.len()) {
        // Slicing a shape vector.
        match (p.starts[0].as_usize(), p.shape[0].as_usize()) {
            (Some(s), Some(len)) => {
                let st = p.steps[0];
                let vals = (0..len)
                    .map(|i| v[(s as i64 + i as i64 * st) as usize].clone())
                    .collect();
                OutInfo::values(x.dtype, p.shape.clone(), vals)
            }
            _ => OutInfo::new(x.dtype, p.shape.clone()),
        }
    } else if let (Some(k), Some(xs), Some(os), Some(starts)) = (
        &x.konst,
        x.static_shape(),
        crate::ir::static_shape(&p.shape),
        p.starts
            .iter()
            .map(Dim::as_const)
            .collect::<Option<Vec<i64>>>(),
    ) && super::foldable(g, n, &os)
    {
        let d = crate::each_data_map!(k, v => {
            let mut out = vec![Default::default(); os.iter().product()];
            rs::slice(v, &xs, &starts, &p.steps, &os, &mut out);
            out
        });
        OutInfo::konst(os, d)
    } else {
        OutInfo::new(x.dtype, p.shape.clone())
    };
    info.checks = p.checks;
    Ok(vec![info])
}

pub fn infer_expand(g: &Graph, eq: &mut Assumed, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let s = req(n, 1)?;
    let Some(target) = g.values[s].int_values() else {
        unsupported!(
            "Expand's shape `{}` depends on run-time data",
            g.values[s].name
        );
    };
    let shape = broadcast(g, eq, &x.shape, &target)?;
    if let (Some(k), Some(xs), Some(os)) =
        (&x.konst, x.static_shape(), crate::ir::static_shape(&shape))
        && super::foldable(g, n, &os)
    {
        let d = crate::each_data_map!(k, v => {
            let mut out = vec![Default::default(); os.iter().product()];
            rs::expand(v, &xs, &mut out, &os);
            out
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    if shape.len() == 1
        && let Some(v) = x.int_values()
        && v.len() == 1
        && let Some(len) = shape[0].as_usize()
        && super::foldable(g, n, &[len])
    {
        return Ok(vec![OutInfo::values(
            x.dtype,
            shape,
            vec![v[0].clone(); len],
        )]);
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
    cast_to(g, n, cast_target(n)?)
}

/// Cast (and CastLike) of input #0 to `to`: folded on constants and shape values.
pub(super) fn cast_to(g: &Graph, n: &Node, to: DType) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if let (Some(k), Some(s)) = (&x.konst, x.static_shape()) {
        return Ok(vec![OutInfo::konst(s, cast_data(k, to))]);
    }
    if let Some(v) = &x.sym
        && !to.is_float()
        && to != DType::Bool
    {
        return Ok(vec![OutInfo::values(to, x.shape.clone(), v.clone())]);
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
