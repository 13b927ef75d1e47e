//! kiln-bench: kiln vs onnxruntime vs RTen on the same model files and the same inputs.
//!
//! ```text
//! cargo run --release -- all                  # full run → bench/results/latest.{md,json,svg}
//! cargo run --release -- quick                # CI smoke run → bench/results/quick.{md,json,svg}
//! cargo run --release -- roofline             # only the machine-limit microbenchmarks
//! cargo run --release -- ops --threads 1      # single vision ops → bench/results/ops.{md,json,svg}
//!     --threads 1,2        thread counts (default: 1 and all cores)
//!     --skip ort|rten      leave a peer out (repeatable); otherwise a missing peer is an error
//!     --only SUBSTR        only cases whose name contains SUBSTR (writes results/partial.*)
//! cargo run --release -- wasm quick|all       # kiln wasm32 under Node vs onnxruntime-web (wasm.rs)
//! ```
//! Method (docs/benchmarks.md): per case and thread count, each peer is loaded once and warmed
//! up; then `rounds` rounds each take `samples_per_round` samples of kiln, RTen and onnxruntime
//! in rotating order, so slow phases of a noisy machine hit every peer alike. A sample times
//! `inner` back-to-back calls (chosen so a sample lasts ≥ a few ms) and records the mean per call;
//! the table shows the median and min–max of the samples.
mod cases;
mod ort;
mod report;
mod roofline;
mod wasm;

use cases::{Case, GemmFiles, Input, Runner};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Quick,
    All,
    /// only the microbenchmarks
    Roofline,
    /// only the single-op models (bench/op_models), no roofline
    Ops,
}

struct Settings {
    warm_ms: f64,
    sample_ms: f64,
    rounds: usize,
    samples_per_round: usize,
    roofline_trials: usize,
}

impl Mode {
    fn settings(self) -> Settings {
        match self {
            Mode::Quick => Settings {
                warm_ms: 20.0,
                sample_ms: 1.0,
                rounds: 2,
                samples_per_round: 3,
                roofline_trials: 8,
            },
            Mode::All | Mode::Roofline | Mode::Ops => Settings {
                warm_ms: 200.0,
                sample_ms: 3.0,
                rounds: 5,
                samples_per_round: 6,
                roofline_trials: 30,
            },
        }
    }
}

/// (m, k, n) of the raw int8 GEMM cases.
const GEMMS_ALL: &[(usize, usize, usize)] = &[
    (1, 768, 768),
    (1, 4096, 4096),
    // 64 MiB of weights: larger than the 32 MiB L3, so the GEMV streams from DRAM.
    (1, 8192, 8192),
    (16, 384, 1536),
    (16, 1536, 384),
    (128, 384, 1536),
    (128, 768, 768),
    (512, 384, 384),
    (512, 1536, 4096),
];
const GEMMS_QUICK: &[(usize, usize, usize)] = &[(1, 768, 768), (16, 384, 1536)];
const MLPS_ALL: &[&str] = &[
    "mlp_a_q_s8",
    "mlp_a_f32",
    "mlp_c_q_s8",
    "mlp_c_f32",
    "mlp_big_k_q_s8",
    "mlp_big_k_f32",
];
const MLPS_QUICK: &[&str] = &["mlp_c_q_s8", "mlp_big_k_q_s8"];

pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
    pub inner: usize,
}

impl Stats {
    fn new(mut ms: Vec<f64>, inner: usize) -> Stats {
        let samples = ms.clone();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        Stats {
            median,
            min: ms[0],
            max: ms[n - 1],
            samples,
            inner,
        }
    }
}

/// A peer's outcome for one row: measured, skipped by request, or failed (with the reason).
pub enum PeerResult {
    Ok(Stats),
    Skipped,
    Failed(String),
}

pub struct Row {
    pub case: String,
    pub threads: usize,
    pub kiln: Stats,
    pub ort: PeerResult,
    pub rten: PeerResult,
    pub macs: Option<u64>,
    pub weight_bytes: Option<u64>,
    pub kernel: Option<&'static str>,
    /// kiln's output against onnxruntime's (single-op cases): "bit-identical" or the relative
    /// difference of the sums
    pub check: Option<String>,
}

struct Args {
    mode: Mode,
    threads: Vec<usize>,
    skip_ort: bool,
    skip_rten: bool,
    only: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: kiln-bench (all|quick|roofline|ops) [--threads 1,2] [--skip ort|rten]... [--only SUBSTR]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let mut mode = None;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads = if cores > 1 { vec![1, cores] } else { vec![1] };
    let (mut skip_ort, mut skip_rten, mut only) = (false, false, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "all" => mode = Some(Mode::All),
            "quick" => mode = Some(Mode::Quick),
            "roofline" => mode = Some(Mode::Roofline),
            "ops" => mode = Some(Mode::Ops),
            "--threads" => {
                let v = it.next().unwrap_or_else(|| usage());
                threads = v
                    .split(',')
                    .map(|s| s.trim().parse().unwrap_or_else(|_| usage()))
                    .collect();
                if threads.is_empty() || threads.contains(&0) {
                    usage()
                }
            }
            "--skip" => match it.next().as_deref() {
                Some("ort") | Some("onnxruntime") => skip_ort = true,
                Some("rten") => skip_rten = true,
                _ => usage(),
            },
            "--only" => only = Some(it.next().unwrap_or_else(|| usage())),
            "-h" | "--help" => usage(),
            _ => {
                eprintln!("unknown argument `{a}`");
                usage()
            }
        }
    }
    Args {
        mode: mode.unwrap_or_else(|| usage()),
        threads,
        skip_ort,
        skip_rten,
        only,
    }
}

pub(crate) fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("wasm") {
        let mode = std::env::args().nth(2).unwrap_or_else(|| usage());
        return wasm::main(&bench_dir(), &mode);
    }
    let args = parse_args();
    let st = args.mode.settings();
    let bench = bench_dir();
    let root = bench.parent().expect("repo root").to_path_buf();
    let data = bench.join("target/bench-data");
    std::fs::create_dir_all(&data).expect("create bench/target/bench-data");
    let isa = kiln::Isa::current();
    let machine = report::machine();
    eprintln!(
        "kiln-bench {:?}: {machine}, kiln ISA {isa}, threads {:?}",
        args.mode, args.threads
    );

    if args.mode == Mode::Roofline {
        let roof = roofline::measure(&args.threads, st.roofline_trials);
        println!("{roof:#?}");
        return;
    }
    let mut ort = if args.skip_ort {
        None
    } else {
        match ort::Ort::start(&bench.join("ort_driver.py")) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!(
                    "error: onnxruntime peer unavailable: {e}\n  install it with \
                     `python3 -m pip install -r tools/requirements.txt` (or set \
                     KILN_BENCH_PYTHON), or pass `--skip ort`"
                );
                std::process::exit(1);
            }
        }
    };
    let ort_version = ort.as_ref().map(|o| o.version.clone());

    let t0 = Instant::now();
    let keep = |name: &str| args.only.as_deref().is_none_or(|s| name.contains(s));
    let mut all: Vec<Result<Case, (String, String)>> = Vec::new();
    let roof = if args.mode == Mode::Ops {
        all.extend(
            cases::op_cases()
                .into_iter()
                .filter(|c| keep(&c.name))
                .map(Ok),
        );
        roofline::Roofline::default()
    } else {
        eprintln!("roofline microbenchmarks …");
        let roof = roofline::measure(&args.threads, st.roofline_trials);
        eprintln!(
            "  VPDPBUSD zmm {} | AVX-VNNI ymm {} | AVX2 maddubs {} GMAC/s per core; multi-thread {:?}; read {} GB/s ({:.1} s)",
            report::opt(roof.vnni512),
            report::opt(roof.avxvnni),
            report::opt(roof.avx2),
            roof.compute_mt,
            roof.read_bw
                .iter()
                .map(|(t, b)| format!("{b:.1} ({t}t)"))
                .collect::<Vec<_>>()
                .join(", "),
            t0.elapsed().as_secs_f64()
        );
        roof
    };

    // ---- cases
    let mlps = if args.mode == Mode::Ops {
        &[][..]
    } else if args.mode == Mode::All {
        MLPS_ALL
    } else {
        MLPS_QUICK
    };
    for &name in mlps.iter().filter(|n| keep(n)) {
        all.push(cases::mlp_case(&root, name).map_err(|e| (name.to_string(), e)));
    }
    let gemms = if args.mode == Mode::Ops {
        &[][..]
    } else if args.mode == Mode::All {
        GEMMS_ALL
    } else {
        GEMMS_QUICK
    };
    for &(m, k, n) in gemms {
        let name = format!("gemm_{m}x{k}x{n}");
        if !keep(&name) {
            continue;
        }
        all.push(
            gemm_files(&bench, m, k, n)
                .and_then(|f| cases::gemm_case(f, isa))
                .map_err(|e| (name, e)),
        );
    }
    let minilm = if args.mode == Mode::Ops {
        &[][..]
    } else if args.mode == Mode::All {
        cases::MINILM_ALL
    } else {
        cases::MINILM_QUICK
    };
    let cnns = if args.mode == Mode::Ops {
        Vec::new()
    } else {
        cases::cnn_cases(&root, args.mode == Mode::All)
    };
    all.extend(cnns.into_iter().filter(|c| keep(&c.name)).map(Ok));
    all.extend(
        cases::minilm_cases(&root, minilm)
            .into_iter()
            .filter(|c| keep(&c.name))
            .map(Ok),
    );

    // ---- measure
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for c in all {
        let c = match c {
            Ok(c) => c,
            Err((name, e)) => {
                eprintln!("FAILED {name}: {e}");
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let inputs = match write_inputs(&data, &c) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: {e}", c.name));
                continue;
            }
        };
        for &t in &args.threads {
            let row = measure(&c, t, &st, ort.as_mut(), !args.skip_rten, &inputs);
            eprintln!("{}", report::line(&row, &roof, isa));
            if let Some(e) = row
                .check
                .as_deref()
                .and_then(|c| c.strip_prefix("MISMATCH"))
            {
                failures.push(format!("{} output differs from onnxruntime's:{e}", c.name));
            }
            for (peer, r) in [("onnxruntime", &row.ort), ("rten", &row.rten)] {
                if let PeerResult::Failed(e) = r {
                    failures.push(format!("{} ({t} threads) {peer}: {e}", c.name));
                }
            }
            rows.push(row);
        }
    }
    drop(ort);

    let meta = report::Meta {
        mode: format!("{:?}", args.mode).to_lowercase(),
        machine,
        date: report::today(),
        isa: isa.to_string(),
        ort_version,
        rten_version: (!args.skip_rten).then(|| "0.27".to_string()),
        settings: format!(
            "{} rounds × {} samples per peer, ≥ {} ms per sample, {} ms warm-up",
            st.rounds, st.samples_per_round, st.sample_ms, st.warm_ms
        ),
        failures: failures.clone(),
    };
    // A partial run (`--only`) never replaces the full tables.
    let stem = match args.mode {
        _ if args.only.is_some() => "partial",
        Mode::All => "latest",
        Mode::Ops => "ops",
        _ => "quick",
    };
    let out = bench.join("results");
    std::fs::create_dir_all(&out).expect("create bench/results");
    let md = report::markdown(&meta, &rows, &roof, isa);
    std::fs::write(out.join(format!("{stem}.md")), &md).expect("write md");
    std::fs::write(
        out.join(format!("{stem}.json")),
        report::json(&meta, &rows, &roof, isa),
    )
    .expect("write json");
    std::fs::write(out.join(format!("{stem}.svg")), report::svg(&meta, &rows)).expect("write svg");
    println!("{md}");
    eprintln!(
        "wrote bench/results/{stem}.{{md,json,svg}} in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    if !failures.is_empty() {
        eprintln!("{} failure(s):", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
        std::process::exit(1);
    }
}

/// Builds (once; cached under bench/target/gemm-models) the one-MatMul model of a GEMM case.
fn gemm_files(bench: &Path, m: usize, k: usize, n: usize) -> Result<GemmFiles, String> {
    let dir = bench.join(format!("target/gemm-models/{m}x{k}x{n}"));
    let meta_path = dir.join("meta.json");
    if !meta_path.exists() {
        eprintln!("building {m}x{k}x{n} with bench/make_gemm_model.py …");
        let st = std::process::Command::new(ort::python())
            .arg(bench.join("make_gemm_model.py"))
            .args([
                "--m",
                &m.to_string(),
                "--k",
                &k.to_string(),
                "--n",
                &n.to_string(),
            ])
            .arg("--out")
            .arg(&dir)
            .status()
            .map_err(|e| format!("cannot run {}: {e}", ort::python()))?;
        if !st.success() {
            return Err("bench/make_gemm_model.py failed (it needs onnx and onnxruntime)".into());
        }
    }
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&meta_path).map_err(|e| format!("{}: {e}", meta_path.display()))?,
    )
    .map_err(|e| e.to_string())?;
    Ok(GemmFiles {
        m,
        k,
        n,
        w_scale: meta["w_scale"].as_f64().ok_or("meta: w_scale")? as f32,
        w_zero_point: meta["w_zero_point"].as_i64().ok_or("meta: w_zero_point")? as i32,
        dir,
    })
}

/// Writes the case's inputs as .npy for onnxruntime; returns (name, path) pairs.
fn write_inputs(data: &Path, c: &Case) -> Result<Vec<(String, PathBuf)>, String> {
    let dir = data.join(&c.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    c.inputs
        .iter()
        .map(|(name, shape, v)| {
            let p = dir.join(format!("{name}.npy"));
            let bytes = match v {
                Input::F32(x) => report::npy("<f4", shape, x.iter().flat_map(|v| v.to_le_bytes())),
                Input::I64(x) => report::npy("<i8", shape, x.iter().flat_map(|v| v.to_le_bytes())),
                Input::U8(x) => report::npy("|u1", shape, x.iter().copied()),
            };
            std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok((name.clone(), p))
        })
        .collect()
}

/// Runs `f` for `warm_ms` (at least 3 calls) and returns the per-call estimate in ms.
fn warm_up(f: &mut Runner, warm_ms: f64) -> f64 {
    let t0 = Instant::now();
    let mut calls = 0u64;
    while calls < 3 || t0.elapsed().as_secs_f64() * 1e3 < warm_ms {
        f();
        calls += 1;
    }
    t0.elapsed().as_secs_f64() * 1e3 / calls as f64
}

fn inner_for(per_call_ms: f64, sample_ms: f64) -> usize {
    ((sample_ms / per_call_ms.max(1e-6)).ceil() as usize).clamp(1, 1_000_000)
}

fn samples(f: &mut Runner, n: usize, inner: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..inner {
                f();
            }
            t0.elapsed().as_secs_f64() * 1e3 / inner as f64
        })
        .collect()
}

/// The RTen side of a case: the same .onnx file, the same input values, `threads` threads.
fn rten_runner(c: &Case, pool: Arc<rten::ThreadPool>) -> Result<Runner, String> {
    use rten::{Value, ValueOrView};
    use rten_tensor::Tensor;
    let model = rten::Model::load_file(&c.onnx).map_err(|e| format!("load: {e}"))?;
    let mut inputs = Vec::new();
    for (name, shape, v) in &c.inputs {
        let id = model
            .node_id(name)
            .map_err(|e| format!("input {name}: {e}"))?;
        let value: Value = match v {
            Input::F32(x) => Tensor::from_data(shape.as_slice(), x.clone()).into(),
            Input::U8(x) => Tensor::from_data(shape.as_slice(), x.clone()).into(),
            // RTen represents int64 tensors as i32.
            Input::I64(x) => {
                let v: Vec<i32> = x.iter().map(|&v| v as i32).collect();
                Tensor::from_data(shape.as_slice(), v).into()
            }
        };
        inputs.push((id, value));
    }
    let outputs = model.output_ids().to_vec();
    let opts = rten::RunOptions::default().with_thread_pool(Some(pool));
    let run = move |model: &rten::Model| {
        let ins: Vec<(rten::NodeId, ValueOrView)> = inputs
            .iter()
            .map(|(id, v)| (*id, ValueOrView::from(v)))
            .collect();
        model.run(ins, &outputs, Some(opts.clone()))
    };
    run(&model).map_err(|e| format!("run: {e}"))?;
    Ok(Box::new(move || {
        let out = run(&model).expect("rten run");
        std::hint::black_box(out);
    }))
}

/// One row: kiln, RTen and onnxruntime on case `c` with `t` threads, interleaved in rounds.
fn measure(
    c: &Case,
    t: usize,
    st: &Settings,
    mut ort: Option<&mut ort::Ort>,
    with_rten: bool,
    inputs: &[(String, PathBuf)],
) -> Row {
    let kiln_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(t)
        .thread_name(|i| format!("kiln-{i}"))
        .build()
        .expect("rayon pool");
    let rten_pool = Arc::new(rten::ThreadPool::with_num_threads(t));

    // kiln: build and warm up inside its pool (rayon's thread count = `t`).
    let mut kiln = (c.make_kiln)();
    let kiln_call = kiln_pool.install(|| warm_up(&mut kiln, st.warm_ms));
    let kiln_inner = inner_for(kiln_call, st.sample_ms);

    let mut rten: Result<(Runner, usize), String> = if with_rten {
        rten_runner(c, rten_pool.clone()).map(|mut r| {
            let call = rten_pool.run(|| warm_up(&mut r, st.warm_ms));
            (r, inner_for(call, st.sample_ms))
        })
    } else {
        Err(String::new())
    };

    let key = format!("{}@{t}", c.name);
    let mut check = None;
    let mut ort_state: Result<usize, String> = match ort.as_deref_mut() {
        None => Err(String::new()),
        Some(o) => o.load(&key, &c.onnx, inputs, t).and_then(|reply| {
            if let Some(k) = &c.output {
                check = Some(compare_output(k, &reply["checks"][0]));
            }
            // Calibrate: a few single calls after a short warm-up.
            let ms = o.time(&key, 3, 3, 1)?;
            let call = Stats::new(ms, 1).median;
            let warm = ((st.warm_ms / call.max(1e-6)) as usize).clamp(3, 200_000);
            o.time(&key, warm, 1, 1)?;
            Ok(inner_for(call, st.sample_ms))
        }),
    };

    let (mut k_ms, mut r_ms, mut o_ms) = (Vec::new(), Vec::new(), Vec::new());
    let spr = st.samples_per_round;
    for round in 0..st.rounds {
        for slot in 0..3 {
            match (round + slot) % 3 {
                0 => k_ms.extend(kiln_pool.install(|| samples(&mut kiln, spr, kiln_inner))),
                1 => {
                    if let Ok((r, inner)) = rten.as_mut() {
                        let inner = *inner;
                        r_ms.extend(rten_pool.run(|| samples(r, spr, inner)));
                    }
                }
                _ => {
                    if let (Some(o), Ok(inner)) = (ort.as_deref_mut(), ort_state.as_ref()) {
                        match o.time(&key, 0, spr, *inner) {
                            Ok(ms) => o_ms.extend(ms),
                            Err(e) => ort_state = Err(e),
                        }
                    }
                }
            }
        }
    }
    if let Some(o) = ort.as_deref_mut() {
        o.unload(&key);
    }
    let peer = |state: Result<usize, String>, ms: Vec<f64>, asked: bool| match state {
        Ok(inner) if !ms.is_empty() => PeerResult::Ok(Stats::new(ms, inner)),
        Ok(_) => PeerResult::Failed("no samples".into()),
        Err(_) if !asked => PeerResult::Skipped,
        Err(e) => PeerResult::Failed(e),
    };
    let rten_state = rten.map(|(_, inner)| inner);
    Row {
        case: c.name.clone(),
        threads: t,
        kiln: Stats::new(k_ms, kiln_inner),
        ort: peer(ort_state, o_ms, ort.is_some()),
        rten: peer(rten_state, r_ms, with_rten),
        macs: c.macs,
        weight_bytes: c.weight_bytes,
        kernel: c.kernel,
        check,
    }
}

/// kiln's output fingerprint against onnxruntime's: "bit-identical", "≈ (sums differ by r)"
/// when the sums agree to 1e-5 of the sum of magnitudes, else "MISMATCH …".
fn compare_output(k: &cases::OutCheck, o: &serde_json::Value) -> String {
    let (Some(hash), Some(sum), Some(abs)) =
        (o["hash"].as_u64(), o["sum"].as_f64(), o["abs"].as_f64())
    else {
        return "MISMATCH: no fingerprint from onnxruntime".into();
    };
    if hash == k.hash {
        return "bit-identical".into();
    }
    let rel = (k.sum - sum).abs().max((k.abs - abs).abs()) / abs.max(1e-30);
    if rel <= 1e-5 {
        format!("≈ (sums differ by {rel:.1e})")
    } else {
        format!("MISMATCH: sum {} vs {sum}, Σ|y| {} vs {abs}", k.sum, k.abs)
    }
}
