//! `workspace_bytes(dims…)`: the intermediate memory of a model with symbolic dims, as a
//! function of them (`WORKSPACE_BYTES` only counts buffers of static size).
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::ir::Graph;
use crate::plan::Plan;

/// The generated function; `syms` are the Rust names of the dims (as in `run`).
pub(super) fn workspace_fn(g: &Graph, plan: &Plan, syms: &[String]) -> TokenStream {
    let bound: Vec<usize> = (0..g.syms.len())
        .filter(|&s| !g.is_derived(s as crate::ir::SymId))
        .collect();
    let params = bound.iter().map(|&s| format_ident!("{}", syms[s]));
    let order = bound
        .iter()
        .map(|&s| format!("`{}`", g.syms[s]))
        .collect::<Vec<_>>()
        .join(", ");
    // Derived dims (conv/pool sizes) as `run` computes them; a negative numerator (an input
    // smaller than a window, an error in `run`) counts as 0 here.
    let derived = g.derived.iter().map(|d| {
        let var = format_ident!("{}", syms[d.sym as usize]);
        let (num, den) = (d.num.to_i64_tokens(syms), d.den);
        quote!(let #var: usize = { let num: i64 = #num; if num < 0 { 0 } else { (num / #den) as usize } };)
    });
    let w = plan.workspace();
    let fixed = w.fixed.to_tokens(syms);
    let maxima = w.maxima.iter().map(|m| {
        let each = m.iter().map(|d| d.to_tokens(syms));
        quote!(0usize #(.max(#each))*)
    });
    let formula = w.show(g);
    let formula = if formula.len() <= 300 {
        format!(": {formula}")
    } else {
        String::from(" (`kiln inspect --json` prints the formula)")
    };
    let doc = format!(
        " Bytes of the intermediate buffers `run` holds for these dims ({order}, in this \
         order), after liveness-based buffer reuse{formula}."
    );
    quote! {
        #[doc = #doc]
        #[allow(unused_variables, clippy::all)]
        pub fn workspace_bytes(#(#params: usize),*) -> usize {
            #(#derived)*
            #fixed #(+ #maxima)*
        }
    }
}
