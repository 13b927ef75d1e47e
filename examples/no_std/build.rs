//! Firmware: puts memory.x where cortex-m-rt's linker script finds it and writes the digit
//! samples the firmware classifies. Host tests: converts onnxruntime's reference tensors
//! (onnx TensorProto files) into raw little-endian f32 files, so the tests need no protobuf
//! decoder and no kiln-codegen of their own (which would turn on `alloc`).
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Fixtures the host test runs (tests/models/<case>).
const CASES: [&str; 4] = [
    "mlp_a_q_s8",
    "mlp_c_f32",
    "mlp_3d_q_u8_pc_rr",
    "block_ln_gelu_q_s8",
];
/// Digit images compiled into the firmware.
const SAMPLES: usize = 8;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        std::fs::copy("memory.x", out.join("memory.x")).unwrap();
        println!("cargo:rustc-link-search={}", out.display());
        println!("cargo:rustc-link-arg-bins=-Tlink.x");
    }
    println!("cargo:rerun-if-changed=memory.x");

    for case in CASES {
        let dir = root.join("tests/models").join(case).join("test_data_set_0");
        for name in ["input_0", "output_0"] {
            let path = dir.join(format!("{name}.pb"));
            println!("cargo:rerun-if-changed={}", path.display());
            let t = kiln_codegen::onnx::read_tensor_file(&path).unwrap();
            let kiln_codegen::ir::TensorData::F32(v) = &t.data else {
                panic!("{}: expected f32 data", path.display());
            };
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            std::fs::write(out.join(format!("{case}.{name}.f32")), bytes).unwrap();
            let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
            std::fs::write(out.join(format!("{case}.{name}.shape")), shape.join(",")).unwrap();
        }
    }

    // The first test images of examples/digits (pixel values 0..16, integers) and labels.
    let x = root.join("examples/digits/test_x.f32");
    let y = root.join("examples/digits/test_y.u8");
    println!("cargo:rerun-if-changed={}", x.display());
    println!("cargo:rerun-if-changed={}", y.display());
    let (x, y) = (std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    let mut src = format!("pub const SAMPLES: [([u8; 64], u8); {SAMPLES}] = [\n");
    for (img, label) in x.chunks_exact(64 * 4).zip(&y).take(SAMPLES) {
        let px: Vec<String> = img
            .chunks_exact(4)
            .map(|b| (f32::from_le_bytes(b.try_into().unwrap()) as u8).to_string())
            .collect();
        writeln!(src, "    ([{}], {label}),", px.join(", ")).unwrap();
    }
    src.push_str("];\n");
    std::fs::write(out.join("samples.rs"), src).unwrap();
}
