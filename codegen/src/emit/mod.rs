//! Rust emission: the module template (`module`: constants, `Inputs`, `Outputs`, `Model`), the
//! weight blob and its statics (`statics`), and one straight-line statement block per node
//! (`nodes`). The generated code contains no `unsafe`.
mod control;
mod embed;
mod fused;
pub(crate) mod matmul;
mod module;
pub mod names;
pub(crate) mod nodes;
pub(crate) mod norm;
pub(crate) mod quant;
mod recurrent;
pub(crate) mod shape;
mod statics;
pub(crate) mod vision;
mod work;
mod workspace;

use proc_macro2::{Ident, Literal, TokenStream};
use quote::{format_ident, quote};

use crate::error::{Error, Result};
use crate::ir::{DType, Dim, Graph, KilnOp, ValueId};
use crate::plan::{ArenaPlan, Plan, Storage};
pub use statics::Blob;

/// Where the generated code finds the runtime and the blob.
pub struct EmitOptions {
    /// Path of the runtime crate in generated code, e.g. `::kiln::runtime`.
    pub runtime: TokenStream,
    /// Linker section for the weight blob (`#[unsafe(link_section = …)]`), if any.
    pub link_section: Option<String>,
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
    let st = statics::statics(g, plan, rt, &mut blob);
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
    let steps = node_steps(&ctx, &st.per_node)?;
    let io = Io::new(g, rt);
    let checks = input_checks(&ctx, &io);
    let outs = outputs(&ctx, &io)?;
    let (slot_fields, slot_inits) = slot_decls(plan, rt);
    let parts = module::Parts {
        out_ids: &io.out_ids,
        out_tys: &io.out_tys,
        checks,
        range_decls,
        steps,
        out_copies: outs.copies,
        out_exprs: outs.exprs,
        extra_fields: outs.extra_fields,
        extra_inits: outs.extra_inits,
        slot_fields,
        slot_inits,
        work: work::call_work(g, &ctx.syms),
        naive: lit(plan.naive_bytes),
    };
    let model_items = match plan.arena.as_ref() {
        Some(a) => module::arena_model(rt, &parts, a),
        None => module::owned_model(rt, &parts, g, plan, &ctx.syms),
    };
    let body = module::body(
        rt,
        g,
        &blob,
        io,
        st.items,
        model_items,
        opts.link_section.clone(),
    );
    Ok(Emitted {
        blob,
        body: Box::new(body),
    })
}

/// Each node's statements, in graph order (in arena mode, each in a block that carves the
/// regions the node reads and writes).
fn node_steps(ctx: &Ctx, per_node: &[Option<Ident>]) -> Result<Vec<TokenStream>> {
    let (g, plan, rt) = (ctx.g, ctx.plan, ctx.rt);
    let arena_plan = plan.arena.as_ref();
    let mut steps = control::Blocks::default();
    for (ni, n) in g.nodes.iter().enumerate() {
        if control::Blocks::is_marker(n) {
            steps.marker(ctx, n, ni).map_err(|e| n.err(e))?;
            continue;
        }
        let mut s = nodes::emit_node(ctx, n, per_node[ni].as_ref()).map_err(|e| n.err(e))?;
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
                    .map(|r| value_region(ctx, a, r, false))
                    .collect();
                let carve = carve_regions(rt, regions, quote!(&mut *arena));
                steps.push(quote! {{ #carve #s }});
            }
            _ => steps.push(s),
        }
    }
    steps.finish()
}

/// Input shape checks, symbolic dim bindings, derived dims, run-time dim checks and the growth
/// of symbolic-size buffers: the start of `run`.
fn input_checks(ctx: &Ctx, io: &Io) -> Vec<TokenStream> {
    let (g, plan, rt) = (ctx.g, ctx.plan, ctx.rt);
    let Io {
        in_ids,
        in_names,
        in_shapes,
        ..
    } = io;
    let mut checks = Vec::new();
    let mut bound = vec![false; g.syms.len()];
    if g.inputs.is_empty() {
        // `Inputs` is an empty marker then (see `module`): read it so it is not unused.
        checks.push(quote!(let _ = inputs;));
    }
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
    checks
}

/// How `run` returns the outputs.
struct Outs {
    exprs: Vec<TokenStream>,
    copies: Vec<TokenStream>,
    extra_fields: Vec<TokenStream>,
    extra_inits: Vec<TokenStream>,
}

fn outputs(ctx: &Ctx, io: &Io) -> Result<Outs> {
    let (g, plan, rt) = (ctx.g, ctx.plan, ctx.rt);
    let arena_plan = plan.arena.as_ref();
    let out_ids = &io.out_ids;
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
                regions.push(value_region(ctx, a, r, true));
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

    Ok(Outs {
        exprs: out_exprs,
        copies: out_copies,
        extra_fields,
        extra_inits,
    })
}

/// The owned model's slot fields and their initialisers.
fn slot_decls(plan: &Plan, rt: &TokenStream) -> (Vec<TokenStream>, Vec<TokenStream>) {
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
    (slot_fields, slot_inits)
}

/// The module's interface: names, Rust field names, types and declared shapes of the graph's
/// inputs and outputs.
pub(super) struct Io {
    pub in_names: Vec<String>,
    pub out_names: Vec<String>,
    pub in_ids: Vec<Ident>,
    pub out_ids: Vec<Ident>,
    pub in_tys: Vec<TokenStream>,
    pub out_tys: Vec<TokenStream>,
    pub in_shapes: Vec<TokenStream>,
    pub out_shapes: Vec<TokenStream>,
    pub in_dt: Vec<&'static str>,
    pub out_dt: Vec<&'static str>,
}

impl Io {
    fn new(g: &Graph, rt: &TokenStream) -> Io {
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
        Io {
            in_names,
            out_names,
            in_ids,
            out_ids,
            in_tys,
            out_tys,
            in_shapes,
            out_shapes,
            in_dt,
            out_dt,
        }
    }
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
