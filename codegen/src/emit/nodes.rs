//! One block of straight-line Rust per node.
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use super::{Ctx, lit};
use crate::error::{Result, bail, unsupported};
use crate::ir::{KilnOp, Node};
use crate::ops::{BinaryOp, UnaryOp};
use kiln_runtime::gemm::Activation;

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
                let (m, k) = (lit(*m), lit(*k));
                quote! {{
                    let qp = #rt::quantize::dynamic_qparams(#x);
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
                let m = lit(*m);
                let ldc = lit(w.n);
                let act = match act {
                    Activation::None => quote!(#rt::gemm::Activation::None),
                    Activation::Relu => quote!(#rt::gemm::Activation::Relu),
                    Activation::Clip { min, max } => {
                        quote!(#rt::gemm::Activation::Clip { min: #min, max: #max })
                    }
                };
                let w = weights.expect("QGemm weights emitted");
                quote! {{
                    let p = #rt::gemm::QGemm {
                        m: #m, a: #a, row_term: #r,
                        a_zero_point: (#z)[0] as i32, a_scale: (#s)[0],
                        b: #w, act: #act,
                    };
                    #rt::gemm::qgemm_f32(isa, &p, #y, #ldc);
                }}
            }
            KilnOp::SGemm {
                m,
                weights: w,
                relu,
            } => {
                let x = c.src(inp(0)?);
                let y = c.dst(out);
                let (m, k, ldc) = (lit(*m), lit(w.k), lit(w.n));
                let act = if *relu {
                    quote!(#rt::ops::matmul::FloatAct::Relu)
                } else {
                    quote!(#rt::ops::matmul::FloatAct::None)
                };
                let w = weights.expect("SGemm weights emitted");
                quote! { #rt::ops::matmul::sgemm(isa, #m, #x, #k, #w, #act, #y, #ldc); }
            }
        });
    }

    let op = n.op.as_str();
    if let Some(b) = BinaryOp::from_op(op) {
        let (a, bb) = (inp(0)?, inp(1)?);
        let f = b.closure(g.values[a].dtype);
        let (sa, sb, so) = (c.shape(a), c.shape(bb), c.shape(out));
        let (xa, xb, y) = (c.src(a), c.src(bb), c.dst(out));
        return Ok(quote! { #rt::ops::elementwise::binary(#xa, #sa, #xb, #sb, #y, #so, #f); });
    }
    if let Some(u) = UnaryOp::from_op(op) {
        let x = inp(0)?;
        let f = u.closure(g.values[x].dtype, rt);
        let (xs, y) = (c.src(x), c.dst(out));
        return Ok(quote! { #rt::ops::elementwise::unary(#xs, #y, #f); });
    }
    Ok(match op {
        "Reshape" | "Flatten" | "Identity" => {
            // Only reached when the output is a graph output (otherwise it is an alias).
            if crate::plan::is_view(op)
                && matches!(c.plan.storage[out], Some(crate::plan::Storage::Alias(_)))
            {
                quote!()
            } else {
                let (x, y) = (c.src(inp(0)?), c.dst(out));
                quote! { (#y).copy_from_slice(#x); }
            }
        }
        "Softmax" => {
            let (outer, len, inner) = crate::ops::softmax_dims(g, n)?;
            let (x, y) = (c.src(inp(0)?), c.dst(out));
            let (o, l, i) = (lit(outer), lit(len), lit(inner));
            quote! { #rt::ops::softmax::softmax(#x, #y, #o, #l, #i); }
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
            let alpha = n.attr_f("alpha")?.unwrap_or(1.0);
            let beta = n.attr_f("beta")?.unwrap_or(1.0);
            let (xa, xb, y) = (c.src(inp(0)?), c.src(inp(1)?), c.dst(out));
            let cterm = match n.input(2) {
                Some(cv) => {
                    let (xc, sc) = (c.src(cv), c.shape(cv));
                    quote!(Some((#xc, #sc)))
                }
                None => quote!(None),
            };
            let (m, k, nn) = (lit(m), lit(k), lit(nn));
            quote! { #rt::ops::gemm::gemm(isa, #ta, #tb, #m, #k, #nn, #alpha, #xa, #xb, #beta, #cterm, #y); }
        }
        "MatMulInteger" => {
            let (a, b) = (inp(0)?, inp(1)?);
            let (sa, sb) = (&g.values[a].shape, &g.values[b].shape);
            if sb.len() > 2 {
                unsupported!("MatMulInteger with a batched B {sb:?} is not supported");
            }
            let k = *sa.last().unwrap();
            let m = sa.iter().product::<usize>() / k.max(1);
            let nn = if sb.len() == 2 { sb[1] } else { 1 };
            let azp = match n.input(2) {
                Some(z) => {
                    let z = c.src(z);
                    quote!((#z)[0] as i32)
                }
                None => quote!(0),
            };
            let bzp = match n.input(3) {
                Some(z) => match &g.values[z].konst {
                    Some(d) => {
                        let v: Vec<i32> = d.as_i64()?.into_iter().map(|v| v as i32).collect();
                        quote!(&[#(#v),*])
                    }
                    None if g.values[z].numel() == 1 => {
                        let z = c.src(z);
                        quote!(&[(#z)[0] as i32])
                    }
                    None => unsupported!(
                        "MatMulInteger with a per-column B zero point computed at run time is not supported"
                    ),
                },
                None => quote!(&[0]),
            };
            let (xa, xb, y) = (c.src(a), c.src(b), c.dst(out));
            let (m, k, nn) = (lit(m), lit(k), lit(nn));
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
            quote! {{
                let qp = #rt::quantize::dynamic_qparams(#x);
                #rt::quantize::quantize_u8(#x, qp, #y);
                #tail
            }}
        }
        "Constant" => bail!("internal: Constant should have been folded"),
        other => unsupported!("operator `{other}` has no code generator"),
    })
}
