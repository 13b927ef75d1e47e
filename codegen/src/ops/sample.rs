//! Sampling at computed coordinates: GridSample and AffineGrid (spatial transformer networks,
//! optical-flow warps, deformable heads). Emission calls `kiln_runtime::ops::sample` (scalar
//! code shared by every ISA); AffineGrid folds with the same function when theta is a constant.
use proc_macro2::TokenStream;
use quote::quote;

use super::vision::attr_str;
use super::{InferCx, OpDef, OutInfo, foldable, op, req};
use crate::emit::nodes::inp;
use crate::emit::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Graph, Node, TensorData, numel};
use kiln_runtime::ops::sample as rs;

const GRID_SAMPLE: &str = "f32; 1 to 3 spatial dims (4-D and 5-D inputs); modes nearest, linear/bilinear, cubic/bicubic; padding zeros, border, reflection; `align_corners`";
const ROI_ALIGN: &str = "f32, avg and max (max of weighted taps, as onnxruntime); `output_half_pixel` and `half_pixel` coordinates; sampling_ratio 0 (adaptive) or fixed; an out-of-range batch index is an `Err` at run time";
const AFFINE_GRID: &str = "f32, 2-D and 3-D; `align_corners`; the size input must be a constant; folded when theta is a constant";

/// GridSample and AffineGrid (see `registry`).
pub(super) const OPS: &[OpDef] = &[
    op("GridSample", GRID_SAMPLE, grid_sample, emit_grid_sample),
    op(
        "AffineGrid",
        AFFINE_GRID,
        |cx, n| affine_grid(cx.g, n),
        emit_affine_grid,
    ),
    op(
        "RoiAlign",
        ROI_ALIGN,
        |cx, n| roi_align(cx.g, n),
        emit_roi_align,
    ),
];

/// `align_corners` as a bool.
fn align_corners(n: &Node) -> Result<bool> {
    match n.attr_i("align_corners")?.unwrap_or(0) {
        0 => Ok(false),
        1 => Ok(true),
        v => bail!("attribute `align_corners` must be 0 or 1, found {v}"),
    }
}

/// GridSample's mode, padding and `align_corners` (opset 16's names `bilinear`/`bicubic` and
/// opset 20's `linear`/`cubic` alike).
fn grid_sample_attrs(n: &Node) -> Result<(rs::SampleMode, rs::Padding, bool)> {
    let mode = match attr_str(n, "mode")?.as_deref() {
        None | Some("linear" | "bilinear") => rs::SampleMode::Linear,
        Some("nearest") => rs::SampleMode::Nearest,
        Some("cubic" | "bicubic") => rs::SampleMode::Cubic,
        Some(m) => bail!("GridSample `mode` must be linear, nearest or cubic, found \"{m}\""),
    };
    let pad = match attr_str(n, "padding_mode")?.as_deref() {
        None | Some("zeros") => rs::Padding::Zeros,
        Some("border") => rs::Padding::Border,
        Some("reflection") => rs::Padding::Reflection,
        Some(p) => {
            bail!("GridSample `padding_mode` must be zeros, border or reflection, found \"{p}\"")
        }
    };
    Ok((mode, pad, align_corners(n)?))
}

fn grid_sample(cx: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    grid_sample_attrs(n)?;
    let g = &*cx.g;
    let (x, grid) = (&g.values[req(n, 0)?], &g.values[req(n, 1)?]);
    if x.dtype != DType::F32 || grid.dtype != DType::F32 {
        unsupported!(
            "GridSample on {:?} data with a {:?} grid is not supported (f32 only)",
            x.dtype,
            grid.dtype
        );
    }
    let r = x.shape.len().saturating_sub(2);
    if !(1..=rs::MAX_SPATIAL).contains(&r) {
        unsupported!(
            "GridSample takes 1 to {} spatial dims, found input {}",
            rs::MAX_SPATIAL,
            g.show_shape(&x.shape)
        );
    }
    if grid.shape.len() != r + 2 || grid.shape[r + 1] != r {
        bail!(
            "GridSample's grid must be [N, {r} output dims, {r}] for input {}, found {}",
            g.show_shape(&x.shape),
            g.show_shape(&grid.shape)
        );
    }
    let (xs, gs) = (x.shape.clone(), grid.shape.clone());
    if !cx.assumed.equal(&xs[0], &gs[0]) {
        bail!(
            "GridSample's input {} and grid {} differ in batch size",
            cx.g.show_shape(&xs),
            cx.g.show_shape(&gs)
        );
    }
    let mut shape = vec![xs[0].clone(), xs[1].clone()];
    shape.extend_from_slice(&gs[1..=r]);
    Ok(vec![OutInfo::new(DType::F32, shape)])
}

fn emit_grid_sample(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (xi, gi) = (inp(n, 0)?, inp(n, 1)?);
    let (mode, pad, align) = grid_sample_attrs(n)?;
    let gs = &c.g.values[gi].shape;
    let points = c.dim(&numel(&gs[1..gs.len() - 1]));
    let mode = match mode {
        rs::SampleMode::Nearest => quote!(Nearest),
        rs::SampleMode::Linear => quote!(Linear),
        rs::SampleMode::Cubic => quote!(Cubic),
    };
    let pad = match pad {
        rs::Padding::Zeros => quote!(Zeros),
        rs::Padding::Border => quote!(Border),
        rs::Padding::Reflection => quote!(Reflection),
    };
    let (x, xs, grid, y) = (c.src(xi), c.shape(xi), c.src(gi), c.dst(n.outputs[0]));
    Ok(quote! {
        #rt::ops::sample::grid_sample(#x, #xs, #grid, #points,
            #rt::ops::sample::SampleMode::#mode, #rt::ops::sample::Padding::#pad, #align, #y);
    })
}

/// AffineGrid's output spatial dims (from the constant size `[N, C, (D,) H, W]`) and
/// `align_corners`, checked against theta `[N, r, r+1]`.
fn affine_params(g: &Graph, n: &Node) -> Result<(Vec<usize>, bool)> {
    let (t, sv) = (&g.values[req(n, 0)?], req(n, 1)?);
    let Some(size) = g.values[sv]
        .konst
        .as_ref()
        .map(TensorData::as_i64)
        .transpose()?
    else {
        unsupported!(
            "AffineGrid's size `{}` must be a constant (the output shape depends on it)",
            g.values[sv].name
        );
    };
    if !(size.len() == 4 || size.len() == 5) || size.iter().any(|&d| d < 0) {
        bail!("AffineGrid's size must be [N, C, H, W] or [N, C, D, H, W], found {size:?}");
    }
    let r = size.len() - 2;
    let want = [size[0] as usize, r, r + 1];
    if t.shape.len() != 3 || t.shape.iter().zip(want).any(|(d, w)| *d != w) {
        bail!(
            "AffineGrid's theta must be {want:?} for size {size:?}, found {}",
            g.show_shape(&t.shape)
        );
    }
    if t.dtype != DType::F32 {
        unsupported!(
            "AffineGrid on {:?} theta is not supported (f32 only)",
            t.dtype
        );
    }
    let mut dims = vec![size[0] as usize];
    dims.extend(size[2..].iter().map(|&d| d as usize));
    Ok((dims, align_corners(n)?))
}

fn affine_grid(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (dims, align) = affine_params(g, n)?;
    let r = dims.len() - 1;
    let mut os = dims.clone();
    os.push(r);
    if let Some(TensorData::F32(th)) = &g.values[req(n, 0)?].konst
        && foldable(g, n, &os)
    {
        let mut o = vec![0.0; os.iter().product()];
        rs::affine_grid(th, dims[0], &dims[1..], align, &mut o);
        return Ok(vec![OutInfo::konst(os, TensorData::F32(o))]);
    }
    Ok(vec![OutInfo::new(
        DType::F32,
        os.into_iter().map(Dim::from).collect(),
    )])
}

fn emit_affine_grid(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (dims, align) = affine_params(c.g, n)?;
    let nb = lit(dims[0]);
    let sizes = dims[1..].iter().map(|&d| lit(d));
    let (th, y) = (c.src(inp(n, 0)?), c.dst(n.outputs[0]));
    Ok(quote! {
        #rt::ops::sample::affine_grid(#th, #nb, &[#(#sizes),*], #align, #y);
    })
}

/// RoiAlign's attributes (opset 10 has no `coordinate_transformation_mode`: `output_half_pixel`).
fn roi_params(g: &Graph, n: &Node) -> Result<rs::RoiAlignParams> {
    let max = match attr_str(n, "mode")?.as_deref() {
        None | Some("avg") => false,
        Some("max") => true,
        Some(m) => bail!("RoiAlign `mode` must be avg or max, found \"{m}\""),
    };
    let default_ctm = if g.opset >= 16 {
        "half_pixel"
    } else {
        "output_half_pixel"
    };
    let half_pixel = match attr_str(n, "coordinate_transformation_mode")?
        .as_deref()
        .unwrap_or(default_ctm)
    {
        "half_pixel" => true,
        "output_half_pixel" => false,
        m => bail!(
            "RoiAlign `coordinate_transformation_mode` must be half_pixel or output_half_pixel, found \"{m}\""
        ),
    };
    let dim = |name: &str, default: i64| -> Result<usize> {
        match n.attr_i(name)?.unwrap_or(default) {
            v if v >= 0 => Ok(v as usize),
            v => bail!("RoiAlign `{name}` must not be negative, found {v}"),
        }
    };
    Ok(rs::RoiAlignParams {
        out_h: dim("output_height", 1)?,
        out_w: dim("output_width", 1)?,
        sampling_ratio: dim("sampling_ratio", 0)?,
        spatial_scale: n.attr_f("spatial_scale")?.unwrap_or(1.0),
        max,
        half_pixel,
    })
}

fn roi_align(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let p = roi_params(g, n)?;
    let (x, rois, bi) = (
        &g.values[req(n, 0)?],
        &g.values[req(n, 1)?],
        &g.values[req(n, 2)?],
    );
    if x.dtype != DType::F32 || rois.dtype != DType::F32 {
        unsupported!("RoiAlign on {:?} data is not supported (f32 only)", x.dtype);
    }
    if bi.dtype != DType::I64 {
        bail!(
            "RoiAlign's batch_indices must be int64, found {:?}",
            bi.dtype
        );
    }
    if x.shape.len() != 4
        || rois.shape.len() != 2
        || rois.shape[1] != 4
        || bi.shape.len() != 1
        || rois.shape[0] != bi.shape[0]
    {
        bail!(
            "RoiAlign takes X [N, C, H, W], rois [R, 4] and batch_indices [R], found {}, {} and {}",
            g.show_shape(&x.shape),
            g.show_shape(&rois.shape),
            g.show_shape(&bi.shape)
        );
    }
    let shape = vec![
        rois.shape[0].clone(),
        x.shape[1].clone(),
        Dim::from(p.out_h),
        Dim::from(p.out_w),
    ];
    Ok(vec![OutInfo::new(DType::F32, shape)])
}

fn emit_roi_align(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let p = roi_params(c.g, n)?;
    let (xi, ri, bi) = (inp(n, 0)?, inp(n, 1)?, inp(n, 2)?);
    let xs = c.g.values[xi].shape.iter().map(|d| c.dim(d));
    let (x, rois, y) = (c.src(xi), c.src(ri), c.dst(n.outputs[0]));
    let batch = c.src(bi);
    let (oh, ow, sr) = (lit(p.out_h), lit(p.out_w), lit(p.sampling_ratio));
    let (scale, max, half) = (p.spatial_scale, p.max, p.half_pixel);
    let (iname, node) = (crate::emit::nodes::root_name(c, bi), &n.name);
    Ok(quote! {
        #rt::ops::sample::roi_align(#x, [#(#xs),*], #rois, #batch,
            #rt::ops::sample::RoiAlignParams { out_h: #oh, out_w: #ow, sampling_ratio: #sr,
                spatial_scale: #scale, max: #max, half_pixel: #half },
            #y).map_err(|e| e.at(#iname, #node))?;
    })
}
