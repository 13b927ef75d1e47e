//! Control flow (`If`): what compiles into what, and the compile errors for bad subgraphs. The
//! numerical checks are the ONNX node tests (`test_if*` in tests/onnx_node) and the silero_vad
//! zoo model (docs/zoo.md).
#![allow(clippy::result_large_err)]
use std::path::{Path, PathBuf};

use kiln_codegen::onnx::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use kiln_codegen::{Options, compile_file};
use prost::Message;

fn value_info(name: &str, elem: i32, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
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

/// A branch: `nodes`, returning `out` (read from the enclosing graph when no node writes it).
fn branch(name: &str, nodes: Vec<NodeProto>, out: &str, dims: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(5),
        g: Some(GraphProto {
            name: Some(name.into()),
            node: nodes,
            output: vec![value_info(out, 1, dims)],
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `y = If(cond, then, else)` over a float input `x` [2, 3]; `cond` is a graph input unless
/// `konst` gives it a value.
fn model(then: AttributeProto, els: AttributeProto, konst: Option<bool>) -> ModelProto {
    let mut ifn = node("If", "the_if", &["cond"], "y");
    ifn.attribute = vec![then, els];
    let mut graph = GraphProto {
        name: Some("g".into()),
        node: vec![ifn],
        input: vec![value_info("x", 1, &[2, 3])],
        output: vec![value_info("y", 1, &[2, 3])],
        ..Default::default()
    };
    match konst {
        None => graph.input.push(value_info("cond", 9, &[])),
        Some(c) => graph.initializer.push(TensorProto {
            name: Some("cond".into()),
            data_type: Some(9),
            int32_data: vec![c as i32],
            ..Default::default()
        }),
    }
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

fn write(test: &str, m: &ModelProto) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kiln-control-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.onnx"));
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    path
}

fn source(path: &Path) -> String {
    let c = compile_file(path, &Options::default()).unwrap();
    c.source(Path::new("/blob.bin")).unwrap()
}

fn error(path: &Path) -> String {
    match compile_file(path, &Options::default()) {
        Ok(_) => panic!("{} compiled", path.display()),
        Err(e) => e.to_string(),
    }
}

fn relu_branch(name: &str) -> AttributeProto {
    branch(
        name,
        vec![node("Relu", "inner_relu", &["x"], "r")],
        "r",
        &[2, 3],
    )
}
fn sigmoid_branch(name: &str) -> AttributeProto {
    branch(
        name,
        vec![node("Sigmoid", "inner_sigmoid", &["x"], "s")],
        "s",
        &[2, 3],
    )
}

#[test]
fn a_constant_condition_keeps_only_the_taken_branch() {
    // Relu's closure and Sigmoid's runtime function, as they appear in the generated code.
    let (relu, sigmoid) = ("x > 0.0", "math::sigmoid");
    for (c, kept, dropped) in [(true, relu, sigmoid), (false, sigmoid, relu)] {
        let m = model(
            relu_branch("then_branch"),
            sigmoid_branch("else_branch"),
            Some(c),
        );
        let src = source(&write(&format!("const_{c}"), &m));
        assert!(src.contains(kept), "{c}: {kept} missing:\n{src}");
        assert!(!src.contains(dropped), "{c}: {dropped} emitted:\n{src}");
        assert!(
            !src.contains("if cond"),
            "{c}: run-time branch emitted:\n{src}"
        );
    }
}

#[test]
fn a_run_time_condition_emits_both_branches_behind_an_if() {
    let m = model(
        relu_branch("then_branch"),
        sigmoid_branch("else_branch"),
        None,
    );
    let src = source(&write("dynamic", &m));
    assert!(
        src.contains("x > 0.0") && src.contains("math::sigmoid"),
        "{src}"
    );
    assert!(src.contains("if cond"), "no run-time branch:\n{src}");
}

#[test]
fn an_unknown_value_in_a_branch_names_the_if_the_branch_and_the_reader() {
    let bad = branch(
        "else_branch",
        vec![node("Relu", "reads_nothing", &["nope"], "r2")],
        "r2",
        &[2, 3],
    );
    let m = model(relu_branch("then_branch"), bad, None);
    let e = error(&write("dangling", &m));
    for want in [
        "node `the_if` (op If",
        "`else_branch` reads `nope`",
        "`reads_nothing`",
    ] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
}

#[test]
fn an_unsupported_op_in_a_branch_names_the_if_and_the_inner_node() {
    let bad = branch(
        "then_branch",
        vec![node("NoSuchOp", "inner_bad", &["x"], "z")],
        "z",
        &[2, 3],
    );
    let m = model(bad, sigmoid_branch("else_branch"), None);
    let e = error(&write("unsupported", &m));
    for want in [
        "node `the_if` (op If",
        "in `then_branch`, node `inner_bad` (op NoSuchOp)",
    ] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
}

#[test]
fn branches_of_different_shapes_are_refused_with_the_shapes() {
    let mut t = node("Transpose", "inner_t", &["x"], "t");
    t.attribute = vec![AttributeProto {
        name: Some("perm".into()),
        r#type: Some(7),
        ints: vec![1, 0],
        ..Default::default()
    }];
    let m = model(
        branch("then_branch", vec![t], "t", &[3, 2]),
        sigmoid_branch("else_branch"),
        None,
    );
    let e = error(&write("shapes", &m));
    for want in [
        "node `the_if`",
        "[3, 2] in then_branch and [2, 3] in else_branch",
    ] {
        assert!(e.contains(want), "missing {want:?} in: {e}");
    }
}
