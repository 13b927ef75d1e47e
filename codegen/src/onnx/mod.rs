//! Reading ONNX files: protobuf decoding (prost types checked in as `proto.rs`, so no system
//! `protoc` and no network at build time), tensors in raw or typed fields, external data files
//! relative to the model, opset imports, and conversion into the compiler's [`Graph`].
//! Every malformed input becomes an [`Error`]; nothing here panics or allocates by untrusted
//! sizes before checking them against the bytes actually present.
mod external;
#[allow(clippy::all, missing_docs)]
pub mod proto;

pub use external::{DataDirs, check_external_data, read_regular_file};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::{Error, ErrorKind, Result, bail, unsupported};
use crate::ir::{
    Attr, Capture, DType, Dim, Graph, Node, Subgraph, Tensor, TensorData, Value, ValueId,
};

/// Largest constant kiln accepts (bytes), a guard against absurd dims in corrupt files.
const MAX_TENSOR_BYTES: u64 = 1 << 34;

/// Reads and decodes an ONNX model file into a graph (shapes of intermediate values are not
/// inferred yet; see `passes`). External data may come from the model's directory and the
/// directories in `allowed_data_dirs` (named by the user, never by the model).
pub fn load_model(path: &Path, allowed_data_dirs: &[PathBuf]) -> Result<Graph> {
    let dirs = allowed_data_dirs
        .iter()
        .fold(DataDirs::for_model(path), |d, a| d.allow(a));
    dirs.check_allowed().map_err(|e| e.with_file(path))?;
    let bytes = read_regular_file(path).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot read the model file: {e}"))
            .with_hint("paths in include_model! are relative to the crate's Cargo.toml directory")
            .with_file(path)
    })?;
    decode_model(&bytes, &dirs).map_err(|e| e.with_file(path))
}

/// Decodes model bytes; `dirs` says where external data is resolved and what it may name.
pub fn decode_model(bytes: &[u8], dirs: &DataDirs) -> Result<Graph> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Decode,
            format!("not a valid ONNX model (protobuf: {e})"),
        )
        .with_hint(not_onnx_hint(bytes))
    })?;
    let Some(graph) = model.graph.as_ref() else {
        return Err(Error::new(ErrorKind::Decode, "the ONNX model has no graph")
            .with_hint("check that the file is an .onnx model"));
    };
    let mut opset = None;
    for o in &model.opset_import {
        let d = o.domain.as_deref().unwrap_or("");
        if d.is_empty() || d == "ai.onnx" {
            opset = o.version;
        }
    }
    let opset = match opset {
        Some(v) => v,
        // IR version 3+ must import the default domain; an unset opset means an ancient model.
        None if model.opset_import.is_empty() => 1,
        None => 1,
    };
    let local_functions: Vec<String> = model
        .functions
        .iter()
        .filter_map(|f| f.name.clone())
        .collect();
    check_external_data(&model, dirs)?;
    convert_graph(graph, dirs, opset, &local_functions)
}

/// What to tell the user about bytes that are not an ONNX protobuf.
fn not_onnx_hint(bytes: &[u8]) -> &'static str {
    let head = &bytes[..bytes.len().min(256)];
    if head.starts_with(b"version https://git-lfs") {
        "the file is a Git LFS pointer, not the model: run `git lfs pull` to fetch the real file"
    } else if !head.is_empty()
        && std::str::from_utf8(head).is_ok_and(|t| {
            t.chars()
                .all(|c| !c.is_control() || c.is_ascii_whitespace())
        })
    {
        "the file is text, but .onnx models are binary protobuf: point include_model! at the \
         exported .onnx file (not a text dump, JSON or HTML page)"
    } else {
        "check that the file is an .onnx model and not truncated (re-export or re-download it)"
    }
}

fn convert_graph(
    g: &proto::GraphProto,
    base: &DataDirs,
    opset: i64,
    local_functions: &[String],
) -> Result<Graph> {
    let mut graph = Graph {
        opset,
        ..Default::default()
    };
    let mut scope = Scope::default();
    decode_body(g, base, local_functions, &mut graph, &mut scope)?;
    for vi in &g.input {
        let name = vi.name.clone().unwrap_or_default();
        // Older exporters list initializers as inputs too; ONNX treats them as overridable
        // defaults. kiln compiles them as constants (that is what makes prepacking possible).
        if scope.names.contains_key(&name) {
            continue;
        }
        let (dtype, shape) = value_type(vi, &mut graph)?;
        let id = graph.add_value(name.clone(), dtype, shape);
        graph.inputs.push(id);
        scope.names.insert(name, id);
    }
    decode_nodes(g, base, local_functions, &mut graph, &mut scope)?;
    for vi in &g.output {
        let name = vi.name.clone().unwrap_or_default();
        let Some(&id) = scope.names.get(&name) else {
            bail!("graph output `{name}` is not produced by any node");
        };
        graph.outputs.push(id);
    }
    if graph.outputs.is_empty() {
        bail!("the graph has no outputs");
    }
    Ok(graph)
}

/// Name resolution while decoding one graph: its own values and, for a subgraph, the values of
/// the enclosing graphs it reads (each becomes a [`Capture`]).
#[derive(Default)]
struct Scope {
    names: HashMap<String, ValueId>,
    /// `Some` while decoding a subgraph: a name not defined in it is a capture.
    captures: Option<Vec<Capture>>,
}

impl Scope {
    fn resolve(&mut self, graph: &mut Graph, name: &str, reader: &str) -> Option<ValueId> {
        if let Some(&id) = self.names.get(name) {
            return Some(id);
        }
        let caps = self.captures.as_mut()?;
        let id = graph.add_value(name.to_string(), DType::F32, Vec::new());
        caps.push(Capture {
            name: name.to_string(),
            inner: id,
            reader: reader.to_string(),
            input: 0,
        });
        self.names.insert(name.to_string(), id);
        Some(id)
    }
}

/// The initializers of `g` into `graph`.
fn decode_body(
    g: &proto::GraphProto,
    base: &DataDirs,
    _local_functions: &[String],
    graph: &mut Graph,
    scope: &mut Scope,
) -> Result<()> {
    for init in &g.initializer {
        let t = tensor_from_proto(init, base)?;
        let id = graph.values.len();
        graph.values.push(Value {
            name: t.name.clone(),
            dtype: t.dtype(),
            shape: crate::ir::from_static(&t.shape),
            konst: Some(t.data),
            sym: None,
            int4: t.int4,
            dq: None,
        });
        scope.names.insert(graph.values[id].name.clone(), id);
    }
    if !g.sparse_initializer.is_empty() {
        unsupported!("sparse initializers are not supported");
    }
    Ok(())
}

/// A subgraph attribute (`If` branch, `Loop`/`Scan` body): its formal inputs get their element
/// type only (the owning op gives their shapes), and every name it reads from an enclosing
/// graph becomes a capture.
fn convert_subgraph(
    g: &proto::GraphProto,
    base: &DataDirs,
    opset: i64,
    local_functions: &[String],
) -> Result<Subgraph> {
    let mut graph = Graph {
        opset,
        ..Default::default()
    };
    let mut scope = Scope {
        names: HashMap::new(),
        captures: Some(Vec::new()),
    };
    decode_body(g, base, local_functions, &mut graph, &mut scope)?;
    for vi in &g.input {
        let name = vi.name.clone().unwrap_or_default();
        let dtype = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            Some(proto::type_proto::Value::TensorType(t)) => {
                DType::from_onnx(t.elem_type.unwrap_or(0)).unwrap_or(DType::F32)
            }
            // Types of body inputs may be left to the owning op (it gives their shapes too).
            None => DType::F32,
            Some(_) => unsupported!(
                "subgraph input `{name}` is not a tensor (sequences, maps and optionals are \
                 not supported)"
            ),
        };
        let id = graph.add_value(name.clone(), dtype, Vec::new());
        graph.inputs.push(id);
        scope.names.insert(name, id);
    }
    decode_nodes(g, base, local_functions, &mut graph, &mut scope)?;
    for vi in &g.output {
        let name = vi.name.clone().unwrap_or_default();
        let Some(id) = scope.resolve(&mut graph, &name, "(the subgraph's outputs)") else {
            bail!("subgraph output `{name}` is not defined");
        };
        graph.outputs.push(id);
    }
    Ok(Subgraph {
        graph: Box::new(graph),
        captures: scope.captures.unwrap_or_default(),
        compiled: false,
        dead: None,
    })
}

/// An error inside subgraph `attr` of node `outer`: reported at `outer` (the node the user can
/// find in the top graph), naming the inner node and op in the message.
pub(crate) fn in_subgraph(e: Error, attr: &str, outer: &crate::ir::Node) -> Error {
    let mut e = e;
    let inner = match (e.node.take(), e.op_type.take()) {
        (Some(n), Some(op)) => format!(", node `{n}` (op {op})"),
        (Some(n), None) => format!(", node `{n}`"),
        _ => String::new(),
    };
    e.domain = None;
    e.message = format!("in `{attr}`{inner}: {}", e.message);
    e.at_node(&outer.name, &outer.op, &outer.domain)
}

fn decode_nodes(
    g: &proto::GraphProto,
    base: &DataDirs,
    local_functions: &[String],
    graph: &mut Graph,
    scope: &mut Scope,
) -> Result<()> {
    for np in &g.node {
        let op = np.op_type.clone().unwrap_or_default();
        let domain = np.domain.clone().unwrap_or_default();
        let name = match np.name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => format!(
                "{op}_{}",
                np.output.first().map(String::as_str).unwrap_or("")
            ),
        };
        let ctx = |e: Error| e.at_node(&name, &op, &domain);
        if local_functions.contains(&op) {
            return Err(ctx(Error::unsupported(
                "model-local functions are not supported",
            ))
            .with_hint("inline the function (onnx.inliner.inline_local_functions) and retry"));
        }
        let mut inputs = Vec::with_capacity(np.input.len());
        for i in &np.input {
            if i.is_empty() {
                inputs.push(None);
            } else if let Some(id) = scope.resolve(graph, i, &name) {
                inputs.push(Some(id));
            } else {
                return Err(ctx(Error::invalid(format!(
                    "input `{i}` is not a graph input, an initializer, or an output of an earlier node"
                )))
                .with_hint(
                    "every value must be defined before it is read: check that the model's weights \
                     were saved with it (external data files sit next to the .onnx file) and \
                     that its nodes are topologically sorted (onnx.checker.check_model reports \
                     both)",
                ));
            }
        }
        let mut attrs = BTreeMap::new();
        for a in &np.attribute {
            let an = a.name.clone().unwrap_or_default();
            let v = match (&a.g, a.r#type) {
                (Some(sg), Some(5) | None) => {
                    let node = Node {
                        name: name.clone(),
                        op: op.clone(),
                        domain: domain.clone(),
                        inputs: Vec::new(),
                        outputs: Vec::new(),
                        attrs: BTreeMap::new(),
                        kiln: None,
                    };
                    Attr::Graph(
                        convert_subgraph(sg, base, graph.opset, local_functions)
                            .map_err(|e| in_subgraph(e, &an, &node))?,
                    )
                }
                _ => attr_from_proto(a, base).map_err(ctx)?,
            };
            attrs.insert(an, v);
        }
        // The outer values the subgraphs read become extra inputs of the node, after its ONNX
        // inputs (once each).
        let n_onnx = inputs.len();
        for (an, attr) in attrs.iter_mut() {
            let Attr::Graph(sg) = attr else { continue };
            for c in &mut sg.captures {
                let Some(outer) = scope.resolve(graph, &c.name, &name) else {
                    return Err(ctx(Error::invalid(format!(
                        "`{an}` reads `{}` (in its node `{}`), which is neither defined in it nor \
                         before this node in an enclosing graph",
                        c.name, c.reader
                    )))
                    .with_hint(
                        "the model is invalid (onnx.checker.check_model(model, full_check=True) \
                         reports it): re-export it",
                    ));
                };
                c.input = match inputs[n_onnx..].iter().position(|&x| x == Some(outer)) {
                    Some(p) => n_onnx + p,
                    None => {
                        inputs.push(Some(outer));
                        inputs.len() - 1
                    }
                };
            }
        }
        let mut outputs = Vec::with_capacity(np.output.len());
        for (j, o) in np.output.iter().enumerate() {
            // An omitted optional output still gets a value so that positions stay stable.
            let vname = if o.is_empty() {
                format!("{name}:unused{j}")
            } else {
                o.clone()
            };
            if scope.names.contains_key(&vname) {
                return Err(ctx(Error::invalid(format!(
                    "value `{vname}` is defined twice (ONNX graphs are single-assignment)"
                ))));
            }
            let id = graph.add_value(vname.clone(), DType::F32, Vec::new());
            scope.names.insert(vname, id);
            outputs.push(id);
        }
        graph.nodes.push(Node {
            name,
            op,
            domain,
            inputs,
            outputs,
            attrs,
            kiln: None,
        });
    }
    Ok(())
}

fn value_type(vi: &proto::ValueInfoProto, graph: &mut Graph) -> Result<(DType, Vec<Dim>)> {
    let name = vi.name.as_deref().unwrap_or("");
    let tt = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(proto::type_proto::Value::TensorType(t)) => t,
        Some(_) => unsupported!(
            "input `{name}` is not a tensor (sequences, maps and optionals are not supported)"
        ),
        None => bail!("input `{name}` has no type"),
    };
    let code = tt.elem_type.unwrap_or(0);
    let dtype = DType::from_onnx(code).ok_or_else(|| {
        Error::unsupported(format!(
            "graph input `{name}` has element type {} which kiln does not support",
            DType::onnx_name(code)
        ))
        .with_hint(
            "supported: float, double, int8/16/32/64, uint8/16/32/64, bool; export the model \
             with float32 inputs",
        )
    })?;
    let Some(shape) = tt.shape.as_ref() else {
        return Err(
            Error::unsupported(format!("input `{name}` has no shape (unknown rank)"))
                .with_hint("give the input a fixed shape, e.g. with onnx.tools.update_model_dims"),
        );
    };
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (i, d) in shape.dim.iter().enumerate() {
        use proto::tensor_shape_proto::dimension::Value as D;
        match &d.value {
            Some(D::DimValue(v)) if *v >= 0 => dims.push(Dim::from(*v as usize)),
            // -1 is the legacy marker of a dynamic dim (paddle2onnx, old exporters).
            Some(D::DimValue(-1)) => dims.push(graph.sym(&format!("{name}_dim{i}"))),
            Some(D::DimValue(v)) => bail!("input `{name}` has a negative dimension {v}"),
            // A named dim is decided per call; inputs sharing a name must agree. "?" is a
            // placeholder some exporters write for every unknown dim: not a shared name.
            Some(D::DimParam(p)) if !p.is_empty() && p != "?" => dims.push(graph.sym(p)),
            // An unnamed unknown dim gets a name of its own.
            _ => dims.push(graph.sym(&format!("{name}_dim{i}"))),
        }
    }
    crate::ir::check_shape(&dims, &format!("graph input `{name}`"))?;
    Ok((dtype, dims))
}

fn attr_from_proto(a: &proto::AttributeProto, base: &DataDirs) -> Result<Attr> {
    use proto::attribute_proto::AttributeType as T;
    let ty = a.r#type.and_then(|t| T::try_from(t).ok());
    // IR < 3 files may omit `type`: infer from which field is set.
    let ty = match ty {
        Some(t) if t != T::Undefined => t,
        _ => {
            if a.f.is_some() {
                T::Float
            } else if a.i.is_some() {
                T::Int
            } else if a.s.is_some() {
                T::String
            } else if a.t.is_some() {
                T::Tensor
            } else if !a.floats.is_empty() {
                T::Floats
            } else if !a.ints.is_empty() {
                T::Ints
            } else if !a.strings.is_empty() {
                T::Strings
            } else {
                T::Undefined
            }
        }
    };
    Ok(match ty {
        T::Float => Attr::Float(a.f.unwrap_or(0.0)),
        T::Int => Attr::Int(a.i.unwrap_or(0)),
        T::String => Attr::String(String::from_utf8_lossy(a.s.as_deref().unwrap_or(&[])).into()),
        T::Floats => Attr::Floats(a.floats.clone()),
        T::Ints => Attr::Ints(a.ints.clone()),
        T::Tensor => match &a.t {
            Some(t) => Attr::Tensor(tensor_from_proto(t, base)?),
            None => bail!(
                "tensor attribute `{}` has no tensor",
                a.name.as_deref().unwrap_or("")
            ),
        },
        T::Graph | T::Graphs => Attr::Other("a graph"),
        T::SparseTensor | T::SparseTensors => Attr::Other("a sparse tensor"),
        T::TypeProto | T::TypeProtos => Attr::Other("a type"),
        T::Strings => Attr::Strings(
            a.strings
                .iter()
                .map(|b| String::from_utf8_lossy(b).into())
                .collect(),
        ),
        T::Tensors => Attr::Other("a list of tensors"),
        T::Undefined => Attr::Other("an undefined attribute"),
    })
}

/// Reads a serialized `TensorProto` file (the ONNX test-data format).
pub fn read_tensor_file(path: &Path) -> Result<Tensor> {
    let bytes = read_regular_file(path).map_err(|e| {
        Error::new(ErrorKind::Io, format!("cannot read tensor: {e}")).with_file(path)
    })?;
    let t = proto::TensorProto::decode(bytes.as_slice()).map_err(|e| {
        Error::new(ErrorKind::Decode, format!("not a TensorProto: {e}")).with_file(path)
    })?;
    tensor_from_proto(&t, &DataDirs::for_model(path)).map_err(|e| e.with_file(path))
}

/// Converts a TensorProto (raw_data, typed fields or external data, which must follow
/// [`DataDirs::resolve`]'s rule) into a constant tensor.
pub fn tensor_from_proto(t: &proto::TensorProto, base: &DataDirs) -> Result<Tensor> {
    let name = t.name.clone().unwrap_or_default();
    if t.segment.is_some() {
        unsupported!("tensor `{name}` is segmented, which is not supported");
    }
    let code = t.data_type.unwrap_or(0);
    if code == 21 || code == 22 {
        return int4_from_proto(t, name, code == 22, base);
    }
    let dtype = DType::from_onnx(code).ok_or_else(|| {
        Error::unsupported(format!(
            "tensor `{name}` has element type {} which kiln does not support",
            DType::onnx_name(code)
        ))
        .with_hint(
            "supported: float, double, int8/16/32/64, uint8/16/32/64, bool, and int4/uint4 for \
             constants; float8/float4/int2 quantization is not supported",
        )
    })?;
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut numel: u64 = 1;
    for &d in &t.dims {
        if d < 0 {
            bail!("tensor `{name}` has a negative dimension {d}");
        }
        numel = numel.saturating_mul(d as u64);
        shape.push(d as usize);
    }
    crate::ir::check_shape(&crate::ir::from_static(&shape), &format!("tensor `{name}`"))?;
    let nbytes = numel.saturating_mul(dtype.size() as u64);
    if nbytes > MAX_TENSOR_BYTES {
        bail!("tensor `{name}` claims {numel} elements, too large to be a real model constant");
    }
    let numel = numel as usize;

    let raw: Option<Vec<u8>> = if external::is_external(t) {
        Some(external::read_external(t, &name, base, nbytes)?)
    } else {
        t.raw_data.clone()
    };

    let data = if let Some(raw) = raw {
        if raw.len() != numel * dtype.size() {
            bail!(
                "tensor `{name}` has {} bytes of data but its shape {shape:?} of {:?} needs {}",
                raw.len(),
                dtype,
                numel * dtype.size()
            );
        }
        from_le_bytes(dtype, &raw)
    } else {
        let typed_len = match dtype {
            DType::F32 => t.float_data.len(),
            DType::F64 => t.double_data.len(),
            DType::I64 => t.int64_data.len(),
            DType::U32 | DType::U64 => t.uint64_data.len(),
            _ => t.int32_data.len(),
        };
        if typed_len != numel {
            bail!("tensor `{name}` has {typed_len} values but its shape {shape:?} needs {numel}");
        }
        match dtype {
            DType::F32 => TensorData::F32(t.float_data.clone()),
            DType::F64 => TensorData::F64(t.double_data.clone()),
            DType::I64 => TensorData::I64(t.int64_data.clone()),
            DType::U32 => TensorData::U32(t.uint64_data.iter().map(|&v| v as u32).collect()),
            DType::U64 => TensorData::U64(t.uint64_data.clone()),
            DType::I32 => TensorData::I32(t.int32_data.clone()),
            DType::I8 => TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect()),
            DType::U8 => TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect()),
            DType::I16 => TensorData::I16(t.int32_data.iter().map(|&v| v as i16).collect()),
            DType::U16 => TensorData::U16(t.int32_data.iter().map(|&v| v as u16).collect()),
            DType::Bool => TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
        }
    };
    Ok(Tensor {
        name,
        shape,
        data,
        int4: false,
    })
}

/// INT4 (`signed`) / UINT4 tensors: two values per byte, the first in the low nibble (raw or
/// external data), or two per `int32_data` entry. Widened to one I8/U8 value each.
fn int4_from_proto(
    t: &proto::TensorProto,
    name: String,
    signed: bool,
    base: &DataDirs,
) -> Result<Tensor> {
    let mut shape = Vec::with_capacity(t.dims.len());
    let mut numel: u64 = 1;
    for &d in &t.dims {
        if d < 0 {
            bail!("tensor `{name}` has a negative dimension {d}");
        }
        numel = numel.saturating_mul(d as u64);
        shape.push(d as usize);
    }
    crate::ir::check_shape(&crate::ir::from_static(&shape), &format!("tensor `{name}`"))?;
    if numel > MAX_TENSOR_BYTES {
        bail!("tensor `{name}` claims {numel} elements, too large to be a real model constant");
    }
    let numel = numel as usize;
    let nbytes = numel.div_ceil(2);
    let bytes: Vec<u8> = if external::is_external(t) {
        external::read_external(t, &name, base, nbytes as u64)?
    } else if let Some(raw) = &t.raw_data {
        raw.clone()
    } else {
        t.int32_data.iter().map(|&v| v as u8).collect()
    };
    if bytes.len() != nbytes {
        bail!(
            "tensor `{name}` has {} bytes of 4-bit data but its shape {shape:?} needs {nbytes}",
            bytes.len()
        );
    }
    let nib = |i: usize| (bytes[i / 2] >> (4 * (i % 2))) & 0xf;
    let data = if signed {
        TensorData::I8((0..numel).map(|i| ((nib(i) << 4) as i8) >> 4).collect())
    } else {
        TensorData::U8((0..numel).map(nib).collect())
    };
    Ok(Tensor {
        name,
        shape,
        data,
        int4: true,
    })
}

fn from_le_bytes(dtype: DType, raw: &[u8]) -> TensorData {
    macro_rules! conv {
        ($t:ty, $n:expr) => {
            raw.chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().unwrap()))
                .collect()
        };
    }
    match dtype {
        DType::F32 => TensorData::F32(conv!(f32, 4)),
        DType::F64 => TensorData::F64(conv!(f64, 8)),
        DType::I8 => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        DType::U8 => TensorData::U8(raw.to_vec()),
        DType::I16 => TensorData::I16(conv!(i16, 2)),
        DType::U16 => TensorData::U16(conv!(u16, 2)),
        DType::I32 => TensorData::I32(conv!(i32, 4)),
        DType::U32 => TensorData::U32(conv!(u32, 4)),
        DType::I64 => TensorData::I64(conv!(i64, 8)),
        DType::U64 => TensorData::U64(conv!(u64, 8)),
        DType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
    }
}
