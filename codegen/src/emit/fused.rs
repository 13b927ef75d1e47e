//! Emission of kiln's fused ops (`KilnOp`, produced by the fusion passes): one function per op.
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::nodes::{act_tokens, f32_lit, inp, scalar_zero_point, zero_points};
use super::{Ctx, lit};
use crate::error::Result;
use crate::ir::{ConvAlgo, ConvSpec, Dim, ElemStep, KilnOp, Node, QConvKind, QConvLayout};
use kiln_runtime::gemm::Activation;
use kiln_runtime::ops::matmul::PackedF32Owned;
use kiln_runtime::pack::PackedI8Owned;

/// The block of fused op `k` at node `n`; `weights` names its packed weights' static.
pub(super) fn emit(c: &Ctx, n: &Node, k: &KilnOp, weights: Option<&Ident>) -> Result<TokenStream> {
    match k {
        KilnOp::QuantizeDyn { m, k } => quantize_dyn(c, n, m, *k),
        KilnOp::QGemm { m, weights: w, act } => qgemm(c, n, weights, m, w, act),
        KilnOp::SGemm {
            m,
            weights: w,
            relu,
        } => sgemm(c, n, weights, m, w, *relu),
        KilnOp::QConv {
            spec,
            act,
            kind,
            layout,
        } => qconv(c, n, weights, spec, act, kind, layout),
        KilnOp::Conv { spec, act, algo } => conv(c, n, spec, act, algo),
        KilnOp::ConvTranspose { spec } => conv_transpose(c, n, spec),
        KilnOp::QMatMul {
            batches,
            w_batches,
            m,
            k,
            n: nn,
            packed,
        } => qmatmul(
            c,
            n,
            weights,
            &QMatMulDims {
                batches,
                w_batches,
                m,
                k,
                n: nn,
            },
            packed.is_some(),
        ),
        KilnOp::QLinearConv {
            spec,
            packed,
            depthwise,
        } => qlinear_conv(c, n, weights, spec, packed, depthwise.is_some()),
        KilnOp::QdqMap { .. } => qdq_map(c, n, weights, k),
        KilnOp::Attention { .. } => attention(c, n, k),
        KilnOp::DqMatMul { m, .. } => dq_matmul(c, n, weights, m),
        KilnOp::Elementwise { steps } => elementwise(c, n, steps),
        KilnOp::ConvInteger { spec } => conv_integer(c, n, spec),
        KilnOp::Recurrent(o) => super::recurrent::emit(c, n, o, weights),
    }
}

/// QMatMul's geometry.
struct QMatMulDims<'a> {
    batches: &'a Dim,
    w_batches: &'a Dim,
    m: &'a Dim,
    k: &'a Dim,
    n: &'a Dim,
}

fn quantize_dyn(c: &Ctx, n: &Node, m: &Dim, k: usize) -> Result<TokenStream> {
    let rt = c.rt;
    Ok({
        let x = c.src(inp(n, 0)?);
        let (a, r, s, z) = (
            c.dst(n.outputs[0]),
            c.dst(n.outputs[1]),
            c.dst(n.outputs[2]),
            c.dst(n.outputs[3]),
        );
        let (m, k) = (c.dim(m), lit(k));
        let qp = c.qparams(inp(n, 0)?, &x);
        quote! {{
            let qp = #qp;
            #rt::quantize::quantize_pack_a(isa, #x, #m, #k, #k, qp, #a, #r);
            (#s)[0] = qp.scale;
            (#z)[0] = qp.zero_point;
        }}
    })
}

fn qgemm(
    c: &Ctx,
    n: &Node,
    weights: Option<&Ident>,
    m: &Dim,
    w: &PackedI8Owned,
    act: &Activation,
) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let (a, r, s, z) = (
            c.src(inp(n, 0)?),
            c.src(inp(n, 1)?),
            c.src(inp(n, 2)?),
            c.src(inp(n, 3)?),
        );
        let y = c.dst(out);
        let m = c.dim(m);
        let ldc = lit(w.n);
        let act = act_tokens(rt, act);
        let w = weights.expect("QGemm weights emitted");
        let range = c.range(out);
        quote! {{
            let p = #rt::gemm::QGemm {
                m: #m, a: #a, row_term: #r,
                a_zero_point: (#z)[0] as i32, a_scale: (#s)[0],
                b: #w, act: #act,
            };
            #rt::gemm::qgemm_f32_range(isa, &p, #y, #ldc, #range);
        }}
    })
}

fn sgemm(
    c: &Ctx,
    n: &Node,
    weights: Option<&Ident>,
    m: &Dim,
    w: &PackedF32Owned,
    relu: bool,
) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let x = c.src(inp(n, 0)?);
        let y = c.dst(out);
        let (m, k, ldc) = (c.dim(m), lit(w.k), lit(w.n));
        let act = if relu {
            quote!(#rt::ops::matmul::FloatAct::Relu)
        } else {
            quote!(#rt::ops::matmul::FloatAct::None)
        };
        let w = weights.expect("SGemm weights emitted");
        quote! { #rt::ops::matmul::sgemm(isa, #m, #x, #k, #w, #act, #y, #ldc); }
    })
}

fn qconv(
    c: &Ctx,
    n: &Node,
    weights: Option<&Ident>,
    spec: &ConvSpec,
    act: &Activation,
    kind: &QConvKind,
    layout: &QConvLayout,
) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let geom = spec.geom_tokens(rt, &|d| c.dim(d));
        let x = c.src(inp(n, 0)?);
        let y = c.dst(out);
        let q = c.dst(n.outputs[1]);
        let w = weights.expect("QConv weights emitted");
        let actt = act_tokens(rt, act);
        let qp = c.qparams(inp(n, 0)?, &x);
        // NHWC → NCHW of a finished result held in `nhwc` (passes::layout decided y is
        // stored NCHW).
        let to_nchw = |nhwc: &TokenStream| {
            quote! {
                #rt::ops::transpose::transpose(&*#nhwc, &[geom.batch, geom.pixels(), geom.c_out], &[0, 2, 1], #y);
            }
        };
        match kind {
            crate::ir::QConvKind::Depthwise { bias, .. } => {
                let b = if bias.is_some() {
                    quote!(Some(#w.2))
                } else {
                    quote!(None)
                };
                if layout.x_nhwc {
                    let (dst, fin) = if layout.y_nhwc {
                        (y.clone(), quote!())
                    } else {
                        let t = c.dst(n.outputs[2]);
                        (t.clone(), to_nchw(&t))
                    };
                    let range = c.range(out);
                    quote! {{
                        let geom = #geom;
                        let qp = #qp;
                        #rt::quantize::quantize_u8_isa(isa, #x, qp, #q);
                        #rt::ops::conv_nhwc::depthwise_nhwc(isa, &geom, &*#q, qp.zero_point,
                            #w.0, qp.scale, #w.1, #b, #actt, #dst, #range);
                        #fin
                    }}
                } else {
                    quote! {{
                        let geom = #geom;
                        let qp = #qp;
                        #rt::quantize::quantize_u8_isa(isa, #x, qp, #q);
                        #rt::ops::conv::depthwise(isa, &geom, &*#q, qp.zero_point as f32, #w.0,
                            Some((qp.scale, #w.1)), #b, #actt, #y);
                    }}
                }
            }
            crate::ir::QConvKind::Gemm { groups, direct } => {
                let (a, r) = (c.dst(n.outputs[2]), c.dst(n.outputs[3]));
                let ng = lit(groups.len());
                let og = lit(spec.og());
                let hw = c.dim(&spec.h.mul(&spec.w));
                let symmetric = groups.iter().all(|w| w.zero_point.iter().all(|&z| z == 0));
                let fill = if *direct && symmetric {
                    // Every weight zero point is 0: the kernels multiply the row terms
                    // by 0 (the x86 ones skip them), so they are not computed.
                    quote! {
                        let a: &[u8] = q;
                    }
                } else if *direct {
                    quote! {
                        #rt::ops::conv::row_terms(q, rows, geom.c_in, qp.zero_point, rterm);
                        let a: &[u8] = q;
                    }
                } else if symmetric {
                    quote! {
                        #rt::ops::conv::im2col_u8(&geom, grp, q, qp.zero_point, abuf, None);
                        let a: &[u8] = abuf;
                    }
                } else {
                    quote! {
                        #rt::ops::conv::im2col_u8(&geom, grp, q, qp.zero_point, abuf, Some(rterm));
                        let a: &[u8] = abuf;
                    }
                };
                let quantize = if layout.x_nhwc {
                    quote!(#rt::quantize::quantize_u8_isa(isa, #x, qp, #q);)
                } else {
                    quote!(#rt::ops::conv::quantize_nhwc(isa, #x, geom.batch, geom.c_in, #hw, qp, #q);)
                };
                // The GEMM writes NHWC: straight into y, or into scratch + transpose.
                let (dst, fin) = if layout.y_nhwc {
                    (y.clone(), quote!())
                } else {
                    let t = c.dst(n.outputs[4]);
                    (t.clone(), to_nchw(&t))
                };
                let range = c.range(out);
                quote! {{
                    let geom = #geom;
                    let rows = geom.rows();
                    let qp = #qp;
                    #quantize
                    let (q, abuf, rterm, gout) = (&*#q, #a, #r, #dst);
                    let _ = &abuf;
                    for grp in 0..#ng {
                        #fill
                        let p = #rt::gemm::QGemm {
                            m: rows, a, row_term: &*rterm,
                            a_zero_point: qp.zero_point as i32, a_scale: qp.scale,
                            b: #w[grp], act: #actt,
                        };
                        #rt::gemm::qgemm_f32_range(isa, &p, &mut gout[grp * #og..], geom.c_out, #range);
                    }
                    #fin
                }}
            }
        }
    })
}

fn conv(
    c: &Ctx,
    n: &Node,
    spec: &ConvSpec,
    act: &Activation,
    algo: &ConvAlgo,
) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let geom = spec.geom_tokens(rt, &|d| c.dim(d));
        let x = c.src(inp(n, 0)?);
        let w = c.src(inp(n, 1)?);
        let y = c.dst(out);
        let b = match n.input(2) {
            Some(b) => {
                let b = c.src(b);
                quote!(Some(&*#b))
            }
            None => quote!(None),
        };
        let actt = act_tokens(rt, act);
        match algo {
            crate::ir::ConvAlgo::Gemm => {
                let col = c.dst(n.outputs[1]);
                quote! {{
                    let geom = #geom;
                    #rt::ops::conv::conv_f32_gemm(isa, &geom, #x, #w, #b, #actt, #col, #y);
                }}
            }
            crate::ir::ConvAlgo::Depthwise => quote! {{
                let geom = #geom;
                #rt::ops::conv::depthwise(isa, &geom, #x, 0.0, #w, None, #b, #actt, #y);
            }},
            crate::ir::ConvAlgo::Reference => quote! {{
                let geom = #geom;
                #rt::ops::conv::conv_ref_f32(&geom, #x, #w, #b, #y);
            }},
        }
    })
}

fn conv_transpose(c: &Ctx, n: &Node, spec: &ConvSpec) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let geom = spec.geom_tokens(rt, &|d| c.dim(d));
        let (x, w, y) = (c.src(inp(n, 0)?), c.src(inp(n, 1)?), c.dst(out));
        let (xp, col) = (c.dst(n.outputs[1]), c.dst(n.outputs[2]));
        let b = match n.input(2) {
            Some(b) => {
                let b = c.src(b);
                quote!(Some(&*#b))
            }
            None => quote!(None),
        };
        quote! {{
            let geom = #geom;
            #rt::ops::conv::conv_transpose_f32(isa, &geom, #x, #w, #b, #xp, #col, #y);
        }}
    })
}

fn qmatmul(
    c: &Ctx,
    n: &Node,
    weights: Option<&Ident>,
    q: &QMatMulDims,
    packed: bool,
) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let QMatMulDims {
        batches,
        w_batches,
        m,
        k,
        n: nn,
    } = q;
    Ok({
        let a = inp(n, 0)?;
        let ta = super::rust_ty(g.values[a].dtype);
        let ty = super::rust_ty(g.values[out].dtype);
        let (xa, az, bs, ys, yz) = (
            c.src(a),
            c.src(inp(n, 2)?),
            c.src(inp(n, 4)?),
            c.src(inp(n, 6)?),
            c.src(inp(n, 7)?),
        );
        let (y, acc) = (c.dst(out), c.dst(n.outputs[1]));
        let rows = c.dim(&batches.mul(m));
        let (kk, nt) = (c.dim(k), c.dim(nn));
        let a_s = c.src(inp(n, 1)?);
        let bias = match n.input(8) {
            Some(b) => {
                let b = c.src(b);
                quote!(Some(#b))
            }
            None => quote!(None),
        };
        let requant = quote! {
            #rt::qlinear::requantize::<#ty>(isa, &*acc, rows, #nt, 1, #bias, (#a_s)[0], #bs, (#ys)[0], (#yz)[0], #y);
        };
        if packed {
            let w = weights.expect("QMatMul weights emitted");
            let (ap, rtv) = (c.dst(n.outputs[2]), c.dst(n.outputs[3]));
            quote! {{
                let rows = #rows;
                let (acc, ap, rterm) = (#acc, #ap, #rtv);
                let zu = #rt::qlinear::pack_a::<#ta>(isa, #xa, rows, #kk, (#az)[0], &mut *ap, &mut *rterm);
                #rt::gemm::qgemm_i32(isa, rows, &*ap, &*rterm, zu, #w, &mut *acc, #nt);
                #requant
            }}
        } else {
            let b = c.src(inp(n, 3)?);
            let bz = match n.input(5) {
                Some(z) => {
                    let z = c.src(z);
                    quote!(Some(#z))
                }
                None => quote!(None),
            };
            let (nb, wb, mm) = (c.dim(batches), c.dim(w_batches), c.dim(m));
            quote! {{
                let rows = #rows;
                let acc = #acc;
                #rt::qlinear::matmul_integer_batched(#xa, (#az)[0] as i32, #b, #bz, #nb, #wb, #mm, #kk, #nt, &mut *acc);
                #requant
            }}
        }
    })
}

fn qlinear_conv(
    c: &Ctx,
    n: &Node,
    weights: Option<&Ident>,
    spec: &ConvSpec,
    packed: &Option<(Vec<PackedI8Owned>, bool)>,
    depthwise: bool,
) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    Ok({
        let geom = spec.geom_tokens(rt, &|d| c.dim(d));
        let ty = super::rust_ty(g.values[out].dtype);
        let (x, xs, xz, ws, ys, yz) = (
            c.src(inp(n, 0)?),
            c.src(inp(n, 1)?),
            c.src(inp(n, 2)?),
            c.src(inp(n, 4)?),
            c.src(inp(n, 6)?),
            c.src(inp(n, 7)?),
        );
        let bias = match n.input(8) {
            Some(b) => {
                let b = c.src(b);
                quote!(Some(#b))
            }
            None => quote!(None),
        };
        let y = c.dst(out);
        if depthwise {
            let w = weights.expect("QLinearConv depthwise weights emitted");
            let acc = c.dst(n.outputs[1]);
            return Ok(quote! {{
                let geom = #geom;
                let acc = #acc;
                #rt::ops::conv::depthwise(isa, &geom, #x, (#xz)[0] as f32, #w, None, None,
                    #rt::gemm::Activation::None, &mut *acc);
                #rt::qlinear::requantize_f32acc::<#ty>(&*acc, geom.batch, geom.c_out, geom.pixels(), #bias, (#xs)[0], #ws, (#ys)[0], (#yz)[0], #y);
            }});
        }
        match packed {
            Some((groups, direct)) => {
                let w = weights.expect("QLinearConv weights emitted");
                let (acc, q, a, rtv) = (
                    c.dst(n.outputs[1]),
                    c.dst(n.outputs[2]),
                    c.dst(n.outputs[3]),
                    c.dst(n.outputs[4]),
                );
                let ng = lit(groups.len());
                let og = lit(spec.og());
                let hw = c.dim(&spec.h.mul(&spec.w));
                let fill = if *direct {
                    quote! {
                        #rt::ops::conv::row_terms(q, rows, geom.c_in, zu, &mut *rterm);
                        let a: &[u8] = q;
                    }
                } else {
                    quote! {
                        #rt::ops::conv::im2col_u8(&geom, grp, q, zu, &mut *abuf, Some(&mut *rterm));
                        let a: &[u8] = &*abuf;
                    }
                };
                quote! {{
                    let geom = #geom;
                    let rows = geom.rows();
                    let (acc, qb, abuf, rterm) = (#acc, #q, #a, #rtv);
                    #rt::qlinear::to_nhwc_u8(#x, geom.batch, geom.c_in, #hw, &mut *qb);
                    let q: &[u8] = &*qb;
                    let zu = #rt::qlinear::QAct::to_u8_shifted((#xz)[0]);
                    let _ = &abuf;
                    for grp in 0..#ng {
                        #fill
                        #rt::gemm::qgemm_i32(isa, rows, a, &*rterm, zu as i32, #w[grp], &mut acc[grp * #og..], geom.c_out);
                    }
                    #rt::qlinear::requantize_nhwc_to_nchw::<#ty>(&*acc, geom.batch, geom.pixels(), geom.c_out, #bias, (#xs)[0], #ws, (#ys)[0], (#yz)[0], #y);
                }}
            }
            None => {
                let w = c.src(inp(n, 3)?);
                let wz = match n.input(5) {
                    Some(z) => match &g.values[z].konst {
                        Some(d) => {
                            let v: Vec<i32> = d.as_i64()?.into_iter().map(|v| v as i32).collect();
                            quote!(&[#(#v),*])
                        }
                        None if g.values[z].numel() == 1 => {
                            let z = c.src(z);
                            quote!(&[(#z)[0] as i32])
                        }
                        None => c.src(z),
                    },
                    None => quote!(&[0]),
                };
                let acc = c.dst(n.outputs[1]);
                quote! {{
                    let geom = #geom;
                    let acc = #acc;
                    #rt::ops::conv::conv_integer_ref(&geom, #x, (#xz)[0] as i32, #w, #wz, &mut *acc);
                    #rt::qlinear::requantize::<#ty>(isa, &*acc, geom.batch, geom.c_out, geom.pixels(), #bias, (#xs)[0], #ws, (#ys)[0], (#yz)[0], #y);
                }}
            }
        }
    })
}

fn qdq_map(c: &Ctx, n: &Node, weights: Option<&Ident>, k: &KilnOp) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let KilnOp::QdqMap {
        outer,
        ch,
        inner,
        x_scale,
        x_zp,
        y_scale,
        y_zp,
        lut,
        ..
    } = k
    else {
        unreachable!("dispatched on QdqMap")
    };
    Ok({
        let xi = inp(n, 0)?;
        let (ta, ty) = (
            super::rust_ty(g.values[xi].dtype),
            super::rust_ty(g.values[out].dtype),
        );
        let (x, y) = (c.src(xi), c.dst(out));
        let w = weights.expect("QdqMap steps emitted");
        let (o, chl, i) = (c.dim(outer), lit(*ch), c.dim(inner));
        let (xs, ys) = (f32_lit(*x_scale), f32_lit(*y_scale));
        if lut.is_some() {
            quote! {
                #rt::qlut::qdq_lut::<#ta, #ty>(isa, #x, #o, #chl, #i, #w, #y);
            }
        } else {
            quote! {
                #rt::qlinear::qdq_map::<#ta, #ty>(#x, #o, #chl, #i, #xs, #x_zp, &#w, #ys, #y_zp, #y);
            }
        }
    })
}

fn attention(c: &Ctx, n: &Node, k: &KilnOp) -> Result<TokenStream> {
    let (rt, g, out) = (c.rt, c.g, n.outputs[0]);
    let KilnOp::Attention {
        batch,
        heads,
        sq,
        skv,
        dh,
        scale,
    } = k
    else {
        unreachable!("dispatched on Attention")
    };
    Ok({
        let (q, k, v) = (c.src(inp(n, 0)?), c.src(inp(n, 1)?), c.src(inp(n, 2)?));
        let (y, scratch) = (c.dst(out), c.dst(n.outputs[1]));
        let (b, s_q, s_kv) = (c.dim(batch), c.dim(sq), c.dim(skv));
        let (h, d) = (lit(*heads), lit(*dh));
        let scale = match scale {
            crate::ir::AttnScale::None => quote!(#rt::ops::attention::ScoreScale::None),
            crate::ir::AttnScale::Div(x) => {
                let x = f32_lit(*x);
                quote!(#rt::ops::attention::ScoreScale::Div(#x))
            }
            crate::ir::AttnScale::Mul(x) => {
                let x = f32_lit(*x);
                quote!(#rt::ops::attention::ScoreScale::Mul(#x))
            }
        };
        let mask = match n.input(3) {
            None => quote!(None),
            Some(m) => {
                // Right-aligned against [b, H, sq, skv]: dims of size 1 and missing
                // leading dims broadcast (stride 0), the others are dense.
                let ms = &g.values[m].shape;
                let off = 4 - ms.len();
                let mut strides = vec![quote!(0usize); 4];
                let mut run = Dim::from(1);
                for (i, d) in ms.iter().enumerate().rev() {
                    if *d != 1usize {
                        strides[off + i] = c.dim(&run);
                    }
                    run = run.mul(d);
                }
                let x = c.src(m);
                quote!(Some(#rt::ops::attention::Mask { data: #x, strides: [#(#strides),*] }))
            }
        };
        quote! {
            #rt::ops::attention::attention(
                isa,
                #rt::ops::attention::AttnDims { batch: #b, heads: #h, sq: #s_q, skv: #s_kv, dh: #d },
                #q, #k, #v, #scale, #mask, #y, #scratch,
            );
        }
    })
}

fn dq_matmul(c: &Ctx, n: &Node, weights: Option<&Ident>, m: &Dim) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let (x, y) = (c.src(inp(n, 0)?), c.dst(out));
        let w = weights.expect("DqMatMul weights emitted");
        let m = c.dim(m);
        quote! { #rt::ops::matmul::dq_matmul(isa, #m, #x, #w, #y); }
    })
}

fn elementwise(c: &Ctx, n: &Node, steps: &[ElemStep]) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        use crate::ir::{ElemOperand, ElemStep};
        let x = c.src(inp(n, 0)?);
        let y = c.dst(out);
        let opnd = |o: &ElemOperand| match o {
            ElemOperand::Input => quote!(v),
            ElemOperand::Step(j) => {
                let t = quote::format_ident!("t{}", j);
                quote!(#t)
            }
            ElemOperand::Scalar(s) => f32_lit(*s),
        };
        let mut body = TokenStream::new();
        for (k, st) in steps.iter().enumerate() {
            let t = quote::format_ident!("t{}", k);
            let e = match st {
                ElemStep::Binary(b, a, bb) => {
                    let f = b.closure(crate::ir::DType::F32, rt, None);
                    let (a, bb) = (opnd(a), opnd(bb));
                    quote!((#f)(#a, #bb))
                }
                ElemStep::Unary(u, a) => {
                    let f = u.closure(crate::ir::DType::F32, rt);
                    let a = opnd(a);
                    quote!((#f)(#a))
                }
                ElemStep::Clip(lo, hi, a) => {
                    let (lo, hi, a) = (f32_lit(*lo), f32_lit(*hi), opnd(a));
                    quote!({ let u: f32 = #a; let u = if u > #lo { u } else { #lo }; if u < #hi { u } else { #hi } })
                }
            };
            body.extend(quote!(let #t: f32 = #e;));
        }
        let last = quote::format_ident!("t{}", steps.len() - 1);
        quote! { #rt::ops::elementwise::unary(#x, #y, |v: f32| { #body #last }); }
    })
}

fn conv_integer(c: &Ctx, n: &Node, spec: &ConvSpec) -> Result<TokenStream> {
    let (rt, out) = (c.rt, n.outputs[0]);
    Ok({
        let geom = spec.geom_tokens(rt, &|d| c.dim(d));
        let (x, w, y) = (c.src(inp(n, 0)?), c.src(inp(n, 1)?), c.dst(out));
        let xz = scalar_zero_point(c, n.input(2));
        let wz = match zero_points(c, n.input(3))? {
            Some(t) => t,
            // Per-channel zero points computed at run time (a QDQ lowering's value).
            None => c.src(
                n.input(3)
                    .expect("zero_points returns None only for an input"),
            ),
        };
        quote! {{
            let geom = #geom;
            #rt::ops::conv::conv_integer_ref(&geom, #x, #xz, #w, #wz, #y);
        }}
    })
}
