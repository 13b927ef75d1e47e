//! The comparison helpers every end-to-end test uses (tests/common): a NaN or an infinity where
//! the reference is finite must fail, and NaN expected must be NaN.

mod common;

use std::panic::catch_unwind;

fn fails(f: impl FnOnce() + std::panic::UnwindSafe) -> bool {
    catch_unwind(f).is_err()
}

#[test]
fn nan_and_infinity_fail_where_the_reference_is_finite() {
    let want = [0.5f32, -1.0, 2.0];
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let got = [0.5f32, bad, 2.0];
        assert!(fails(|| common::assert_close("t", &got, &want, 1e3, 1e3)));
        let e = common::errors(&got, &want);
        assert_eq!((e.max, e.at), (f64::INFINITY, 1));
        assert_eq!(e.mean, f64::INFINITY);
        assert!((common::fraction_within(&got, &want, 1e3, 0.0) - 2.0 / 3.0).abs() < 1e-12);
        assert!(fails(|| common::assert_two_tier(
            "t",
            &got,
            &want,
            (1e-5, 0.0),
            0.5,
            (1e3, 0.0)
        )));
    }
    // All NaN: the max must not be the 0 a NaN-skipping `fold(0.0, f32::max)` gives.
    let nan = [f32::NAN; 3];
    assert_eq!(common::errors(&nan, &want).max, f64::INFINITY);
    assert!(fails(|| common::assert_close("t", &nan, &want, 1e3, 1e3)));
}

#[test]
fn nan_expected_must_be_nan() {
    let want = [f32::NAN, 1.0, f32::INFINITY];
    common::assert_close("t", &[f32::NAN, 1.0, f32::INFINITY], &want, 0.0, 0.0);
    assert_eq!(
        common::errors(&[f32::NAN, 1.0, f32::INFINITY], &want).max,
        0.0
    );
    assert!(fails(|| common::assert_close(
        "t",
        &[0.0, 1.0, f32::INFINITY],
        &want,
        1e3,
        1e3
    )));
    assert!(fails(|| common::assert_close(
        "t",
        &[f32::NAN, 1.0, f32::MAX],
        &want,
        1e3,
        1e3
    )));
}

#[test]
fn two_tier_needs_both_tiers() {
    let want: Vec<f32> = (0..1000).map(|i| i as f32 / 100.0).collect();
    // Ten elements a full step off, the rest exact: passes at 99 %, not at 99.5 %.
    let mut got = want.clone();
    for g in got.iter_mut().step_by(100) {
        *g += 0.01;
    }
    common::assert_two_tier("t", &got, &want, (1e-5, 0.0), 0.99, (0.02, 0.0));
    assert!(fails(|| common::assert_two_tier(
        "t",
        &got,
        &want,
        (1e-5, 0.0),
        0.995,
        (0.02, 0.0)
    )));
    // A systematic 1e-3 error passes a loose 2e-2 bound alone but fails the tight tier.
    let shifted: Vec<f32> = want.iter().map(|w| w + 1e-3).collect();
    common::assert_close("t", &shifted, &want, 0.02, 0.0);
    assert!(fails(|| common::assert_two_tier(
        "t",
        &shifted,
        &want,
        (1e-5, 0.0),
        0.99,
        (0.02, 0.0)
    )));
    // Beyond the loose bound fails even when it is one element.
    got[500] += 1.0;
    assert!(fails(|| common::assert_two_tier(
        "t",
        &got,
        &want,
        (1e-5, 0.0),
        0.99,
        (0.02, 0.0)
    )));
}

/// `check_data` (the node-test sweep's comparison, conformance/): floats at atol + rtol·|want|
/// NaN-aware, integers and bools exactly, and a different element type is a failure.
#[test]
fn check_data_compares_by_element_type() {
    use common::TensorData as D;
    let f = |v: &[f32]| D::F32(v.to_vec());
    assert!(common::check_data(&f(&[1.0, f32::NAN]), &f(&[1.0005, f32::NAN]), 1e-7, 1e-3).is_ok());
    assert!(common::check_data(&f(&[1.0]), &f(&[1.002]), 1e-7, 1e-3).is_err());
    assert!(common::check_data(&f(&[f32::NAN]), &f(&[0.0]), 1e9, 1e9).is_err());
    let d = |v: &[f64]| D::F64(v.to_vec());
    assert!(common::check_data(&d(&[0.0]), &d(&[f64::NAN]), 1e9, 1e9).is_err());
    assert!(common::check_data(&D::I64(vec![1, 2]), &D::I64(vec![1, 2]), 0.0, 0.0).is_ok());
    assert!(common::check_data(&D::I64(vec![1, 3]), &D::I64(vec![1, 2]), 1e9, 1e9).is_err());
    assert!(common::check_data(&D::Bool(vec![true]), &D::Bool(vec![false]), 0.0, 0.0).is_err());
    assert!(common::check_data(&D::I32(vec![1]), &D::I64(vec![1]), 0.0, 0.0).is_err());
    assert!(common::check_data(&f(&[1.0]), &f(&[1.0, 2.0]), 1e9, 1e9).is_err());
}
