//! Rust emission: the module template (constants, `Inputs`, `Outputs`, `Model`), the weight
//! blob, and one straight-line statement block per node.
//!
//! Weights are never tokens (DESIGN.md decision 1): every constant goes into one blob that the
//! generated code embeds with `include_bytes!`, 64-byte aligned, and reads through `const`
//! views. The generated code contains no `unsafe`.
pub mod names;
mod nodes;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::error::{Error, Result};
use crate::ir::{DType, Dim, Graph, KilnOp, TensorData, ValueId};
use crate::plan::{Plan, Storage};

/// Where the generated code finds the runtime and the blob.
pub struct EmitOptions {
    /// Path of the runtime crate in generated code, e.g. `::kiln::runtime`.
    pub runtime: TokenStream,
}

/// The weight blob under construction: 64-byte aligned sections.
#[derive(Default)]
pub struct Blob {
    pub bytes: Vec<u8>,
}

impl Blob {
    fn push(&mut self, data: &[u8]) -> usize {
        let off = self.bytes.len().next_multiple_of(64);
        self.bytes.resize(off, 0);
        self.bytes.extend_from_slice(data);
        off
    }
    /// 64-bit FNV-1a twice with different seeds: a stable content name for the blob file.
    pub fn hash_hex(&self) -> String {
        let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
        let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
        for &b in &self.bytes {
            h1 = (h1 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
            h2 = (h2 ^ b as u64)
                .wrapping_mul(0x0000_0100_0000_01b3)
                .rotate_left(5);
        }
        format!("{h1:016x}{h2:016x}{:x}", self.bytes.len())
    }
}

/// Everything about the generated module except the blob's location, which depends on its hash.
pub struct Emitted {
    pub blob: Blob,
    body: Box<dyn Fn(&str) -> TokenStream>,
}

impl Emitted {
    /// The module's tokens, with `include_bytes!(blob_path)`.
    pub fn tokens(&self, blob_path: &str) -> TokenStream {
        (self.body)(blob_path)
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
        match self.plan.storage[self.plan.root(v)] {
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
                let mut sec = |b: Vec<u8>| lit(blob.push(&b));
                let (k, nn) = (lit(w.k), lit(w.n));
                let np = w.colsum.len();
                let data = sec(w.data.iter().map(|&x| x as u8).collect());
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
                statics.push(quote! {
                    static #id: #rt::pack::PackedI8<'static> = #rt::pack::PackedI8 {
                        k: #k, n: #nn,
                        data: #rt::blob::i8s(&BLOB, #data, #dl),
                        colsum: #rt::blob::i32s(&BLOB, #colsum, #np),
                        zero_point: #rt::blob::i32s(&BLOB, #zp, #np),
                        scale: #rt::blob::f32s(&BLOB, #scale, #np),
                        bias: #bias,
                        avx2_safe: #safe,
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
    let ctx = Ctx { g, plan, rt, syms };
    let mut steps = Vec::new();
    for (ni, n) in g.nodes.iter().enumerate() {
        let s = nodes::emit_node(&ctx, n, node_statics[ni].as_ref()).map_err(|e| n.err(e))?;
        steps.push(s);
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
        let dims = shape.iter().map(|d| match d.as_usize() {
            Some(c) => {
                let c = lit(c);
                quote!(Some(#c))
            }
            None => quote!(None),
        });
        let local = format_ident!("in{}", i);
        checks.push(quote! {
            #rt::tensor::check_shape(#name, inputs.#id.shape(), &[#(#dims),*])?;
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
    for (i, &v) in g.outputs.iter().enumerate() {
        let r = plan.root(v);
        let shape = ctx.shape(v);
        let len = ctx.dim(&g.values[v].numel());
        let expr = match plan.storage[r] {
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
    let arena = lit(plan.planned_bytes());
    let naive = lit(plan.naive_bytes);
    let has_blob = !blob.bytes.is_empty();
    let rt2 = rt.clone();
    let body = move |blob_path: &str| {
        let rt = &rt2;
        let blob_decl = if has_blob {
            quote!(static BLOB: #rt::blob::Aligned<#blob_len> = #rt::blob::Aligned(*include_bytes!(#blob_path));)
        } else {
            quote!()
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
            /// Bytes of intermediate buffers the model owns (after liveness-based reuse).
            pub const WORKSPACE_BYTES: usize = #arena;
            /// Bytes the intermediates would need without buffer reuse.
            pub const NAIVE_WORKSPACE_BYTES: usize = #naive;

            #[doc = #doc]
            pub const SOURCE: &str = #file;

            #blob_decl
            #(#[allow(non_upper_case_globals)] #statics)*

            /// The model's inputs, named after the ONNX graph inputs.
            #[derive(Clone, Copy, Debug)]
            pub struct Inputs<'a> {
                #(pub #in_ids: #rt::TensorRef<'a, #in_tys>,)*
            }

            /// The model's outputs, borrowed from the model until the next `run`.
            #[derive(Clone, Copy, Debug)]
            pub struct Outputs<'m> {
                #(pub #out_ids: #rt::TensorView<'m, #out_tys>,)*
            }

            /// The compiled model: its kernel family and its preallocated intermediate buffers.
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
                    #(#steps)*
                    #(#out_copies)*
                    Ok(Outputs { #(#out_exprs,)* })
                }
            }
        }
    };
    Ok(Emitted {
        blob,
        body: Box::new(body),
    })
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
