//! ONNX `NegativeLogLikelihoodLoss` and the loss half of `SoftmaxCrossEntropyLoss` (whose
//! log-probabilities come from [`super::softmax::log_softmax`]).
//!
//! The input is viewed as `[n][c][d]` (`d` = the product of the dims after the class axis, 1
//! for a 2-D input) and the target as `[n][d]`. Element `(i, j)` of the unreduced loss is
//! `-x[i][t][j] · w[t]` with `t = target[i][j]` (`w[t] = 1` without weights), and 0 where `t`
//! is `ignore_index`. `mean` divides the sum by the sum of the weights that were used (the
//! count of non-ignored elements without weights), as the spec's reference does; so a mean
//! over only ignored elements is `0/0 = NaN`. Sums accumulate in `f64` and round once.

use super::cast::CastTo;
use super::math;
use crate::error::Error;

/// ONNX's `reduction` attribute of the loss ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Sum,
    Mean,
}

/// `NegativeLogLikelihoodLoss` of `x` (`n·c·d` values) and `target` (`n·d` class indices in
/// `[0, c)` or equal to `ignore`), with optional per-class `weight` (`c` values). `out` holds
/// `n·d` values for [`Reduction::None`], else one. Returns `Err` (naming the bad target value)
/// for a target outside `[0, c)` that is not `ignore`, or for lengths that do not match.
#[allow(clippy::result_large_err)]
pub fn nll_loss<T, I>(
    x: &[T],
    target: &[I],
    weight: Option<&[T]>,
    (n, c, d): (usize, usize, usize),
    ignore: Option<i64>,
    reduction: Reduction,
    out: &mut [T],
) -> Result<(), Error>
where
    T: Copy + CastTo<f64> + core::ops::Neg<Output = T> + core::ops::Mul<Output = T>,
    I: Copy + CastTo<i64>,
    f64: CastTo<T>,
{
    const NODE: &str = "NegativeLogLikelihoodLoss";
    check(NODE, x.len(), target, weight.map(<[T]>::len), (n, c, d))?;
    reduce(
        NODE,
        target,
        weight,
        (n, c, d),
        ignore,
        reduction,
        out,
        |i, t, j| x[(i * c + t) * d + j],
    )
}

/// `SoftmaxCrossEntropyLoss`: [`nll_loss`] of the log-softmax of `x` over its class axis.
/// With `log_prob` (`n·c·d` values, the op's optional second output) the log-softmax is
/// written there first and read back; without it each needed log-probability is computed
/// where it is used (`x[t] − max − ln Σ exp(x − max)` over the `c` classes), so no scratch
/// buffer is needed.
#[allow(clippy::result_large_err, clippy::too_many_arguments)]
pub fn softmax_cross_entropy<I: Copy + CastTo<i64>>(
    x: &[f32],
    target: &[I],
    weight: Option<&[f32]>,
    (n, c, d): (usize, usize, usize),
    ignore: Option<i64>,
    reduction: Reduction,
    out: &mut [f32],
    log_prob: Option<&mut [f32]>,
) -> Result<(), Error> {
    const NODE: &str = "SoftmaxCrossEntropyLoss";
    check(NODE, x.len(), target, weight.map(<[f32]>::len), (n, c, d))?;
    match log_prob {
        Some(lp) => {
            if lp.len() != x.len() {
                return Err(Error::Invalid {
                    node: NODE,
                    what: "log_prob length does not match the input",
                });
            }
            super::softmax::log_softmax(x, lp, n, c, d);
            let lp = &*lp;
            reduce(
                NODE,
                target,
                weight,
                (n, c, d),
                ignore,
                reduction,
                out,
                |i, t, j| lp[(i * c + t) * d + j],
            )
        }
        None => reduce(
            NODE,
            target,
            weight,
            (n, c, d),
            ignore,
            reduction,
            out,
            |i, t, j| {
                let at = |k: usize| x[(i * c + k) * d + j];
                let m = (0..c).map(at).fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = (0..c).map(|k| math::exp(at(k) - m)).sum();
                at(t) - m - math::ln(s)
            },
        ),
    }
}

/// Length checks shared by both ops.
#[allow(clippy::result_large_err)]
fn check<I>(
    node: &'static str,
    x_len: usize,
    target: &[I],
    weight_len: Option<usize>,
    (n, c, d): (usize, usize, usize),
) -> Result<(), Error> {
    let rows = n.checked_mul(d);
    let what = if rows != Some(target.len()) || rows.and_then(|r| r.checked_mul(c)) != Some(x_len) {
        "input and target lengths do not match their shapes"
    } else if weight_len.is_some_and(|w| w != c) {
        "weight length is not the number of classes"
    } else {
        return Ok(());
    };
    Err(Error::Invalid { node, what })
}

/// The loss from `logp(i, t, j)` (the log-probability of class `t` at `(i, j)`), reduced.
#[allow(clippy::result_large_err, clippy::too_many_arguments)]
fn reduce<T, I>(
    node: &'static str,
    target: &[I],
    weight: Option<&[T]>,
    (n, c, d): (usize, usize, usize),
    ignore: Option<i64>,
    reduction: Reduction,
    out: &mut [T],
    logp: impl Fn(usize, usize, usize) -> T,
) -> Result<(), Error>
where
    T: Copy + CastTo<f64> + core::ops::Neg<Output = T> + core::ops::Mul<Output = T>,
    I: Copy + CastTo<i64>,
    f64: CastTo<T>,
{
    let want = if reduction == Reduction::None {
        target.len()
    } else {
        1
    };
    if out.len() != want {
        return Err(Error::Invalid {
            node,
            what: "output length does not match",
        });
    }
    // Check every target first, so that the output is untouched on error.
    for &t in target {
        let t: i64 = t.cast_to();
        if Some(t) != ignore && (t < 0 || t >= c as i64) {
            return Err(Error::IndexOutOfRange {
                value: "target",
                node,
                index: t,
                len: c,
            });
        }
    }
    let zero: T = 0.0f64.cast_to();
    let (mut sum, mut wsum) = (0.0f64, 0.0f64);
    for i in 0..n {
        for j in 0..d {
            let t: i64 = target[i * d + j].cast_to();
            let v = if Some(t) == ignore {
                zero
            } else {
                let t = t as usize;
                let l = -logp(i, t, j);
                match weight.map(|w| w[t]) {
                    Some(w) => {
                        wsum += w.cast_to();
                        l * w
                    }
                    None => {
                        wsum += 1.0;
                        l
                    }
                }
            };
            if reduction == Reduction::None {
                out[i * d + j] = v;
            } else {
                sum += v.cast_to();
            }
        }
    }
    match reduction {
        Reduction::None => {}
        Reduction::Sum => out[0] = sum.cast_to(),
        Reduction::Mean => out[0] = (sum / wsum).cast_to(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The definition written out per element, in f64 (the spec's reference, reshaped).
    fn reference(
        x: &[f32],
        t: &[i64],
        w: Option<&[f32]>,
        (n, c, d): (usize, usize, usize),
        ii: Option<i64>,
    ) -> (Vec<f64>, f64, f64) {
        let mut none = vec![0.0; n * d];
        let mut wsum = 0.0;
        for i in 0..n {
            for j in 0..d {
                let k = t[i * d + j];
                if Some(k) == ii {
                    continue;
                }
                let wk = w.map_or(1.0, |w| w[k as usize] as f64);
                none[i * d + j] = -(x[i * c * d + k as usize * d + j] as f64) * wk;
                wsum += wk;
            }
        }
        let sum: f64 = none.iter().sum();
        (none.clone(), sum, sum / wsum)
    }

    #[test]
    fn matches_the_definition() {
        let (n, c, d) = (3, 4, 5);
        let x: Vec<f32> = (0..n * c * d).map(|i| (i as f32 * 0.37).sin()).collect();
        let t: Vec<i64> = (0..n * d).map(|i| (i * 7 % 5) as i64 - 1).collect(); // -1..=3
        let w = [0.5f32, 2.0, 1.0, 0.25];
        for (weight, ii) in [
            (None, Some(-1)),
            (Some(&w[..]), Some(-1)),
            (Some(&w[..]), Some(2)),
        ] {
            let ti: Vec<i32> = t.iter().map(|&v| v as i32).collect();
            if ii != Some(-1) {
                // -1 is not ignored: it is out of range.
                let mut o = [0.0f32];
                let e = nll_loss(&x, &t, weight, (n, c, d), ii, Reduction::Sum, &mut o);
                assert!(matches!(e, Err(Error::IndexOutOfRange { index: -1, .. })));
                continue;
            }
            let (none, sum, mean) = reference(&x, &t, weight, (n, c, d), ii);
            let mut o = vec![0.0f32; n * d];
            nll_loss(&x, &ti, weight, (n, c, d), ii, Reduction::None, &mut o).unwrap();
            for (a, b) in o.iter().zip(&none) {
                assert!((*a as f64 - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} {b}");
            }
            for (r, want) in [(Reduction::Sum, sum), (Reduction::Mean, mean)] {
                let mut o = [0.0f32];
                nll_loss(&x, &t, weight, (n, c, d), ii, r, &mut o).unwrap();
                assert!((o[0] as f64 - want).abs() <= 1e-6 * want.abs().max(1.0));
            }
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut o = [0.0f32];
        let e = nll_loss(
            &[0.0f32; 5],
            &[0i64; 2],
            None,
            (2, 3, 1),
            None,
            Reduction::Sum,
            &mut o,
        );
        assert!(matches!(e, Err(Error::Invalid { .. })));
        let e = nll_loss(
            &[0.0f32; 6],
            &[0i64; 2],
            Some(&[1.0f32; 2]),
            (2, 3, 1),
            None,
            Reduction::Sum,
            &mut o,
        );
        assert!(matches!(e, Err(Error::Invalid { .. })));
    }

    #[test]
    fn mean_of_only_ignored_elements_is_nan() {
        let mut o = [0.0f32];
        nll_loss(
            &[1.0f32; 4],
            &[1i64, 1],
            None,
            (2, 2, 1),
            Some(1),
            Reduction::Mean,
            &mut o,
        )
        .unwrap();
        assert!(o[0].is_nan());
    }

    /// Softmax cross-entropy against an f64 log-softmax written from the definition, with and
    /// without the `log_prob` buffer (the two code paths).
    #[test]
    fn softmax_cross_entropy_matches_the_definition() {
        let (n, c, d) = (2, 5, 3);
        let x: Vec<f32> = (0..n * c * d)
            .map(|i| (i as f32 * 0.71).cos() * 4.0)
            .collect();
        let t: Vec<i64> = (0..n * d).map(|i| (i * 3 % 6) as i64 - 1).collect(); // -1..=4
        let w = [1.0f32, 0.5, 2.0, 0.25, 3.0];
        let mut lp64 = vec![0.0f64; n * c * d];
        for i in 0..n {
            for j in 0..d {
                let at = |k: usize| x[(i * c + k) * d + j] as f64;
                let lse = (0..c).map(|k| at(k).exp()).sum::<f64>().ln();
                for k in 0..c {
                    lp64[(i * c + k) * d + j] = at(k) - lse;
                }
            }
        }
        let lp32: Vec<f32> = lp64.iter().map(|&v| v as f32).collect();
        let (_, _, mean) = reference(&lp32, &t, Some(&w), (n, c, d), Some(-1));
        let mut lp = vec![0.0f32; n * c * d];
        for with_lp in [false, true] {
            let mut o = [0.0f32];
            let buf = with_lp.then_some(&mut lp[..]);
            let (dims, r) = ((n, c, d), Reduction::Mean);
            softmax_cross_entropy(&x, &t, Some(&w), dims, Some(-1), r, &mut o, buf).unwrap();
            assert!(
                (o[0] as f64 - mean).abs() <= 1e-5 * mean.abs(),
                "{} {mean}",
                o[0]
            );
        }
        for (a, b) in lp.iter().zip(&lp64) {
            assert!((*a as f64 - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} {b}");
        }
    }
}
