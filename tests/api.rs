//! The generated API as a user sees it: names, constants, errors, buffer reuse across calls.
mod common;

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
        "input `x` has shape [8, 24] but the model expects [4, 48]: axis 0 is 8, expected 4; \
         axis 1 is 24, expected 48"
    );
    let bad = kiln::TensorRef::new(&x, &[192]).unwrap();
    let e = model.run(mlp::Inputs { x: bad }).unwrap_err();
    assert!(matches!(e, kiln::Error::InputShape { input: "x", .. }));
    assert_eq!(
        e.to_string(),
        "input `x` has shape [192] but the model expects [4, 48]: it has 1 axis where the model \
         has 2"
    );
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
    // Not vacuous: at least one SIMD family besides scalar, and the one CI expects
    // (KILN_EXPECT_BEST, .ci/run) among them. A host with scalar only must say so with
    // KILN_EXPECT_BEST=scalar.
    let expect = std::env::var("KILN_EXPECT_BEST").ok();
    if expect.as_deref().map(str::trim) != Some("scalar") {
        assert!(
            results.len() >= 2,
            "only {:?} available: nothing to compare (set KILN_EXPECT_BEST=scalar on such a host)",
            results.iter().map(|r| r.0).collect::<Vec<_>>()
        );
    }
    if let Some(want) = expect {
        assert_eq!(results.last().unwrap().0.name(), want.trim(), "best family");
    }
    for (isa, y) in &results[1..] {
        assert_eq!(y, &results[0].1, "{isa} differs from {}", results[0].0);
    }
}

mod cnn_1d {
    kiln::include_model!("tests/models/cnn_1d_qc_s8/model.onnx");
}

#[test]
fn input_smaller_than_a_kernel_is_an_error_naming_the_node() {
    // conv0: kernel 5, dilation 2 (extent 9), pads 2 + 1: needs L ≥ 6.
    let mut m = cnn_1d::Model::new();
    let x = vec![0.5f32; 4 * 5];
    let Err(err) = m.run(cnn_1d::Inputs {
        x: kiln::TensorRef::new(&x, &[1, 4, 5]).unwrap(),
    }) else {
        panic!("L = 5 is smaller than conv0's window");
    };
    match &err {
        kiln::Error::DimTooSmall { value, node, .. } => {
            assert_eq!(*value, -1);
            assert_eq!(*node, "conv0_quant");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("conv0_quant"), "{err}");
    let x = vec![0.5f32; 4 * 6];
    let out = m
        .run(cnn_1d::Inputs {
            x: kiln::TensorRef::new(&x, &[1, 4, 6]).unwrap(),
        })
        .unwrap();
    // L=6 → conv0: floor(0/2)+1 = 1 → conv1 (SAME, stride 2): 1 → conv2: 1.
    assert_eq!(out.y.shape(), &[1, 6, 1]);
}

mod fpn {
    kiln::include_model!("tests/models/fpn_f32/model.onnx");
}

#[test]
fn image_size_not_a_multiple_of_the_stride_is_an_error() {
    // 36 → 18 → 9 → 5, upsampled to 10, concatenated with the 9-row skip connection.
    let mut m = fpn::Model::new();
    let x = vec![0.1f32; 3 * 36 * 40];
    let Err(err) = m.run(fpn::Inputs {
        x: kiln::TensorRef::new(&x, &[1, 3, 36, 40]).unwrap(),
    }) else {
        panic!("36 rows do not survive /8 then ×2");
    };
    match &err {
        kiln::Error::DimsDiffer {
            left_value,
            right_value,
            ..
        } => assert_eq!((*left_value).min(*right_value), 9, "{err}"),
        other => panic!("unexpected error {other:?}"),
    }
    // Wrong channel count: an Err naming the input, not a panic.
    let x = vec![0.1f32; 4 * 32 * 32];
    let Err(err) = m.run(fpn::Inputs {
        x: kiln::TensorRef::new(&x, &[1, 4, 32, 32]).unwrap(),
    }) else {
        panic!("4 channels");
    };
    assert!(matches!(err, kiln::Error::InputShape { .. }), "{err:?}");
    // Symbolic dims print by name (as the ONNX file names them), and the message says which
    // axis differs.
    assert_eq!(
        err.to_string(),
        "input `x` has shape [1, 4, 32, 32] but the model expects [N, 3, H, W]: axis 1 is 4, \
         expected 3"
    );
    // An NHWC image for this NCHW model: the same sizes in another order get a layout hint.
    let x = vec![0.1f32; 32 * 32 * 3];
    let Err(err) = m.run(fpn::Inputs {
        x: kiln::TensorRef::new(&x, &[1, 32, 32, 3]).unwrap(),
    }) else {
        panic!("NHWC");
    };
    assert_eq!(
        err.to_string(),
        "input `x` has shape [1, 32, 32, 3] but the model expects [N, 3, H, W]: axis 1 is 32, \
         expected 3 (the same sizes in another order: check the layout, e.g. NHWC vs NCHW)"
    );
    // Zero-sized image: an Err (a 3x3 stride-2 conv of nothing), not a panic.
    let Err(err) = m.run(fpn::Inputs {
        x: kiln::TensorRef::new(&[], &[1, 3, 0, 32]).unwrap(),
    }) else {
        panic!("empty image");
    };
    assert!(matches!(err, kiln::Error::DimTooSmall { .. }), "{err:?}");
    let x = vec![0.1f32; 3 * 32 * 48];
    let out = m
        .run(fpn::Inputs {
            x: kiln::TensorRef::new(&x, &[1, 3, 32, 48]).unwrap(),
        })
        .unwrap();
    assert_eq!(out.y.shape(), &[1, 1, 32, 48]);
}

mod mean_pool {
    kiln::include_model!("tests/graphs/mean_pool.onnx");
}

#[test]
fn workspace_of_a_symbolic_model_is_a_function_of_its_dims() {
    // WORKSPACE_BYTES counts the static buffers only (none here: it is 0); workspace_bytes(batch,
    // seq) all of them.
    let w = mean_pool::workspace_bytes;
    assert!(w(1, 1) > 0);
    assert!(w(2, 128) > w(2, 64) && w(4, 64) > w(2, 64));
    // The pooled sums alone are batch × 24 f32.
    assert!(w(4, 64) >= 4 * 24 * 4, "{}", w(4, 64));
}

/// Sentence-transformers' mean pooling (tests/graphs/mean_pool.onnx, as torch exports it, with
/// the `Expand`s codegen's `fold_expand` removes) against its definition in f64,
/// `Σ_t x·m / max(Σ_t m, 1e-9)`: several shapes, padded rows and an all-padding row.
#[test]
fn mean_pooling_matches_its_definition() {
    let h = 24;
    for &(b, s) in &[(1usize, 1usize), (2, 5), (3, 17)] {
        let x: Vec<f32> = (0..b * s * h)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0)
            .collect();
        // Row r keeps its first s − r tokens; row 2 is all padding.
        let m: Vec<i64> = (0..b * s)
            .map(|i| {
                let (r, t) = (i / s, i % s);
                i64::from(r != 2 && t + r < s)
            })
            .collect();
        for isa in kiln::runtime::isa::Isa::all_available() {
            let mut model = mean_pool::Model::with_isa(isa);
            let out = model
                .run(mean_pool::Inputs {
                    tokens: kiln::TensorRef::new(&x, &[b, s, h]).unwrap(),
                    mask: kiln::TensorRef::new(&m, &[b, s]).unwrap(),
                })
                .unwrap();
            assert_eq!(out.pooled.shape(), &[b, h]);
            for r in 0..b {
                let den = (0..s).map(|t| m[r * s + t] as f64).sum::<f64>().max(1e-9);
                for c in 0..h {
                    let num: f64 = (0..s)
                        .map(|t| x[(r * s + t) * h + c] as f64 * m[r * s + t] as f64)
                        .sum();
                    let (want, got) = (num / den, out.pooled.data()[r * h + c] as f64);
                    assert!(
                        (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                        "{isa} b={b} s={s} [{r}][{c}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

mod t5_bias {
    kiln::include_model!("tests/graphs/t5_bias.onnx");
}

/// T5's relative-position bias as torch exports it (tests/graphs/t5_bias.onnx): the whole
/// bucket computation (int64 `Abs`, `Log`, `Min`, `Where`, `Gather` of the table) folds at
/// compile time, so the output is `scores + bias` with the bias exactly onnxruntime's: one
/// correctly rounded f32 add per element, bit-identical to onnxruntime's output.
#[test]
fn t5_position_bias_matches_onnxruntime_bit_for_bit() {
    let x = common::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/graphs/t5_bias.input.pb"
    ));
    let want = common::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/graphs/t5_bias.output.pb"
    ));
    for isa in kiln::runtime::isa::Isa::all_available() {
        let mut model = t5_bias::Model::with_isa(isa);
        let out = model
            .run(t5_bias::Inputs {
                scores: kiln::TensorRef::new(common::data::<f32>(&x), &x.shape).unwrap(),
            })
            .unwrap();
        assert_eq!(out.out.shape(), &want.shape[..]);
        let want = common::data::<f32>(&want);
        for (i, (g, w)) in out.out.data().iter().zip(want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{isa} [{i}]: {g} vs {w}");
        }
    }
}
