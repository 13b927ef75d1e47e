//! Tensor construction and rearrangement: Size, CastLike, Dropout (inference), Range, EyeLike,
//! Trilu, Tile, OneHot, DepthToSpace, SpaceToDepth. Inference folds each of them when its
//! inputs are constants (with the runtime functions the generated code calls), emission calls
//! `kiln_runtime::ops::tensor`.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, axis, foldable, op, req, static_dims};
use crate::emit::nodes::inp;
use crate::emit::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, Value, from_static, numel};
use kiln_runtime::ops::tensor as rtn;

const SIZE_NOTES: &str = "evaluated at compile time (symbolically, like Shape)";
const CAST_LIKE_NOTES: &str = "Cast to the second input's type (the types Cast supports)";
const DROPOUT_NOTES: &str = "inference: identity, mask all true; training mode with a non-zero ratio is a compile error (random)";
const RANGE_NOTES: &str = "f32, f64, int16/32/64; folded when the inputs are constants; start/limit computed from input dims with a constant delta give a symbolic length (an `Err` at run time if it is negative); other run-time inputs are a compile error (data-dependent size)";
const EYE_NOTES: &str = "any numeric or bool `dtype`, diagonal `k`; folded for static shapes";
const TRILU_NOTES: &str = "any type; `k` must be a constant";
const TILE_NOTES: &str = "any type, rank ≤ 8; repeats must be constants";
const ONE_HOT_NOTES: &str = "indices of any numeric type (out of range: an all-off row), any axis; depth and values must be constants";
const D2S_NOTES: &str = "4-D NCHW; DCR and CRD modes";

/// The tensor construction ops (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "Size",
        SIZE_NOTES,
        |cx, n| size(cx.g, n),
        crate::emit::nodes::folded,
    ),
    op(
        "CastLike",
        CAST_LIKE_NOTES,
        |cx, n| cast_like(cx.g, n),
        crate::emit::shape::cast,
    ),
    op(
        "Dropout",
        DROPOUT_NOTES,
        |cx, n| dropout(cx.g, n),
        emit_dropout,
    ),
    op("Range", RANGE_NOTES, |cx, n| range(cx.g, n), emit_range),
    op(
        "EyeLike",
        EYE_NOTES,
        |cx, n| eye_like(cx.g, n),
        emit_eye_like,
    ),
    op("Trilu", TRILU_NOTES, |cx, n| trilu(cx.g, n), emit_trilu),
    op("Tile", TILE_NOTES, |cx, n| tile(cx.g, n), emit_tile),
    op(
        "OneHot",
        ONE_HOT_NOTES,
        |cx, n| one_hot(cx.g, n),
        emit_one_hot,
    ),
    op(
        "DepthToSpace",
        D2S_NOTES,
        |cx, n| depth_space(cx.g, n),
        emit_depth_space,
    ),
    op(
        "SpaceToDepth",
        D2S_NOTES,
        |cx, n| depth_space(cx.g, n),
        emit_depth_space,
    ),
];

fn size(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    Ok(vec![OutInfo::values(DType::I64, vec![], vec![x.numel()])])
}

fn cast_like(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let like = &g.values[req(n, 1)?];
    if like.int4 {
        // Held as one i8/u8 per value, but its type is 4-bit: a cast to it must saturate to
        // 4 bits, which kiln's Cast does not do.
        unsupported!(
            "CastLike to the 4-bit type of `{}` is not supported (int4/uint4 only as constants)",
            like.name
        );
    }
    let to = like.dtype;
    super::shape::cast_to(g, n, to)
}

/// The same contents under the node's output (kept constant when the input is).
fn same(x: &Value) -> OutInfo {
    match (&x.konst, x.static_shape()) {
        (Some(k), Some(s)) => OutInfo::konst(s, k.clone()),
        _ => OutInfo::new(x.dtype, x.shape.clone()),
    }
}

fn dropout(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    // Before opset 7, `is_test = 0` (the default) meant training; from opset 12 the ratio and
    // training mode are inputs.
    let training = if g.opset < 7 {
        n.attr_i("is_test")?.unwrap_or(0) == 0
    } else {
        match n.input(2) {
            None => false,
            Some(t) => match &g.values[t].konst {
                Some(k) => k.as_i64()?.first().is_some_and(|&v| v != 0),
                None => unsupported!(
                    "Dropout's training_mode `{}` is computed at run time; kiln compiles inference graphs (training_mode a constant false)",
                    g.values[t].name
                ),
            },
        }
    };
    let ratio = match n.input(1) {
        Some(r) => match &g.values[r].konst {
            Some(k) => k.as_f32().first().copied().unwrap_or(0.5),
            None if training => unsupported!("Dropout's ratio must be a constant"),
            None => 0.5,
        },
        None => n.attr_f("ratio")?.unwrap_or(0.5),
    };
    if training && ratio != 0.0 {
        unsupported!(
            "Dropout in training mode with ratio {ratio} drops random elements; kiln compiles inference graphs (training_mode false, or ratio 0)"
        );
    }
    let mut outs = vec![same(x)];
    if n.outputs.len() > 1 {
        outs.push(match x.static_shape() {
            Some(s) if foldable(g, n, &s) => {
                let len = s.iter().product();
                OutInfo::konst(s, TensorData::Bool(vec![true; len]))
            }
            _ => OutInfo::new(DType::Bool, x.shape.clone()),
        });
    }
    Ok(outs)
}

fn emit_dropout(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let mut code = TokenStream::new();
    let out = n.outputs[0];
    if c.g.values[out].konst.is_none() {
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        code.extend(quote! { (#y).copy_from_slice(#x); });
    }
    if let Some(&m) = n.outputs.get(1)
        && c.g.values[m].konst.is_none()
    {
        let y = c.dst(m);
        code.extend(quote! { #rt::ops::shape::fill(#y, true); });
    }
    Ok(code)
}

/// A scalar input's constant value as f64, or its symbolic integer value.
enum Scalar {
    Const(f64),
    Sym(Dim),
    Unknown,
}

fn scalar(v: &Value) -> Scalar {
    if let Some(k) = &v.konst {
        let f = match k {
            TensorData::F32(x) => x.first().map(|&x| x as f64),
            TensorData::F64(x) => x.first().copied(),
            other => other
                .as_i64()
                .ok()
                .and_then(|x| x.first().map(|&x| x as f64)),
        };
        return f.map_or(Scalar::Unknown, Scalar::Const);
    }
    match v.int_values() {
        Some(d) if d.len() == 1 => Scalar::Sym(d[0].clone()),
        _ => Scalar::Unknown,
    }
}

fn range(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let ids = [req(n, 0)?, req(n, 1)?, req(n, 2)?];
    let dt = g.values[ids[0]].dtype;
    if !matches!(
        dt,
        DType::F32 | DType::F64 | DType::I16 | DType::I32 | DType::I64
    ) {
        bail!("Range takes float, double, int16, int32 or int64, found {dt:?}");
    }
    let [s, l, d] = ids.map(|v| scalar(&g.values[v]));
    if let (Scalar::Const(s), Scalar::Const(l), Scalar::Const(d)) = (&s, &l, &d) {
        return range_fold(g, n, dt, *s, *l, *d).map(|o| vec![o]);
    }
    // Limits computed from input dims: a symbolic length (`ceil_div` checks it is ≥ 0).
    let sym = |x: &Scalar| match x {
        Scalar::Const(c) if c.fract() == 0.0 => Some(Dim::constant(*c as i64)),
        Scalar::Sym(d) => Some(d.clone()),
        _ => None,
    };
    if !dt.is_float()
        && let (Some(s), Some(l), Scalar::Const(d)) = (sym(&s), sym(&l), &d)
        && *d != 0.0
    {
        let d = *d as i64;
        let span = if d > 0 { l.sub(&s) } else { s.sub(&l) };
        let len = g.ceil_div(&span, d.abs(), &n.name)?;
        return Ok(vec![OutInfo::new(dt, vec![len])]);
    }
    let name = |i: usize| g.values[ids[i]].name.clone();
    unsupported!(
        "Range's start `{}`, limit `{}` and delta `{}` are run-time data, so its output length is data-dependent; kiln needs them constant, or start/limit computed from input dims and a constant delta",
        name(0),
        name(1),
        name(2)
    )
}

/// Range of constants: folded, or (too large to fold) filled at run time.
fn range_fold(g: &Graph, n: &Node, dt: DType, s: f64, l: f64, d: f64) -> Result<OutInfo> {
    if d == 0.0 || !d.is_finite() {
        bail!("Range with delta {d}");
    }
    let len = ((l - s) / d).ceil().max(0.0);
    if len > (1u64 << 40) as f64 || len.is_nan() {
        unsupported!("Range of {len} elements is too large");
    }
    let len = len as usize;
    if !foldable(g, n, &[len]) {
        return Ok(OutInfo::new(dt, vec![Dim::from(len)]));
    }
    macro_rules! fill {
        ($t:ty, $v:ident) => {{
            let mut o = vec![<$t>::default(); len];
            rtn::range(s as $t, d as $t, &mut o);
            TensorData::$v(o)
        }};
    }
    let data = match dt {
        DType::F32 => fill!(f32, F32),
        DType::F64 => fill!(f64, F64),
        DType::I16 => fill!(i16, I16),
        DType::I32 => fill!(i32, I32),
        _ => fill!(i64, I64),
    };
    Ok(OutInfo::konst(vec![len], data))
}

fn emit_range(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (s, d) = (c.src(inp(n, 0)?), c.src(inp(n, 2)?));
    let y = c.dst(n.outputs[0]);
    Ok(quote! { #rt::ops::tensor::range((#s)[0], (#d)[0], #y); })
}

/// EyeLike's output type: the `dtype` attribute, else the input's.
fn eye_dtype(g: &Graph, n: &Node) -> Result<DType> {
    let x = &g.values[req(n, 0)?];
    match n.attr_i("dtype")? {
        None => Ok(x.dtype),
        Some(t) => DType::from_onnx(t as i32).ok_or_else(|| {
            crate::error::Error::unsupported(format!(
                "EyeLike to {} is not supported",
                DType::onnx_name(t as i32)
            ))
        }),
    }
}

fn eye_like(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.shape.len() != 2 {
        bail!(
            "EyeLike takes a 2-D input, found {}",
            g.show_shape(&x.shape)
        );
    }
    let dt = eye_dtype(g, n)?;
    let k = n.attr_i("k")?.unwrap_or(0);
    if let Some(s) = x.static_shape()
        && foldable(g, n, &s)
    {
        let mut v = vec![0i64; s[0] * s[1]];
        rtn::eye_like(s[0], s[1], k, 0, 1, &mut v);
        return Ok(vec![OutInfo::konst(s, super::int_data(dt, &v))]);
    }
    Ok(vec![OutInfo::new(dt, x.shape.clone())])
}

fn emit_eye_like(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let out = n.outputs[0];
    let sh = &c.g.values[out].shape;
    let (r, cols) = (c.dim(&sh[0]), c.dim(&sh[1]));
    let k = n.attr_i("k")?.unwrap_or(0);
    let ty = crate::emit::rust_ty(c.g.values[out].dtype);
    let y = c.dst(out);
    let (zero, one) = if c.g.values[out].dtype == DType::Bool {
        (quote!(false), quote!(true))
    } else {
        (quote!(0 as #ty), quote!(1 as #ty))
    };
    Ok(quote! { #rt::ops::tensor::eye_like(#r, #cols, #k, #zero, #one, #y); })
}

/// Trilu's diagonal offset (constant input #1, default 0) and `upper`.
fn trilu_params(g: &Graph, n: &Node) -> Result<(i64, bool)> {
    let k = match n.input(1) {
        None => 0,
        Some(v) => match &g.values[v].konst {
            Some(k) if k.len() == 1 => k.as_i64()?[0],
            _ => unsupported!("Trilu's k `{}` must be a constant", g.values[v].name),
        },
    };
    Ok((k, n.attr_i("upper")?.unwrap_or(1) != 0))
}

fn trilu(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.shape.len() < 2 {
        bail!(
            "Trilu takes a tensor of rank ≥ 2, found {}",
            g.show_shape(&x.shape)
        );
    }
    let (k, upper) = trilu_params(g, n)?;
    if let (Some(kd), Some(s)) = (&x.konst, x.static_shape()) {
        let d = crate::each_data_map!(kd, v => {
            let mut o = vec![Default::default(); v.len()];
            rtn::trilu(v, &s, k, upper, &mut o);
            o
        });
        return Ok(vec![OutInfo::konst(s, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, x.shape.clone())])
}

fn emit_trilu(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let xi = inp(n, 0)?;
    let (k, upper) = trilu_params(c.g, n)?;
    let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::tensor::trilu(#x, #sx, #k, #upper, #y); })
}

fn tile_repeats(g: &Graph, n: &Node) -> Result<Vec<usize>> {
    let r = req(n, 1)?;
    let rank = g.values[req(n, 0)?].shape.len();
    let reps = match &g.values[r].konst {
        Some(k) => k.as_i64()?,
        None => unsupported!(
            "Tile's repeats `{}` are run-time data; kiln needs them constant",
            g.values[r].name
        ),
    };
    if reps.len() != rank || reps.iter().any(|&v| v < 0) {
        bail!("Tile repeats {reps:?} must be {rank} non-negative values");
    }
    if rank > 8 {
        unsupported!("Tile of rank {rank} (at most 8)");
    }
    Ok(reps.into_iter().map(|v| v as usize).collect())
}

fn tile(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let reps = tile_repeats(g, n)?;
    let shape: Vec<Dim> = x
        .shape
        .iter()
        .zip(&reps)
        .map(|(d, &r)| d.scale(r as i64))
        .collect();
    if let (Some(kd), Some(s), Some(os)) =
        (&x.konst, x.static_shape(), crate::ir::static_shape(&shape))
        && foldable(g, n, &os)
    {
        let d = crate::each_data_map!(kd, v => {
            let mut o = vec![Default::default(); os.iter().product()];
            rtn::tile(v, &s, &reps, &mut o);
            o
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}

fn emit_tile(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let xi = inp(n, 0)?;
    let reps = tile_repeats(c.g, n)?.into_iter().map(lit);
    let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(n.outputs[0]));
    Ok(quote! { #rt::ops::tensor::tile(#x, #sx, &[#(#reps),*], #y); })
}

/// OneHot's depth, (off, on) values and output axis.
fn one_hot_params(g: &Graph, n: &Node) -> Result<(usize, TensorData, usize)> {
    let (i, dv, vv) = (req(n, 0)?, req(n, 1)?, req(n, 2)?);
    let depth = match &g.values[dv].konst {
        Some(TensorData::F32(v)) if v.len() == 1 => v[0] as i64,
        Some(TensorData::F64(v)) if v.len() == 1 => v[0] as i64,
        Some(k) if k.len() == 1 => k.as_i64()?[0],
        _ => unsupported!(
            "OneHot's depth `{}` must be a constant scalar",
            g.values[dv].name
        ),
    };
    if depth < 1 {
        bail!("OneHot depth {depth} must be positive");
    }
    let Some(values) = g.values[vv].konst.clone().filter(|k| k.len() == 2) else {
        unsupported!(
            "OneHot's values `{}` must be a constant pair",
            g.values[vv].name
        )
    };
    let rank = g.values[i].shape.len() + 1;
    let ax = axis(n.attr_i("axis")?.unwrap_or(-1), rank)?;
    Ok((depth as usize, values, ax))
}

fn one_hot(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let idx = &g.values[req(n, 0)?];
    let (depth, values, ax) = one_hot_params(g, n)?;
    let mut shape = idx.shape.clone();
    shape.insert(ax, Dim::from(depth));
    if let (Some(ik), Some(is), Some(os)) = (
        &idx.konst,
        idx.static_shape(),
        crate::ir::static_shape(&shape),
    ) && foldable(g, n, &os)
    {
        let ids = match ik {
            TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::F64(v) => v.iter().map(|&x| x as i64).collect(),
            k => k.as_i64()?,
        };
        let (outer, inner) = (is[..ax].iter().product(), is[ax..].iter().product());
        let d = crate::each_data_map!(&values, v => {
            let mut o = vec![v[0]; os.iter().product()];
            rtn::one_hot(&ids, outer, inner, depth, v[0], v[1], &mut o);
            o
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    if idx.dtype == DType::Bool {
        bail!("OneHot indices must be numeric, found bool");
    }
    Ok(vec![OutInfo::new(values.dtype(), shape)])
}

fn emit_one_hot(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let ii = inp(n, 0)?;
    let (depth, _, ax) = one_hot_params(c.g, n)?;
    let is = &c.g.values[ii].shape;
    let (outer, inner) = (c.dim(&numel(&is[..ax])), c.dim(&numel(&is[ax..])));
    let v = c.src(inp(n, 2)?);
    let (x, y, depth) = (c.src(ii), c.dst(n.outputs[0]), lit(depth));
    Ok(quote! {
        let v = #v;
        #rt::ops::tensor::one_hot(#x, #outer, #inner, #depth, v[0], v[1], #y);
    })
}

/// DepthToSpace/SpaceToDepth: static NCHW dims, block size, DCR mode.
fn depth_space_params(g: &Graph, n: &Node) -> Result<([usize; 4], usize, bool)> {
    let x = &g.values[req(n, 0)?];
    let s = static_dims(g, &x.shape, &n.op)?;
    let Ok(s4) = <[usize; 4]>::try_from(s.as_slice()) else {
        bail!("{} takes a 4-D NCHW input, found {:?}", n.op, s);
    };
    let b = n.attr_i("blocksize")?.unwrap_or(0);
    if b < 1 {
        bail!("{} needs a positive `blocksize`", n.op);
    }
    let b = b as usize;
    let dcr = match n.attrs.get("mode") {
        None => true,
        Some(crate::ir::Attr::String(m)) if m == "DCR" => true,
        Some(crate::ir::Attr::String(m)) if m == "CRD" => false,
        Some(_) => bail!("{} `mode` must be \"DCR\" or \"CRD\"", n.op),
    };
    let ok = if n.op == "DepthToSpace" {
        s4[1] % (b * b) == 0
    } else {
        s4[2] % b == 0 && s4[3] % b == 0
    };
    if !ok {
        bail!(
            "{} with block size {b} does not divide the input {s:?}",
            n.op
        );
    }
    Ok((s4, b, dcr))
}

fn depth_space(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let (s, b, dcr) = depth_space_params(g, n)?;
    let d2s = n.op == "DepthToSpace";
    let os = if d2s {
        vec![s[0], s[1] / (b * b), s[2] * b, s[3] * b]
    } else {
        vec![s[0], s[1] * b * b, s[2] / b, s[3] / b]
    };
    if let Some(kd) = &x.konst {
        let d = crate::each_data_map!(kd, v => {
            let mut o = vec![Default::default(); v.len()];
            if d2s {
                rtn::depth_to_space(v, s, b, dcr, &mut o);
            } else {
                rtn::space_to_depth(v, s, b, dcr, &mut o);
            }
            o
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, from_static(&os))])
}

fn emit_depth_space(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (s, b, dcr) = depth_space_params(c.g, n)?;
    let s = s.map(lit);
    let b = lit(b);
    let (x, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
    Ok(if n.op == "DepthToSpace" {
        quote! { #rt::ops::tensor::depth_to_space(#x, [#(#s),*], #b, #dcr, #y); }
    } else {
        quote! { #rt::ops::tensor::space_to_depth(#x, [#(#s),*], #b, #dcr, #y); }
    })
}
