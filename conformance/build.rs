//! Compiles every dumped ONNX backend node test (tools/dump_node_tests.py) with kiln_codegen.
//!
//! For each case listed in `<cache>/INDEX` this runs the compiler as `Builder` does; an
//! accepted case becomes `$OUT_DIR/cases/<name>.rs` plus a `run` function that feeds the test
//! data's inputs to `Model::run` and returns the outputs as `kiln_conformance::Output`s. A refused
//! case is recorded with kiln's error message (and a panic of the compiler as such, which the
//! test then reports as a failure). The cases are dealt round-robin into `SHARDS` files
//! (`shard_<k>.rs`), one per test target, so cargo compiles them in parallel.
//!
//! Parameter inputs: node tests feed every operand as a graph input, while real models hold
//! shape-like parameters (Reshape's shape, Slice's starts, Resize's scales, Conv's weights…) as
//! initializers, and kiln needs several of them at compile time. A case kiln refuses as it is
//! is retried with the inputs at the positions in `PARAMS` (and 4-bit inputs, which kiln takes
//! only as constants) turned into initializers holding exactly the test data's values; the
//! expected outputs are unchanged. The test prints how many passes needed this.
//!
//! Without the cache this emits nothing and the test says how to dump it; with
//! `KILN_REQUIRE_NODE_TESTS=1` (CI) a missing cache fails the build.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use kiln_codegen::onnx::{DataDirs, proto};
use prost::Message;

/// Test targets `tests/sweep_<k>.rs`; each compiles one shard of the accepted cases. One
/// shard prints one summary line; more compile in parallel (measured with 374 accepted cases on
/// 2 cores: 1 shard 12.4 s, 2 shards 11.0 s wall for the whole crate, ~40 ms of rustc per case),
/// so raise it (and add the test files) when the build gets slow.
const SHARDS: usize = 1;

/// Op → input positions that real models hold as initializers (see the module doc).
const PARAMS: &[(&str, &[usize])] = &[
    ("Reshape", &[1]),
    ("CumSum", &[1]),
    ("CumProd", &[1]),
    ("Expand", &[1]),
    ("Tile", &[1]),
    ("ConstantOfShape", &[0]),
    ("Resize", &[1, 2, 3]),
    ("Upsample", &[1]),
    ("Pad", &[1, 2, 3]),
    ("Split", &[1]),
    ("Slice", &[1, 2, 3, 4]),
    ("Squeeze", &[1]),
    ("Unsqueeze", &[1]),
    ("ReduceMean", &[1]),
    ("ReduceSum", &[1]),
    ("ReduceMax", &[1]),
    ("ReduceMin", &[1]),
    ("ReduceProd", &[1]),
    ("ReduceL1", &[1]),
    ("ReduceL2", &[1]),
    ("ReduceLogSum", &[1]),
    ("ReduceLogSumExp", &[1]),
    ("ReduceSumSquare", &[1]),
    ("TopK", &[1]),
    ("OneHot", &[1, 2]),
    ("Range", &[0, 1, 2]),
    ("CenterCropPad", &[1]),
    ("AffineGrid", &[1]),
    ("Trilu", &[1]),
    ("CumSum", &[1]),
    ("CumProd", &[1]),
    ("Clip", &[1, 2]),
    ("Dropout", &[1, 2]),
    ("Conv", &[1, 2]),
    ("ConvTranspose", &[1, 2]),
    ("ConvInteger", &[1, 3]),
    ("BatchNormalization", &[1, 2, 3, 4]),
    ("InstanceNormalization", &[1, 2]),
    ("LayerNormalization", &[1, 2]),
    ("GroupNormalization", &[1, 2]),
    ("RMSNormalization", &[1]),
    ("QuantizeLinear", &[1, 2]),
    ("DequantizeLinear", &[1, 2]),
    ("QLinearMatMul", &[1, 2, 4, 5, 6, 7]),
    ("QLinearConv", &[1, 2, 4, 5, 6, 7, 8]),
    ("MatMulInteger", &[2, 3]),
    ("Loop", &[0, 1]),
];

/// ONNX element types kiln takes only as constants (INT4, UINT4).
const CONST_ONLY_TYPES: &[i32] = &[21, 22];

struct Accepted {
    name: String,
    rtol: String,
    atol: String,
    /// Original graph-input indices of the inputs the model still takes, in order.
    inputs: Vec<usize>,
    /// Names of the inputs frozen into initializers.
    frozen: Vec<String>,
    /// (field, Rust element type) of each remaining input and of each output.
    in_fields: Vec<(String, &'static str)>,
    out_fields: Vec<(String, &'static str)>,
}

struct Refused {
    name: String,
    reason: String,
    panicked: bool,
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_node_tests)");
    println!("cargo::rerun-if-changed=build.rs");
    for v in [
        "KILN_NODE_TESTS",
        "KILN_REQUIRE_NODE_TESTS",
        "KILN_SWEEP_FILTER",
        "HOME",
    ] {
        println!("cargo::rerun-if-env-changed={v}");
    }
    let dir = cache_dir();
    let stamp = dir.join("STAMP");
    // A missing path makes cargo rerun this script on every build, which is what we want
    // until the cache appears (the crate is empty then, so that costs nothing).
    println!("cargo::rerun-if-changed={}", stamp.display());
    if !stamp.exists() {
        if std::env::var("KILN_REQUIRE_NODE_TESTS").is_ok_and(|v| v == "1") {
            eprintln!(
                "KILN_REQUIRE_NODE_TESTS=1 but the ONNX node tests are not in {}: run \
                 `python3 tools/dump_node_tests.py` (or set KILN_NODE_TESTS to where they are)",
                dir.display()
            );
            std::process::exit(1);
        }
        return;
    }
    println!("cargo::rerun-if-changed={}", dir.join("INDEX").display());
    println!("cargo::rustc-cfg=kiln_node_tests");
    println!("cargo::rustc-env=KILN_NODE_TESTS_DIR={}", dir.display());

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let cases_dir = out.join("cases");
    std::fs::create_dir_all(&cases_dir).expect("create OUT_DIR/cases");
    let index = std::fs::read_to_string(dir.join("INDEX")).expect("read INDEX");
    let filter = std::env::var("KILN_SWEEP_FILTER").ok();
    // The compiler must not print panic backtraces into the build log for every refused case;
    // a panic is caught, recorded and reported by the test.
    std::panic::set_hook(Box::new(|_| {}));
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for line in index.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, rtol, atol, ..] = f[..] else {
            panic!("bad INDEX line {line:?}");
        };
        if filter.as_deref().is_some_and(|p| !name.contains(p)) {
            continue;
        }
        match compile_case(&dir.join(name), &cases_dir, name) {
            Ok(mut a) => {
                a.rtol = rtol.to_string();
                a.atol = atol.to_string();
                accepted.push(a);
            }
            Err((reason, panicked)) => refused.push(Refused {
                name: name.to_string(),
                reason,
                panicked,
            }),
        }
    }
    let _ = std::panic::take_hook();
    for k in 0..SHARDS {
        let shard: Vec<&Accepted> = accepted.iter().skip(k).step_by(SHARDS).collect();
        write_shard(&out.join(format!("shard_{k}.rs")), &shard);
    }
    write_index(&out.join("index.rs"), &accepted, &refused);
}

fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_NODE_TESTS").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/kiln/node_tests")
}

type Refusal = (String, bool);

/// Compiles one case as it is, else with its parameter inputs frozen; writes the module.
fn compile_case(case: &Path, out: &Path, name: &str) -> Result<Accepted, Refusal> {
    let model_path = case.join("model.onnx");
    let bytes =
        std::fs::read(&model_path).map_err(|e| (format!("cannot read model: {e}"), false))?;
    let model = proto::ModelProto::decode(&bytes[..])
        .map_err(|e| (format!("cannot decode model: {e}"), false))?;
    let data = case.join("test_data_set_0");
    let first = try_compile(&model, &model_path, &data, &[]);
    let (compiled, frozen) = match first {
        Ok(c) => (c, Vec::new()),
        Err(e) => {
            let frozen = freezable(&model, &data);
            if frozen.is_empty() {
                return Err(e);
            }
            // The refusal reported is the one with the parameters frozen: it names what kiln
            // lacks beyond needing them at compile time.
            (try_compile(&model, &model_path, &data, &frozen)?, frozen)
        }
    };
    let g = model.graph.as_ref().expect("decoded above");
    let index_of = |n: &str| {
        g.input
            .iter()
            .position(|vi| vi.name.as_deref() == Some(n))
            .expect("graph input")
    };
    let ir = &compiled.graph;
    let value = |id: usize| (&ir.values[id].name, ir.values[id].dtype.rust());
    let in_names: Vec<&str> = ir.inputs.iter().map(|&i| value(i).0.as_str()).collect();
    let out_names: Vec<&str> = ir.outputs.iter().map(|&i| value(i).0.as_str()).collect();
    use kiln_codegen::emit::names::idents;
    let fields = |ids: &[usize], names: &[&str], prefix| {
        idents(names, prefix)
            .into_iter()
            .zip(ids.iter().map(|&i| value(i).1))
            .collect()
    };
    // Outputs must be plain tensors in the test data to be compared.
    for j in 0..out_names.len() {
        if !data.join(format!("output_{j}.pb")).exists() {
            return Err((
                format!("expected output {j} is not a plain tensor in the test data"),
                false,
            ));
        }
    }
    let blob = compiled
        .write_blob(out)
        .map_err(|e| (format!("writing the blob: {e}"), false))?;
    let src = compiled.source(&blob).map_err(|e| (e.to_string(), false))?;
    std::fs::write(out.join(format!("{name}.rs")), src).expect("write case module");
    Ok(Accepted {
        name: name.to_string(),
        rtol: String::new(),
        atol: String::new(),
        inputs: in_names.iter().map(|n| index_of(n)).collect(),
        in_fields: fields(&ir.inputs, &in_names, "input"),
        out_fields: fields(&ir.outputs, &out_names, "output"),
        frozen,
    })
}

/// Names of the graph inputs to freeze: parameter positions of `PARAMS` and 4-bit inputs, when
/// the test data holds them as plain tensors.
fn freezable(model: &proto::ModelProto, data: &Path) -> Vec<String> {
    let Some(g) = model.graph.as_ref() else {
        return Vec::new();
    };
    let inputs: Vec<&str> = g.input.iter().filter_map(|vi| vi.name.as_deref()).collect();
    let mut names = Vec::new();
    for n in &g.node {
        let op = n.op_type.as_deref().unwrap_or("");
        let Some((_, pos)) = PARAMS.iter().find(|(o, _)| *o == op) else {
            continue;
        };
        for &p in *pos {
            if let Some(i) = n.input.get(p)
                && inputs.contains(&i.as_str())
            {
                names.push(i.clone());
            }
        }
    }
    for vi in &g.input {
        if let Some(proto::type_proto::Value::TensorType(t)) =
            vi.r#type.as_ref().and_then(|t| t.value.as_ref())
            && CONST_ONLY_TYPES.contains(&t.elem_type.unwrap_or(0))
        {
            names.push(vi.name.clone().unwrap_or_default());
        }
    }
    names.sort();
    names.dedup();
    names.retain(|n| {
        let j = inputs.iter().position(|i| i == n).expect("input");
        data.join(format!("input_{j}.pb")).exists()
    });
    names
}

/// Runs the compiler on `model` with the inputs in `freeze` made initializers from the test
/// data; catches a panic of the compiler.
fn try_compile(
    model: &proto::ModelProto,
    path: &Path,
    data: &Path,
    freeze: &[String],
) -> Result<kiln_codegen::Compiled, Refusal> {
    let mut m = model.clone();
    if !freeze.is_empty() {
        let g = m.graph.as_mut().expect("graph");
        // Test-data file indices are positions in the original input list.
        let original: Vec<Option<String>> = g.input.iter().map(|vi| vi.name.clone()).collect();
        for name in freeze {
            let j = original
                .iter()
                .position(|n| n.as_deref() == Some(name))
                .expect("input");
            let tbytes = std::fs::read(data.join(format!("input_{j}.pb"))).expect("test data");
            let mut t = proto::TensorProto::decode(&tbytes[..]).expect("TensorProto");
            t.name = Some(name.clone());
            g.initializer.push(t);
        }
        g.input.retain(|vi| {
            !freeze
                .iter()
                .any(|n| vi.name.as_deref() == Some(n.as_str()))
        });
    }
    let bytes = m.encode_to_vec();
    let opts = kiln_codegen::Options::default();
    let run = || {
        let mut graph = kiln_codegen::onnx::decode_model(&bytes, &DataDirs::for_model(path))?;
        graph.file = path.to_path_buf();
        kiln_codegen::compile_graph(graph, &opts)
    };
    match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err((reason(&e), false)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err((format!("the compiler panicked: {msg}"), true))
        }
    }
}

/// The error without the file (the same for every case): op, message.
fn reason(e: &kiln_codegen::Error) -> String {
    let msg = e.message.replace('\n', " ");
    match &e.op_type {
        Some(op) => format!("[{op}] {msg}"),
        None => msg,
    }
}

fn write_shard(path: &Path, cases: &[&Accepted]) {
    let mut s = String::from("// @generated by conformance/build.rs\n");
    for c in cases {
        write_case(&mut s, c);
    }
    s.push_str("pub static CASES: &[kiln_conformance::Case] = &[\n");
    for c in cases {
        let quoted = |v: &[String]| v.iter().map(|n| format!("{n:?}, ")).collect::<String>();
        let _ = writeln!(
            s,
            "    kiln_conformance::Case {{ name: {:?}, rtol: {}, atol: {}, inputs: &{:?}, \
             frozen: &[{}], run: {}::run }},",
            c.name,
            c.rtol,
            c.atol,
            c.inputs,
            quoted(&c.frozen),
            c.name
        );
    }
    s.push_str("];\n");
    std::fs::write(path, s).expect("write shard");
}

/// Every case of the sweep: the accepted ones with their shard, and the refused ones.
#[allow(clippy::modulo_one)] // SHARDS may be 1
fn write_index(path: &Path, accepted: &[Accepted], refused: &[Refused]) {
    let mut s = String::from("// @generated by conformance/build.rs\n");
    let _ = writeln!(s, "pub const SHARDS: usize = {SHARDS};");
    s.push_str("pub static ACCEPTED: &[(&str, usize)] = &[\n");
    for (i, a) in accepted.iter().enumerate() {
        let _ = writeln!(s, "    ({:?}, {}),", a.name, i % SHARDS);
    }
    s.push_str("];\n");
    s.push_str("pub static REFUSED: &[kiln_conformance::Refused] = &[\n");
    for r in refused {
        let _ = writeln!(
            s,
            "    kiln_conformance::Refused {{ name: {:?}, reason: {:?}, panicked: {} }},",
            r.name, r.reason, r.panicked
        );
    }
    s.push_str("];\n");
    std::fs::write(path, s).expect("write index");
}

fn write_case(s: &mut String, c: &Accepted) {
    let n = &c.name;
    let _ = writeln!(
        s,
        "#[allow(non_snake_case, unused, clippy::all)]\nmod {n} {{\n    \
         include!(concat!(env!(\"OUT_DIR\"), \"/cases/{n}.rs\"));\n    \
         pub fn run(isa: ::kiln::Isa, x: &[kiln_conformance::Tensor]) \
         -> Result<Vec<kiln_conformance::Output>, String> {{\n        \
         let mut model = Model::with_isa(isa);\n        let inputs = Inputs {{"
    );
    if c.in_fields.is_empty() {
        // A model without inputs takes the empty marker struct.
        s.push_str("            ..Inputs::default()\n");
    }
    for (j, (f, ty)) in c.in_fields.iter().enumerate() {
        let _ = writeln!(
            s,
            "            {f}: kiln_conformance::input::<{ty}>(&x[{j}])?,"
        );
    }
    let _ = writeln!(
        s,
        "        }};\n        let out = model.run(inputs).map_err(|e| format!(\"run: {{e}}\"))?;\n        Ok(vec!["
    );
    for (f, _) in &c.out_fields {
        let _ = writeln!(
            s,
            "            kiln_conformance::output(out.{f}.shape(), out.{f}.data()),"
        );
    }
    s.push_str("        ])\n    }\n}\n");
}
