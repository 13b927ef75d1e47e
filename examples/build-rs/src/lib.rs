//! The build.rs form of kiln: `build.rs` runs `kiln_codegen::Builder`, this file includes the
//! generated module. Same generated code as `include_model!`.
pub mod mlp {
    include!(concat!(env!("OUT_DIR"), "/mlp.rs"));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kiln_codegen::ir::TensorData;

    fn load(name: &str) -> (Vec<usize>, Vec<f32>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/models/mlp_a_q_u8_pc/test_data_set_0");
        let t = kiln_codegen::onnx::read_tensor_file(&dir.join(name)).unwrap();
        match t.data {
            TensorData::F32(v) => (t.shape, v),
            other => panic!("unexpected {:?}", other.dtype()),
        }
    }

    #[test]
    fn matches_onnxruntime() {
        let (xs, x) = load("input_0.pb");
        let (ys, want) = load("output_0.pb");
        for isa in kiln::runtime::isa::Isa::all_available() {
            let mut model = super::mlp::Model::with_isa(isa);
            let out = model
                .run(super::mlp::Inputs {
                    x: kiln::TensorRef::new(&x, &xs).unwrap(),
                })
                .unwrap();
            assert_eq!(out.y.shape(), &ys[..]);
            // Tolerance from tests/models/mlp_a_q_u8_pc/meta.json (one quantization step).
            let worst = out
                .y
                .data()
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                // NaN-aware: `f32::max` would skip a NaN difference.
                .fold(0.0, |m: f32, d| if d.is_nan() { d } else { m.max(d) });
            assert!(worst < 1.12e-2, "{isa}: max |kiln - onnxruntime| = {worst}");
        }
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let x = vec![0.0f32; 65];
        let mut model = super::mlp::Model::new();
        let err = model
            .run(super::mlp::Inputs {
                x: kiln::TensorRef::new(&x, &[1, 65]).unwrap(),
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "input `x` has shape [1, 65] but the model expects [1, 64]: axis 1 is 65, expected 64"
        );
    }
}
