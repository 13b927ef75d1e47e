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

/// QGemm's float output runs as a weight-only f32 GEMM on the dequantized operands while
/// onnxruntime scales the exact int32 sum: a 16-term f32 sum of values of order 1.
const QGEMM_F32_ATOL: f32 = 2e-6;

mod qoperator {
    kiln::include_model!("tests/contrib/qoperator/model.onnx");
}

/// Compares 8-bit outputs: at most one quantization step from onnxruntime, which evaluates
/// QLinearMul as `(a−za)(b−zb)·(sa·sb/sc)` and the pools and QGemm's requantization with its
/// own f32 operation order, so a product that lands within an ulp of a rounding boundary can
/// round the other way (numpy's plain float formula differs from onnxruntime on 1 of 144
/// QLinearMul outputs in this fixture). Returns how many differ.
fn within_one_step(what: &str, got: &[u8], want: &[u8]) -> usize {
    if let Err(msg) = common::check_close(got, want, 1.0, 0.0) {
        panic!("{what}: {msg}");
    }
    got.iter().zip(want).filter(|(g, w)| g != w).count()
}

#[test]
fn qoperator_ops_match_onnxruntime() {
    let dir = common::case_dir("tests/contrib/qoperator");
    let inp: Vec<_> = (0..3)
        .map(|i| common::load(dir.join(format!("input_{i}.pb"))))
        .collect();
    let want: Vec<_> = (0..11)
        .map(|i| common::load(dir.join(format!("output_{i}.pb"))))
        .collect();
    let t = |i: usize| kiln::TensorRef::new(common::data::<u8>(&inp[i]), &inp[i].shape).unwrap();
    for isa in Isa::all_available() {
        let mut model = qoperator::Model::with_isa(isa);
        let out = model
            .run(qoperator::Inputs {
                x: t(0),
                x2: t(1),
                a: t(2),
            })
            .unwrap_or_else(|e| panic!("qoperator [{}]: {e:?}", isa.name()));
        let got = [
            (out.add.data(), out.add.shape()),
            (out.mul.data(), out.mul.shape()),
            (out.sig.data(), out.sig.shape()),
            (out.lrelu.data(), out.lrelu.shape()),
            (out.gap.data(), out.gap.shape()),
            (out.gapl.data(), out.gapl.shape()),
            (out.ap.data(), out.ap.shape()),
            (out.cat.data(), out.cat.shape()),
            (out.sm.data(), out.sm.shape()),
            (out.qg.data(), out.qg.shape()),
        ];
        let mut off = Vec::new();
        for (i, ((data, shape), w)) in got.into_iter().zip(&want).enumerate() {
            let what = format!("qoperator [{}] output {i}", isa.name());
            assert_eq!(shape, &w.shape[..], "{what}: shape");
            off.push(within_one_step(&what, data, common::data::<u8>(w)));
        }
        let what = format!("qoperator [{}] QGemm float output", isa.name());
        assert_eq!(out.qgf.shape(), &want[10].shape[..], "{what}: shape");
        common::assert_close(
            &what,
            out.qgf.data(),
            common::data::<f32>(&want[10]),
            QGEMM_F32_ATOL,
            RTOL,
        );
        if std::env::var_os("KILN_TEST_REPORT").is_some() {
            eprintln!("qoperator [{}]: outputs one step off: {off:?}", isa.name());
        }
    }
}

mod matmul_nbits {
    kiln::include_model!("tests/contrib/matmul_nbits/model.onnx");
}

/// MatMulNBits (4-bit with and without zero points, a partial last block; 8-bit) against
/// onnxruntime with accuracy_level 0 (f32 activations): both dequantize exactly and sum K
/// products in different orders.
#[test]
fn matmul_nbits_matches_onnxruntime() {
    let dir = common::case_dir("tests/contrib/matmul_nbits");
    let (a, a2) = (
        common::load(dir.join("input_0.pb")),
        common::load(dir.join("input_1.pb")),
    );
    let want: Vec<_> = (0..3)
        .map(|i| common::load(dir.join(format!("output_{i}.pb"))))
        .collect();
    for isa in Isa::all_available() {
        let mut model = matmul_nbits::Model::with_isa(isa);
        let out = model
            .run(matmul_nbits::Inputs {
                a: kiln::TensorRef::new(common::data::<f32>(&a), &a.shape).unwrap(),
                a2: kiln::TensorRef::new(common::data::<f32>(&a2), &a2.shape).unwrap(),
            })
            .unwrap_or_else(|e| panic!("matmul_nbits [{}]: {e:?}", isa.name()));
        let got = [
            (out.y1.data(), out.y1.shape()),
            (out.y2.data(), out.y2.shape()),
            (out.y3.data(), out.y3.shape()),
        ];
        for (i, ((data, shape), w)) in got.into_iter().zip(&want).enumerate() {
            let what = format!("matmul_nbits [{}] output {i}", isa.name());
            assert_eq!(shape, &w.shape[..], "{what}: shape");
            common::assert_close(&what, data, common::data::<f32>(w), ATOL, RTOL);
        }
    }
}
