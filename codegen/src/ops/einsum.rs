//! Einsum: the equation is parsed at compile time (explicit `->` or implicit output, `...`
//! broadcasting, repeated labels as diagonals, size-1 dims broadcasting) into one stride per
//! operand and label; the kernel (`kiln_runtime::ops::einsum`) is a single loop nest, output
//! labels outer, summed labels inner. Static shapes only.
use proc_macro2::TokenStream;
use quote::quote;

use super::{OpDef, OutInfo, op};
use crate::emit::Ctx;
use crate::error::{Result, bail, unsupported};
use crate::ir::{Attr, DType, Graph, Node, from_static};
use kiln_runtime::ops::einsum::{MAX_LABELS, MAX_OPERANDS};

const EINSUM: &str = "all numeric types, static shapes; any equation (explicit or implicit output, `...`, diagonals, sums, transposes, products); one loop nest, summed in a fixed order";

/// The Einsum family (see `registry`).
pub(super) const OPS: &[OpDef] = &[op("Einsum", EINSUM, |cx, n| infer(cx.g, n), emit)];

/// A parsed equation over concrete shapes: label sizes (output labels first), each operand's
/// stride per label, the output shape.
struct Plan {
    sizes: Vec<usize>,
    n_out: usize,
    strides: Vec<Vec<usize>>,
    out_shape: Vec<usize>,
}

/// One term of the equation: its labels, with `None` marking the ellipsis.
fn parse_term(t: &str) -> Result<Vec<Option<u8>>> {
    let mut v = Vec::new();
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"...") {
            if v.contains(&None) {
                bail!("Einsum term `{t}` has two ellipses");
            }
            v.push(None);
            i += 3;
        } else if b[i].is_ascii_alphabetic() {
            v.push(Some(b[i]));
            i += 1;
        } else {
            bail!("Einsum term `{t}`: unexpected character `{}`", b[i] as char);
        }
    }
    Ok(v)
}

fn plan(eq: &str, shapes: &[Vec<usize>]) -> Result<Plan> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<Vec<Option<u8>>> = lhs.split(',').map(parse_term).collect::<Result<_>>()?;
    if terms.len() != shapes.len() {
        bail!(
            "Einsum equation `{eq}` has {} operands, the node {}",
            terms.len(),
            shapes.len()
        );
    }
    // Labels: letters as their byte; ellipsis dims as 256 + position from the right.
    let mut ell = 0usize;
    let mut expanded: Vec<Vec<u32>> = Vec::new();
    for (t, s) in terms.iter().zip(shapes) {
        let letters = t.iter().filter(|l| l.is_some()).count();
        let has_ell = t.contains(&None);
        if s.len() < letters || (!has_ell && s.len() != letters) {
            bail!(
                "Einsum term `{}` does not match an operand of rank {}",
                t.iter()
                    .map(|l| l.map_or("...".to_string(), |c| (c as char).to_string()))
                    .collect::<String>(),
                s.len()
            );
        }
        let e = s.len() - letters;
        ell = ell.max(e);
        let mut labels = Vec::new();
        for l in t {
            match l {
                Some(c) => labels.push(*c as u32),
                None => labels.extend((0..e).rev().map(|p| 256 + p as u32)),
            }
        }
        expanded.push(labels);
    }
    let ell_labels: Vec<u32> = (0..ell).rev().map(|p| 256 + p as u32).collect();
    let out: Vec<u32> = match rhs {
        Some(r) => {
            let mut o = Vec::new();
            for l in parse_term(r)? {
                match l {
                    Some(c) => {
                        if o.contains(&(c as u32)) {
                            bail!("Einsum output label `{}` repeats", c as char);
                        }
                        if !expanded.iter().any(|t| t.contains(&(c as u32))) {
                            bail!("Einsum output label `{}` is not an input label", c as char);
                        }
                        o.push(c as u32);
                    }
                    None => o.extend(&ell_labels),
                }
            }
            o
        }
        None => {
            // numpy's implicit mode: the ellipsis, then labels seen once, alphabetically.
            let mut once: Vec<u32> = Vec::new();
            for t in &terms {
                for c in t.iter().flatten() {
                    let n: usize = terms.iter().flatten().filter(|x| **x == Some(*c)).count();
                    if n == 1 {
                        once.push(*c as u32);
                    }
                }
            }
            once.sort_unstable();
            ell_labels.iter().copied().chain(once).collect()
        }
    };
    let mut order = out.clone();
    for t in &expanded {
        for l in t {
            if !order.contains(l) {
                order.push(*l);
            }
        }
    }
    if order.len() > MAX_LABELS || shapes.len() > MAX_OPERANDS {
        unsupported!("Einsum with more than {MAX_LABELS} labels or {MAX_OPERANDS} operands");
    }
    let mut sizes = vec![1usize; order.len()];
    for (t, s) in expanded.iter().zip(shapes) {
        for (l, &d) in t.iter().zip(s) {
            let i = order.iter().position(|x| x == l).expect("collected above");
            if sizes[i] != 1 && d != 1 && sizes[i] != d {
                bail!("Einsum label sizes disagree ({} and {d})", sizes[i]);
            }
            if d != 1 {
                sizes[i] = d;
            }
        }
    }
    let strides = expanded
        .iter()
        .zip(shapes)
        .map(|(t, s)| {
            let mut st = vec![0usize; order.len()];
            let mut row = 1;
            for (l, &d) in t.iter().zip(s).rev() {
                let i = order.iter().position(|x| x == l).expect("collected above");
                if d != 1 || sizes[i] == 1 {
                    st[i] += row;
                }
                row *= d;
            }
            st
        })
        .collect();
    let out_shape = sizes[..out.len()].to_vec();
    Ok(Plan {
        sizes,
        n_out: out.len(),
        strides,
        out_shape,
    })
}

fn decode(g: &Graph, n: &Node) -> Result<(Plan, DType)> {
    let eq = match n.attrs.get("equation") {
        Some(Attr::String(s)) => s.clone(),
        _ => bail!("Einsum needs a string attribute `equation`"),
    };
    let ins: Vec<usize> = n.inputs.iter().flatten().copied().collect();
    if ins.is_empty() {
        bail!("Einsum needs at least one input");
    }
    let dt = g.values[ins[0]].dtype;
    let mut shapes = Vec::new();
    for &v in &ins {
        let x = &g.values[v];
        if x.dtype != dt {
            bail!(
                "Einsum inputs have different element types ({dt:?} and {:?})",
                x.dtype
            );
        }
        match x.static_shape() {
            Some(s) => shapes.push(s),
            None => unsupported!(
                "Einsum on symbolic shapes ({}) is not supported; kiln needs static shapes",
                g.show_shape(&x.shape)
            ),
        }
    }
    if dt == DType::Bool {
        unsupported!("Einsum on bool tensors is not supported");
    }
    Ok((plan(&eq, &shapes)?, dt))
}

fn infer(g: &Graph, n: &Node) -> Result<Vec<OutInfo>> {
    let (p, dt) = decode(g, n)?;
    Ok(vec![OutInfo::new(dt, from_static(&p.out_shape))])
}

fn emit(c: &Ctx, n: &Node) -> Result<TokenStream> {
    let rt = c.rt;
    let (p, dt) = decode(c.g, n)?;
    let t = crate::emit::rust_ty(dt);
    let xs: Vec<TokenStream> = n.inputs.iter().flatten().map(|&v| c.src(v)).collect();
    let strides = p.strides.iter().map(|s| quote!(&[#(#s),*]));
    let (sizes, n_out, y) = (&p.sizes, p.n_out, c.dst(n.outputs[0]));
    Ok(quote! {
        #rt::ops::einsum::einsum::<#t>(&[#(#xs),*], &[#(#strides),*], &[#(#sizes),*], #n_out,
            0 as #t, #y);
    })
}
