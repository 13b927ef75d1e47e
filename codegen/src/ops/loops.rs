//! `Loop` and `Scan` (issue 18), unrolled at inference. See docs/design.md, "Control flow".
//!
//! kiln plans every buffer at compile time and many ops need their parameters then (Slice's
//! starts, Gather's index along a scan axis), so a loop is unrolled into the enclosing graph,
//! one body copy per iteration, each iteration's number a constant: the copies are then
//! inferred, folded and fused like any other nodes (an exporter's `Slice(x, i, i + 1)` becomes a
//! constant slice). Carried values chain from one copy to the next and may change shape between
//! iterations; scan outputs are unsqueezed and concatenated.
//!
//! - `Loop` unrolls one iteration at a time: [`expand_loop`] inlines one body copy followed by
//!   the rest of the loop (the same node, its iteration count in attribute [`ITER`], the scan
//!   outputs so far appended to its inputs), so the next condition is inferred — and must be
//!   known — before the next copy is made. The trip count and every condition must therefore
//!   fold at compile time; a loop that runs on run-time data is refused naming the node.
//! - `Scan` (opset 8's batched form and opset 9+) takes its iteration count from the scan
//!   inputs' axis, which must be a fixed dim; each iteration reads its slices with a constant
//!   `Gather` per scan input (in the direction asked).
use proc_macro2::TokenStream;

use super::control::Expanded;
use super::registry::{InferCx, OpDef, op};
use super::{OutInfo, req};
use crate::error::{Error, Result, bail};
use crate::ir::{Attr, DType, Dim, Graph, Node, Subgraph, TensorData, ValueId};

const LOOP: &str = "unrolled at compile time: the trip count and the condition after every \
                    iteration must be known when compiling (a constant, or computed from \
                    constants and fixed dims; at most 1024 iterations); carried values may \
                    change shape between iterations; scan outputs are concatenated. Tensors \
                    only (no sequences)";
const SCAN: &str = "unrolled at compile time over a fixed-length scan axis (at most 1024 \
                    iterations): `scan_input_axes`, `scan_output_axes`, both directions, opset \
                    8's batch form without `sequence_lens`. Tensors only";

pub(super) const OPS: &[OpDef] = &[
    op("Loop", LOOP, infer_unrolled, emit_unrolled),
    op("Scan", SCAN, infer_unrolled, emit_unrolled),
];

/// Internal attributes of a partly unrolled `Loop`: iterations done, and how many scan-output
/// pieces (one per scan output per iteration, iteration-major) are appended to its inputs.
const ITER: &str = "kiln_iter";
const PIECES: &str = "kiln_pieces";

/// More iterations than this are refused (each is a copy of the body in the generated code).
const MAX_ITERS: i64 = 1024;

fn is_default(n: &Node) -> bool {
    n.kiln.is_none() && (n.domain.is_empty() || n.domain == "ai.onnx")
}

pub(crate) fn is_loop(n: &Node) -> bool {
    is_default(n) && n.op == "Loop"
}

pub(crate) fn is_scan(n: &Node) -> bool {
    is_default(n) && n.op == "Scan"
}

fn body(n: &Node) -> Result<&Subgraph> {
    match n.attrs.get("body") {
        Some(Attr::Graph(sg)) => Ok(sg),
        _ => Err(n.err(Error::invalid("attribute `body` (a graph) is missing"))),
    }
}

fn refuse(n: &Node, why: String) -> Error {
    n.err(Error::unsupported(why).with_hint(
        "kiln unrolls loops at compile time: make the trip count and condition constants or \
         compute them from fixed input dims (onnx.tools.update_model_dims), or export the loop \
         unrolled",
    ))
}

/// Builds nodes and values in `g` for the unrolled copies.
struct Builder<'g> {
    g: &'g mut Graph,
    nodes: Vec<Node>,
    prefix: String,
    count: usize,
}

impl Builder<'_> {
    fn value(&mut self, dtype: DType) -> ValueId {
        self.count += 1;
        let name = format!("{}:{}", self.prefix, self.count);
        self.g.add_value(name, dtype, Vec::new())
    }

    fn konst(&mut self, data: TensorData, shape: Vec<usize>) -> ValueId {
        let v = self.value(data.dtype());
        let val = &mut self.g.values[v];
        val.shape = shape.into_iter().map(|d| Dim::constant(d as i64)).collect();
        val.konst = Some(data);
        v
    }

    fn node(&mut self, op: &str, inputs: Vec<ValueId>, attrs: Vec<(&str, Attr)>) -> ValueId {
        let dtype = self.g.values[inputs[0]].dtype;
        let y = self.value(dtype);
        self.push(op, inputs, y, attrs);
        y
    }

    fn push(&mut self, op: &str, inputs: Vec<ValueId>, y: ValueId, attrs: Vec<(&str, Attr)>) {
        self.count += 1;
        self.nodes.push(Node {
            name: format!("{}:{op}{}", self.prefix, self.count),
            op: op.into(),
            domain: String::new(),
            inputs: inputs.into_iter().map(Some).collect(),
            outputs: vec![y],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            kiln: None,
        });
    }

    fn unsqueeze(&mut self, x: ValueId, axis: i64) -> ValueId {
        if self.g.opset >= 13 {
            let axes = self.konst(TensorData::I64(vec![axis]), vec![1]);
            self.node("Unsqueeze", vec![x, axes], Vec::new())
        } else {
            self.node("Unsqueeze", vec![x], vec![("axes", Attr::Ints(vec![axis]))])
        }
    }

    /// `x[.., i, ..]` along `axis` (the axis removed).
    fn slice_at(&mut self, x: ValueId, axis: usize, i: usize) -> ValueId {
        let idx = self.konst(TensorData::I64(vec![i as i64]), Vec::new());
        let y = self.node(
            "Gather",
            vec![x, idx],
            vec![("axis", Attr::Int(axis as i64))],
        );
        // Known before inference reaches it: opset 8's per-batch slices are scanned next.
        let mut shape = self.g.values[x].shape.clone();
        shape.remove(axis);
        self.g.values[y].shape = shape;
        y
    }

    /// Pieces (each without `axis`) stacked along `axis` into `y`.
    fn stack(&mut self, pieces: &[ValueId], axis: i64, y: ValueId) {
        let us: Vec<ValueId> = pieces.iter().map(|&p| self.unsqueeze(p, axis)).collect();
        self.push("Concat", us, y, vec![("axis", Attr::Int(axis))]);
    }

    /// One copy of `sg`'s nodes: its inputs read `inputs`, its captures `n`'s inputs. Returns
    /// the values of its outputs.
    fn inline_body(&mut self, n: &Node, sg: &Subgraph, inputs: &[ValueId]) -> Result<Vec<ValueId>> {
        let sub = &sg.graph;
        let mut map = vec![usize::MAX; sub.values.len()];
        for (&i, &v) in sub.inputs.iter().zip(inputs) {
            map[i] = v;
        }
        for c in &sg.captures {
            map[c.inner] = n
                .input(c.input)
                .ok_or_else(|| n.err(Error::invalid("internal: capture without an input")))?;
        }
        for (i, v) in sub.values.iter().enumerate() {
            if map[i] == usize::MAX {
                map[i] = self.g.values.len();
                self.g.values.push(v.clone());
            }
        }
        for m in &sub.nodes {
            let mut m = m.clone();
            m.name = format!("{}:{}", self.prefix, m.name);
            for v in m.inputs.iter_mut().flatten() {
                *v = map[*v];
            }
            for v in &mut m.outputs {
                *v = map[*v];
            }
            self.nodes.push(m);
        }
        Ok(sub.outputs.iter().map(|&o| map[o]).collect())
    }
}

fn bool_of(g: &Graph, v: ValueId) -> Option<bool> {
    match g.konst(v) {
        Some(TensorData::Bool(b)) if b.len() == 1 => Some(b[0]),
        Some(k) if k.len() == 1 && !k.dtype().is_float() => k.as_i64().ok().map(|x| x[0] != 0),
        _ => None,
    }
}

/// Errors without a node are the loop's own.
fn at(n: &Node, e: Error) -> Error {
    if e.node.is_some() { e } else { n.err(e) }
}

/// One more iteration of a `Loop` (module doc), or its end.
pub(crate) fn expand_loop(g: &mut Graph, n: Node) -> Result<Expanded> {
    loop_step(g, &n)
        .map(Expanded::Inline)
        .map_err(|e| at(&n, e))
}

/// A `Scan`, fully unrolled (module doc).
pub(crate) fn expand_scan(g: &mut Graph, n: Node) -> Result<Expanded> {
    scan(g, &n).map(Expanded::Inline).map_err(|e| at(&n, e))
}

fn loop_step(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let n = n.clone();
    let sg = body(&n)?.clone();
    let nb = sg.graph.inputs.len();
    if nb < 2 || sg.graph.outputs.len() + 1 < nb {
        bail!(
            "the body has {nb} inputs and {} outputs; Loop needs (iteration, condition, \
             carried…) in and (condition, carried…, scan outputs…) out",
            sg.graph.outputs.len()
        );
    }
    let carried = nb - 2;
    let nscan = sg.graph.outputs.len() - 1 - carried;
    if n.outputs.len() != carried + nscan {
        bail!(
            "the node has {} outputs but its body gives {carried} carried values and {nscan} \
             scan outputs",
            n.outputs.len()
        );
    }
    if n.inputs.len() < 2 + carried {
        bail!(
            "the node has {} inputs for {carried} carried values",
            n.inputs.len()
        );
    }
    let iter = n.attr_i(ITER)?.unwrap_or(0);
    let npieces = n.attr_i(PIECES)?.unwrap_or(0) as usize;
    let pieces: Vec<ValueId> = n.inputs[n.inputs.len() - npieces..]
        .iter()
        .map(|v| v.ok_or_else(|| n.err(Error::invalid("internal: missing piece"))))
        .collect::<Result<_>>()?;
    let trip = match n.input(0) {
        None => None,
        Some(m) => match g.konst(m) {
            Some(k) if k.len() == 1 => Some(k.as_i64()?[0]),
            _ => {
                return Err(refuse(
                    &n,
                    format!(
                        "its trip count `{}` is only known at run time",
                        g.values[m].name
                    ),
                ));
            }
        },
    };
    let go = match n.input(1) {
        None => true,
        Some(c) => bool_of(g, c).ok_or_else(|| {
            let when = if iter == 0 {
                "its initial condition".to_string()
            } else {
                format!("its condition after iteration {iter}")
            };
            refuse(
                &n,
                format!("{when} (`{}`) is only known at run time", g.values[c].name),
            )
        })?,
    };
    let mut b = Builder {
        prefix: format!("{}:iter{iter}", n.name),
        g,
        nodes: Vec::new(),
        count: 0,
    };
    if !go || trip.is_some_and(|m| iter >= m) {
        // Done: carried values out, scan outputs stacked.
        for (k, &y) in n.outputs[..carried].iter().enumerate() {
            let v = req(&n, 2 + k).map_err(|e| n.err(e))?;
            b.push("Identity", vec![v], y, Vec::new());
        }
        if nscan > 0 && pieces.is_empty() {
            return Err(refuse(
                &n,
                "it runs zero times, so its scan outputs are empty tensors of a shape only the \
                 body knows; kiln does not infer it"
                    .into(),
            ));
        }
        for (j, &y) in n.outputs[carried..].iter().enumerate() {
            let mine: Vec<ValueId> = pieces.iter().skip(j).step_by(nscan).copied().collect();
            b.stack(&mine, 0, y);
        }
        return Ok(b.nodes);
    }
    if iter >= MAX_ITERS {
        return Err(refuse(
            &n,
            format!("it runs more than {MAX_ITERS} iterations (kiln unrolls loops)"),
        ));
    }
    let i = b.konst(TensorData::I64(vec![iter]), Vec::new());
    let cond = match n.input(1) {
        Some(c) => c,
        None => b.konst(TensorData::Bool(vec![true]), Vec::new()),
    };
    let mut ins = vec![i, cond];
    for k in 0..carried {
        ins.push(req(&n, 2 + k).map_err(|e| n.err(e))?);
    }
    let outs = b.inline_body(&n, &sg, &ins)?;
    let mut rest = n.clone();
    rest.inputs[1] = Some(outs[0]);
    for k in 0..carried {
        rest.inputs[2 + k] = Some(outs[1 + k]);
    }
    rest.inputs
        .extend(outs[1 + carried..].iter().map(|&v| Some(v)));
    rest.attrs.insert(ITER.into(), Attr::Int(iter + 1));
    rest.attrs
        .insert(PIECES.into(), Attr::Int((npieces + nscan) as i64));
    b.nodes.push(rest);
    Ok(b.nodes)
}

fn scan(g: &mut Graph, n: &Node) -> Result<Vec<Node>> {
    let n = n.clone();
    let sg = body(&n)?.clone();
    let m = n
        .attr_i("num_scan_inputs")?
        .ok_or_else(|| n.err(Error::invalid("attribute `num_scan_inputs` is missing")))?
        as usize;
    let nb = sg.graph.inputs.len();
    if m > nb {
        bail!("num_scan_inputs is {m} but the body has {nb} inputs");
    }
    let states = nb - m;
    let nscan = sg.graph.outputs.len().saturating_sub(states);
    if sg.graph.outputs.len() < states || n.outputs.len() != states + nscan {
        bail!(
            "the body gives {} outputs for {states} states; the node has {} outputs",
            sg.graph.outputs.len(),
            n.outputs.len()
        );
    }
    let batched = g.opset < 9;
    let first = usize::from(batched);
    let ins: Vec<ValueId> = (0..nb)
        .map(|k| req(&n, first + k).map_err(|e| n.err(e)))
        .collect::<Result<_>>()?;
    let mut b = Builder {
        prefix: n.name.clone(),
        g,
        nodes: Vec::new(),
        count: 0,
    };
    if !batched {
        let outs = scan_core(&mut b, &n, &sg, &ins, states)?;
        for (&o, &y) in outs.iter().zip(&n.outputs) {
            b.push("Identity", vec![o], y, Vec::new());
        }
        return Ok(b.nodes);
    }
    if n.input(0).is_some() {
        return Err(refuse(
            &n,
            "its `sequence_lens` input (opset 8) is not supported".into(),
        ));
    }
    // Opset 8: axis 0 of every input is the batch; each batch element is scanned on its own.
    let batch = fixed_dim(b.g, &n, ins[0], 0)?;
    let mut per = vec![Vec::new(); n.outputs.len()];
    for e in 0..batch {
        let mine: Vec<ValueId> = ins.iter().map(|&x| b.slice_at(x, 0, e)).collect();
        let outs = scan_core(&mut b, &n, &sg, &mine, states)?;
        for (p, o) in per.iter_mut().zip(outs) {
            p.push(o);
        }
    }
    for (p, &y) in per.iter().zip(&n.outputs) {
        b.stack(p, 0, y);
    }
    Ok(b.nodes)
}

fn fixed_dim(g: &Graph, n: &Node, x: ValueId, axis: usize) -> Result<usize> {
    let v = &g.values[x];
    let Some(d) = v.shape.get(axis) else {
        bail!("input `{}` has no axis {axis}", v.name);
    };
    match d.as_usize() {
        Some(d) => Ok(d),
        None => Err(refuse(
            n,
            format!(
                "its scan length (axis {axis} of `{}`, {}) is only known at run time",
                v.name,
                g.show(d)
            ),
        )),
    }
}

/// The opset-9 Scan over `ins` (states, then scan inputs): final states and scan outputs.
fn scan_core(
    b: &mut Builder,
    n: &Node,
    sg: &Subgraph,
    ins: &[ValueId],
    states: usize,
) -> Result<Vec<ValueId>> {
    let m = ins.len() - states;
    let attr = |name: &str, len: usize| -> Result<Vec<i64>> {
        let v = n.attr_ints(name)?.unwrap_or_else(|| vec![0; len]);
        if v.len() != len {
            bail!("attribute `{name}` has {} entries, expected {len}", v.len());
        }
        Ok(v)
    };
    let in_axes = attr("scan_input_axes", m)?;
    let in_dirs = match n.attr_ints("directions")? {
        Some(d) => d,
        None => attr("scan_input_directions", m)?,
    };
    let nscan = sg.graph.outputs.len() - states;
    let out_axes = attr("scan_output_axes", nscan)?;
    let out_dirs = attr("scan_output_directions", nscan)?;
    let mut len = None;
    let mut axes = Vec::with_capacity(m);
    for (k, &x) in ins[states..].iter().enumerate() {
        let r = b.g.values[x].shape.len() as i64;
        let a = in_axes[k];
        if a < -r || a >= r {
            bail!("scan_input_axes[{k}] = {a} is out of range for rank {r}");
        }
        let a = a.rem_euclid(r.max(1)) as usize;
        let t = fixed_dim(b.g, n, x, a)?;
        if len.is_some_and(|l| l != t) {
            bail!(
                "the scan inputs have different lengths ({} and {t})",
                len.unwrap_or(0)
            );
        }
        len = Some(t);
        axes.push(a);
    }
    let t_len = len.unwrap_or(0);
    if t_len == 0 {
        return Err(refuse(
            n,
            "its scan length is 0, so its scan outputs are empty tensors of a shape only the \
             body knows"
                .into(),
        ));
    }
    if t_len as i64 > MAX_ITERS {
        return Err(refuse(
            n,
            format!("it runs {t_len} iterations, more than {MAX_ITERS} (kiln unrolls loops)"),
        ));
    }
    let mut state: Vec<ValueId> = ins[..states].to_vec();
    let mut pieces = vec![Vec::with_capacity(t_len); nscan];
    let prefix = b.prefix.clone();
    for t in 0..t_len {
        b.prefix = format!("{prefix}:iter{t}");
        let mut body_in = state.clone();
        for (k, &x) in ins[states..].iter().enumerate() {
            let i = if in_dirs[k] == 1 { t_len - 1 - t } else { t };
            body_in.push(b.slice_at(x, axes[k], i));
        }
        let outs = b.inline_body(n, sg, &body_in)?;
        state = outs[..states].to_vec();
        for (p, &o) in pieces.iter_mut().zip(&outs[states..]) {
            p.push(o);
        }
    }
    b.prefix = prefix;
    let mut outs = state;
    for (j, mut p) in pieces.into_iter().enumerate() {
        if out_dirs[j] == 1 {
            p.reverse();
        }
        let dtype = b.g.values[p[0]].dtype;
        let y = b.value(dtype);
        // A negative axis counts from the end of the output (the piece's rank + 1); the
        // pieces' rank is only known once inferred, so Unsqueeze and Concat resolve it.
        b.stack(&p, out_axes[j], y);
        outs.push(y);
    }
    Ok(outs)
}

/// `Loop` and `Scan` are always expanded before inference reaches them.
fn infer_unrolled(_: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    bail!("internal: {} inferred without being unrolled", n.op)
}

fn emit_unrolled(_: &crate::emit::Ctx, n: &Node) -> Result<TokenStream> {
    bail!("internal: {} was not unrolled", n.op)
}
