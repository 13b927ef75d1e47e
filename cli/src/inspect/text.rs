//! The report as JSON and as text.
use super::*;
use serde_json::{Value as Json, json};

// ---- JSON ---------------------------------------------------------------------------------

pub fn to_json(r: &Report) -> Json {
    let io = |v: &Vec<Io>| -> Json {
        v.iter()
            .map(|i| json!({"name": i.name, "dtype": i.dtype, "dims": i.dims}))
            .collect()
    };
    let layers: Vec<Json> = r
        .layers
        .iter()
        .map(|l| {
            let (avx2, cols) = match &l.avx2 {
                Avx2::Safe => (json!("safe"), Json::Null),
                Avx2::CouldSaturate { columns, of } => (
                    json!("could_saturate"),
                    json!({"columns": columns, "of": of}),
                ),
                Avx2::NotApplicable(why) => (json!("not_applicable"), json!(why)),
            };
            json!({
                "node": l.node, "op": l.op, "form": l.form,
                "activation": l.activation, "weight": l.weight, "weight_shape": l.weight_shape,
                "granularity": l.granularity, "symmetric": l.symmetric,
                "zero_points": l.zero_points,
                "weight_range": l.weight_range.map(|(a, b)| vec![a, b]),
                "reduced_range_7bit": l.reduced_range,
                "avx2_vpmaddubsw": avx2, "avx2_detail": cols,
            })
        })
        .collect();
    let kiln = match &r.kiln {
        KilnPlan::Error(e) => json!({"compiles": false, "error": e}),
        KilnPlan::Compiled(c) => json!({
            "compiles": true,
            "isa": c.isa.name(),
            "source_nodes": c.source_nodes,
            "compiled_nodes": c.compiled_nodes,
            "fusions": c.fusions.iter().map(|(f, n)| json!({"fusion": f, "count": n})).collect::<Vec<_>>(),
            "layers": c.layers.iter().map(|l| json!({
                "node": l.node, "kind": l.kind, "m": l.m, "k": l.k, "n": l.n,
                "epilogue": l.epilogue, "avx2_safe": l.avx2_safe, "kernel": l.kernel,
            })).collect::<Vec<_>>(),
            "other_ops": c.other_ops,
            "workspace_bytes": c.workspace_bytes,
            "naive_workspace_bytes": c.naive_workspace_bytes,
            "symbolic_buffers": c.symbolic_buffers,
            "workspace_formula": c.workspace_formula.as_ref().map(|f| &f.0),
            "naive_workspace_formula": c.workspace_formula.as_ref().map(|f| &f.1),
            "weight_blob_bytes": c.weight_blob_bytes,
        }),
    };
    json!({
        "file": r.file,
        "file_bytes": r.file_bytes,
        "ir_version": r.ir_version,
        "producer": r.producer,
        "opsets": r.opsets.iter().map(|(d, v)| json!({"domain": d, "version": v})).collect::<Vec<_>>(),
        "inputs": io(&r.inputs),
        "outputs": io(&r.outputs),
        "nodes": r.nodes,
        "op_counts": r.op_counts,
        "parameters": r.parameters,
        "weights_by_dtype": r.weights_by_dtype.iter().map(|(d, (t, e, b))| (d.clone(), json!({"tensors": t, "elements": e, "bytes": b}))).collect::<serde_json::Map<_, _>>(),
        "quantization_forms": r.forms,
        "quantized_layers": layers,
        "unsupported_ops": r.unsupported.iter().map(|u| json!({"domain": u.domain, "op": u.op, "nodes": u.nodes, "advice": u.advice})).collect::<Vec<_>>(),
        "kiln": kiln,
    })
}

// ---- text ---------------------------------------------------------------------------------

pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn head(&self, s: &str) -> String {
        self.paint("1", s)
    }
    fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    fn bad(&self, s: &str) -> String {
        self.paint("31", s)
    }
    fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
}

/// A cell: text plus a colour applied after padding.
type Cell = (String, Option<&'static str>);

pub(super) fn table(out: &mut String, st: &Style, header: &[&str], rows: &[Vec<Cell>]) {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.0.chars().count());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let s = cells.join("  ");
        format!("  {}\n", s.trim_end())
    };
    out.push_str(&line(
        header
            .iter()
            .enumerate()
            .map(|(i, h)| st.dim(&format!("{h:<w$}", w = w[i])))
            .collect(),
    ));
    for r in rows {
        out.push_str(&line(
            r.iter()
                .enumerate()
                .map(|(i, (t, code))| {
                    let pad = format!("{t:<w$}", w = w[i]);
                    match code {
                        Some(c) => st.paint(c, &pad),
                        None => pad,
                    }
                })
                .collect(),
        ));
    }
}

pub fn bytes(n: u64) -> String {
    if n >= 10 << 20 {
        format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 10 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

pub(super) fn c(s: impl Into<String>) -> Cell {
    (s.into(), None)
}

pub fn to_text(r: &Report, st: &Style) -> String {
    let mut o = String::new();
    summary_text(&mut o, r, st);
    quantization_text(&mut o, r, st);
    unsupported_text(&mut o, r, st);
    plan_text(&mut o, r, st);
    o
}

/// The model: file, producer, opsets, op counts, inputs and outputs, parameters.
fn summary_text(o: &mut String, r: &Report, st: &Style) {
    o.push_str(&format!("{} {}\n", st.head("model"), r.file));
    o.push_str(&format!(
        "  {} bytes · IR {} · producer {} · opsets {}\n",
        r.file_bytes,
        r.ir_version,
        if r.producer.is_empty() {
            "?"
        } else {
            &r.producer
        },
        r.opsets
            .iter()
            .map(|(d, v)| format!("{d} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    o.push_str(&format!(
        "  {} nodes: {}\n",
        r.nodes,
        r.op_counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let show_io = |o: &mut String, what: &str, v: &[Io]| {
        for i in v {
            let dims = match &i.dims {
                Some(d) => format!("[{}]", d.join(", ")),
                None => "(unknown rank)".into(),
            };
            o.push_str(&format!("  {what:<6} {} {} {dims}\n", i.name, i.dtype));
        }
    };
    show_io(o, "input", &r.inputs);
    show_io(o, "output", &r.outputs);
    o.push_str(&format!(
        "  {} parameters: {}\n",
        r.parameters,
        r.weights_by_dtype
            .iter()
            .map(|(d, (t, _, b))| format!("{d} {} in {t} tensors", bytes(*b)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
}

/// How it was quantized: the forms and one row per quantized layer.
fn quantization_text(o: &mut String, r: &Report, st: &Style) {
    o.push_str(&format!("\n{}\n", st.head("quantization")));
    for f in &r.forms {
        o.push_str(&format!("  {f}\n"));
    }
    if !r.layers.is_empty() {
        o.push('\n');
        let rows: Vec<Vec<Cell>> = r
            .layers
            .iter()
            .map(|l| {
                let (avx2, code): (String, Option<&'static str>) = match &l.avx2 {
                    Avx2::Safe => ("safe".into(), Some("32")),
                    Avx2::CouldSaturate { columns, of } => {
                        (format!("could saturate ({columns}/{of} cols)"), Some("33"))
                    }
                    Avx2::NotApplicable(_) => ("n/a".into(), None),
                };
                let yn = |b: Option<bool>| match b {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "?",
                };
                vec![
                    c(short_name(&l.node)),
                    c(&l.op),
                    c(short_act(&l.activation)),
                    c(format!(
                        "{} {}",
                        l.weight,
                        l.weight_shape
                            .iter()
                            .map(|d| d.to_string())
                            .collect::<Vec<_>>()
                            .join("×")
                    )),
                    c(&l.granularity),
                    c(format!("{} (zp {})", yn(l.symmetric), l.zero_points)),
                    c(match l.weight_range {
                        Some((a, b)) => format!("{} [{a}, {b}]", yn(l.reduced_range)),
                        None => "?".into(),
                    }),
                    (avx2, code),
                ]
            })
            .collect();
        table(
            o,
            st,
            &[
                "layer",
                "op",
                "act",
                "weight",
                "granularity",
                "symmetric",
                "7-bit [range]",
                "AVX2 VPMADDUBSW",
            ],
            &rows,
        );
        let forms: Vec<&str> = r.layers.iter().map(|l| l.form.as_str()).collect();
        let mut uniq = forms.clone();
        uniq.dedup();
        if uniq.len() > 1 {
            for l in &r.layers {
                o.push_str(&format!("  {}: {}\n", l.node, l.form));
            }
        }
        if r.layers
            .iter()
            .any(|l| matches!(l.avx2, Avx2::CouldSaturate { .. }))
        {
            o.push_str(&st.dim(
                "  could saturate: a fast AVX2 kernel (VPMADDUBSW) would give wrong results for some \
                 inputs;\n  kiln proves this per layer and uses its exact AVX2 path there, so no \
                 reduce_range is needed\n",
            ));
        }
    }
}

/// Ops kiln does not compile, with the nodes and what to do.
fn unsupported_text(o: &mut String, r: &Report, st: &Style) {
    o.push_str(&format!("\n{}\n", st.head("unsupported ops")));
    if r.unsupported.is_empty() {
        o.push_str(&format!(
            "  {}\n",
            st.good("none: every op is one kiln compiles")
        ));
    }
    for u in &r.unsupported {
        let mut names = u
            .nodes
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if u.nodes.len() > 4 {
            names.push_str(&format!(", … ({} nodes)", u.nodes.len()));
        }
        o.push_str(&format!(
            "  {} ({}) — {}\n    {}\n",
            st.bad(&u.op),
            u.domain,
            names,
            u.advice
        ));
    }
}

/// What kiln's compiler made of it.
fn plan_text(o: &mut String, r: &Report, st: &Style) {
    o.push_str(&format!("\n{}\n", st.head("what kiln will do")));
    match &r.kiln {
        KilnPlan::Error(e) => {
            o.push_str(&format!("  {} {e}\n", st.bad("does not compile:")));
        }
        KilnPlan::Compiled(k) => {
            o.push_str(&format!(
                "  {} ONNX nodes → {} kernel calls; kernels for {} (this CPU, or KILN_ISA / --isa)\n",
                k.source_nodes,
                k.compiled_nodes,
                k.isa.name()
            ));
            for (f, n) in &k.fusions {
                o.push_str(&format!("  {} {f}\n", st.good(&format!("{n:>3}×"))));
            }
            if !k.layers.is_empty() {
                o.push('\n');
                let rows: Vec<Vec<Cell>> = k
                    .layers
                    .iter()
                    .map(|l| {
                        vec![
                            c(short_name(&l.node)),
                            c(&l.kind),
                            c(format!("{}×{}×{}", l.m, l.k, l.n)),
                            c(&l.epilogue),
                            (
                                l.kernel.clone(),
                                match l.avx2_safe {
                                    Some(false) if k.isa.name() == "avx2" => Some("33"),
                                    _ => None,
                                },
                            ),
                        ]
                    })
                    .collect();
                table(
                    o,
                    st,
                    &["layer", "kind", "M×K×N", "epilogue", "kernel"],
                    &rows,
                );
            }
            if !k.other_ops.is_empty() {
                o.push_str(&format!(
                    "  other ops: {}\n",
                    k.other_ops
                        .iter()
                        .map(|(a, b)| format!("{a} {b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            o.push_str(&workspace_line(k));
        }
    }
}

/// The workspace line: bytes for static shapes; with symbolic dims the formula in bytes
/// (the generated `workspace_bytes(dims…)` computes it), or where to find it when it is long.
pub(super) fn workspace_line(k: &Compiled) -> String {
    let blob = bytes(k.weight_blob_bytes as u64);
    match &k.workspace_formula {
        None => format!(
            "  workspace {} after buffer reuse (naive {}); weights blob {blob}\n",
            bytes(k.workspace_bytes as u64),
            bytes(k.naive_workspace_bytes as u64),
        ),
        Some((w, naive)) if w.len() + naive.len() <= 160 => format!(
            "  workspace {w} bytes after buffer reuse (naive {naive}); weights blob {blob}\n"
        ),
        Some(_) => format!(
            "  workspace: a function of the dims, too long to show (`workspace_bytes(…)` in \
             the generated code computes it; `--json` has the formula): {} of fixed-size \
             buffers plus {} sized by the dims; weights blob {blob}\n",
            bytes(k.workspace_bytes as u64),
            k.symbolic_buffers,
        ),
    }
}

/// Long graph paths (`/model/encoder/layer.2/…/MatMul`) keep their informative tail.
pub(super) fn short_name(s: &str) -> String {
    let n = s.chars().count();
    if n <= 48 {
        s.to_string()
    } else {
        format!("…{}", s.chars().skip(n - 47).collect::<String>())
    }
}

pub(super) fn short_act(a: &str) -> String {
    a.split(' ').next().unwrap_or(a).to_string()
}
