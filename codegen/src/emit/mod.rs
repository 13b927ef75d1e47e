//! Rust emission: the module template (constants, `Inputs`, `Outputs`, `Model`), the weight
//! blob, and one straight-line statement block per node.
//!
//! Weights are never tokens (DESIGN.md decision 1): every constant goes into one blob that the
//! generated code embeds with `include_bytes!`, 64-byte aligned, and reads through `const`
//! views. The generated code contains no `unsafe`.
pub mod names;
mod nodes;
mod vision;
mod work;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::error::{Error, Result};
use crate::ir::{DType, Dim, Graph, KilnOp, TensorData, ValueId};
use crate::plan::{ArenaPlan, Plan, Storage};

/// Where the generated code finds the runtime and the blob.
pub struct EmitOptions {
    /// Path of the runtime crate in generated code, e.g. `::kiln::runtime`.
    pub runtime: TokenStream,
    /// Linker section for the weight blob (`#[unsafe(link_section = …)]`), if any.
    pub link_section: Option<String>,
}

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

/// Everything about the generated module except the blobs' locations, which depend on their
/// hashes.
pub struct Emitted {
    pub blob: Blob,
    body: Box<ModuleBody>,
}

/// The module template: `(blob path, aarch64 blob path)` → tokens.
type ModuleBody = dyn Fn(&str, Option<&str>) -> TokenStream;

impl Emitted {
    /// The module's tokens, with `include_bytes!(blob_path)`, and `include_bytes!(aarch64_path)`
    /// on aarch64 when the model has an aarch64 blob ([`Blob::aarch64`]; required then).
    pub fn tokens(&self, blob_path: &str, aarch64_path: Option<&str>) -> TokenStream {
        (self.body)(blob_path, aarch64_path)
    }
}

pub(crate) fn lit(v: usize) -> Literal {
    Literal::usize_unsuffixed(v)
}

pub(crate) fn rust_ty(d: DType) -> TokenStream {
    d.rust().parse().unwrap()
}

/// Per-value access expressions.
pub(crate) struct Ctx<'a> {
    pub g: &'a Graph,
    pub plan: &'a Plan,
    pub rt: &'a TokenStream,
    /// Local variable names of the symbolic dims in `run`.
    pub syms: Vec<String>,
    /// Arena mode (static shapes): slot values are the node's carved locals `v<id>` instead of
    /// `self.s<slot>` fields.
    pub arena: bool,
    /// Values whose min/max is gathered while they are written (a `Range` local `r<id>`, see
    /// [`ranged_values`]), and which of them a node's code has already taken care of.
    pub ranged: Vec<bool>,
    pub range_done: core::cell::RefCell<Vec<bool>>,
}

/// Values a later op quantizes dynamically (`DynamicQuantizeLinear` semantics: the quantized
/// matmul's activation, a quantized convolution's input, the standalone op) and that are
/// written by a node of this model (not inputs or constants). Their producer gathers the
/// min/max into a `Range` as it writes them (design decision 20), so the quantization does not
/// read the tensor twice.
fn ranged_values(g: &Graph, plan: &Plan) -> Vec<bool> {
    let mut r = vec![false; g.values.len()];
    for n in &g.nodes {
        let quantizes = match &n.kiln {
            Some(KilnOp::QuantizeDyn { .. } | KilnOp::QConv { .. }) => true,
            Some(_) => false,
            None => n.op == "DynamicQuantizeLinear",
        };
        if let (true, Some(x)) = (quantizes, n.input(0))
            && matches!(plan.storage[plan.root(x)], Some(Storage::Slot(_)))
        {
            r[x] = true;
        }
    }
    r
}

/// The local holding a carved arena region of value `v` in arena mode.
fn arena_local(v: ValueId) -> proc_macro2::Ident {
    format_ident!("v{}", v)
}

impl Ctx<'_> {
    /// A usize expression for a (possibly symbolic) dim.
    pub fn dim(&self, d: &Dim) -> TokenStream {
        d.to_tokens(&self.syms)
    }
    pub fn dims(&self, s: &[Dim]) -> TokenStream {
        let d = s.iter().map(|d| self.dim(d));
        quote!(&[#(#d),*])
    }
    /// An expression of type `&[T]` holding value `v`.
    pub fn src(&self, v: ValueId) -> TokenStream {
        let r = self.plan.root(v);
        let len = self.dim(&self.g.values[v].numel());
        match self.plan.storage[r] {
            Some(Storage::Input(i)) => {
                let id = format_ident!("in{}", i);
                quote!(#id)
            }
            Some(Storage::Const(c)) => {
                let id = format_ident!("C{}", c);
                quote!(#id)
            }
            Some(Storage::Slot(_)) if self.arena => {
                let id = arena_local(r);
                quote!(&#id[..#len])
            }
            Some(Storage::Slot(s)) => {
                let id = format_ident!("s{}", s);
                quote!(&self.#id[..#len])
            }
            Some(Storage::Sym) => {
                // Shape values computed from the dims, materialised where a kernel reads them.
                let val = &self.g.values[r];
                let ty = rust_ty(val.dtype);
                let items = val.sym.iter().flatten().map(|d| {
                    let e = d.to_i64_tokens(&self.syms);
                    quote!((#e) as #ty)
                });
                quote!(&[#(#items),*][..])
            }
            Some(Storage::Alias(_)) | None => unreachable!("planned"),
        }
    }
    /// An expression of type `&mut [T]` for value `v` (always a slot).
    pub fn dst(&self, v: ValueId) -> TokenStream {
        let len = self.dim(&self.g.values[v].numel());
        let r = self.plan.root(v);
        match self.plan.storage[r] {
            Some(Storage::Slot(_)) if self.arena => {
                let id = arena_local(r);
                quote!(&mut #id[..#len])
            }
            Some(Storage::Slot(s)) => {
                let id = format_ident!("s{}", s);
                quote!(&mut self.#id[..#len])
            }
            other => unreachable!("output stored as {other:?}"),
        }
    }
    pub fn shape(&self, v: ValueId) -> TokenStream {
        self.dims(&self.g.values[v].shape)
    }
    /// `Some(&r<v>)` if the min/max of value `v` is wanted (its producer widens the range as
    /// it writes), else `None`. Marks it taken care of.
    pub fn range(&self, v: ValueId) -> TokenStream {
        if self.ranged[v] {
            self.range_done.borrow_mut()[v] = true;
            let id = format_ident!("r{}", v);
            quote!(Some(&#id))
        } else {
            quote!(None)
        }
    }
    /// The `DynamicQuantizeLinear` parameters of value `v` (held in `x`): from its gathered
    /// range, or from a min/max pass over it.
    pub fn qparams(&self, v: ValueId, x: &TokenStream) -> TokenStream {
        let rt = self.rt;
        if self.ranged[v] {
            let id = format_ident!("r{}", v);
            quote!(#id.qparams())
        } else {
            quote!(#rt::quantize::dynamic_qparams_isa(isa, #x))
        }
    }
}

pub fn emit(g: &Graph, plan: &Plan, opts: &EmitOptions) -> Result<Emitted> {
    let rt = &opts.runtime;
    let mut blob = Blob::default();
    let mut statics = Vec::new();

    // Constants read at run time.
    for (ci, &v) in plan.consts.iter().enumerate() {
        let val = &g.values[v];
        let data = val.konst.as_ref().unwrap();
        let off = blob.push(&data.to_le_bytes());
        let id = format_ident!("C{}", ci);
        let ty = rust_ty(data.dtype());
        let f = view_fn(data.dtype());
        let (off, len) = (lit(off), lit(data.len()));
        if data.dtype() == DType::Bool {
            // bool cannot be viewed from arbitrary bytes; constants are few and small.
            let TensorData::Bool(b) = data else {
                unreachable!()
            };
            statics.push(quote!(static #id: &[bool] = &[#(#b),*];));
        } else {
            statics.push(quote!(static #id: &[#ty] = #rt::blob::#f(&BLOB, #off, #len);));
        }
    }

    // Packed weights of fused ops.
    let mut node_statics: Vec<Option<proc_macro2::Ident>> = vec![None; g.nodes.len()];
    for (ni, n) in g.nodes.iter().enumerate() {
        let id = format_ident!("W{}", ni);
        match &n.kiln {
            Some(KilnOp::QGemm { weights: w, .. }) => {
                let e = packed_i8_expr(rt, &mut blob, w);
                statics.push(quote! {
                    static #id: #rt::pack::PackedI8<'static> = #e;
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QConv {
                kind: crate::ir::QConvKind::Gemm { groups, .. },
                ..
            }) => {
                let es: Vec<_> = groups
                    .iter()
                    .map(|w| packed_i8_expr(rt, &mut blob, w))
                    .collect();
                let ng = lit(es.len());
                statics.push(quote! {
                    static #id: [#rt::pack::PackedI8<'static>; #ng] = [#(#es),*];
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QConv {
                kind: crate::ir::QConvKind::Depthwise { w, scale, bias },
                layout,
                spec,
                ..
            }) => {
                // The NHWC kernel reads the taps of all channels at once: [kh·kw][c].
                let wt;
                let w = if layout.x_nhwc {
                    let taps = spec.kernel.iter().product::<usize>();
                    wt = (0..taps * spec.c_out)
                        .map(|i| w[(i % spec.c_out) * taps + i / spec.c_out])
                        .collect::<Vec<f32>>();
                    &wt
                } else {
                    w
                };
                let mut f32s = |v: &[f32]| {
                    let o = lit(
                        blob.push(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                    );
                    let l = lit(v.len());
                    quote!(#rt::blob::f32s(&BLOB, #o, #l))
                };
                // The NHWC kernel takes one scale per channel.
                let scale_pc;
                let scale = if layout.x_nhwc && scale.len() == 1 {
                    scale_pc = vec![scale[0]; spec.c_out];
                    &scale_pc
                } else {
                    scale
                };
                let (we, se) = (f32s(w), f32s(scale));
                let be = match bias {
                    Some(b) => f32s(b),
                    None => quote!(&[]),
                };
                statics.push(quote! {
                    static #id: (&[f32], &[f32], &[f32]) = (#we, #se, #be);
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QMatMul {
                packed: Some(w), ..
            }) => {
                let e = packed_i8_expr(rt, &mut blob, w);
                statics.push(quote! {
                    static #id: #rt::pack::PackedI8<'static> = #e;
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QLinearConv {
                packed: Some((groups, _)),
                ..
            }) => {
                let es: Vec<_> = groups
                    .iter()
                    .map(|w| packed_i8_expr(rt, &mut blob, w))
                    .collect();
                let ng = lit(es.len());
                statics.push(quote! {
                    static #id: [#rt::pack::PackedI8<'static>; #ng] = [#(#es),*];
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QLinearConv {
                depthwise: Some(w), ..
            }) => {
                let o =
                    lit(blob.push(&w.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()));
                let l = lit(w.len());
                statics.push(quote! {
                    static #id: &[f32] = #rt::blob::f32s(&BLOB, #o, #l);
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::QdqMap { steps, .. }) => {
                let mut f32s = |v: &[f32]| {
                    let o = lit(
                        blob.push(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                    );
                    let l = lit(v.len());
                    quote!(#rt::blob::f32s(&BLOB, #o, #l))
                };
                let es: Vec<TokenStream> = steps
                    .iter()
                    .map(|s| match s {
                        crate::ir::MapStepOwned::Add(v) => {
                            let e = f32s(v);
                            quote!(#rt::qlinear::MapStep::Add(#e))
                        }
                        crate::ir::MapStepOwned::Sub(v) => {
                            let e = f32s(v);
                            quote!(#rt::qlinear::MapStep::Sub(#e))
                        }
                        crate::ir::MapStepOwned::Mul(v) => {
                            let e = f32s(v);
                            quote!(#rt::qlinear::MapStep::Mul(#e))
                        }
                        crate::ir::MapStepOwned::Affine(a, b) => {
                            let (ea, eb) = (f32s(a), f32s(b));
                            quote!(#rt::qlinear::MapStep::Affine(#ea, #eb))
                        }
                        crate::ir::MapStepOwned::Relu => quote!(#rt::qlinear::MapStep::Relu),
                        crate::ir::MapStepOwned::Unary(u) => {
                            let f = format_ident!("{}", u.math_fn());
                            let p: Vec<TokenStream> =
                                u.params().into_iter().map(nodes::f32_tokens).collect();
                            match p.as_slice() {
                                [] => quote!(#rt::qlinear::MapStep::Unary(#rt::ops::math::#f)),
                                [a] => {
                                    quote!(#rt::qlinear::MapStep::Unary1(#rt::ops::math::#f, #a))
                                }
                                [a, b, ..] => quote!(
                                    #rt::qlinear::MapStep::Unary2(#rt::ops::math::#f, #a, #b)
                                ),
                            }
                        }
                        crate::ir::MapStepOwned::Clip(lo, hi) => {
                            let (lo, hi) = (nodes::f32_tokens(*lo), nodes::f32_tokens(*hi));
                            quote!(#rt::qlinear::MapStep::Clip(#lo, #hi))
                        }
                    })
                    .collect();
                let ns = lit(es.len());
                statics.push(quote! {
                    static #id: [#rt::qlinear::MapStep<'static>; #ns] = [#(#es),*];
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::DqMatMul { w, .. }) => {
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
                statics.push(quote! {
                    static #id: #rt::ops::matmul::DqWeights<'static> = #rt::ops::matmul::DqWeights {
                        k: #k, n: #nn, data: #rt::blob::u8s(&BLOB, #data, #dl), bits: #bits,
                        signed: #signed, bk: #bk, bn: #bn,
                        scale: #rt::blob::f32s(&BLOB, #scale, #pl),
                        zero_point: #rt::blob::i32s(&BLOB, #zp, #pl),
                        bias: #bias,
                    };
                });
                node_statics[ni] = Some(id);
            }
            Some(KilnOp::SGemm { weights: w, .. }) => {
                let (k, nn) = (lit(w.k), lit(w.n));
                let data = lit(blob.push(
                    &w.data
                        .iter()
                        .flat_map(|x| x.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ));
                let dl = lit(w.data.len());
                let bias = match &w.bias {
                    Some(b) => {
                        let o = lit(
                            blob.push(&b.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())
                        );
                        let bl = lit(b.len());
                        quote!(Some(#rt::blob::f32s(&BLOB, #o, #bl)))
                    }
                    None => quote!(None),
                };
                statics.push(quote! {
                    static #id: #rt::ops::matmul::PackedF32<'static> = #rt::ops::matmul::PackedF32 {
                        k: #k, n: #nn,
                        data: #rt::blob::f32s(&BLOB, #data, #dl),
                        bias: #bias,
                    };
                });
                node_statics[ni] = Some(id);
            }
            _ => {}
        }
    }

    let sym_refs: Vec<String> = g.syms.iter().map(|s| format!("dim_{s}")).collect();
    let sym_refs: Vec<&str> = sym_refs.iter().map(String::as_str).collect();
    let syms = names::idents(&sym_refs, "dim");
    let arena_plan = plan.arena.as_ref();
    let ranged = ranged_values(g, plan);
    let ctx = Ctx {
        g,
        plan,
        rt,
        syms,
        arena: arena_plan.is_some(),
        range_done: core::cell::RefCell::new(vec![false; ranged.len()]),
        ranged,
    };
    let range_decls: Vec<TokenStream> = (0..g.values.len())
        .filter(|&v| ctx.ranged[v])
        .map(|v| {
            let id = format_ident!("r{}", v);
            quote!(let #id = #rt::quantize::Range::new();)
        })
        .collect();
    let mut steps = Vec::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        let mut s = nodes::emit_node(&ctx, n, node_statics[ni].as_ref()).map_err(|e| n.err(e))?;
        // Producers that do not gather the range themselves get a min/max pass right after
        // (the work the consumer would otherwise do).
        for &o in &n.outputs {
            if ctx.ranged[o] && !ctx.range_done.borrow()[o] {
                let (id, y) = (format_ident!("r{}", o), ctx.src(o));
                s.extend(quote!(#id.include(#rt::quantize::min_max(isa, #y));));
                ctx.range_done.borrow_mut()[o] = true;
            }
        }
        match arena_plan {
            // Each node borrows exactly the regions it reads and writes, carved out of the arena
            // for the duration of its block.
            Some(a) if !s.is_empty() => {
                let mut roots: Vec<ValueId> = n
                    .inputs
                    .iter()
                    .flatten()
                    .chain(&n.outputs)
                    .map(|&v| plan.root(v))
                    .filter(|&r| matches!(plan.storage[r], Some(Storage::Slot(_))))
                    .collect();
                roots.sort_unstable();
                roots.dedup();
                let regions = roots
                    .into_iter()
                    .map(|r| value_region(&ctx, a, r, false))
                    .collect();
                let carve = carve_regions(rt, regions, quote!(&mut *arena));
                steps.push(quote! {{ #carve #s }});
            }
            _ => steps.push(s),
        }
    }

    // Inputs / outputs.
    let in_names: Vec<String> = g.inputs.iter().map(|&v| g.values[v].name.clone()).collect();
    let out_names: Vec<String> = g
        .outputs
        .iter()
        .map(|&v| g.values[v].name.clone())
        .collect();
    let in_refs: Vec<&str> = in_names.iter().map(String::as_str).collect();
    let out_refs: Vec<&str> = out_names.iter().map(String::as_str).collect();
    let in_ids: Vec<_> = names::idents(&in_refs, "input")
        .into_iter()
        .map(|s| format_ident!("{}", s))
        .collect();
    let out_ids: Vec<_> = names::idents(&out_refs, "output")
        .into_iter()
        .map(|s| format_ident!("{}", s))
        .collect();
    let in_tys: Vec<_> = g
        .inputs
        .iter()
        .map(|&v| rust_ty(g.values[v].dtype))
        .collect();
    let out_tys: Vec<_> = g
        .outputs
        .iter()
        .map(|&v| rust_ty(g.values[v].dtype))
        .collect();
    let spec = |v: usize| {
        let d = g.values[v].shape.iter().map(|d| match d.as_usize() {
            Some(c) => {
                let c = lit(c);
                quote!(#rt::tensor::DimSpec::Fixed(#c))
            }
            None => {
                let n = g.show(d);
                quote!(#rt::tensor::DimSpec::Named(#n))
            }
        });
        quote!(&[#(#d),*])
    };
    let in_shapes: Vec<_> = g.inputs.iter().map(|&v| spec(v)).collect();
    let out_shapes: Vec<_> = g.outputs.iter().map(|&v| spec(v)).collect();
    let in_dt: Vec<_> = g.inputs.iter().map(|&v| g.values[v].dtype.rust()).collect();
    let out_dt: Vec<_> = g
        .outputs
        .iter()
        .map(|&v| g.values[v].dtype.rust())
        .collect();
    let (n_in, n_out) = (lit(g.inputs.len()), lit(g.outputs.len()));

    let mut checks = Vec::new();
    let mut bound = vec![false; g.syms.len()];
    for (i, &v) in g.inputs.iter().enumerate() {
        let id = &in_ids[i];
        let name = &in_names[i];
        let shape = &g.values[v].shape;
        let declared = &in_shapes[i];
        let local = format_ident!("in{}", i);
        checks.push(quote! {
            #rt::tensor::check_shape(#name, inputs.#id.shape(), #declared)?;
            let #local = inputs.#id.data();
        });
        // Bind each symbolic dim on first sight; later inputs must agree.
        for (j, d) in shape.iter().enumerate() {
            let Some(sym) = d.syms().next() else { continue };
            let var = format_ident!("{}", ctx.syms[sym as usize]);
            let dname = &g.syms[sym as usize];
            let j = lit(j);
            if !std::mem::replace(&mut bound[sym as usize], true) {
                checks.push(quote!(let #var: usize = inputs.#id.shape()[#j];));
            } else {
                checks.push(quote! {
                    if inputs.#id.shape()[#j] != #var {
                        return Err(#rt::Error::DimMismatch { dim: #dname, first: #var, second: inputs.#id.shape()[#j], input: #name });
                    }
                });
            }
        }
    }
    // Derived dims (floor divisions: conv/pool sizes over a symbolic height/width).
    for d in &g.derived {
        let var = format_ident!("{}", ctx.syms[d.sym as usize]);
        let num = d.num.to_i64_tokens(&ctx.syms);
        let (den, expr, node) = (d.den, g.show(&d.num), &d.node);
        checks.push(quote! {
            let #var: usize = {
                let num: i64 = #num;
                if num < 0 {
                    return Err(#rt::Error::DimTooSmall { expr: #expr, value: num, node: #node });
                }
                (num / #den) as usize
            };
        });
    }
    for c in &g.eq_checks {
        let (a, b) = (ctx.dim(&c.a), ctx.dim(&c.b));
        let (la, lb, node) = (g.show(&c.a), g.show(&c.b), &c.node);
        checks.push(quote! {
            if #a != #b {
                return Err(#rt::Error::DimsDiffer { node: #node, left: #la, left_value: #a, right: #lb, right_value: #b });
            }
        });
    }
    for c in &g.checks {
        let e = ctx.dim(&c.dim);
        let (max, what, node) = (lit(c.max), g.show(&c.dim), &c.node);
        checks.push(quote! {
            if #e > #max {
                return Err(#rt::Error::DimTooLarge { dim: #what, value: #e, max: #max, node: #node });
            }
        });
    }
    // Symbolic-size buffers grow here (only when dims grow: no allocation in steady state).
    for (i, s) in plan.slots.iter().enumerate() {
        if s.static_capacity().is_some() {
            continue;
        }
        let id = format_ident!("s{}", i);
        let mut it = s.sizes.iter().map(|d| ctx.dim(d));
        let first = it.next().unwrap_or_else(|| quote!(0));
        let rest: Vec<_> = it.collect();
        checks.push(quote!(#rt::ensure_len(&mut self.#id, #first #(.max(#rest))*);));
    }
    // Output values held outside slots (inputs, constants) are copied into their own slot-less
    // form: constants are 'static and can be returned directly; inputs are copied.
    let mut out_exprs = Vec::new();
    let mut out_copies = Vec::new();
    let mut extra_fields = Vec::new();
    let mut extra_inits = Vec::new();
    if let Some(a) = arena_plan {
        // The outputs' regions, carved from the arena itself (moved, not reborrowed) so that
        // they borrow it for `'a`. Graph inputs returned as outputs are copied into regions of
        // their own: the outputs must not borrow the inputs.
        let mut regions = Vec::new();
        let mut seen = Vec::new();
        for &v in &g.outputs {
            let r = plan.root(v);
            if matches!(plan.storage[r], Some(Storage::Slot(_))) && !seen.contains(&r) {
                seen.push(r);
                regions.push(value_region(&ctx, a, r, true));
            }
        }
        for &(oi, off) in &a.output_copies {
            let v = g.outputs[oi];
            let Some(Storage::Input(j)) = plan.storage[plan.root(v)] else {
                return Err(Error::invalid("internal: output copy of a non-input"));
            };
            let bytes = g.values[v].numel().as_usize().unwrap_or(0) * g.values[v].dtype.size();
            let id = format_ident!("out_copy{}", oi);
            let ty = rust_ty(g.values[v].dtype);
            let src = format_ident!("in{}", j);
            out_copies.push(quote! {
                #id.copy_from_slice(#src);
                let #id: &[#ty] = #id;
            });
            regions.push(Region {
                off: if bytes == 0 { 0 } else { off },
                bytes,
                local: id,
                ty,
                shared: false,
            });
        }
        out_copies.insert(0, carve_regions(rt, regions, quote!(arena)));
    }
    for (i, &v) in g.outputs.iter().enumerate() {
        let r = plan.root(v);
        let shape = ctx.shape(v);
        let len = ctx.dim(&g.values[v].numel());
        let expr = match plan.storage[r] {
            Some(Storage::Slot(_)) if arena_plan.is_some() => {
                let id = arena_local(r);
                quote!(&#id[..#len])
            }
            Some(Storage::Input(_)) if arena_plan.is_some() => {
                let id = format_ident!("out_copy{}", i);
                quote!(#id)
            }
            Some(Storage::Slot(s)) => {
                let id = format_ident!("s{}", s);
                quote!(&self.#id[..#len])
            }
            Some(Storage::Const(c)) => {
                let id = format_ident!("C{}", c);
                quote!(#id)
            }
            Some(Storage::Input(j)) => {
                let f = format_ident!("out_copy{}", i);
                let src = format_ident!("in{}", j);
                let ty = rust_ty(g.values[v].dtype);
                extra_fields.push(quote!(#f: #rt::Vec<#ty>,));
                extra_inits.push(quote!(#f: #rt::Vec::new(),));
                out_copies.push(quote! {
                    self.#f.clear();
                    self.#f.extend_from_slice(#src);
                });
                quote!(&self.#f[..])
            }
            _ => return Err(Error::invalid("internal: unplanned output")),
        };
        let id = &out_ids[i];
        out_exprs.push(quote!(#id: #rt::TensorView::new(#expr, #shape)));
    }

    let slot_fields: Vec<_> = plan
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format_ident!("s{}", i);
            let ty = rust_ty(s.dtype);
            quote!(#id: #rt::Vec<#ty>,)
        })
        .collect();
    let slot_inits: Vec<_> = plan
        .slots
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let id = format_ident!("s{}", i);
            let zero = match s.dtype {
                DType::Bool => quote!(false),
                DType::F32 | DType::F64 => quote!(0.0),
                _ => quote!(0),
            };
            match s.static_capacity() {
                Some(cap) => {
                    let cap = lit(cap);
                    quote!(#id: #rt::alloc_vec(#cap, #zero),)
                }
                None => quote!(#id: #rt::Vec::new(),),
            }
        })
        .collect();

    let blob_len = lit(blob.bytes.len());
    let file = g.file.display().to_string();
    let doc = format!(" Compiled by kiln from `{file}`.");
    let naive = lit(plan.naive_bytes);
    let has_blob = !blob.bytes.is_empty();
    let link_section = opts.link_section.clone();

    let work = work::call_work(g, &ctx.syms);
    let model_items = match arena_plan {
        Some(a) => {
            let (bytes, align) = (lit(a.bytes), lit(a.align));
            quote! {
                            /// Bytes of intermediate memory a run needs (= `ARENA_BYTES`).
                            pub const WORKSPACE_BYTES: usize = ARENA_BYTES;
                            /// Bytes the intermediates would need without reusing memory between them.
                            pub const NAIVE_WORKSPACE_BYTES: usize = #naive;
                            /// Length of the arena `Model::run_in` needs: every intermediate at a
                            /// compile-time offset, tensors whose lifetimes do not overlap sharing bytes.
                            pub const ARENA_BYTES: usize = #bytes;
                            /// Alignment the arena must start at (the largest element alignment in it).
                            pub const ARENA_ALIGN: usize = #align;
                            /// An aligned buffer of `ARENA_BYTES`: `model.run_in(&mut arena, inputs)`.
                            pub type Arena = #rt::arena::ArenaBuf<ARENA_BYTES>;
                            const _: () = assert!(ARENA_ALIGN <= #rt::arena::BUF_ALIGN);

                            /// The model's outputs, borrowed from the arena (the model's own for `run`)
                            /// until the next run.
                            #[derive(Clone, Copy, Debug)]
                            pub struct Outputs<'m> {
                                #(pub #out_ids: #rt::TensorView<'m, #out_tys>,)*
                            }

                            /// The compiled model: its kernel family and, with the `alloc` feature, the
                            /// arena `run` uses.
                            pub struct Model {
                                isa: #rt::Isa,
                                #[allow(dead_code)]
                                arena: #rt::arena::OwnedArena,
                            }

                            impl Default for Model {
                                fn default() -> Self {
                                    Self::new()
                                }
                            }

                            #[allow(unused_braces, unused_variables, unused_mut, clippy::all)]
                            impl Model {
                                /// A model running on the best kernels for this CPU (or `KILN_ISA`). With
                                /// the `alloc` feature it allocates its `ARENA_BYTES` arena for `run`.
                                pub fn new() -> Self {
                                    Self::with_isa(#rt::Isa::current())
                                }
                                /// A model forced onto `isa` (falls back to the best available family below it).
                                pub fn with_isa(isa: #rt::Isa) -> Self {
                                    Model {
                                        isa: isa.resolve(),
                                        arena: #rt::arena::OwnedArena::new(ARENA_BYTES),
                                    }
                                }
                                /// The kernel family this model runs.
                                pub fn isa(&self) -> #rt::Isa {
                                    self.isa
                                }
                                /// Runs the model in a caller-provided arena of at least `ARENA_BYTES`
                                /// bytes starting at a multiple of `ARENA_ALIGN` (e.g. an [`Arena`]); the
                                /// outputs borrow it. Allocates nothing. Fails if the arena is too small or
                                /// misaligned, or an input's shape differs from the model's.
                                pub fn run_in<'a>(&self, arena: &'a mut [u8], inputs: Inputs<'_>) -> ::core::result::Result<Outputs<'a>, #rt::Error> {
                                    Self::run_arena(self.isa, arena, inputs)
                                }
                                fn run_arena<'a>(isa: #rt::Isa, arena: &'a mut [u8], inputs: Inputs<'_>) -> ::core::result::Result<Outputs<'a>, #rt::Error> {
                                    let arena = #rt::arena::prepare(arena, ARENA_BYTES, ARENA_ALIGN)?;
                                    #(#checks)*
                                    #rt::par::enter(#work, || -> ::core::result::Result<(), #rt::Error> {
                                        #(#range_decls)*
            #(#steps)*
                                        Ok(())
                                    })?;
                                    #(#out_copies)*
                                    Ok(Outputs { #(#out_exprs,)* })
                                }
                            }

                            #rt::__kiln_if_alloc! {
                                impl Model {
                                    /// Runs the model in its own arena. Fails if an input's shape differs
                                    /// from the model's. Allocates nothing.
                                    pub fn run<'m>(&'m mut self, inputs: Inputs<'_>) -> ::core::result::Result<Outputs<'m>, #rt::Error> {
                                        let isa = self.isa;
                                        Self::run_arena(isa, self.arena.bytes_mut(), inputs)
                                    }
                                }
                            }
                        }
        }
        None => {
            let arena = lit(plan.planned_bytes());
            let dims = (0..g.syms.len())
                .filter(|&s| !g.is_derived(s as crate::ir::SymId))
                .map(|s| g.syms[s].as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let no_alloc = format!(
                "kiln: `{file}` has symbolic dims ({dims}), so its buffers are sized per call \
                 and it needs the `alloc` feature of kiln / kiln-runtime; without `alloc`, \
                 `run_in` needs a model with static shapes"
            );
            let deprecated = format!(
                "this model has symbolic dims ({dims}): `run_in` needs static shapes and always \
                 returns `Err(StaticShapesRequired)`; use `run`"
            );
            quote! {
                            /// Bytes of intermediate buffers the model owns (after liveness-based reuse;
                            /// buffers of symbolic size are not counted).
                            pub const WORKSPACE_BYTES: usize = #arena;
                            /// Bytes the intermediates would need without buffer reuse.
                            pub const NAIVE_WORKSPACE_BYTES: usize = #naive;

                            /// The model's outputs, borrowed from the model until the next `run`.
                            #[derive(Clone, Copy, Debug)]
                            pub struct Outputs<'m> {
                                #(pub #out_ids: #rt::TensorView<'m, #out_tys>,)*
                            }

                            #rt::__kiln_if_no_alloc! {
                                compile_error!(#no_alloc);
                            }

                            #rt::__kiln_if_alloc! {
                                /// The compiled model: its kernel family and its intermediate buffers, which
                                /// grow with the symbolic dims.
                                pub struct Model {
                                    isa: #rt::Isa,
                                    #(#slot_fields)*
                                    #(#extra_fields)*
                                }

                                impl Default for Model {
                                    fn default() -> Self {
                                        Self::new()
                                    }
                                }

                                #[allow(unused_braces, unused_variables, clippy::all)]
                                impl Model {
                                    /// A model running on the best kernels for this CPU (or `KILN_ISA`).
                                    pub fn new() -> Self {
                                        Self::with_isa(#rt::Isa::current())
                                    }
                                    /// A model forced onto `isa` (falls back to the best available family below it).
                                    pub fn with_isa(isa: #rt::Isa) -> Self {
                                        Model {
                                            isa: isa.resolve(),
                                            #(#slot_inits)*
                                            #(#extra_inits)*
                                        }
                                    }
                                    /// The kernel family this model runs.
                                    pub fn isa(&self) -> #rt::Isa {
                                        self.isa
                                    }
                                    /// Runs the model. Fails if an input's shape differs from the model's.
                                    pub fn run<'m>(&'m mut self, inputs: Inputs<'_>) -> ::core::result::Result<Outputs<'m>, #rt::Error> {
                                        #(#checks)*
                                        let isa = self.isa;
                                        #rt::par::enter(#work, || -> ::core::result::Result<(), #rt::Error> {
                                            #(#range_decls)*
            #(#steps)*
                                            Ok(())
                                        })?;
                                        #(#out_copies)*
                                        Ok(Outputs { #(#out_exprs,)* })
                                    }
                                    /// Not available: the model has symbolic dims.
                                    #[deprecated(note = #deprecated)]
                                    pub fn run_in<'a>(&self, arena: &'a mut [u8], inputs: Inputs<'_>) -> ::core::result::Result<Outputs<'a>, #rt::Error> {
                                        Err(#rt::Error::StaticShapesRequired { dims: #dims })
                                    }
                                }
                            }
                        }
        }
    };

    let rt2 = rt.clone();
    let per_target = blob.aarch64().is_some();
    let body = move |blob_path: &str, aarch64_path: Option<&str>| {
        let rt = &rt2;
        let section = link_section
            .as_ref()
            .map(|sec| quote!(#[unsafe(link_section = #sec)]));
        let decl = |path: &str| quote!(#section static BLOB: #rt::blob::Aligned<#blob_len> = #rt::blob::Aligned(*include_bytes!(#path)););
        let blob_decl = match (has_blob, per_target) {
            (false, _) => quote!(),
            (true, false) => decl(blob_path),
            (true, true) => {
                let arm = aarch64_path.expect("the model has an aarch64 blob: pass its path");
                let (generic, arm) = (decl(blob_path), decl(arm));
                let layout = quote!(#rt::pack::Layout);
                quote! {
                    /// The weights; packed int8 weights in 4-deep k-groups (`pack::Layout::Kr4`).
                    #[cfg(not(target_arch = "aarch64"))]
                    #generic
                    #[cfg(not(target_arch = "aarch64"))]
                    const _: () = assert!(matches!(#layout::NATIVE, #layout::Kr4));
                    /// The same sections with the packed int8 weights in aarch64's 8-deep
                    /// k-groups (`pack::Layout::Kr8`).
                    #[cfg(target_arch = "aarch64")]
                    #arm
                    #[cfg(target_arch = "aarch64")]
                    const _: () = assert!(matches!(#layout::NATIVE, #layout::Kr8));
                }
            }
        };
        quote! {
            /// ONNX names of the model's inputs, in declaration order.
            pub const INPUT_NAMES: [&str; #n_in] = [#(#in_names),*];
            /// ONNX names of the model's outputs, in declaration order.
            pub const OUTPUT_NAMES: [&str; #n_out] = [#(#out_names),*];
            /// Element type (Rust name) of each input.
            pub const INPUT_DTYPES: [&str; #n_in] = [#(#in_dt),*];
            /// Element type (Rust name) of each output.
            pub const OUTPUT_DTYPES: [&str; #n_out] = [#(#out_dt),*];
            /// Shape of each input (symbolic dims by name).
            pub const INPUT_SHAPES: [&[#rt::tensor::DimSpec]; #n_in] = [#(#in_shapes),*];
            /// Shape of each output (symbolic dims by name).
            pub const OUTPUT_SHAPES: [&[#rt::tensor::DimSpec]; #n_out] = [#(#out_shapes),*];

            #[doc = #doc]
            pub const SOURCE: &str = #file;

            #blob_decl
            #(#[allow(non_upper_case_globals)] #statics)*

            /// The model's inputs, named after the ONNX graph inputs.
            #[derive(Clone, Copy, Debug)]
            pub struct Inputs<'a> {
                #(pub #in_ids: #rt::TensorRef<'a, #in_tys>,)*
            }

            #model_items
        }
    };
    Ok(Emitted {
        blob,
        body: Box::new(body),
    })
}

/// One carved arena region: its bytes, the local that views it, and the element type.
struct Region {
    off: usize,
    bytes: usize,
    local: proc_macro2::Ident,
    ty: TokenStream,
    /// Viewed as `&[T]` (outputs) rather than `&mut [T]`.
    shared: bool,
}

/// The region of slot value `v` (an empty one at offset 0 when it holds no bytes, so that
/// empty regions never sit inside another one).
fn value_region(c: &Ctx, a: &ArenaPlan, v: ValueId, shared: bool) -> Region {
    let val = &c.g.values[v];
    let bytes = val.numel().as_usize().unwrap_or(0) * val.dtype.size();
    Region {
        off: if bytes == 0 { 0 } else { a.offset[&v] },
        bytes,
        local: arena_local(v),
        ty: rust_ty(val.dtype),
        shared,
    }
}

/// `let [b0, …] = carve(<arena>, [(offset, len), …]); let v7: &mut [f32] = cast(b0); …`
/// with the regions in increasing offset order, as `carve` requires.
fn carve_regions(rt: &TokenStream, mut regions: Vec<Region>, arena: TokenStream) -> TokenStream {
    if regions.is_empty() {
        return quote!();
    }
    regions.sort_by_key(|r| (r.off, r.bytes));
    let bs: Vec<_> = (0..regions.len())
        .map(|i| format_ident!("b{}", i))
        .collect();
    let specs = regions.iter().map(|r| {
        let (o, b) = (lit(r.off), lit(r.bytes));
        quote!((#o, #b))
    });
    let views = regions.iter().zip(&bs).map(|(r, b)| {
        let (id, ty) = (&r.local, &r.ty);
        if r.shared {
            quote!(let #id: &[#ty] = #rt::arena::cast(#b);)
        } else {
            quote!(let #id: &mut [#ty] = #rt::arena::cast(#b);)
        }
    });
    quote! {
        let [#(#bs),*] = #rt::arena::carve(#arena, [#(#specs),*]);
        #(#views)*
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
