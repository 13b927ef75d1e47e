//! Control flow: `If` (issue 18). See docs/design.md, "Control flow".
//!
//! A subgraph is decoded into its own [`Graph`] whose reads of enclosing values are captures
//! (`ir::Subgraph`), fed by extra inputs of the owning node. Inference ([`expand`], called by
//! `passes::infer` before the node's own inference) then either
//! - *inlines* the taken branch of an `If` whose condition is known at compile time (the
//!   common export pattern: a branch on a shape or a constant flag): the branch's nodes join
//!   the enclosing graph and are inferred, folded and fused with it; or
//! - *compiles* both branches of a run-time `If` as graphs of their own (every pass, nested
//!   `If`s included) against what is known of the captured values; both must give every
//!   output the same type and shape (the memory plan is fixed at compile time).
//!
//! At the end of the passes, [`lower_all`] flattens a compiled `If` into the enclosing node
//! list: `IfBegin(cond)`, the then-branch's nodes, `Else`, the else-branch's nodes, `End`, then
//! one `Phi` node that copies the taken branch's outputs into the `If`'s outputs. The planner
//! sees a straight line, which is conservative for liveness (a value live in either branch
//! overlaps everything between), and emission opens `if cond { … } else { … }` at the markers
//! (`emit::control`).
use proc_macro2::TokenStream;
use quote::quote;

use super::registry::{InferCx, OpDef, kiln_op, op};
use super::{OutInfo, req};
use crate::error::{Error, ErrorKind, Result, bail};
use crate::ir::{Attr, DType, Graph, Node, Subgraph, TensorData, ValueId};
use crate::onnx::in_subgraph;

const IF: &str = "a condition known at compile time keeps only the taken branch (inlined and \
                  optimised with the graph); a run-time condition runs the branch in a Rust \
                  `if`. Both branches must give each output the same type and shape; nested \
                  subgraphs and values of enclosing graphs are supported";

pub(super) const OPS: &[OpDef] = &[
    op("If", IF, infer_if, emit_lowered),
    kiln_op(IF_BEGIN, infer_marker, emit_marker),
    kiln_op(ELSE, infer_marker, emit_marker),
    kiln_op(END, infer_marker, emit_marker),
    kiln_op(PHI, infer_marker, emit_phi),
    kiln_op(FAIL, infer_marker, emit_fail),
];

/// The markers [`lower_all`] writes (domain `kiln`): the start of a run-time `If`'s
/// then-branch (input: the condition), the start of its else-branch, the end of the `If`.
pub(crate) const IF_BEGIN: &str = "IfBegin";
pub(crate) const ELSE: &str = "Else";
pub(crate) const END: &str = "End";
/// Copies the taken branch's outputs: inputs `[cond, then outputs…, else outputs…]`.
pub(crate) const PHI: &str = "Phi";
/// A dead branch (`Subgraph::dead`): returns its error (attribute `message`).
pub(crate) const FAIL: &str = "Fail";

/// What inference does with a control-flow node before inferring it.
pub(crate) enum Expanded {
    /// Nodes to infer in its place (an inlined branch, then one Identity per output).
    Inline(Vec<Node>),
    /// The node, with its subgraphs compiled; inferred by its `OpDef` next.
    Keep(Box<Node>),
}

fn is_if(n: &Node) -> bool {
    n.kiln.is_none() && n.op == "If" && (n.domain.is_empty() || n.domain == "ai.onnx")
}

/// See the module doc: inlines a constant-condition `If`, compiles a run-time one.
pub(crate) fn expand(g: &mut Graph, n: Node) -> Result<Expanded> {
    if super::loops::is_loop(&n) {
        return super::loops::expand_loop(g, n);
    }
    if super::loops::is_scan(&n) {
        return super::loops::expand_scan(g, n);
    }
    if !is_if(&n) {
        return Ok(Expanded::Keep(Box::new(n)));
    }
    let cond = req(&n, 0).map_err(|e| n.err(e))?;
    let branch = match g.konst(cond) {
        Some(TensorData::Bool(b)) if b.len() == 1 => Some(b[0]),
        Some(k) if k.len() == 1 && !k.dtype().is_float() => Some(k.as_i64()?[0] != 0),
        _ => None,
    };
    if let Some(taken) = branch {
        let an = if taken { "then_branch" } else { "else_branch" };
        let sg = subgraph(&n, an)?.clone();
        return Ok(Expanded::Inline(inline(g, &n, &sg)?));
    }
    let mut n = n;
    let mut invalid = None;
    for an in ["then_branch", "else_branch"] {
        let sg = subgraph(&n, an)?;
        let compiled = match compile(g, &n, sg) {
            Ok(c) => c,
            // A branch the compiled shapes make inconsistent (silero_vad's 8 kHz branch on a
            // 16 kHz chunk) fails only if taken, as in ONNX.
            Err(e) if e.kind == ErrorKind::Invalid => {
                let e = in_subgraph(e, an, &n);
                let mut dead = sg.clone();
                dead.compiled = true;
                dead.dead = Some(e.message.clone());
                invalid.get_or_insert(e);
                dead
            }
            Err(e) => return Err(in_subgraph(e, an, &n)),
        };
        n.attrs.insert(an.to_string(), Attr::Graph(compiled));
    }
    let (t, e) = (subgraph(&n, "then_branch")?, subgraph(&n, "else_branch")?);
    if let (Some(_), Some(_), Some(err)) = (&t.dead, &e.dead, invalid) {
        return Err(err);
    }
    Ok(Expanded::Keep(Box::new(n)))
}

fn subgraph<'n>(n: &'n Node, name: &str) -> Result<&'n Subgraph> {
    match n.attrs.get(name) {
        Some(Attr::Graph(sg)) => Ok(sg),
        Some(_) => Err(n.err(Error::invalid(format!(
            "attribute `{name}` must be a graph"
        )))),
        None => Err(n.err(Error::invalid(format!("attribute `{name}` is missing")))),
    }
}

/// The outer value a capture of `n`'s subgraph reads.
fn captured(n: &Node, input: usize) -> Result<ValueId> {
    n.input(input)
        .ok_or_else(|| n.err(Error::invalid("internal: capture without an input")))
}

/// The branch's nodes, renamed into `g`'s values, and one Identity per output writing the
/// `If`'s output.
fn inline(g: &mut Graph, n: &Node, sg: &Subgraph) -> Result<Vec<Node>> {
    let sub = &sg.graph;
    if sub.outputs.len() != n.outputs.len() {
        return Err(n.err(Error::invalid(format!(
            "the branch has {} outputs but the node {}",
            sub.outputs.len(),
            n.outputs.len()
        ))));
    }
    let map = value_map(g, n, sg)?;
    let mut nodes: Vec<Node> = sub.nodes.iter().map(|m| renamed(m, &map)).collect();
    for (k, (&o, &y)) in sub.outputs.iter().zip(&n.outputs).enumerate() {
        nodes.push(Node {
            name: format!("{}:output{k}", n.name),
            op: "Identity".into(),
            domain: String::new(),
            inputs: vec![Some(map[o])],
            outputs: vec![y],
            attrs: Default::default(),
            kiln: None,
        });
    }
    Ok(nodes)
}

/// Subgraph value → value of `g`: captures to the node's inputs, every other value appended.
fn value_map(g: &mut Graph, n: &Node, sg: &Subgraph) -> Result<Vec<ValueId>> {
    let mut map = vec![usize::MAX; sg.graph.values.len()];
    for c in &sg.captures {
        map[c.inner] = captured(n, c.input)?;
    }
    for (i, v) in sg.graph.values.iter().enumerate() {
        if map[i] == usize::MAX {
            map[i] = g.values.len();
            g.values.push(v.clone());
        }
    }
    Ok(map)
}

fn renamed(m: &Node, map: &[ValueId]) -> Node {
    let mut m = m.clone();
    for v in m.inputs.iter_mut().flatten() {
        *v = map[*v];
    }
    for v in &mut m.outputs {
        *v = map[*v];
    }
    m
}

/// Compiles a branch of a run-time `If` against the captured values as `g` knows them now.
fn compile(g: &mut Graph, n: &Node, sg: &Subgraph) -> Result<Subgraph> {
    let mut sub = (*sg.graph).clone();
    sub.file = g.file.clone();
    sub.syms = g.syms.clone();
    sub.derived = g.derived.clone();
    sub.checks = g.checks.clone();
    sub.eq_checks = g.eq_checks.clone();
    for c in &sg.captures {
        let outer = &g.values[captured(n, c.input)?];
        let v = &mut sub.values[c.inner];
        v.dtype = outer.dtype;
        v.shape = outer.shape.clone();
        v.konst = outer.konst.clone();
        v.sym = outer.sym.clone();
        v.int4 = outer.int4;
        v.dq = outer.dq.clone();
    }
    crate::passes::run(&mut sub)?;
    // The run-time dim checks are made once at the start of `run`, for every call: a check
    // that only one branch needs could fail a call that takes the other branch.
    if sub.checks.len() > g.checks.len()
        || sub.eq_checks.len() > g.eq_checks.len()
        || sub.derived.len() > g.derived.len()
    {
        return Err(Error::unsupported(
            "the branch needs run-time checks of symbolic dims (a window or bound that only \
             this branch relies on), which kiln does not yet make inside a run-time `If`",
        )
        .with_hint(
            "give the model's inputs fixed shapes (onnx.tools.update_model_dims) or make the \
             condition a constant",
        ));
    }
    // Symbols the branch created (conv sizes over symbolic dims) are the graph's from now on.
    g.syms = sub.syms.clone();
    Ok(Subgraph {
        graph: Box::new(sub),
        captures: sg.captures.clone(),
        compiled: true,
        dead: None,
    })
}

/// The two branches; a dead one is replaced by the other (it never writes the outputs).
fn compiled_branches(n: &Node) -> Result<(&Graph, &Graph)> {
    let t = subgraph(n, "then_branch")?;
    let e = subgraph(n, "else_branch")?;
    if !t.compiled || !e.compiled {
        bail!("internal: If inferred before its branches were compiled");
    }
    Ok(match (&t.dead, &e.dead) {
        (None, None) => (&t.graph, &e.graph),
        (Some(_), _) => (&e.graph, &e.graph),
        (_, Some(_)) => (&t.graph, &t.graph),
    })
}

/// The outputs of a run-time `If`: both branches must agree on each output's type and shape.
fn infer_if(cx: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    let cond = req(n, 0)?;
    let c = &cx.g.values[cond];
    if c.dtype != DType::Bool || c.numel().as_usize() != Some(1) {
        bail!(
            "the condition must be a bool tensor of one element, found {:?} {}",
            c.dtype,
            cx.g.show_shape(&c.shape)
        );
    }
    let (t, e) = compiled_branches(n)?;
    if t.outputs.len() != n.outputs.len() || e.outputs.len() != n.outputs.len() {
        bail!(
            "the node has {} outputs but then_branch gives {} and else_branch {}",
            n.outputs.len(),
            t.outputs.len(),
            e.outputs.len()
        );
    }
    let mut outs = Vec::with_capacity(n.outputs.len());
    for (k, (&a, &b)) in t.outputs.iter().zip(&e.outputs).enumerate() {
        let (a, b) = (&t.values[a], &e.values[b]);
        if a.dtype != b.dtype {
            bail!(
                "output {k}: then_branch gives {:?} and else_branch {:?} (ONNX requires one type)",
                a.dtype,
                b.dtype
            );
        }
        if a.shape != b.shape {
            return Err(Error::unsupported(format!(
                "output {k} has shape {} in then_branch and {} in else_branch: its shape would \
                 depend on the run-time condition, and kiln plans every buffer at compile time",
                cx.g.show_shape(&a.shape),
                cx.g.show_shape(&b.shape)
            ))
            .with_hint(
                "make the condition a compile-time constant (e.g. fix the input dims it tests \
                 with onnx.tools.update_model_dims), or export the model with one branch",
            ));
        }
        outs.push(OutInfo::new(a.dtype, a.shape.clone()));
    }
    Ok(outs)
}

/// Flattens every run-time `If` into markers, its branches' nodes and a `Phi` (module doc).
pub(crate) fn lower_all(g: &mut Graph) -> Result<()> {
    if !g.nodes.iter().any(is_if) {
        return Ok(());
    }
    let nodes = std::mem::take(&mut g.nodes);
    let mut out = Vec::with_capacity(nodes.len());
    for n in nodes {
        if !is_if(&n) {
            out.push(n);
            continue;
        }
        let cond = req(&n, 0).map_err(|e| n.err(e))?;
        let marker = |op: &str, inputs: Vec<Option<ValueId>>| Node {
            name: format!("{}:{op}", n.name),
            op: op.to_string(),
            domain: "kiln".into(),
            inputs,
            outputs: Vec::new(),
            attrs: Default::default(),
            kiln: None,
        };
        out.push(marker(IF_BEGIN, vec![Some(cond)]));
        let t = splice(g, &n, subgraph(&n, "then_branch")?, &mut out)?;
        out.push(marker(ELSE, Vec::new()));
        let e = splice(g, &n, subgraph(&n, "else_branch")?, &mut out)?;
        out.push(marker(END, Vec::new()));
        // A dead branch returned before the Phi: read the live one's outputs on both arms.
        let (t, e) = match (t, e) {
            (Some(t), Some(e)) => (t, e),
            (Some(t), None) => (t.clone(), t),
            (None, Some(e)) => (e.clone(), e),
            (None, None) => bail!("internal: both branches of `{}` are dead", n.name),
        };
        let mut phi = marker(PHI, vec![Some(cond)]);
        phi.inputs.extend(t.into_iter().chain(e).map(Some));
        phi.outputs = n.outputs.clone();
        out.push(phi);
    }
    g.nodes = out;
    Ok(())
}

/// Appends a compiled branch's nodes (renamed into `g`) to `out` and returns its outputs; a
/// dead branch is one `Fail` node returning its error.
fn splice(
    g: &mut Graph,
    n: &Node,
    sg: &Subgraph,
    out: &mut Vec<Node>,
) -> Result<Option<Vec<ValueId>>> {
    if let Some(why) = &sg.dead {
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("message".to_string(), Attr::String(why.clone()));
        out.push(Node {
            name: n.name.clone(),
            op: FAIL.into(),
            domain: "kiln".into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            attrs,
            kiln: None,
        });
        return Ok(None);
    }
    let map = value_map(g, n, sg)?;
    out.extend(sg.graph.nodes.iter().map(|m| renamed(m, &map)));
    Ok(Some(sg.graph.outputs.iter().map(|&o| map[o]).collect()))
}

/// `return Err(Error::Invalid { node, what })`: a dead branch, taken.
fn emit_fail(c: &crate::emit::Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let what = match n.attrs.get("message") {
        Some(Attr::String(s)) => {
            format!("this branch cannot run with the input shapes the model was compiled for ({s})")
        }
        _ => bail!("internal: Fail without a message"),
    };
    let node = &n.name;
    Ok(quote!(return Err(#rt::Error::Invalid { node: #node, what: #what });))
}

/// Markers and `Phi` exist only after inference.
fn infer_marker(_: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    bail!("internal: {} inferred after lowering", n.op)
}

/// `If` nodes never reach emission: [`lower_all`] replaced them.
fn emit_lowered(_: &crate::emit::Ctx, n: &Node) -> Result<TokenStream> {
    bail!("internal: {} was not lowered", n.op)
}

/// Markers are turned into blocks by `emit::control`.
fn emit_marker(_: &crate::emit::Ctx, n: &Node) -> Result<TokenStream> {
    bail!("internal: marker {} emitted as a node", n.op)
}

/// `y_k = if cond { then_k } else { else_k }`, one copy per output.
fn emit_phi(c: &crate::emit::Ctx, n: &Node) -> Result<TokenStream> {
    let k = n.outputs.len();
    if n.inputs.len() != 1 + 2 * k {
        bail!(
            "internal: Phi with {} inputs for {k} outputs",
            n.inputs.len()
        );
    }
    let cond = c.src(req(n, 0)?);
    let mut s = TokenStream::new();
    for (i, &y) in n.outputs.iter().enumerate() {
        let (t, e, y) = (c.src(req(n, 1 + i)?), c.src(req(n, 1 + k + i)?), c.dst(y));
        s.extend(quote! {
            if (#cond)[0] { (#y).copy_from_slice(#t); } else { (#y).copy_from_slice(#e); }
        });
    }
    Ok(s)
}
