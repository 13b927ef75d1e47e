//! Models written by an attacker (issue 24): every name in an ONNX file is the model author's
//! choice and ends up in the generated Rust, so a name must never become code; and a model's
//! size must not make the compiler's own time explode (no pass quadratic in the node count or in
//! names that sanitize alike).
// As in the library: errors are built once per failed compilation; their size is irrelevant.
#![allow(clippy::result_large_err)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kiln_codegen::onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use kiln_codegen::{Options, compile_file};
use proc_macro2::{TokenStream, TokenTree};
use prost::Message;

/// The identifier every payload tries to smuggle into the generated code.
const MARK: &str = "pwned_kiln";

fn value_info(name: &str, dims: &[Result<i64, &str>]) -> ValueInfoProto {
    use tensor_shape_proto::dimension::Value;
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                Ok(v) => Value::DimValue(*v),
                Err(p) => Value::DimParam(p.to_string()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        ..Default::default()
    }
}

fn model(graph: GraphProto) -> ModelProto {
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(graph),
        ..Default::default()
    }
}

/// A fresh directory for this test's model files.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-hostile-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn compile(path: &Path) -> String {
    let c = compile_file(path, &Options::default()).unwrap();
    c.source(Path::new("/blob.bin")).unwrap()
}

/// Every identifier in the source (recursively through groups).
fn idents(ts: TokenStream, out: &mut Vec<String>) {
    for tt in ts {
        match tt {
            TokenTree::Ident(i) => out.push(i.to_string()),
            TokenTree::Group(g) => idents(g.stream(), out),
            _ => {}
        }
    }
}

/// The string literals of `pub const NAME: [&str; n] = [...]` in the generated source.
fn const_strs(file: &syn::File, name: &str) -> Vec<String> {
    let item = file
        .items
        .iter()
        .find_map(|it| match it {
            syn::Item::Const(c) if c.ident == name => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no const {name}"));
    let syn::Expr::Array(arr) = &*item.expr else {
        panic!("{name} is not an array")
    };
    arr.elems
        .iter()
        .map(|e| match e {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s.value(),
            _ => panic!("{name}: an element is not a string literal"),
        })
        .collect()
}

#[test]
fn names_never_become_code() {
    // Each name tries a different way out of a string literal, comment or identifier.
    let x = format!("x\"); {MARK}(); (\"");
    let x2 = "self".to_string(); // a keyword that cannot be a raw identifier
    let w = format!("W */ {MARK}() /* \\");
    let t = format!("t\n}} fn {MARK}() {{\n");
    let y = format!("y\\\"\n#[{MARK}] //");
    let batch = format!("N\"] {MARK} [\"");
    let node_name = format!("r\"#; {MARK}!(); r#\"");
    let graph = GraphProto {
        name: Some(format!("g\n{MARK}")),
        node: vec![
            node("Relu", &node_name, &[&x], &t),
            node("Add", &format!("{node_name}2"), &[&t, &w], &y),
            node("Add", "{", &[&y, &x2], "super"),
        ],
        initializer: vec![TensorProto {
            name: Some(w.clone()),
            dims: vec![3],
            data_type: Some(1),
            float_data: vec![1.0, 2.0, 3.0],
            ..Default::default()
        }],
        input: vec![
            value_info(&x, &[Err(&batch), Ok(3)]),
            value_info(&x2, &[Err(&batch), Ok(3)]),
        ],
        output: vec![
            value_info(&y, &[Err(&batch), Ok(3)]),
            value_info("super", &[Err(&batch), Ok(3)]),
        ],
        ..Default::default()
    };
    // The file name is the user's, but may come out of a downloaded archive.
    let dir = scratch("names");
    // (`d*` + `/` puts a comment end into the path.)
    std::fs::create_dir_all(dir.join("d*")).unwrap();
    let path = dir.join(format!("d*/m\nfn {MARK}() {{}}\n.onnx"));
    std::fs::write(&path, model(graph).encode_to_vec()).unwrap();
    let src = compile(&path);

    let file = syn::parse_file(&src).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let mut all = Vec::new();
    idents(src.parse().unwrap(), &mut all);
    assert!(
        !all.iter().any(|i| i == MARK),
        "a name became an identifier:\n{src}"
    );
    // The names reach the user intact, as data.
    assert_eq!(const_strs(&file, "INPUT_NAMES"), [x, x2]);
    assert_eq!(const_strs(&file, "OUTPUT_NAMES"), [y, "super".to_string()]);
    // The header comment stays one line.
    let header = src.lines().next().unwrap();
    assert!(header.starts_with("// @generated by kiln"), "{header}");
    assert!(src.lines().nth(1).is_some_and(|l| !l.contains(MARK)));
    std::fs::remove_dir_all(dir).ok();
}

/// Runs `f` and fails if it takes longer than `limit`: a guard against quadratic passes, with
/// a limit ~10× what a debug build takes on a loaded 2-core machine.
fn within(limit: Duration, what: &str, f: impl FnOnce() -> String) -> String {
    let t = Instant::now();
    let out = f();
    let took = t.elapsed();
    assert!(
        took < limit,
        "{what} took {took:?} (limit {limit:?}): a pass is superlinear"
    );
    out
}

#[test]
fn a_long_chain_compiles_in_linear_time() {
    // 20 000 Relus: was 133 s (uses recomputed per node, an O(k²) region trim); now ~5 s.
    const N: usize = 20_000;
    let names: Vec<String> = (0..=N).map(|i| format!("v{i}")).collect();
    let graph = GraphProto {
        node: (0..N)
            .map(|i| node("Relu", "", &[&names[i]], &names[i + 1]))
            .collect(),
        input: vec![value_info(&names[0], &[Ok(4)])],
        output: vec![value_info(&names[N], &[Ok(4)])],
        ..Default::default()
    };
    let dir = scratch("chain");
    let path = dir.join("chain.onnx");
    std::fs::write(&path, model(graph).encode_to_vec()).unwrap();
    let src = within(Duration::from_secs(60), "a 20 000-node chain", || {
        compile(&path)
    });
    assert!(src.contains("pub fn run"));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn names_that_sanitize_alike_compile_in_linear_time() {
    // 4000 inputs `a-0`, `a.0`, `a 0`, … that all map to the same Rust identifier stem: the
    // unique-name search was cubic (149 s); now ~3 s.
    const N: usize = 1000;
    let mut inputs = Vec::new();
    let mut nodes = Vec::new();
    let mut acc = String::new();
    for i in 0..N {
        for sep in ['-', '.', ' ', '/'] {
            let name = format!("a{sep}{i}");
            inputs.push(value_info(&name, &[Ok(2)]));
            if acc.is_empty() {
                acc = name;
            } else {
                let out = format!("s{sep}{i}");
                nodes.push(node("Add", "", &[&acc, &name], &out));
                acc = out;
            }
        }
    }
    let graph = GraphProto {
        node: nodes,
        input: inputs,
        output: vec![value_info(&acc, &[Ok(2)])],
        ..Default::default()
    };
    let dir = scratch("alike");
    let path = dir.join("alike.onnx");
    std::fs::write(&path, model(graph).encode_to_vec()).unwrap();
    let src = within(
        Duration::from_secs(60),
        "4000 names that sanitize alike",
        || compile(&path),
    );
    let file = syn::parse_file(&src).unwrap();
    assert_eq!(const_strs(&file, "INPUT_NAMES").len(), 4 * N);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn folding_cannot_amplify_a_small_model_into_gigabytes() {
    // 40 ConstantOfShape([2^25]) nodes in a 4 KB file asked the compiler for 40 × 128 MiB
    // (16 GB peak, minutes); the graph-wide fold budget (2^27 elements beyond the folded ops'
    // inputs) refuses the fifth.
    const N: usize = 40;
    let len = 1i64 << 25;
    let mut nodes = Vec::new();
    let mut outputs = Vec::new();
    for i in 0..N {
        nodes.push(node("ConstantOfShape", "", &["shape"], &format!("c{i}")));
        nodes.push(node("Add", "", &[&format!("c{i}"), "x"], &format!("y{i}")));
        outputs.push(value_info(&format!("y{i}"), &[Ok(len)]));
    }
    let graph = GraphProto {
        node: nodes,
        initializer: vec![TensorProto {
            name: Some("shape".into()),
            dims: vec![1],
            data_type: Some(7),
            int64_data: vec![len],
            ..Default::default()
        }],
        input: vec![value_info("x", &[Ok(1)])],
        output: outputs,
        ..Default::default()
    };
    let dir = scratch("fold");
    let path = dir.join("fold.onnx");
    std::fs::write(&path, model(graph).encode_to_vec()).unwrap();
    let err = within(
        Duration::from_secs(60),
        "40 huge ConstantOfShape",
        || match compile_file(&path, &Options::default()) {
            Ok(_) => panic!("compiled 40 × 2^25 folded elements"),
            Err(e) => e.to_string(),
        },
    );
    assert!(err.contains("too large to fold"), "{err}");
    assert!(err.contains("ConstantOfShape"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}
