//! kiln's side of the WebAssembly benchmark: the bench models compiled for wasm32-wasip1, run by
//! `bench/wasm/run.mjs` under Node's WASI next to onnxruntime-web (see docs/benchmarks.md).
//!
//! ```text
//! kiln-bench-wasm list quick|all                   # case names, one per line
//! kiln-bench-wasm inputs CASE DIR                  # writes DIR/<input>.bin, prints JSON meta
//! kiln-bench-wasm run CASE SAMPLES SAMPLE_MS OUT   # times CASE, prints JSON; OUT: output f32
//! ```
//! The inputs are generated here (the same generators as the native bench) and handed to
//! onnxruntime-web as files, so both peers run the same bytes. `KILN_ISA` picks the kernel
//! family as for any kiln model.

/// Milliseconds since the first call (wall clock, like the native bench: run it on a quiet
/// machine; process CPU time under Node also counts V8's and the WASI host's helper threads).
fn now_ms() -> f64 {
    static T0: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    T0.get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
        * 1e3
}

/// One model call; returns the compared output (copied only when asked).
type Runner = Box<dyn FnMut(bool) -> Vec<f32>>;

enum Input {
    F32(Vec<f32>),
    #[cfg_attr(not(kiln_minilm), allow(dead_code))]
    I64(Vec<i64>),
}

struct Case {
    name: String,
    /// model file, relative to the repository root
    onnx: &'static str,
    /// name of the output compared with onnxruntime-web's
    output: &'static str,
    inputs: Vec<(&'static str, Vec<usize>, Input)>,
    make: Box<dyn Fn() -> Runner>,
}

/// Deterministic inputs in [-2, 2) (the native bench's `pseudo_random`).
fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

#[cfg(kiln_minilm)]
#[allow(clippy::all)]
mod minilm {
    kiln::include_model!("../../models/minilm/q_default.onnx");
}

#[cfg(kiln_minilm)]
fn minilm_case(batch: usize, seq: usize) -> Case {
    // [CLS] … [SEP] per row, full attention mask (the native bench's `minilm_inputs`).
    let ids: Vec<i64> = (0..batch * seq)
        .map(|i| match i % seq {
            0 => 101,
            j if j == seq - 1 => 102,
            j => 1000 + ((j * 37 + i / seq * 11) % 20000) as i64,
        })
        .collect();
    let mask = vec![1i64; batch * seq];
    let shape = vec![batch, seq];
    let (ids2, mask2, shape2) = (ids.clone(), mask.clone(), shape.clone());
    Case {
        name: format!("minilm_q_b{batch}_s{seq}"),
        onnx: "models/minilm/q_default.onnx",
        output: "onnx::Shape_422",
        inputs: vec![
            ("input_ids", shape.clone(), Input::I64(ids)),
            ("attention_mask", shape, Input::I64(mask)),
        ],
        make: Box::new(move || -> Runner {
            let mut model = minilm::Model::new();
            let (ids, mask, shape) = (ids2.clone(), mask2.clone(), shape2.clone());
            Box::new(move |copy| {
                let out = model
                    .run(minilm::Inputs {
                        input_ids: kiln::TensorRef::new(&ids, &shape).unwrap(),
                        attention_mask: kiln::TensorRef::new(&mask, &shape).unwrap(),
                    })
                    .unwrap();
                let y = out.onnx_shape_422.data();
                std::hint::black_box(y);
                if copy { y.to_vec() } else { Vec::new() }
            })
        }),
    }
}

macro_rules! cnn_models {
    ($($name:ident => $path:literal, $out:ident, $out_name:literal, $cfg:meta;)*) => {
        $(
            #[cfg($cfg)]
            #[allow(clippy::all)]
            mod $name {
                kiln::include_model!($path);
            }
        )*
        /// (name, model file relative to the repository, output name, runner factory).
        #[allow(clippy::type_complexity)]
        fn cnn_models() -> Vec<(&'static str, &'static str, &'static str, fn(Vec<f32>, Vec<usize>) -> Runner)> {
            #[allow(unused_mut)]
            let mut v: Vec<(&'static str, &'static str, &'static str, fn(Vec<f32>, Vec<usize>) -> Runner)> = Vec::new();
            $(
                #[cfg($cfg)]
                v.push((stringify!($name), &$path[6..], $out_name, |x: Vec<f32>, shape: Vec<usize>| -> Runner {
                    let mut model = $name::Model::new();
                    Box::new(move |copy| {
                        let t = kiln::TensorRef::new(&x, &shape).unwrap();
                        let out = model.run($name::Inputs { x: t }).unwrap();
                        let y = out.$out.data();
                        std::hint::black_box(y);
                        if copy { y.to_vec() } else { Vec::new() }
                    })
                }));
            )*
            v
        }
    };
}

cnn_models! {
    mobilenet_v2_f32 => "../../tests/models/mobilenet_v2_f32/model.onnx", y, "y", all();
    mobilenet_v2_qc_s8 => "../../tests/models/mobilenet_v2_qc_s8/model.onnx", y, "y", all();
    resnet_f32 => "../../tests/models/resnet_f32/model.onnx", y, "y", all();
    resnet_qc_s8 => "../../tests/models/resnet_qc_s8/model.onnx", y, "y", all();
    ppocr_det_f32 => "../../models/ppocr/det.onnx", sigmoid_0_tmp_0, "sigmoid_0.tmp_0", kiln_ppocr;
    ppocr_det_qc_s8 => "../../models/ppocr/det.qc.onnx", sigmoid_0_tmp_0, "sigmoid_0.tmp_0", kiln_ppocr;
    ppocr_cls_f32 => "../../models/ppocr/cls.onnx", save_infer_model_scale_0_tmp_1, "save_infer_model/scale_0.tmp_1", kiln_ppocr;
    ppocr_cls_qc_s8 => "../../models/ppocr/cls.qc.onnx", save_infer_model_scale_0_tmp_1, "save_infer_model/scale_0.tmp_1", kiln_ppocr;
}

/// Input shape of each CNN (the native bench's `cnn_shape`; quick: small images).
fn cnn_shape(name: &str, all: bool) -> Vec<usize> {
    let family = name.split('_').take(2).collect::<Vec<_>>().join("_");
    match (family.as_str(), all) {
        ("ppocr_det", true) => vec![1, 3, 320, 480],
        ("ppocr_det", false) => vec![1, 3, 64, 96],
        ("ppocr_cls", _) => vec![1, 3, 48, 192],
        (_, true) => vec![1, 3, 224, 224],
        (_, false) => vec![1, 3, 64, 64],
    }
}

fn cases(all: bool) -> Vec<Case> {
    let mut v = Vec::new();
    #[cfg(kiln_minilm)]
    {
        v.push(minilm_case(1, 128));
        if all {
            v.push(minilm_case(1, 16));
        }
    }
    for (name, onnx, output, make) in cnn_models() {
        // The quick mode keeps the int8 networks only.
        if !all && name.ends_with("_f32") {
            continue;
        }
        let shape = cnn_shape(name, all);
        let x: Vec<f32> = pseudo_random(shape.iter().product(), 11)
            .into_iter()
            .map(|v| v * 0.5)
            .collect();
        let dims = shape.iter().map(|d| d.to_string()).collect::<Vec<_>>();
        let (x2, shape2) = (x.clone(), shape.clone());
        v.push(Case {
            name: format!("{name}_{}", dims.join("x")),
            onnx,
            output,
            inputs: vec![("x", shape, Input::F32(x))],
            make: Box::new(move || make(x2.clone(), shape2.clone())),
        });
    }
    v
}

fn find(name: &str) -> Case {
    cases(true)
        .into_iter()
        .chain(cases(false))
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("kiln-bench-wasm: no case {name}"))
}

fn write_inputs(case: &Case, dir: &str) {
    let mut meta = Vec::new();
    for (name, shape, input) in &case.inputs {
        let file = format!(
            "{dir}/{}.bin",
            name.replace(|c: char| !c.is_alphanumeric(), "_")
        );
        let (bytes, dtype): (Vec<u8>, &str) = match input {
            Input::F32(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), "float32"),
            Input::I64(v) => (v.iter().flat_map(|x| x.to_le_bytes()).collect(), "int64"),
        };
        std::fs::write(&file, bytes).expect("write input");
        meta.push(format!(
            r#"{{"name":"{name}","shape":{shape:?},"dtype":"{dtype}","file":"{file}"}}"#
        ));
    }
    println!(
        r#"{{"onnx":"{}","output":"{}","inputs":[{}]}}"#,
        case.onnx,
        case.output,
        meta.join(",")
    );
}

/// Warms up (≥ 100 ms and 2 calls), picks `inner` calls per sample so a sample lasts about
/// `sample_ms`, then prints the per-call mean of each sample as JSON.
fn run(case: &Case, samples: usize, sample_ms: f64, out: &str) {
    let mut f = (case.make)();
    let y = f(true);
    std::fs::write(
        out,
        y.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .expect("write output");
    let t = now_ms();
    let mut calls = 1;
    while calls < 2 || now_ms() - t < 100.0 {
        f(false);
        calls += 1;
    }
    let per_call = (now_ms() - t) / calls as f64;
    let inner = ((sample_ms / per_call).round() as usize).max(1);
    let ms: Vec<String> = (0..samples)
        .map(|_| {
            let t = now_ms();
            for _ in 0..inner {
                f(false);
            }
            format!("{:.4}", (now_ms() - t) / inner as f64)
        })
        .collect();
    println!(
        r#"{{"isa":"{}","inner":{inner},"samples":[{}]}}"#,
        kiln::Isa::current(),
        ms.join(",")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "list" => {
            for c in cases(arg(2) == "all") {
                println!("{}", c.name);
            }
        }
        "inputs" => write_inputs(&find(arg(2)), arg(3)),
        "run" => run(
            &find(arg(2)),
            arg(3).parse().expect("SAMPLES"),
            arg(4).parse().expect("SAMPLE_MS"),
            arg(5),
        ),
        _ => {
            eprintln!(
                "usage: kiln-bench-wasm list quick|all | inputs CASE DIR | run CASE SAMPLES SAMPLE_MS OUT"
            );
            std::process::exit(2);
        }
    }
}
