//! ONNX reading: external data, typed fields, malformed files — built here with the prost types
//! so the expected bytes are known exactly.
// As in the library: errors are built once per failed compilation; their size is irrelevant.
#![allow(clippy::result_large_err)]
use std::path::Path;

use kiln_codegen::ir::TensorData;
use kiln_codegen::onnx::DataDirs;
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
        let r = kiln_codegen::onnx::decode_model(&bytes[..cut], &DataDirs::new(&dir));
        assert!(
            r.is_err(),
            "a model cut at {cut} of {} bytes decoded",
            bytes.len()
        );
    }
    let e = kiln_codegen::onnx::decode_model(b"hello, I am not a model", &DataDirs::new(&dir))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Decode);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- Untrusted external data locations (issue 24) -------------------------------------------
// A model's `location` strings are the model author's choice: only regular files inside the
// model's directory (or one the user allowed) may be read.

/// `dir/model/m.onnx` with `w.bin` beside it, and `dir/secret.bin` (24 bytes) outside.
fn hostile_setup(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = scratch(name);
    let _ = std::fs::remove_dir_all(&dir);
    let mdir = dir.join("model");
    std::fs::create_dir_all(&mdir).unwrap();
    write_weights(&mdir);
    std::fs::write(dir.join("secret.bin"), [0x5Au8; 40]).unwrap();
    (dir, mdir)
}

/// Compiles `m.onnx` (W at `location`, offset 0) in `mdir` with `allow`ed extra directories.
fn compile_at(mdir: &Path, location: &str, allow: &[&Path]) -> kiln_codegen::Result<Vec<f32>> {
    let path = mdir.join("m.onnx");
    std::fs::write(&path, model(location, 0).encode_to_vec()).unwrap();
    let opts = Options {
        allowed_data_dirs: allow.iter().map(|p| p.to_path_buf()).collect(),
        ..Options::default()
    };
    let c = kiln_codegen::compile_file(&path, &opts)?;
    let w = c.graph.values.iter().find(|v| v.name == "W").unwrap();
    match &w.konst {
        Some(TensorData::F32(v)) => Ok(v.clone()),
        other => panic!("W is {other:?}"),
    }
}

fn refused(r: kiln_codegen::Result<Vec<f32>>, location: &str, why: &str) -> kiln_codegen::Error {
    let e = r.expect_err(location);
    let s = e.to_string();
    assert!(s.contains("tensor `W`"), "{s}");
    assert!(s.contains(&format!("`{location}`")), "{s}");
    assert!(s.contains(why), "expected `{why}` in: {s}");
    assert!(s.contains("m.onnx"), "{s}");
    e
}

#[test]
fn external_data_may_not_leave_the_model_directory() {
    let (dir, mdir) = hostile_setup("escape");
    // `..` out of the directory, however it is spelled.
    for loc in [
        "../secret.bin",
        "./../secret.bin",
        "sub/../../secret.bin",
        "..",
    ] {
        let e = refused(
            compile_at(&mdir, loc, &[]),
            loc,
            "leaves the model's directory",
        );
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.to_string().contains("allow_data_dir"), "{e}");
    }
    // Absolute paths, even to a file inside the directory.
    let abs = mdir.join("w.bin").display().to_string();
    for loc in ["/etc/passwd", "/dev/zero", "/dev/stdin", abs.as_str()] {
        refused(compile_at(&mdir, loc, &[]), loc, "is an absolute path");
    }
    // Empty and NUL-carrying locations.
    refused(compile_at(&mdir, "", &[]), "", "is empty");
    refused(compile_at(&mdir, "w.bin\0x", &[]), "w.bin\\0x", "NUL");
    // `..` that stays inside, and `.`, are fine: the same file.
    std::fs::create_dir_all(mdir.join("sub")).unwrap();
    for loc in ["sub/../w.bin", "./w.bin"] {
        let w = compile_at(&mdir, loc, &[]).map(|v| v.len());
        // w.bin holds 16 junk bytes, then the weights; offset 0 reads junk but of the right size.
        assert_eq!(w.unwrap(), 6, "{loc}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_only_inside_the_model_directory() {
    let (dir, mdir) = hostile_setup("symlink");
    std::os::unix::fs::symlink("../secret.bin", mdir.join("escape.bin")).unwrap();
    std::os::unix::fs::symlink(dir.join("secret.bin"), mdir.join("abs_escape.bin")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", mdir.join("zero.bin")).unwrap();
    std::os::unix::fs::symlink("..", mdir.join("up")).unwrap();
    for loc in ["escape.bin", "abs_escape.bin", "zero.bin", "up/secret.bin"] {
        refused(
            compile_at(&mdir, loc, &[]),
            loc,
            "outside the model's directory",
        );
    }
    // A link that stays inside is an ordinary file.
    std::os::unix::fs::symlink("w.bin", mdir.join("alias.bin")).unwrap();
    assert_eq!(compile_at(&mdir, "alias.bin", &[]).unwrap().len(), 6);
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(unix)]
#[test]
fn devices_fifos_and_directories_are_never_read() {
    let (dir, mdir) = hostile_setup("special");
    // A FIFO would block the open forever if kiln tried to read it.
    let fifo = mdir.join("pipe.bin");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    refused(
        compile_at(&mdir, "pipe.bin", &[]),
        "pipe.bin",
        "a FIFO (named pipe)",
    );
    std::fs::create_dir_all(mdir.join("sub")).unwrap();
    refused(compile_at(&mdir, "sub", &[]), "sub", "a directory");
    refused(compile_at(&mdir, ".", &[]), ".", "a directory");
    // Even inside a directory the user allowed, a device is not a data file.
    let dev = Path::new("/dev");
    refused(
        compile_at(&mdir, "/dev/zero", &[dev]),
        "/dev/zero",
        "a device",
    );
    refused(
        compile_at(&mdir, "/dev/null", &[dev]),
        "/dev/null",
        "a device",
    );
    // /dev/stdin is a link to whatever fd 0 is (a pipe, a tty, /dev/null): refused either way.
    assert!(compile_at(&mdir, "/dev/stdin", &[dev]).is_err());
    // The model file itself: a FIFO or a device is an error, not a hang or an endless read.
    for m in [fifo.as_path(), Path::new("/dev/zero")] {
        let e = kiln_codegen::compile_file(m, &Options::default())
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::Io);
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_allowed_directory_is_the_users_opt_in() {
    let (dir, mdir) = hostile_setup("allow");
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    write_weights(&shared);
    // Refused without the opt-in, read with it (relative with `..`, or absolute).
    refused(
        compile_at(&mdir, "../shared/w.bin", &[]),
        "../shared/w.bin",
        "leaves",
    );
    let abs = shared.join("w.bin").display().to_string();
    for loc in ["../shared/w.bin", abs.as_str()] {
        assert_eq!(
            compile_at(&mdir, loc, &[&shared]).unwrap().len(),
            6,
            "{loc}"
        );
    }
    // The opt-in covers that directory only, not its parent's other files.
    refused(
        compile_at(&mdir, "../secret.bin", &[&shared]),
        "../secret.bin",
        "outside the model's directory and the allowed data directories",
    );
    refused(
        compile_at(&mdir, "../shared/../secret.bin", &[&shared]),
        "../shared/../secret.bin",
        "outside",
    );
    // A misspelt allowed directory is an error, not a silent no-op.
    let e = compile_at(&mdir, "w.bin", &[&dir.join("nope")]).unwrap_err();
    assert!(e.to_string().contains("is not a directory"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tensors_cannot_take_more_bytes_than_a_data_file_holds() {
    // 1000 tensor entries naming the same 40 bytes would make kiln allocate 1000× the file.
    let (dir, mdir) = hostile_setup("overlap");
    let mut m = model("w.bin", 16);
    let g = m.graph.as_mut().unwrap();
    let mut w2 = g.initializer[0].clone();
    w2.name = Some("W2".into());
    g.initializer.push(w2);
    let path = mdir.join("m.onnx");
    std::fs::write(&path, m.encode_to_vec()).unwrap();
    let e = kiln_codegen::compile_file(&path, &Options::default())
        .err()
        .unwrap();
    let s = e.to_string();
    assert!(
        s.contains("tensor `W2`") && s.contains("48 bytes") && s.contains("holds 40"),
        "{s}"
    );
    assert!(s.contains("overlap"), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}
