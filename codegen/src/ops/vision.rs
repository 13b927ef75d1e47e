//! The non-convolution ops of vision networks: MaxPool, AveragePool, GlobalAveragePool,
//! GlobalMaxPool, Resize (and the older Upsample), Pad and Split.
//!
//! Output sizes over a symbolic height or width use `Graph::floor_div`, which makes a derived
//! dim computed at run time. Every parameter the generated code needs (kernel, strides, pads,
//! scales, split sizes) must be known at compile time.
use super::{OpDef, OutInfo, axis, op, req};
use crate::error::{Error, Result, bail, unsupported};
use crate::ir::{Attr, DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::{concat as rc, pad as rp};

const POOL: &str = "1 to 3 spatial axes; pads, strides, dilations, `ceil_mode`, every `auto_pad`, `count_include_pad`; MaxPool on f32 and integer types, its `Indices` output is not supported; AveragePool f32";
const GLOBAL_POOL: &str = "f32, any number of spatial axes";
const RESIZE: &str = "nearest (any axes; `round_prefer_floor`/`_ceil`, `floor`, `ceil`) and linear (the last two axes); coordinate modes `half_pixel`, `half_pixel_symmetric`, `pytorch_half_pixel`, `align_corners`, `asymmetric`, `tf_half_pixel_for_nearest`; constant scales, or sizes that are constants or computed from input dims; `axes`, `keep_aspect_ratio_policy`. Not supported: cubic, antialias, `tf_crop_and_resize`";

const PAD_NOTES: &str = "constant, reflect, edge, wrap; negative pads crop; pads, value and axes must be constants (attributes before opset 11)";
const SPLIT_NOTES: &str = "sizes from the input (opset 13), the attribute (older) or `num_outputs` (opset 18, uneven last part); on shape values it folds at compile time";

/// Pooling, Resize, Pad and Split (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op(
        "MaxPool",
        POOL,
        |cx, n| infer_pool(cx.g, n),
        crate::emit::vision::pool,
    ),
    op(
        "AveragePool",
        POOL,
        |cx, n| infer_pool(cx.g, n),
        crate::emit::vision::pool,
    ),
    op(
        "GlobalAveragePool",
        GLOBAL_POOL,
        |cx, n| infer_global_pool(cx.g, n),
        crate::emit::vision::global_pool,
    ),
    op(
        "GlobalMaxPool",
        GLOBAL_POOL,
        |cx, n| infer_global_pool(cx.g, n),
        crate::emit::vision::global_pool,
    ),
    op(
        "Resize",
        RESIZE,
        |cx, n| infer_resize(cx.g, n),
        crate::emit::vision::resize,
    ),
    op(
        "Upsample",
        RESIZE,
        |cx, n| infer_resize(cx.g, n),
        crate::emit::vision::resize,
    ),
    op(
        "Pad",
        PAD_NOTES,
        |cx, n| infer_pad(cx.g, n),
        crate::emit::vision::pad,
    ),
    op(
        "Split",
        SPLIT_NOTES,
        |cx, n| infer_split(cx.g, n),
        crate::emit::vision::split,
    ),
];

/// A string attribute.
pub(crate) fn attr_str(n: &Node, name: &str) -> Result<Option<String>> {
    match n.attrs.get(name) {
        None => Ok(None),
        Some(Attr::String(s)) => Ok(Some(s.clone())),
        Some(_) => bail!("attribute `{name}` of {} must be a string", n.op),
    }
}

/// `floor(num / den)` as a dim (symbolic sizes become derived dims computed at run time).
fn floor_div(g: &mut Graph, num: &Dim, den: i64, node: &str) -> Result<Dim> {
    g.floor_div(num, den, node)
}

/// `ceil(num / den)` as a dim.
fn ceil_div(g: &mut Graph, num: &Dim, den: i64, node: &str) -> Result<Dim> {
    floor_div(g, &num.add(&Dim::constant(den - 1)), den, node)
}

// ---- pooling ------------------------------------------------------------------------------

/// Padding of a pool: explicit per-axis (begin, end), or `SAME_*` computed from the sizes.
#[derive(Clone, Debug, PartialEq)]
pub enum PoolPads {
    Explicit { begin: Vec<usize>, end: Vec<usize> },
    Same { upper: bool },
}

/// MaxPool / AveragePool attributes, per spatial axis.
#[derive(Clone, Debug)]
pub struct PoolAttrs {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads: PoolPads,
    pub ceil: bool,
    pub count_include_pad: bool,
}

fn positive(n: &Node, name: &str, v: Option<Vec<i64>>, len: usize) -> Result<Vec<usize>> {
    match v {
        None => Ok(vec![1; len]),
        Some(v) if v.len() == len && v.iter().all(|&x| x >= 1) => {
            Ok(v.into_iter().map(|x| x as usize).collect())
        }
        Some(v) => bail!(
            "{} `{name}` {v:?} must hold {len} values >= 1 (one per spatial axis)",
            n.op
        ),
    }
}

pub fn pool_attrs(g: &Graph, n: &Node) -> Result<PoolAttrs> {
    let x = &g.values[req(n, 0)?];
    if x.shape.len() < 3 {
        bail!(
            "{} needs an input of rank >= 3 (N, C, spatial…), found {}",
            n.op,
            g.show_shape(&x.shape)
        );
    }
    let sp = x.shape.len() - 2;
    if sp > 3 {
        unsupported!("{} over {sp} spatial axes is not supported (1 to 3)", n.op);
    }
    let kernel = match n.attr_ints("kernel_shape")? {
        Some(k) => positive(n, "kernel_shape", Some(k), sp)?,
        None => bail!("{} needs a `kernel_shape` attribute", n.op),
    };
    let strides = positive(n, "strides", n.attr_ints("strides")?, sp)?;
    let dilations = positive(n, "dilations", n.attr_ints("dilations")?, sp)?;
    let auto_pad = attr_str(n, "auto_pad")?.unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" | "" => match n.attr_ints("pads")? {
            None => PoolPads::Explicit {
                begin: vec![0; sp],
                end: vec![0; sp],
            },
            Some(p) if p.len() == 2 * sp && p.iter().all(|&v| v >= 0) => PoolPads::Explicit {
                begin: p[..sp].iter().map(|&v| v as usize).collect(),
                end: p[sp..].iter().map(|&v| v as usize).collect(),
            },
            Some(p) => bail!(
                "{} `pads` {p:?} must hold {} values >= 0 (begins, then ends)",
                n.op,
                2 * sp
            ),
        },
        "VALID" => PoolPads::Explicit {
            begin: vec![0; sp],
            end: vec![0; sp],
        },
        "SAME_UPPER" => PoolPads::Same { upper: true },
        "SAME_LOWER" => PoolPads::Same { upper: false },
        other => bail!("{} has an invalid auto_pad `{other}`", n.op),
    };
    if let PoolPads::Explicit { begin, end } = &pads {
        for i in 0..sp {
            // ONNX requires pads smaller than the window (so no window is all padding); the
            // output sizes below assume it.
            let span = (kernel[i] - 1) * dilations[i] + 1;
            if begin[i].max(end[i]) >= span {
                bail!(
                    "{} pads ({}, {}) on spatial axis {i} must be smaller than the window ({span})",
                    n.op,
                    begin[i],
                    end[i],
                );
            }
        }
    }
    Ok(PoolAttrs {
        kernel,
        strides,
        dilations,
        pads,
        ceil: n.attr_i("ceil_mode")?.unwrap_or(0) != 0,
        count_include_pad: n.attr_i("count_include_pad")?.unwrap_or(0) != 0,
    })
}

pub fn infer_pool(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let a = pool_attrs(g, n)?;
    let x = &g.values[req(n, 0)?];
    let dt = x.dtype;
    if !(dt == DType::F32 || n.op == "MaxPool" && dt != DType::Bool) {
        unsupported!("{} on {:?} tensors is not supported", n.op, dt);
    }
    let xs = x.shape.clone();
    let sp = xs.len() - 2;
    let mut shape = xs[..2].to_vec();
    for i in 0..sp {
        let (inp, k, s, d) = (&xs[2 + i], a.kernel[i], a.strides[i], a.dilations[i]);
        let span = ((k - 1) * d + 1) as i64;
        let out = match &a.pads {
            PoolPads::Same { .. } => ceil_div(g, inp, s as i64, &n.name)?,
            PoolPads::Explicit { begin, end } => {
                let (pb, pe) = (begin[i] as i64, end[i] as i64);
                let num = inp.add(&Dim::constant(pb + pe - span));
                if !a.ceil {
                    floor_div(g, &num, s as i64, &n.name)?.add(&Dim::constant(1))
                } else if let Some(iv) = inp.as_const() {
                    let num = iv + pb + pe - span;
                    if num < 0 {
                        bail!(
                            "the input's spatial axis {i} ({iv}) is smaller than the window ({span})"
                        );
                    }
                    let mut o = (num + s as i64 - 1) / s as i64 + 1;
                    // The last window must start inside the input or its begin padding.
                    if (o - 1) * s as i64 >= iv + pb {
                        o -= 1;
                    }
                    Dim::constant(o)
                } else if pe + s as i64 <= span {
                    // The last window can never start in the end padding: no correction.
                    ceil_div(g, &num, s as i64, &n.name)?.add(&Dim::constant(1))
                } else {
                    unsupported!(
                        "{} with ceil_mode, end padding {pe} and stride {s} over the symbolic \
                         size {} is not supported",
                        n.op,
                        g.show(inp)
                    );
                }
            }
        };
        shape.push(out);
    }
    let mut outs = vec![OutInfo::new(dt, shape.clone())];
    if n.op == "MaxPool" && n.outputs.len() > 1 {
        outs.push(OutInfo::new(DType::I64, shape));
    }
    Ok(outs)
}

pub fn infer_global_pool(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    if x.shape.len() < 2 {
        bail!("{} needs an input of rank >= 2", n.op);
    }
    if x.dtype != DType::F32 {
        unsupported!(
            "{} on {:?} tensors is not supported (float32 only)",
            n.op,
            x.dtype
        );
    }
    let mut shape = x.shape[..2].to_vec();
    shape.resize(x.shape.len(), Dim::constant(1));
    Ok(vec![OutInfo::new(DType::F32, shape)])
}

// ---- Pad ----------------------------------------------------------------------------------

/// Resolved Pad: per axis the (possibly negative) begin padding, the output shape, the mode
/// and the fill value (for `constant`).
pub struct PadParams {
    pub begin: Vec<i64>,
    pub shape: Vec<Dim>,
    pub mode: rp::PadMode,
    pub value: TensorData,
}

pub fn pad_params(g: &Graph, n: &Node) -> Result<PadParams> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    let mode = match attr_str(n, "mode")?.as_deref().unwrap_or("constant") {
        "constant" => rp::PadMode::Constant,
        "reflect" => rp::PadMode::Reflect,
        "edge" => rp::PadMode::Edge,
        "wrap" => rp::PadMode::Wrap,
        other => bail!("Pad has an invalid mode `{other}`"),
    };
    let zero = super::int_data(x.dtype, &[0]);
    let (pads, value, axes): (Vec<i64>, TensorData, Option<Vec<i64>>) = if g.opset < 11 {
        let pads = n
            .attr_ints("pads")?
            .ok_or_else(|| Error::invalid("Pad needs a `pads` attribute"))?;
        let v = n.attr_f("value")?.unwrap_or(0.0);
        let value = match x.dtype {
            DType::F32 => TensorData::F32(vec![v]),
            DType::F64 => TensorData::F64(vec![v as f64]),
            dt => super::int_data(dt, &[v as i64]),
        };
        (pads, value, None)
    } else {
        let p = req(n, 1)?;
        let pads = match g.values[p].konst.as_ref() {
            Some(k) => k.as_i64()?,
            None => unsupported!(
                "Pad's pads `{}` are computed at run time; kiln needs them at compile time",
                g.values[p].name
            ),
        };
        let value = match n.input(2) {
            None => zero.clone(),
            Some(v) => match g.values[v].konst.as_ref() {
                Some(k) if k.len() == 1 => k.clone(),
                Some(k) if k.is_empty() => zero.clone(),
                _ => unsupported!("Pad's constant_value must be a compile-time scalar"),
            },
        };
        let axes = match n.input(3) {
            None => None,
            Some(a) => match g.values[a].konst.as_ref() {
                Some(k) => Some(k.as_i64()?),
                None => unsupported!("Pad's axes must be known at compile time"),
            },
        };
        (pads, value, axes)
    };
    if value.dtype() != x.dtype {
        bail!(
            "Pad's constant_value is {:?}, the data {:?}",
            value.dtype(),
            x.dtype
        );
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| axis(a, r)).collect::<Result<_>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        bail!(
            "Pad has {} pads for {} axes (needs begins then ends)",
            pads.len(),
            axes.len()
        );
    }
    let mut begin = vec![0i64; r];
    let mut shape = x.shape.clone();
    for (j, &a) in axes.iter().enumerate() {
        let (pb, pe) = (pads[j], pads[axes.len() + j]);
        begin[a] = pb;
        let d = x.shape[a].add(&Dim::constant(pb + pe));
        if let Some(v) = d.as_const()
            && v < 0
        {
            bail!("Pad makes axis {a} negative ({})", g.show(&d));
        }
        if mode != rp::PadMode::Constant && (pb > 0 || pe > 0) && x.shape[a] == 0 {
            bail!("Pad mode {mode:?} cannot pad the empty axis {a}");
        }
        shape[a] = d;
    }
    Ok(PadParams {
        begin,
        shape,
        mode,
        value,
    })
}

pub fn infer_pad(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let p = pad_params(g, n)?;
    if let (Some(k), Some(xs), Some(os)) = (
        &x.konst,
        x.static_shape(),
        crate::ir::static_shape(&p.shape),
    ) && super::foldable(g, n, &os)
    {
        let v = &p.value;
        let d = crate::each_data_map!(k, data => {
            let fill = typed(v, data).ok_or_else(|| Error::invalid("Pad value type"))?[0];
            let mut out = vec![fill; os.iter().product()];
            rp::pad(data, &xs, &p.begin, &mut out, &os, p.mode, fill);
            out
        });
        return Ok(vec![OutInfo::konst(os, d)]);
    }
    Ok(vec![OutInfo::new(x.dtype, p.shape)])
}

/// `d`'s data as `&[T]` when it holds the element type of `_like`.
fn typed<'a, T: 'static>(d: &'a TensorData, _like: &[T]) -> Option<&'a [T]> {
    let any: &dyn std::any::Any = crate::each_data!(d, v => v as &dyn std::any::Any);
    any.downcast_ref::<Vec<T>>().map(Vec::as_slice)
}

// ---- Split --------------------------------------------------------------------------------

/// Resolved Split: the axis, and each output's (start, length) along it.
pub struct SplitParams {
    pub axis: usize,
    pub parts: Vec<(Dim, Dim)>,
}

pub fn split_params(g: &Graph, n: &Node) -> Result<SplitParams> {
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    let ax = axis(n.attr_i("axis")?.unwrap_or(0), r)?;
    let dim = x.shape[ax].clone();
    let outs = n.outputs.len();
    let sizes: Option<Vec<i64>> = if g.opset < 13 {
        n.attr_ints("split")?
    } else {
        match n.input(1) {
            None => None,
            Some(s) => match g.values[s].konst.as_ref() {
                Some(k) => Some(k.as_i64()?),
                None => unsupported!(
                    "Split sizes `{}` are computed at run time; kiln needs them at compile time",
                    g.values[s].name
                ),
            },
        }
    };
    let lens: Vec<Dim> = match sizes {
        Some(s) => {
            if s.len() != outs {
                bail!("Split has {} sizes for {outs} outputs", s.len());
            }
            if s.iter().any(|&v| v < 0) {
                bail!("Split sizes {s:?} must be >= 0");
            }
            let total = Dim::constant(s.iter().sum());
            if total != dim {
                bail!(
                    "Split sizes {s:?} add up to {}, not the axis size {}",
                    g.show(&total),
                    g.show(&dim)
                );
            }
            s.into_iter().map(Dim::constant).collect()
        }
        None => {
            let num = match n.attr_i("num_outputs")? {
                Some(k) if g.opset >= 18 => {
                    if k as usize != outs || k < 1 {
                        bail!("Split num_outputs {k} does not match its {outs} outputs");
                    }
                    k
                }
                _ => outs as i64,
            };
            match dim.as_const() {
                Some(d) => {
                    // Opset 18: the last chunk may be smaller (chunk = ceil(d / num)).
                    let chunk = (d + num - 1) / num;
                    if g.opset < 18 && d % num != 0 {
                        bail!("Split cannot divide the axis size {d} into {num} equal parts");
                    }
                    if (num - 1) * chunk >= d && num > 1 && d > 0 {
                        bail!("Split of {d} into {num} parts would leave an empty last part");
                    }
                    (0..num)
                        .map(|i| Dim::constant(chunk.min(d - i * chunk).max(0)))
                        .collect()
                }
                None => match dim.div_const(num) {
                    Some(q) => vec![q; num as usize],
                    None => unsupported!(
                        "Split of the symbolic size {} into {num} equal parts is not supported",
                        g.show(&dim)
                    ),
                },
            }
        }
    };
    let mut start = Dim::constant(0);
    let mut parts = Vec::with_capacity(outs);
    for l in lens {
        parts.push((start.clone(), l.clone()));
        start = start.add(&l);
    }
    Ok(SplitParams { axis: ax, parts })
}

pub fn infer_split(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let x = &g.values[req(n, 0)?];
    let p = split_params(g, n)?;
    let mut outs = Vec::with_capacity(p.parts.len());
    let outer = numel(&x.shape[..p.axis]);
    let inner = numel(&x.shape[p.axis + 1..]);
    for (start, len) in &p.parts {
        let mut shape = x.shape.clone();
        shape[p.axis] = len.clone();
        // Shape vectors: split the symbolic values.
        if let (Some(v), 1, Some(s), Some(l)) = (
            x.int_values(),
            x.shape.len(),
            start.as_usize(),
            len.as_usize(),
        ) && x.sym.is_some()
        {
            outs.push(OutInfo::values(x.dtype, shape, v[s..s + l].to_vec()));
            continue;
        }
        if let (Some(k), Some(o), Some(a), Some(i), Some(s), Some(l)) = (
            &x.konst,
            outer.as_usize(),
            x.shape[p.axis].as_usize(),
            inner.as_usize(),
            start.as_usize(),
            len.as_usize(),
        ) {
            let os = crate::ir::static_shape(&shape).expect("static");
            let d = crate::each_data_map!(k, data => {
                let mut out = vec![Default::default(); o * l * i];
                rc::split_part(data, o, a, i, s, l, &mut out);
                out
            });
            outs.push(OutInfo::konst(os, d));
            continue;
        }
        outs.push(OutInfo::new(x.dtype, shape));
    }
    Ok(outs)
}

// ---- Resize / Upsample --------------------------------------------------------------------

/// How an axis' source coordinates scale: a constant factor, or `out / in` from the sizes
/// (computed at run time when the sizes are symbolic).
#[derive(Clone, Debug, PartialEq)]
pub enum AxisScale {
    Factor(f64),
    FromSizes,
}

/// Resolved Resize / Upsample (the output shape is the output value's).
pub struct ResizeParams {
    pub linear: bool,
    pub coord: kiln_runtime::ops::resize::Coord,
    pub nearest: kiln_runtime::ops::resize::Nearest,
    pub scales: Vec<AxisScale>,
    /// The constant scales, when the model gives scales.
    factors: Option<Vec<f32>>,
    /// The target sizes, when the model gives sizes.
    sizes: Option<Vec<Dim>>,
}

/// The constant f32 values of an optional input (`None` if omitted or empty).
fn const_floats(g: &Graph, n: &Node, i: usize, what: &str) -> Result<Option<Vec<f32>>> {
    match n.input(i) {
        None => Ok(None),
        Some(v) => match g.values[v].konst.as_ref() {
            Some(k) if k.is_empty() => Ok(None),
            Some(k) => Ok(Some(k.as_f32())),
            None if g.values[v].numel() == 0 => Ok(None),
            None => unsupported!(
                "{} {what} `{}` are computed at run time; kiln needs them at compile time",
                n.op,
                g.values[v].name
            ),
        },
    }
}

pub fn resize_params(g: &Graph, n: &Node) -> Result<ResizeParams> {
    use kiln_runtime::ops::resize::{Coord, Nearest};
    let x = &g.values[req(n, 0)?];
    let r = x.shape.len();
    let mode = attr_str(n, "mode")?.unwrap_or_else(|| "nearest".into());
    let linear = match mode.as_str() {
        "nearest" => false,
        "linear" | "bilinear" => true,
        "cubic" => unsupported!(
            "{} mode `cubic` is not supported (nearest and linear are)",
            n.op
        ),
        other => bail!("{} has an invalid mode `{other}`", n.op),
    };
    let legacy = n.op == "Upsample" || g.opset < 11;
    let (coord, nearest) = if legacy {
        // Upsample and Resize-10: asymmetric coordinates; nearest rounds down when upsampling
        // and up when downsampling (onnxruntime's behaviour for these opsets).
        (Coord::Asymmetric, Nearest::Simple)
    } else {
        let coord = match attr_str(n, "coordinate_transformation_mode")?
            .as_deref()
            .unwrap_or("half_pixel")
        {
            "half_pixel" => Coord::HalfPixel,
            "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
            "pytorch_half_pixel" => Coord::PytorchHalfPixel,
            "align_corners" => Coord::AlignCorners,
            "asymmetric" => Coord::Asymmetric,
            "tf_half_pixel_for_nearest" => Coord::TfHalfPixelForNearest,
            "tf_crop_and_resize" => unsupported!(
                "Resize coordinate_transformation_mode `tf_crop_and_resize` is not supported"
            ),
            other => bail!("Resize has an invalid coordinate_transformation_mode `{other}`"),
        };
        let nearest = match attr_str(n, "nearest_mode")?
            .as_deref()
            .unwrap_or("round_prefer_floor")
        {
            "round_prefer_floor" => Nearest::RoundPreferFloor,
            "round_prefer_ceil" => Nearest::RoundPreferCeil,
            "floor" => Nearest::Floor,
            "ceil" => Nearest::Ceil,
            other => bail!("Resize has an invalid nearest_mode `{other}`"),
        };
        if n.attr_i("antialias")?.unwrap_or(0) != 0 {
            unsupported!("Resize with antialias is not supported");
        }
        (coord, nearest)
    };
    // Scales or sizes.
    let (scales, sizes): (Option<Vec<f32>>, Option<Vec<Dim>>) = if n.op == "Upsample" && g.opset < 9
    {
        (
            n.attrs.get("scales").and_then(|a| match a {
                Attr::Floats(f) => Some(f.clone()),
                _ => None,
            }),
            None,
        )
    } else {
        let si = if n.op == "Upsample" || g.opset < 11 {
            1
        } else {
            2
        };
        let scales = const_floats(g, n, si, "scales")?;
        let sizes = if si == 2 {
            match n.input(3) {
                None => None,
                Some(v) => match g.values[v].int_values() {
                    Some(s) if s.is_empty() => None,
                    Some(s) => Some(s),
                    None if g.values[v].numel() == 0 => None,
                    None => unsupported!(
                        "Resize sizes `{}` depend on run-time data; kiln needs them at compile \
                         time (constants, or arithmetic on input dims)",
                        g.values[v].name
                    ),
                },
            }
        } else {
            None
        };
        (scales, sizes)
    };
    // Opset 18: `axes` names the axes the scales / sizes are for; the others keep their size.
    let axes: Option<Vec<usize>> = match n.attr_ints("axes")? {
        Some(a) if !legacy => {
            let a: Vec<usize> = a.iter().map(|&v| axis(v, r)).collect::<Result<_>>()?;
            if (1..a.len()).any(|i| a[..i].contains(&a[i])) {
                bail!("Resize axes {a:?} repeat an axis");
            }
            Some(a)
        }
        _ => None,
    };
    let (scales, mut sizes) = match &axes {
        None => (scales, sizes),
        Some(a) => {
            let scales = match scales {
                Some(s) if s.len() == a.len() => {
                    let mut full = vec![1.0f32; r];
                    for (&ax, &v) in a.iter().zip(&s) {
                        full[ax] = v;
                    }
                    Some(full)
                }
                Some(s) => bail!("Resize has {} scales for {} axes", s.len(), a.len()),
                None => None,
            };
            let sizes = match sizes {
                Some(sz) if sz.len() == a.len() => {
                    let mut full = x.shape.clone();
                    for (&ax, v) in a.iter().zip(sz) {
                        full[ax] = v;
                    }
                    Some(full)
                }
                Some(sz) => bail!("Resize has {} sizes for {} axes", sz.len(), a.len()),
                None => None,
            };
            (scales, sizes)
        }
    };
    let policy = if legacy {
        None
    } else {
        attr_str(n, "keep_aspect_ratio_policy")?
    };
    let mut policy_scales = None;
    match policy.as_deref() {
        None | Some("stretch") => {}
        Some(pol @ ("not_larger" | "not_smaller")) => {
            // One scale for the resized axes (the smallest or largest of sizes / input), and
            // sizes rounded half up from it: needs static sizes and input dims.
            let Some(sz) = &sizes else {
                bail!("Resize keep_aspect_ratio_policy `{pol}` needs sizes");
            };
            let resized: Vec<usize> = axes.clone().unwrap_or_else(|| (0..r).collect());
            let (ins, outs) = match (
                crate::ir::static_shape(&x.shape),
                crate::ir::static_shape(sz),
            ) {
                (Some(i), Some(o)) => (i, o),
                _ => unsupported!(
                    "Resize keep_aspect_ratio_policy `{pol}` with symbolic sizes is not supported"
                ),
            };
            let ratios = resized.iter().map(|&a| outs[a] as f64 / ins[a] as f64);
            let scale = if pol == "not_larger" {
                ratios.fold(f64::INFINITY, f64::min)
            } else {
                ratios.fold(0.0, f64::max)
            };
            let mut full = x.shape.clone();
            let mut sc = vec![AxisScale::Factor(1.0); r];
            for &a in &resized {
                full[a] = Dim::constant((scale * ins[a] as f64 + 0.5) as i64);
                sc[a] = AxisScale::Factor(scale);
            }
            sizes = Some(full);
            policy_scales = Some(sc);
        }
        Some(other) => bail!("Resize has an invalid keep_aspect_ratio_policy `{other}`"),
    }
    let axis_scales = match (&scales, &sizes) {
        (Some(s), None) => {
            if s.len() != r {
                bail!("{} has {} scales for an input of rank {r}", n.op, s.len());
            }
            if let Some(sc) = s.iter().find(|v| !(**v > 0.0 && v.is_finite())) {
                bail!("{} scale {sc} must be positive and finite", n.op);
            }
            s.iter().map(|&v| AxisScale::Factor(v as f64)).collect()
        }
        (None, Some(sz)) => {
            if sz.len() != r {
                bail!("Resize has {} sizes for an input of rank {r}", sz.len());
            }
            policy_scales.unwrap_or_else(|| vec![AxisScale::FromSizes; r])
        }
        (Some(_), Some(_)) => bail!("Resize must have exactly one of scales and sizes, not both"),
        (None, None) => bail!("{} needs scales or sizes", n.op),
    };
    Ok(ResizeParams {
        linear,
        coord,
        nearest,
        scales: axis_scales,
        factors: scales,
        sizes,
    })
}

/// `floor(d · scale)` for an `f32` scale: exactly `floor(d · m / 2^e)` where `scale = m / 2^e`.
fn scaled_dim(g: &mut Graph, d: &Dim, scale: f32, node: &str) -> Result<Dim> {
    if let Some(v) = d.as_const() {
        return Ok(Dim::constant((v as f64 * scale as f64).floor() as i64));
    }
    let s = scale as f64;
    let mut e = 0u32;
    while s * (1u64 << e) as f64 != (s * (1u64 << e) as f64).floor() {
        e += 1;
        if e > 24 {
            unsupported!("Resize scale {scale} over the symbolic size {}", g.show(d));
        }
    }
    let m = (s * (1u64 << e) as f64) as i64;
    floor_div(g, &d.scale(m), 1i64 << e, node)
}

pub fn infer_resize(g: &mut Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let p = resize_params(g, n)?;
    let x = g.values[req(n, 0)?].clone();
    let numeric = matches!(
        x.dtype,
        DType::F32 | DType::F64 | DType::U8 | DType::I8 | DType::I32 | DType::I64
    );
    if !(x.dtype == DType::F32 || !p.linear && numeric) {
        unsupported!(
            "{} {} on {:?} tensors is not supported",
            n.op,
            if p.linear { "linear" } else { "nearest" },
            x.dtype
        );
    }
    let shape = match (&p.factors, &p.sizes) {
        (Some(f), _) => {
            let mut shape = Vec::with_capacity(f.len());
            for (d, &sc) in x.shape.iter().zip(f) {
                shape.push(scaled_dim(g, d, sc, &n.name)?);
            }
            shape
        }
        (None, Some(sz)) => sz.clone(),
        (None, None) => unreachable!("resize_params checked"),
    };
    if p.linear {
        // Interpolation on the last two axes only; the others must keep their size.
        let outer = shape.len().saturating_sub(2);
        for (a, (out_d, in_d)) in shape.iter().zip(&x.shape).enumerate().take(outer) {
            let unit = match &p.scales[a] {
                AxisScale::Factor(f) => *f == 1.0,
                AxisScale::FromSizes => true,
            };
            if !(out_d == in_d && unit) {
                unsupported!(
                    "{} linear on axis {a} of {} is not supported (bilinear over the last two \
                     axes only)",
                    n.op,
                    g.show_shape(&x.shape)
                );
            }
        }
    }
    Ok(vec![OutInfo::new(x.dtype, shape)])
}
