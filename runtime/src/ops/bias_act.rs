//! onnxruntime's bias-and-activation contrib ops (`com.microsoft`): `Gelu`, `BiasGelu`,
//! `FastGelu`, `QuickGelu` and `BiasAdd`. A bias has the length of the last dim and repeats
//! per row; `x + bias` (and `+ skip`) is rounded once per add, in that order, as the unfused
//! Add nodes would. GELU is [`super::gelu`]'s kernel; the others are plain loops of
//! [`super::math`] functions, the same code on every ISA.

use super::math;
use crate::isa::Isa;

/// The activation after the bias.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// `x·Φ(x)` ([`super::gelu`]).
    Gelu,
    /// `0.5·x·(1 + tanh(0.7978845608·(x + 0.044715·x³)))`.
    FastGelu,
    /// `x·sigmoid(alpha·x)`.
    QuickGelu(f32),
    /// None (`BiasAdd`: x + bias + skip).
    Identity,
}

/// `out = act(x + bias + skip)`; `bias` (if any) repeats every `bias.len()` values, `skip` (if
/// any) has `x`'s length. Panics if a length does not match.
pub fn bias_act(
    isa: Isa,
    x: &[f32],
    bias: Option<&[f32]>,
    skip: Option<&[f32]>,
    act: Act,
    out: &mut [f32],
) {
    assert_eq!(out.len(), x.len(), "bias_act: output length");
    out.copy_from_slice(x);
    if let Some(b) = bias {
        assert!(
            !b.is_empty() && x.len().is_multiple_of(b.len()),
            "bias_act: bias length"
        );
        for row in out.chunks_exact_mut(b.len()) {
            for (o, &c) in row.iter_mut().zip(b) {
                *o += c;
            }
        }
    }
    if let Some(s) = skip {
        assert_eq!(s.len(), x.len(), "bias_act: skip length");
        for (o, &c) in out.iter_mut().zip(s) {
            *o += c;
        }
    }
    match act {
        Act::Gelu => super::gelu::gelu_inplace(isa, out),
        Act::FastGelu => out.iter_mut().for_each(|v| {
            let x = *v;
            let inner = 0.797_884_6 * (x + 0.044715 * x * x * x);
            *v = 0.5 * x * (1.0 + math::tanh(inner));
        }),
        Act::QuickGelu(alpha) => out.iter_mut().for_each(|v| *v *= math::sigmoid(alpha * *v)),
        Act::Identity => {}
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;

    /// Each activation against its formula in f64.
    #[test]
    fn matches_f64_formulas() {
        let x: std::vec::Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) * 0.19).collect();
        let bias = [0.5f32, -0.25];
        let skip: std::vec::Vec<f32> = x.iter().map(|v| v * 0.1).collect();
        for act in [
            Act::FastGelu,
            Act::QuickGelu(1.702),
            Act::Identity,
            Act::Gelu,
        ] {
            let mut out = vec![0.0; x.len()];
            bias_act(Isa::Scalar, &x, Some(&bias), Some(&skip), act, &mut out);
            for i in 0..x.len() {
                let v = ((x[i] + bias[i % 2]) + skip[i]) as f64;
                let want = match act {
                    Act::FastGelu => {
                        0.5 * v * (1.0 + (0.7978845608 * (v + 0.044715 * v * v * v)).tanh())
                    }
                    Act::QuickGelu(a) => v / (1.0 + (-(a as f64) * v).exp()),
                    Act::Identity => v,
                    Act::Gelu => 0.5 * v * (1.0 + libm::erf(v / 2f64.sqrt())),
                };
                assert!(
                    (out[i] as f64 - want).abs() <= 2e-6 * (1.0 + want.abs()),
                    "{act:?} [{i}]: {} vs {want}",
                    out[i]
                );
            }
        }
    }
}
