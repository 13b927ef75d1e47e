//! Shape/dtype inference and constant folding, one topological sweep.
use crate::error::{Error, ErrorKind, Result, bail};
use crate::ir::{DimCheck, Graph, Node};
use crate::ops;

pub fn run(g: &mut Graph) -> Result<()> {
    let mut keep = Vec::with_capacity(g.nodes.len());
    // A work list: composite ops (`OpDef::expand`) put their expansion in front of the rest.
    // Errors in an expansion name the composite node (`origin`), whose op the user wrote.
    let mut queue: std::collections::VecDeque<(Node, Option<Node>)> = std::mem::take(&mut g.nodes)
        .into_iter()
        .map(|n| (n, None))
        .collect();
    while let Some((n, origin)) = queue.pop_front() {
        if n.kiln.is_some() {
            keep.push(n);
            continue;
        }
        let n = match ops::control::expand(g, n).map_err(|e| match &origin {
            Some(o) if e.node.is_none() => o.err(e),
            _ => e,
        })? {
            ops::control::Expanded::Keep(n) => *n,
            ops::control::Expanded::Inline(nodes) => {
                // An inlined branch or loop body: inferred next, in order.
                for m in nodes.into_iter().rev() {
                    queue.push_front((m, origin.clone()));
                }
                continue;
            }
        };
        let at = |e: Error| match &origin {
            Some(o) => o.err(e),
            None => n.err(e),
        };
        if let Some(expand) = ops::lookup(&n.domain, &n.op).and_then(|d| d.expand) {
            let new = expand(g, &n).map_err(|e| at(with_input_types(g, &n, e)))?;
            let o = origin.clone().unwrap_or_else(|| n.clone());
            for m in new.into_iter().rev() {
                queue.push_front((m, Some(o.clone())));
            }
            continue;
        }
        let (outs, assumed) = ops::infer(g, &n).map_err(|e| at(with_input_types(g, &n, e)))?;
        for (a, b) in assumed.0 {
            let known = g
                .eq_checks
                .iter()
                .any(|c| (c.a == a && c.b == b) || (c.a == b && c.b == a));
            if !known {
                g.eq_checks.push(crate::ir::EqCheck {
                    a,
                    b,
                    node: n.name.clone(),
                });
            }
        }
        if outs.len() < n.outputs.len() {
            return Err(at(crate::error::Error::invalid(format!(
                "{} produces {} outputs but the node declares {}",
                n.op,
                outs.len(),
                n.outputs.len()
            ))));
        }
        for (&o, info) in n.outputs.iter().zip(&outs) {
            let what = format!("output `{}`", g.values[o].name);
            crate::ir::check_shape(&info.shape, &what).map_err(at)?;
        }
        let mut folded = true;
        for (&o, info) in n.outputs.iter().zip(outs) {
            for (dim, max) in info.checks {
                // One check per (dim, bound): the first node that needs it names it.
                if !g.checks.iter().any(|c| c.dim == dim && c.max <= max) {
                    g.checks.push(DimCheck {
                        dim,
                        max,
                        node: n.name.clone(),
                    });
                }
            }
            let v = &mut g.values[o];
            v.dtype = info.dtype;
            if let Some(k) = &info.konst
                && crate::ir::static_shape(&info.shape).map(|s| s.iter().product::<usize>())
                    != Some(k.len())
            {
                bail!("internal: folded value `{}` has the wrong length", v.name);
            }
            v.shape = info.shape;
            folded &= info.konst.is_some() || info.sym.is_some();
            v.konst = info.konst;
            v.sym = info.sym;
            v.dq = info.dq;
        }
        if !folded {
            keep.push(n);
        } else if let Some(&o) = n.outputs.first()
            && g.values[o].dq.is_none()
            && let Some(d) = ops::propagate_dq(g, &n)
        {
            g.values[o].dq = Some(Box::new(d));
        }
    }
    g.nodes = keep;
    Ok(())
}

/// Shape and type errors are only actionable with the types the node actually received.
fn with_input_types(g: &Graph, n: &Node, e: Error) -> Error {
    if e.kind != ErrorKind::Invalid || e.hint.is_some() {
        return e;
    }
    let inputs: Vec<String> = n
        .inputs
        .iter()
        .flatten()
        .map(|&v| {
            let v = &g.values[v];
            format!("`{}`: {:?} {}", v.name, v.dtype, g.show_shape(&v.shape))
        })
        .collect();
    e.with_hint(format!(
        "the node's inputs are {}. If you fixed a symbolic input dimension, check its value; \
         otherwise the model is inconsistent (onnx.shape_inference.infer_shapes(model, \
         strict_mode=True) should report it too)",
        inputs.join(", ")
    ))
}
