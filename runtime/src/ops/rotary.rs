//! Rotary position embedding (ONNX `RotaryEmbedding`, opset 23, and onnxruntime's
//! `com.microsoft` `RotaryEmbedding`): the first `rot` values of each head vector are rotated
//! pairwise by the angle of their position,
//!
//! ```text
//! (x1, x2) → (cos·x1 − sin·x2, sin·x1 + cos·x2)
//! ```
//!
//! where the pairs are `(x[i], x[i + rot/2])` (halves) or `(x[2i], x[2i + 1])` (interleaved),
//! and `cos`/`sin` are row `p` of the caches (`rot/2` values per row). The other values are
//! copied. Each product and the difference/sum are rounded once, in this order (no FMA), by
//! the same code on every ISA, so every ISA gives the same bits.

use crate::Error;

/// Where the head vectors are: `[batch, seq, heads, head]` (a 3-D `[batch, seq, hidden]`
/// input) or `[batch, heads, seq, head]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeLayout {
    Bshd,
    Bhsd,
}

/// Which cache row each (batch, position) uses.
#[derive(Clone, Copy, Debug)]
pub enum Positions<'a> {
    /// No position ids: the caches are `[batch, seq, rot/2]`, row `b·seq + s`.
    PerToken,
    /// `[batch, seq]` position ids (row `ids[b·seq + s]` of the `[max_pos, rot/2]` caches).
    Ids(&'a [i64]),
    /// One offset for every batch (onnxruntime's 1-element `position_ids`): row `off + s`.
    Offset(i64),
}

/// Geometry and options of one call.
#[derive(Clone, Copy, Debug)]
pub struct RopeSpec {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    /// Values per head vector.
    pub head: usize,
    /// Values rotated at the start of each head vector (even, ≤ `head`).
    pub rot: usize,
    pub interleaved: bool,
    pub layout: RopeLayout,
}

/// Applies the rotation to `x` into `out` (same shape). `cos` and `sin` hold rows of
/// `rot / 2` values. An Err names a position outside the caches.
///
/// Panics if a length does not match the spec.
pub fn rotary(
    d: RopeSpec,
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    pos: Positions<'_>,
    out: &mut [f32],
) -> Result<(), Error> {
    let RopeSpec {
        batch,
        seq,
        heads,
        head,
        rot,
        interleaved,
        layout,
    } = d;
    let half = rot / 2;
    assert!(rot.is_multiple_of(2) && rot <= head, "rotary: rot");
    assert_eq!(x.len(), batch * seq * heads * head, "rotary: input length");
    assert_eq!(out.len(), x.len(), "rotary: output length");
    assert_eq!(cos.len(), sin.len(), "rotary: cache lengths");
    if x.is_empty() {
        return Ok(());
    }
    let rows = cos.len().checked_div(half).unwrap_or(0);
    if let Positions::PerToken = pos {
        assert!(half == 0 || rows == batch * seq, "rotary: cache length");
    }
    if let Positions::Ids(ids) = pos {
        assert_eq!(ids.len(), batch * seq, "rotary: position ids length");
    }
    for b in 0..batch {
        for s in 0..seq {
            let p = match pos {
                Positions::PerToken => b * seq + s,
                Positions::Ids(ids) => row(ids[b * seq + s], rows)?,
                Positions::Offset(o) => row(o.saturating_add(s as i64), rows)?,
            };
            let (c, sn) = (
                &cos[p * half..(p + 1) * half],
                &sin[p * half..(p + 1) * half],
            );
            for h in 0..heads {
                let at = match layout {
                    RopeLayout::Bshd => ((b * seq + s) * heads + h) * head,
                    RopeLayout::Bhsd => ((b * heads + h) * seq + s) * head,
                };
                let (xv, ov) = (&x[at..at + head], &mut out[at..at + head]);
                rotate(xv, ov, c, sn, half, interleaved);
            }
        }
    }
    Ok(())
}

/// The cache row of position `p`, or the Err naming it.
fn row(p: i64, rows: usize) -> Result<usize, Error> {
    match usize::try_from(p) {
        Ok(r) if r < rows => Ok(r),
        _ => Err(Error::IndexOutOfRange {
            value: "position_ids",
            node: "RotaryEmbedding",
            index: p,
            len: rows,
        }),
    }
}

#[inline]
fn rotate(x: &[f32], out: &mut [f32], c: &[f32], s: &[f32], half: usize, interleaved: bool) {
    let rot = 2 * half;
    if interleaved {
        for i in 0..half {
            let (x1, x2) = (x[2 * i], x[2 * i + 1]);
            out[2 * i] = c[i] * x1 - s[i] * x2;
            out[2 * i + 1] = s[i] * x1 + c[i] * x2;
        }
    } else {
        let (x1, x2) = x[..rot].split_at(half);
        let (o1, o2) = out[..rot].split_at_mut(half);
        for i in 0..half {
            o1[i] = c[i] * x1[i] - s[i] * x2[i];
            o2[i] = s[i] * x1[i] + c[i] * x2[i];
        }
    }
    out[rot..].copy_from_slice(&x[rot..]);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Checks against the definition written with complex multiplication in f64, per layout,
    /// pairing and position source.
    #[test]
    fn matches_complex_rotation() {
        let (batch, seq, heads, head, rot) = (2, 3, 2, 8, 6);
        let half = rot / 2;
        let x: Vec<f32> = (0..batch * seq * heads * head)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let max_pos = 10;
        let ang = |p: usize, i: usize| p as f64 * 0.3 + i as f64 * 0.11;
        let cos: Vec<f32> = (0..max_pos * half)
            .map(|k| ang(k / half, k % half).cos() as f32)
            .collect();
        let sin: Vec<f32> = (0..max_pos * half)
            .map(|k| ang(k / half, k % half).sin() as f32)
            .collect();
        let ids: Vec<i64> = vec![4, 0, 9, 1, 2, 3];
        for layout in [RopeLayout::Bshd, RopeLayout::Bhsd] {
            for interleaved in [false, true] {
                for which in 0..2 {
                    let spec = RopeSpec {
                        batch,
                        seq,
                        heads,
                        head,
                        rot,
                        interleaved,
                        layout,
                    };
                    let pos = if which == 0 {
                        Positions::Ids(&ids)
                    } else {
                        Positions::Offset(5)
                    };
                    let mut out = vec![0.0; x.len()];
                    rotary(spec, &x, &cos, &sin, pos, &mut out).unwrap();
                    for b in 0..batch {
                        for s in 0..seq {
                            let p = if which == 0 {
                                ids[b * seq + s] as usize
                            } else {
                                5 + s
                            };
                            for h in 0..heads {
                                let at = match layout {
                                    RopeLayout::Bshd => ((b * seq + s) * heads + h) * head,
                                    RopeLayout::Bhsd => ((b * heads + h) * seq + s) * head,
                                };
                                for i in 0..half {
                                    let (j1, j2) = if interleaved {
                                        (at + 2 * i, at + 2 * i + 1)
                                    } else {
                                        (at + i, at + half + i)
                                    };
                                    let (re, im) = (x[j1] as f64, x[j2] as f64);
                                    let (c, sn) = (ang(p, i).cos(), ang(p, i).sin());
                                    let (wr, wi) = (re * c - im * sn, re * sn + im * c);
                                    assert!((out[j1] as f64 - wr).abs() < 1e-6);
                                    assert!((out[j2] as f64 - wi).abs() < 1e-6);
                                }
                                for j in rot..head {
                                    assert_eq!(out[at + j], x[at + j]);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn position_outside_the_cache_is_an_error() {
        let spec = RopeSpec {
            batch: 1,
            seq: 1,
            heads: 1,
            head: 2,
            rot: 2,
            interleaved: false,
            layout: RopeLayout::Bshd,
        };
        let (x, c) = ([1.0, 2.0], [1.0, 1.0]);
        let mut out = [0.0; 2];
        let e = rotary(spec, &x, &c, &c, Positions::Ids(&[2]), &mut out).unwrap_err();
        assert!(matches!(
            e,
            Error::IndexOutOfRange {
                index: 2,
                len: 2,
                ..
            }
        ));
        let e = rotary(spec, &x, &c, &c, Positions::Ids(&[-1]), &mut out).unwrap_err();
        assert!(matches!(e, Error::IndexOutOfRange { index: -1, .. }));
    }
}
