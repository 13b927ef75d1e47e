//! End-to-end tests of the `kiln` binary on the committed fixtures and bad models.
//!
//! `kiln quantize` is checked against onnxruntime without running Python: every committed
//! `tests/models/<arch>_<cfg>` fixture was made by onnxruntime's `quantize_dynamic` from
//! `tests/models/<arch>_f32` with the settings its meta.json records. Quantizing the same float
//! model with the same settings must give the same graph (op multiset) and exactly the same
//! weights, scales and zero points. With identical parameters and graph, onnxruntime's reference
//! outputs of the fixture are the outputs of kiln's model too; `tools/check_quantize.py` (CI)
//! also runs kiln's models in onnxruntime and compares the outputs.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_codegen::ir::TensorData;
use kiln_codegen::onnx::proto::ModelProto;
use prost::Message;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .expect("run kiln")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run: exit 1, one line on stderr starting with `error:`, no panic, nothing on stdout.
fn assert_clean_failure(o: &Output, what: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    assert!(err.starts_with("error: "), "{what}: {err}");
    assert!(o.stdout.is_empty(), "{what}");
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-cli-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load(path: &Path) -> ModelProto {
    ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

fn initializers(m: &ModelProto, base: &Path) -> BTreeMap<String, (Vec<usize>, TensorData)> {
    m.graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .map(|t| {
            let d =
                kiln_codegen::onnx::tensor_from_proto(t, &kiln_codegen::onnx::DataDirs::new(base))
                    .unwrap();
            (d.name.clone(), (d.shape, d.data))
        })
        .collect()
}

fn op_counts(m: &ModelProto) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for n in &m.graph.as_ref().unwrap().node {
        *c.entry(n.op_type.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    c
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("valid JSON")
}

#[test]
fn quantize_matches_onnxruntime_quantize_dynamic_on_every_fixture() {
    let models = root().join("tests/models");
    let out_dir = scratch("quantize-fixtures");
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        // `<arch>_q_<cfg>`: MatMul/Gemm quantized; `<arch>_qc_<cfg>`: Conv too (ConvInteger).
        // `<arch>_qm_<cfg>`: a CNN with only its MatMul/Gemm layers quantized.
        let (arch, conv) = match (
            case.split_once("_q_"),
            case.split_once("_qc_"),
            case.split_once("_qm_"),
        ) {
            (Some((a, _)), _, _) | (_, _, Some((a, _))) => (a, false),
            (None, Some((a, _)), _) => (a, true),
            _ => continue,
        };
        let src = models.join(format!("{arch}_f32/model.onnx"));
        if !src.exists() {
            continue;
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let q = &meta["quantization"];
        let mut args = vec!["quantize".to_string(), src.display().to_string()];
        let out = out_dir.join(format!("{case}.onnx"));
        args.extend(["-o".into(), out.display().to_string(), "-q".into()]);
        args.extend([
            "--weight-type".into(),
            if q["weight_type"] == "QUInt8" {
                "uint8"
            } else {
                "int8"
            }
            .into(),
        ]);
        if q["per_channel"] == false {
            args.push("--per-tensor".into());
        }
        if q["reduce_range"] == true {
            args.push("--reduce-range".into());
        }
        // `--conv` is the default now; the flag stays accepted (.ci/run uses it).
        args.push(if conv { "--conv" } else { "--no-conv" }.into());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = kiln(&argv);
        assert!(o.status.success(), "{case}: {}", stderr(&o));

        let mine = load(&out);
        let theirs = load(&dir.join("model.onnx"));
        assert_eq!(op_counts(&mine), op_counts(&theirs), "{case}: ops");
        let (a, b) = (initializers(&mine, &out_dir), initializers(&theirs, &dir));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{case}: initializer names"
        );
        for (name, (shape, data)) in &b {
            let (s2, d2) = &a[name];
            assert_eq!(shape, s2, "{case}: {name} shape");
            assert_eq!(data, d2, "{case}: {name} differs from onnxruntime's");
        }
        // kiln compiles its own output into fused int8 layers.
        let c = kiln_codegen::compile_file(&out, &Default::default()).unwrap();
        let count = |op: &str| c.graph.nodes.iter().filter(|n| n.op == op).count();
        let theirs_ops = op_counts(&theirs);
        let n_of = |op: &str| theirs_ops.get(op).copied().unwrap_or(0);
        assert_eq!(count("QGemm"), n_of("MatMulInteger"), "{case}");
        assert_eq!(count("QConv"), n_of("ConvInteger"), "{case}");
        checked += 1;
    }
    assert!(checked >= 70, "only {checked} fixtures checked");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// Issue 22.2: by default every layer kiln runs fast in int8 is quantized, Conv included (as
/// onnxruntime's quantize_dynamic does), and the summary says per op type what was and was not
/// quantized and why. The counts come from the float model's own op types.
#[test]
fn quantize_defaults_cover_conv_and_summary_explains() {
    let src = root().join("tests/models/resnet_f32/model.onnx");
    let ops = op_counts(&load(&src));
    let (n_conv, n_gemm) = (ops["Conv"], ops["Gemm"]);
    assert!(n_conv > 1 && n_gemm == 1);
    let dir = scratch("quantize-conv-default");
    let out = dir.join("d.onnx");
    let o = kiln(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("quantized {} layer(s)", n_conv + n_gemm)),
        "{err}"
    );
    assert!(
        err.contains(&format!("  int8: {n_conv} Conv, 1 Gemm\n")),
        "{err}"
    );
    assert!(!err.contains("kept float"), "{err}");
    let q = op_counts(&load(&out));
    assert_eq!(q["ConvInteger"], n_conv);
    assert_eq!(q.get("Conv"), None);

    // `--conv` is still accepted and changes nothing; `--no-conv` keeps Conv float and says so.
    let out2 = dir.join("c.onnx");
    let o = kiln(&[
        "quantize",
        "--conv",
        src.to_str().unwrap(),
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
    let out3 = dir.join("n.onnx");
    let o = kiln(&[
        "quantize",
        "--no-conv",
        src.to_str().unwrap(),
        "-o",
        out3.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("quantized 1 layer(s)"), "{err}");
    assert!(
        err.contains(&format!("  kept float: {n_conv} Conv (")) && err.contains("): --no-conv"),
        "{err}"
    );
    assert_eq!(op_counts(&load(&out3))["Conv"], n_conv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quantize_defaults_exclude_and_output_name() {
    let dir = scratch("quantize-defaults");
    let src = dir.join("m.onnx");
    std::fs::copy(root().join("tests/models/mlp_gemm_f32/model.onnx"), &src).unwrap();
    let o = kiln(&["quantize", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("quantized 2 layer(s)"),
        "{}",
        stderr(&o)
    );
    // Default output name and settings: per-channel int8, symmetric.
    let q = load(&dir.join("m.quant.onnx"));
    let inits = initializers(&q, &dir);
    assert_eq!(inits["W1_scale"].0, vec![7]);
    assert!(matches!(&inits["W1_zero_point"].1, TensorData::I8(z) if z.iter().all(|&v| v == 0)));
    assert_eq!(op_counts(&q).get("Gemm"), None);

    let o = kiln(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        dir.join("ex.onnx").to_str().unwrap(),
        "--exclude",
        "gemm1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ex = load(&dir.join("ex.onnx"));
    assert_eq!(op_counts(&ex)["MatMulInteger"], 1);
    assert_eq!(op_counts(&ex)["Gemm"], 1);

    let o = kiln(&[
        "quantize",
        src.to_str().unwrap(),
        "--exclude",
        "no_such_node",
    ]);
    assert_clean_failure(&o, "unknown --exclude");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn inspect_reports_quantization_settings() {
    let cases = [
        // (fixture, granularity prefix, symmetric, 7-bit)
        ("mlp_a_q_s8", "per-tensor", true, false),
        ("mlp_a_q_s8_pc_rr", "per-channel", true, true),
        ("mlp_a_q_u8_pc", "per-channel", false, false),
        ("mlp_a_q_u8_rr", "per-tensor", false, true),
    ];
    for (case, gran, sym, rr) in cases {
        let path = format!("tests/models/{case}/model.onnx");
        let j = json(&kiln(&["inspect", &path, "--json"]));
        assert_eq!(
            j["quantization_forms"][0],
            "dynamic (DynamicQuantizeLinear)"
        );
        let layers = j["quantized_layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "{case}");
        for l in layers {
            assert_eq!(l["activation"], "uint8", "{case}");
            let wt = if case.contains("u8") { "uint8" } else { "int8" };
            assert_eq!(l["weight"], wt, "{case}");
            assert!(
                l["granularity"].as_str().unwrap().starts_with(gran),
                "{case}: {l}"
            );
            assert_eq!(l["symmetric"], sym, "{case}");
            assert_eq!(l["reduced_range_7bit"], rr, "{case}");
        }
        // The CLI's per-layer saturation rule agrees with the packer's proof in the compiler.
        let kl = j["kiln"]["layers"].as_array().unwrap();
        for (l, k) in layers.iter().zip(kl) {
            assert_eq!(l["node"], k["node"]);
            let safe = l["avx2_vpmaddubsw"] == "safe";
            assert_eq!(k["avx2_safe"], safe, "{case}: {l} vs {k}");
        }
        assert_eq!(j["kiln"]["compiles"], true);
        assert!(j["kiln"]["workspace_bytes"].as_u64().unwrap() > 0);
    }
    // int8 weights in [-64, 64] never saturate; the saturation fixture does.
    let j = json(&kiln(&[
        "inspect",
        "tests/models/mlp_a_q_s8_rr/model.onnx",
        "--json",
    ]));
    assert!(
        j["quantized_layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["avx2_vpmaddubsw"] == "safe")
    );
    let j = json(&kiln(&[
        "inspect",
        "tests/models/sat_q_s8/model.onnx",
        "--json",
        "--isa",
        "avx2",
    ]));
    assert_eq!(
        j["quantized_layers"][0]["avx2_vpmaddubsw"],
        "could_saturate"
    );
    assert!(
        j["kiln"]["layers"][0]["kernel"]
            .as_str()
            .unwrap()
            .contains("VPMADDWD")
    );
}

#[test]
fn inspect_text_report() {
    let o = kiln(&["inspect", "tests/models/block_ln_gelu_q_s8/model.onnx"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = stdout(&o);
    for want in [
        "model tests/models/block_ln_gelu_q_s8/model.onnx",
        "opsets ai.onnx 17",
        "quantization",
        "dynamic (DynamicQuantizeLinear)",
        "AVX2 VPMADDUBSW",
        "none: every op is one kiln compiles",
        "what kiln will do",
        "QuantizeDyn + QGemm",
        "decomposed LayerNorm",
        "GELU moved into a QGemm epilogue",
        "workspace",
    ] {
        assert!(t.contains(want), "missing `{want}` in\n{t}");
    }
    assert!(!t.contains('\x1b'), "no colour when piped");
    let o = kiln(&[
        "inspect",
        "tests/models/mlp_a_f32/model.onnx",
        "--color",
        "always",
    ]);
    assert!(stdout(&o).contains("\x1b[1m"));
    let j = json(&kiln(&[
        "inspect",
        "tests/models/mlp_a_f32/model.onnx",
        "--json",
    ]));
    assert_eq!(j["quantization_forms"][0], "none (float model)");
    assert!(
        j["kiln"]["fusions"][0]["fusion"]
            .as_str()
            .unwrap()
            .contains("SGemm")
    );
}

#[test]
fn inspect_bad_models() {
    // Undecodable files: a one-line error and exit 1.
    for m in ["not_onnx", "truncated"] {
        let o = kiln(&["inspect", &format!("tests/ui/models/{m}.onnx")]);
        assert_clean_failure(&o, m);
    }
    assert_clean_failure(
        &kiln(&["inspect", "tests/ui/models/missing.onnx"]),
        "missing",
    );
    // Decodable but not compilable: the report says why, exit 0.
    for m in [
        "bad_attr_type",
        "contrib_op",
        "dangling_input",
        "float16_input",
        "shape_mismatch",
        "unknown_op",
        "unknown_rank",
    ] {
        let j = json(&kiln(&[
            "inspect",
            &format!("tests/ui/models/{m}.onnx"),
            "--json",
        ]));
        assert_eq!(j["kiln"]["compiles"], false, "{m}");
        assert!(!j["kiln"]["error"].as_str().unwrap().is_empty());
    }
    let j = json(&kiln(&[
        "inspect",
        "tests/ui/models/contrib_op.onnx",
        "--json",
    ]));
    let u = &j["unsupported_ops"][0];
    assert_eq!(u["domain"], "com.microsoft");
    assert_eq!(u["op"], "QOrderedMatMul");
    assert_eq!(u["nodes"][0], "fc_quant");
    assert!(u["advice"].as_str().unwrap().contains("kiln quantize"));
    // (QOrderedMatMul is not yet recognised as a quantization form: inspect says "none".)
    let j = json(&kiln(&[
        "inspect",
        "tests/ui/models/unknown_op.onnx",
        "--json",
    ]));
    assert_eq!(j["unsupported_ops"][0]["op"], "Det");
    // Issue 22.3: say what to do now (the guide's section), not "open an issue".
    let advice = j["unsupported_ops"][0]["advice"].as_str().unwrap();
    assert!(advice.contains("update_model_dims"), "{advice}");
    assert!(advice.contains("\"Unsupported ops\""), "{advice}");
    assert!(!advice.contains("issue"), "{advice}");
    let err = j["kiln"]["error"].as_str().unwrap();
    assert!(err.contains("kiln inspect model.onnx"), "{err}");
    assert!(!err.contains("kiln supports:"), "{err}");
}

#[test]
fn generate_prints_the_compilers_module() {
    let path = root().join("tests/models/mlp_a_q_s8/model.onnx");
    let model = path.to_str().unwrap();
    let o = kiln(&["generate", model]);
    assert!(o.status.success(), "{}", stderr(&o));
    let c = kiln_codegen::compile_file(&path, &Default::default()).unwrap();
    let expected = c.source(Path::new(&c.blob_file_name())).unwrap();
    assert_eq!(stdout(&o), expected);
    syn::parse_file(&stdout(&o)).expect("generated code parses");

    let dir = scratch("generate");
    let out = dir.join("mlp.rs");
    let o = kiln(&["generate", model, "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let blob = dir.join(c.blob_file_name());
    assert_eq!(std::fs::read(&blob).unwrap(), c.blob());
    let arm = dir.join(c.blob_aarch64_file_name().expect("packed int8 weights"));
    assert_eq!(std::fs::read(&arm).unwrap(), c.blob_aarch64().unwrap());
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains(&blob.display().to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);

    // Errors: not compilable, unwritable output (and nothing written).
    assert_clean_failure(
        &kiln(&["generate", "tests/ui/models/unknown_op.onnx"]),
        "unknown op",
    );
    let missing = std::env::temp_dir().join("kiln-no-such-dir/x/mlp.rs");
    assert_clean_failure(
        &kiln(&["generate", model, "-o", missing.to_str().unwrap()]),
        "unwritable",
    );
    assert!(!missing.parent().unwrap().exists());
}

#[test]
fn quantize_errors_write_nothing() {
    let dir = scratch("quantize-errors");
    let out = dir.join("q.onnx");
    for m in ["not_onnx", "truncated", "missing"] {
        let o = kiln(&[
            "quantize",
            &format!("tests/ui/models/{m}.onnx"),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_clean_failure(&o, m);
    }
    let o = kiln(&[
        "quantize",
        "tests/models/mlp_a_f32/model.onnx",
        "-o",
        dir.join("no/such/dir/q.onnx").to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "unwritable");
    // Nothing written, not even a temporary file.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // Bad usage is exit 2 (clap).
    let o = kiln(&["quantize"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn round_trip_quantize_inspect_generate() {
    let dir = scratch("round-trip");
    let q = dir.join("ffn.quant.onnx");
    let o = kiln(&[
        "quantize",
        "tests/models/block_ln_gelu_f32/model.onnx",
        "-o",
        q.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j = json(&kiln(&["inspect", q.to_str().unwrap(), "--json"]));
    assert_eq!(
        j["quantization_forms"][0],
        "dynamic (DynamicQuantizeLinear)"
    );
    assert_eq!(j["kiln"]["compiles"], true);
    let layers = j["kiln"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert!(
        layers
            .iter()
            .all(|l| l["kind"].as_str().unwrap().starts_with("QGemm"))
    );
    let o = kiln(&["generate", q.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("qgemm"),
        "the generated code calls the int8 GEMM"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hostile_external_data_is_refused_by_every_command() {
    // The same rule as include_model!: no read outside the model's directory, never a device.
    let dir = scratch("hostile");
    let out = dir.join("out");
    let out = out.to_str().unwrap();
    let cases = [
        (
            "ext_traversal",
            "`../../../../../../etc/passwd` leaves the model's directory",
        ),
        ("ext_absolute", "`/etc/passwd` is an absolute path"),
        (
            "ext_symlink",
            "`ext_escape.bin` resolves (through a symbolic link)",
        ),
        ("ext_device", "`/dev/zero` is an absolute path"),
    ];
    for (m, why) in cases {
        let model = format!("tests/ui/models/{m}.onnx");
        for args in [
            vec!["inspect", &model],
            vec!["inspect", &model, "--json"],
            vec!["generate", &model, "-o", out],
            vec!["quantize", &model, "-o", out],
        ] {
            let o = kiln(&args);
            assert_clean_failure(&o, &format!("{args:?}"));
            let err = stderr(&o);
            assert!(
                err.contains("tensor `W`") && err.contains(why),
                "{args:?}: {err}"
            );
        }
    }
    // The user's opt-in widens the directories, but a device is still not a data file.
    let o = kiln(&[
        "generate",
        "tests/ui/models/ext_device.onnx",
        "--allow-data-dir",
        "/dev",
    ]);
    assert_clean_failure(&o, "device");
    assert!(
        stderr(&o).contains("is a device, not a regular file"),
        "{}",
        stderr(&o)
    );
    let o = kiln(&[
        "inspect",
        "tests/ui/models/mlp.onnx",
        "--allow-data-dir",
        "no/such/dir",
    ]);
    assert_clean_failure(&o, "bad --allow-data-dir");
    assert!(stderr(&o).contains("is not a directory"), "{}", stderr(&o));
    // Nothing was written.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let _ = std::fs::remove_dir_all(&dir);
}
