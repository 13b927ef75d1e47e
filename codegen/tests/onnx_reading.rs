//! ONNX reading: external data, typed fields, malformed files — built here with the prost types
//! so the expected bytes are known exactly.
use std::path::Path;

use kiln_codegen::ir::TensorData;
use kiln_codegen::onnx::proto::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, tensor_shape_proto, type_proto,
};
use kiln_codegen::{ErrorKind, Options};
use prost::Message;

fn io(name: &str, dims: &[i64]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(1),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| tensor_shape_proto::Dimension {
                            value: Some(tensor_shape_proto::dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// y = (x + W) + B: W external (offset 16 in w.bin), B in typed `float_data`.
fn model(location: &str, offset: usize) -> ModelProto {
    let kv = |k: &str, v: String| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v),
    };
    let w = TensorProto {
        name: Some("W".into()),
        dims: vec![2, 3],
        data_type: Some(1),
        data_location: Some(1),
        external_data: vec![
            kv("location", location.into()),
            kv("offset", offset.to_string()),
            kv("length", "24".into()),
        ],
        ..Default::default()
    };
    let b = TensorProto {
        name: Some("B".into()),
        dims: vec![3],
        data_type: Some(1),
        float_data: vec![10.0, 20.0, 30.0],
        ..Default::default()
    };
    let node = |op: &str, i: [&str; 2], o: &str| NodeProto {
        op_type: Some(op.into()),
        input: i.iter().map(|s| s.to_string()).collect(),
        output: vec![o.into()],
        name: Some(o.into()),
        ..Default::default()
    };
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        graph: Some(GraphProto {
            node: vec![node("Add", ["x", "W"], "t"), node("Add", ["t", "B"], "y")],
            initializer: vec![w, b],
            input: vec![io("x", &[2, 3])],
            output: vec![io("y", &[2, 3])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-onnx-reading-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_weights(dir: &Path) {
    let mut bytes = vec![0xAAu8; 16]; // junk before the offset
    for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(dir.join("w.bin"), bytes).unwrap();
}

#[test]
fn external_data_is_read_relative_to_the_model() {
    let dir = scratch("ok");
    write_weights(&dir);
    std::fs::write(dir.join("m.onnx"), model("w.bin", 16).encode_to_vec()).unwrap();
    let c = kiln_codegen::compile_file(&dir.join("m.onnx"), &Options::default()).unwrap();
    let w = c.graph.values.iter().find(|v| v.name == "W").unwrap();
    assert_eq!(
        w.konst,
        Some(TensorData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    );
    let b = c.graph.values.iter().find(|v| v.name == "B").unwrap();
    assert_eq!(b.konst, Some(TensorData::F32(vec![10.0, 20.0, 30.0])));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn external_data_errors_name_the_tensor_and_file() {
    let dir = scratch("bad");
    write_weights(&dir);
    let path = dir.join("m.onnx");
    std::fs::write(&path, model("missing.bin", 0).encode_to_vec()).unwrap();
    let e = kiln_codegen::compile_file(&path, &Options::default())
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.to_string().contains("tensor `W`") && e.to_string().contains("missing.bin"),
        "{e}"
    );
    assert!(e.to_string().contains("m.onnx"), "{e}");

    std::fs::write(&path, model("w.bin", 20).encode_to_vec()).unwrap(); // runs past the end
    let e = kiln_codegen::compile_file(&path, &Options::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("past the end"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn truncated_and_garbage_files_are_errors() {
    let dir = scratch("trunc");
    write_weights(&dir);
    let bytes = model("w.bin", 16).encode_to_vec();
    for cut in [1, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let r = kiln_codegen::onnx::decode_model(&bytes[..cut], &dir);
        assert!(
            r.is_err(),
            "a model cut at {cut} of {} bytes decoded",
            bytes.len()
        );
    }
    let e = kiln_codegen::onnx::decode_model(b"hello, I am not a model", &dir)
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Decode);
    let _ = std::fs::remove_dir_all(&dir);
}
