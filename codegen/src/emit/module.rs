//! The module template: the interface constants, `Inputs`, `Outputs`, and `Model` with its
//! `run` (arena mode for static shapes, owned buffers for symbolic ones).
use proc_macro2::{Ident, Literal, TokenStream};
use quote::quote;

use super::{Blob, Io, lit};
use crate::ir::Graph;
use crate::plan::{ArenaPlan, Plan};

/// The generated pieces `run` is made of.
pub(super) struct Parts<'a> {
    pub out_ids: &'a [Ident],
    pub out_tys: &'a [TokenStream],
    pub checks: Vec<TokenStream>,
    pub range_decls: Vec<TokenStream>,
    pub steps: Vec<TokenStream>,
    pub out_copies: Vec<TokenStream>,
    pub out_exprs: Vec<TokenStream>,
    pub extra_fields: Vec<TokenStream>,
    pub extra_inits: Vec<TokenStream>,
    pub slot_fields: Vec<TokenStream>,
    pub slot_inits: Vec<TokenStream>,
    pub work: TokenStream,
    pub naive: Literal,
}

/// `Model` of a static-shape model: runs in a caller-provided (or its own) arena.
pub(super) fn arena_model(rt: &TokenStream, p: &Parts, a: &ArenaPlan) -> TokenStream {
    let Parts {
        out_ids,
        out_tys,
        checks,
        range_decls,
        steps,
        out_copies,
        out_exprs,
        work,
        naive,
        ..
    } = p;
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

/// `Model` of a model with symbolic dims: owns buffers that grow with the dims.
pub(super) fn owned_model(
    rt: &TokenStream,
    p: &Parts,
    g: &Graph,
    plan: &Plan,
    syms: &[String],
) -> TokenStream {
    let Parts {
        out_ids,
        out_tys,
        checks,
        range_decls,
        steps,
        out_copies,
        out_exprs,
        extra_fields,
        extra_inits,
        slot_fields,
        slot_inits,
        work,
        naive,
    } = p;
    let file = g.file.display().to_string();
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
    let workspace_fn = super::workspace::workspace_fn(g, plan, syms);
    quote! {
    /// Bytes of the intermediate buffers of static size the model owns (after
    /// liveness-based reuse); `workspace_bytes` gives the total for given dims.
    pub const WORKSPACE_BYTES: usize = #arena;
    /// Bytes the intermediates of static size would need without buffer reuse.
    pub const NAIVE_WORKSPACE_BYTES: usize = #naive;
    #workspace_fn

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

/// The whole module given the blobs' paths.
pub(super) fn body(
    rt: &TokenStream,
    g: &Graph,
    blob: &Blob,
    io: Io,
    statics: Vec<TokenStream>,
    model_items: TokenStream,
    link_section: Option<String>,
) -> impl Fn(&str, Option<&str>) -> TokenStream + use<> {
    let Io {
        in_names,
        out_names,
        in_ids,
        in_tys,
        in_shapes,
        out_shapes,
        in_dt,
        out_dt,
        ..
    } = io;
    let (n_in, n_out) = (lit(g.inputs.len()), lit(g.outputs.len()));
    let blob_len = lit(blob.bytes.len());
    let file = g.file.display().to_string();
    // Quoted and escaped: the doc is printed as a comment, and a newline or `*/` in a file name
    // would end it.
    let doc = format!(" Compiled by kiln from `{file:?}`.");
    let has_blob = !blob.bytes.is_empty();
    let rt2 = rt.clone();
    let per_target = blob.aarch64().is_some();
    move |blob_path: &str, aarch64_path: Option<&str>| {
        let rt = &rt2;
        let decl =
            |path: &str| super::embed::blob_decl(rt, &blob_len, path, link_section.as_deref());
        let blob_decl = match (has_blob, per_target) {
            (false, _) => quote!(),
            (true, false) => decl(blob_path),
            (true, true) => {
                let arm = aarch64_path.expect("the model has an aarch64 blob: pass its path");
                let (generic, arm) = (decl(blob_path), decl(arm));
                let layout = quote!(#rt::pack::Layout);
                quote! {
                    // The weights; packed int8 weights in 4-deep k-groups (`pack::Layout::Kr4`).
                    // (Plain comments: a doc comment on the macro invocation is an
                    // unused-doc-comments error.)
                    #[cfg(not(target_arch = "aarch64"))]
                    #generic
                    #[cfg(not(target_arch = "aarch64"))]
                    const _: () = assert!(matches!(#layout::NATIVE, #layout::Kr4));
                    // The same sections with the packed int8 weights in aarch64's 8-deep
                    // k-groups (`pack::Layout::Kr8`).
                    #[cfg(target_arch = "aarch64")]
                    #arm
                    #[cfg(target_arch = "aarch64")]
                    const _: () = assert!(matches!(#layout::NATIVE, #layout::Kr8));
                }
            }
        };
        // A model without graph inputs (all constants) still takes an `Inputs<'_>`, so that
        // `run` has one signature; its lifetime is held by a marker (an unused lifetime
        // parameter is E0392) and it is built with `Inputs::default()`.
        let inputs_struct = if in_ids.is_empty() {
            quote! {
                /// The model has no inputs: pass `Inputs::default()`.
                #[derive(Clone, Copy, Debug, Default)]
                pub struct Inputs<'a> {
                    _none: ::core::marker::PhantomData<&'a ()>,
                }
            }
        } else {
            quote! {
                /// The model's inputs, named after the ONNX graph inputs.
                #[derive(Clone, Copy, Debug)]
                pub struct Inputs<'a> {
                    #(pub #in_ids: #rt::TensorRef<'a, #in_tys>,)*
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

            #inputs_struct

            #model_items
        }
    }
}
