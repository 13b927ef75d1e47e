//! `Loop` and `Scan` compiled with `include_model!`, run on every ISA this CPU has and compared
//! with onnxruntime's outputs (fixtures and what each covers: tools/gen_loop_fixtures.py).
#![allow(dead_code)]

mod common;

use kiln::runtime::isa::Isa;

/// Elementwise float ops in the same order as onnxruntime: only rounding of tanh differs.
const ATOL: f32 = 1e-6;
const RTOL: f32 = 1e-6;

fn check(case: &str, got: &[(&[f32], &[usize])]) {
    let dir = common::case_dir(&format!("tests/loops/{case}"));
    for (i, (data, shape)) in got.iter().enumerate() {
        let w = common::load(dir.join(format!("output_{i}.pb")));
        let what = format!("{case} output {i}");
        assert_eq!(*shape, &w.shape[..], "{what}: shape");
        common::assert_close(&what, data, common::data::<f32>(&w), ATOL, RTOL);
    }
}

fn input(case: &str, i: usize) -> common::Tensor {
    common::load(common::case_dir(&format!("tests/loops/{case}")).join(format!("input_{i}.pb")))
}

fn tref<'a>(t: &'a common::Tensor) -> kiln::TensorRef<'a, f32> {
    kiln::TensorRef::new(common::data::<f32>(t), &t.shape).unwrap()
}

mod loop_grow {
    kiln::include_model!("tests/loops/loop_grow/model.onnx");
}

#[test]
fn loop_with_a_folded_condition_and_a_growing_carried_value_matches_onnxruntime() {
    let ins: Vec<_> = (0..3).map(|i| input("loop_grow", i)).collect();
    for isa in Isa::all_available() {
        let mut m = loop_grow::Model::with_isa(isa);
        let out = m
            .run(loop_grow::Inputs {
                x: tref(&ins[0]),
                rows0: tref(&ins[1]),
                acc0: tref(&ins[2]),
            })
            .unwrap_or_else(|e| panic!("loop_grow [{}]: {e:?}", isa.name()));
        check(
            "loop_grow",
            &[
                (out.rows.data(), out.rows.shape()),
                (out.acc.data(), out.acc.shape()),
                (out.scans.data(), out.scans.shape()),
            ],
        );
    }
}

mod scan_axes {
    kiln::include_model!("tests/loops/scan_axes/model.onnx");
}

#[test]
fn scan_with_axes_and_reverse_directions_matches_onnxruntime() {
    let ins: Vec<_> = (0..4).map(|i| input("scan_axes", i)).collect();
    for isa in Isa::all_available() {
        let mut m = scan_axes::Model::with_isa(isa);
        let out = m
            .run(scan_axes::Inputs {
                s0: tref(&ins[0]),
                p0: tref(&ins[1]),
                a: tref(&ins[2]),
                b: tref(&ins[3]),
            })
            .unwrap_or_else(|e| panic!("scan_axes [{}]: {e:?}", isa.name()));
        check(
            "scan_axes",
            &[
                (out.s.data(), out.s.shape()),
                (out.p.data(), out.p.shape()),
                (out.y1.data(), out.y1.shape()),
                (out.y2.data(), out.y2.shape()),
            ],
        );
    }
}

mod scan8 {
    kiln::include_model!("tests/loops/scan8/model.onnx");
}

#[test]
fn batched_opset8_scan_matches_onnxruntime() {
    let ins: Vec<_> = (0..2).map(|i| input("scan8", i)).collect();
    for isa in Isa::all_available() {
        let mut m = scan8::Model::with_isa(isa);
        let out = m
            .run(scan8::Inputs {
                s0: tref(&ins[0]),
                x: tref(&ins[1]),
            })
            .unwrap_or_else(|e| panic!("scan8 [{}]: {e:?}", isa.name()));
        check(
            "scan8",
            &[(out.s.data(), out.s.shape()), (out.y.data(), out.y.shape())],
        );
    }
}
