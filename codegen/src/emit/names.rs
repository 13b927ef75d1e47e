//! Turning ONNX names into Rust identifiers for `Inputs`/`Outputs` fields (documented in the
//! README): lowercase; each run of characters outside `[a-z0-9]` becomes one `_`; leading and
//! trailing `_` trimmed; empty or leading-digit names get `input_`/`output_` prepended (so an
//! empty name becomes `input_`); Rust
//! keywords get a trailing `_`; collisions get `_2`, `_3`, … in declaration order.

use std::collections::{HashMap, HashSet};

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "box", "break", "const", "continue", "crate", "do", "dyn", "else",
    "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop",
    "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return", "self",
    "static", "struct", "super", "trait", "true", "try", "type", "typeof", "union", "unsafe",
    "unsized", "use", "virtual", "where", "while", "yield", "abstract", "become",
];

pub fn ident(name: &str, prefix: &str) -> String {
    let mut s = String::with_capacity(name.len());
    let mut pending = false;
    for c in name.chars().flat_map(|c| c.to_lowercase()) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if pending && !s.is_empty() {
                s.push('_');
            }
            pending = false;
            s.push(c);
        } else {
            pending = true;
        }
    }
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s = format!("{prefix}_{s}");
    }
    if KEYWORDS.contains(&s.as_str()) {
        s.push('_');
    }
    s
}

/// Identifiers for a list of names, with collisions numbered.
pub fn idents(names: &[&str], prefix: &str) -> Vec<String> {
    // Sets, not a scan of `out`: a model with thousands of names that sanitize alike would
    // otherwise cost cubic time. `next[base]` is where the search for `base` resumes (every
    // smaller suffix is taken, and taken names stay taken), so the result is the same as
    // trying `_2`, `_3`, … from the start.
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    let mut taken: HashSet<String> = HashSet::with_capacity(names.len());
    let mut next: HashMap<String, usize> = HashMap::new();
    for n in names {
        let base = ident(n, prefix);
        let mut cand = base.clone();
        if taken.contains(&cand) {
            let k = next.entry(base.clone()).or_insert(2);
            loop {
                cand = format!("{base}_{k}");
                *k += 1;
                if !taken.contains(&cand) {
                    break;
                }
            }
        }
        taken.insert(cand.clone());
        out.push(cand);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_from_the_docs() {
        assert_eq!(ident("onnx::Shape_422", "input"), "onnx_shape_422");
        assert_eq!(ident("463", "output"), "output_463");
        assert_eq!(ident("Input Image!", "input"), "input_image");
        assert_eq!(ident("__x__", "input"), "x");
        assert_eq!(ident("", "input"), "input_");
        assert_eq!(ident("::", "output"), "output_");
        assert_eq!(ident("type", "input"), "type_");
        assert_eq!(ident("self", "input"), "self_");
        assert_eq!(
            idents(&["a.b", "a-b", "A_B"], "input"),
            ["a_b", "a_b_2", "a_b_3"]
        );
    }
}
