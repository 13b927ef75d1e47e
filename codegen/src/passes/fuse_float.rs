//! Float MatMul/Gemm with constant weights → `SGemm` with weights packed at compile time, the
//! bias Add (or Gemm's C) and a following Relu folded into its epilogue.
use super::Uses;
use crate::error::Result;
use crate::ir::{Graph, KilnOp, TensorData};
use kiln_runtime::ops::matmul::PackedF32Owned;

pub fn run(g: &mut Graph) -> Result<()> {
    let uses = Uses::of(g);
    let mut remove = std::collections::HashSet::new();
    let mut replace = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.kiln.is_some() || !(n.op == "MatMul" || n.op == "Gemm") {
            continue;
        }
        let (Some(a), Some(b)) = (n.input(0), n.input(1)) else {
            continue;
        };
        let (av, bv) = (&g.values[a], &g.values[b]);
        let Some(TensorData::F32(w)) = bv.konst.as_ref() else {
            continue;
        };
        if bv.shape.len() != 2 || av.konst.is_some() || av.shape.len() < 2 {
            continue;
        }
        let (wdata, tb, k, ncols, m);
        let mut bias: Option<Vec<f32>> = None;
        if n.op == "Gemm" {
            if n.attr_i("transA").ok().flatten().unwrap_or(0) != 0 {
                continue;
            }
            tb = n.attr_i("transB").ok().flatten().unwrap_or(0) != 0;
            let alpha = n.attr_f("alpha").ok().flatten().unwrap_or(1.0);
            let beta = n.attr_f("beta").ok().flatten().unwrap_or(1.0);
            (k, ncols) = if tb {
                (
                    bv.shape[1].as_usize().unwrap(),
                    bv.shape[0].as_usize().unwrap(),
                )
            } else {
                (
                    bv.shape[0].as_usize().unwrap(),
                    bv.shape[1].as_usize().unwrap(),
                )
            };
            m = av.shape[0].clone();
            // alpha is folded into the packed weights: alpha·(A·B) = A·(alpha·B) up to rounding.
            wdata = if alpha == 1.0 {
                w.clone()
            } else {
                w.iter().map(|&x| x * alpha).collect()
            };
            if let Some(c) = n.input(2) {
                match column(g, c, ncols) {
                    Some(cv) => bias = Some(cv.iter().map(|&x| x * beta).collect()),
                    None => continue,
                }
            }
        } else {
            (k, ncols) = (
                bv.shape[0].as_usize().unwrap(),
                bv.shape[1].as_usize().unwrap(),
            );
            if av.shape.last() != Some(&crate::ir::Dim::from(k)) {
                continue;
            }
            m = crate::ir::numel(&av.shape[..av.shape.len() - 1]);
            wdata = w.clone();
            tb = false;
        }
        let mut out = n.outputs[0];
        let mut absorbed = Vec::new();
        if bias.is_none()
            && let Some(add) = uses.sole_consumer(out)
        {
            let an = &g.nodes[add];
            if an.op == "Add" && an.kiln.is_none() {
                let o = if an.input(0) == Some(out) {
                    an.input(1)
                } else {
                    an.input(0)
                };
                if let Some(bb) = o.and_then(|o| column(g, o, ncols))
                    && g.values[an.outputs[0]].shape == g.values[out].shape
                {
                    bias = Some(bb);
                    absorbed.push(add);
                    out = an.outputs[0];
                }
            }
        }
        let mut relu = false;
        if let Some(r) = uses.sole_consumer(out)
            && g.nodes[r].op == "Relu"
            && g.nodes[r].kiln.is_none()
        {
            relu = true;
            absorbed.push(r);
            out = g.nodes[r].outputs[0];
        }
        if k == 0 || ncols == 0 {
            continue; // degenerate; the generic kernels handle it
        }
        let weights = PackedF32Owned::pack(&wdata, k, ncols, tb, bias.as_deref());
        let mut node = n.clone();
        node.op = "SGemm".into();
        node.domain = "kiln".into();
        node.inputs = vec![Some(a)];
        node.outputs = vec![out];
        node.kiln = Some(KilnOp::SGemm {
            m,
            weights: Box::new(weights),
            relu,
        });
        let at = absorbed.last().copied().unwrap_or(i);
        remove.insert(i);
        remove.extend(absorbed);
        replace.push((at, node));
    }
    let old = std::mem::take(&mut g.nodes);
    for (i, n) in old.into_iter().enumerate() {
        if let Some(pos) = replace.iter().position(|(at, _)| *at == i) {
            g.nodes.push(replace.swap_remove(pos).1);
        } else if !remove.contains(&i) {
            g.nodes.push(n);
        }
    }
    Ok(())
}

/// A constant f32 broadcasting only along the last axis, expanded to `n` values.
fn column(g: &Graph, v: usize, n: usize) -> Option<Vec<f32>> {
    let val = &g.values[v];
    let TensorData::F32(d) = val.konst.as_ref()? else {
        return None;
    };
    if val.shape.iter().rev().skip(1).any(|s| *s != 1) {
        return None;
    }
    match d.len() {
        1 => Some(vec![d[0]; n]),
        l if l == n => Some(d.clone()),
        _ => None,
    }
}
