//! The work estimate a generated `run` passes to `par::enter`, which runs small calls on the
//! caller's thread (a hand-off to the thread pool costs more than a second thread saves there).
use proc_macro2::TokenStream;
use quote::quote;

use crate::ir::{Dim, Graph, KilnOp, Node};
use kiln_runtime::par::{MACS_PER_ELEM, SPLIT_MIN_WORK};

/// An f64 expression for the call's splittable work in element-equivalents (see
/// `kiln_runtime::par::MACS_PER_ELEM`): the elements every node writes plus its MACs / 64,
/// summed over the nodes that may split. A node with static dims whose work is below the split
/// threshold stays unsplit whatever the thread count, so it is not counted; symbolic nodes are.
pub(super) fn call_work(g: &Graph, syms: &[String]) -> TokenStream {
    let (mut elems, mut macs) = (Dim::default(), Dim::default());
    for n in &g.nodes {
        let e = n
            .outputs
            .iter()
            .fold(Dim::default(), |a, &v| a.add(&g.values[v].numel()));
        let m = node_macs(g, n);
        let small = match (e.as_usize(), m.as_usize()) {
            (Some(e), Some(m)) => e + m / MACS_PER_ELEM < SPLIT_MIN_WORK,
            _ => false,
        };
        if !small {
            elems = elems.add(&e);
            macs = macs.add(&m);
        }
    }
    let (e, m) = (elems.to_f64_tokens(syms), macs.to_f64_tokens(syms));
    let per = MACS_PER_ELEM as f64;
    quote!(#e + #m / #per)
}

/// Multiply-accumulates of the matrix-product ops (0 for the others).
fn node_macs(g: &Graph, n: &Node) -> Dim {
    let c = |v: usize| Dim::constant(v as i64);
    let out0 = || {
        n.outputs
            .first()
            .map_or(Dim::default(), |&v| g.values[v].numel())
    };
    match &n.kiln {
        Some(KilnOp::QGemm { m, weights, .. }) => m.mul(&c(weights.k * weights.n)),
        Some(KilnOp::SGemm { m, weights, .. }) => m.mul(&c(weights.k * weights.n)),
        Some(KilnOp::DqMatMul { m, w }) => m.mul(&c(w.k * w.n)),
        Some(KilnOp::QMatMul {
            batches, m, k, n, ..
        }) => batches.mul(m).mul(k).mul(n),
        Some(KilnOp::Attention {
            batch,
            heads,
            sq,
            skv,
            dh,
            ..
        }) => batch.mul(sq).mul(skv).mul(&c(2 * heads * dh)),
        Some(
            KilnOp::QConv { spec, .. }
            | KilnOp::Conv { spec, .. }
            | KilnOp::QLinearConv { spec, .. }
            | KilnOp::ConvInteger { spec }
            | KilnOp::ConvTranspose { spec },
        ) => out0().mul(&c(spec.k())),
        Some(_) => Dim::default(),
        None => match n.op.as_str() {
            // y = A·B: K is A's last dim.
            "MatMul" | "MatMulInteger" | "Gemm" => {
                let k = n
                    .input(0)
                    .and_then(|a| g.values[a].shape.last().cloned())
                    .unwrap_or_default();
                out0().mul(&k)
            }
            _ => Dim::default(),
        },
    }
}
