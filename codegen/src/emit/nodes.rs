//! One block of straight-line Rust per node.
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{Dim, KilnOp, Node, numel};
use crate::ops::{BinaryOp, UnaryOp};
use kiln_runtime::gemm::Activation;

fn act_tokens(rt: &TokenStream, act: &Activation) -> TokenStream {
    match act {
        Activation::None => quote!(#rt::gemm::Activation::None),
        Activation::Relu => quote!(#rt::gemm::Activation::Relu),
        Activation::Gelu => quote!(#rt::gemm::Activation::Gelu),
        Activation::Clip { min, max } => {
            quote!(#rt::gemm::Activation::Clip { min: #min, max: #max })
        }
    }
}

/// An `f32` expression; NaN and infinities have no literal form (quote's would panic).
pub(crate) fn f32_tokens(v: f32) -> TokenStream {
    f32_lit(v)
}

fn f32_lit(v: f32) -> TokenStream {
    if v.is_nan() {
        quote!(f32::NAN)
    } else if v == f32::INFINITY {
        quote!(f32::INFINITY)
    } else if v == f32::NEG_INFINITY {
        quote!(f32::NEG_INFINITY)
    } else {
        quote!(#v)
    }
}

pub fn emit_node(c: &Ctx, n: &Node, weights: Option<&Ident>) -> Result<TokenStream> {
    let rt = c.rt;
    let g = c.g;
    let inp = |i: usize| -> Result<usize> {
        match n.input(i) {
            Some(v) => Ok(v),
            None => bail!("missing input #{i}"),
        }
    };
    let out = n.outputs[0];
    if let Some(k) = &n.kiln {
        return Ok(match k {
            KilnOp::QuantizeDyn { m, k } => {
                let x = c.src(inp(0)?);
                let (a, r, s, z) = (
                    c.dst(n.outputs[0]),
                    c.dst(n.outputs[1]),
                    c.dst(n.outputs[2]),
                    c.dst(n.outputs[3]),
                );
                let (m, k) = (c.dim(m), lit(*k));
                let qp = c.qparams(inp(0)?, &x);
                quote! {{
                    let qp = #qp;
                    #rt::quantize::quantize_pack_a(isa, #x, #m, #k, #k, qp, #a, #r);
                    (#s)[0] = qp.scale;
                    (#z)[0] = qp.zero_point;
                }}
            }
            KilnOp::QGemm { m, weights: w, act } => {
                let (a, r, s, z) = (
                    c.src(inp(0)?),
                    c.src(inp(1)?),
                    c.src(inp(2)?),
                    c.src(inp(3)?),
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
            }
            KilnOp::SGemm {
                m,
                weights: w,
                relu,
            } => {
                let x = c.src(inp(0)?);
                let y = c.dst(out);
                let (m, k, ldc) = (c.dim(m), lit(w.k), lit(w.n));
                let act = if *relu {
                    quote!(#rt::ops::matmul::FloatAct::Relu)
                } else {
                    quote!(#rt::ops::matmul::FloatAct::None)
                };
                let w = weights.expect("SGemm weights emitted");
                quote! { #rt::ops::matmul::sgemm(isa, #m, #x, #k, #w, #act, #y, #ldc); }
            }
            KilnOp::QConv {
                spec,
                act,
                kind,
                layout,
            } => {
                let geom = spec.geom_tokens(rt, &|d| c.dim(d));
                let x = c.src(inp(0)?);
                let y = c.dst(out);
                let q = c.dst(n.outputs[1]);
                let w = weights.expect("QConv weights emitted");
                let actt = act_tokens(rt, act);
                let qp = c.qparams(inp(0)?, &x);
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
            }
            KilnOp::Conv { spec, act, algo } => {
                let geom = spec.geom_tokens(rt, &|d| c.dim(d));
                let x = c.src(inp(0)?);
                let w = c.src(inp(1)?);
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
            }
            KilnOp::ConvTranspose { spec } => {
                let geom = spec.geom_tokens(rt, &|d| c.dim(d));
                let (x, w, y) = (c.src(inp(0)?), c.src(inp(1)?), c.dst(out));
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
            }
            KilnOp::QMatMul {
                batches,
                w_batches,
                m,
                k,
                n: nn,
                packed,
            } => {
                let a = inp(0)?;
                let ta = super::rust_ty(g.values[a].dtype);
                let ty = super::rust_ty(g.values[out].dtype);
                let (xa, az, bs, ys, yz) = (
                    c.src(a),
                    c.src(inp(2)?),
                    c.src(inp(4)?),
                    c.src(inp(6)?),
                    c.src(inp(7)?),
                );
                let (y, acc) = (c.dst(out), c.dst(n.outputs[1]));
                let rows = c.dim(&batches.mul(m));
                let (kk, nt) = (c.dim(k), c.dim(nn));
                let a_s = c.src(inp(1)?);
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
                if packed.is_some() {
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
                    let b = c.src(inp(3)?);
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
            }
            KilnOp::QLinearConv {
                spec,
                packed,
                depthwise,
            } => {
                let geom = spec.geom_tokens(rt, &|d| c.dim(d));
                let ty = super::rust_ty(g.values[out].dtype);
                let (x, xs, xz, ws, ys, yz) = (
                    c.src(inp(0)?),
                    c.src(inp(1)?),
                    c.src(inp(2)?),
                    c.src(inp(4)?),
                    c.src(inp(6)?),
                    c.src(inp(7)?),
                );
                let bias = match n.input(8) {
                    Some(b) => {
                        let b = c.src(b);
                        quote!(Some(#b))
                    }
                    None => quote!(None),
                };
                let y = c.dst(out);
                if depthwise.is_some() {
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
                        let w = c.src(inp(3)?);
                        let wz = match n.input(5) {
                            Some(z) => match &g.values[z].konst {
                                Some(d) => {
                                    let v: Vec<i32> =
                                        d.as_i64()?.into_iter().map(|v| v as i32).collect();
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
            }
            KilnOp::QdqMap {
                outer,
                ch,
                inner,
                x_scale,
                x_zp,
                y_scale,
                y_zp,
                ..
            } => {
                let xi = inp(0)?;
                let (ta, ty) = (
                    super::rust_ty(g.values[xi].dtype),
                    super::rust_ty(g.values[out].dtype),
                );
                let (x, y) = (c.src(xi), c.dst(out));
                let w = weights.expect("QdqMap steps emitted");
                let (o, chl, i) = (c.dim(outer), lit(*ch), c.dim(inner));
                let (xs, ys) = (f32_lit(*x_scale), f32_lit(*y_scale));
                quote! {
                    #rt::qlinear::qdq_map::<#ta, #ty>(#x, #o, #chl, #i, #xs, #x_zp, &#w, #ys, #y_zp, #y);
                }
            }
            KilnOp::Attention {
                batch,
                heads,
                sq,
                skv,
                dh,
                scale,
            } => {
                let (q, k, v) = (c.src(inp(0)?), c.src(inp(1)?), c.src(inp(2)?));
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
            }
            KilnOp::DqMatMul { m, .. } => {
                let (x, y) = (c.src(inp(0)?), c.dst(out));
                let w = weights.expect("DqMatMul weights emitted");
                let m = c.dim(m);
                quote! { #rt::ops::matmul::dq_matmul(isa, #m, #x, #w, #y); }
            }
            KilnOp::Elementwise { steps } => {
                use crate::ir::{ElemOperand, ElemStep};
                let x = c.src(inp(0)?);
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
            }
            KilnOp::ConvInteger { spec } => {
                let geom = spec.geom_tokens(rt, &|d| c.dim(d));
                let (x, w, y) = (c.src(inp(0)?), c.src(inp(1)?), c.dst(out));
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
            }
        });
    }

    if let Some(t) = super::vision::emit(c, n)? {
        return Ok(t);
    }
    let op = n.op.as_str();
    if let Some(b) = BinaryOp::from_op(op) {
        let (a, bb) = (inp(0)?, inp(1)?);
        let exponent = match (b, g.values[bb].konst.as_ref()) {
            (BinaryOp::Pow, Some(k)) if k.len() == 1 => Some(k.as_f32()[0]),
            _ => None,
        };
        let f = b.closure(g.values[a].dtype, rt, exponent);
        let (sa, sb, so) = if n.attrs.contains_key(crate::passes::NHWC_ATTR) {
            // NHWC operands (passes::layout): shapes as stored, [N, H, W, C]; the operands
            // broadcasting over pixels keep their bytes and read as [N, 1, 1, C].
            let nhwc = |v: usize| {
                let s = &g.values[v].shape;
                let mut d = vec![crate::ir::Dim::constant(1); 4 - s.len()];
                d.extend(s.iter().cloned());
                c.dims(&[d[0].clone(), d[2].clone(), d[3].clone(), d[1].clone()])
            };
            (nhwc(a), nhwc(bb), nhwc(out))
        } else {
            (c.shape(a), c.shape(bb), c.shape(out))
        };
        let (xa, xb, y) = (c.src(a), c.src(bb), c.dst(out));
        let same = |v: usize| g.values[v].shape == g.values[out].shape;
        if b == BinaryOp::Add
            && g.values[out].dtype == crate::ir::DType::F32
            && same(a)
            && same(bb)
            && c.ranged[out]
        {
            // A residual Add read by a quantized convolution: gather its range while adding.
            let _ = c.range(out); // taken care of here
            let r = quote::format_ident!("r{}", out);
            return Ok(quote! { #rt::ops::elementwise::add_range(isa, #xa, #xb, #y, &#r); });
        }
        return Ok(quote! { #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so, #f); });
    }
    if op == "Gelu" && g.values[inp(0)?].dtype == crate::ir::DType::F32 {
        let (x, y) = (c.src(inp(0)?), c.dst(out));
        return Ok(quote! { #rt::ops::gelu::gelu(isa, #x, #y); });
    }
    if let Some(u) = UnaryOp::from_node(n)? {
        let x = inp(0)?;
        let f = u.closure(g.values[x].dtype, rt);
        let (xs, y) = (c.src(x), c.dst(out));
        return Ok(quote! { #rt::ops::elementwise::unary(#xs, #y, #f); });
    }
    Ok(match op {
        "Reshape" | "Flatten" | "Identity" | "Squeeze" | "Unsqueeze" => {
            // Only reached when the output is a graph output (otherwise it is an alias).
            if matches!(c.plan.storage[out], Some(crate::plan::Storage::Alias(_))) {
                quote!()
            } else {
                let (x, y) = (c.src(inp(0)?), c.dst(out));
                quote! { (#y).copy_from_slice(#x); }
            }
        }
        "Softmax" => {
            let (outer, len, inner) = crate::ops::softmax_dims(g, n)?;
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
            quote! { #rt::ops::softmax::softmax(#x, #y, #o, #l, #i); }
        }
        "Clip" => {
            let (lo, hi) = crate::ops::clip_bounds(g, n)?;
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            let lo = if lo == f32::NEG_INFINITY {
                quote!(f32::NEG_INFINITY)
            } else {
                quote!(#lo)
            };
            let hi = if hi == f32::INFINITY {
                quote!(f32::INFINITY)
            } else {
                quote!(#hi)
            };
            quote! { #rt::ops::elementwise::unary(#x, #y, |v: f32| { let v = if v > #lo { v } else { #lo }; if v < #hi { v } else { #hi } }); }
        }
        "Where" => {
            let (cv, a, b) = (inp(0)?, inp(1)?, inp(2)?);
            let (xc, sc, xa, sa, xb, sb) = (
                c.src(cv),
                c.shape(cv),
                c.src(a),
                c.shape(a),
                c.src(b),
                c.shape(b),
            );
            let (y, so) = (c.dst(out), c.shape(out));
            quote! { #rt::ops::elementwise::where_select(#xc, #sc, #xa, #sa, #xb, #sb, #y, #so); }
        }
        "Transpose" => {
            let xi = inp(0)?;
            let perm = crate::ops::transpose_perm(n, g.values[xi].shape.len())?;
            let perm = perm.iter().map(|&p| lit(p));
            let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(out));
            quote! { #rt::ops::transpose::transpose(#x, #sx, &[#(#perm),*], #y); }
        }
        "Cast" => {
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            quote! { #rt::ops::cast::cast(#x, #y); }
        }
        "Concat" => {
            let ax = lit(crate::ops::concat_axis(g, n)?);
            let parts = n.inputs.iter().flatten().map(|&v| {
                let (x, s) = (c.src(v), c.shape(v));
                // Typed through a function argument, not `as` (a cast does not infer the
                // literals of a static shape: `&[1, 2]` is `&[i32; 2]`) and not a block-local
                // binding (a symbolic shape is a temporary that must live to the call's end).
                quote!((#x, ::core::convert::identity::<&[usize]>(#s)))
            });
            let y = c.dst(out);
            quote! { #rt::ops::concat::concat(&[#(#parts),*], #ax, #y); }
        }
        "Slice" => {
            let p = crate::ops::slice_params(g, n)?;
            let xi = inp(0)?;
            let (x, sx, y) = (c.src(xi), c.shape(xi), c.dst(out));
            let starts = p.starts.iter().map(|d| d.to_i64_tokens(&c.syms));
            let steps = &p.steps;
            let so = c.dims(&p.shape);
            quote! { #rt::ops::shape::slice(#x, #sx, &[#(#starts),*], &[#(#steps),*], #so, #y); }
        }
        "Expand" => {
            let xi = inp(0)?;
            let (x, sx, y, so) = (c.src(xi), c.shape(xi), c.dst(out), c.shape(out));
            quote! { #rt::ops::shape::expand(#x, #sx, #y, #so); }
        }
        "ConstantOfShape" => {
            let v = crate::ops::symbolic_fill_value(n)?;
            let y = c.dst(out);
            let val = match v {
                crate::ir::TensorData::F32(x) => {
                    let x = x[0];
                    quote!(#x)
                }
                crate::ir::TensorData::I64(x) => {
                    let x = x[0];
                    quote!(#x)
                }
                crate::ir::TensorData::I32(x) => {
                    let x = x[0];
                    quote!(#x)
                }
                crate::ir::TensorData::Bool(x) => {
                    let x = x[0];
                    quote!(#x)
                }
                other => unsupported!(
                    "ConstantOfShape of {:?} with a run-time shape",
                    other.dtype()
                ),
            };
            quote! { #rt::ops::shape::fill(#y, #val); }
        }
        "Gather" => {
            let (d, i) = (inp(0)?, inp(1)?);
            let ds = &g.values[d].shape;
            let ax = crate::ops::axis(n.attr_i("axis")?.unwrap_or(0), ds.len())?;
            let (xd, sd, xi, y) = (c.src(d), c.shape(d), c.src(i), c.dst(out));
            let (iname, node) = (root_name(c, i), &n.name);
            let ax = lit(ax);
            quote! { #rt::ops::gather::gather(#xd, #sd, #xi, #ax, #y).map_err(|e| e.at(#iname, #node))?; }
        }
        "ReduceMean" | "ReduceSum" => {
            let (outer, len, inner, _) = crate::ops::reduce_dims(g, n)?;
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            let (o, l, i) = (c.dim(&outer), c.dim(&len), c.dim(&inner));
            let f = if op == "ReduceSum" {
                quote!(reduce_sum)
            } else {
                quote!(reduce_mean)
            };
            quote! { #rt::ops::reduce::#f(#x, #y, #o, #l, #i); }
        }
        "LayerNormalization" => {
            if n.outputs[1..].iter().any(|&o| c.plan.storage[o].is_some()) {
                unsupported!("LayerNormalization's Mean/InvStdDev outputs are not supported");
            }
            let (outer, len) = crate::ops::layer_norm_dims(g, n)?;
            let eps = n.attr_f("epsilon")?.unwrap_or(1e-5);
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            let gamma = c.src(inp(1)?);
            let beta = match n.input(2) {
                Some(b) => {
                    let b = c.src(b);
                    quote!(Some(#b))
                }
                None => quote!(None),
            };
            let (o, l) = (c.dim(&outer), c.dim(&len));
            if n.attrs.contains_key(crate::passes::RESIDUAL) {
                // x + inputs[3], fused by `fuse_patterns`.
                let r = c.src(inp(3)?);
                let range = c.range(out);
                quote! { #rt::ops::layernorm::add_layer_norm(#x, #r, #gamma, #beta, #o, #l, #eps, #y, #range); }
            } else {
                let range = c.range(out);
                quote! { #rt::ops::layernorm::layer_norm(#x, #gamma, #beta, #o, #l, #eps, #y, #range); }
            }
        }
        "BatchNormalization" => {
            let (scale, shift) = crate::ops::conv::batch_norm_affine(g, n)?;
            let xi = inp(0)?;
            let shape = &g.values[xi].shape;
            let inner = c.dim(&numel(&shape[2..]));
            let (outer, ch) = (c.dim(&shape[0]), c.dim(&shape[1]));
            let (s, t) = (
                scale.iter().map(|&v| f32_lit(v)),
                shift.iter().map(|&v| f32_lit(v)),
            );
            let (x, y) = (c.src(xi), c.dst(out));
            quote! { #rt::ops::conv::channel_affine(#x, #outer, #ch, #inner, &[#(#s),*], &[#(#t),*], #y); }
        }
        "DequantizeLinear" | "QuantizeLinear" => {
            let (xi, si) = (inp(0)?, inp(1)?);
            let l = crate::ops::q_layout(g, n, xi, si, n.input(2))?;
            let qt = if op == "QuantizeLinear" { out } else { xi };
            let t = super::rust_ty(g.values[qt].dtype);
            let (o, len, i, b) = (
                c.dim(&l.outer),
                c.dim(&l.len),
                c.dim(&l.inner),
                lit(l.block),
            );
            let (x, sc, y) = (c.src(xi), c.src(si), c.dst(out));
            let zp = match n.input(2) {
                Some(z) => {
                    let z = c.src(z);
                    quote!(Some(#z))
                }
                None => quote!(None),
            };
            let f = if op == "QuantizeLinear" {
                quote!(quantize_linear)
            } else {
                quote!(dequantize_linear)
            };
            quote! {
                #rt::qlinear::#f::<#t>(#x, #rt::qlinear::QAxis { outer: #o, len: #len, inner: #i, block: #b }, #sc, #zp, #y);
            }
        }
        "MatMul" => {
            let (a, b) = (inp(0)?, inp(1)?);
            let (xa, sa, xb, sb, y, so) = (
                c.src(a),
                c.shape(a),
                c.src(b),
                c.shape(b),
                c.dst(out),
                c.shape(out),
            );
            quote! { #rt::ops::matmul::matmul(isa, #xa, #sa, #xb, #sb, #y, #so); }
        }
        "Gemm" => {
            let (m, k, nn) = crate::ops::gemm_dims(g, n)?;
            let ta = n.attr_i("transA")?.unwrap_or(0) != 0;
            let tb = n.attr_i("transB")?.unwrap_or(0) != 0;
            let alpha = f32_lit(n.attr_f("alpha")?.unwrap_or(1.0));
            let beta = f32_lit(n.attr_f("beta")?.unwrap_or(1.0));
            let (xa, xb, y) = (c.src(inp(0)?), c.src(inp(1)?), c.dst(out));
            let cterm = match n.input(2) {
                Some(cv) => {
                    let (xc, sc) = (c.src(cv), c.shape(cv));
                    quote!(Some((#xc, #sc)))
                }
                None => quote!(None),
            };
            let (m, k, nn) = (c.dim(&m), c.dim(&k), c.dim(&nn));
            quote! { #rt::ops::gemm::gemm(isa, #ta, #tb, #m, #k, #nn, #alpha, #xa, #xb, #beta, #cterm, #y); }
        }
        "MatMulInteger" => {
            let (a, b) = (inp(0)?, inp(1)?);
            let (sa, sb) = (&g.values[a].shape, &g.values[b].shape);
            if sb.len() > 2 {
                unsupported!(
                    "MatMulInteger with a batched B {} is not supported",
                    g.show_shape(sb)
                );
            }
            let k = sa.last().cloned().unwrap_or(Dim::constant(1));
            let m = numel(&sa[..sa.len().saturating_sub(1)]);
            let nn = if sb.len() == 2 {
                sb[1].clone()
            } else {
                Dim::constant(1)
            };
            let azp = scalar_zero_point(c, n.input(2));
            let Some(bzp) = zero_points(c, n.input(3))? else {
                unsupported!(
                    "MatMulInteger with a per-column B zero point computed at run time is not supported"
                );
            };
            let (xa, xb, y) = (c.src(a), c.src(b), c.dst(out));
            let (m, k, nn) = (c.dim(&m), c.dim(&k), c.dim(&nn));
            quote! { #rt::gemm::matmul_integer_ref(#xa, #azp, #xb, #bzp, #m, #k, #nn, #y); }
        }
        "DynamicQuantizeLinear" => {
            let x = c.src(inp(0)?);
            let y = c.dst(n.outputs[0]);
            let mut tail = TokenStream::new();
            if let Some(&s) = n.outputs.get(1) {
                let s = c.dst(s);
                tail.extend(quote!((#s)[0] = qp.scale;));
            }
            if let Some(&z) = n.outputs.get(2) {
                let z = c.dst(z);
                tail.extend(quote!((#z)[0] = qp.zero_point;));
            }
            let qp = c.qparams(inp(0)?, &x);
            quote! {{
                let qp = #qp;
                #rt::quantize::quantize_u8_isa(isa, #x, qp, #y);
                #tail
            }}
        }
        "Shape" | "Constant" => bail!("internal: {op} should have been folded"),
        other => unsupported!("operator `{other}` has no code generator"),
    })
}

/// A scalar zero point as an `i32` expression (its first element; 0 when absent).
fn scalar_zero_point(c: &Ctx, z: Option<usize>) -> TokenStream {
    match z {
        Some(z) => {
            let z = c.src(z);
            quote!((#z)[0] as i32)
        }
        None => quote!(0),
    }
}

/// Zero points as an `&[i32]` expression: constants inline, a run-time scalar as a one-element
/// slice, `&[0]` when absent; `None` for per-channel values computed at run time.
fn zero_points(c: &Ctx, z: Option<usize>) -> Result<Option<TokenStream>> {
    let Some(z) = z else {
        return Ok(Some(quote!(&[0])));
    };
    let v = &c.g.values[z];
    Ok(match &v.konst {
        Some(d) => {
            let v: Vec<i32> = d.as_i64()?.into_iter().map(|v| v as i32).collect();
            Some(quote!(&[#(#v),*]))
        }
        None if v.numel() == 1 => {
            let z = c.src(z);
            Some(quote!(&[(#z)[0] as i32]))
        }
        None => None,
    })
}

/// The name a user recognises for value `v`: a graph input it is a view of, else its own.
fn root_name(c: &Ctx, v: usize) -> String {
    c.g.values[c.plan.root(v)].name.clone()
}
