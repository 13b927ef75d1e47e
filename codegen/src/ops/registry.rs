//! The operator registry: every op kiln compiles, as one [`OpDef`] line in its family's file
//! (`FAMILIES` below lists the families, not the ops). Dispatch,
//! `kiln inspect`'s unsupported-op report and the README's supported-ops table are all
//! generated from it, so none of them can drift from the code.
//!
//! Adding an op: write its inference (and folding) and emission in the family's file and add
//! one line to that file's `OPS`. A new family adds its module and one line to `FAMILIES`. See
//! docs/design.md, "Operators".
use super::{Assumed, OutInfo};
use crate::error::Result;
use crate::ir::{Graph, Node};

/// Shape/dtype inference and compile-time folding of one node (see [`super::infer`]).
pub type InferFn = fn(&mut InferCx, &Node) -> Result<Vec<OutInfo>>;

/// Code emission of one node: its block of straight-line Rust in `run` (see `emit::nodes`).
pub(crate) type EmitFn = fn(&crate::emit::Ctx, &Node) -> Result<proc_macro2::TokenStream>;

/// Expansion of a composite op into standard nodes (in order, replacing it), run by inference
/// when the node's inputs are inferred; the new nodes are then inferred (and fused) like any
/// other. May add values and constants to the graph.
pub(crate) type ExpandFn = fn(&mut Graph, &Node) -> Result<Vec<Node>>;

/// What an op's inference may read and record: the graph (values, symbols, derived dims) and
/// the equalities of symbolic dims it relies on (checked at run time, `Graph::eq_checks`).
pub struct InferCx<'a> {
    pub g: &'a mut Graph,
    pub assumed: Assumed,
}

/// One operator: its ONNX identity, what the README says about it, and its inference.
pub struct OpDef {
    /// ONNX op type, e.g. `"Add"`.
    pub name: &'static str,
    /// ONNX domain (`""` is the default `ai.onnx` domain; contrib ops use `"com.microsoft"`).
    pub domain: &'static str,
    /// The README's notes for this op; consecutive ops of a family with the same notes share a
    /// table row.
    pub notes: &'static str,
    pub infer: InferFn,
    pub(crate) emit: EmitFn,
    /// Set for ops compiled as the standard ops they are defined by (see [`ExpandFn`]); their
    /// `infer`/`emit` are then never called.
    pub(crate) expand: Option<ExpandFn>,
}

/// A default-domain op: `op("Add", NOTES, infer_fn, emit_fn)`, one line of a family's `OPS`.
pub(crate) const fn op(
    name: &'static str,
    notes: &'static str,
    infer: InferFn,
    emit: EmitFn,
) -> OpDef {
    OpDef {
        name,
        domain: "",
        notes,
        infer,
        emit,
        expand: None,
    }
}

/// An onnxruntime contrib op (domain `"com.microsoft"`): listed in the README's second table.
pub(crate) const fn contrib_op(
    name: &'static str,
    notes: &'static str,
    infer: InferFn,
    emit: EmitFn,
) -> OpDef {
    OpDef {
        name,
        domain: "com.microsoft",
        notes,
        infer,
        emit,
        expand: None,
    }
}

/// An onnxruntime contrib op compiled by expanding it into standard ops ([`ExpandFn`]).
pub(crate) const fn contrib_expand(
    name: &'static str,
    notes: &'static str,
    expand: ExpandFn,
) -> OpDef {
    OpDef {
        name,
        domain: "com.microsoft",
        notes,
        infer: expanded_infer,
        emit: expanded_emit,
        expand: Some(expand),
    }
}

fn expanded_infer(_: &mut InferCx, n: &Node) -> Result<Vec<OutInfo>> {
    crate::error::bail!("internal: {} is expanded before inference", n.op)
}

fn expanded_emit(_: &crate::emit::Ctx, n: &Node) -> Result<proc_macro2::TokenStream> {
    crate::error::bail!("internal: {} is expanded before emission", n.op)
}

/// An op of kiln's own domain `"kiln"`, produced by a fusion pass (not in the README's table
/// or the supported-op lists, which are about the default domain).
pub(crate) const fn kiln_op(name: &'static str, infer: InferFn, emit: EmitFn) -> OpDef {
    OpDef {
        name,
        domain: "kiln",
        notes: "",
        infer,
        emit,
        expand: None,
    }
}

/// The families, in the README table's order. Each module's `OPS` lists its ops.
const FAMILIES: &[&[OpDef]] = &[
    super::quant::OPS,
    super::matmul::OPS,
    super::einsum::OPS,
    super::conv::OPS,
    super::elementwise::OPS,
    super::activation::OPS,
    super::trig::OPS,
    super::variadic::OPS,
    super::math::OPS,
    super::vision::OPS,
    super::sample::OPS,
    super::norm::OPS,
    super::lpnorm::OPS,
    super::attention::OPS,
    super::norm_contrib::OPS,
    super::quant_contrib::OPS,
    super::recurrent::OPS,
    super::reduce::OPS,
    super::select::OPS,
    super::loss::OPS,
    super::shape::OPS,
    super::symbolic::OPS,
    super::tensor::OPS,
    super::index::OPS,
    super::control::OPS,
    super::loops::OPS,
];

/// Every registered op, in table order.
pub fn ops() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.iter().flat_map(|f| f.iter())
}

/// The op `name` of `domain` (`""` and `"ai.onnx"` are the same domain).
pub fn lookup(domain: &str, name: &str) -> Option<&'static OpDef> {
    let domain = if domain == "ai.onnx" { "" } else { domain };
    ops().find(|d| d.domain == domain && d.name == name)
}

/// The names of the ops kiln compiles in `domain`, sorted.
pub fn supported(domain: &str) -> Vec<&'static str> {
    let domain = if domain == "ai.onnx" { "" } else { domain };
    let mut v: Vec<&str> = ops()
        .filter(|d| d.domain == domain)
        .map(|d| d.name)
        .collect();
    v.sort_unstable();
    v
}

/// The README's table of supported default-domain ops (between its `ops-table` markers).
pub fn markdown_table() -> String {
    domain_table("")
}

/// The README's table of supported `com.microsoft` ops (between its `contrib-table` markers).
pub fn contrib_markdown_table() -> String {
    domain_table("com.microsoft")
}

fn domain_table(domain: &str) -> String {
    let mut rows: Vec<(Vec<&str>, &str)> = Vec::new();
    for family in FAMILIES {
        let mut prev: Option<&str> = None;
        for d in family.iter().filter(|d| d.domain == domain) {
            match rows.last_mut() {
                Some((names, notes)) if prev == Some(d.notes) && *notes == d.notes => {
                    names.push(d.name)
                }
                _ => rows.push((vec![d.name], d.notes)),
            }
            prev = Some(d.notes);
        }
    }
    let mut s = String::from("| operator | notes |\n|---|---|\n");
    for (names, notes) in rows {
        s.push_str(&format!("| {} | {notes} |\n", names.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_domain() {
        let all: Vec<_> = ops().map(|d| (d.domain, d.name)).collect();
        for (i, a) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(a), "{a:?} is registered twice");
        }
    }

    #[test]
    fn lookup_treats_ai_onnx_as_the_default_domain() {
        assert_eq!(lookup("ai.onnx", "Add").map(|d| d.name), Some("Add"));
        assert_eq!(lookup("", "Add").map(|d| d.name), Some("Add"));
        assert!(lookup("com.microsoft", "Add").is_none());
        assert!(lookup("", "NoSuchOp").is_none());
    }

    /// The README's table is the registry's: regenerate it with
    /// `KILN_BLESS=1 cargo test -p kiln-codegen readme_table` after adding an op.
    #[test]
    fn readme_table_is_generated_from_the_registry() {
        check_table("ops-table", markdown_table());
    }

    /// The same for the `com.microsoft` table.
    #[test]
    fn readme_contrib_table_is_generated_from_the_registry() {
        check_table("contrib-table", contrib_markdown_table());
    }

    fn check_table(marker: &str, want: String) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md");
        let (begin, end) = (
            format!("<!-- {marker}:begin -->\n"),
            format!("<!-- {marker}:end -->"),
        );
        let start = readme.find(&begin).expect("begin marker") + begin.len();
        let stop = readme.find(&end).expect("end marker");
        if readme[start..stop] != want {
            if std::env::var_os("KILN_BLESS").is_some() {
                let new = format!("{}{want}{}", &readme[..start], &readme[stop..]);
                std::fs::write(path, new).expect("write README.md");
            } else {
                panic!(
                    "README.md's supported-ops table differs from the registry; rerun with \
                     KILN_BLESS=1 to regenerate it. Expected:\n{want}"
                );
            }
        }
    }
}
