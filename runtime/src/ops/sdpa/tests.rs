//! [`sdpa`] against an f64 evaluation of the ONNX `Attention` definition, written separately
//! (dense `[batch, heads, seq, d]` loops, bias as a full tensor), on every ISA.
extern crate std;
use super::*;
use std::vec;
use std::vec::Vec;

fn data(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 500.0 - 2.0
        })
        .collect()
}

struct Case {
    d: SdpaDims,
    bshd: bool,
    causal: bool,
    softcap: f32,
    mask: Option<(bool, usize)>, // (bool mask, columns)
    past: usize,
    nonpad: Option<Vec<i64>>,
    left: i64,
    right: i64,
}

/// (output `[b, h, sq, dv]`, probabilities `[b, h, sq, skv]`) in f64.
fn reference(
    c: &Case,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    m: &[f32],
    mb: &[bool],
) -> (Vec<f64>, Vec<f64>) {
    let SdpaDims {
        batch,
        heads,
        kv_heads,
        sq,
        skv,
        dk,
        dv,
    } = c.d;
    let (qs, ks, vs) = strides(c);
    let scale = 1.0 / (dk as f64).sqrt();
    let mut out = vec![0.0; batch * heads * sq * dv];
    let mut probs = vec![0.0; batch * heads * sq * skv];
    for b in 0..batch {
        for h in 0..heads {
            let g = h / (heads / kv_heads);
            for i in 0..sq {
                let mut bias = vec![0.0f64; skv];
                for (j, bj) in bias.iter_mut().enumerate() {
                    if let Some((is_bool, cols)) = c.mask {
                        let at = (i * cols + j) % (sq * cols) + b * sq * cols; // [batch, 1, sq, cols]
                        *bj = if j >= cols {
                            f64::NEG_INFINITY
                        } else if is_bool {
                            if mb[at] { 0.0 } else { f64::NEG_INFINITY }
                        } else {
                            m[at] as f64
                        };
                    }
                    let (off, valid) = match &c.nonpad {
                        Some(np) => (np[b] - sq as i64, np[b]),
                        None => (c.past as i64, skv as i64),
                    };
                    let p = i as i64 + off;
                    let jj = j as i64;
                    let ok = (!c.causal || jj <= p)
                        && (c.left < 0 || p - jj <= c.left)
                        && (c.right < 0 || jj - p <= c.right)
                        && jj < valid;
                    if !ok {
                        *bj = f64::NEG_INFINITY;
                    }
                }
                let mut s: Vec<f64> = (0..skv)
                    .map(|j| {
                        let mut acc = 0.0;
                        for x in 0..dk {
                            acc += q[qs.at(b, h, i) + x] as f64 * k[ks.at(b, g, j) + x] as f64;
                        }
                        let mut a = acc * scale;
                        if c.softcap > 0.0 {
                            a = (a / c.softcap as f64).tanh() * c.softcap as f64;
                        }
                        a + bias[j]
                    })
                    .collect();
                let all_masked = bias.iter().all(|&x| x == f64::NEG_INFINITY);
                let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let mut sum = 0.0;
                for x in s.iter_mut() {
                    *x = if all_masked { 0.0 } else { (*x - mx).exp() };
                    sum += *x;
                }
                for j in 0..skv {
                    let pj = if all_masked { 0.0 } else { s[j] / sum };
                    probs[((b * heads + h) * sq + i) * skv + j] = pj;
                    for x in 0..dv {
                        out[((b * heads + h) * sq + i) * dv + x] +=
                            pj * v[vs.at(b, g, j) + x] as f64;
                    }
                }
            }
        }
    }
    (out, probs)
}

fn strides(c: &Case) -> (Strides, Strides, Strides) {
    let SdpaDims {
        heads,
        kv_heads,
        sq,
        skv,
        dk,
        dv,
        ..
    } = c.d;
    if c.bshd {
        (
            Strides::bshd(sq, heads, dk),
            Strides::bshd(skv, kv_heads, dk),
            Strides::bshd(skv, kv_heads, dv),
        )
    } else {
        (
            Strides::bhsd(heads, sq, dk),
            Strides::bhsd(kv_heads, skv, dk),
            Strides::bhsd(kv_heads, skv, dv),
        )
    }
}

fn run_case(ci: u32, c: &Case) {
    let SdpaDims {
        batch,
        heads,
        kv_heads,
        sq,
        skv,
        dk,
        dv,
    } = c.d;
    let q = data(batch * heads * sq * dk, 1 + ci);
    let k = data(batch * kv_heads * skv * dk, 2 + ci);
    let v = data(batch * kv_heads * skv * dv, 3 + ci);
    let cols = c.mask.map_or(1, |m| m.1);
    let mf = data(batch * sq * cols, 4 + ci);
    let mbool: Vec<bool> = (0..batch * sq * cols).map(|x| x % 3 != 1).collect();
    let (want, probs) = reference(c, &q, &k, &v, &mf, &mbool);
    let (qs, ks, vs) = strides(c);
    let os = if c.bshd {
        Strides::bshd(sq, heads, dv)
    } else {
        Strides::bhsd(heads, sq, dv)
    };
    let layout = SdpaLayout {
        q: qs,
        k: ks,
        v: vs,
        out: os,
    };
    let mask = c.mask.map(|(is_bool, cols)| SdpaMask {
        data: if is_bool {
            MaskData::Bool(&mbool)
        } else {
            MaskData::F32(&mf)
        },
        strides: [sq * cols, 0, cols, 1],
        cols,
    });
    let opts = SdpaOpts {
        scale: 1.0 / (dk as f32).sqrt(),
        softcap: c.softcap,
        mask,
        causal: c.causal,
        left: c.left,
        right: c.right,
        past: c.past,
        nonpad: c.nonpad.as_deref(),
    };
    for isa in Isa::all_available() {
        let mut out = vec![f32::NAN; batch * heads * sq * dv];
        let mut qk = vec![f32::NAN; batch * heads * sq * skv];
        let mut scratch = vec![0.0; c.d.scratch_len()];
        sdpa(
            isa,
            c.d,
            layout,
            &q,
            &k,
            &v,
            opts,
            &mut out,
            Some((QkMode::Probs, &mut qk)),
            &mut scratch,
        );
        for bb in 0..batch {
            for h in 0..heads {
                for i in 0..sq {
                    for x in 0..dv {
                        let got = out[os.at(bb, h, i) + x] as f64;
                        let w = want[((bb * heads + h) * sq + i) * dv + x];
                        assert!(
                            (got - w).abs() <= 1e-5 * (1.0 + w.abs()),
                            "case {ci} {isa:?} out ({bb},{h},{i},{x}): {got} vs {w}"
                        );
                    }
                }
            }
        }
        for (j, (&g, &w)) in qk.iter().zip(&probs).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-6,
                "case {ci} {isa:?} probs [{j}]: {g} vs {w}"
            );
        }
    }
}

#[test]
fn matches_f64_reference_on_every_isa() {
    let dims = |batch, heads, kv_heads, sq, skv, dk, dv| SdpaDims {
        batch,
        heads,
        kv_heads,
        sq,
        skv,
        dk,
        dv,
    };
    let base = |d| Case {
        d,
        bshd: false,
        causal: false,
        softcap: 0.0,
        mask: None,
        past: 0,
        nonpad: None,
        left: -1,
        right: -1,
    };
    let cases = [
        base(dims(2, 3, 3, 4, 6, 8, 8)),
        Case {
            bshd: true,
            ..base(dims(2, 6, 2, 5, 7, 8, 10))
        },
        Case {
            causal: true,
            ..base(dims(1, 2, 1, 70, 70, 16, 16))
        },
        Case {
            causal: true,
            past: 5,
            mask: Some((false, 9)),
            ..base(dims(2, 2, 2, 4, 12, 8, 8))
        },
        Case {
            mask: Some((true, 6)),
            softcap: 2.0,
            ..base(dims(2, 4, 2, 3, 6, 8, 4))
        },
        Case {
            causal: true,
            nonpad: Some(vec![5, 2]),
            ..base(dims(2, 2, 1, 3, 6, 8, 8))
        },
        Case {
            causal: true,
            left: 2,
            ..base(dims(1, 3, 3, 8, 8, 4, 4))
        },
        Case {
            left: 1,
            right: 2,
            bshd: true,
            ..base(dims(1, 2, 2, 6, 6, 4, 4))
        },
        // Negative offset: the first rows see no key at all (output and probabilities 0).
        Case {
            causal: true,
            nonpad: Some(vec![2]),
            ..base(dims(1, 1, 1, 4, 4, 4, 4))
        },
    ];
    for (ci, c) in cases.iter().enumerate() {
        run_case(ci as u32, c);
    }
}
