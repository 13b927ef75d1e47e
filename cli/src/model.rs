//! Reading ONNX files at the protobuf level (the CLI looks at models kiln may not compile, so it
//! works on `ModelProto` directly rather than on the compiler's IR), and writing files safely.
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use kiln_codegen::ir::TensorData;
use kiln_codegen::onnx::DataDirs;
use kiln_codegen::onnx::proto::{self, ModelProto, NodeProto, TensorProto};
use prost::Message;

/// A CLI failure: one line for the user, and an exit code.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub code: i32,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<kiln_codegen::Error> for CliError {
    fn from(e: kiln_codegen::Error) -> Self {
        CliError::new(one_line_codegen_error(&e))
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// A kiln compile error on one line (message, then the hint after " — help: ").
pub fn one_line_codegen_error(e: &kiln_codegen::Error) -> String {
    let s = e.to_string();
    let s = s.strip_prefix("kiln: ").unwrap_or(&s);
    s.replace("\n  help: ", " — help: ")
}

/// A decoded model file.
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes_len: usize,
    pub proto: ModelProto,
    /// Where external data may be read from (the model's directory and `--allow-data-dir`s).
    pub dirs: DataDirs,
}

impl ModelFile {
    /// Reads and decodes `path`, and checks its external data references (the same rule as
    /// the compiler's: see `kiln_codegen::onnx::DataDirs`).
    pub fn read(path: &Path, allowed_data_dirs: &[PathBuf]) -> CliResult<ModelFile> {
        let dirs = allowed_data_dirs
            .iter()
            .fold(DataDirs::for_model(path), |d, a| d.allow(a));
        dirs.check_allowed()?;
        let bytes = kiln_codegen::onnx::read_regular_file(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?;
        let proto = match ModelProto::decode(bytes.as_slice()) {
            Ok(p) if p.graph.is_some() => p,
            _ => {
                // The compiler's decoder knows how to explain bad bytes (text, LFS pointer,
                // truncation); reuse its message.
                let msg = match kiln_codegen::onnx::decode_model(&bytes, &dirs) {
                    Err(e) => one_line_codegen_error(&e.with_file(path)),
                    Ok(_) => format!("{}: not an ONNX model", path.display()),
                };
                return Err(CliError::new(msg));
            }
        };
        kiln_codegen::onnx::check_external_data(&proto, &dirs)
            .map_err(|e| CliError::from(e.with_file(path)))?;
        Ok(ModelFile {
            path: path.to_path_buf(),
            bytes_len: bytes.len(),
            proto,
            dirs,
        })
    }

    /// Compiler options that read external data from the same directories.
    pub fn codegen_options(&self) -> kiln_codegen::Options {
        kiln_codegen::Options {
            allowed_data_dirs: self.dirs.allowed().to_vec(),
            ..Default::default()
        }
    }

    pub fn graph(&self) -> &proto::GraphProto {
        self.proto.graph.as_ref().expect("checked in read")
    }

    pub fn data_dirs(&self) -> &DataDirs {
        &self.dirs
    }

    /// Opset version of a domain ("" = the default ai.onnx domain).
    pub fn opset(&self, domain: &str) -> Option<i64> {
        self.proto.opset_import.iter().find_map(|o| {
            let d = o.domain.as_deref().unwrap_or("");
            let d = if d == "ai.onnx" { "" } else { d };
            (d == domain).then_some(o.version.unwrap_or(1))
        })
    }
}

/// Index over one graph: constant tensors (initializers and Constant nodes), producers,
/// consumers and best-known element types.
pub struct GraphIndex<'a> {
    pub graph: &'a proto::GraphProto,
    pub base: &'a DataDirs,
    pub consts: HashMap<&'a str, &'a TensorProto>,
    pub producer: HashMap<&'a str, usize>,
    pub consumers: HashMap<&'a str, Vec<usize>>,
    pub elem: HashMap<String, i32>,
}

impl<'a> GraphIndex<'a> {
    pub fn new(graph: &'a proto::GraphProto, base: &'a DataDirs) -> Self {
        let mut consts: HashMap<&str, &TensorProto> = HashMap::new();
        let mut elem: HashMap<String, i32> = HashMap::new();
        for t in &graph.initializer {
            let n = t.name.as_deref().unwrap_or("");
            consts.insert(n, t);
            elem.insert(n.to_string(), t.data_type.unwrap_or(0));
        }
        for vi in graph
            .input
            .iter()
            .chain(&graph.output)
            .chain(&graph.value_info)
        {
            if let Some(t) = tensor_type(vi) {
                elem.entry(vi.name.clone().unwrap_or_default())
                    .or_insert(t.elem_type.unwrap_or(0));
            }
        }
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for inp in &n.input {
                if !inp.is_empty() {
                    consumers.entry(inp.as_str()).or_default().push(i);
                }
            }
            if op(n) == "Constant"
                && let Some(t) = n
                    .attribute
                    .iter()
                    .find(|a| a.name.as_deref() == Some("value"))
                    .and_then(|a| a.t.as_ref())
                && let Some(o) = n.output.first()
            {
                consts.insert(o.as_str(), t);
                elem.insert(o.clone(), t.data_type.unwrap_or(0));
            }
        }
        // Element types of node outputs the analysis cares about.
        for n in &graph.node {
            let set = |elem: &mut HashMap<String, i32>, i: usize, code: i32| {
                if let Some(o) = n.output.get(i)
                    && !o.is_empty()
                {
                    elem.entry(o.clone()).or_insert(code);
                }
            };
            match op(n) {
                "DynamicQuantizeLinear" => {
                    set(&mut elem, 0, 2);
                    set(&mut elem, 1, 1);
                    set(&mut elem, 2, 2);
                }
                "QuantizeLinear" => {
                    let code = n
                        .input
                        .get(2)
                        .and_then(|z| elem.get(z).copied())
                        .or_else(|| attr_i(n, "output_dtype").map(|v| v as i32))
                        .unwrap_or(2);
                    set(&mut elem, 0, code);
                }
                "DequantizeLinear" => set(&mut elem, 0, 1),
                "Cast" => {
                    if let Some(to) = attr_i(n, "to") {
                        set(&mut elem, 0, to as i32);
                    }
                }
                "MatMulInteger" | "ConvInteger" => set(&mut elem, 0, 6),
                _ => {}
            }
        }
        GraphIndex {
            graph,
            base,
            consts,
            producer,
            consumers,
            elem,
        }
    }

    /// The node producing `value`, if any.
    pub fn producer_of(&self, value: &str) -> Option<&'a NodeProto> {
        self.producer.get(value).map(|&i| &self.graph.node[i])
    }

    /// The single consumer of `value`.
    pub fn sole_consumer(&self, value: &str) -> Option<&'a NodeProto> {
        match self.consumers.get(value).map(Vec::as_slice) {
            Some([c]) => Some(&self.graph.node[*c]),
            _ => None,
        }
    }

    pub fn is_const(&self, value: &str) -> bool {
        self.consts.contains_key(value)
    }

    /// Decodes a constant (None if not constant or not decodable).
    pub fn const_data(&self, value: &str) -> Option<(Vec<usize>, TensorData)> {
        let t = self.consts.get(value)?;
        let t = kiln_codegen::onnx::tensor_from_proto(t, self.base).ok()?;
        Some((t.shape, t.data))
    }

    pub fn elem_type(&self, value: &str) -> Option<i32> {
        self.elem.get(value).copied().filter(|&c| c != 0)
    }
}

pub fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// The node's domain, with "ai.onnx" normalised to "".
pub fn domain(n: &NodeProto) -> &str {
    match n.domain.as_deref().unwrap_or("") {
        "ai.onnx" => "",
        d => d,
    }
}

/// The node's name, or `<op>(<first output>)` when unnamed.
pub fn node_name(n: &NodeProto) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!(
            "{}_{}",
            op(n),
            n.output.first().map(String::as_str).unwrap_or("")
        ),
    }
}

pub fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.i)
}

pub fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    n.attribute
        .iter()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.f)
}

pub fn tensor_type(vi: &proto::ValueInfoProto) -> Option<&proto::type_proto::Tensor> {
    match vi.r#type.as_ref()?.value.as_ref()? {
        proto::type_proto::Value::TensorType(t) => Some(t),
        _ => None,
    }
}

/// Dims of a value as text: numbers, symbolic names, `?` when unknown; None for unknown rank.
pub fn dims_text(vi: &proto::ValueInfoProto) -> Option<Vec<String>> {
    let shape = tensor_type(vi)?.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(proto::tensor_shape_proto::dimension::Value::DimValue(v)) => v.to_string(),
                Some(proto::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                    p.clone()
                }
                _ => "?".to_string(),
            })
            .collect(),
    )
}

/// ONNX element type names, as the ONNX spec spells them in lower case.
pub fn elem_name(code: i32) -> &'static str {
    match code {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        17..=20 => "float8",
        21 => "uint4",
        22 => "int4",
        _ => "unknown",
    }
}

/// Storage bits per element (0 when unknown or variable, like strings).
pub fn elem_bits(code: i32) -> u64 {
    match code {
        2 | 3 | 9 | 17..=20 => 8,
        4 | 5 | 10 | 16 => 16,
        1 | 6 | 12 => 32,
        7 | 11 | 13 => 64,
        21 | 22 => 4,
        _ => 0,
    }
}

pub fn numel(t: &TensorProto) -> u64 {
    t.dims
        .iter()
        .fold(1u64, |a, &d| a.saturating_mul(d.max(0) as u64))
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// failure never leaves a partial file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> CliResult<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let fail = |e: std::io::Error| CliError::new(format!("cannot write {}: {e}", path.display()));
    if !dir.is_dir() {
        return Err(CliError::new(format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    let file_name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{file_name}.kiln-tmp{}", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}
