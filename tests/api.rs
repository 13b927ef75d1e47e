//! The generated API as a user sees it: names, constants, errors, buffer reuse across calls.
mod mlp {
    kiln::include_model!("tests/models/mlp_shared_q_s8/model.onnx");
}

#[test]
fn constants_describe_the_model() {
    assert_eq!(mlp::INPUT_NAMES, ["x"]);
    assert_eq!(mlp::OUTPUT_NAMES, ["y"]);
    assert_eq!(mlp::INPUT_DTYPES, ["f32"]);
    use kiln::runtime::tensor::DimSpec::Fixed;
    assert_eq!(mlp::INPUT_SHAPES, [&[Fixed(4), Fixed(48)][..]]);
    assert_eq!(mlp::OUTPUT_SHAPES, [&[Fixed(4), Fixed(8)][..]]);
    const { assert!(mlp::WORKSPACE_BYTES <= mlp::NAIVE_WORKSPACE_BYTES) };
}

#[test]
fn wrong_length_and_shape_are_errors_not_panics() {
    let x = vec![0.5f32; 4 * 48];
    let e = kiln::TensorRef::new(&x, &[4, 47]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tensor data has 192 elements but shape [4, 47] needs 188"
    );

    let mut model = mlp::Model::new();
    let bad = kiln::TensorRef::new(&x, &[8, 24]).unwrap();
    let e = model.run(mlp::Inputs { x: bad }).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input `x` has shape [8, 24] but the model expects [4, 48]"
    );
    let bad = kiln::TensorRef::new(&x, &[192]).unwrap();
    assert!(matches!(
        model.run(mlp::Inputs { x: bad }),
        Err(kiln::Error::InputShape { input: "x", .. })
    ));
}

#[test]
fn repeated_runs_are_deterministic_and_reuse_buffers() {
    let x: Vec<f32> = (0..4 * 48)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
        .collect();
    let mut model = mlp::Model::new();
    let first = model
        .run(mlp::Inputs {
            x: kiln::TensorRef::new(&x, &[4, 48]).unwrap(),
        })
        .unwrap()
        .y
        .to_vec();
    let ptr = model
        .run(mlp::Inputs {
            x: kiln::TensorRef::new(&x, &[4, 48]).unwrap(),
        })
        .unwrap()
        .y
        .data()
        .as_ptr();
    let again = model
        .run(mlp::Inputs {
            x: kiln::TensorRef::new(&x, &[4, 48]).unwrap(),
        })
        .unwrap();
    assert_eq!(again.y.data(), &first[..]);
    assert_eq!(
        again.y.data().as_ptr(),
        ptr,
        "outputs live in the model's preallocated buffers"
    );
}

#[test]
fn every_isa_gives_bit_identical_int8_results() {
    // Integer accumulation is exact and the float epilogue has one order of operations, so the
    // fused int8 layers agree bit for bit across kernel families.
    let x: Vec<f32> = (0..4 * 48)
        .map(|i| ((i * 53 % 97) as f32 - 48.0) / 13.0)
        .collect();
    let mut results = Vec::new();
    for isa in kiln::runtime::isa::Isa::all_available() {
        let mut model = mlp::Model::with_isa(isa);
        assert_eq!(model.isa(), isa);
        let y = model
            .run(mlp::Inputs {
                x: kiln::TensorRef::new(&x, &[4, 48]).unwrap(),
            })
            .unwrap()
            .y
            .to_vec();
        results.push((isa, y));
    }
    for (isa, y) in &results[1..] {
        assert_eq!(y, &results[0].1, "{isa} differs from {}", results[0].0);
    }
}
