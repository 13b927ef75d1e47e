//! The lookup table of an 8-bit → 8-bit `QdqMap` (issue 19.3): the chain evaluated on each of
//! the 256 input values per channel, with exactly the f32 operations of
//! `kiln_runtime::qlinear::qdq_map` (which the generated code ran per element before), so the
//! table gives the same bytes; `kiln_runtime::qlut::qdq_lut` applies it.
use crate::ir::MapStepOwned;
use kiln_runtime::quantize::round_half_even;

/// Tables larger than this (channels × 256 bytes) stay a float pass.
pub(super) const MAX_LUT_BYTES: usize = 1 << 20;

/// `ch` tables of 256 bytes, indexed by the raw bits of the input (`x as u8` for i8) and
/// holding the raw bits of the output.
#[allow(clippy::too_many_arguments)]
pub(super) fn build(
    steps: &[MapStepOwned],
    ch: usize,
    (x_scale, x_zp, x_signed): (f32, i32, bool),
    (y_scale, y_zp, y_signed): (f32, i32, bool),
) -> Vec<u8> {
    let pc = |v: &[f32], c: usize| v[if v.len() == 1 { 0 } else { c }];
    let z = y_zp as f32;
    let mut lut = Vec::with_capacity(ch * 256);
    for c in 0..ch {
        for b in 0..=255u8 {
            let xi = if x_signed { b as i8 as i32 } else { b as i32 };
            let mut v = xi.wrapping_sub(x_zp) as f32 * x_scale;
            for st in steps {
                v = match st {
                    MapStepOwned::Add(k) => v + pc(k, c),
                    MapStepOwned::Sub(k) => v - pc(k, c),
                    MapStepOwned::Mul(k) => v * pc(k, c),
                    MapStepOwned::Affine(s, t) => v * pc(s, c) + pc(t, c),
                    MapStepOwned::Relu => {
                        if v > 0.0 {
                            v
                        } else {
                            0.0
                        }
                    }
                    MapStepOwned::Clip(lo, hi) => {
                        let v = if v > *lo { v } else { *lo };
                        if v < *hi { v } else { *hi }
                    }
                    MapStepOwned::Unary(u) => u.eval(v),
                };
            }
            let q = round_half_even(v / y_scale) + z;
            // The saturating conversion of `QInt::from_f32_sat` (NaN → 0).
            lut.push(if y_signed { q as i8 as u8 } else { q as u8 });
        }
    }
    lut
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::UnaryOp;
    use kiln_runtime::ops::math;
    use kiln_runtime::qlinear::{MapStep, qdq_map};

    /// The table equals the per-element float pass it replaces, for every input byte, on a
    /// chain of every step kind (per-channel BatchNorm, HardSwish, bias, Clip…), u8 and i8.
    #[test]
    fn table_equals_the_float_pass() {
        let ch = 5;
        let s: Vec<f32> = (0..ch).map(|c| 0.37 + c as f32 * 0.61).collect();
        let t: Vec<f32> = (0..ch).map(|c| c as f32 * 0.23 - 0.5).collect();
        let add: Vec<f32> = (0..ch).map(|c| 0.1 * c as f32).collect();
        let owned = [
            MapStepOwned::Affine(s.clone(), t.clone()),
            MapStepOwned::Unary(UnaryOp::HardSwish),
            MapStepOwned::Add(add.clone()),
            MapStepOwned::Mul(vec![1.7]),
            MapStepOwned::Sub(vec![0.05]),
            MapStepOwned::Unary(UnaryOp::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            }),
            MapStepOwned::Clip(0.1, 0.8),
            MapStepOwned::Relu,
        ];
        let steps = [
            MapStep::Affine(&s, &t),
            MapStep::Unary(math::hard_swish),
            MapStep::Add(&add),
            MapStep::Mul(&[1.7]),
            MapStep::Sub(&[0.05]),
            MapStep::Unary2(math::hard_sigmoid, 0.2, 0.5),
            MapStep::Clip(0.1, 0.8),
            MapStep::Relu,
        ];
        for cut in [2, steps.len()] {
            let x: Vec<u8> = (0..ch * 256).map(|i| i as u8).collect();
            let mut y = vec![0u8; ch * 256];
            qdq_map(&x, 1, ch, 256, 0.031, 117, &steps[..cut], 0.0043, 3, &mut y);
            let lut = build(&owned[..cut], ch, (0.031, 117, false), (0.0043, 3, false));
            assert_eq!(lut, y, "u8, {cut} steps");
            let xi: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            let mut yi = vec![0i8; ch * 256];
            qdq_map(
                &xi,
                1,
                ch,
                256,
                0.05,
                -3,
                &steps[..cut],
                0.011,
                -20,
                &mut yi,
            );
            let lut = build(&owned[..cut], ch, (0.05, -3, true), (0.011, -20, true));
            let yb: Vec<u8> = yi.iter().map(|&v| v as u8).collect();
            assert_eq!(lut, yb, "i8, {cut} steps");
        }
    }
}
