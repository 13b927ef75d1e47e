//! Emission of the non-convolution vision ops: pooling, Resize/Upsample, Pad and Split,
//! referenced by their `OpDef`s.
use proc_macro2::TokenStream;
use quote::quote;

use super::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{DType, Dim, Node, TensorData, numel};
use crate::ops::{AxisScale, PoolPads};
use kiln_runtime::ops::{pad::PadMode, resize};

/// Global average/max pooling (NCHW, or NHWC after `passes::layout`).
pub(crate) fn global_pool(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let xi = input(n, 0)?;
    let xs = &c.g.values[xi].shape;
    let planes = c.dim(&numel(&xs[..2]));
    let plane = c.dim(&numel(&xs[2..]));
    let (x, y, rt) = (c.src(xi), c.dst(n.outputs[0]), c.rt);
    if n.attrs.contains_key(crate::passes::NHWC_ATTR) {
        // NHWC input (passes::layout): reduce over the pixels of each image, channels
        // innermost; the [N, C, 1, 1] result is the same in both orders.
        let (nb, ch, hw) = (c.dim(&xs[0]), c.dim(&xs[1]), plane);
        let f = if n.op == "GlobalMaxPool" {
            quote!(reduce_max)
        } else {
            quote!(reduce_mean)
        };
        return Ok(quote! { #rt::ops::reduce::#f(#x, #y, #nb, #hw, #ch); });
    }
    let f = if n.op == "GlobalMaxPool" {
        quote!(global_max_pool)
    } else {
        quote!(global_avg_pool)
    };
    Ok(quote! { #rt::ops::pool::#f(#x, #planes, #plane, #y); })
}

fn input(n: &Node, i: usize) -> Result<usize> {
    match n.input(i) {
        Some(v) => Ok(v),
        None => bail!("missing input #{i}"),
    }
}

pub(crate) fn pool(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (g, rt) = (c.g, c.rt);
    if n.op == "MaxPool" && n.outputs[1..].iter().any(|&o| c.plan.storage[o].is_some()) {
        unsupported!("MaxPool's optional Indices output is not supported (only Y)");
    }
    let a = crate::ops::pool_attrs(g, n)?;
    let xi = input(n, 0)?;
    let xs = &g.values[xi].shape;
    let ys = &g.values[n.outputs[0]].shape;
    let sp = xs.len() - 2;
    let lead = 3 - sp;
    // Per (depth, height, width) axis; axes the op does not have are 1 / no padding.
    let mut ind = Vec::new();
    let mut outd = Vec::new();
    let (mut k, mut s, mut d) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pb, mut pe) = (Vec::new(), Vec::new());
    let mut pre = TokenStream::new();
    for ax in 0..3 {
        if ax < lead {
            for v in [&mut ind, &mut outd, &mut k, &mut s, &mut d] {
                v.push(quote!(1));
            }
            pb.push(quote!(0));
            pe.push(quote!(0));
            continue;
        }
        let i = ax - lead;
        let (di, dout) = (c.dim(&xs[2 + i]), c.dim(&ys[2 + i]));
        let (kk, ss, dd) = (lit(a.kernel[i]), lit(a.strides[i]), lit(a.dilations[i]));
        match &a.pads {
            PoolPads::Explicit { begin, end } => {
                pb.push({
                    let v = lit(begin[i]);
                    quote!(#v)
                });
                pe.push({
                    let v = lit(end[i]);
                    quote!(#v)
                });
            }
            PoolPads::Same { upper } => {
                let id = quote::format_ident!("pad{}", ax);
                pre.extend(quote! {
                    let #id = #rt::ops::pool::same_pads(#di, #dout, #kk, #ss, #dd, #upper);
                });
                pb.push(quote!(#id.0));
                pe.push(quote!(#id.1));
            }
        }
        ind.push(di);
        outd.push(dout);
        k.push(quote!(#kk));
        s.push(quote!(#ss));
        d.push(quote!(#dd));
    }
    let planes = c.dim(&numel(&xs[..2]));
    let (x, y) = (c.src(xi), c.dst(n.outputs[0]));
    let call = if n.op == "MaxPool" {
        let dt = g.values[xi].dtype;
        let t = super::rust_ty(dt);
        let lowest = if dt.is_float() {
            quote!(#t::NEG_INFINITY)
        } else {
            quote!(#t::MIN)
        };
        if n.attrs.contains_key(crate::passes::NHWC_ATTR) {
            // NHWC activations (passes::layout: 2-D, f32).
            let (nb, ch) = (c.dim(&xs[0]), c.dim(&xs[1]));
            quote!(#rt::ops::pool::max_pool_nhwc(#x, #nb, #ch, &geom, #y))
        } else {
            quote!(#rt::ops::pool::max_pool(#x, #planes, &geom, #lowest, #y))
        }
    } else {
        let cip = a.count_include_pad;
        quote!(#rt::ops::pool::avg_pool(#x, #planes, &geom, #cip, #y))
    };
    Ok(quote! {{
        #pre
        let geom = #rt::ops::pool::PoolGeom {
            in_dims: [#(#ind),*],
            out_dims: [#(#outd),*],
            kernel: [#(#k),*],
            stride: [#(#s),*],
            dilation: [#(#d),*],
            pad_begin: [#(#pb),*],
            pad_end: [#(#pe),*],
        };
        #call;
    }})
}

/// A literal of the value's element type.
fn scalar_tokens(v: &TensorData) -> Result<TokenStream> {
    fn float(x: f64, t: TokenStream) -> TokenStream {
        if x.is_nan() {
            quote!(#t::NAN)
        } else if x == f64::INFINITY {
            quote!(#t::INFINITY)
        } else if x == f64::NEG_INFINITY {
            quote!(#t::NEG_INFINITY)
        } else {
            let l = proc_macro2::Literal::f64_unsuffixed(x);
            quote!((#l as #t))
        }
    }
    Ok(match v {
        TensorData::F32(x) => {
            let v = x[0];
            if v.is_finite() {
                quote!(#v)
            } else {
                float(v as f64, quote!(f32))
            }
        }
        TensorData::F64(x) => float(x[0], quote!(f64)),
        TensorData::Bool(b) => {
            let b = b[0];
            quote!(#b)
        }
        other => {
            let i = other.as_i64()?[0];
            let t = super::rust_ty(other.dtype());
            quote!((#i as #t))
        }
    })
}

pub(crate) fn pad(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (g, rt) = (c.g, c.rt);
    let p = crate::ops::pad_params(g, n)?;
    let xi = input(n, 0)?;
    let (x, sx, y, so) = (
        c.src(xi),
        c.shape(xi),
        c.dst(n.outputs[0]),
        c.shape(n.outputs[0]),
    );
    let begin = &p.begin;
    let mode = match p.mode {
        PadMode::Constant => quote!(Constant),
        PadMode::Reflect => quote!(Reflect),
        PadMode::Edge => quote!(Edge),
        PadMode::Wrap => quote!(Wrap),
    };
    let value = scalar_tokens(&p.value)?;
    Ok(quote! {
        #rt::ops::pad::pad(#x, #sx, &[#(#begin),*], #y, #so, #rt::ops::pad::PadMode::#mode, #value);
    })
}

pub(crate) fn split(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (g, rt) = (c.g, c.rt);
    let p = crate::ops::split_params(g, n)?;
    let xi = input(n, 0)?;
    let xs = &g.values[xi].shape;
    let outer = c.dim(&numel(&xs[..p.axis]));
    let alen = c.dim(&xs[p.axis]);
    let inner = c.dim(&numel(&xs[p.axis + 1..]));
    let x = c.src(xi);
    let mut t = TokenStream::new();
    for (&o, (start, len)) in n.outputs.iter().zip(&p.parts) {
        if c.plan.storage[o].is_none() {
            continue;
        }
        let (y, st, ln) = (c.dst(o), c.dim(start), c.dim(len));
        t.extend(quote! {
            #rt::ops::concat::split_part(#x, #outer, #alen, #inner, #st, #ln, #y);
        });
    }
    Ok(t)
}

pub(crate) fn resize(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let (g, rt) = (c.g, c.rt);
    let p = crate::ops::resize_params(g, n)?;
    let xi = input(n, 0)?;
    let xs = &g.values[xi].shape;
    let ys = &g.values[n.outputs[0]].shape;
    let axis = |i: usize| -> TokenStream {
        let (di, dout) = (c.dim(&xs[i]), c.dim(&ys[i]));
        let scale = match &p.scales[i] {
            AxisScale::Factor(f) => {
                let l = proc_macro2::Literal::f64_unsuffixed(*f);
                quote!(#l)
            }
            AxisScale::FromSizes => quote!((#dout as f64) / (#di as f64)),
        };
        quote!(#rt::ops::resize::Axis { input: #di, output: #dout, scale: #scale })
    };
    let coord = match p.coord {
        resize::Coord::HalfPixel => quote!(HalfPixel),
        resize::Coord::HalfPixelSymmetric => quote!(HalfPixelSymmetric),
        resize::Coord::PytorchHalfPixel => quote!(PytorchHalfPixel),
        resize::Coord::AlignCorners => quote!(AlignCorners),
        resize::Coord::Asymmetric => quote!(Asymmetric),
        resize::Coord::TfHalfPixelForNearest => quote!(TfHalfPixelForNearest),
    };
    let coord = quote!(#rt::ops::resize::Coord::#coord);
    let (x, y) = (c.src(xi), c.dst(n.outputs[0]));
    let r = xs.len();
    if r == 0 {
        bail!("{} needs an input of rank >= 1", n.op);
    }
    if p.linear {
        if g.values[xi].dtype != DType::F32 {
            unsupported!("{} linear needs float32 data", n.op);
        }
        let w = axis(r - 1);
        let (h, planes) = if r >= 2 {
            (axis(r - 2), numel(&xs[..r - 2]))
        } else {
            (
                quote!(#rt::ops::resize::Axis { input: 1, output: 1, scale: 1.0 }),
                Dim::constant(1),
            )
        };
        let planes = c.dim(&planes);
        return Ok(quote! {
            #rt::ops::resize::linear(#x, #planes, #h, #w, #coord, #y);
        });
    }
    let nearest = match p.nearest {
        resize::Nearest::RoundPreferFloor => quote!(RoundPreferFloor),
        resize::Nearest::RoundPreferCeil => quote!(RoundPreferCeil),
        resize::Nearest::Floor => quote!(Floor),
        resize::Nearest::Ceil => quote!(Ceil),
        resize::Nearest::Simple => quote!(Simple),
    };
    if r > kiln_runtime::ops::elementwise::MAX_DIMS {
        unsupported!("{} of rank {r} is not supported", n.op);
    }
    let axes = (0..r).map(axis);
    Ok(quote! {
        #rt::ops::resize::nearest(#x, #y, &[#(#axes),*], #coord, #rt::ops::resize::Nearest::#nearest);
    })
}
