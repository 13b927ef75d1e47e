//! The allocation-free path in a build of kiln *without* `alloc`, on the host: `run_in` on
//! fixtures compared with onnxruntime's outputs, and the digits classifier on the whole test
//! set compared with onnxruntime's accuracy.
use kiln::runtime::isa::Isa;
use kiln_example_no_std::{classify, digits};

#[test]
fn kiln_is_built_without_alloc() {
    // The point of this crate: with `alloc`, these tests would not prove anything.
    const { assert!(!kiln::runtime::HAS_ALLOC) };
}

/// A raw little-endian f32 file written by build.rs, and its shape.
fn reference(case: &str, name: &str) -> (Vec<f32>, Vec<usize>) {
    let out = env!("OUT_DIR");
    let bytes = std::fs::read(format!("{out}/{case}.{name}.f32")).unwrap();
    let data = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let shape = std::fs::read_to_string(format!("{out}/{case}.{name}.shape")).unwrap();
    (data, shape.split(',').map(|d| d.parse().unwrap()).collect())
}

/// `"atol": x`, `"rtol": y` from tests/models/<case>/meta.json (the tolerances the main test
/// suite uses, with their reasons).
fn tolerances(case: &str) -> (f32, f32) {
    let path = format!(
        "{}/../../tests/models/{case}/meta.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let meta = std::fs::read_to_string(path).unwrap();
    let num = |key: &str| -> f32 {
        let rest = &meta[meta.find(&format!("\"{key}\":")).unwrap() + key.len() + 3..];
        rest[..rest.find([',', '\n', '}']).unwrap()]
            .trim()
            .parse()
            .unwrap()
    };
    (num("atol"), num("rtol"))
}

macro_rules! case {
    ($case:ident, $path:literal) => {
        mod $case {
            kiln::include_model!($path);
        }

        #[test]
        fn $case() {
            use $case as m;
            let name = stringify!($case);
            let (x, shape) = reference(name, "input_0");
            let (want, want_shape) = reference(name, "output_0");
            let (atol, rtol) = tolerances(name);
            let mut arena = m::Arena::new();
            for isa in Isa::all_available() {
                let model = m::Model::with_isa(isa);
                let x = kiln::TensorRef::new(&x, &shape).unwrap();
                let out = model.run_in(&mut arena, m::Inputs { x }).unwrap();
                assert_eq!(out.y.shape(), &want_shape[..]);
                for (i, (&g, &w)) in out.y.data().iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= atol + rtol * w.abs(),
                        "{name} [{isa}] [{i}]: got {g}, onnxruntime {w} (atol {atol}, rtol {rtol})"
                    );
                }
            }
        }
    };
}

case!(mlp_a_q_s8, "../../tests/models/mlp_a_q_s8/model.onnx");
case!(mlp_c_f32, "../../tests/models/mlp_c_f32/model.onnx");
case!(
    mlp_3d_q_u8_pc_rr,
    "../../tests/models/mlp_3d_q_u8_pc_rr/model.onnx"
);
case!(
    block_ln_gelu_q_s8,
    "../../tests/models/block_ln_gelu_q_s8/model.onnx"
);

#[test]
fn digits_accuracy_matches_onnxruntime() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../digits");
    let x = std::fs::read(format!("{dir}/test_x.f32")).unwrap();
    let y = std::fs::read(format!("{dir}/test_y.u8")).unwrap();
    let reference = std::fs::read_to_string(format!("{dir}/reference.json")).unwrap();
    let key = "\"ort_int8_accuracy\":";
    let rest = &reference[reference.find(key).unwrap() + key.len()..];
    let ort: f64 = rest[..rest.find([',', '\n']).unwrap()]
        .trim()
        .parse()
        .unwrap();

    let model = digits::Model::with_isa(Isa::Scalar);
    let mut arena = digits::Arena::new();
    let mut correct = 0;
    for (img, &label) in x.chunks_exact(64 * 4).zip(&y) {
        let mut pixels = [0u8; 64];
        for (p, b) in pixels.iter_mut().zip(img.chunks_exact(4)) {
            *p = f32::from_le_bytes(b.try_into().unwrap()) as u8;
        }
        let (digit, _) = classify(&model, &mut arena, &pixels).unwrap();
        correct += (digit == label) as usize;
    }
    let acc = correct as f64 / y.len() as f64;
    assert!((acc - ort).abs() < 1e-9, "kiln {acc}, onnxruntime {ort}");
}

#[test]
fn small_arena_is_an_error() {
    let model = digits::Model::new();
    let mut arena = [0u8; 16];
    assert_eq!(
        classify(&model, &mut arena, &[0; 64]).unwrap_err(),
        kiln::Error::ArenaTooSmall {
            needed: digits::ARENA_BYTES,
            actual: 16
        }
    );
}
