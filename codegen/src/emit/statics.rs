//! The weight blob and the statics that view it: constants read at run time (`C<i>`) and the
//! packed weights of fused ops (`W<node>`).
//!
//! Weights are never tokens (DESIGN.md decision 1): every constant goes into one blob that the
//! generated code embeds with `include_bytes!`, 64-byte aligned, and reads through `const`
//! views.
use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use super::{lit, nodes, rust_ty};
use crate::ir::{DType, Graph, KilnOp, MapStepOwned, Node, QConvKind, TensorData};
use crate::plan::Plan;

/// The weight blob under construction: 64-byte aligned sections.
///
/// Packed int8 weights are laid out per target (`pack::Layout`: 8-deep k-groups on aarch64,
/// 4-deep elsewhere), in sections of the same length either way, so the builder keeps two
/// blobs with the same offsets: [`Blob::bytes`] for every target but aarch64 and
/// [`Blob::aarch64`]. The generated code embeds one of them with `#[cfg(target_arch)]`, so a
/// binary holds one copy of the weights (docs/design.md, 3).
#[derive(Default)]
pub struct Blob {
    /// The blob of every target but aarch64 (`Layout::Kr4`).
    pub bytes: Vec<u8>,
    /// The same sections with the packed weights in `Layout::Kr8`.
    aarch64: Vec<u8>,
}

impl Blob {
    /// Appends a section that is the same on every target.
    fn push(&mut self, data: &[u8]) -> usize {
        self.push_per_target(data, data)
    }
    /// Appends a section whose bytes depend on the target (same length on both).
    fn push_per_target(&mut self, generic: &[u8], aarch64: &[u8]) -> usize {
        assert_eq!(
            generic.len(),
            aarch64.len(),
            "per-target sections differ in length"
        );
        let off = self.bytes.len().next_multiple_of(64);
        for (blob, data) in [(&mut self.bytes, generic), (&mut self.aarch64, aarch64)] {
            blob.resize(off, 0);
            blob.extend_from_slice(data);
        }
        off
    }
    /// The aarch64 blob, if it differs from [`Blob::bytes`] (it does not when the model has
    /// no packed int8 weights, or only ones of K ≤ 4).
    pub fn aarch64(&self) -> Option<&[u8]> {
        (self.aarch64 != self.bytes).then_some(&self.aarch64[..])
    }
    /// A stable content name for the blob file.
    pub fn hash_hex(&self) -> String {
        content_hash(&self.bytes)
    }
    /// The content name of [`Blob::aarch64`], if there is one.
    pub fn aarch64_hash_hex(&self) -> Option<String> {
        self.aarch64().map(content_hash)
    }
}

/// 64-bit FNV-1a twice with different seeds, and the length.
fn content_hash(bytes: &[u8]) -> String {
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for &b in bytes {
        h1 = (h1 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h2 = (h2 ^ b as u64)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(5);
    }
    format!("{h1:016x}{h2:016x}{:x}", bytes.len())
}

/// The statics of the module and, per node, the name of its packed weights' static.
pub(super) struct Statics {
    pub items: Vec<TokenStream>,
    pub per_node: Vec<Option<Ident>>,
}

/// Appends every constant read at run time and every fused op's packed weights to `blob`.
pub(super) fn statics(g: &Graph, plan: &Plan, rt: &TokenStream, blob: &mut Blob) -> Statics {
    let mut items = Vec::new();
    for (ci, &v) in plan.consts.iter().enumerate() {
        let data = g.values[v]
            .konst
            .as_ref()
            .expect("planned constants are known");
        items.push(const_static(rt, blob, ci, data));
    }
    let mut per_node = vec![None; g.nodes.len()];
    for (ni, n) in g.nodes.iter().enumerate() {
        let id = format_ident!("W{}", ni);
        if let Some(item) = node_static(rt, blob, n, &id) {
            items.push(item);
            per_node[ni] = Some(id);
        }
    }
    Statics { items, per_node }
}

/// `static C<ci>: &[T]` viewing constant `data` in the blob.
fn const_static(rt: &TokenStream, blob: &mut Blob, ci: usize, data: &TensorData) -> TokenStream {
    let off = blob.push(&data.to_le_bytes());
    let id = format_ident!("C{}", ci);
    let ty = rust_ty(data.dtype());
    let f = view_fn(data.dtype());
    let (off, len) = (lit(off), lit(data.len()));
    if let TensorData::Bool(b) = data {
        // bool cannot be viewed from arbitrary bytes; constants are few and small.
        quote!(static #id: &[bool] = &[#(#b),*];)
    } else if data.is_empty() {
        // An empty constant (e.g. empty axes) has no bytes, and a model whose constants are
        // all empty has no `BLOB` to view.
        quote!(static #id: &[#ty] = &[];)
    } else {
        quote!(static #id: &[#ty] = #rt::blob::#f(&BLOB, #off, #len);)
    }
}

/// An `&[f32]` expression over `v`, appended to the blob.
fn f32s(rt: &TokenStream, blob: &mut Blob, v: &[f32]) -> TokenStream {
    let o = lit(blob.push(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()));
    let l = lit(v.len());
    quote!(#rt::blob::f32s(&BLOB, #o, #l))
}

/// `static W<ni>` holding node `n`'s packed weights, if it is a fused op that has some.
fn node_static(rt: &TokenStream, blob: &mut Blob, n: &Node, id: &Ident) -> Option<TokenStream> {
    let groups = |blob: &mut Blob, groups: &[kiln_runtime::pack::PackedI8Owned]| {
        let es: Vec<_> = groups.iter().map(|w| packed_i8_expr(rt, blob, w)).collect();
        let ng = lit(es.len());
        quote! {
            static #id: [#rt::pack::PackedI8<'static>; #ng] = [#(#es),*];
        }
    };
    Some(match n.kiln.as_ref()? {
        KilnOp::QGemm { weights: w, .. }
        | KilnOp::QMatMul {
            packed: Some(w), ..
        } => {
            let e = packed_i8_expr(rt, blob, w);
            quote! {
                static #id: #rt::pack::PackedI8<'static> = #e;
            }
        }
        KilnOp::QConv {
            kind: QConvKind::Gemm { groups: gs, .. },
            ..
        } => groups(blob, gs),
        KilnOp::QConv {
            kind: QConvKind::Depthwise { w, scale, bias },
            layout,
            spec,
            ..
        } => depthwise_static(rt, blob, id, (w, scale, bias), layout.x_nhwc, spec),
        KilnOp::QLinearConv {
            packed: Some((gs, _)),
            ..
        } => groups(blob, gs),
        KilnOp::QLinearConv {
            depthwise: Some(w), ..
        } => {
            let e = f32s(rt, blob, w);
            quote! {
                static #id: &[f32] = #e;
            }
        }
        KilnOp::QdqMap { lut: Some(t), .. } => {
            let (o, l) = (lit(blob.push(t)), lit(t.len()));
            quote! {
                static #id: &[u8] = #rt::blob::u8s(&BLOB, #o, #l);
            }
        }
        KilnOp::QdqMap { steps, .. } => qdq_map_static(rt, blob, id, steps),
        KilnOp::DqMatMul { w, .. } => dq_matmul_static(rt, blob, id, w),
        KilnOp::SGemm { weights: w, .. } => {
            let e = packed_f32_expr(rt, blob, w);
            quote! {
                static #id: #rt::ops::matmul::PackedF32<'static> = #e;
            }
        }
        KilnOp::Recurrent(o) => {
            let (w, r) = o.packed.as_ref()?;
            let ws: Vec<_> = w.iter().map(|p| packed_f32_expr(rt, blob, p)).collect();
            let rs: Vec<_> = r.iter().map(|p| packed_f32_expr(rt, blob, p)).collect();
            let (nw, nr) = (lit(ws.len()), lit(rs.len()));
            quote! {
                static #id: (
                    [#rt::ops::matmul::PackedF32<'static>; #nw],
                    [#rt::ops::matmul::PackedF32<'static>; #nr],
                ) = ([#(#ws),*], [#(#rs),*]);
            }
        }
        _ => return None,
    })
}

/// A `PackedF32` expression over `w`'s panels (and bias), appended to the blob.
fn packed_f32_expr(
    rt: &TokenStream,
    blob: &mut Blob,
    w: &kiln_runtime::ops::matmul::PackedF32Owned,
) -> TokenStream {
    let (k, nn) = (lit(w.k), lit(w.n));
    let data = f32s(rt, blob, &w.data);
    let bias = match &w.bias {
        Some(b) => {
            let e = f32s(rt, blob, b);
            quote!(Some(#e))
        }
        None => quote!(None),
    };
    quote! {
        #rt::ops::matmul::PackedF32 {
            k: #k, n: #nn,
            data: #data,
            bias: #bias,
        }
    }
}

/// A quantized depthwise convolution's float weights, scales and bias.
fn depthwise_static(
    rt: &TokenStream,
    blob: &mut Blob,
    id: &Ident,
    (w, scale, bias): (&Vec<f32>, &Vec<f32>, &Option<Vec<f32>>),
    nhwc: bool,
    spec: &crate::ir::ConvSpec,
) -> TokenStream {
    // The NHWC kernel reads the taps of all channels at once: [kh·kw][c].
    let wt;
    let w = if nhwc {
        let taps = spec.kernel.iter().product::<usize>();
        wt = (0..taps * spec.c_out)
            .map(|i| w[(i % spec.c_out) * taps + i / spec.c_out])
            .collect::<Vec<f32>>();
        &wt
    } else {
        w
    };
    // The NHWC kernel takes one scale per channel.
    let scale_pc;
    let scale = if nhwc && scale.len() == 1 {
        scale_pc = vec![scale[0]; spec.c_out];
        &scale_pc
    } else {
        scale
    };
    let (we, se) = (f32s(rt, blob, w), f32s(rt, blob, scale));
    let be = match bias {
        Some(b) => f32s(rt, blob, b),
        None => quote!(&[]),
    };
    quote! {
        static #id: (&[f32], &[f32], &[f32]) = (#we, #se, #be);
    }
}

/// The steps of a fused quantized elementwise chain, with their per-channel arrays.
fn qdq_map_static(
    rt: &TokenStream,
    blob: &mut Blob,
    id: &Ident,
    steps: &[MapStepOwned],
) -> TokenStream {
    let es: Vec<TokenStream> = steps
        .iter()
        .map(|s| match s {
            MapStepOwned::Add(v) => {
                let e = f32s(rt, blob, v);
                quote!(#rt::qlinear::MapStep::Add(#e))
            }
            MapStepOwned::Sub(v) => {
                let e = f32s(rt, blob, v);
                quote!(#rt::qlinear::MapStep::Sub(#e))
            }
            MapStepOwned::Mul(v) => {
                let e = f32s(rt, blob, v);
                quote!(#rt::qlinear::MapStep::Mul(#e))
            }
            MapStepOwned::Affine(a, b) => {
                let (ea, eb) = (f32s(rt, blob, a), f32s(rt, blob, b));
                quote!(#rt::qlinear::MapStep::Affine(#ea, #eb))
            }
            MapStepOwned::Relu => quote!(#rt::qlinear::MapStep::Relu),
            MapStepOwned::Unary(u) => {
                let f = format_ident!("{}", u.math_fn());
                let p: Vec<TokenStream> = u.params().into_iter().map(nodes::f32_tokens).collect();
                match p.as_slice() {
                    [] => quote!(#rt::qlinear::MapStep::Unary(#rt::ops::math::#f)),
                    [a] => quote!(#rt::qlinear::MapStep::Unary1(#rt::ops::math::#f, #a)),
                    [a, b, ..] => {
                        quote!(#rt::qlinear::MapStep::Unary2(#rt::ops::math::#f, #a, #b))
                    }
                }
            }
            MapStepOwned::Clip(lo, hi) => {
                let (lo, hi) = (nodes::f32_tokens(*lo), nodes::f32_tokens(*hi));
                quote!(#rt::qlinear::MapStep::Clip(#lo, #hi))
            }
        })
        .collect();
    let ns = lit(es.len());
    quote! {
        static #id: [#rt::qlinear::MapStep<'static>; #ns] = [#(#es),*];
    }
}

/// Block-quantized weights of a dequantize-then-MatMul (`DqWeights`).
fn dq_matmul_static(
    rt: &TokenStream,
    blob: &mut Blob,
    id: &Ident,
    w: &crate::ir::DqWeightsOwned,
) -> TokenStream {
    let mut sec = |b: Vec<u8>| lit(blob.push(&b));
    let (k, nn, bits, signed, bk, bn) =
        (lit(w.k), lit(w.n), w.bits, w.signed, lit(w.bk), lit(w.bn));
    let (dl, pl) = (lit(w.data.len()), lit(w.scale.len()));
    let data = sec(w.data.clone());
    let scale = sec(w.scale.iter().flat_map(|x| x.to_le_bytes()).collect());
    let zp = sec(w.zero_point.iter().flat_map(|x| x.to_le_bytes()).collect());
    let bias = match &w.bias {
        Some(b) => {
            let o = sec(b.iter().flat_map(|x| x.to_le_bytes()).collect());
            let bl = lit(b.len());
            quote!(Some(#rt::blob::f32s(&BLOB, #o, #bl)))
        }
        None => quote!(None),
    };
    quote! {
        static #id: #rt::ops::matmul::DqWeights<'static> = #rt::ops::matmul::DqWeights {
            k: #k, n: #nn, data: #rt::blob::u8s(&BLOB, #data, #dl), bits: #bits,
            signed: #signed, bk: #bk, bn: #bn,
            scale: #rt::blob::f32s(&BLOB, #scale, #pl),
            zero_point: #rt::blob::i32s(&BLOB, #zp, #pl),
            bias: #bias,
        };
    }
}

fn view_fn(d: DType) -> proc_macro2::Ident {
    format_ident!(
        "{}",
        match d {
            DType::F32 => "f32s",
            DType::I8 => "i8s",
            DType::U8 | DType::Bool => "u8s",
            DType::I32 => "i32s",
            DType::I64 => "i64s",
            DType::F64 => "f64s",
            DType::I16 => "i16s",
            DType::U16 => "u16s",
            DType::U32 => "u32s",
            DType::U64 => "u64s",
        }
    )
}

/// A `PackedI8<'static>` expression over the blob, its arrays appended to `blob`.
fn packed_i8_expr(
    rt: &TokenStream,
    blob: &mut Blob,
    w: &kiln_runtime::pack::PackedI8Owned,
) -> TokenStream {
    use kiln_runtime::pack::Layout;
    let bytes = |l: Layout| -> Vec<u8> { w.data_in(l).iter().map(|&x| x as u8).collect() };
    let data = lit(blob.push_per_target(&bytes(Layout::Kr4), &bytes(Layout::Kr8)));
    let mut sec = |b: Vec<u8>| lit(blob.push(&b));
    let (k, nn) = (lit(w.k), lit(w.n));
    let np = w.colsum.len();
    let dl = lit(w.data.len());
    let colsum = sec(w.colsum.iter().flat_map(|x| x.to_le_bytes()).collect());
    let zp = sec(w.zero_point.iter().flat_map(|x| x.to_le_bytes()).collect());
    let scale = sec(w.scale.iter().flat_map(|x| x.to_le_bytes()).collect());
    let bias = match &w.bias {
        Some(b) => {
            let o = sec(b.iter().flat_map(|x| x.to_le_bytes()).collect());
            let bl = lit(b.len());
            quote!(Some(#rt::blob::f32s(&BLOB, #o, #bl)))
        }
        None => quote!(None),
    };
    let np = lit(np);
    let safe = w.avx2_safe;
    quote! {
        #rt::pack::PackedI8 {
            k: #k, n: #nn,
            data: #rt::blob::i8s(&BLOB, #data, #dl),
            colsum: #rt::blob::i32s(&BLOB, #colsum, #np),
            zero_point: #rt::blob::i32s(&BLOB, #zp, #np),
            scale: #rt::blob::f32s(&BLOB, #scale, #np),
            bias: #bias,
            avx2_safe: #safe,
        }
    }
}
