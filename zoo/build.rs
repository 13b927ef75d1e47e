//! Compiles every model of the real-model zoo (`python3 tools/fetch_zoo.py`, docs/zoo.md) with
//! kiln_codegen, the compiler behind `include_model!` and `Builder`.
//!
//! For each `<cache>/zoo/<model>/model.onnx` an accepted model becomes `$OUT_DIR/models/<m>.rs`
//! (plus its weight blob) and a `run` function that feeds a reference case's inputs (matched by
//! name) to `Model::run` and returns the outputs by name; a refused model is recorded with
//! kiln's error (a panic of the compiler as such, which the test reports as a failure).
//!
//! Without the cache this emits nothing and the test says how to fetch it; with
//! `KILN_REQUIRE_ZOO=1` (CI) a missing cache fails the build.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

struct Accepted {
    name: String,
    module: String,
    /// (ONNX name, field, Rust element type) of each input and output.
    inputs: Vec<(String, String, &'static str)>,
    outputs: Vec<(String, String, &'static str)>,
}

struct Refused {
    name: String,
    reason: String,
    panicked: bool,
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kiln_zoo)");
    println!("cargo::rerun-if-changed=build.rs");
    for v in ["KILN_CACHE", "KILN_REQUIRE_ZOO", "KILN_ZOO_FILTER", "HOME"] {
        println!("cargo::rerun-if-env-changed={v}");
    }
    let dir = zoo_dir();
    let index = dir.join("index.json");
    // A missing path makes cargo rerun this script on every build until the cache appears.
    println!("cargo::rerun-if-changed={}", index.display());
    if !index.exists() {
        if std::env::var("KILN_REQUIRE_ZOO").is_ok_and(|v| v == "1") {
            eprintln!(
                "KILN_REQUIRE_ZOO=1 but the model zoo is not in {}: run \
                 `python3 tools/fetch_zoo.py` (or set KILN_CACHE to the cache above it)",
                dir.display()
            );
            std::process::exit(1);
        }
        return;
    }
    println!("cargo::rustc-cfg=kiln_zoo");
    println!("cargo::rustc-env=KILN_ZOO_DIR={}", dir.display());

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let models_dir = out.join("models");
    std::fs::create_dir_all(&models_dir).expect("create OUT_DIR/models");
    let filter = std::env::var("KILN_ZOO_FILTER").ok();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read the zoo directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("model.onnx").is_file() && e.path().join("meta.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| filter.as_deref().is_none_or(|f| n.contains(f)))
        .collect();
    names.sort();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for name in names {
        let model = dir.join(&name).join("model.onnx");
        println!("cargo::rerun-if-changed={}", model.display());
        match compile(&model, &models_dir, &name) {
            Ok(a) => accepted.push(a),
            Err((reason, panicked)) => refused.push(Refused {
                name,
                reason,
                panicked,
            }),
        }
    }
    let _ = std::panic::take_hook();
    write_models(&out.join("models.rs"), &accepted, &refused);
}

/// `${KILN_CACHE:-~/.cache/kiln}/zoo`, as tools/fetch_zoo.py writes it.
fn zoo_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KILN_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("zoo");
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    Path::new(&home).join(".cache/kiln/zoo")
}

/// A module name for a model (`nudenet_320n.qop` → `nudenet_320n_qop`).
fn module_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("m_{s}")
}

type Refusal = (String, bool);

/// Compiles one model as `Builder` does and writes its module; catches a compiler panic.
fn compile(model: &Path, out: &Path, name: &str) -> Result<Accepted, Refusal> {
    let run = || kiln_codegen::compile_file(model, &kiln_codegen::Options::default());
    let compiled = match catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Err((reason(&e), false)),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            return Err((format!("the compiler panicked: {msg}"), true));
        }
    };
    let ir = &compiled.graph;
    use kiln_codegen::emit::names::idents;
    let fields = |ids: &[usize], prefix| {
        let names: Vec<&str> = ids.iter().map(|&i| ir.values[i].name.as_str()).collect();
        idents(&names, prefix)
            .into_iter()
            .zip(ids)
            .map(|(f, &i)| (ir.values[i].name.clone(), f, ir.values[i].dtype.rust()))
            .collect()
    };
    let module = module_name(name);
    let dir = out.join(&module);
    std::fs::create_dir_all(&dir).expect("create the model's directory");
    let blob = compiled
        .write_blob(&dir)
        .map_err(|e| (format!("writing the blob: {e}"), false))?;
    let src = compiled.source(&blob).map_err(|e| (reason(&e), false))?;
    std::fs::write(dir.join("model.rs"), src).expect("write the model's module");
    Ok(Accepted {
        name: name.to_string(),
        module,
        inputs: fields(&ir.inputs, "input"),
        outputs: fields(&ir.outputs, "output"),
    })
}

/// The error without the file path (the cache's location differs between machines).
fn reason(e: &kiln_codegen::Error) -> String {
    let msg = e.message.replace('\n', " ");
    let op = match (&e.op_type, e.domain.as_deref()) {
        (Some(op), Some(d)) if !d.is_empty() && d != "ai.onnx" => format!("{d}::{op}"),
        (Some(op), _) => op.clone(),
        (None, _) => return msg,
    };
    match &e.node {
        Some(n) => format!("node `{n}` ({op}): {msg}"),
        None => format!("[{op}] {msg}"),
    }
}

fn write_models(path: &Path, accepted: &[Accepted], refused: &[Refused]) {
    let mut s = String::from("// @generated by zoo/build.rs\n");
    for a in accepted {
        write_model(&mut s, a);
    }
    s.push_str("pub static COMPILED: &[kiln_zoo::Compiled] = &[\n");
    for a in accepted {
        let _ = writeln!(
            s,
            "    kiln_zoo::Compiled {{ name: {:?}, run: {}::run }},",
            a.name, a.module
        );
    }
    s.push_str("];\npub static REFUSED: &[kiln_zoo::Refused] = &[\n");
    for r in refused {
        let _ = writeln!(
            s,
            "    kiln_zoo::Refused {{ name: {:?}, reason: {:?}, panicked: {} }},",
            r.name, r.reason, r.panicked
        );
    }
    s.push_str("];\n");
    std::fs::write(path, s).expect("write models.rs");
}

fn write_model(s: &mut String, a: &Accepted) {
    let m = &a.module;
    let _ = writeln!(
        s,
        "#[allow(non_snake_case, unused, clippy::all)]\nmod {m} {{\n    \
         include!(concat!(env!(\"OUT_DIR\"), \"/models/{m}/model.rs\"));\n    \
         pub fn run(isa: ::kiln::Isa, x: &[kiln_zoo::Tensor]) \
         -> Result<Vec<kiln_zoo::Output>, String> {{\n        \
         let mut model = Model::with_isa(isa);\n        let inputs = Inputs {{"
    );
    if a.inputs.is_empty() {
        s.push_str("            ..Inputs::default()\n");
    }
    for (n, f, ty) in &a.inputs {
        let _ = writeln!(s, "            {f}: kiln_zoo::input::<{ty}>(x, {n:?})?,");
    }
    let _ = writeln!(
        s,
        "        }};\n        let out = model.run(inputs).map_err(|e| format!(\"run: {{e}}\"))?;\n        Ok(vec!["
    );
    for (n, f, _) in &a.outputs {
        let _ = writeln!(
            s,
            "            kiln_zoo::output({n:?}, out.{f}.shape(), out.{f}.data()),"
        );
    }
    s.push_str("        ])\n    }\n}\n");
}
