//! onnxruntime contrib ops (com.microsoft) compiled with `include_model!`, run on every ISA this
//! CPU has and compared with onnxruntime's outputs (fixtures from tools/gen_contrib_fixtures.py).
#![allow(dead_code)]

mod common;

use kiln::runtime::isa::Isa;

/// kiln and onnxruntime sum the rows in different orders and use different GELU, tanh and
/// exp approximations; the tolerance is 1e-5 relative plus 1e-6 absolute for values near 0
/// (measured worst: see docs/contrib.md, `KILN_TEST_REPORT=1` prints it).
const ATOL: f32 = 1e-6;
const RTOL: f32 = 1e-5;

mod block {
    kiln::include_model!("tests/contrib/block/model.onnx");
}

#[test]
fn block_matches_onnxruntime() {
    let dir = common::case_dir("tests/contrib/block");
    let (x, r) = (
        common::load(dir.join("input_0.pb")),
        common::load(dir.join("input_1.pb")),
    );
    let want: Vec<_> = (0..9)
        .map(|i| common::load(dir.join(format!("output_{i}.pb"))))
        .collect();
    for isa in Isa::all_available() {
        let mut model = block::Model::with_isa(isa);
        let out = model
            .run(block::Inputs {
                x: kiln::TensorRef::new(common::data::<f32>(&x), &x.shape).unwrap(),
                r: kiln::TensorRef::new(common::data::<f32>(&r), &r.shape).unwrap(),
            })
            .unwrap_or_else(|e| panic!("block [{}]: {e:?}", isa.name()));
        let got = [
            (out.y1.data(), out.y1.shape()),
            (out.mean1.data(), out.mean1.shape()),
            (out.inv1.data(), out.inv1.shape()),
            (out.sum1.data(), out.sum1.shape()),
            (out.g4.data(), out.g4.shape()),
            (out.y2.data(), out.y2.shape()),
            (out.inv2.data(), out.inv2.shape()),
            (out.sum2.data(), out.sum2.shape()),
            (out.y3.data(), out.y3.shape()),
        ];
        for (i, ((data, shape), w)) in got.into_iter().zip(&want).enumerate() {
            let what = format!("block [{}] output {i}", isa.name());
            assert_eq!(shape, &w.shape[..], "{what}: shape");
            common::assert_close(&what, data, common::data::<f32>(w), ATOL, RTOL);
        }
    }
}

mod dyn_matmul {
    kiln::include_model!("tests/contrib/dyn_matmul/model.onnx");
}

/// DynamicQuantizeMatMul and MatMulIntegerToFloat run as kiln's int8 GEMM (the fusion is
/// checked in codegen/tests/generate.rs). onnxruntime's outputs equal the exact formula
/// `Σ(a−za)(b−zb) · (a_s·b_s) + bias` (checked by the fixture script); kiln's epilogue applies
/// the same f32 operations in the same order, so the outputs are equal bit for bit.

#[test]
fn dynamic_quantized_matmuls_match_onnxruntime() {
    let dir = common::case_dir("tests/contrib/dyn_matmul");
    let x = common::load(dir.join("input_0.pb"));
    let want: Vec<_> = (0..3)
        .map(|i| common::load(dir.join(format!("output_{i}.pb"))))
        .collect();
    for isa in Isa::all_available() {
        let mut model = dyn_matmul::Model::with_isa(isa);
        let out = model
            .run(dyn_matmul::Inputs {
                x: kiln::TensorRef::new(common::data::<f32>(&x), &x.shape).unwrap(),
            })
            .unwrap_or_else(|e| panic!("dyn_matmul [{}]: {e:?}", isa.name()));
        let got = [
            (out.y1.data(), out.y1.shape()),
            (out.y2.data(), out.y2.shape()),
            (out.y3.data(), out.y3.shape()),
        ];
        for (i, ((data, shape), w)) in got.into_iter().zip(&want).enumerate() {
            let what = format!("dyn_matmul [{}] output {i}", isa.name());
            assert_eq!(shape, &w.shape[..], "{what}: shape");
            common::assert_exact(&what, data, common::data::<f32>(w));
        }
    }
}
