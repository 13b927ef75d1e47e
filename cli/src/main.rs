//! `kiln`: inspect quantized ONNX models, print the Rust kiln generates for them, and quantize
//! float models without Python. See docs/guide.md.
#![allow(clippy::result_large_err)]

mod inspect;
mod model;
mod quantize;
mod status;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use model::{CliError, CliResult, ModelFile, write_atomic};

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Inspect, compile and quantize ONNX models for kiln",
    after_help = "Exit status: 0 on success, 1 on an error (one line on stderr), 2 on bad usage."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Report what a model is, how it was quantized, and what kiln will make of it.
    Inspect {
        model: PathBuf,
        /// Machine-readable JSON on stdout instead of the text report.
        #[arg(long)]
        json: bool,
        /// Colour in the text report (auto: only on a terminal, and not with NO_COLOR set).
        #[arg(long, value_enum, default_value_t = Color::Auto)]
        color: Color,
        /// Report kernels for this ISA instead of this CPU's (scalar, avx2, avxvnni, avx512vnni).
        #[arg(long, value_parser = parse_isa)]
        isa: Option<kiln_runtime::Isa>,
        /// Also read external tensor data from DIR (repeatable). By default only regular files
        /// inside the model's directory are read; see docs/guide.md.
        #[arg(long, value_name = "DIR")]
        allow_data_dir: Vec<PathBuf>,
    },
    /// Print the Rust module kiln generates for a model (what include_model! expands to).
    Generate {
        model: PathBuf,
        /// Write the module to FILE (and the weight blobs beside it) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Also write the weight blobs into DIR (default with -o: FILE's directory).
        #[arg(long, value_name = "DIR")]
        blob_dir: Option<PathBuf>,
        /// Path of the runtime crate in the generated code.
        #[arg(long, default_value = "::kiln::runtime")]
        runtime_path: String,
        /// Also read external tensor data from DIR (repeatable). By default only regular files
        /// inside the model's directory are read; see docs/guide.md.
        #[arg(long, value_name = "DIR")]
        allow_data_dir: Vec<PathBuf>,
    },
    /// Dynamically quantize a float model's MatMul, Gemm and Conv layers (int8 weights, u8
    /// activations).
    Quantize {
        model: PathBuf,
        /// Output file (default: MODEL with the extension .quant.onnx).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// One scale per weight tensor instead of one per output column.
        #[arg(long)]
        per_tensor: bool,
        /// 7-bit weights (onnxruntime's reduce_range). kiln does not need it; see docs/guide.md.
        #[arg(long)]
        reduce_range: bool,
        /// Weight type: int8 (symmetric) or uint8 (asymmetric).
        #[arg(long, value_enum, default_value_t = WeightTypeArg::Int8)]
        weight_type: WeightTypeArg,
        /// Leave Gemm nodes in float (by default they become MatMul + Add and are quantized).
        #[arg(long)]
        no_gemm: bool,
        /// Quantize Conv layers too (the default; ConvInteger, weights per tensor as onnxruntime
        /// needs). Accepted for older scripts.
        #[arg(long, conflicts_with = "no_conv")]
        conv: bool,
        /// Leave Conv layers in float (only MatMul/Gemm are quantized).
        #[arg(long)]
        no_conv: bool,
        /// Node names to leave in float (repeatable, or comma separated).
        #[arg(long, value_name = "NODE", num_args = 1.., value_delimiter = ',')]
        exclude: Vec<String>,
        /// No summary on stderr.
        #[arg(short, long)]
        quiet: bool,
        /// Also read external tensor data from DIR (repeatable). By default only regular files
        /// inside the model's directory are read; see docs/guide.md.
        #[arg(long, value_name = "DIR")]
        allow_data_dir: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum WeightTypeArg {
    Int8,
    Uint8,
}

fn parse_isa(s: &str) -> Result<kiln_runtime::Isa, String> {
    kiln_runtime::Isa::parse(s).ok_or_else(|| "expected scalar, avx2, avxvnni or avx512vnni".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code as u8)
        }
    }
}

fn run(cli: Cli) -> CliResult<()> {
    match cli.cmd {
        Cmd::Inspect {
            model,
            json,
            color,
            isa,
            allow_data_dir,
        } => {
            let status = status::Status::for_model(&model);
            status.phase("reading");
            let mf = ModelFile::read(&model, &allow_data_dir)?;
            // `--isa` describes a family even if this CPU lacks it (a report, not a run).
            let isa = isa.unwrap_or_else(kiln_runtime::Isa::current);
            status.phase("analysing and compiling");
            let report = inspect::inspect(&mf, isa);
            status.done();
            let text = if json {
                let mut s = serde_json::to_string_pretty(&inspect::to_json(&report))
                    .map_err(|e| CliError::new(format!("internal: {e}")))?;
                s.push('\n');
                s
            } else {
                let color = match color {
                    Color::Always => true,
                    Color::Never => false,
                    Color::Auto => {
                        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
                    }
                };
                inspect::to_text(&report, &inspect::Style { color })
            };
            print_stdout(&text)
        }
        Cmd::Generate {
            model,
            output,
            blob_dir,
            runtime_path,
            allow_data_dir,
        } => generate(
            &model,
            output.as_deref(),
            blob_dir.as_deref(),
            runtime_path,
            &allow_data_dir,
        ),
        Cmd::Quantize {
            model,
            output,
            per_tensor,
            reduce_range,
            weight_type,
            no_gemm,
            conv: _,
            no_conv,
            exclude,
            quiet,
            allow_data_dir,
        } => {
            let out = output.unwrap_or_else(|| default_quant_path(&model));
            let status = status::Status::for_model(&model);
            status.phase("reading");
            let mut mf = ModelFile::read(&model, &allow_data_dir)?;
            status.done();
            let opts = quantize::QuantizeOptions {
                weight_type: match weight_type {
                    WeightTypeArg::Int8 => quantize::WeightType::Int8,
                    WeightTypeArg::Uint8 => quantize::WeightType::Uint8,
                },
                per_channel: !per_tensor,
                reduce_range,
                include_gemm: !no_gemm,
                include_conv: !no_conv,
                exclude: exclude.clone(),
                progress: !quiet,
            };
            let names: Vec<String> = mf.graph().node.iter().map(model::node_name).collect();
            if let Some(x) = exclude.iter().find(|x| !names.contains(x)) {
                return Err(CliError::new(format!(
                    "--exclude {x}: no node of that name in {}",
                    model.display()
                )));
            }
            let report = quantize::quantize_model(&mut mf, &opts)?;
            status.phase("writing");
            let bytes = quantize::encode(&mf)?;
            write_atomic(&out, &bytes)?;
            status.done();
            if !quiet {
                let mut e = std::io::stderr();
                if let Some((from, to)) = report.opset_raised {
                    let _ = writeln!(
                        e,
                        "note: opset raised from {from} to {to} (DynamicQuantizeLinear needs 11)"
                    );
                }
                let _ = writeln!(
                    e,
                    "quantized {} layer(s), {} activation tensor(s): weights {} → {}; wrote {}",
                    report.quantized.len(),
                    report.activations,
                    inspect::bytes(report.float_weight_bytes),
                    inspect::bytes(report.quant_weight_bytes),
                    out.display()
                );
                for line in quantize::summary(&report) {
                    let _ = writeln!(e, "{line}");
                }
                if report.quantized.is_empty() {
                    let _ = writeln!(
                        e,
                        "warning: nothing was quantized (no float MatMul, Gemm or Conv with a \
                         constant weight)"
                    );
                }
            }
            Ok(())
        }
    }
}

fn default_quant_path(model: &Path) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    model.with_file_name(format!("{stem}.quant.onnx"))
}

fn print_stdout(s: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // `kiln inspect m.onnx | head` closes the pipe early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(format!("cannot write to stdout: {e}"))),
    }
}

fn generate(
    model: &Path,
    output: Option<&Path>,
    blob_dir: Option<&Path>,
    runtime_path: String,
    allow_data_dir: &[PathBuf],
) -> CliResult<()> {
    let status = status::Status::for_model(model);
    status.phase("reading");
    // Decode with the CLI's reader first so bad files give the same messages as inspect.
    let mf = ModelFile::read(model, allow_data_dir)?;
    let opts = kiln_codegen::Options {
        runtime_path,
        ..mf.codegen_options()
    };
    status.phase("compiling");
    let compiled = kiln_codegen::compile_file(model, &opts)?;
    status.done();
    let dir = blob_dir
        .map(Path::to_path_buf)
        .or_else(|| output.map(|o| o.parent().unwrap_or(Path::new("")).to_path_buf()));
    let blob_ref = match &dir {
        Some(d) => {
            let d = if d.as_os_str().is_empty() {
                Path::new(".")
            } else {
                d
            };
            if !d.is_dir() {
                return Err(CliError::new(format!(
                    "cannot write the weight blob: directory {} does not exist",
                    d.display()
                )));
            }
            // The aarch64 blob (if the model has one) goes beside the other; the generated code
            // embeds one of them per target.
            let arm = compiled
                .blob_aarch64_file_name()
                .zip(compiled.blob_aarch64());
            let blobs = [(compiled.blob_file_name(), compiled.blob())]
                .into_iter()
                .chain(arm);
            for (name, bytes) in blobs {
                let path = d.join(name);
                if std::fs::read(&path).map_or(true, |old| old != bytes) {
                    write_atomic(&path, bytes)?;
                }
            }
            let path = d.join(compiled.blob_file_name());
            std::path::absolute(&path).unwrap_or(path)
        }
        // Printing only: name the blob without writing it, so the output is stable.
        None => PathBuf::from(compiled.blob_file_name()),
    };
    let src = compiled.source(&blob_ref)?;
    match output {
        Some(o) => write_atomic(o, src.as_bytes()),
        None => print_stdout(&src),
    }
}
